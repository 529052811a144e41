"""The credit default task: a bank's application table -> a scorecard-grade model."""
