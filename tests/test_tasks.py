"""The label space and the task: what a model's outputs mean comes from the data, is carried by
every record, and is read back from there by every step."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from skin_lesion.data.datasets import load_dataset
from skin_lesion.data.datasets.ham10000 import HAM10000
from skin_lesion.data.records import task_of_outputs, task_of_record
from skin_lesion.data.split import split_label_space, write_split
from skin_lesion.errors import ConfigError, DatasetError
from skin_lesion.models.saved import INFO_ATTRIBUTE
from skin_lesion.tasks import BINARY, MULTICLASS, LabelSpace, Task
from tests.conftest import REPO, run_script

#: Four diagnoses under other codes and names than HAM10000's, two of them malignant.
FOUR = LabelSpace("four-class test set", ("BCC", "BKL", "MEL", "NV"),
                  ("basal cell carcinoma", "benign keratosis", "melanoma", "naevus"), frozenset({"BCC", "MEL"}))
RENAMED = {"bcc": "BCC", "bkl": "BKL", "mel": "MEL", "nv": "NV"}


def test_a_task_derives_outputs_labels_and_the_malignant_score_from_its_label_space():
    binary, multiclass = Task(BINARY, FOUR), Task(MULTICLASS, FOUR)
    assert (binary.num_outputs, binary.activation, binary.classes) == (1, "sigmoid", ("benign", "malignant"))
    assert (multiclass.num_outputs, multiclass.activation, multiclass.classes) == (4, "softmax", FOUR.codes)
    codes = ["NV", "MEL", "BKL", "BCC"]
    assert binary.labels(codes).tolist() == [0, 1, 0, 1]
    assert multiclass.labels(codes).tolist() == [3, 2, 1, 0]
    assert multiclass.malignant_of_labels([3, 2, 1, 0]).tolist() == [0, 1, 0, 1]
    assert multiclass.targets([2]).tolist() == [[0, 0, 1, 0]] and binary.targets([1]).tolist() == [[1.0]]
    probabilities = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.0, 0.25, 0.25]])
    np.testing.assert_allclose(multiclass.malignant_score(probabilities), [0.4, 0.75])
    assert binary.probabilities(np.array([[0.3], [0.9]])).tolist() == [0.3, 0.9]
    assert multiclass.describe() == "4 diagnoses" and binary.describe() == "benign vs malignant"
    with pytest.raises(DatasetError, match="akiec.*not in the label space 'four-class test set'"):
        multiclass.labels(["akiec"])


def test_label_spaces_refuse_what_cannot_be_a_label_space():
    with pytest.raises(DatasetError, match="malignant code.*'scc'"):
        LabelSpace("bad", ("a", "b"), ("A", "B"), frozenset({"scc"}))
    with pytest.raises(DatasetError, match="unique"):
        LabelSpace("bad", ("a", "a"), ("A", "A"), frozenset())
    with pytest.raises(ConfigError, match="Unknown task 'ternary'"):
        Task("ternary", FOUR)


def test_records_carry_the_label_space_and_old_records_mean_ham10000():
    task = Task(MULTICLASS, FOUR)
    record = json.loads(json.dumps(task.as_record()))
    assert task_of_record(record, "r") == task and record["class_names"] == list(FOUR.codes)
    assert task_of_record({"task": "binary"}, "old") == Task(BINARY, HAM10000)
    assert task_of_record({"task": "multiclass", "class_names": list(HAM10000.codes)}, "old").num_outputs == 7
    with pytest.raises(ConfigError, match="record.json names no task"):
        task_of_record({}, "record.json")
    assert task_of_outputs(1, Path("m.h5")) == Task(BINARY, HAM10000)
    assert task_of_outputs(7, Path("m.h5")) == Task(MULTICLASS, HAM10000)
    with pytest.raises(ConfigError, match="m.h5 has 5 outputs and does not say what they mean"):
        task_of_outputs(5, Path("m.h5"))


def test_only_the_label_space_and_the_command_line_spell_out_a_task_name():
    """Everything else asks a Task (the acceptance: at most three modules, here one)."""
    package = REPO / "src" / "skin_lesion"
    spelled = sorted(str(path.relative_to(package)) for path in package.rglob("*.py")
                     if re.search(r"""["'](binary|multiclass)["']""", path.read_text()))
    assert spelled == ["tasks.py"]


def test_the_package_is_skin_lesion_and_no_src_module_is_installed(tmp_path):
    code = ("import importlib.util, skin_lesion\n"
            "assert importlib.util.find_spec('src') is None, importlib.util.find_spec('src')\n"
            "print(skin_lesion.__file__)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).parent == REPO / "src" / "skin_lesion"


def four_class_split(sample_dir: Path, out: Path) -> Path:
    """A split of the sample data's bcc, bkl, mel and nv images, read as the FOUR label space."""
    dataset = load_dataset(sample_dir)
    table = dataset.table[dataset.table["dx"].isin(list(RENAMED))]
    dataset.table = table.assign(dx=table["dx"].map(RENAMED)).reset_index(drop=True)
    dataset.label_space = FOUR
    write_split(dataset, out, MULTICLASS)
    return out / "split.csv"


@pytest.mark.slow
def test_a_label_space_from_the_data_flows_through_every_step(sample_dir, tmp_path):
    split_file = four_class_split(sample_dir, tmp_path / "split")
    assert split_label_space(split_file) == FOUR
    outputs = tmp_path / "outputs"
    run_script("03_train.py", "--split-file", split_file, "--outputs-dir", outputs, "--architecture", "simple_cnn",
               "--weights", "none", "--img-size", 32, "--skip-phase1", "--epochs2", 2, "--task", "multiclass",
               "--precision", "float32")
    run = (outputs / "latest").resolve()
    for record in ("training_config.json", "calibration.json"):
        assert task_of_record(json.loads((run / record).read_text()), record) == Task(MULTICLASS, FOUR)
    with h5py.File(run / "models" / "simple_cnn_best.h5", "r") as handle:
        info = json.loads(handle.attrs[INFO_ATTRIBUTE])
    assert task_of_record(info, "model") == Task(MULTICLASS, FOUR)

    run_script("04_tune_threshold.py", "--outputs-dir", outputs)
    evaluated = run_script("05_evaluate.py", "--outputs-dir", outputs, "--bootstrap", 0)
    metrics = json.loads((run / "test_metrics.json").read_text())
    balanced = metrics["multiclass"]["balanced_accuracy"]["value"]
    assert f"balanced accuracy {balanced:.3f}, macro ROC-AUC" in evaluated.stderr
    split = pd.read_csv(split_file)
    test = split[split["split"] == "test"]
    assert metrics["malignant"] == int(test["dx"].isin(["BCC", "MEL"]).sum())
    assert [key for key in metrics["per_class"] if key in FOUR.codes] == list(FOUR.codes)
    assert np.array(metrics["class_confusion_matrix"]).shape == (4, 4)
    card = (run / "model_card.md").read_text()
    assert "4 diagnoses; malignant score = BCC + MEL" in card and "| naevus" in card
    assert "HAM10000" not in card  # no other dataset's facts, licence or citation

    images = tmp_path / "images"
    images.mkdir()
    for path in test["image_path"].head(5):
        (images / Path(path).name).write_bytes(Path(path).read_bytes())
    run_script("06_infer.py", images, "--outputs-dir", outputs)
    scored = pd.read_csv(run / "predictions.csv")
    assert [c for c in scored if c.startswith("prob_")] == [f"prob_{code}" for code in FOUR.codes]
    np.testing.assert_allclose(scored["malignant_score"], scored["prob_BCC"] + scored["prob_MEL"], atol=1e-9)
    assert set(scored["top_class"]) <= set(FOUR.codes)
    run_script("07_explain.py", "--outputs-dir", outputs, "--per-group", 1)
    groups = set(pd.read_csv(run / "explain" / "gradcam_test_cases.csv")["group"])
    assert groups <= {f"{code}_{outcome}" for code in FOUR.codes for outcome in ("correct", "missed")} and groups
