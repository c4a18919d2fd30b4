"""The chain after training: tune_threshold, evaluate and infer on a trained sample run."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn import metrics

from tests.conftest import REPO, SCRIPTS, run_script

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chain(sample_dir, tmp_path_factory):
    """A small binary run on the sample data; returns (outputs dir, run dir, split file)."""
    outputs = tmp_path_factory.mktemp("chain")
    run_script("02_prepare_split.py", "--data-dir", sample_dir, "--out-dir", outputs / "split")
    run_script("03_train.py", "--split-file", outputs / "split/split.csv", "--outputs-dir", outputs,
               "--architecture", "simple_cnn", "--weights", "none", "--img-size", 64,
               "--epochs1", 1, "--epochs2", 4, "--fine-tune-learning-rate", "1e-3")
    return outputs, (outputs / "latest").resolve(), outputs / "split/split.csv"


AUDITED = """
import runpy, sys
opened = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)):
        opened.append(str(args[0]))
sys.addaudithook(hook)
sys.argv = [sys.argv[1], *sys.argv[3:]]
log = sys.argv.pop(sys.argv.index("--log-opened") + 1); sys.argv.remove("--log-opened")
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    open(log, "w").write("\\n".join(opened))
"""


def test_tune_threshold_reads_validation_only(chain, tmp_path):
    outputs, run, split_file = chain
    opened_log = tmp_path / "opened.txt"
    result = subprocess.run(
        [sys.executable, "-c", AUDITED, str(SCRIPTS / "04_tune_threshold.py"), "unused",
         "--outputs-dir", str(outputs), "--target-sensitivity", "0.9", "--log-opened", str(opened_log)],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    opened = opened_log.read_text().splitlines()
    assert any(path.endswith("val_probs.npz") for path in opened)
    split = pd.read_csv(split_file)
    test_images = set(split.loc[split["split"] == "test", "image_path"])
    touched = [p for p in opened if p in test_images or "/cache/test_" in p or p.endswith("split.csv")]
    assert touched == [], f"04_tune_threshold.py opened test data: {touched[:3]}"
    threshold = json.loads((run / "threshold.json").read_text())
    assert threshold["sensitivity"] >= 0.9 and 0 <= threshold["threshold"] <= 1
    assert set(threshold["operating_points"]) == {"sensitivity_0.80", "sensitivity_0.85",
                                                  "sensitivity_0.90", "sensitivity_0.95", "youden_j"}
    saved = np.load(run / "val_probs.npz")
    truth, scores = saved["labels"], saved["probabilities"]
    predicted = scores >= threshold["threshold"]
    assert threshold["sensitivity"] == pytest.approx(predicted[truth == 1].mean())
    assert threshold["specificity"] == pytest.approx((~predicted[truth == 0]).mean())
    for plot in ("roc_validation.png", "threshold_sweep.png"):
        assert (run / "plots" / plot).stat().st_size > 0
    again = run_script("04_tune_threshold.py", "--outputs-dir", outputs, check=False)
    assert again.returncode == 2 and "--force" in again.stderr


@pytest.fixture(scope="module")
def evaluated(chain):
    outputs, run, _ = chain
    if not (run / "threshold.json").exists():
        run_script("04_tune_threshold.py", "--outputs-dir", outputs)
    run_script("05_evaluate.py", "--outputs-dir", outputs, "--bootstrap", 300)
    return chain


def test_evaluate_writes_metrics_consistent_with_its_predictions(evaluated):
    outputs, run, split_file = evaluated
    result = json.loads((run / "test_metrics.json").read_text())
    predictions = pd.read_csv(run / "test_predictions.csv")
    split = pd.read_csv(split_file)
    assert sorted(predictions["image_id"]) == sorted(split.loc[split["split"] == "test", "image_id"])
    truth = predictions["dx"].isin(["akiec", "bcc", "mel"]).astype(int)
    binary = result["binary"]
    assert binary["roc_auc"]["value"] == pytest.approx(metrics.roc_auc_score(truth, predictions["malignant_score"]))
    tuned = json.loads((run / "threshold.json").read_text())["threshold"]
    assert result["thresholds"] == {"tuned": tuned, "0.5": 0.5}
    predicted = (predictions["malignant_score"] >= tuned).astype(int)
    assert (predicted == predictions["malignant@tuned"]).all()
    assert binary["sensitivity@tuned"]["value"] == pytest.approx(metrics.recall_score(truth, predicted))
    for key in ("roc_auc", "pr_auc", "sensitivity@tuned", "specificity@0.5", "npv@tuned", "balanced_accuracy@0.5"):
        low, high = binary[key]["ci95"]
        assert low <= binary[key]["value"] <= high, key
    assert result["level"] == "image" and result["bootstrap_samples"] == 300
    assert 0 <= result["calibration"]["malignant_score_ece"] <= 1
    for plot in ("test_roc.png", "test_confusion_matrix.png", "test_reliability.png"):
        assert (run / "plots" / plot).stat().st_size > 0


def test_lesion_level_tta_variant_is_written_beside_the_default(evaluated):
    outputs, run, _ = evaluated
    before = (run / "test_metrics.json").read_bytes()
    run_script("05_evaluate.py", "--outputs-dir", outputs, "--bootstrap", 100, "--lesion-level", "--tta")
    variant = json.loads((run / "test_metrics_lesion_tta.json").read_text())
    assert variant["level"] == "lesion" and variant["tta"] is True
    assert variant["cases"] == variant["lesions"] < variant["images"]
    assert (run / "test_metrics.json").read_bytes() == before


def test_infer_folder_with_broken_files_matches_evaluate(evaluated, tmp_path):
    outputs, run, _ = evaluated
    predictions = pd.read_csv(run / "test_predictions.csv").iloc[:3]
    folder = tmp_path / "new_images"
    folder.mkdir()
    for path in predictions["image_path"]:
        shutil.copy(path, folder / Path(path).name)
    source = Image.open(predictions["image_path"].iloc[0]).convert("RGB")
    source.save(folder / "as_png.png")
    source.convert("L").save(folder / "grayscale.jpg")
    source.convert("CMYK").save(folder / "cmyk.jpg")
    data = Path(predictions["image_path"].iloc[1]).read_bytes()
    (folder / "corrupt.jpg").write_bytes(data[: len(data) // 3])
    (folder / "notes.jpg").write_text("not an image at all")
    result = run_script("06_infer.py", folder, "--outputs-dir", outputs, "--output", tmp_path / "scores.csv")
    assert "2 error(s)" in result.stderr
    scores = pd.read_csv(tmp_path / "scores.csv", keep_default_na=False)
    assert len(scores) == 8 and sorted(scores["path"]) == sorted(str(p) for p in folder.iterdir())
    by_name = scores.set_index(scores["path"].map(lambda p: Path(p).name))
    for name in ("corrupt.jpg", "notes.jpg"):
        assert by_name.loc[name, "error"] and by_name.loc[name, "malignant_score"] == ""
    assert "Unknown image file format" in by_name.loc["notes.jpg", "error"]
    for name in ("as_png.png", "grayscale.jpg", "cmyk.jpg"):
        assert by_name.loc[name, "error"] == "" and 0 <= float(by_name.loc[name, "malignant_score"]) <= 1
    for row in predictions.itertuples():
        inferred = float(by_name.loc[Path(row.image_path).name, "malignant_score"])
        assert inferred == pytest.approx(row.malignant_score, abs=1e-5)
    tuned = json.loads((run / "threshold.json").read_text())["threshold"]
    good = by_name[by_name["error"] == ""]
    assert ((good["malignant_score"].astype(float) >= tuned) == (good["label"] == "malignant")).all()


def test_infer_csv_list_and_single_image(evaluated, tmp_path):
    outputs, run, split_file = evaluated
    split = pd.read_csv(split_file).iloc[:4]
    pd.DataFrame({"path": list(split["image_path"]) + [str(tmp_path / "missing.jpg")]}).to_csv(
        tmp_path / "list.csv", index=False)
    run_script("06_infer.py", tmp_path / "list.csv", "--outputs-dir", outputs, "--output", tmp_path / "a.csv")
    listed = pd.read_csv(tmp_path / "a.csv", keep_default_na=False)
    assert len(listed) == 5 and "No such file" in listed["error"].iloc[-1]
    run_script("06_infer.py", split["image_path"].iloc[0], "--outputs-dir", outputs, "--output", tmp_path / "b.csv")
    single = pd.read_csv(tmp_path / "b.csv")
    assert single["malignant_score"].iloc[0] == pytest.approx(float(listed["malignant_score"].iloc[0]), abs=1e-6)
    refused = run_script("06_infer.py", tmp_path / "list.csv", "--outputs-dir", outputs, "--output",
                         tmp_path / "a.csv", check=False)
    assert refused.returncode == 2 and "--force" in refused.stderr


def test_multiclass_chain_without_threshold(sample_dir, tmp_path):
    run_script("02_prepare_split.py", "--data-dir", sample_dir, "--out-dir", tmp_path / "split", "--task", "multiclass")
    run_script("03_train.py", "--split-file", tmp_path / "split/split.csv", "--outputs-dir", tmp_path,
               "--architecture", "simple_cnn", "--weights", "none", "--img-size", 48, "--task", "multiclass",
               "--epochs1", 1, "--epochs2", 1)
    images = sorted((sample_dir / "HAM10000_images_part_2").iterdir())[:3]
    result = run_script("06_infer.py", images[0].parent, "--outputs-dir", tmp_path, "--output", tmp_path / "p.csv")
    assert "labelling at threshold 0.5" in result.stderr
    scores = pd.read_csv(tmp_path / "p.csv")
    columns = [f"prob_{dx}" for dx in ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")]
    assert list(scores.columns) == ["path", *columns, "top_class", "malignant_score", "label", "error"]
    np.testing.assert_allclose(scores[columns].sum(axis=1), 1, atol=1e-4)
    np.testing.assert_allclose(scores["malignant_score"], scores[["prob_akiec", "prob_bcc", "prob_mel"]].sum(axis=1),
                               atol=1e-6)
    run_script("04_tune_threshold.py", "--outputs-dir", tmp_path, "--target-sensitivity", "0.8")
    threshold = json.loads(((tmp_path / "latest").resolve() / "threshold.json").read_text())
    assert threshold["task"] == "multiclass" and "akiec, bcc, mel" in threshold["score"]
    run_script("05_evaluate.py", "--outputs-dir", tmp_path, "--bootstrap", 50)
    metrics_file = json.loads(((tmp_path / "latest").resolve() / "test_metrics.json").read_text())
    assert {"macro_roc_auc", "balanced_accuracy"} <= set(metrics_file["multiclass"])


def test_missing_run_is_explained(tmp_path):
    result = run_script("05_evaluate.py", "--outputs-dir", tmp_path, check=False)
    assert result.returncode == 2 and "03_train.py" in result.stderr
