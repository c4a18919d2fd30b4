"""Ensembles (scripts/ensemble.py): one plain Keras model averaging finished runs, chosen on
validation only, used by every later step as any run."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skin_lesion.evaluation.selection import Validation, greedy_selection
from tests.conftest import built_once, copy_run, run_script


@pytest.fixture(scope="session")
def ensemble_run(trained_run, metadata_run, tmp_path_factory) -> Path:
    """The 48-pixel binary image-only run and the 32-pixel 7-class metadata run, weighted 1:3: the
    binary ensemble reads the 7-class member's malignant score."""
    def build(outputs: Path) -> None:
        run_script("ensemble.py", "--runs", trained_run.run, metadata_run.run, "--weights", 1, 3,
                   "--outputs-dir", outputs)

    return (built_once(tmp_path_factory, "ensemble", build) / "latest").resolve()


@pytest.mark.slow
def test_ensemble_loads_plainly_and_averages_its_members(ensemble_run, trained_run, metadata_run):
    import keras

    model_file = ensemble_run / "models" / "ensemble_best.h5"
    plain = subprocess.run([sys.executable, "-c", "import keras, sys; m = keras.models.load_model(sys.argv[1]); "
                            "print([tuple(i.shape) for i in m.inputs], m.outputs[0].shape)", str(model_file)],
                           capture_output=True, text=True, check=True)
    assert "(None, 48, 48, 3)" in plain.stdout and plain.stdout.count("(None,") == 3  # image, metadata, one output
    assert plain.stdout.strip().endswith("(None, 1)")
    ensemble = keras.models.load_model(model_file, compile=False)
    small = keras.models.load_model(metadata_run.run / "models" / "simple_cnn_best.h5", compile=False)
    large = keras.models.load_model(trained_run.run / "models" / "vgg_scratch_best.h5", compile=False)
    images = np.random.default_rng(0).integers(0, 256, (5, 48, 48, 3)).astype(np.float32)
    metadata = np.random.default_rng(1).random((5, small.inputs[1].shape[-1])).astype(np.float32)
    resized = keras.layers.Resizing(32, 32)(images).numpy()
    classes = small.predict({"image": resized, "metadata": metadata}, verbose=0)
    malignant = classes[:, [0, 1, 4]].sum(axis=1, keepdims=True)  # akiec, bcc, mel
    expected = 0.25 * large.predict(images, verbose=0) + 0.75 * malignant
    np.testing.assert_allclose(ensemble.predict({"image": images, "metadata": metadata}, verbose=0), expected,
                               atol=1e-5)
    record = json.loads((ensemble_run / "training_config.json").read_text())
    assert record["task"] == "binary" and [m["task"] for m in record["members"]] == ["binary", "multiclass"]
    assert [m["weight"] for m in record["members"]] == [0.25, 0.75]
    assert [m["img_size"] for m in record["members"]] == [48, 32] and record["settings"]["img_size"] == 48
    assert record["out_of_distribution"]["feature_dimensions"] > 0 and (ensemble_run / "calibration.json").is_file()


@pytest.mark.slow
def test_ensemble_goes_through_every_later_step(ensemble_run, sample_split, tmp_path):
    from skin_lesion import app_backend
    from skin_lesion.layout import RunLayout
    from skin_lesion.serving.predictor import from_run

    run = copy_run(ensemble_run, tmp_path / "run")
    run_script("04_tune_threshold.py", "--run-dir", run)
    run_script("05_evaluate.py", "--run-dir", run, "--bootstrap", 20)
    compared = json.loads((run / "test_metrics.json").read_text())["ensemble_comparison"]
    assert {"roc_auc/gain_over_best", "pr_auc/members_mean"} <= set(compared["figures"]) and compared["images"] > 0
    card = (run / "model_card.md").read_text()
    assert "## Members" in card and "a multiclass member gives the sum of its malignant classes" in card
    assert re.search(r"\| `[^`]+_simple_cnn_multiclass` +\| simple_cnn +\| multiclass +\| 32x32 +\| yes +\| 0\.750 ", card)
    value = compared["figures"]["roc_auc/ensemble"]["value"]
    assert re.search(rf"\| ROC-AUC \(malignant score\) +\| {value:.3f} \(95 % CI", card)
    image = sorted(Path(sample_split).parent.rglob("*.jpg"))[:1] or sorted(
        Path(sample_split).parents[1].rglob("*.jpg"))[:1]
    run_script("06_infer.py", image[0], "--run-dir", run, "--output", tmp_path / "scores.csv")
    assert len((tmp_path / "scores.csv").read_text().splitlines()) == 2
    run_script("07_explain.py", "--run-dir", run)
    assert any((run / "explain").iterdir())
    run_script("08_export.py", "--run-dir", run, "--format", "tflite")  # its members' dropout left out
    agreement = json.loads((run / "export" / "tflite" / "description.json").read_text())["agreement"]
    assert agreement["max_score_difference"] < 1e-4 and agreement["label_agreement"] == 1.0
    predictor = from_run(RunLayout(run, "ensemble"))
    scored = app_backend.score_uploads(predictor, [(image[0].name, image[0].read_bytes())])
    assert scored.images[0].heatmap is not None and not scored.unexplained
    from skin_lesion.evaluation.compare import run_row

    row = run_row(run)  # an ensemble trains no epochs: listed as completed, not broken
    assert (row["architecture"], row["status"], row["epochs_planned"]) == ("ensemble", "completed", None)


def tiny_model(size: int, units: int, seed: int):
    """A model shaped as the project's (image input, pooled features, named output), untrained."""
    import keras

    keras.utils.set_random_seed(seed)
    image = keras.Input((size, size, 3), name="image")
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(keras.layers.Conv2D(4, 3)(keras.layers.Rescaling(1 / 255)(image)))
    output = keras.layers.Dense(units, activation="sigmoid" if units == 1 else "softmax", name="prediction")(pooled)
    return keras.Model(image, output)


def test_a_binary_ensemble_sums_a_7_class_members_malignant_classes_and_says_so_after_saving(tmp_path):
    import keras

    from skin_lesion.models.ensemble import build_ensemble, members_of

    binary, seven = tiny_model(16, 1, 0), tiny_model(8, 7, 1)
    path = tmp_path / "ensemble.h5"
    build_ensemble([binary, seven], [1, 3], units=1, malignant_columns=[0, 1, 4]).save(path)
    loaded = keras.models.load_model(path, compile=False)
    images = np.random.default_rng(2).integers(0, 256, (4, 16, 16, 3)).astype(np.float32)
    classes = seven.predict(keras.layers.Resizing(8, 8)(images).numpy(), verbose=0)
    expected = 0.25 * binary.predict(images, verbose=0) + 0.75 * classes[:, [0, 1, 4]].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-6)
    first, second = members_of(loaded)
    assert first.malignant_columns is None and first.resize is None and first.weight == 0.25
    assert second.malignant_columns.tolist() == [0, 1, 4] and second.resize is not None and second.weight == 0.75
    with pytest.raises(ValueError, match="needs the malignant classes"):
        build_ensemble([binary, seven], [1, 1], units=1)


def test_the_malignant_logit_of_a_softmax_is_the_log_odds_of_its_malignant_classes():
    import tensorflow as tf

    from skin_lesion.explanation.gradcam import malignant_logit

    logits = np.array([[0.5, -1.0, 2.0, 0.0, 1.5, 3.0, -2.0]], np.float32)
    probabilities = np.exp(logits) / np.exp(logits).sum()
    malignant = probabilities[0, [0, 1, 4]].sum()
    value = malignant_logit(tf.constant(logits), np.array([0, 1, 4])).numpy()
    np.testing.assert_allclose(value, [[np.log(malignant / (1 - malignant))]], rtol=1e-5)


def test_refuses_what_cannot_be_an_ensemble_naming_the_flag(trained_run, tmp_path):
    same = run_script("ensemble.py", "--runs", trained_run.run, trained_run.run, "--outputs-dir", tmp_path,
                      check=False)
    assert same.returncode == 2 and "--runs: an ensemble needs at least two different runs" in same.stderr
    one = run_script("ensemble.py", "--select-from", trained_run.run, "--max-members", 1, check=False)
    assert one.returncode == 2 and "--max-members must be at least 2" in one.stderr


def test_refuses_members_of_another_label_space(trained_run, tmp_path):
    from skin_lesion.errors import ConfigError
    from skin_lesion.layout import RunLayout
    from skin_lesion.training.ensemble import MemberRun, check_members

    record = json.loads((trained_run.run / "training_config.json").read_text())
    fewer = json.loads(json.dumps(record))
    fewer["label_space"].update(codes=["mel", "nv"], display_names=["Melanoma", "Naevus"], malignant=["mel"])
    members = [MemberRun(RunLayout(trained_run.run, "vgg_scratch"), record),
               MemberRun(RunLayout(tmp_path / "other", "vgg_scratch"), fewer)]
    with pytest.raises(ConfigError, match=f"--select-from {tmp_path / 'other'}: its diagnoses .*mel, nv"):
        check_members(members, "--select-from")


def designed_candidates(trained_run, metadata_run, tmp_path) -> tuple[Path, Path]:
    """Copies of the binary and the 7-class run whose validation results complement each other:
    the binary run ranks the first half of the malignant images right, the 7-class run's malignant
    score (akiec + bcc + mel) the second half; together they rank every image right."""
    binary, classes = copy_run(trained_run.run, tmp_path / "binary"), copy_run(metadata_run.run, tmp_path / "classes")
    with np.load(binary / "val_probs.npz") as saved:
        labels, ids = saved["labels"], saved["image_ids"]
    malignant = np.flatnonzero(labels == 1)
    first = np.isin(np.arange(len(labels)), malignant[: len(malignant) // 2])
    second = (labels == 1) & ~first
    binary_scores = np.where(first, 0.9, np.where(second, 0.1, 0.3))
    mel = np.where(second, 0.95, np.where(first, 0.2, 0.25))
    np.savez(binary / "val_probs.npz", labels=labels, probabilities=binary_scores.astype(np.float32), image_ids=ids)
    seven = np.zeros((len(labels), 7), np.float32)
    rows = np.arange(len(labels))
    seven[rows, np.array([0, 1, 4])[rows % 3]] = mel  # the malignant mass on akiec, bcc or mel in turn
    seven[:, 5] = 1 - mel  # nv
    np.savez(classes / "val_probs.npz", labels=np.where(labels == 1, 4, 5), probabilities=seven, image_ids=ids)
    return binary, classes


def test_selection_reads_a_7_class_run_by_its_malignant_score(trained_run, metadata_run, tmp_path):
    from skin_lesion.training.ensemble import select_members

    binary, classes = designed_candidates(trained_run, metadata_run, tmp_path)
    runs, weights, selection = select_members([binary, classes], max_members=3)
    assert sorted(runs) == sorted([binary, classes]) and weights == [1.0, 1.0]
    assert selection["metric"] == "validation PR-AUC" and selection["trace"][-1]["score"] == 1.0


def test_selection_refuses_when_one_run_beats_every_combination(trained_run, metadata_run, tmp_path):
    binary, classes = designed_candidates(trained_run, metadata_run, tmp_path)
    with np.load(binary / "val_probs.npz") as saved:
        labels, ids = saved["labels"], saved["image_ids"]
    np.savez(binary / "val_probs.npz", labels=labels, probabilities=labels.astype(np.float32), image_ids=ids)
    result = run_script("ensemble.py", "--select-from", binary, classes, "--outputs-dir", tmp_path / "out",
                        check=False)
    assert result.returncode == 2 and f"no other candidate improves {binary}" in result.stderr
    assert "use that run as it is" in result.stderr and not (tmp_path / "out").exists()


def validation(run: str, probabilities, labels, ids=None) -> Validation:
    ids = np.array(ids if ids is not None else [f"ISIC_{i}" for i in range(len(labels))])
    return Validation(run, np.array(labels), np.array(probabilities, np.float32), ids)


def test_greedy_selection_adds_the_complementary_run_and_stops():
    labels = [1, 1, 1, 0, 0, 0]
    # a ranks the first two positives right, b the third; c is noise. a + b ranks all right.
    a = validation("a", [0.9, 0.8, 0.1, 0.3, 0.2, 0.4], labels)
    b = validation("b", [0.2, 0.3, 0.95, 0.25, 0.1, 0.35], labels)
    c = validation("c", [0.1, 0.2, 0.3, 0.9, 0.8, 0.7], labels)
    selection = greedy_selection([c, b, a], max_members=3)
    assert selection["runs"] == ["a", "b"] and selection["weights"] == [1, 1]
    assert [step["added"] for step in selection["trace"]] == ["a", "b"] and selection["trace"][-1]["score"] == 1.0


def test_greedy_selection_of_classes_scores_macro_roc_auc_on_shared_images():
    labels = [0, 1, 2, 2]
    # "good" ranks every class right; "other" ranks class 1 below a class-2 image. Both argmaxes are
    # right on the shared images x, y, z, so balanced accuracy could not tell them apart.
    good = validation("good", np.eye(3)[[0, 1, 2, 2]] * 0.8 + 0.05, labels, ["w", "x", "y", "z"])
    other = validation("other", [[0.13, 0.44, 0.43], [0.1, 0.45, 0.45001], [0.1, 0.3, 0.6]], labels[1:], ["x", "y", "z"])
    selection = greedy_selection([other, good], max_members=2)
    assert selection["images"] == 3 and selection["runs"] == ["good"] and len(selection["trace"]) == 1
    assert selection["metric"] == "validation macro ROC-AUC" and selection["trace"][0]["score"] == 1.0
    assert selection["trace"][0]["candidates"]["other"] == 0.75  # class 1: 1/2; class 2: 1
