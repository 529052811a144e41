"""riskpipe ledger: what every pipeline stage, model version and feature costs, beside what it is worth."""
