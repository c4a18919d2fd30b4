"""Explanations: Grad-CAM and saliency maps, and the figures of explained images."""
