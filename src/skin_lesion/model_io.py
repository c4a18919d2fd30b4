"""The names a model's layers go by: its inputs, its backbone, its pooled features and its
output. The input pipeline feeds the inputs by name, the model factory builds the layers with
them, serving feeds a loaded model and explanations find the feature map and the output layer."""

#: The model's inputs: raw 0-255 RGB images and, for metadata models, the encoded patient data.
IMAGE_INPUT = "image"
METADATA_INPUT = "metadata"
#: The nested backbone model, its pooled features and the output layer.
BACKBONE = "backbone"
POOLED_FEATURES = "pool"
OUTPUT_LAYER = "prediction"
#: An ensemble's layers (``skin_lesion.models.ensemble``): member ``i`` is the sub-model
#: ``member_i``, fed by ``resize_i`` (absent when it takes the ensemble's own size), and its
#: probabilities are scaled by its weight in ``weight_i`` before they are added. A multi-class
#: member of a binary ensemble first sums its malignant classes in ``malignant_i``.
MEMBER_PREFIX = "member_"
RESIZE_PREFIX = "resize_"
WEIGHT_PREFIX = "weight_"
MALIGNANT_PREFIX = "malignant_"
