"""Serving a trained model: loading it with what it says about itself, scoring images, the
class it decides; what 06_infer.py, 07_explain.py, evaluation and the web app share."""
