"""riskpipe monitor: watches the live model (performance as labels arrive, drift) and rolls a bad one back."""
