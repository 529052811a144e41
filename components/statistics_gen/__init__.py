"""StatisticsGen: TFX's StatisticsGen on a random sample of at most `max_examples` per split."""
