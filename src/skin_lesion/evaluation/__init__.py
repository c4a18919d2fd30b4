"""Evaluation: the operating point, test metrics, the model card and the table of runs."""
