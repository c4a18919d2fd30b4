"""Training settings: defaults resolved once, values checked, records read back, devices."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import pytest

from skin_lesion.errors import ConfigError
from skin_lesion.training.config import TrainConfig
from skin_lesion.training.devices import cpu_has_bf16, cpu_runs_bf16, precision_policy
from tests.conftest import REPO


def test_resolved_fills_the_architecture_defaults_and_makes_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(architecture="ResNet50", split_file="s/split.csv", outputs_dir="out").resolved()
    assert config.architecture == "resnet50" and config.img_size == 224 and config.unfreeze_layers == 30
    assert config.learning_rate == 1e-3 and config.fine_tune_learning_rate == pytest.approx(1e-4)
    assert config.split_file == str(tmp_path / "s/split.csv") and config.cache_dir == str(tmp_path / "out/cache")
    assert config.resolved() == config  # resolving twice changes nothing


@pytest.mark.parametrize("settings, message", [
    ({"epochs1": 0, "skip_phase2": True}, "--epochs1 must be at least 1 (use --skip-phase1"),
    ({"skip_phase1": True, "skip_phase2": True}, "leave nothing to train"),
    ({"batch_size": 0}, "--batch-size must be at least 1"),
    ({"dropout": 1.0}, "--dropout must be in [0, 1)"),
    ({"learning_rate": -1.0}, "--learning-rate must be positive"),
    ({"schedule": "step"}, "--schedule must be one of plateau, cosine"),
    ({"warmup_epochs": -1.0}, "--warmup-epochs must be 0 or more"),
])
def test_impossible_settings_name_their_flag(settings, message):
    with pytest.raises(ConfigError) as error:
        TrainConfig(architecture="simple_cnn", weights="none", **settings).resolved()
    assert message in str(error.value)


def test_zero_epochs_are_fine_for_a_skipped_phase():
    config = TrainConfig(architecture="simple_cnn", skip_phase1=True, epochs1=0).resolved()
    assert config.total_epochs() == config.epochs2


def test_a_runs_record_is_a_valid_config_file(tmp_path):
    config = TrainConfig(architecture="simple_cnn", weights="none", img_size=40).resolved()
    record = tmp_path / "training_config.json"
    record.write_text(json.dumps({"architecture": "simple_cnn", "settings": config.as_dict(), "status": "completed"}))
    assert TrainConfig.from_file(record) == config
    assert TrainConfig.from_file(record, {"epochs2": 3}).epochs2 == 3


def test_config_files_with_wrong_types_or_keys_are_refused(tmp_path):
    path = tmp_path / "c.json"
    for values, message in (({"epochs1": 2.5}, "setting epochs1 must be int; got 2.5"),
                            ({"augmentation": "yes"}, 'setting augmentation must be bool; got "yes"'),
                            ({"learning_rate": True}, "setting learning_rate must be float or None"),
                            ({"epochs": 3}, "unknown setting(s) epochs")):
        path.write_text(json.dumps(values))
        with pytest.raises(ConfigError) as error:
            TrainConfig.from_file(path)
        assert message in str(error.value) and str(path) in str(error.value)
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        TrainConfig.from_file(path)
    with pytest.raises(FileNotFoundError, match="--config .*missing.json: no such file"):
        TrainConfig.from_file(tmp_path / "missing.json")


def test_precision_policies():
    assert precision_policy("auto", has_gpu=True) == "mixed_float16"
    assert precision_policy("auto", has_gpu=False, has_bf16_cpu=False) == "float32"
    assert precision_policy("auto", has_gpu=False, has_bf16_cpu=True) == "mixed_bfloat16"
    assert precision_policy("float32", has_gpu=False, has_bf16_cpu=True) == "float32"
    assert precision_policy("float16", has_gpu=False) == "mixed_float16"
    with pytest.raises(ConfigError, match="--precision"):
        precision_policy("float8", has_gpu=False)


def test_bf16_units_are_read_from_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags : fpu sse avx2 avx512f avx512bw avx512vl avx512dq\n")
    assert not cpu_has_bf16(cpuinfo, isa_cap="") and cpu_runs_bf16(cpuinfo, isa_cap="")  # emulated on AVX-512
    cpuinfo.write_text("processor : 0\nflags : fpu avx512f avx512bw avx512vl avx512dq avx512_bf16 amx_tile\n")
    assert cpu_has_bf16(cpuinfo, isa_cap="") and cpu_has_bf16(cpuinfo, isa_cap="AVX512_CORE_AMX")
    assert not cpu_has_bf16(cpuinfo, isa_cap="avx2")  # ONEDNN_MAX_CPU_ISA=AVX2: an older CPU's path
    assert not cpu_runs_bf16(cpuinfo, isa_cap="AVX2") and cpu_runs_bf16(cpuinfo, isa_cap="AVX512_CORE")
    cpuinfo.write_text("processor : 0\nflags : fpu sse avx2 avx512f\n")  # AVX-512 without BW/VL/DQ (Xeon Phi)
    assert not cpu_runs_bf16(cpuinfo, isa_cap="")
    assert not cpu_has_bf16(tmp_path / "missing", isa_cap="")


def test_mixed_precision_model_keeps_float32_preprocessing_and_output():
    from skin_lesion.models.factory import SkinLesionCNN
    from tests.conftest import BINARY_TASK

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = SkinLesionCNN("resnet50", BINARY_TASK, weights="none", img_size=64).build()
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
from skin_lesion.training.devices import configure_devices
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


def test_the_recipes_load_their_notes_are_ignored_and_flags_undo_them():
    from tests.conftest import REPO

    for name in ("cpu_binary", "cpu_multiclass"):
        recipe = TrainConfig.from_file(REPO / "configs" / f"{name}.json").resolved()
        assert recipe.architecture == "vgg_scratch" and recipe.use_metadata and recipe.schedule == "cosine"
        assert recipe.task == name.split("_")[1]
    assert TrainConfig.from_file(REPO / "configs/cpu_binary.json", {"use_metadata": False}).use_metadata is False
    for path in sorted((REPO / "configs").glob("*.json")):
        TrainConfig.from_file(path).resolved()  # every recipe is valid


def test_boolean_settings_have_both_flags():
    import argparse

    from skin_lesion.training.config import add_train_arguments, given_settings

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    assert given_settings(parser.parse_args(["--no-use-metadata", "--augmentation"])) == {
        "use_metadata": False, "augmentation": True}
    assert given_settings(parser.parse_args([])) == {}
