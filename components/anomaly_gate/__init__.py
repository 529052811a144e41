"""AnomalyGate: stops a pipeline run when ExampleValidator found anomalies or the data drifted."""
# What AnomalyGate does when a feature drifted beyond a threshold (validation.drift_action).
WARN, STOP = "warn", "stop"
DRIFT_ACTIONS = (WARN, STOP)
