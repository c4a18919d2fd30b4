"""Evaluation: the operating point, test metrics, calibration, inference on new images and
explanations."""
