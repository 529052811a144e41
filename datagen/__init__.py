"""riskpipe datagen: the card-transaction simulator."""
