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
from scipy.stats import binomtest
from sklearn import metrics

from skin_lesion.formatting import score_text
from skin_lesion.metrics import expected_calibration_error
from skin_lesion.models.calibration import Calibration
from tests.conftest import REPO, SCRIPTS, copy_run, run_script

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chain(trained_run):
    """The shared sample run (trained, tuned, evaluated): (outputs dir, run dir, split file)."""
    return trained_run.outputs, trained_run.run, trained_run.split_file


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
    _, shared, split_file = chain
    run = copy_run(shared, tmp_path / "run")  # the shared run's threshold stays as other tests read it
    opened_log = tmp_path / "opened.txt"
    result = subprocess.run(
        [sys.executable, "-c", AUDITED, str(SCRIPTS / "04_tune_threshold.py"), "unused",
         "--run-dir", str(run), "--target-sensitivity", "0.9", "--force", "--log-opened", str(opened_log)],
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
    truth = saved["labels"]
    scores = Calibration.from_file(run / "calibration.json").apply(saved["probabilities"])
    assert threshold["calibration"] == "platt" and not np.allclose(scores, saved["probabilities"])
    predicted = scores >= threshold["threshold"]
    assert threshold["sensitivity"] == pytest.approx(predicted[truth == 1].mean())
    assert threshold["specificity"] == pytest.approx((~predicted[truth == 0]).mean())
    malignant, benign = int(truth.sum()), int((truth == 0).sum())
    assert (threshold["malignant"], threshold["benign"]) == (malignant, benign)
    for rate, hits, total in (("sensitivity", threshold["tp"], malignant), ("specificity", threshold["tn"], benign)):
        wilson = binomtest(hits, total).proportion_ci(confidence_level=0.95, method="wilson")
        assert threshold[f"{rate}_ci95"] == pytest.approx([wilson.low, wilson.high])
    assert f"on {malignant} malignant / {benign} benign validation images" in result.stderr  # the closing line
    for plot in ("roc_validation.png", "threshold_sweep.png"):
        assert (run / "plots" / plot).stat().st_size > 0
    again = run_script("04_tune_threshold.py", "--run-dir", run, check=False)
    assert again.returncode == 2 and "--force" in again.stderr
    assert "elsewhere" not in again.stderr  # the step has no other location to offer


@pytest.fixture(scope="module")
def evaluated(chain):
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
    assert result["level"] == "image" and result["bootstrap_samples"] == 300 and result["img_size"] == 48
    calibrated, raw = result["calibration"]["calibrated"], result["calibration"]["uncalibrated"]
    assert 0 <= calibrated["malignant_score_ece"] <= 1 and 0 <= raw["malignant_score_brier"] <= 1
    assert calibrated["malignant_score_brier"] == pytest.approx(
        ((predictions["malignant_score"] - truth) ** 2).mean())
    for plot in ("test_roc.png", "test_precision_recall.png", "test_confusion_matrix.png",
                 "test_reliability.png", "test_score_histogram.png"):
        assert (run / "plots" / plot).stat().st_size > 0


def test_lesion_level_tta_variant_is_written_beside_the_default(evaluated):
    outputs, run, _ = evaluated
    before = (run / "test_metrics.json").read_bytes()
    run_script("05_evaluate.py", "--outputs-dir", outputs, "--bootstrap", 100, "--lesion-level", "--tta")
    variant = json.loads((run / "test_metrics_lesion_tta.json").read_text())
    assert variant["level"] == "lesion" and variant["tta"] is True
    assert variant["cases"] == variant["lesions"] < variant["images"]
    assert (run / "test_metrics.json").read_bytes() == before


def test_evaluate_without_bootstrap_reports_values_only(evaluated, tmp_path):
    outputs, run, _ = evaluated
    result = run_script("05_evaluate.py", "--outputs-dir", outputs, "--bootstrap", 0, "--tta")
    assert "Test ROC-AUC" in result.stderr and "CI" not in result.stderr
    metrics_file = json.loads((run / "test_metrics_tta.json").read_text())
    assert metrics_file["binary"]["roc_auc"]["ci95"] is None and metrics_file["bootstrap_samples"] == 0


def test_infer_folder_with_broken_files_matches_evaluate(evaluated, tmp_path):
    outputs, run, _ = evaluated
    predictions = pd.read_csv(run / "test_predictions.csv").iloc[:3]
    folder = tmp_path / "new_images"
    (folder / "nested/deeper").mkdir(parents=True)
    for path, sub in zip(predictions["image_path"], ("", "nested", "nested/deeper")):
        shutil.copy(path, folder / sub / Path(path).name)
    source = Image.open(predictions["image_path"].iloc[0]).convert("RGB")
    source.save(folder / "as_png.png")
    source.save(folder / "nested/as_webp.webp", lossless=True)
    source.convert("L").save(folder / "grayscale.jpg")
    source.convert("CMYK").save(folder / "cmyk.jpg")
    data = Path(predictions["image_path"].iloc[1]).read_bytes()
    (folder / "corrupt.jpg").write_bytes(data[: len(data) // 3])
    (folder / "notes.jpg").write_text("not an image at all")
    (folder / "readme.txt").write_text("a note, not an image")
    result = run_script("06_infer.py", folder, "--outputs-dir", outputs, "--output", tmp_path / "scores.csv",
                        check=False)
    assert result.returncode == 1 and "2 error(s)" in result.stderr  # some files could not be scored
    assert "1 file(s) skipped: 1 not a supported image format" in result.stderr and "readme.txt" in result.stderr
    assert "at 48x48, the model's input size" in result.stderr
    scores = pd.read_csv(tmp_path / "scores.csv", keep_default_na=False)
    images = sorted(str(p) for p in folder.rglob("*") if p.is_file() and p.suffix != ".txt")
    assert len(scores) == 9 and list(scores["path"]) == images
    by_name = scores.set_index(scores["path"].map(lambda p: Path(p).name))
    for name in ("corrupt.jpg", "notes.jpg"):
        assert by_name.loc[name, "error"] and by_name.loc[name, "malignant_score"] == ""
    assert "Unknown image file format" in by_name.loc["notes.jpg", "error"]
    for name in ("as_png.png", "as_webp.webp", "grayscale.jpg", "cmyk.jpg"):
        assert by_name.loc[name, "error"] == "" and 0 <= float(by_name.loc[name, "malignant_score"]) <= 1
    assert float(by_name.loc["as_webp.webp", "malignant_score"]) == pytest.approx(
        float(by_name.loc["as_png.png", "malignant_score"]), abs=1e-6)
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
    partly = run_script("06_infer.py", tmp_path / "list.csv", "--outputs-dir", outputs, "--output",
                        tmp_path / "a.csv", check=False)
    assert partly.returncode == 1 and "missing.jpg: not scored: file not found" in partly.stderr
    listed = pd.read_csv(tmp_path / "a.csv", keep_default_na=False)
    assert len(listed) == 5 and "No such file" in listed["error"].iloc[-1]
    one = run_script("06_infer.py", split["image_path"].iloc[0], "--outputs-dir", outputs,
                     "--output", tmp_path / "b.csv")
    single = pd.read_csv(tmp_path / "b.csv")
    assert single["malignant_score"].iloc[0] == pytest.approx(float(listed["malignant_score"].iloc[0]), abs=1e-6)
    name, score, label = Path(single["path"].iloc[0]).name, single["malignant_score"].iloc[0], single["label"].iloc[0]
    verdict = f"{name}: malignant score {score_text(score)} -> {label} (threshold"
    assert verdict in one.stderr  # one image: said on the console
    for _ in range(2):  # without --output: the verdict only, no CSV, so asking again is never refused
        quiet = run_script("06_infer.py", split["image_path"].iloc[0], "--outputs-dir", outputs)
        assert verdict in quiet.stderr and "->" not in quiet.stderr.replace(verdict, "")
    refused = run_script("06_infer.py", tmp_path / "list.csv", "--outputs-dir", outputs, "--output",
                         tmp_path / "a.csv", check=False)
    assert refused.returncode == 2 and "--force" in refused.stderr and "--output CSV" in refused.stderr


def test_multiclass_chain_without_threshold(sample_dir, tmp_path):
    run_script("02_prepare_split.py", "--data-dir", sample_dir, "--out-dir", tmp_path / "split", "--task", "multiclass")
    trained = run_script("03_train.py", "--split-file", tmp_path / "split/split.csv", "--outputs-dir", tmp_path,
                         "--architecture", "simple_cnn", "--weights", "none", "--img-size", 32, "--task",
                         "multiclass", "--skip-phase1", "--epochs2", 2)
    assert "oneDNN" not in trained.stderr  # the 7-class AUC metrics' notice on boolean ops is caught
    images = sorted((sample_dir / "HAM10000_images_part_2").iterdir())[:3]
    result = run_script("06_infer.py", images[0].parent, "--outputs-dir", tmp_path, "--output", tmp_path / "p.csv")
    assert "labelling at threshold 0.5" in result.stderr and "calibration bias_temperature" in result.stderr
    scores = pd.read_csv(tmp_path / "p.csv")
    columns = [f"prob_{dx}" for dx in ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")]
    assert list(scores.columns) == ["path", *columns, "top_class", "malignant_score", "label", "out_of_distribution",
                                    "ood_distance", "ood_reason", "error"]
    np.testing.assert_allclose(scores[columns].sum(axis=1), 1, atol=1e-4)
    np.testing.assert_allclose(scores["malignant_score"], scores[["prob_akiec", "prob_bcc", "prob_mel"]].sum(axis=1),
                               atol=1e-6)
    run = (tmp_path / "latest").resolve()
    prior = json.loads((run / "calibration.json").read_text())["class_prior"]
    balanced = (scores[columns].to_numpy() / prior).argmax(axis=1)  # top class: highest relative to prevalence
    assert list(scores["top_class"]) == [columns[index][len("prob_"):] for index in balanced]
    run_script("04_tune_threshold.py", "--outputs-dir", tmp_path, "--target-sensitivity", "0.5")  # 2 epochs
    threshold = json.loads(((tmp_path / "latest").resolve() / "threshold.json").read_text())
    assert threshold["task"] == "multiclass" and "akiec, bcc, mel" in threshold["score"]
    run_script("05_evaluate.py", "--outputs-dir", tmp_path, "--bootstrap", 50)
    metrics_file = json.loads(((tmp_path / "latest").resolve() / "test_metrics.json").read_text())
    assert {"macro_roc_auc", "balanced_accuracy"} <= set(metrics_file["multiclass"])
    predictions = pd.read_csv(run / "test_predictions.csv")
    assert metrics_file["multiclass"]["balanced_accuracy"]["value"] == pytest.approx(
        metrics.balanced_accuracy_score(predictions["dx"], predictions["top_class"]))
    decided = predictions.apply(lambda row: row[f"prob_{row['top_class']}"], axis=1)  # the top class's probability
    assert metrics_file["calibration"]["calibrated"]["top_class_ece"] == pytest.approx(
        expected_calibration_error(predictions["dx"] == predictions["top_class"], decided))


def test_infer_finds_the_images_of_a_ham10000_download_in_its_subfolders(chain, sample_dir, tmp_path):
    outputs, _, _ = chain
    result = run_script("06_infer.py", sample_dir, "--outputs-dir", outputs, "--output", tmp_path / "all.csv")
    scores = pd.read_csv(tmp_path / "all.csv", keep_default_na=False)
    assert len(scores) == 524 and (scores["error"] == "").all()
    assert "HAM10000_metadata.csv" in result.stderr and "Found 524 image(s)" in result.stderr


def test_a_copied_model_file_scores_like_its_run(evaluated, tmp_path):
    outputs, run, _ = evaluated
    image = pd.read_csv(run / "test_predictions.csv").iloc[0]
    copied = tmp_path / "models_from_elsewhere"
    copied.mkdir()
    shutil.copy(run / "models/vgg_scratch_best.h5", copied / "lesions.h5")
    alone = run_script("06_infer.py", image["image_path"], "--model-file", copied / "lesions.h5",
                       "--outputs-dir", tmp_path / "outputs")
    assert "No threshold.json beside the model" in alone.stderr and "No calibration.json" in alone.stderr
    for name in ("threshold.json", "calibration.json"):
        shutil.copy(run / name, copied / name)
    pd.DataFrame({"path": [image["image_path"]]}).to_csv(tmp_path / "one.csv", index=False)
    run_script("06_infer.py", tmp_path / "one.csv", "--model-file", copied / "lesions.h5",
               "--outputs-dir", tmp_path / "outputs")
    assert sorted(path.name for path in copied.iterdir()) == ["calibration.json", "lesions.h5", "threshold.json"]
    scored = pd.read_csv(tmp_path / "outputs/model_files/lesions/predictions.csv")
    assert scored["malignant_score"].iloc[0] == pytest.approx(image["malignant_score"], abs=1e-6)
    assert (scored["label"].iloc[0] == "malignant") == bool(image["malignant@tuned"])


LAMBDA_MODEL = """
import sys, keras
inputs = keras.Input((8, 8, 3))
outputs = keras.layers.Lambda(lambda x: x * 2.0)(inputs)
keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(outputs))).save(sys.argv[1])
"""


def test_model_files_that_cannot_be_loaded_are_named(tmp_path, sample_dir):
    subprocess.run([sys.executable, "-c", LAMBDA_MODEL, str(tmp_path / "lambda.h5")], check=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True)
    image = next((sample_dir / "HAM10000_images_part_1").iterdir())
    result = run_script("06_infer.py", image, "--model-file", tmp_path / "lambda.h5", check=False)
    assert result.returncode == 2 and f"Cannot load the model file {tmp_path / 'lambda.h5'}" in result.stderr
    assert "Lambda layer" in result.stderr and "safe_mode=False" in result.stderr
    (tmp_path / "notes.h5").write_text("not a model")
    result = run_script("06_infer.py", image, "--model-file", tmp_path / "notes.h5", check=False)
    assert result.returncode == 2 and str(tmp_path / "notes.h5") in result.stderr
    result = run_script("06_infer.py", image, "--model-file", tmp_path / "missing.h5", check=False)
    assert result.returncode == 2 and f"--model-file {tmp_path / 'missing.h5'}: no such file" in result.stderr
    assert "run completed" not in result.stderr  # a copied model has no run to complete


def test_missing_run_is_explained(tmp_path):
    result = run_script("05_evaluate.py", "--outputs-dir", tmp_path, check=False)
    assert result.returncode == 2 and "03_train.py" in result.stderr


def test_a_metadata_model_scores_the_same_after_a_round_trip_and_without_metadata(sample_dir, metadata_run,
                                                                                    tmp_path):
    run = metadata_run.run
    encoding = json.loads((run / "training_config.json").read_text())["metadata_encoding"]
    assert encoding["columns"][:2] == ["age", "age_missing"] and "localization=unknown" in encoding["columns"]
    run_script("05_evaluate.py", "--run-dir", run, "--bootstrap", 0, "--lesion-level")  # the plain files
    lesions = pd.read_csv(run / "test_predictions_lesion.csv")                          # stay for other tests
    listed_images = lesions["image_ids"].str.cat(sep=";").split(";")
    assert lesions["lesion_id"].is_unique and lesions["images"].sum() == len(set(listed_images))
    single = lesions[lesions["images"] == 1].iloc[:6]  # a lesion's mean is its one image's score
    evaluated = single.assign(image_id=single["image_ids"])
    split = pd.read_csv(metadata_run.split_file).set_index("image_id").loc[evaluated["image_id"]]
    listed = split[["image_path", "age", "sex", "localization"]].rename(columns={"image_path": "path"})
    listed.to_csv(tmp_path / "list.csv", index=False)
    run_script("06_infer.py", tmp_path / "list.csv", "--run-dir", run, "--output", tmp_path / "a.csv")
    from_csv = pd.read_csv(tmp_path / "a.csv", keep_default_na=False)
    np.testing.assert_allclose(from_csv["malignant_score"], evaluated["malignant_score"], atol=1e-6)
    assert (from_csv["metadata_note"] == "").all()

    folder = tmp_path / "images"
    folder.mkdir()
    for path in listed["path"]:
        shutil.copy(path, folder)
    run_script("06_infer.py", folder, "--run-dir", run, "--metadata", sample_dir / "HAM10000_metadata.csv",
               "--output", tmp_path / "b.csv")
    from_file = pd.read_csv(tmp_path / "b.csv", keep_default_na=False)
    by_name = dict(zip(from_file["path"].map(lambda p: Path(p).stem), from_file["malignant_score"]))
    np.testing.assert_allclose([by_name[i] for i in evaluated["image_id"]], evaluated["malignant_score"], atol=1e-6)

    result = run_script("06_infer.py", folder, "--run-dir", run, "--output", tmp_path / "c.csv")
    assert "every image is scored with unknown metadata" in result.stderr
    unknown = pd.read_csv(tmp_path / "c.csv", keep_default_na=False)
    assert (unknown["metadata_note"] == "age missing; sex unknown; localization unknown").all()
    assert (unknown["error"] == "").all() and unknown["malignant_score"].between(0, 1).all()


def test_model_card_is_true_to_the_runs_files(evaluated):
    import re

    outputs, run, _ = evaluated
    card = (run / "model_card.md").read_text()
    metrics = json.loads((run / "test_metrics.json").read_text())

    def row(name: str) -> str:
        """The other cells of the table row that starts with ``name``, ' | '-joined."""
        match = re.search(rf"^\| {re.escape(name)} +\| (.+?) *\|$", card, re.M)
        assert match, name
        return " | ".join(cell.strip() for cell in match.group(1).split("|"))

    for name, key in (("ROC-AUC", "roc_auc"), ("PR-AUC (average precision)", "pr_auc"),
                      ("sensitivity", "sensitivity@tuned"), ("NPV", "npv@tuned")):
        entry = metrics["binary"][key]
        assert row(name) == f"{entry['value']:.3f} (95 % CI {entry['ci95'][0]:.3f}–{entry['ci95'][1]:.3f})"
    after = metrics["calibration"]["calibrated"]
    assert row("after calibration") == f"{after['malignant_score_ece']:.3f} | {after['malignant_score_brier']:.3f}"
    predictions = pd.read_csv(run / "test_predictions.csv")
    for dx, part in predictions.groupby("dx"):
        assert row(dx).split(" | ")[1:3] == [str(len(part)), f"{part['malignant@tuned'].mean():.3f}"], dx
    threshold = json.loads((run / "threshold.json").read_text())
    assert f"({threshold['threshold']:.3f})" in card and "not a medical device" in card
    low, high = threshold["specificity_ci95"]
    assert (f"specificity {threshold['specificity']:.3f} (95 % CI {low:.2f}–{high:.2f}) on {threshold['malignant']} "
            f"malignant / {threshold['benign']} benign validation images (Wilson score intervals)") in card
    assert row("licence") == "code MIT; data MIT, as this project's code that draws it"  # the sample's, not HAM10000's


def test_the_sample_is_called_synthetic_from_its_split_to_a_copied_model_file_and_the_card(evaluated, tmp_path):
    from skin_lesion.models.saved import read_model_info

    _, run, split_file = evaluated
    record = json.loads((split_file.parent / "split_summary.json").read_text())["dataset"]
    assert record["synthetic"] is True and record["name"] == "Synthetic sample (generated drawings)"
    assert json.loads((run / "training_config.json").read_text())["dataset"] == record
    shutil.copy(run / "models/vgg_scratch_best.h5", tmp_path / "copied.h5")
    assert read_model_info(tmp_path / "copied.h5")["dataset"] == record
    card = (run / "model_card.md").read_text()
    assert card.split("\n\n")[2].startswith("> **Synthetic data.** The data is synthetic: Synthetic sample")
    section = {part.split("\n", 1)[0]: part for part in card.split("\n## ")}
    assert "they say nothing about real lesions" in section["Metrics"]
    assert "No patient population, device or skin type" in section["Factors"] and "Vienna" not in card
    assert section["Citation"].startswith("Citation\n\nNothing to cite") and "Tschandl" not in card
    assert "CC BY-NC" not in card
