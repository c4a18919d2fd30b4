"""End-to-end training on the sample dataset: run folder, records, resume, reproduction, devices."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import REPO, run_script

pytestmark = pytest.mark.slow
SIZE = 48
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def split_file(sample_split) -> Path:
    return sample_split


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
def binary_run(split_file, mobilenet_weights, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    outputs = tmp_path_factory.mktemp("outputs")
    result = train(split_file, outputs, "--architecture", "MobileNetV2", "--weights", mobilenet_weights,
                   "--epochs1", 2, "--epochs2", 2, "--unfreeze-layers", 20, "--precision", "float32")
    return outputs, result


def test_binary_run_folder_is_complete(binary_run, split_file):
    outputs, _ = binary_run
    latest = outputs / "latest"
    assert latest.is_symlink()
    run = latest.resolve()
    assert run.parent == (outputs / "runs").resolve() and run.name.endswith("_mobilenet_v2_binary")
    for name in ("models/mobilenet_v2_best.h5", "training_config.json", "run.log", "val_probs.npz",
                 "calibration.json", "logs/phase1.csv", "logs/phase2.csv", "plots/training_history.png"):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    assert not list(run.rglob("*final*")), "the best model is the run's one model"
    config = json.loads((run / "training_config.json").read_text())
    assert config["status"] == "completed" and config["task"] == "binary"
    settings = config["settings"]
    assert settings["epochs1"] == 2 and settings["learning_rate"] == 1e-3
    assert settings["fine_tune_learning_rate"] == pytest.approx(1e-4)
    assert all(Path(settings[key]).is_absolute() for key in ("split_file", "outputs_dir", "cache_dir"))
    assert Path(config["split_file"]).is_absolute()
    assert config["preprocessing"]["matches"] == "keras.applications.mobilenet_v2.preprocess_input"
    assert config["split_sha256"] == hashlib.sha256(split_file.read_bytes()).hexdigest()
    provenance = config["provenance"]
    assert provenance["command"][0] == "03_train.py" and "--epochs1" in provenance["command"]
    assert {"tensorflow", "keras", "numpy"} <= set(provenance["libraries"])
    assert config["devices"]["precision_policy"] == "float32" and config["devices"]["replicas"] == 1
    assert config["class_weights"]["malignant"] > 1 > config["class_weights"]["benign"]
    assert config["trainable_weights"]["phase2"] > config["trainable_weights"]["phase1"]
    phase1, phase2 = (pd.read_csv(run / f"logs/phase{p}.csv") for p in (1, 2))
    assert list(phase1["epoch"]) == [1, 2] and list(phase2["epoch"]) == [3, 4]
    for column in ("loss", "val_loss", "val_roc_auc", "val_pr_auc", "val_sensitivity",
                   "val_specificity", "learning_rate", "seconds"):
        assert column in phase2 and phase2[column].notna().all(), column
    assert not {"precision", "recall", "val_recall"} & set(phase2.columns)
    assert phase2["learning_rate"].iloc[0] == pytest.approx(1e-4)
    best = pd.concat([phase1, phase2]).set_index("epoch")["val_pr_auc"]
    assert config["best_epoch"] == best.idxmax() and config["best"]["val_pr_auc"] == pytest.approx(best.max())
    probs = np.load(run / "val_probs.npz")
    split = pd.read_csv(split_file)
    val = split[split["split"] == "val"]
    assert list(probs["image_ids"]) == list(val["image_id"])
    np.testing.assert_array_equal(probs["labels"], val["label"])
    assert probs["probabilities"].shape == (len(val),)


def test_console_shows_one_readable_line_per_epoch_and_run_log_keeps_it(binary_run):
    outputs, result = binary_run
    lines = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/4", "2/4", "3/4", "4/4"]
    assert all(len(line) < 160 and "ROC-AUC" in line and "sens" in line for line in lines)
    noise = ("absl", "oneDNN", "cuInit", "val_recall", "Epoch 1/")
    assert not [word for word in noise if word in result.stderr + result.stdout]
    run_log = ((outputs / "latest").resolve() / "run.log").read_text()
    for line in lines + [line for line in result.stderr.splitlines() if line.startswith("Run complete")]:
        assert line in run_log
    # Between the last epoch and "Run complete" the console says what the run is doing.
    after = run_log.split(lines[-1], 1)[1].split("Run complete", 1)[0]
    assert "Scoring the" in after and "validation images" in after and "Calibration fitted (platt)" in after
    assert "out-of-distribution flag" in after and "Writing the history plot" in after


def test_tensorboard_steps_count_epochs_from_one_with_the_epochs_learning_rate(binary_run):
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    outputs, _ = binary_run
    run = (outputs / "latest").resolve()

    def steps(folder: str, tag: str) -> dict[int, float]:
        events = EventAccumulator(str(run / "logs/tensorboard" / run.name / folder),
                                  size_guidance={"tensors": 0}).Reload()
        return {event.step: tf.make_ndarray(event.tensor_proto) for event in events.Tensors(tag)}

    rates = steps("train", "epoch_learning_rate")
    logged = pd.concat([pd.read_csv(run / f"logs/phase{p}.csv") for p in (1, 2)])
    assert sorted(rates) == [1, 2, 3, 4]
    for row in logged.itertuples():
        assert float(rates[row.epoch]) == pytest.approx(row.learning_rate)
    assert sorted(steps("validation", "epoch_pr_auc")) == [1, 2, 3, 4]
    assert sorted(steps("validation", "confusion_matrix")) == [1, 2, 3, 4]


def test_tensorboard_hparams_hold_the_settings_and_final_metrics(binary_run):
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    outputs, _ = binary_run
    run = (outputs / "latest").resolve()
    events = EventAccumulator(str(run / "logs/tensorboard" / run.name), size_guidance={"tensors": 0}).Reload()
    content = next(iter(events.PluginTagToContent("hparams").values()))
    session = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert session.group_name == run.name
    assert session.hparams["architecture"].string_value == "mobilenet_v2"
    assert session.hparams["epochs1"].number_value == 2 and "split_file" not in session.hparams
    config = json.loads((run / "training_config.json").read_text())
    final = {tag: float(tf.make_ndarray(events.Tensors(tag)[0].tensor_proto))
             for tag in events.Tags()["tensors"] if tag.startswith("final/")}
    assert final["final/val_pr_auc"] == pytest.approx(config["best"]["val_pr_auc"])
    assert final["final/best_epoch"] == config["best_epoch"]


def hparams_tab(logdir: Path) -> dict[str, dict[tuple[str, str], float]]:
    """What TensorBoard's HPARAMS tab shows when pointed at ``logdir``: session group name ->
    (metric group, tag) -> value, read by the plugin's own backend."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    backend = backend_context.Context(base_plugin.TBContext(logdir=str(logdir), multiplexer=multiplexer,
                                                            data_provider=provider))
    request = api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=100,
                                               allowed_statuses=list(api_pb2.Status.values()))
    groups = list_session_groups.Handler(context.RequestContext(), backend, "", request).run().session_groups
    return {group.name: {(value.name.group, value.name.tag): value.value for value in group.metric_values}
            for group in groups}


def test_tensorboard_hparams_show_the_metrics_from_one_run_or_from_the_runs_folder(binary_run):
    outputs, _ = binary_run
    run = (outputs / "latest").resolve()
    best = json.loads((run / "training_config.json").read_text())["best"]
    for logdir in (run / "logs/tensorboard", outputs / "runs", outputs):
        metrics = hparams_tab(logdir)[run.name]
        assert metrics[("", "final/val_pr_auc")] == pytest.approx(best["val_pr_auc"]), logdir
        assert {("train", "epoch_loss"), ("validation", "epoch_pr_auc")} <= set(metrics), logdir


def test_run_files_are_readable_by_the_group_and_others(binary_run):
    outputs, _ = binary_run
    run = (outputs / "latest").resolve()
    for path in [run / "models/mobilenet_v2_best.h5", run / "training_config.json", run / "val_probs.npz",
                 run / "plots/training_history.png", run / "calibration.json"]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, path


def test_best_model_loads_in_a_fresh_process_and_predicts_raw_pixels(binary_run, sample_dir, tmp_path):
    outputs, _ = binary_run
    image_path = sorted((sample_dir / "HAM10000_images_part_1").iterdir())[0]
    pixels = np.asarray(Image.open(image_path).convert("RGB").resize((SIZE, SIZE)), np.uint8)
    np.save(tmp_path / "pixels.npy", pixels[None])
    code = ("import sys, numpy as np, keras\n"
            f"model = keras.models.load_model({str(outputs / 'latest/models/mobilenet_v2_best.h5')!r})\n"
            f"p = model.predict(np.load({str(tmp_path / 'pixels.npy')!r}), verbose=0)\n"
            "assert p.shape == (1, 1) and 0 <= p[0, 0] <= 1, p\n"
            "assert 'skin_lesion' not in sys.modules\nprint('probability', float(p[0, 0]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "probability" in result.stdout


def test_multiclass_run_with_config_file_and_command_line_override(split_file, tmp_path):
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"architecture": "simple_cnn", "task": "multiclass", "weights": "none",
                                  "epochs1": 1, "epochs2": 5, "seed": 3, "schedule": "cosine",
                                  "label_smoothing": 0.1}))
    train(split_file, tmp_path / "out", "--config", config, "--epochs2", 1, "--no-augmentation")
    run = (tmp_path / "out/latest").resolve()
    settings = json.loads((run / "training_config.json").read_text())["settings"]
    assert settings["epochs2"] == 1 and settings["seed"] == 3 and settings["augmentation"] is False
    assert settings["task"] == "multiclass" and settings["unfreeze_layers"] == -1
    probs = np.load(run / "val_probs.npz")
    assert probs["probabilities"].shape[1] == 7 and str(probs["task"]) == "multiclass"
    np.testing.assert_allclose(probs["probabilities"].sum(axis=1), 1, atol=1e-4)
    assert json.loads((run / "calibration.json").read_text())["method"] == "bias_temperature"
    model = keras.models.load_model(run / "models/simple_cnn_best.h5")
    assert model.output_shape == (None, 7)


def test_bad_config_key_and_bad_flags_are_refused(split_file, tmp_path):
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"epochs": 3}))
    result = run_script("03_train.py", "--config", config, "--split-file", split_file, check=False)
    assert result.returncode == 2 and "unknown setting(s) epochs" in result.stderr
    config.write_text(json.dumps({"epochs1": "five"}))
    result = run_script("03_train.py", "--config", config, "--split-file", split_file, check=False)
    assert result.returncode == 2 and 'setting epochs1 must be int; got "five"' in result.stderr
    result = run_script("03_train.py", "--architecture", "alexnet", "--split-file", split_file, check=False)
    assert result.returncode == 2 and "Unknown architecture 'alexnet'" in result.stderr
    result = run_script("03_train.py", "--split-file", tmp_path / "none.csv", "--weights", "none",
                        "--architecture", "simple_cnn", "--outputs-dir", tmp_path, check=False)
    assert result.returncode == 2 and "02_prepare_split.py" in result.stderr
    result = run_script("03_train.py", "--epochs1", 0, "--skip-phase2", "--split-file", split_file,
                        "--outputs-dir", tmp_path, check=False)
    assert result.returncode == 2 and "--epochs1 must be at least 1 (use --skip-phase1" in result.stderr
    result = run_script("03_train.py", "--task", "multiclass", "--calibration", "platt", "--split-file", split_file,
                        "--outputs-dir", tmp_path, check=False)
    assert result.returncode == 2 and "--calibration platt is for binary models, this run is multiclass" in result.stderr
    assert not (tmp_path / "runs").exists()



def test_seeds_train_the_same_settings_once_per_seed(split_file, tmp_path):
    result = run_script("03_train.py", "--split-file", split_file, "--outputs-dir", tmp_path, "--architecture",
                        "simple_cnn", "--weights", "none", "--img-size", 32, "--skip-phase1", "--epochs2", 1,
                        "--seeds", 0, 1)
    records = [json.loads(path.read_text()) for path in sorted((tmp_path / "runs").glob("*/training_config.json"))]
    assert sorted(record["settings"]["seed"] for record in records) == [0, 1]
    assert all(record["status"] == "completed" for record in records)
    assert [{**record["settings"], "seed": None} for record in records[1:]] == \
        [{**records[0]["settings"], "seed": None}]
    assert sorted(record["seeds"]["tensorflow"] for record in records) == [0, 1]
    assert "Seed 1 of 2: --seed 0" in result.stderr and "Seed 2 of 2: --seed 1" in result.stderr
    assert result.stderr.index("Seed 2 of 2") > result.stderr.index("Run complete")


def test_seeds_refuse_seed_resume_and_repeats_in_one_line(split_file, tmp_path):
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / "training_config.json").write_text(json.dumps({"architecture": "simple_cnn", "status": "running"}))
    settings = ["--split-file", split_file, "--outputs-dir", tmp_path, "--architecture", "simple_cnn"]
    for flags, message in (([*settings, "--seeds", 0, 1, "--seed", 3], "--seeds and --seed together"),
                           (["--resume", stopped, "--seeds", 0, 1], "it cannot take --seeds."),
                           ([*settings, "--seeds", 2, 0, 2], "--seeds lists 2 more than once"),
                           ([*settings, "--seeds", 0, -1], "--seed must be in [0, 2**32); got -1")):
        result = run_script("03_train.py", *flags, check=False)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_failing_seed_says_which_and_stops_the_others(monkeypatch, caplog):
    from skin_lesion.training import trainer
    from skin_lesion.training.config import TrainConfig, one_per_seed

    trained = []

    def fake_train(config):
        if config.seed == 5:
            raise RuntimeError("out of memory")
        trained.append(config.seed)

    monkeypatch.setattr(trainer, "train", fake_train)
    with pytest.raises(RuntimeError, match="out of memory"):
        trainer.train_seeds(one_per_seed(TrainConfig(architecture="simple_cnn").resolved(), [4, 5, 6], {}))
    assert trained == [4]
    assert "Seed 2 of 3 (--seed 5) did not complete; finished: 4; not started: 6." in caplog.text


TRAIN_ONE = """
import os, signal, sys, keras
from skin_lesion import cli
from skin_lesion.training.config import TrainConfig
from skin_lesion.training.trainer import train

class KillAfter(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)

cli.setup_logging()
train(TrainConfig(architecture="simple_cnn", weights="none", split_file=sys.argv[1], outputs_dir=sys.argv[2],
                  img_size=32, batch_size=32, skip_phase1=True, epochs2=7, early_stopping_patience=3,
                  fine_tune_learning_rate=5e-3,
                  lr_patience=1, precision="float32", deterministic=True),
      extra_callbacks=[KillAfter()])
"""


def test_a_killed_and_resumed_run_equals_the_uninterrupted_run_and_a_record_trains_it_again(split_file, tmp_path):
    def start(outputs: Path, kill_after: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", TRAIN_ONE, str(split_file), str(outputs), str(kill_after)],
                              cwd=REPO, env=ENV, capture_output=True, text=True)

    whole = start(tmp_path / "whole", kill_after=0)
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = start(tmp_path / "killed", kill_after=3)
    assert killed.returncode == -9, killed.stderr[-2000:]
    run = next((tmp_path / "killed/runs").iterdir())
    assert list(pd.read_csv(run / "logs/phase2.csv")["epoch"]) == [1, 2, 3]
    assert not (tmp_path / "killed/latest").exists()

    refused = run_script("03_train.py", "--resume", run, "--epochs2", 9, check=False)
    assert refused.returncode == 2 and "cannot take --epochs2" in refused.stderr
    resumed = run_script("03_train.py", "--resume", run)
    assert "Resuming phase 2 at epoch 4" in resumed.stderr
    assert "Restored the early-stopping and learning-rate counters of epoch 3" in resumed.stderr
    assert json.loads((run / "training_config.json").read_text())["status"] == "completed"

    reference = (tmp_path / "whole/latest").resolve()
    logs = [pd.read_csv(folder / "logs/phase2.csv").drop(columns="seconds") for folder in (reference, run)]
    # Same epochs, same learning-rate halvings, same early stop: the counters and the data order
    # carried over the kill.
    assert logs[0]["learning_rate"].nunique() > 1, "the plateau schedule never acted; the test would prove little"
    pd.testing.assert_frame_equal(logs[0], logs[1])
    np.testing.assert_array_equal(np.load(reference / "val_probs.npz")["probabilities"],
                                  np.load(run / "val_probs.npz")["probabilities"])

    # The uninterrupted run trained with --deterministic: its own record trains it again, bit for bit.
    run_script("03_train.py", "--config", reference / "training_config.json")
    again = (tmp_path / "whole/latest").resolve()
    assert again != reference
    records = [json.loads((folder / "training_config.json").read_text()) for folder in (reference, again)]
    assert records[0]["settings"] == records[1]["settings"]
    assert records[1]["provenance"]["command"][1:] == ["--config", str(reference / "training_config.json")]
    pd.testing.assert_frame_equal(pd.read_csv(again / "logs/phase2.csv").drop(columns="seconds"), logs[0])
    np.testing.assert_array_equal(np.load(reference / "val_probs.npz")["probabilities"],
                                  np.load(again / "val_probs.npz")["probabilities"])


NAN_METRICS = """
import sys, keras
from skin_lesion import cli
keras.metrics.AUC.result = lambda self: keras.ops.convert_to_tensor(float("nan"))
from skin_lesion.training.config import TrainConfig
from skin_lesion.training.trainer import train
cli.setup_logging()
train(TrainConfig(architecture="simple_cnn", weights="none", split_file=sys.argv[1], outputs_dir=sys.argv[2],
                  img_size=32, batch_size=64, skip_phase1=True, epochs2=2))
"""


def test_a_run_whose_monitor_is_always_nan_still_completes(split_file, tmp_path):
    result = subprocess.run([sys.executable, "-c", NAN_METRICS, str(split_file), str(tmp_path)],
                            cwd=REPO, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "never improved" in result.stderr
    run = (tmp_path / "latest").resolve()
    config = json.loads((run / "training_config.json").read_text())
    assert config["status"] == "completed" and config["best_epoch"] == 2
    assert (run / "models/simple_cnn_best.h5").is_file() and (run / "plots/training_history.png").is_file()


MIRRORED = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from skin_lesion.training.config import TrainConfig
from skin_lesion.training.trainer import train
run = train(TrainConfig(architecture="simple_cnn", weights="none", split_file=sys.argv[1],
                        outputs_dir=sys.argv[2], img_size=48, epochs1=1, epochs2=1, batch_size=32),
            devices=["/cpu:0", "/cpu:1"])
print(json.dumps(json.loads(run.config.read_text())["devices"]))
"""


def test_mirrored_strategy_over_two_logical_cpus(split_file, tmp_path):
    result = subprocess.run([sys.executable, "-c", MIRRORED, str(split_file), str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    devices = json.loads(result.stdout.strip().splitlines()[-1])
    assert devices["strategy"] == "MirroredStrategy" and devices["replicas"] == 2
    assert (tmp_path / "latest/models/simple_cnn_best.h5").is_file()


@pytest.mark.parametrize("recipe", ["cpu_binary", "cpu_multiclass"])
def test_the_cpu_recipes_run_an_epoch(recipe, split_file, tmp_path):
    recipe_file = REPO / "configs" / f"{recipe}.json"
    run_script("03_train.py", "--config", recipe_file, "--split-file", split_file, "--outputs-dir", tmp_path,
               "--epochs2", 1)
    record = json.loads(((tmp_path / "latest").resolve() / "training_config.json").read_text())
    assert record["status"] == "completed" and record["task"] == recipe.split("_")[1]
    settings = {key: value for key, value in json.loads(recipe_file.read_text()).items() if key[0] != "_"}
    assert {key: record["settings"][key] for key in settings} == {**settings, "epochs2": 1}
    assert record["metadata_encoding"]["columns"][0] == "age"


def test_training_benchmark_times_a_recipe_as_an_avx2_cpu_runs_it(split_file):
    result = run_script("bench_training.py", "--split-file", split_file, "--config", REPO / "configs/cpu_binary.json",
                        "--img-size", 32, "--epochs", 1, "--variant", "as-shipped", "--variant", "bf16:precision=bfloat16",
                        env={"ONEDNN_MAX_CPU_ISA": "AVX2"})
    header, shipped, bf16 = result.stdout.strip().splitlines()[-3:]
    assert "configs/cpu_binary.json: vgg_scratch 32x32, batch 64" in header
    assert shipped.startswith("as-shipped") and shipped.endswith("(float32)")  # auto: no bfloat16 units under AVX2
    assert " s/epoch" in shipped and float(shipped.split()[1]) > 0  # images/s
    # oneDNN has no bfloat16 kernels under AVX2: asked for anyway, training says so before it starts
    assert bf16.startswith("bf16") and "--precision bfloat16: oneDNN cannot run bfloat16 here" in bf16
