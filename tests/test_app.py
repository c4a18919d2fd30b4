"""The web app (app.py): the page in Streamlit's AppTest, and the scoring behind it
(skin_lesion.app_backend), which must give exactly what scripts/06_infer.py gives."""
from __future__ import annotations

import functools
import io
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from skin_lesion import app_backend
from skin_lesion.formatting import score_text
from skin_lesion.layout import open_run
from tests.conftest import REPO, copy_run, run_script

APP = REPO / "app.py"
TIMEOUT = 120  # the first run of a session imports TensorFlow


@dataclass(frozen=True)
class AppRuns:
    """Two small runs on the sample data — a tuned and evaluated binary run and an untuned 7-class
    run with a metadata input — and what 06_infer.py writes with the binary run for a folder of
    three sample images, a text file renamed .jpg and a PDF."""

    outputs: Path
    binary: Path
    multiclass: Path
    images: Path  # the sample images folder
    folder: Path  # the folder 06_infer.py scored
    reference: bytes  # its CSV

    @property
    def scored(self) -> list[Path]:
        """The folder's files, as 06_infer.py orders them."""
        return sorted(self.folder.iterdir())

    def reference_scores(self) -> dict[str, float]:
        """File name -> malignant score in the reference CSV."""
        table = pd.read_csv(io.BytesIO(self.reference), keep_default_na=False)
        scored = table[table["error"] == ""]
        return {Path(path).name: float(score) for path, score in zip(scored["path"], scored["malignant_score"])}


def infer_csv(folder_or_list: Path, run: Path, out: Path) -> bytes:
    """What scripts/06_infer.py writes for a folder or CSV list (exit status 1: some files are
    not images)."""
    result = run_script("06_infer.py", folder_or_list, "--run-dir", run, "--output", out, check=False)
    assert result.returncode in (0, 1), result.stderr
    return out.read_bytes()


@functools.cache
def trained_runs(sample_dir: Path, shared_run: Path, metadata_run: Path, root: Path) -> AppRuns:
    """Made once per session, however many test modules ask (a fixture imported into another
    module would be a second fixture and copy again): copies of the shared binary run (the
    newest) and of the shared 7-class model with a metadata input."""
    outputs = root / "outputs"
    multiclass = outputs / "runs" / metadata_run.name
    copy_run(metadata_run, multiclass)
    binary = outputs / "runs" / f"29991231-235959_{shared_run.name.split('_', 1)[1]}"
    copy_run(shared_run, binary)
    record = json.loads((binary / "training_config.json").read_text())
    record["provenance"]["started"] = "2999-12-31T23:59:59"  # the newest: the page's first choice
    (binary / "training_config.json").write_text(json.dumps(record))
    images = sample_dir / "HAM10000_images_part_1"
    folder = root / "to_score"
    folder.mkdir()
    for path in sorted(images.glob("*.jpg"))[:3]:
        shutil.copy(path, folder)
    (folder / "notes_renamed.jpg").write_text("not an image")
    (folder / "letter.pdf").write_bytes(b"%PDF-1.4")
    reference = infer_csv(folder, binary, root / "predictions.csv")
    return AppRuns(outputs, binary, multiclass, images, folder, reference)


@pytest.fixture(scope="session")
def app_runs(sample_dir, trained_run, metadata_run, tmp_path_factory) -> AppRuns:
    return trained_runs(sample_dir, trained_run.run, metadata_run.run, tmp_path_factory.getbasetemp() / "app_runs")


def sample_images(runs: AppRuns, count: int) -> list[Path]:
    return sorted(runs.images.glob("*.jpg"))[:count]


def uploads(paths: list[Path]) -> list[tuple[str, bytes]]:
    return [(path.name, path.read_bytes()) for path in paths]


def page(outputs: Path, monkeypatch, models: Path | None = None) -> AppTest:
    """The page serving runs from ``outputs`` and model files from ``models`` (by default a
    folder that does not exist: the checkout's own models/ stays out of the tests)."""
    monkeypatch.setenv(app_backend.OUTPUTS_VARIABLE, str(outputs))
    monkeypatch.setenv(app_backend.MODELS_VARIABLE, str(models or outputs / "no_models"))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def disclaimer(at: AppTest) -> str:
    return at.warning[0].value


def select_run(at: AppTest, text: str) -> AppTest:
    run = at.selectbox(key="run")
    run.select_index(next(index for index, label in enumerate(run.options) if text in label))
    return at.run()


def upload(at: AppTest, files: list[tuple[str, bytes]]) -> AppTest:
    at.file_uploader(key="images").set_value([(name, data, "application/octet-stream") for name, data in files])
    at.run()
    assert not at.exception, at.exception
    return at


def choose_model_file(at: AppTest) -> AppTest:
    """Take the model from the models folder (its first file is chosen)."""
    return at.radio(key="source").set_value("A model file (.h5)").run()


def texts(at: AppTest) -> str:
    """Everything the page wrote, as one text to search."""
    return "\n".join(element.value for kind in ("markdown", "caption", "info", "error", "warning")
                     for element in at.get(kind))


class WriteAudit:
    """Every file Python opens for writing, and every folder or file it creates or moves, while
    ``recording``: an audit hook (PEP 578) sees them whichever library asks."""

    EVENTS = ("os.mkdir", "os.rename", "os.replace", "os.link", "os.symlink", "shutil.copyfile")
    WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def __init__(self) -> None:
        self.recording = False
        self.written: list[str] = []

    def __call__(self, event: str, args: tuple) -> None:
        if not self.recording:
            return
        if event == "open":
            path, mode, flags = args
            if (isinstance(mode, str) and set(mode) & set("wax+")) or (flags or 0) & self.WRITING:
                self.written.append(f"open {path!r} {mode!r}")
        elif event in self.EVENTS:
            self.written.append(f"{event} {args[0]!r}")


@functools.cache
def write_audit() -> WriteAudit:
    """The one audit hook of the test process (a hook cannot be removed once added)."""
    audit = WriteAudit()
    sys.addaudithook(audit)
    return audit


@contextmanager
def files_written(folder: Path, monkeypatch) -> Iterator[list[str]]:
    """What is written while the block runs: every write Python makes anywhere, and any file
    left in ``folder``, a new folder made the working and the temporary folder for the block."""
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    audit = write_audit()
    audit.written.clear()
    audit.recording = True
    try:
        yield audit.written
    finally:
        audit.recording = False
        audit.written.extend(f"left {path}" for path in folder.rglob("*"))


# --- Without trained runs ---------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_without_runs_the_page_says_how_to_get_a_model(tmp_path, monkeypatch, folder):
    (tmp_path / "empty").mkdir()
    at = page(tmp_path / folder, monkeypatch)
    assert "not a medical device" in disclaimer(at)
    assert "make demo" in at.info[0].value and "models" in at.info[0].value
    assert not at.file_uploader  # nothing to upload to before a model is chosen


def test_runs_that_cannot_be_used_are_listed_not_offered(tmp_path, monkeypatch):
    broken = tmp_path / "runs" / "20260101-120000_resnet50_binary"
    broken.mkdir(parents=True)
    (broken / "training_config.json").write_text("{not json")
    choices = app_backend.run_choices(tmp_path)
    assert [choice.path for choice in choices] == [broken] and "not valid JSON" in choices[0].problem
    at = page(tmp_path, monkeypatch)
    assert "None of the 1 runs" in at.info[0].value
    assert "not valid JSON" in texts(at)


def test_model_files_come_from_the_models_folder_and_its_subfolders(tmp_path):
    (tmp_path / "b.h5").write_bytes(b"")
    (tmp_path / "a.h5").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "from_anna").mkdir()
    (tmp_path / "from_anna" / "model.h5").write_bytes(b"")
    choices = app_backend.model_file_choices(tmp_path)
    assert [choice.label for choice in choices] == ["a.h5", "b.h5", "from_anna/model.h5"]
    assert not any(choice.problem for choice in choices)
    assert app_backend.model_file_choices(tmp_path / "missing") == []


def test_the_allowed_folders_are_set_where_the_server_starts(tmp_path, monkeypatch):
    monkeypatch.delenv(app_backend.OUTPUTS_VARIABLE, raising=False)
    monkeypatch.delenv(app_backend.MODELS_VARIABLE, raising=False)
    assert app_backend.AllowedFolders.from_environment(REPO) == app_backend.AllowedFolders(REPO / "outputs",
                                                                                          REPO / "models")
    monkeypatch.setenv(app_backend.OUTPUTS_VARIABLE, "outputs/demo")
    monkeypatch.setenv(app_backend.MODELS_VARIABLE, str(tmp_path))
    assert app_backend.AllowedFolders.from_environment(REPO) == app_backend.AllowedFolders(REPO / "outputs/demo",
                                                                                          tmp_path)


def test_a_model_file_that_resolves_outside_the_models_folder_is_refused(tmp_path, monkeypatch):
    models, elsewhere = tmp_path / "models", tmp_path / "elsewhere"
    models.mkdir(), elsewhere.mkdir()
    (elsewhere / "secret.h5").write_bytes(b"")
    (models / "linked.h5").symlink_to(elsewhere / "secret.h5")
    (models / "own").mkdir()
    (models / "own" / "model.h5").write_bytes(b"")
    (models / "own" / "threshold.json").symlink_to(elsewhere / "threshold.json")  # dangling: refused too
    (models / "plain").mkdir()
    (models / "plain" / "model.h5").write_bytes(b"")
    (models / "plain" / "threshold.json").write_text("{}")
    problems = {choice.label: choice.problem for choice in app_backend.model_file_choices(models)}
    assert problems["linked.h5"].startswith("refused: linked.h5 resolves outside")
    assert problems["own/model.h5"].startswith("refused: threshold.json resolves outside")
    assert problems["plain/model.h5"] == ""  # its threshold.json lies beside it, inside
    assert app_backend.escaping_file([models / ".." / "elsewhere" / "secret.h5"], models) is not None
    assert app_backend.escaping_file([models / "plain" / ".." / "plain" / "model.h5"], models) is None
    at = choose_model_file(page(tmp_path / "outputs", monkeypatch, models))
    assert not at.text_input  # nothing to type a server path into
    assert at.selectbox(key="model_file").options == ["linked.h5", "own/model.h5", "plain/model.h5"]
    assert "Cannot use that model file: refused: linked.h5 resolves outside" in at.error[0].value
    assert not at.file_uploader


# --- Scoring uploads: the numbers of 06_infer.py ------------------------------------------------


@pytest.mark.slow
def test_uploads_get_the_csv_of_06_infer_byte_for_byte(app_runs):
    predictor = app_backend.predictor_for(app_backend.ModelChoice("run", app_runs.binary, "binary"))
    scored = app_backend.score_uploads(predictor, uploads(app_runs.scored))
    assert scored.csv == app_runs.reference.replace(f"{app_runs.folder}/".encode(), b"")
    assert scored.unsupported == ["letter.pdf"]  # 06_infer passes it over in a folder too
    broken = [image for image in scored.images if image.error]
    assert [image.name for image in broken] == ["notes_renamed.jpg"] and broken[0].image is None
    shown = [image for image in scored.images if not image.error]
    assert all(image.heatmap.shape == image.image.shape == (288, 384, 3) for image in shown)  # 600x450 kept 4:3


@pytest.mark.slow
def test_uploads_are_scored_in_memory_and_never_written_to_disk(app_runs, tmp_path, monkeypatch):
    predictor = app_backend.predictor_for(app_backend.ModelChoice("run", app_runs.binary, "binary"))
    with files_written(tmp_path / "backend", monkeypatch) as written:
        scored = app_backend.score_uploads(predictor, uploads(app_runs.scored))
    assert written == [] and len(scored.images) == 4 and scored.csv
    at = select_run(page(app_runs.outputs, monkeypatch), "benign vs malignant")
    with files_written(tmp_path / "page", monkeypatch) as written:
        upload(at, uploads(sample_images(app_runs, 2)))
    assert written == [] and len(at.metric) == 2 and at.get("download_button")


@pytest.mark.slow
def test_a_run_whose_model_file_leads_outside_the_outputs_folder_is_refused(app_runs, tmp_path, monkeypatch):
    run = copy_run(app_runs.binary, tmp_path / "outputs" / "runs" / app_runs.binary.name)
    model = open_run(run).best_model
    moved = Path(shutil.move(model, tmp_path / "elsewhere.h5"))
    model.symlink_to(moved)
    [choice] = app_backend.run_choices(tmp_path / "outputs")
    assert choice.problem.startswith(f"refused: {model.name} resolves outside {tmp_path / 'outputs'}")
    at = page(tmp_path / "outputs", monkeypatch)
    assert "None of the 1 runs" in at.info[0].value and "refused" in texts(at) and not at.file_uploader


@pytest.mark.slow
def test_patient_data_is_encoded_as_06_infer_encodes_csv_columns(app_runs, tmp_path):
    images = sample_images(app_runs, 2)
    listing = tmp_path / "list.csv"
    listing.write_text("path,age,sex,localization\n" + "".join(f"{path},55,female,back\n" for path in images))
    expected = infer_csv(listing, app_runs.multiclass, tmp_path / "predictions.csv")
    predictor = app_backend.predictor_for(app_backend.ModelChoice("run", app_runs.multiclass, "7-class"))
    patient = {"age": 55, "sex": "female", "localization": "back"}
    scored = app_backend.score_uploads(predictor, uploads(images), patient)
    assert scored.csv == expected.replace(f"{images[0].parent}/".encode(), b"")
    assert app_backend.score_uploads(predictor, uploads(images)).csv != scored.csv  # the data count


# --- The page with a trained run --------------------------------------------------------------


@pytest.mark.slow
def test_a_chosen_run_scores_uploads_as_06_infer_does(app_runs, monkeypatch):
    reference = app_runs.reference_scores()
    images = [path for path in app_runs.scored if path.name in reference]
    at = page(app_runs.outputs, monkeypatch)
    assert "not a medical device" in disclaimer(at)
    at = select_run(at, "benign vs malignant")
    assert "test ROC-AUC" in at.selectbox(key="run").value.label  # evaluated: its test figure is listed
    assert any(element.value.startswith("The data is synthetic") for element in at.warning)  # the sample's
    assert "learnt from Synthetic sample (generated drawings)" in texts(at) and "HAM10000 dermoscopic" not in texts(at)
    record = json.loads((app_runs.binary / "threshold.json").read_text())
    counts = f"on {record['malignant']} malignant / {record['benign']} benign validation images"
    low, high = record["sensitivity_ci95"]
    assert f"sensitivity {record['sensitivity']:.3f} (95 % CI {low:.2f}–{high:.2f})" in texts(at) and counts in texts(at)
    assert "calibrated probability" in texts(at)  # the run fitted a calibration (platt)
    upload(at, uploads(images))
    table = at.dataframe[0].value
    assert list(table["path"]) == [path.name for path in images]
    for name, score in zip(table["path"], table["malignant_score"]):
        assert score == pytest.approx(reference[name], abs=1e-6)  # the table keeps the numbers
    assert [metric.value for metric in at.metric] == [score_text(reference[path.name]) for path in images]
    assert at.get("download_button") and len(at.get("image")) == 2 * len(images)
    assert "Grad-CAM" in " ".join(caption for image in at.get("image") for caption in image.captions)
    assert not at.get("vega_lite_chart") and not at.number_input  # binary, no metadata


@pytest.mark.slow
def test_bad_uploads_are_named_in_a_message(app_runs, monkeypatch):
    at = page(app_runs.outputs, monkeypatch)
    at = select_run(at, "benign vs malignant")
    truncated = sample_images(app_runs, 1)[0].read_bytes()[:2000]
    upload(at, [("letter.pdf", b"%PDF-1.4"), ("notes_renamed.jpg", b"just text"), ("cut.jpg", truncated)])
    errors = [error.value for error in at.error]
    assert len(errors) == 3 and all(name in message for name, message in
                                    zip(["letter.pdf", "notes_renamed.jpg", "cut.jpg"], errors))
    assert not at.metric and not at.dataframe  # no table that would only repeat the messages


@pytest.mark.slow
def test_a_7_class_metadata_model_shows_the_diagnoses_and_patient_fields(app_runs, monkeypatch):
    at = page(app_runs.outputs, monkeypatch)
    at = select_run(at, "7 diagnoses")
    assert "not tuned, 0.5" in texts(at)
    assert at.selectbox(key="sex").options[0] == "unknown" and "back" in at.selectbox(key="site").options
    upload(at, uploads(sample_images(app_runs, 1)))
    assert len(at.get("vega_lite_chart")) == 1 and "Top diagnosis" in texts(at)
    assert "relative to how common it is" in texts(at)  # calibrated 7-class probabilities carry the prevalence
    assert "age missing" in texts(at)
    at.number_input(key="age").set_value(60)
    at.selectbox(key="sex").set_value("male")
    at.run()
    assert not at.exception and "age missing" not in texts(at)


@pytest.mark.slow
def test_a_copied_model_file_is_loaded_once_and_says_what_it_lacks(app_runs, tmp_path, monkeypatch):
    copied = tmp_path / "models" / "copied.h5"
    copied.parent.mkdir()
    shutil.copy(open_run(app_runs.binary).best_model, copied)
    loads = []
    original = app_backend.predictor_for
    monkeypatch.setattr(app_backend, "predictor_for", lambda choice: loads.append(choice) or original(choice))
    at = choose_model_file(page(app_runs.outputs, monkeypatch, copied.parent))
    assert "No threshold.json beside the model" in texts(at) and "not tuned, 0.5" in texts(at)
    assert "This model has no calibration" in texts(at) and "calibrated probability" not in texts(at)
    images = sample_images(app_runs, 2)
    upload(at, uploads(images[:1]))
    upload(at, uploads(images))
    assert len(loads) == 1  # the second image is scored by the cached model
    os.utime(copied, ns=(copied.stat().st_atime_ns, copied.stat().st_mtime_ns + 10**9))
    at.run()
    assert len(loads) == 2  # a changed file is loaded again


@pytest.mark.slow
def test_a_model_grad_cam_cannot_explain_is_scored_with_a_warning_instead_of_maps(app_runs, tmp_path, monkeypatch):
    import keras

    image = keras.Input((32, 32, 3), name="image")
    flat = keras.layers.Flatten()(image)  # no feature map at all
    keras.Model(image, keras.layers.Dense(1, activation="sigmoid")(flat)).save(tmp_path / "dense_only.h5")
    at = choose_model_file(page(app_runs.outputs, monkeypatch, tmp_path))
    upload(at, uploads(sample_images(app_runs, 1)))
    assert not at.exception and at.metric[0].label == "Malignant score"
    assert "without Grad-CAM maps" in texts(at) and "--method saliency" in texts(at)


def png_bytes(image) -> bytes:
    import cv2

    return cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()


@pytest.mark.slow
def test_an_image_unlike_lesions_gets_a_warning_instead_of_a_verdict(app_runs, monkeypatch):
    from skin_lesion.evaluation.non_lesions import constructed_images

    lesion = sample_images(app_runs, 1)[0]
    at = select_run(page(app_runs.outputs, monkeypatch), "benign vs malignant")
    upload(at, [("one_pixel.png", png_bytes(constructed_images()["one_pixel"])), *uploads([lesion])])
    flagged = [element.value for element in at.warning if "Out of distribution: no verdict" in element.value]
    assert len(flagged) == 1 and "Too small (1x1 pixels" in flagged[0]
    assert len(at.metric) == 1  # the lesion's verdict only
    table = at.dataframe[0].value
    assert list(table["out_of_distribution"]) == ["True", "False"]
    assert "not a finding" in " ".join(caption for image in at.get("image") for caption in image.captions)
