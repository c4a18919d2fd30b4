"""Skin-lesion classification on HAM10000: data layer, input pipeline, models, evaluation.

The numbered scripts in ``scripts/`` are thin entry points; everything they do lives here so it
can be imported, tested and reused without a terminal.
"""
