"""riskpipe pipeline: configuration, the pure TFX DAG, the local and Kubeflow runners, run summaries."""
