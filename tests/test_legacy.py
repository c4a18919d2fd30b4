"""Runs written before the label space existed (``tests/fixtures/legacy_runs``, made by the code
of commit 57573dd, when the package was ``src`` and records named only their task) load, score,
tune, evaluate and explain as they did then: the same scores for the same images, the same
``test_metrics.json``."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO, run_script

FIXTURES = REPO / "tests" / "fixtures" / "legacy_runs"
#: Where the fixture runs were made; every path inside them starts with it.
OLD_ROOT = "/tmp/legacy-src"
OLD_OUTPUTS = {"binary": f"{OLD_ROOT}/outputs/bin", "multiclass": f"{OLD_ROOT}/outputs/multi"}
#: Paths that name where a file was, not what it holds.
PATH_KEYS = {"model", "split_file", "metrics_file", "threshold_source", "source"}
#: Keys records have gained since: the operating points' counts and Wilson intervals (threshold.json).
ADDED_KEYS = {"malignant", "benign", "sensitivity_ci95", "specificity_ci95", "interval_method",
              "out_of_distribution"}  # None for models trained before the flag existed


def sample_data_hash(sample_dir: Path) -> str:
    """The SHA-256 of ``sha256sum``'s listing of every file, sorted by path."""
    files = sorted(path for path in sample_dir.rglob("*") if path.is_file())
    listing = "".join(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(sample_dir).as_posix()}\n"
                      for path in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def renamed_ids(text: str) -> str:
    """The sample's ids as it has named them since it marks itself synthetic: ISIC_0024306 became
    SYN_0000001 and HAM_0000000 became SYN_L_0000001 (the same images, byte for byte, in the same order)."""
    text = re.sub(r"ISIC_(\d{7})", lambda match: f"SYN_{int(match[1]) - 24305:07d}", text)
    return re.sub(r"HAM_(\d{7})", lambda match: f"SYN_L_{int(match[1]) + 1:07d}", text)


def old_run(kind: str, sample_dir: Path, destination: Path) -> Path:
    """A copy of a fixture run whose recorded paths and ids point at this machine's files."""
    assert sample_data_hash(sample_dir) == (FIXTURES / "sample_data.sha256").read_text().strip(), \
        "the generated sample data differs from the one the legacy runs were scored on"
    run = Path(shutil.copytree(FIXTURES / kind, destination / kind))
    replacements = [(f"{OLD_OUTPUTS[kind]}/split/split.csv", str(run / "split" / "split.csv")),
                    (f"{OLD_OUTPUTS[kind]}/cache", str(destination / "cache")),
                    (OLD_OUTPUTS[kind], str(destination)),
                    (f"{OLD_ROOT}/data/sample", str(sample_dir))]
    for path in [*run.glob("*.json"), *run.glob("*.csv"), *run.glob("split/*")]:
        text = path.read_text()
        for old, new in replacements:
            text = text.replace(old, new)
        path.write_text(renamed_ids(text))
    return run


def scored_by_name(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path, dtype={"error": str}, keep_default_na=False)
    return table.assign(path=[renamed_ids(Path(p).name) for p in table["path"]]).set_index("path").sort_index()


def assert_same_scores(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns) and list(got.index) == list(expected.index)
    for column in expected:
        if pd.api.types.is_float_dtype(expected[column]):
            np.testing.assert_allclose(got[column], expected[column], rtol=0, atol=1e-5, err_msg=column)
        else:
            assert got[column].tolist() == expected[column].tolist(), column


def assert_same_json(got, expected, where: str = "") -> None:
    """Equal structure and strings, numbers within 1e-5; recorded paths and added keys left aside."""
    if isinstance(expected, dict):
        assert set(expected) <= set(got) and set(got) - set(expected) <= ADDED_KEYS, where
        for key in expected:
            if key not in PATH_KEYS:
                assert_same_json(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), where
        for index, (a, b) in enumerate(zip(got, expected)):
            assert_same_json(a, b, f"{where}[{index}]")
    elif isinstance(expected, float) and not isinstance(got, bool):
        assert got == pytest.approx(expected, abs=1e-5, nan_ok=True), where
    else:
        assert got == expected, where


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_an_old_run_scores_tunes_evaluates_and_explains_as_before(kind, sample_dir, tmp_path):
    run = old_run(kind, sample_dir, tmp_path)
    images = sample_dir / "HAM10000_images_part_2"
    metadata = ["--metadata", sample_dir / "HAM10000_metadata.csv"] if kind == "multiclass" else []
    run_script("06_infer.py", images, "--run-dir", run, "--output", tmp_path / "scores.csv", *metadata)
    assert_same_scores(scored_by_name(tmp_path / "scores.csv"), scored_by_name(run / "predictions.csv"))

    expected_threshold = json.loads((run / "threshold.json").read_text())
    run_script("04_tune_threshold.py", "--run-dir", run, "--force")
    assert_same_json(json.loads((run / "threshold.json").read_text()), expected_threshold)

    expected_metrics = json.loads((run / "test_metrics.json").read_text())
    expected_predictions = pd.read_csv(run / "test_predictions.csv")
    run_script("05_evaluate.py", "--run-dir", run, "--bootstrap", 200, "--force")
    assert_same_json(json.loads((run / "test_metrics.json").read_text()), expected_metrics)
    assert_same_scores(pd.read_csv(run / "test_predictions.csv"), expected_predictions)
    card = (run / "model_card.md").read_text()
    assert "Per-class results" in card or kind == "binary"
    assert "HAM10000, from Kaggle" in card and "data CC BY-NC 4.0" in card and "synthetic" not in card.lower()

    run_script("07_explain.py", "--run-dir", run, "--per-group", 1)
    listing = pd.read_csv(run / "explain" / "gradcam_test_cases.csv")
    assert len(listing) and all((run / "explain" / name).is_file() for name in listing["file"])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_an_old_model_file_copied_alone_scores_as_before(kind, sample_dir, tmp_path):
    model = tmp_path / "copied" / "simple_cnn_best.h5"
    model.parent.mkdir()
    shutil.copy(FIXTURES / kind / "models" / "simple_cnn_best.h5", model)
    images = sample_dir / "HAM10000_images_part_2"
    result = run_script("06_infer.py", images, "--model-file", model, "--output", tmp_path / "copied.csv")
    assert "No calibration.json beside the model" in result.stderr
    assert_same_scores(scored_by_name(tmp_path / "copied.csv"), scored_by_name(FIXTURES / kind / "predictions_copied.csv"))
    if kind == "multiclass":
        run_script("06_infer.py", images, "--model-file", model, "--output", tmp_path / "with_metadata.csv",
                   "--metadata", sample_dir / "HAM10000_metadata.csv")
        assert_same_scores(scored_by_name(tmp_path / "with_metadata.csv"),
                           scored_by_name(FIXTURES / kind / "predictions_copied_with_metadata.csv"))


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_every_old_record_reads_as_a_ham10000_task(kind):
    import h5py

    from skin_lesion.data.datasets.ham10000 import FORMAT, HAM10000
    from skin_lesion.data.records import dataset_of, task_of_record
    from skin_lesion.data.split import split_dataset_record, split_label_space
    from skin_lesion.models.saved import INFO_ATTRIBUTE
    from skin_lesion.tasks import Task

    folder = FIXTURES / kind
    with h5py.File(folder / "models" / "simple_cnn_best.h5", "r") as handle:
        info = json.loads(handle.attrs[INFO_ATTRIBUTE])
    for name, record in (("training_config.json", json.loads((folder / "training_config.json").read_text())),
                         ("model file", info)):
        assert "label_space" not in record and task_of_record(record, name) == Task(kind, HAM10000)
        assert "dataset" not in record and dataset_of(record, name) == FORMAT.record()  # HAM10000, as then
    assert split_label_space(folder / "split" / "split.csv") == HAM10000
    assert split_dataset_record(folder / "split" / "split.csv") == FORMAT.record()


def test_old_runs_are_listed_by_compare_runs_and_offered_by_the_app(sample_dir, tmp_path):
    from skin_lesion import app_backend
    from skin_lesion.evaluation.compare import runs_table

    for kind in ("binary", "multiclass"):
        old_run(kind, sample_dir, tmp_path / kind)
        shutil.move(tmp_path / kind / kind, tmp_path / "outputs" / "runs" / kind)
    table = runs_table(tmp_path / "outputs").set_index("run")
    assert table.loc["binary", "status"] == "completed" and table.loc["multiclass", "task"] == "multiclass"
    assert table.loc["binary", "test_roc_auc"] == pytest.approx(0.99831, abs=1e-5)
    choices = app_backend.run_choices(tmp_path / "outputs")
    labels = {choice.path.name: choice.label for choice in choices}
    assert "benign vs malignant" in labels["binary"] and "7 diagnoses" in labels["multiclass"]
    assert {app_backend.trained_on(choice).name for choice in choices} == {"HAM10000"}  # as the page said then


def test_a_calibration_of_another_task_beside_a_copied_model_is_refused(tmp_path):
    from skin_lesion.data.datasets.ham10000 import HAM10000
    from skin_lesion.models.saved import ModelFileError
    from skin_lesion.serving.predictor import from_model_file
    from skin_lesion.tasks import Task

    shutil.copy(FIXTURES / "binary" / "models" / "simple_cnn_best.h5", tmp_path / "model.h5")
    other = json.loads((FIXTURES / "multiclass" / "calibration.json").read_text())
    (tmp_path / "calibration.json").write_text(json.dumps({**other, **Task("multiclass", HAM10000).as_record()}))
    with pytest.raises(ModelFileError, match="calibrates a model of another task .7 diagnoses over HAM10000, "
                                             "not benign vs malignant"):
        from_model_file(tmp_path / "model.h5")
