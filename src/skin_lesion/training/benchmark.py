"""Timing real training epochs for ``scripts/bench_training.py``.

Run as ``python -m skin_lesion.training.benchmark SETTINGS_JSON EPOCHS`` in a fresh process per
variant: precision policies and op determinism are process-wide and cannot be undone.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time

import keras
import numpy as np

from skin_lesion.training.config import TrainConfig
from skin_lesion.training.trainer import build_model, prepare


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self.started)


def training_throughput(settings: dict, epochs: int) -> dict:
    """Images/s of ``epochs`` training epochs (median) after one warm-up epoch, from scratch."""
    with tempfile.TemporaryDirectory() as outputs:
        config = TrainConfig(**{"weights": "none", "skip_phase1": True, **settings,
                                "outputs_dir": outputs}).resolved()
        setup, data = prepare(config, None)
        model = build_model(config, data.task, setup, 2, data.steps_per_epoch,
                            data.encoding.width if data.encoding else 0)
        timer = EpochTimer()
        model.fit(data.train_dataset(0, epochs + 1), steps_per_epoch=data.steps_per_epoch,
                  epochs=epochs + 1, class_weight=data.class_weight, callbacks=[timer], verbose=0)
    seconds = float(np.median(timer.seconds[1:]))
    return {"images_per_second": len(data.train_labels) / seconds, "seconds_per_epoch": seconds,
            "policy": setup.policy}


if __name__ == "__main__":
    from skin_lesion import cli

    cli.start_tensorflow()
    print(json.dumps(training_throughput(json.loads(sys.argv[1]), int(sys.argv[2]))))
