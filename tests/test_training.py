"""End-to-end training on the sample dataset: run folder, portability, resume, devices."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import REPO, SCRIPTS, run_script

pytestmark = pytest.mark.slow
SIZE = 48


@pytest.fixture(scope="module")
def split_file(sample_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("split")
    run_script("02_prepare_split.py", "--data-dir", sample_dir, "--out-dir", out)
    return out / "split.csv"


def train(split_file: Path, outputs: Path, *args) -> subprocess.CompletedProcess:
    return run_script("03_train.py", "--split-file", split_file, "--outputs-dir", outputs,
                      "--img-size", SIZE, "--batch-size", 32, *args)


@pytest.fixture(scope="module")
def mobilenet_weights(tmp_path_factory) -> Path:
    """Stands in for a downloaded no-top weights file (no network here)."""
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2_notop.weights.h5"
    keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3)).save_weights(path)
    return path


@pytest.fixture(scope="module")
def binary_run(split_file, mobilenet_weights, tmp_path_factory) -> Path:
    outputs = tmp_path_factory.mktemp("outputs")
    train(split_file, outputs, "--architecture", "MobileNetV2", "--weights", mobilenet_weights,
          "--epochs1", 2, "--epochs2", 2, "--unfreeze-layers", 20)
    return outputs


def test_binary_run_folder_is_complete(binary_run, split_file):
    latest = binary_run / "latest"
    assert latest.is_symlink()
    run = latest.resolve()
    assert run.parent == (binary_run / "runs").resolve() and run.name.endswith("_mobilenet_v2_binary")
    for name in ("models/mobilenet_v2_best.h5", "models/mobilenet_v2_final.h5", "training_config.json",
                 "val_probs.npz", "logs/phase1.csv", "logs/phase2.csv", "plots/training_history.png"):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    config = json.loads((run / "training_config.json").read_text())
    assert config["status"] == "completed" and config["task"] == "binary"
    assert config["settings"]["epochs1"] == 2 and config["settings"]["learning_rate"] == 1e-3
    assert config["settings"]["fine_tune_learning_rate"] == pytest.approx(1e-4)
    assert config["preprocessing"]["matches"] == "keras.applications.mobilenet_v2.preprocess_input"
    import hashlib
    assert config["split_sha256"] == hashlib.sha256(split_file.read_bytes()).hexdigest()
    assert {"tensorflow", "keras", "numpy"} <= set(config["libraries"])
    assert config["devices"]["precision_policy"] == "float32" and config["devices"]["replicas"] == 1
    assert config["seeds"]["tensorflow"] == 42
    assert set(config["class_weights"]) == {"benign", "malignant"}
    assert config["class_weights"]["malignant"] > 1 > config["class_weights"]["benign"]
    assert config["trainable_weights"]["phase2"] > config["trainable_weights"]["phase1"]
    phase1, phase2 = (pd.read_csv(run / f"logs/phase{p}.csv") for p in (1, 2))
    assert list(phase1["epoch"]) == [0, 1] and list(phase2["epoch"]) == [2, 3]
    for column in ("loss", "val_loss", "val_roc_auc", "val_pr_auc", "val_sensitivity",
                   "val_specificity", "learning_rate"):
        assert column in phase2 and phase2[column].notna().all(), column
    assert phase2["learning_rate"].iloc[0] == pytest.approx(1e-4)
    probs = np.load(run / "val_probs.npz")
    split = pd.read_csv(split_file)
    val = split[split["split"] == "val"]
    assert list(probs["image_ids"]) == list(val["image_id"])
    np.testing.assert_array_equal(probs["labels"], val["label"])
    assert probs["probabilities"].shape == (len(val),)
    assert ((probs["probabilities"] >= 0) & (probs["probabilities"] <= 1)).all()
    events = list((run / "logs/tensorboard").rglob("events.out.tfevents*"))
    assert {p.parent.name for p in events} >= {"train", "validation", "confusion_matrix"}


def test_phase2_unfreezes_top_layers_but_not_batch_norm(binary_run):
    model = keras.models.load_model(binary_run / "latest/models/mobilenet_v2_final.h5")
    backbone = model.get_layer("backbone")
    trainable = [layer for layer in backbone.layers if layer.trainable and layer.weights]
    assert trainable and all(not isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)
    assert all(layer in backbone.layers[-20:] for layer in trainable)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in backbone.layers[-20:])


def test_best_model_loads_in_a_fresh_process_and_predicts_raw_pixels(binary_run, sample_dir, tmp_path):
    image_path = sorted((sample_dir / "HAM10000_images_part_1").iterdir())[0]
    pixels = np.asarray(Image.open(image_path).convert("RGB").resize((SIZE, SIZE)), np.uint8)
    np.save(tmp_path / "pixels.npy", pixels[None])
    code = ("import sys, numpy as np, keras\n"
            f"model = keras.models.load_model({str(binary_run / 'latest/models/mobilenet_v2_best.h5')!r})\n"
            f"p = model.predict(np.load({str(tmp_path / 'pixels.npy')!r}), verbose=0)\n"
            "assert p.shape == (1, 1) and 0 <= p[0, 0] <= 1, p\n"
            "assert 'src' not in sys.modules\nprint('probability', float(p[0, 0]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "probability" in result.stdout


def test_multiclass_run_with_config_file_and_command_line_override(split_file, tmp_path):
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"architecture": "simple_cnn", "task": "multiclass", "weights": "none",
                                  "epochs1": 1, "epochs2": 5, "seed": 3}))
    train(split_file, tmp_path / "out", "--config", config, "--epochs2", 1, "--no-augmentation")
    run = (tmp_path / "out/latest").resolve()
    settings = json.loads((run / "training_config.json").read_text())["settings"]
    assert settings["epochs2"] == 1 and settings["seed"] == 3 and settings["augmentation"] is False
    assert settings["task"] == "multiclass" and settings["unfreeze_layers"] == -1
    probs = np.load(run / "val_probs.npz")
    assert probs["probabilities"].shape[1] == 7 and str(probs["task"]) == "multiclass"
    np.testing.assert_allclose(probs["probabilities"].sum(axis=1), 1, atol=1e-4)
    assert len(pd.read_csv(run / "logs/phase1.csv")) == 1 and len(pd.read_csv(run / "logs/phase2.csv")) == 1
    model = keras.models.load_model(run / "models/simple_cnn_best.h5")
    assert model.output_shape == (None, 7)


def test_bad_config_key_and_bad_flags_are_refused(split_file, tmp_path):
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"epochs": 3}))
    result = run_script("03_train.py", "--config", config, "--split-file", split_file, check=False)
    assert result.returncode == 2 and "unknown setting(s) epochs" in result.stderr
    result = run_script("03_train.py", "--architecture", "alexnet", "--split-file", split_file, check=False)
    assert result.returncode == 2 and "Unknown architecture 'alexnet'" in result.stderr
    result = run_script("03_train.py", "--split-file", tmp_path / "none.csv", "--weights", "none",
                        "--architecture", "simple_cnn", check=False)
    assert result.returncode == 2 and "02_prepare_split.py" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_sigkill_then_resume_loses_no_completed_epoch(split_file, tmp_path):
    outputs = tmp_path / "out"
    command = [sys.executable, str(SCRIPTS / "03_train.py"), "--split-file", str(split_file),
               "--outputs-dir", str(outputs), "--img-size", str(SIZE), "--architecture", "simple_cnn",
               "--weights", "none", "--skip-phase1", "--epochs2", "5", "--batch-size", "32",
               "--early-stopping-patience", "10"]
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    backup = None
    while time.time() < deadline:
        found = list(outputs.glob("runs/*/checkpoints/phase2_backup/training_metadata.json"))
        if found and json.loads(found[0].read_text())["epoch"] >= 2:
            backup = found[0]
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert backup is not None, "training did not complete two epochs in time"
    run = backup.parents[2]
    logged_before = pd.read_csv(run / "logs/phase2.csv")
    completed = json.loads(backup.read_text())["epoch"]
    assert completed >= 2 and not (run / "models/simple_cnn_final.h5").exists()

    result = run_script("03_train.py", "--resume", run)
    assert f"Resuming phase 2 at epoch {completed + 1}" in result.stderr
    log = pd.read_csv(run / "logs/phase2.csv")
    assert list(log["epoch"]) == [0, 1, 2, 3, 4]
    kept = logged_before[logged_before["epoch"] < completed]
    pd.testing.assert_frame_equal(log.iloc[: len(kept)].reset_index(drop=True), kept.reset_index(drop=True))
    config = json.loads((run / "training_config.json").read_text())
    assert config["status"] == "completed" and config["epochs_completed"] == 5
    assert (outputs / "latest").resolve() == run.resolve()


MIRRORED = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from src.training import TrainConfig, train
run = train(TrainConfig(architecture="simple_cnn", weights="none", split_file=sys.argv[1],
                        outputs_dir=sys.argv[2], img_size=48, epochs1=1, epochs2=1, batch_size=32),
            devices=["/cpu:0", "/cpu:1"])
print(json.dumps(json.loads(run.config.read_text())["devices"]))
"""


def test_mirrored_strategy_over_two_logical_cpus(split_file, tmp_path):
    result = subprocess.run([sys.executable, "-c", MIRRORED, str(split_file), str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    devices = json.loads(result.stdout.strip().splitlines()[-1])
    assert devices["strategy"] == "MirroredStrategy" and devices["replicas"] == 2
    assert (tmp_path / "latest/models/simple_cnn_best.h5").is_file()


def test_precision_policies():
    from src.devices import precision_policy

    assert precision_policy("auto", has_gpu=True) == "mixed_float16"
    assert precision_policy("auto", has_gpu=False) == "float32"
    assert precision_policy("bfloat16", has_gpu=False) == "mixed_bfloat16"
    assert precision_policy("float16", has_gpu=False) == "mixed_float16"
    with pytest.raises(ValueError, match="--precision"):
        precision_policy("float8", has_gpu=False)


def test_mixed_precision_model_keeps_float32_preprocessing_and_output():
    from src.model import SkinLesionCNN

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = SkinLesionCNN("resnet50", weights="none", img_size=64).build()
        assert model.output.dtype == "float32"
        assert model.get_layer("preprocess_caffe_bgr_mean").compute_dtype == "float32"
        assert model.get_layer("backbone").layers[2].compute_dtype == "float16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


MULTI_WORKER = """
import json, os, socket
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}"]},
                                      "task": {"type": "worker", "index": 0}})
from src.devices import configure_devices
import tensorflow as tf
setup = configure_devices("float32")
described = setup.describe()
described["is_multi_worker"] = isinstance(setup.strategy, tf.distribute.MultiWorkerMirroredStrategy)
print(json.dumps(described))
"""


def test_tf_config_selects_multi_worker_strategy():
    result = subprocess.run([sys.executable, "-c", MULTI_WORKER], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    described = json.loads(result.stdout.strip().splitlines()[-1])
    assert described["is_multi_worker"] and described["replicas"] == 1
    assert described["tf_config"]["task"] == {"type": "worker", "index": 0}
