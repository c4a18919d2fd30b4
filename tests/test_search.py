"""Hyperparameter search: trials are run folders, a killed search resumes without losing a
finished trial, the best settings train, pruned trials say so; TensorBoard HParams."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import optuna
import pandas as pd
import pytest

from skin_lesion.errors import ConfigError
from skin_lesion.training.config import TrainConfig
from skin_lesion.training.search import default_space, search_space
from tests.conftest import REPO, run_script

BASE = ("--architecture", "simple_cnn", "--weights", "none", "--skip-phase1", "--epochs2", 1,
        "--img-size", 32, "--batch-size", 64)


def test_the_space_follows_the_architecture_table_and_can_be_overridden(tmp_path):
    resnet = default_space(TrainConfig(architecture="resnet50").resolved())
    assert resnet["learning_rate"]["low"] < 1e-3 < resnet["learning_rate"]["high"]
    assert resnet["fine_tune_learning_rate"]["high"] < resnet["learning_rate"]["high"]
    assert resnet["unfreeze_layers"] == {"type": "int", "low": 0, "high": 60}
    assert resnet["img_size"]["choices"] == [160, 224, 288]  # 0.75x, 1x, 1.25x in steps of 16
    scratch = default_space(TrainConfig(architecture="vgg_scratch", weights="none", skip_phase1=True).resolved())
    assert "learning_rate" not in scratch and "unfreeze_layers" not in scratch
    override = tmp_path / "space.json"
    override.write_text(json.dumps({"img_size": {"type": "categorical", "choices": [48]}, "schedule": None}))
    space = search_space(TrainConfig(architecture="vgg_scratch", weights="none").resolved(), override)
    assert space["img_size"]["choices"] == [48] and "schedule" not in space
    override.write_text(json.dumps({"epochs": {"type": "int", "low": 1, "high": 3}}))
    with pytest.raises(ConfigError, match="'epochs' is not a setting a search can vary"):
        search_space(TrainConfig(architecture="vgg_scratch").resolved(), override)
    override.write_text(json.dumps({"dropout": {"type": "float", "low": 0.1}}))
    with pytest.raises(ConfigError, match="dropout must be"):
        search_space(TrainConfig(architecture="vgg_scratch").resolved(), override)


KILLED_IN_TRIAL_2 = """
import os, signal, sys, keras
from skin_lesion import cli
from skin_lesion.training.config import TrainConfig
from skin_lesion.training.search import run_search

class KillInTrial2(keras.callbacks.Callback):
    epochs = 0
    def on_epoch_end(self, epoch, logs=None):
        KillInTrial2.epochs += 1
        if KillInTrial2.epochs == 2:  # trial 0 trains its one epoch; trial 1 dies after its first
            os.kill(os.getpid(), signal.SIGKILL)

cli.setup_logging()
run_search(TrainConfig(architecture="simple_cnn", weights="none", skip_phase1=True, epochs2=1, img_size=32,
                       batch_size=64, split_file=sys.argv[1], outputs_dir=sys.argv[2]),
           3, "study", extra_callbacks=[KillInTrial2()])
"""


@pytest.mark.slow
def test_a_killed_search_resumes_keeps_its_finished_trial_and_its_best_settings_train(sample_split, tmp_path):
    split = sample_split
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_TRIAL_2, str(split), str(tmp_path)], cwd=REPO,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    storage = f"sqlite:///{tmp_path / 'search/study/study.db'}"
    first = optuna.load_study(study_name="study", storage=storage).trials[0]
    assert first.state == optuna.trial.TrialState.COMPLETE
    assert first.params["img_size"] == 32 and first.params["schedule"] == "plateau"  # the base settings

    result = run_script("search_hparams.py", "--split-file", split, "--outputs-dir", tmp_path, *BASE,
                        "--trials", 3, "--study-name", "study")
    assert "1 trial(s) finished, 2 to run" in result.stderr and "ExperimentalWarning" not in result.stderr
    trials = optuna.load_study(study_name="study", storage=storage).trials
    assert trials[0].value == first.value and trials[0].params == first.params
    complete = [trial for trial in trials if trial.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3 and trials[1].state != optuna.trial.TrialState.COMPLETE  # the killed one

    study_dir = tmp_path / "search/study"
    for name in ("best_config.json", "trials.csv", "optimization_history.png", "param_importances.png",
                 "parallel_coordinate.png"):
        assert (study_dir / name).stat().st_size > 0, name
    runs = [json.loads(path.read_text()) for path in study_dir.glob("runs/*/training_config.json")]
    tags = sorted(record["search"]["trial"] for record in runs if record["status"] == "completed")
    assert tags == sorted(trial.number for trial in complete)
    best = max(complete, key=lambda trial: trial.value)
    best_run = next(r for r in runs if r["search"]["trial"] == best.number)
    assert best_run["best"]["val_pr_auc"] == pytest.approx(best.value)
    settings = json.loads((study_dir / "best_config.json").read_text())
    assert {key: settings[key] for key in best.params} == best.params
    assert settings["outputs_dir"] == str(tmp_path) and settings["split_file"] == str(split)  # as given

    run_script("03_train.py", "--config", study_dir / "best_config.json", "--epochs2", 1)
    trained = json.loads(((tmp_path / "latest").resolve() / "training_config.json").read_text())
    assert trained["status"] == "completed" and trained["settings"]["img_size"] == settings["img_size"]
    table = run_script("compare_runs.py", "--outputs-dir", tmp_path)
    listed = pd.read_csv(tmp_path / "runs.csv")
    assert len(listed) == 5 and (listed["study"] == "study").sum() == 4 and "study" in table.stdout


FORCED_PRUNING = """
import sys, optuna
from skin_lesion import cli
from skin_lesion.training.config import TrainConfig
from skin_lesion.training.search import run_search
cli.setup_logging()
run_search(TrainConfig(architecture="simple_cnn", weights="none", skip_phase1=True, epochs2=2, img_size=32,
                       batch_size=64, split_file=sys.argv[1], outputs_dir=sys.argv[2]),
           1, "pruned", pruner=optuna.pruners.ThresholdPruner(lower=1.5))
"""


@pytest.mark.slow
def test_a_pruned_trial_stops_and_its_run_folder_says_so(sample_split, tmp_path):
    result = subprocess.run([sys.executable, "-c", FORCED_PRUNING, str(sample_split), str(tmp_path)],
                            cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Trial 0 pruned" in result.stderr and "no best settings yet" in result.stderr
    record = json.loads(next((tmp_path / "search/pruned/runs").glob("*/training_config.json")).read_text())
    assert record["status"] == "pruned" and record["search"] == {"study": "pruned", "trial": 0}
    log = pd.read_csv(next((tmp_path / "search/pruned/runs").glob("*/logs/phase2.csv")))
    assert list(log["epoch"]) == [1]
    run_script("compare_runs.py", "--outputs-dir", tmp_path)
    assert pd.read_csv(tmp_path / "runs.csv")["status"].tolist() == ["pruned"]
