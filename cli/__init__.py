"""The `riskpipe` command line: the top of the import graph."""
