"""riskpipe engine: the risk engine (scoring client, canary routing, decision policy) and canary rollout."""
