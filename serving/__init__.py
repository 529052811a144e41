"""riskpipe serving: the TF-Serving-compatible model server (what tensorflow_model_server does)."""
