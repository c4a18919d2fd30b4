"""The defaults of the steps after training, decided here once (the training settings and their
defaults live in ``skin_lesion.training.config``, the per-architecture ones in the architecture table).

Plain values only, no imports: scripts read their ``--help`` defaults from here without
loading any library.
"""

#: Train, validation and test shares of the lesions, and the seed of the split.
SPLIT_RATIOS = (0.70, 0.15, 0.15)
SPLIT_SEED = 42
#: Sensitivity the tuned threshold must reach on validation, and the other reported targets.
TARGET_SENSITIVITY = 0.90
REPORTED_SENSITIVITIES = (0.80, 0.85, 0.90, 0.95)
#: Threshold used when none was tuned.
UNTUNED_THRESHOLD = 0.5
#: Lesion-level bootstrap resamples for the 95 % intervals, and the bins of the calibration error.
BOOTSTRAP_SAMPLES = 1000
CALIBRATION_BINS = 15
#: Images decoded and scored at a time by evaluation, inference and explanations.
PREDICTION_BATCH = 64
