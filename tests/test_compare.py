"""scripts/compare_runs.py and skin_lesion.evaluation.compare: one row per run folder, numbers taken
from the run's own files, broken folders listed with their reason, sorting, and the written tables."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skin_lesion.errors import ConfigError
from skin_lesion.evaluation import compare
from skin_lesion.layout import RunLayout
from tests.conftest import REPO, copy_run, run_script

LOG_COLUMNS = ["epoch", "learning_rate", "seconds", "loss", "val_loss", "val_roc_auc", "val_pr_auc",
               "val_sensitivity", "val_specificity"]


def log_rows(values: list[float], seconds: float = 10.0) -> list[list[float]]:
    """Epoch-log rows whose val_pr_auc are ``values``."""
    return [[epoch, 1e-3, seconds + epoch, 0.5, 0.6, 0.7, value, 0.8, 0.9]
            for epoch, value in enumerate(values, start=1)]


def interval(value: float, low: float, high: float) -> dict:
    return {"value": value, "ci95": [low, high]}


def config(architecture="simple_cnn", task="binary", status="completed", started="2024-01-01T10:00:00",
           skip_phase1=False, **extra) -> dict:
    """A training_config.json as describe_run/finish_run write it (the keys compare reads)."""
    result = {"architecture": architecture, "task": task, "status": status,
              "settings": {"img_size": 64, "epochs1": 3, "epochs2": 4, "learning_rate": 1e-3,
                           "fine_tune_learning_rate": 1e-5, "batch_size": 32, "use_metadata": True,
                           "schedule": "plateau", "skip_phase1": skip_phase1, "skip_phase2": False},
              "provenance": {"started": started}}
    if status == "completed":
        result.update({"best_epoch": 2, "best": {"val_pr_auc": 0.0}, "training_seconds": 1.0,
                       "epochs_completed": 1, "finished": started})
    return {**result, **extra}


def make_run(root: Path, description: dict | str, logs: dict[int, list] | None = None,
             metrics: dict | None = None, threshold: float | None = None, model: bool = True) -> RunLayout:
    """A hand-made run folder; ``description`` as text is written verbatim (broken JSON)."""
    architecture = description.get("architecture", "x") if isinstance(description, dict) else "x"
    run = RunLayout(root, architecture)
    root.mkdir(parents=True)
    text = description if isinstance(description, str) else json.dumps(description)
    run.config.write_text(text)
    for phase, rows in (logs or {}).items():
        run.phase_log(phase).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows, columns=LOG_COLUMNS).to_csv(run.phase_log(phase), index=False)
    if model:
        run.best_model.parent.mkdir(parents=True)
        run.best_model.write_bytes(b"model")
    if threshold is not None:
        run.threshold.write_text(json.dumps({"threshold": threshold, "sensitivity": 0.9}))
    if metrics is not None:
        run.test_metrics().write_text(json.dumps(metrics))
    return run


BINARY_METRICS = {"binary": {"roc_auc": interval(0.9123, 0.8901, 0.9311), "pr_auc": interval(0.71, 0.65, 0.77),
                             "sensitivity@tuned": interval(0.9, 0.85, 0.95)},
                  "thresholds": {"tuned": 0.3125, "0.5": 0.5}, "level": "image"}
MULTICLASS_METRICS = {"binary": {"roc_auc": {"value": 0.88, "ci95": None}, "pr_auc": interval(0.6, 0.5, 0.7)},
                      "multiclass": {"balanced_accuracy": interval(0.55, 0.5, 0.6),
                                     "macro_roc_auc": interval(0.91, 0.89, 0.93)},
                      "thresholds": {"0.5": 0.5}, "level": "image"}


@pytest.fixture
def outputs(tmp_path) -> Path:
    """An outputs folder with every kind of run folder; returns its path."""
    runs = tmp_path / "runs"
    make_run(runs / "20240101-100000_simple_cnn_binary", config(),
             logs={1: log_rows([0.40, 0.72, 0.50]), 2: log_rows([0.60, 0.70])},
             metrics=BINARY_METRICS, threshold=0.2)  # 0.2 is superseded by the evaluated 0.3125
    make_run(runs / "20240102-100000_resnet50_multiclass",
             config("resnet50", "multiclass", started="2024-01-02T10:00:00", skip_phase1=True),
             logs={2: log_rows([0.30, 0.35])}, metrics=MULTICLASS_METRICS, threshold=0.4)
    make_run(runs / "20240103-100000_simple_cnn_binary", config(status="running", started="2024-01-03T10:00:00"),
             logs={1: log_rows([0.20, 0.25])}, model=False)
    make_run(runs / "20240104-100000_simple_cnn_binary", '{"architecture": "simple_cnn", ', model=False)
    make_run(runs / "20240105-100000_simple_cnn_binary", {"architecture": "simple_cnn"}, model=False)
    make_run(runs / "20240106-100000_simple_cnn_binary", config(started="2024-01-06T10:00:00"),
             logs={1: log_rows([0.5])}, metrics={"binary": {"roc_auc": interval(0.8, 0.7, 0.9)}})
    make_run(tmp_path / "search/mystudy/runs/20240107-100000_simple_cnn_binary",
             config(started="2024-01-07T10:00:00", search={"study": "mystudy", "trial": 3}),
             logs={1: log_rows([0.1, 0.15, 0.81]), 2: log_rows([0.8])})
    make_run(tmp_path / "search/untagged/runs/20240108-100000_simple_cnn_binary",
             config(status="running", started="2024-01-08T10:00:00"), model=False)
    (tmp_path / "cache").mkdir()
    (tmp_path / "latest").symlink_to("runs/20240101-100000_simple_cnn_binary")
    return tmp_path


def by_run(table: pd.DataFrame) -> dict[str, dict]:
    return {row["path"]: row for row in table.to_dict("records")}


def test_every_run_folder_is_found_once_and_nothing_else(outputs):
    nested = outputs / "runs/20240101-100000_simple_cnn_binary/explain/training_config.json"
    nested.parent.mkdir()
    nested.write_text("{}")  # inside a run folder: part of that run, not a run of its own
    found = [path.relative_to(outputs).as_posix() for path in compare.find_runs(outputs)]
    assert len(found) == len(set(found)) == 8
    assert "search/mystudy/runs/20240107-100000_simple_cnn_binary" in found
    assert not any(path.startswith("latest") or "/logs" in path for path in found)


def test_numbers_come_from_the_runs_own_files(outputs):
    rows = by_run(compare.runs_table(outputs))
    row = rows["runs/20240101-100000_simple_cnn_binary"]
    run = RunLayout(outputs / row["path"], "simple_cnn")
    history = pd.concat([pd.read_csv(run.phase_log(p)).assign(phase=p) for p in (1, 2)], ignore_index=True)
    best = history.loc[history["val_pr_auc"].idxmax()]
    assert (row["val_pr_auc"], row["best_epoch"]) == (best["val_pr_auc"], best["epoch"])
    assert row["epochs_completed"] == len(history) and row["epochs_planned"] == 3 + 4
    assert row["training_seconds"] == pytest.approx(history["seconds"].sum())
    metrics = json.loads(run.test_metrics().read_text())
    assert row["test_roc_auc"] == metrics["binary"]["roc_auc"]["value"]
    assert [row["test_pr_auc_low"], row["test_pr_auc_high"]] == metrics["binary"]["pr_auc"]["ci95"]
    assert row["threshold"] == metrics["thresholds"]["tuned"]
    assert (row["architecture"], row["img_size"], row["learning_rate_phase2"], row["use_metadata"]) == \
        ("simple_cnn", 64, 1e-5, True)
    assert row["status"] == "completed" and row["started"] == "2024-01-01T10:00:00"


def test_multiclass_runs_show_their_summary_and_skipped_phases_no_learning_rate(outputs):
    row = by_run(compare.runs_table(outputs))["runs/20240102-100000_resnet50_multiclass"]
    assert row["test_balanced_accuracy"] == 0.55 and row["test_macro_roc_auc_high"] == 0.93
    assert row["test_roc_auc"] == 0.88 and pd.isna(row["test_roc_auc_low"])
    assert pd.isna(row["learning_rate_phase1"]) and row["epochs_planned"] == 4
    assert row["threshold"] == 0.4  # from threshold.json: evaluated without a tuned threshold
    assert row["status"] == "completed"


def test_incomplete_and_broken_folders_are_listed_with_their_reason(outputs):
    rows = by_run(compare.runs_table(outputs))
    running = rows["runs/20240103-100000_simple_cnn_binary"]
    assert running["status"] == "running or interrupted"
    assert (running["epochs_completed"], running["val_pr_auc"], running["best_epoch"]) == (2, 0.25, 2)
    invalid = rows["runs/20240104-100000_simple_cnn_binary"]["status"]
    assert invalid.startswith("broken: training_config.json is not valid JSON")
    assert rows["runs/20240104-100000_simple_cnn_binary"]["started"] == "2024-01-04T10:00:00"  # folder name
    assert rows["runs/20240105-100000_simple_cnn_binary"]["status"] == \
        "broken: training_config.json lacks task, settings, status"
    no_logs = rows["runs/20240106-100000_simple_cnn_binary"]["status"]
    assert no_logs.startswith("broken: ") and "logs/phase2.csv missing" in no_logs
    assert "test_metrics.json" not in no_logs  # pr_auc absent is a gap, not a fault
    assert "logs/phase1.csv" not in no_logs


def test_a_completed_run_without_its_model_or_with_a_bad_metrics_file_is_broken(tmp_path):
    make_run(tmp_path / "runs/a", config(), logs={1: log_rows([0.5]), 2: log_rows([0.6])}, model=False)
    make_run(tmp_path / "runs/b", config(), logs={1: log_rows([0.5]), 2: log_rows([0.6])})
    RunLayout(tmp_path / "runs/b", "simple_cnn").test_metrics().write_text("[1, 2")
    (tmp_path / "runs/b/logs/phase1.csv").write_text("epoch,seconds\n1,2\n")
    rows = by_run(compare.runs_table(tmp_path))
    assert rows["runs/a"]["status"] == "broken: models/simple_cnn_best.h5 missing"
    assert rows["runs/b"]["status"] == ("broken: logs/phase1.csv lacks val_pr_auc; "
                                        "test_metrics.json is not valid JSON (line 1 column 6)")
    assert rows["runs/b"]["val_pr_auc"] == 0.6  # what could be read is still shown


GARBAGE = [  # (training_config.json, logs/phase1.csv, test_metrics.json, expected reason)
    ("[]", None, None, "training_config.json is not a JSON object"),
    ('{"architecture": 3, "task": "binary", "settings": "x", "status": "completed"}', None, None,
     "settings is not an object"),
    (json.dumps(config(status="done")), "\n", None, "unknown status 'done'"),
    (json.dumps(config(status="running")), "epoch,seconds,val_pr_auc\nx,y,z\n", None, "not numbers"),
    (json.dumps(config(status="running")), "\x00\xff\xfe", None, "logs/phase1.csv"),
    (json.dumps(config(status="running")), None, '{"binary": [1]}', "test_metrics.json lacks binary"),
    (json.dumps(config(status="running", best="x", search=[1], provenance={"started": 5})), None,
     '{"binary": {"roc_auc": {"value": "high", "ci95": [1]}}, "thresholds": 0.3}', None),
]


@pytest.mark.parametrize("description, log, metrics, reason", GARBAGE)
def test_garbage_files_never_crash(tmp_path, description, log, metrics, reason):
    root = tmp_path / "runs/x"
    make_run(root, description, model=False)
    if log is not None:
        (root / "logs").mkdir()
        (root / "logs/phase1.csv").write_bytes(log.encode("latin-1"))
    if metrics is not None:
        (root / "test_metrics.json").write_text(metrics)
    row = compare.runs_table(tmp_path).iloc[0]
    if reason:
        assert row["status"].startswith("broken: ") and reason in row["status"]
    else:
        assert row["status"] == "running or interrupted" and pd.isna(row["test_roc_auc"])
    table = compare.runs_table(tmp_path)
    compare.tables_text(table, compare.seed_groups(table))


def test_search_trials_carry_study_and_trial(outputs):
    rows = by_run(compare.runs_table(outputs))
    tagged = rows["search/mystudy/runs/20240107-100000_simple_cnn_binary"]
    assert (tagged["study"], tagged["trial"], tagged["val_pr_auc"]) == ("mystudy", 3, 0.81)
    untagged = rows["search/untagged/runs/20240108-100000_simple_cnn_binary"]
    assert untagged["study"] == "untagged" and pd.isna(untagged["trial"])
    assert untagged["epochs_completed"] == 0 and untagged["status"] == "running or interrupted"


def test_sorting(outputs):
    newest_first = compare.runs_table(outputs)["started"].tolist()
    assert newest_first == sorted(newest_first, reverse=True)
    by_score = compare.runs_table(outputs, "val_pr_auc")["val_pr_auc"].tolist()
    scored = [value for value in by_score if pd.notna(value)]
    assert scored == sorted(scored, reverse=True) and len(scored) == 5 and all(pd.isna(by_score[5:]))
    by_test = compare.runs_table(outputs, "test_roc_auc")
    assert by_test["path"].tolist()[:3] == ["runs/20240101-100000_simple_cnn_binary",
                                            "runs/20240102-100000_resnet50_multiclass",
                                            "runs/20240106-100000_simple_cnn_binary"]
    assert compare.runs_table(outputs, "architecture")["architecture"].iloc[0] == "resnet50"
    with pytest.raises(ConfigError, match="Cannot sort by 'accuracy'.*val_pr_auc.*started"):
        compare.runs_table(outputs, "accuracy")


def test_printed_table_rounds_intervals_and_leaves_out_empty_columns(outputs):
    table = compare.runs_table(outputs)
    shown = compare.display_table(table[table["path"] == "runs/20240103-100000_simple_cnn_binary"])
    assert "study" not in shown and "test ROC-AUC [95% CI]" not in shown and "status" in shown
    shown = compare.display_table(table)
    first = shown[table["path"] == "runs/20240101-100000_simple_cnn_binary"].iloc[0]
    assert first["test ROC-AUC [95% CI]"] == "0.912 [0.890, 0.931]" and first["threshold"] == "0.312"
    assert (first["epochs"], first["best epoch"], first["lr1"], first["meta"]) == ("5/7", "2", "0.001", "yes")
    assert first["data"].startswith("HAM10000")  # a record without a label space is HAM10000's
    lines = compare.markdown(shown).splitlines()
    assert len(lines) == len(table) + 2 and len({len(line) for line in lines}) == 1
    assert lines[1].startswith("| ---")



def seeded(seed: int, status: str = "completed", task: str = "binary", split: str = "ab12", **settings) -> dict:
    """A training_config.json of the test recipe with ``seed``; ``settings`` change the recipe.
    Each seed's outputs folder differs: where a run's files go is not part of its recipe."""
    description = config(task=task, status=status, split_sha256=split)
    description["settings"].update(seed=seed, outputs_dir=f"/machine{seed}/outputs", **settings)
    return description


def seeded_run(root: Path, description: dict, val: float, test: dict | None) -> RunLayout:
    return make_run(root, description, logs={1: log_rows([val - 0.1, val]), 2: log_rows([val - 0.2])},
                    metrics=test)


def binary_test(roc: float, pr: float) -> dict:
    return {"binary": {"roc_auc": interval(roc, roc - 0.05, roc + 0.05), "pr_auc": interval(pr, pr - 0.1, pr + 0.1)}}


#: seed -> (best validation PR-AUC, test ROC-AUC, test PR-AUC) of three runs of one recipe.
SEED_FIGURES = {0: (0.70, 0.90, 0.60), 1: (0.74, 0.93, 0.66), 2: (0.71, 0.88, 0.61)}


@pytest.fixture
def seed_outputs(tmp_path) -> Path:
    """Three seeds of one recipe, and runs that must stay out of its group."""
    for seed, (val, roc, pr) in SEED_FIGURES.items():
        seeded_run(tmp_path / f"runs/seed{seed}", seeded(seed), val, binary_test(roc, pr))
    seeded_run(tmp_path / "runs/dropout", seeded(3, dropout=0.5), 0.9, binary_test(0.99, 0.9))  # another recipe
    seeded_run(tmp_path / "runs/other_split", seeded(4, split="cd34"), 0.9, binary_test(0.99, 0.9))  # other data
    make_run(tmp_path / "runs/running", seeded(5, status="running"), logs={1: log_rows([0.99])}, model=False)
    make_run(tmp_path / "runs/broken", "{", model=False)
    return tmp_path


def test_runs_that_differ_only_in_seed_are_grouped_with_their_mean_and_spread(seed_outputs):
    table = compare.runs_table(seed_outputs)
    groups = compare.seed_groups(table)
    assert len(groups) == 1
    group = groups.iloc[0]
    assert (group["runs"], group["seeds"]) == (3, "0 1 2")
    assert sorted(group["paths"].split(";")) == ["runs/seed0", "runs/seed1", "runs/seed2"]
    assert by_run(table)["runs/seed0"]["recipe"] == group["recipe"] != by_run(table)["runs/dropout"]["recipe"]
    for index, figure in enumerate(("val_pr_auc", "test_roc_auc", "test_pr_auc")):
        values = np.array([figures[index] for figures in SEED_FIGURES.values()])
        assert group[f"{figure}_n"] == 3
        assert group[f"{figure}_mean"] == pytest.approx(values.mean())
        assert group[f"{figure}_std"] == pytest.approx(values.std(ddof=1))
        assert (group[f"{figure}_min"], group[f"{figure}_max"]) == (values.min(), values.max())
    assert group["test_balanced_accuracy_n"] == 0
    shown = compare.display_groups(groups).iloc[0]
    rocs = np.array([figures[1] for figures in SEED_FIGURES.values()])
    assert shown["test ROC-AUC"] == f"{rocs.mean():.3f} ± {rocs.std(ddof=1):.3f} ({rocs.min():.3f}–{rocs.max():.3f})"
    assert "bal. acc." not in shown and (shown["arch"], shown["seeds"]) == ("simple_cnn", "0 1 2")


def test_seven_class_groups_show_balanced_accuracy_over_the_runs_evaluated(tmp_path):
    accuracies = {0: 0.55, 1: 0.61}
    for seed, accuracy in accuracies.items():
        metrics = {**MULTICLASS_METRICS, "multiclass": {"balanced_accuracy": interval(accuracy, 0.5, 0.7),
                                                        "macro_roc_auc": interval(0.9, 0.85, 0.95)}}
        seeded_run(tmp_path / f"runs/seed{seed}", seeded(seed, task="multiclass"), 0.5, metrics)
    seeded_run(tmp_path / "runs/seed2", seeded(2, task="multiclass"), 0.5, None)  # not evaluated yet
    group = compare.seed_groups(compare.runs_table(tmp_path)).iloc[0]
    values = np.array(list(accuracies.values()))
    assert (group["runs"], group["test_balanced_accuracy_n"], group["val_pr_auc_n"]) == (3, 2, 3)
    assert group["test_balanced_accuracy_std"] == pytest.approx(values.std(ddof=1))
    shown = compare.display_groups(pd.DataFrame([group])).iloc[0]
    assert shown["bal. acc."] == f"{values.mean():.3f} ± {values.std(ddof=1):.3f} (0.550–0.610) n=2"
    assert shown["macro AUC"] == "0.900 ± 0.000 (0.900–0.900) n=2"


def test_script_shows_and_writes_the_seed_groups(seed_outputs):
    result = run_script("compare_runs.py", "--outputs-dir", seed_outputs)
    assert "7 runs (1 broken), 1 seed groups" in result.stderr
    runs_part, groups_part = result.stdout.split("## Seed groups")
    headers = [cell.strip() for cell in runs_part.splitlines()[0].split("|")]
    assert "seed" in headers and "recipe" in headers
    assert groups_part.count("\n| ") == 3  # header, rule, one group
    written = pd.read_csv(seed_outputs / "run_groups.csv")
    assert list(written.columns) == compare.GROUP_COLUMNS and written["seeds"].tolist() == ["0 1 2"]
    assert written["test_pr_auc_mean"].iloc[0] == pytest.approx(np.mean([0.60, 0.66, 0.61]))
    assert result.stdout in (seed_outputs / "runs.md").read_text()


def test_module_does_not_load_tensorflow():
    code = ("import sys, skin_lesion.evaluation.compare\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'cv2', 'sklearn') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_script_prints_and_writes_the_tables(outputs, tmp_path):
    result = run_script("compare_runs.py", "--outputs-dir", outputs, "--out-dir", tmp_path / "tables")
    written = pd.read_csv(tmp_path / "tables/runs.csv")
    assert written["path"].tolist() == compare.runs_table(outputs)["path"].tolist()
    assert list(written.columns) == compare.COLUMNS
    markdown = (tmp_path / "tables/runs.md").read_text()
    assert result.stdout in markdown and "0.912 [0.890, 0.931]" in result.stdout
    assert result.stdout.count("broken:") == 3 and "8 runs (3 broken), 0 seed groups" in result.stderr
    assert "Seed groups" not in result.stdout  # no recipe ran with two seeds
    assert pd.read_csv(tmp_path / "tables/run_groups.csv").empty
    assert not (outputs / "runs.csv").exists()


def test_script_refuses_an_unknown_sort_key_and_a_missing_folder(outputs, tmp_path):
    result = run_script("compare_runs.py", "--outputs-dir", outputs, "--sort", "speed", check=False)
    assert result.returncode == 2 and result.stderr.startswith("error: Cannot sort by 'speed'; choose one of:")
    assert "test_roc_auc" in result.stderr and "Traceback" not in result.stderr
    assert not (outputs / "runs.csv").exists()
    result = run_script("compare_runs.py", "--outputs-dir", tmp_path / "nowhere", check=False)
    assert result.returncode == 2 and "No outputs folder at" in result.stderr


@pytest.mark.slow
def test_real_runs_and_hand_made_folders(trained_run, tmp_path):
    """A trained, tuned and evaluated sample run next to broken folders and a search trial."""
    outputs = tmp_path / "outputs"
    copy_run(trained_run.run, outputs / "runs" / trained_run.run.name)
    real = RunLayout(outputs / "runs" / trained_run.run.name, "vgg_scratch")
    trial = outputs / "search/mystudy/runs" / real.root.name
    shutil.copytree(real.root, trial)
    description = json.loads(real.config.read_text())
    (trial / real.config.name).write_text(json.dumps({**description, "search": {"study": "mystudy", "trial": 0}}))
    make_run(outputs / "runs/20990101-000000_simple_cnn_binary", config(status="running", started="2099-01-01"),
             model=False)
    make_run(outputs / "runs/broken_json", "{", model=False)
    make_run(outputs / "runs/broken_keys", {"task": "binary"}, model=False)

    result = run_script("compare_runs.py", "--outputs-dir", outputs)
    rows = by_run(pd.read_csv(outputs / "runs.csv"))
    assert set(rows) == {f"runs/{real.root.name}", f"search/mystudy/runs/{real.root.name}",
                         "runs/20990101-000000_simple_cnn_binary", "runs/broken_json", "runs/broken_keys"}
    assert rows["runs/broken_json"]["status"].startswith("broken: training_config.json is not valid JSON")
    assert rows["runs/broken_keys"]["status"] == "broken: training_config.json lacks architecture, settings, status"
    assert rows["runs/20990101-000000_simple_cnn_binary"]["status"] == "running or interrupted"
    metrics = json.loads(real.test_metrics().read_text())
    history = pd.read_csv(real.phase_log(2))
    for path in (f"runs/{real.root.name}", f"search/mystudy/runs/{real.root.name}"):
        row = rows[path]
        assert row["status"] == "completed"
        assert row["test_roc_auc"] == metrics["binary"]["roc_auc"]["value"]
        assert [row["test_roc_auc_low"], row["test_roc_auc_high"]] == metrics["binary"]["roc_auc"]["ci95"]
        assert row["test_pr_auc"] == metrics["binary"]["pr_auc"]["value"]
        assert row["threshold"] == json.loads(real.threshold.read_text())["threshold"]
        assert row["val_pr_auc"] == history["val_pr_auc"].max() == description["best"]["val_pr_auc"]
        assert row["best_epoch"] == description["best_epoch"] and row["epochs_completed"] == 6
        assert row["training_seconds"] == description["training_seconds"] and row["img_size"] == 48
    assert rows[f"search/mystudy/runs/{real.root.name}"]["trial"] == 0
    assert result.stdout.splitlines()[2].startswith("| 20990101-000000_simple_cnn_binary")  # newest first
    assert f"{metrics['binary']['roc_auc']['value']:.3f} [" in result.stdout

    ordered = run_script("compare_runs.py", "--outputs-dir", outputs, "--sort", "test_roc_auc",
                         "--out-dir", tmp_path / "sorted")
    assert "| mystudy" in ordered.stdout.splitlines()[3]  # the copy's row follows the original
    assert pd.read_csv(tmp_path / "sorted/runs.csv")["test_roc_auc"].notna().tolist() == [True] * 2 + [False] * 3
