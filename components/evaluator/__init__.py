"""Evaluator: TFX's Evaluator, without the cost of printing every eval batch it scores."""
