"""Data: finding and validating HAM10000 on disk, the lesion-level split, the download, the
sample dataset, image decoding, patient metadata and the tf.data input pipeline."""
