"""How fast each exported format scores on this machine's CPU, beside the run's ``.h5``.

Per format: the model's size on disk, the seconds a fresh Python process takes to import its
runtime, load it and score one image (what one ``06_infer.py`` call waits for, decoding aside),
the seconds to load it into a running process, the latency of one image (median of repeated calls) and the
throughput of batches. Images are random pixels at the model's size: speed does not depend on
what they show. Decoding is not included; it is the same for every format.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from skin_lesion.export.catalogue import FORMATS
from skin_lesion.export.exporter import size_of
from skin_lesion.export.runtimes import open_runner
from skin_lesion.layout import RunLayout


def models_of(run: RunLayout) -> dict[str, Path]:
    """The run's ``.h5`` and every format exported from it."""
    exported = {name: run.export_format(name) / spec.file_name for name, spec in FORMATS.items()}
    return {"h5": run.best_model, **{name: path for name, path in exported.items() if path.exists()}}


#: A fresh interpreter that loads a model and scores one black image.
COLD_START = ("import sys, numpy as np; from skin_lesion.export.runtimes import open_runner; "
              "runner = open_runner(sys.argv[1]); "
              "runner(np.zeros((1, runner.img_size, runner.img_size, 3), np.uint8), "
              "np.zeros((1, runner.metadata_width), np.float32) if runner.metadata_width else None)")


def cold_start(path: Path) -> float:
    """Seconds from a fresh interpreter to one image scored."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", COLD_START, str(path)], check=True, capture_output=True)
    return time.perf_counter() - start


def measure(path: Path, batch_size: int, repeats: int) -> dict:
    """Size, load seconds, one-image latency (ms) and batch throughput (images/s) of one model."""
    start = time.perf_counter()
    runner = open_runner(path)
    loaded = time.perf_counter() - start
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch_size, runner.img_size, runner.img_size, 3), dtype=np.uint8)
    metadata = np.zeros((batch_size, runner.metadata_width), np.float32) if runner.metadata_width else None

    def timed(count: int) -> float:
        begin = time.perf_counter()
        runner(images[:count], None if metadata is None else metadata[:count])
        return time.perf_counter() - begin

    timed(1), timed(batch_size)  # warm-up: first calls allocate and compile
    latency = statistics.median(timed(1) for _ in range(repeats))
    batch = statistics.median(timed(batch_size) for _ in range(max(3, repeats // 5)))
    return {"size_mb": size_of(path) / 1e6, "cold_s": cold_start(path), "load_s": loaded, "latency_ms": 1000 * latency,
            "images_per_s": batch_size / batch}


def table(results: dict[str, dict], batch_size: int) -> str:
    """The results as a Markdown table, as the README shows it."""
    lines = [f"| Format | Size (MB) | Fresh process, one image (s) | Load (s) | One image (ms) "
             f"| Batch of {batch_size} (images/s) |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {name} | {r['size_mb']:.1f} | {r['cold_s']:.1f} | {r['load_s']:.2f} | {r['latency_ms']:.1f} | {r['images_per_s']:.0f} |"
              for name, r in results.items()]
    return "\n".join(lines)
