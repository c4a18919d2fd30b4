"""Devices, numeric precision and the distribution strategy, set up as the TensorFlow guides say.

* GPU memory growth is switched on so TensorFlow does not grab every GPU's whole memory.
* Precision ``auto`` is ``mixed_float16`` on GPUs (Tensor Cores) and ``float32`` elsewhere;
  ``bfloat16`` (``mixed_bfloat16``) can pay on CPUs with bf16 matrix units.
  Keras wraps the optimizer in a ``LossScaleOptimizer`` for ``mixed_float16`` by itself.
* ``MirroredStrategy`` spans all visible GPUs (or the devices given), and
  ``MultiWorkerMirroredStrategy`` several machines when ``TF_CONFIG`` is set.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

import keras
import tensorflow as tf

log = logging.getLogger(__name__)

PRECISIONS = {"auto": None, "float32": "float32", "float16": "mixed_float16",
              "bfloat16": "mixed_bfloat16"}


@dataclass
class DeviceSetup:
    strategy: tf.distribute.Strategy
    policy: str
    gpus: list[str]

    def describe(self) -> dict:
        return {
            "strategy": type(self.strategy).__name__,
            "replicas": int(self.strategy.num_replicas_in_sync),
            "gpus": self.gpus,
            "precision_policy": self.policy,
            "cpu_count": os.cpu_count(),
            "tf_config": json.loads(os.environ["TF_CONFIG"]) if os.environ.get("TF_CONFIG") else None,
        }


def precision_policy(precision: str, has_gpu: bool) -> str:
    """The Keras dtype policy for a ``--precision`` value."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}; got {precision!r}.")
    if precision == "auto":
        return "mixed_float16" if has_gpu else "float32"
    return PRECISIONS[precision]


def make_strategy(devices: list[str] | None = None) -> tf.distribute.Strategy:
    """Multi-worker from ``TF_CONFIG``; mirrored over several devices; else the default."""
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if devices and len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices=devices)
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def configure_devices(precision: str = "auto", devices: list[str] | None = None) -> DeviceSetup:
    """Set memory growth, the global precision policy and pick the strategy. Call once, early."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as error:  # already initialised: growth can no longer change
            log.warning("Could not enable memory growth on %s: %s", gpu.name, error)
    policy = precision_policy(precision, bool(gpus))
    keras.mixed_precision.set_global_policy(policy)
    strategy = make_strategy(devices)
    log.info("Devices: %d GPU(s), %s with %d replica(s), precision %s", len(gpus),
             type(strategy).__name__, strategy.num_replicas_in_sync, policy)
    return DeviceSetup(strategy, policy, [gpu.name for gpu in gpus])
