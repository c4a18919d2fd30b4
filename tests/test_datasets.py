"""Datasets beyond HAM10000: each layout read from a re-laid sample (with its quirks), split
without a lesion or patient in two splits, trained, scored with its own class names, and a
HAM10000 model validated externally on the others."""
from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest

from skin_lesion.data.datasets import load_dataset
from skin_lesion.data.metadata import MetadataEncoding
from skin_lesion.data.relayout import relay
from skin_lesion.data.sites import as_known_site
from skin_lesion.errors import DatasetError
from tests.conftest import built_once, copy_run, run_script

LAYOUTS = ("isic2019", "isic2020", "pad-ufes-20", "image-list")


@pytest.fixture(scope="session")
def relaid(sample_dir, tmp_path_factory) -> dict[str, object]:
    """The sample in every other layout: layout -> what to pass as --data-dir."""
    ham = load_dataset(sample_dir)

    def build(folder):
        for layout in LAYOUTS:
            relay(ham, folder / layout, layout)

    folder = built_once(tmp_path_factory, "relaid", build)
    return {layout: folder / layout / "images.csv" if layout == "image-list" else folder / layout
            for layout in LAYOUTS}


def test_each_layout_is_detected_and_read_with_its_quirks(relaid, sample_dir, caplog):
    ham = load_dataset(sample_dir).table.set_index("image_id")
    with caplog.at_level(logging.WARNING):
        isic2019 = load_dataset(relaid["isic2019"])
    assert isic2019.label_space.name == "ISIC 2019" and isic2019.group_by == "lesion_id"
    assert isic2019.label_space.codes == ("ak", "bcc", "bkl", "df", "mel", "nv", "vasc")  # no SCC, UNK images
    assert "no image of scc, unk" in caplog.text
    table = isic2019.table.set_index("image_id")
    assert len(table) == len(ham) and not any(name.endswith("_downsampled") for name in table.index)
    assert any(path.endswith("_downsampled.jpg") for path in table["image_path"])  # found under either name
    single = ham.groupby("lesion_id")["lesion_id"].transform("size") == 1
    assert (table.loc[single[single].index, "lesion_id"] == single[single].index).all()  # own lesion
    assert (table.loc[ham.index, "dx"].map({"ak": "akiec"}).fillna(table["dx"]) == ham["dx"]).all()

    isic2020 = load_dataset(relaid["isic2020"])
    assert isic2020.label_space.codes == ("benign", "malignant") and isic2020.group_by == "patient_id"
    joined = isic2020.table["patient_id"][isic2020.table["patient_id"].str.contains("+", regex=False)]
    assert joined.nunique() == 1  # the published duplicate pair joins two patients into one

    pad = load_dataset(relaid["pad-ufes-20"])
    assert pad.label_space.codes == ("ack", "bcc", "mel", "nev", "sek") and pad.group_by == "patient_id"
    assert pad.label_space.malignant == {"bcc", "mel"} and pad.table["image_path"].str.endswith(".png").all()
    assert set(pad.table["sex"]) <= {"male", "female"}
    biopsied = ham.loc[pad.table["image_id"], "dx_type"].eq("histo").to_numpy()
    assert pad.table["dx_type"].tolist() == np.where(biopsied, "histo", "no_biopsy").tolist()  # from biopsed
    assert isic2019.table["dx_type"].eq("").all()  # ISIC 2019 does not say how diagnoses were confirmed

    listed = load_dataset(relaid["image-list"])
    assert listed.label_space.name == "synthetic sample as an image list"
    assert listed.label_space.malignant == {"akiec", "bcc", "mel"} and len(listed.table) == len(ham)


def test_the_relaid_sample_stays_synthetic_and_real_layouts_record_their_dataset(relaid, sample_dir, tmp_path):
    sample = load_dataset(sample_dir).provenance
    assert sample.synthetic
    for layout in LAYOUTS:
        assert load_dataset(relaid[layout]).provenance == sample, layout
    folder = shutil.copytree(relaid["isic2019"], tmp_path / "isic2019")
    (folder / "provenance.json").unlink()  # as the challenge publishes it
    real = load_dataset(folder).provenance
    assert (real.name, real.synthetic) == ("ISIC 2019", False) and real.licence.startswith("CC BY-NC 4.0")
    assert "challenge.isic-archive.com" in real.source


def test_a_forced_dataset_that_is_not_there_says_what_it_expects(sample_dir):
    with pytest.raises(DatasetError, match=r"--dataset isic2020: .* does not hold ISIC 2020's files \(train.csv"):
        load_dataset(sample_dir, "isic2020")


def test_isic2019_rows_with_no_or_two_diagnoses_are_named(relaid, tmp_path):
    folder = shutil.copytree(relaid["isic2019"], tmp_path / "isic")
    truth = pd.read_csv(folder / "ISIC_2019_Training_GroundTruth.csv")
    truth.loc[3, ["NV", "BKL"]] = 1.0  # two diagnoses on line 5
    truth.to_csv(folder / "ISIC_2019_Training_GroundTruth.csv", index=False)
    with pytest.raises(DatasetError, match="line.s. 5 mark no diagnosis or more than one"):
        load_dataset(folder)


@pytest.mark.slow
@pytest.mark.parametrize("layout,task", [("isic2019", "multiclass"), ("isic2020", "binary"),
                                         ("pad-ufes-20", "multiclass"), ("image-list", "binary")])
def test_each_layout_splits_by_its_groups_trains_and_scores_with_its_class_names(relaid, tmp_path, layout, task):
    data = relaid[layout]
    run_script("02_prepare_split.py", "--data-dir", data, "--out-dir", tmp_path / "split", "--task", task)
    split = pd.read_csv(tmp_path / "split/split.csv", dtype=str, keep_default_na=False)
    summary = json.loads((tmp_path / "split/split_summary.json").read_text())
    group = summary["group_by"]
    assert group == ("patient_id" if layout in ("isic2020", "pad-ufes-20") else "lesion_id")
    assert split.groupby(group)["split"].nunique().max() == 1  # no lesion or patient in two splits
    assert set(split["split"]) == {"train", "val", "test"}
    run_script("03_train.py", "--split-file", tmp_path / "split/split.csv", "--outputs-dir", tmp_path,
               "--architecture", "simple_cnn", "--weights", "none", "--img-size", 32, "--skip-phase1",
               "--epochs2", 1, "--task", task)
    images = split["image_path"].iloc[:3].tolist()
    pd.DataFrame({"path": images}).to_csv(tmp_path / "list.csv", index=False)
    run_script("06_infer.py", tmp_path / "list.csv", "--outputs-dir", tmp_path, "--output", tmp_path / "p.csv")
    scores = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    codes = summary["label_space"]["codes"]
    if task == "multiclass":
        assert [c for c in scores.columns if c.startswith("prob_")] == [f"prob_{code}" for code in codes]
        assert set(scores["top_class"]) <= set(codes)
    assert (scores["error"] == "").all() and scores["malignant_score"].between(0, 1).all()
    run_script("05_evaluate.py", "--outputs-dir", tmp_path, "--bootstrap", 20)
    card = ((tmp_path / "latest").resolve() / "model_card.md").read_text()
    assert f"Intervals resample {group[:-3]}s" in card  # what the split kept together


@pytest.mark.slow
def test_a_ham10000_model_scores_the_same_images_the_same_in_every_layout(trained_run, relaid, tmp_path):
    """External validation on the sample re-laid as ISIC 2019, ISIC 2020 and an image list: the
    same JPEG bytes get the same scores, so the external ROC-AUC agrees; the card lists each."""
    outputs = copy_run(trained_run.outputs, tmp_path / "outputs")
    run = (outputs / "latest").resolve()
    own = pd.read_csv(run / "test_predictions.csv").set_index("image_id")["malignant_score"]
    aucs = {}
    for layout, folder in (("isic2019", "isic-2019"), ("isic2020", "isic-2020"),
                           ("image-list", "synthetic-sample-as-an-image-list")):
        result = run_script("05_evaluate.py", "--outputs-dir", outputs, "--data-dir", relaid[layout],
                            "--bootstrap", 50)
        assert "External ROC-AUC" in result.stderr
        metrics = json.loads((run / "external" / folder / "metrics.json").read_text())
        aucs[layout] = metrics["binary"]["roc_auc"]["value"]
        scored = pd.read_csv(run / "external" / folder / "predictions.csv").set_index("image_id")
        assert np.allclose(scored.loc[own.index, "malignant_score"], own, atol=1e-6)
        assert metrics["grouped_by"] == ("patient_id" if layout == "isic2020" else "lesion_id")
    assert max(aucs.values()) - min(aucs.values()) < 5e-4, aucs
    card = (run / "model_card.md").read_text()
    section = card.split("## External validation")[1].split("\n## ")[0]
    assert "ISIC 2019" in section and "ISIC 2020" in section and f"{aucs['isic2019']:.3f}" in section
    again = run_script("05_evaluate.py", "--outputs-dir", outputs, "--data-dir", relaid["isic2019"], check=False)
    assert again.returncode == 2 and "--force" in again.stderr


@pytest.mark.slow
def test_external_validation_reports_diagnoses_the_model_does_not_know(trained_run, relaid, tmp_path):
    outputs = copy_run(trained_run.outputs, tmp_path / "outputs")
    result = run_script("05_evaluate.py", "--outputs-dir", outputs, "--data-dir", relaid["pad-ufes-20"],
                        "--bootstrap", 0)
    metrics = json.loads(((outputs / "latest").resolve() / "external/pad-ufes-20/metrics.json").read_text())
    assert metrics["label_mapping"] == {"ack": "akiec", "bcc": "bcc", "mel": "mel", "nev": "nv", "sek": "bkl"}
    assert metrics["unknown_to_model"] == {} and "patients" in result.stderr


def test_sites_of_other_datasets_are_read_in_the_models_vocabulary():
    ham_sites = ("abdomen", "back", "chest", "face", "lower extremity", "upper extremity")
    assert as_known_site("posterior torso", ham_sites) == "back"  # the one HAM site that maps to it
    assert as_known_site("anterior torso", ham_sites) is None  # chest or abdomen: no guess
    assert as_known_site("forearm", ham_sites) == "upper extremity"
    assert as_known_site("chest", ("anterior torso", "head/neck")) == "anterior torso"
    assert as_known_site("back", ("torso",)) == "torso"
    encoding = MetadataEncoding(50.0, 10.0, ("female", "male"), ham_sites)
    assert as_known_site("nose", ham_sites) == "face"  # head/neck, and face is the model's only one
    features, notes = encoding.encode(pd.DataFrame({"age": ["40"], "sex": ["male"], "localization": ["acral"]}))
    assert "localization 'acral' not seen in training, encoded as unknown" in notes[0]  # no palms/soles site
    features, notes = encoding.encode(pd.DataFrame({"age": ["40"], "sex": ["male"], "localization": ["forearm"]}))
    assert notes == [""] and features[0, encoding.columns.index("localization=upper extremity")] == 1
