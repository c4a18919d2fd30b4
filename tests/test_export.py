"""Exported models (08_export.py): every format scores the sample images as the run's .h5 does,
carries the .h5's description, and a copied export folder scores on its own."""
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

from skin_lesion.export.catalogue import FORMATS
from skin_lesion.export.description import detector_of, read_description
from skin_lesion.export.runtimes import open_runner
from skin_lesion.models.ood import load_detector
from skin_lesion.models.saved import read_model_info
from tests.conftest import SCRIPTS, copy_run, run_script

FLOAT_FORMATS = [name for name, spec in FORMATS.items() if not spec.quantised]
QUANTISED_FORMATS = [name for name, spec in FORMATS.items() if spec.quantised]


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory) -> Path:
    """A copy of the shared sample run with every format exported."""
    run = copy_run(trained_run.run, tmp_path_factory.mktemp("export") / "run")
    run_script("08_export.py", "--run-dir", run, "--format", "all")
    return run


def model_path(run: Path, name: str) -> Path:
    return run / "export" / name / FORMATS[name].file_name


def h5_of(run: Path) -> Path:
    return next((run / "models").glob("*_best.h5"))


@pytest.fixture(scope="module")
def sample_images(exported, sample_dir) -> np.ndarray:
    """The sample images, decoded at the model's size as every step decodes them."""
    from skin_lesion.data.images import decode_files

    size = read_model_info(h5_of(exported))["img_size"]
    paths = sorted(str(p) for p in sample_dir.rglob("*.jpg"))[:96]
    return np.concatenate([images for _, images in decode_files(paths, (size, size))])


def scores(path: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw outputs and pooled features of a model in any format, batch by batch."""
    runner = open_runner(path)
    outputs = [runner(images[start:start + 32]) for start in range(0, len(images), 32)]
    return (np.concatenate([np.reshape(raw, (len(raw), -1)) for raw, _ in outputs]),
            np.concatenate([features for _, features in outputs]))


@pytest.mark.parametrize("name", FLOAT_FORMATS)
def test_each_float_format_scores_the_sample_images_as_the_h5(exported, sample_images, name):
    expected, expected_features = scores(h5_of(exported), sample_images)
    got, features = scores(model_path(exported, name), sample_images)
    assert np.abs(got - expected).max() <= 1e-4
    assert np.abs(features - expected_features).max() <= 1e-3 * np.abs(expected_features).max()
    recorded = read_description(model_path(exported, name))["agreement"]
    assert recorded["max_score_difference"] <= 1e-4 and recorded["label_agreement"] == 1.0


@pytest.mark.parametrize("name", QUANTISED_FORMATS)
def test_quantised_formats_record_their_agreement_and_are_smaller(exported, sample_images, name):
    description = read_description(model_path(exported, name))
    agreement = description["agreement"]
    test_images = json.loads((exported / "test_metrics.json").read_text())["images"]
    assert agreement["images"] == test_images
    assert 0.5 <= agreement["label_agreement"] <= 1.0
    assert agreement["test_roc_auc_change"] == pytest.approx(agreement["test_roc_auc"] - agreement["h5_test_roc_auc"])
    assert description["size_bytes"] < read_description(model_path(exported, "tflite"))["size_bytes"] * 0.6
    expected, _ = scores(h5_of(exported), sample_images)
    got, _ = scores(model_path(exported, name), sample_images)
    assert 0 < np.abs(got - expected).max() < 0.2  # quantised: close, not equal


@pytest.mark.parametrize("name", list(FORMATS))
def test_the_description_survives_each_format(exported, name):
    description = read_description(model_path(exported, name))
    h5 = h5_of(exported)
    assert description["format"] == name
    assert description["model_info"] == read_model_info(h5)
    assert description["threshold"] == json.loads((exported / "threshold.json").read_text())
    assert description["calibration"] == json.loads((exported / "calibration.json").read_text())
    stored, original = detector_of(description), load_detector(h5)
    np.testing.assert_array_equal(stored.distance.precision, original.distance.precision)
    np.testing.assert_array_equal(stored.distance.means, original.distance.means)
    assert stored.threshold == original.threshold and stored.checks == original.checks


@pytest.mark.parametrize("name", ["tflite", "onnx"])
def test_a_copied_export_folder_scores_alone_without_tensorflow(exported, sample_images, tmp_path, name):
    folder = Path(shutil.copytree(exported / "export" / name, tmp_path / "elsewhere"))
    np.save(tmp_path / "images.npy", sample_images[:8])
    code = ("import sys, numpy as np; from skin_lesion.export.runtimes import open_runner; "
            "from skin_lesion.export.description import read_description, detector_of; "
            f"runner = open_runner({str(folder / FORMATS[name].file_name)!r}); "
            f"raw, features = runner(np.load({str(tmp_path / 'images.npy')!r})); "
            f"detector_of(read_description({str(folder / FORMATS[name].file_name)!r})); "
            "np.save(sys.argv[1], raw); print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, tmp_path / "raw.npy"], cwd=tmp_path, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "False", "TensorFlow was imported to score a TFLite/ONNX model"
    expected, _ = scores(h5_of(exported), sample_images[:8])
    np.testing.assert_allclose(np.load(tmp_path / "raw.npy").reshape(8, -1), expected, atol=1e-4)


def test_exports_are_not_replaced_without_force_and_formats_are_checked(exported):
    again = run_script("08_export.py", "--run-dir", exported, "--format", "onnx", check=False)
    assert again.returncode == 2 and "already exists; pass --force" in again.stderr
    unknown = run_script("08_export.py", "--run-dir", exported, "--format", "pytorch", check=False)
    assert unknown.returncode == 2 and "invalid choice: 'pytorch'" in unknown.stderr
    missing = run_script("08_export.py", "--run-dir", exported / "nowhere", "--format", "onnx", check=False)
    assert missing.returncode == 2 and "No training run at --run-dir" in missing.stderr


def test_a_metadata_model_exports_with_both_inputs(metadata_run, tmp_path):
    run = copy_run(metadata_run.run, tmp_path / "run")
    run_script("08_export.py", "--run-dir", run, "--format", "onnx")  # alone: its model was never called before
    run_script("08_export.py", "--run-dir", run, "--format", "tflite")
    size = read_model_info(h5_of(run))["img_size"]
    width = len(read_description(model_path(run, "onnx"))["input"]["metadata"]["columns"])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, size, size, 3), dtype=np.uint8)
    metadata = rng.normal(size=(4, width)).astype(np.float32)
    expected, _ = open_runner(h5_of(run))(images, metadata)
    for name in ("tflite", "onnx"):
        got, _ = open_runner(model_path(run, name))(images, metadata)
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_the_keras_file_scores_the_same_under_jax(exported, sample_images, tmp_path):
    """Keras 3's other backends: the .keras file under JAX (runs where JAX is installed; .ci/run
    installs its CPU build)."""
    pytest.importorskip("jax", reason="JAX is not installed (pip install jax); .ci/run installs it")
    np.save(tmp_path / "images.npy", sample_images)
    code = ("import sys, keras, numpy as np; assert keras.backend.backend() == 'jax'; "
            "model = keras.models.load_model(sys.argv[1], compile=False); "
            "np.save(sys.argv[3], model.predict(np.load(sys.argv[2]).astype('float32'), verbose=0))")
    subprocess.run([sys.executable, "-c", code, model_path(exported, "keras"), tmp_path / "images.npy",
                    tmp_path / "jax.npy"], env={**os.environ, "KERAS_BACKEND": "jax"}, check=True,
                   capture_output=True)
    expected, _ = scores(h5_of(exported), sample_images)
    np.testing.assert_allclose(np.load(tmp_path / "jax.npy").reshape(len(expected), -1), expected, atol=1e-4)


class FakeHub:
    """``HfApi`` and ``snapshot_download`` at the boundary: a repository is a folder."""

    def __init__(self, root: Path):
        self.root = root

    def create_repo(self, repo_id, exist_ok=False):
        (self.root / repo_id).mkdir(parents=True, exist_ok=exist_ok)

    def upload_folder(self, folder_path, repo_id, allow_patterns, commit_message):
        for pattern in allow_patterns:
            name = pattern.split("/")[0]
            shutil.copytree(Path(folder_path) / name, self.root / repo_id / name, dirs_exist_ok=True)

    def upload_file(self, path_or_fileobj, path_in_repo, repo_id, commit_message):
        (self.root / repo_id / path_in_repo).write_bytes(path_or_fileobj)

    def snapshot_download(self, repo_id):
        return str(self.root / repo_id)


def test_the_hub_round_trip_publishes_the_card_and_scores_the_pulled_model(exported, sample_images, tmp_path):
    from skin_lesion.export.hub import pull, push

    hub = FakeHub(tmp_path / "hub")
    push(exported, exported / "export", ["onnx", "tflite"], "someone/skin-lesion", api=hub)
    readme = (tmp_path / "hub" / "someone/skin-lesion" / "README.md").read_text()
    header = readme.split("---")[1]
    assert "license: mit" in header and "datasets:" in header and "roc_auc" in header
    assert readme.split("---", 2)[2].strip() == (exported / "model_card.md").read_text().strip()
    pulled = pull("hf://someone/skin-lesion", download=hub.snapshot_download)
    assert pulled.parent.name == "tflite"
    assert pull("hf://someone/skin-lesion/onnx", download=hub.snapshot_download).name == "model.onnx"
    got, _ = scores(pulled, sample_images[:8])
    expected, _ = scores(h5_of(exported), sample_images[:8])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_the_hub_says_plainly_what_went_wrong(exported, tmp_path):
    from huggingface_hub.errors import LocalEntryNotFoundError

    from skin_lesion.errors import UserError
    from skin_lesion.export.hub import pull, push

    def offline(repo_id):
        raise LocalEntryNotFoundError("Cannot find the requested files in the disk cache")

    with pytest.raises(UserError, match="Cannot reach the Hugging Face Hub for someone/model.*HF_HUB_OFFLINE"):
        pull("hf://someone/model", download=offline)
    with pytest.raises(UserError, match="hf://OWNER/NAME or hf://OWNER/NAME/FORMAT"):
        pull("hf://just-a-name", download=offline)
    with pytest.raises(UserError, match="keras not exported under"):
        push(exported, exported / "export_missing", ["keras"], "someone/model", api=FakeHub(tmp_path))


# --- Scoring the exports: 06_infer.py, 07_explain.py and the web app

def test_opencv_decoding_gives_tensorflows_pixels_within_one_level(sample_dir):
    """TFLite and ONNX models are scored on images decoded with OpenCV (no TensorFlow): the same
    DCT-scaled decode and area resize, so at most a rounding step apart (README: the figure)."""
    from skin_lesion.data import images, opencv_images

    paths = sorted(str(p) for p in sample_dir.rglob("*.jpg"))[:64]
    for size in ((96, 96), (48, 48), (200, 150)):
        with_tf = np.concatenate([batch for _, batch in images.decode_files(paths, size)])
        with_cv = np.concatenate([batch for _, batch in opencv_images.decode_files(paths, size)])
        difference = np.abs(with_tf.astype(int) - with_cv)
        assert difference.max() <= 1 and (difference > 0).mean() < 0.005, size


def predictions(csv: Path) -> pd.DataFrame:
    return pd.read_csv(csv, keep_default_na=False).set_index("path")


@pytest.fixture(scope="module")
def h5_predictions(exported, sample_dir, tmp_path_factory) -> Path:
    """06_infer.py's predictions for a folder of sample images with the run's .h5."""
    out = tmp_path_factory.mktemp("h5") / "predictions.csv"
    run_script("06_infer.py", sample_dir / "HAM10000_images_part_1", "--model-file", h5_of(exported), "--output", out)
    return out


def infer_importing(*args) -> bool:
    """Run 06_infer.py as a user would; whether TensorFlow was imported by the time it exited."""
    code = ("import atexit, runpy, sys; atexit.register(lambda: print('TENSORFLOW', 'tensorflow' in sys.modules)); "
            "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code, SCRIPTS / "06_infer.py", *map(str, args)],
                            capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1] == "TENSORFLOW True"


@pytest.mark.parametrize("name", ["keras", "savedmodel", "tflite", "onnx"])
def test_06_infer_scores_a_copied_export_as_the_h5(exported, sample_dir, h5_predictions, tmp_path, name):
    """A copied export folder alone (no run, no threshold.json beside it) gives the .h5's rows:
    labels, out-of-distribution flags and scores (TFLite and ONNX decode with OpenCV and never
    import TensorFlow: scores within 1e-3)."""
    folder = Path(shutil.copytree(exported / "export" / name, tmp_path / "copied" / name))
    model = folder / FORMATS[name].file_name
    out = tmp_path / "predictions.csv"
    imported = infer_importing(sample_dir / "HAM10000_images_part_1", "--model-file", model, "--output", out)
    assert imported == (name in ("keras", "savedmodel"))
    got, expected = predictions(out), predictions(h5_predictions)
    assert list(got.columns) == list(expected.columns) and "out_of_distribution" in got.columns
    tolerance = 1e-3 if name in ("tflite", "onnx") else 1e-4
    assert np.abs(got["malignant_score"] - expected["malignant_score"]).max() <= tolerance
    assert (got["label"] == expected["label"]).all()
    assert (got["out_of_distribution"] == expected["out_of_distribution"]).all()


def test_without_tensorflow_the_pixel_checks_still_flag_unusual_images(exported, tmp_path):
    """The out-of-distribution pixel checks (and the original-size check) on the OpenCV path."""
    from tests.conftest import write_image

    image = write_image(tmp_path / "flat.png", size=(40, 30))
    result = run_script("06_infer.py", image, "--model-file", model_path(exported, "tflite"), check=False)
    assert result.returncode == 0, result.stderr
    assert "too small (40x30 pixels" in result.stderr and "nearly uniform" in result.stderr


def test_model_files_that_cannot_be_used_are_named_in_one_line(exported, sample_dir, tmp_path):
    image = next(sample_dir.rglob("*.jpg"))
    folder = tmp_path / "not_a_model"
    folder.mkdir()
    cases = {str(folder): "a folder without saved_model.pb, so not a SavedModel",
             str(tmp_path / "missing.onnx"): "no such file",
             str(Path(shutil.copy(model_path(exported, "onnx"), tmp_path / "alone.onnx"))): "no description.json beside it"}
    for model, message in cases.items():
        result = run_script("06_infer.py", image, "--model-file", model, check=False)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_06_infer_reads_hub_models_and_says_plainly_when_offline(exported, sample_dir, tmp_path):
    image = next(sample_dir.rglob("*.jpg"))
    result = run_script("06_infer.py", image, "--model-file", "hf://someone/skin-lesion", check=False,
                        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: Cannot reach the Hugging Face Hub for someone/skin-lesion (LocalEntryNotFoundError); check the "
        "network, or work offline with a copy downloaded before (HF_HUB_OFFLINE=1)."]


def test_07_explain_explains_the_keras_export_and_refuses_the_others_plainly(exported, sample_dir, tmp_path):
    image = next(sample_dir.rglob("*.jpg"))
    refused = run_script("07_explain.py", "--model-file", model_path(exported, "tflite"), "--images", image,
                         "--out-dir", tmp_path / "tflite", check=False)
    assert refused.returncode == 2 and "cannot be explained" in refused.stderr and ".keras export" in refused.stderr
    run_script("07_explain.py", "--model-file", model_path(exported, "keras"), "--images", image,
               "--out-dir", tmp_path / "keras")
    assert list((tmp_path / "keras").rglob("*.png"))


def test_the_app_offers_exports_and_scores_them_without_maps(exported, sample_dir, tmp_path):
    """The web app lists each export (a SavedModel by its folder) and scores a TFLite model, saying
    why there is no Grad-CAM map; the .keras export gets its map."""
    from skin_lesion import app_backend

    models = tmp_path / "models"
    for name in ("keras", "savedmodel", "tflite"):
        shutil.copytree(exported / "export" / name, models / name)
    choices = {choice.label: choice for choice in app_backend.model_file_choices(models)}
    assert set(choices) == {"keras/model.keras", "savedmodel", "tflite/model.tflite"}
    assert not any(choice.problem for choice in choices.values())
    image = next(sample_dir.rglob("*.jpg"))
    uploads = [(image.name, image.read_bytes())]
    for label, explained in (("tflite/model.tflite", False), ("keras/model.keras", True)):
        predictor = app_backend.predictor_for(choices[label])
        assert app_backend.trained_on(choices[label]).name
        scored = app_backend.score_uploads(predictor, uploads)
        assert scored.images[0].error == "" and 0 <= scored.images[0].row["malignant_score"] <= 1
        assert (scored.images[0].heatmap is not None) == explained
        assert ("cannot be explained" in scored.unexplained) != explained
