"""Models that travel: the run's ``.h5`` exported to Keras' native ``.keras``, a TensorFlow
SavedModel, TFLite (float32, float16, full-integer int8) and ONNX, each in a folder of its own
with one format-neutral ``description.json`` (``skin_lesion.export.description``); scoring any
of them (``skin_lesion.export.runtimes``); and the Hugging Face Hub (``skin_lesion.export.hub``).
"""
