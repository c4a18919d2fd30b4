"""Devices, numeric precision and the distribution strategy, set up as the TensorFlow guides say.

* GPU memory growth is switched on so TensorFlow does not grab every GPU's whole memory.
* Precision ``auto`` is ``mixed_float16`` on GPUs (Tensor Cores), ``mixed_bfloat16`` on CPUs
  with bfloat16 matrix units (AVX512-BF16 or AMX, where ``scripts/bench_training.py``
  measured training 42 % faster) and ``float32`` elsewhere, or where ``ONEDNN_MAX_CPU_ISA``
  caps oneDNN below those units (``AVX2`` shows an older CPU's path on a newer one). Keras wraps the optimizer in a
  ``LossScaleOptimizer`` for ``mixed_float16`` by itself.
* ``MirroredStrategy`` spans all visible GPUs (or the devices given), and
  ``MultiWorkerMirroredStrategy`` several processes or machines when ``TF_CONFIG`` is set.
* ``deterministic`` turns on TensorFlow's op determinism, for bit-identical reruns.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from skin_lesion.errors import ConfigError
from skin_lesion.io_utils import stderr_captured
from skin_lesion.training.config import PRECISIONS
from skin_lesion.training.multiworker import describe_worker, is_multi_worker, patch_keras

log = logging.getLogger(__name__)

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
#: The CPU flags of oneDNN's AVX512_CORE, the least it runs bfloat16 on.
AVX512_CORE_FLAGS = {"avx512f", "avx512bw", "avx512vl", "avx512dq"}
#: oneDNN's instruction sets (``ONEDNN_MAX_CPU_ISA`` values), oldest first: bfloat16 runs from
#: AVX512_CORE on (emulated), on bfloat16 units from AVX512_CORE_BF16 on.
ONEDNN_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
               "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16")


@dataclass
class DeviceSetup:
    strategy: tf.distribute.Strategy
    policy: str
    gpus: list[str]

    @property
    def strategy_name(self) -> str:
        """The public name (the multi-worker strategy's class is CollectiveAllReduceStrategy)."""
        if isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return "MultiWorkerMirroredStrategy"
        return type(self.strategy).__name__

    def describe(self) -> dict:
        return {
            "strategy": self.strategy_name,
            "replicas": int(self.strategy.num_replicas_in_sync),
            "gpus": self.gpus,
            "precision_policy": self.policy,
            "cpu_count": os.cpu_count(),
            "cpu_bf16": cpu_has_bf16(),
            "tf_config": json.loads(os.environ["TF_CONFIG"]) if os.environ.get("TF_CONFIG") else None,
        }


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags as Linux lists them (empty where unreadable)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()}


def isa_capped_below(isa: str, isa_cap: str | None = None) -> bool:
    """True if ``isa_cap`` (by default ``ONEDNN_MAX_CPU_ISA``) keeps oneDNN below ``isa``."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA", "") if isa_cap is None else isa_cap).upper()
    return cap in ONEDNN_ISAS and ONEDNN_ISAS.index(cap) < ONEDNN_ISAS.index(isa)


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo"), isa_cap: str | None = None) -> bool:
    """True if the CPU has bfloat16 matrix units (read from Linux's CPU flags) that oneDNN may use."""
    return bool(cpu_flags(cpuinfo) & set(BF16_CPU_FLAGS)) and not isa_capped_below("AVX512_CORE_BF16", isa_cap)


def cpu_runs_bf16(cpuinfo: Path = Path("/proc/cpuinfo"), isa_cap: str | None = None) -> bool:
    """True if oneDNN can run bfloat16 on this CPU at all (AVX-512; on AVX2 its kernels fail)."""
    return AVX512_CORE_FLAGS <= cpu_flags(cpuinfo) and not isa_capped_below("AVX512_CORE", isa_cap)


def precision_policy(precision: str, has_gpu: bool, has_bf16_cpu: bool = False) -> str:
    """The Keras dtype policy for a ``--precision`` value."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}; got {precision!r}.")
    if precision != "auto":
        return PRECISIONS[precision]
    if has_gpu:
        return "mixed_float16"
    return "mixed_bfloat16" if has_bf16_cpu else "float32"


def make_strategy(devices: list[str] | None = None) -> tf.distribute.Strategy:
    """Multi-worker from ``TF_CONFIG``; mirrored over several devices; else the default."""
    if os.environ.get("TF_CONFIG"):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        if is_multi_worker(strategy):
            patch_keras()
            log.info("Training as %s", describe_worker(strategy))
        return strategy
    if devices and len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices=devices)
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def precision_reason(precision: str, policy: str) -> str:
    """Why ``auto`` chose a CPU policy, for the log ("" when the user chose it)."""
    if precision != "auto" or policy == "mixed_float16":
        return ""
    if policy == "mixed_bfloat16":
        return " (auto: this CPU has bfloat16 units)"
    if cpu_flags() & set(BF16_CPU_FLAGS):  # it has them, and the cap keeps oneDNN from them
        return f" (auto: ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA')})"
    return ""


def configure_devices(precision: str = "auto", devices: list[str] | None = None,
                      deterministic: bool = False) -> DeviceSetup:
    """Set memory growth, the global precision policy and pick the strategy. Call once, early."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as error:  # already initialised: growth can no longer change
            log.warning("Could not enable memory growth on %s: %s", gpu.name, error)
    policy = precision_policy(precision, bool(gpus), cpu_has_bf16())
    if policy == "mixed_bfloat16" and not gpus and not cpu_runs_bf16():
        raise ConfigError("--precision bfloat16: oneDNN cannot run bfloat16 here (it needs AVX-512, and "
                          f"ONEDNN_MAX_CPU_ISA, {os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')}, at AVX512_CORE "
                          "or above); use --precision float32 or auto.")
    keras.mixed_precision.set_global_policy(policy)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = make_strategy(devices)
    with stderr_captured():  # after the strategy: multi-worker set-up must precede any op
        # oneDNN's once-per-process notice on boolean ops, printed mid-training by the 7-class
        # AUC metrics on CPUs without full AVX-512, is triggered (and caught) here instead.
        tf.transpose(tf.zeros((1, 1), tf.bool))
    reason = precision_reason(precision, policy)
    setup = DeviceSetup(strategy, policy, [gpu.name for gpu in gpus])
    log.info("Devices: %d GPU(s), %s with %d replica(s), precision %s%s%s", len(gpus),
             setup.strategy_name, strategy.num_replicas_in_sync, policy, reason,
             ", deterministic ops" if deterministic else "")
    return setup
