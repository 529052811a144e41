"""riskpipe common: what every room shares, at the bottom of the import graph.

The serving contract (what the exported model promises its readers), the
errors library code raises, the atomic file writer, and the process set-up
every entry point runs before TensorFlow is imported. It imports no other
riskpipe package.
"""
