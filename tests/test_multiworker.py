"""Training across processes: two workers on 127.0.0.1 train one model into one run folder,
share each global batch without overlap, and resume together after one of them is killed."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO, SCRIPTS, TRAINED_SETTINGS

pytestmark = pytest.mark.slow


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for probe in sockets:
        probe.bind(("127.0.0.1", 0))
    ports = [probe.getsockname()[1] for probe in sockets]
    for probe in sockets:
        probe.close()
    return ports


def worker_env(ports: list[int], index: int) -> dict:
    cluster = {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
               "task": {"type": "worker", "index": index}}
    return {**os.environ, "TF_CONFIG": json.dumps(cluster), "TF_CPP_MIN_LOG_LEVEL": "2",
            "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}


def start_workers(commands: list[list[str]]) -> list[subprocess.Popen]:
    ports = free_ports(len(commands))
    return [subprocess.Popen(command, cwd=REPO, env=worker_env(ports, index), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for index, command in enumerate(commands)]


def train_command(split: Path, outputs: Path, *extra) -> list[str]:
    """The shared sample run's settings (``TRAINED_SETTINGS``), with ``extra`` flags."""
    return [sys.executable, str(SCRIPTS / "03_train.py"), "--split-file", str(split), "--outputs-dir",
            str(outputs), *map(str, TRAINED_SETTINGS), *map(str, extra)]


@pytest.fixture(scope="module")
def split_file(sample_split) -> Path:
    return sample_split


def epoch_lines(text: str) -> list[str]:
    """The metric part of the epoch lines (the seconds differ between processes)."""
    return [line.rsplit("lr ", 1)[0] for line in text.splitlines() if line.startswith("epoch ")]


def test_two_workers_train_one_model_into_one_run_folder(split_file, trained_run, tmp_path):
    workers = start_workers([train_command(split_file, tmp_path / "out", "--epochs2", 2)] * 2)
    results = [worker.communicate(timeout=600) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], results[1][1][-3000:]
    assert "Training as worker 0 of 2" in results[0][1] and "Training as worker 1 of 2" in results[1][1]
    runs = list((tmp_path / "out/runs").iterdir())
    assert len(runs) == 1 and (tmp_path / "out/latest").resolve() == runs[0].resolve()
    scratch = re.search(r"its copies of the run files go to (\S+) and are removed", results[1][1]).group(1)
    assert not Path(scratch).exists()
    run = runs[0]
    config = json.loads((run / "training_config.json").read_text())
    assert config["devices"]["strategy"] == "MultiWorkerMirroredStrategy" and config["devices"]["replicas"] == 2
    log = pd.read_csv(run / "logs/phase2.csv")
    assert list(log["epoch"]) == [1, 2]
    lines = [epoch_lines(stderr) for _, stderr in results]
    assert lines[0] == lines[1] and len(lines[0]) == 2  # the workers agree on every figure
    model = keras.models.load_model(run / "models/vgg_scratch_best.h5", compile=False)
    assert model.predict(np.zeros((2, 48, 48, 3), "float32"), verbose=0).shape == (2, 1)

    # The shared run trained the same settings in one process: its first epoch saw the same
    # batches from the same weights. Float sums over two workers differ in the last bits, which
    # training amplifies, so the figures agree closely, not exactly, and only at first (0.012
    # apart on an AVX-512 BF16 CPU, whose oneDNN kernels sum in another order).
    single = pd.read_csv(trained_run.run / "logs/phase2.csv").iloc[0]
    assert log["loss"][0] == pytest.approx(single["loss"], abs=0.025)
    assert log["val_loss"][0] == pytest.approx(single["val_loss"], abs=0.05)


SHARDS = """
import json, sys
import numpy as np
from skin_lesion import cli
cli.start_tensorflow()
import tensorflow as tf
from skin_lesion.data.pipeline import load_split_images, make_dataset
from skin_lesion.data.split import read_split
from skin_lesion.training.devices import configure_devices
strategy = configure_devices("float32").strategy
images = load_split_images(read_split(sys.argv[1]), "train", (16, 16), sys.argv[2])
rows = np.arange(len(images.rows), dtype=np.float32)[:, None]
dataset = make_dataset(images, rows, 32, training=True, seed=7, epochs=(0, 2))
seen = [np.concatenate(strategy.experimental_local_results(targets)).ravel().astype(int).tolist()
        for _, targets in strategy.experimental_distribute_dataset(dataset)]
print(json.dumps(seen))
"""


def test_each_global_batch_is_split_between_the_workers_without_overlap(split_file, tmp_path):
    code = [sys.executable, "-c", SHARDS, str(split_file), str(tmp_path / "cache")]
    workers = start_workers([code, code])
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs[1][1][-2000:]
    per_worker = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]
    from skin_lesion.data.pipeline import load_split_images, make_dataset
    from skin_lesion.data.split import read_split

    images = load_split_images(read_split(split_file), "train", (16, 16), tmp_path / "cache")
    rows = np.arange(len(images.rows), dtype=np.float32)[:, None]
    single = [targets.numpy().ravel().astype(int).tolist()
              for _, targets in make_dataset(images, rows, 32, training=True, seed=7, epochs=(0, 2))]
    assert len(per_worker[0]) == len(per_worker[1]) == len(single)
    for step, batch in enumerate(single):
        first, second = per_worker[0][step], per_worker[1][step]
        assert not set(first) & set(second), f"step {step}: both workers trained on the same images"
        assert sorted(first + second) == sorted(batch), f"step {step}: not the global batch"


KILLED_WORKER = """
import os, signal, sys, keras
from skin_lesion import cli
cli.setup_logging()
cli.start_tensorflow()
from skin_lesion.training.config import TrainConfig
from skin_lesion.training.trainer import train

class DieAfterEpoch1(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == 1:
            os.kill(os.getpid(), signal.SIGKILL)

train(TrainConfig(architecture="vgg_scratch", weights="none", img_size=48, skip_phase1=True, batch_size=32,
                  precision="float32", early_stopping_patience=6, dropout=0.0, epochs2=2, split_file=sys.argv[1],
                  outputs_dir=sys.argv[2]),
      extra_callbacks=[DieAfterEpoch1()])
"""


def test_a_killed_worker_is_resumed_with_the_others(split_file, tmp_path):
    outputs = tmp_path / "out"
    chief, worker = start_workers([train_command(split_file, outputs, "--epochs2", 2),
                                   [sys.executable, "-c", KILLED_WORKER, str(split_file), str(outputs)]])
    worker.communicate(timeout=600)
    assert worker.returncode == -signal.SIGKILL
    time.sleep(2)  # the chief is now blocked on the dead worker: the whole cluster restarts
    chief.kill()
    chief.communicate()
    run = next((outputs / "runs").iterdir())
    assert json.loads((run / "training_config.json").read_text())["status"] == "running"

    resumed = start_workers([[sys.executable, str(SCRIPTS / "03_train.py"), "--resume", str(run)]] * 2)
    results = [process.communicate(timeout=600) for process in resumed]
    assert [process.returncode for process in resumed] == [0, 0], results[1][1][-3000:]
    assert all("Resuming phase 2 at epoch" in stderr for _, stderr in results)
    log = pd.read_csv(run / "logs/phase2.csv")
    assert list(log["epoch"]) == [1, 2]
    config = json.loads((run / "training_config.json").read_text())
    assert config["status"] == "completed" and len(list((outputs / "runs").iterdir())) == 1
