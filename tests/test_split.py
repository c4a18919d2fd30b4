"""Lesion-level split: acceptance on real HAM10000, and the script's files and guards."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from skin_lesion.data.datasets import load_dataset
from skin_lesion.data.split import split_dataset
from skin_lesion.errors import DatasetError
from tests.conftest import BINARY_TASK, SEVEN_CLASS_TASK, balanced_rows, make_kaggle_folder, run_script, write_image

SPLITS = ("train", "val", "test")


def check_split_quality(table: pd.DataFrame, tolerance_pp: float) -> None:
    assert table.groupby("lesion_id")["split"].nunique().max() == 1, "a lesion is in two splits"
    overall = table["dx"].value_counts(normalize=True)
    for name in SPLITS:
        part = table[table["split"] == name]["dx"].value_counts(normalize=True)
        assert set(part.index) == set(overall.index), f"{name} lacks a class"
        worst = (part.reindex(overall.index) - overall).abs().max() * 100
        assert worst <= tolerance_pp, f"{name}: class share off by {worst:.2f} pp"


def test_real_ham10000_split_acceptance(ham10000_dir, tmp_path):
    first = run_script("02_prepare_split.py", "--data-dir", ham10000_dir, "--out-dir", tmp_path / "a")
    run_script("02_prepare_split.py", "--data-dir", ham10000_dir, "--out-dir", tmp_path / "b")
    assert (tmp_path / "a/split.csv").read_bytes() == (tmp_path / "b/split.csv").read_bytes()
    table = pd.read_csv(tmp_path / "a/split.csv")
    assert len(table) == 8044
    check_split_quality(table, tolerance_pp=1.5)
    shares = table["split"].value_counts(normalize=True)
    assert abs(shares["train"] - 0.70) < 0.01 and abs(shares["test"] - 0.15) < 0.01
    summary = json.loads((tmp_path / "a/split_summary.json").read_text())
    train = table[table["split"] == "train"]
    malignant = train["dx"].isin(["akiec", "bcc", "mel"])
    assert summary["class_weights"]["malignant"] == pytest.approx(len(train) / (2 * malignant.sum()), abs=1e-6)
    assert summary["splits"]["test"]["positive_ratio"] == pytest.approx(
        table[table.split == "test"]["dx"].isin(["akiec", "bcc", "mel"]).mean(), abs=1e-6)
    assert summary["seed"] == 42 and summary["images"] == 8044
    assert "train" in first.stderr and "malignant" in first.stderr


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_other_seeds_keep_class_shares(ham10000_dir, seed):
    check_split_quality(split_dataset(load_dataset(ham10000_dir), BINARY_TASK, seed=seed).table, 1.5)


def test_split_script_on_sample_writes_table_and_summary(sample_dir, tmp_path):
    out = tmp_path / "split"
    run_script("02_prepare_split.py", "--data-dir", sample_dir, "--out-dir", out, "--task", "multiclass")
    table = pd.read_csv(out / "split.csv")
    assert list(table.columns) == ["image_id", "lesion_id", "patient_id", "dx", "label", "split", "age", "sex",
                                   "localization", "image_path"]
    metadata = pd.read_csv(sample_dir / "HAM10000_metadata.csv").set_index("image_id")
    pd.testing.assert_series_equal(table.set_index("image_id")["localization"],
                                   metadata.loc[table["image_id"], "localization"], check_names=False)
    check_split_quality(table, tolerance_pp=5)
    order = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert (table["label"] == table["dx"].map(order.index)).all()
    summary = json.loads((out / "split_summary.json").read_text())
    assert sum(part["images"] for part in summary["splits"].values()) == len(table)
    assert set(summary["class_weights"]) == set(order)


def test_split_refuses_to_replace_a_different_split(sample_dir, tmp_path):
    out = tmp_path / "split"
    run_script("02_prepare_split.py", "--data-dir", sample_dir, "--out-dir", out)
    before = (out / "split.csv").read_bytes()
    again = run_script("02_prepare_split.py", "--data-dir", sample_dir, "--out-dir", out)
    assert "already this split" in again.stderr and "Wrote" not in again.stderr
    refused = run_script("02_prepare_split.py", "--data-dir", sample_dir, "--out-dir", out,
                         "--seed", "7", check=False)
    assert refused.returncode == 2 and "--force" in refused.stderr and "--out-dir DIR" in refused.stderr
    assert (out / "split.csv").read_bytes() == before
    other_task = run_script("02_prepare_split.py", "--data-dir", sample_dir, "--out-dir", out,
                            "--task", "multiclass", check=False)
    assert other_task.returncode == 2 and "03_train.py --task multiclass trains on it as it is" in other_task.stderr
    assert (out / "split.csv").read_bytes() == before
    run_script("02_prepare_split.py", "--data-dir", sample_dir, "--out-dir", out, "--seed", "7", "--force")
    assert (out / "split.csv").read_bytes() != before
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary file left behind"


def test_bad_ratios_are_refused(sample_dir, tmp_path):
    result = run_script("02_prepare_split.py", "--data-dir", sample_dir, "--out-dir", tmp_path,
                        "--ratios", "0.8", "0.3", "0.1", check=False)
    assert result.returncode == 2 and "--ratios" in result.stderr


def test_class_folders_keep_given_splits_and_carve_missing_ones(tmp_path):
    for dx in ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"):
        for i in range(20):
            write_image(tmp_path / "cf" / "train" / dx.upper() / f"tr_{dx}_{i}.jpg")
        for i in range(4):
            write_image(tmp_path / "cf" / "test" / dx / f"te_{dx}_{i}.jpg")
    table = split_dataset(load_dataset(tmp_path / "cf"), BINARY_TASK).table
    assert (table.loc[table["image_id"].str.startswith("te_"), "split"] == "test").all()
    carved = table[table["image_id"].str.startswith("tr_")]
    assert set(carved["split"]) == {"train", "val"}
    assert np.isclose((carved["split"] == "val").mean(), 0.15 / 0.85, atol=0.03)


def without_lesions(rows, dx: str, keep: int):
    """``rows`` with only the first ``keep`` lesions of diagnosis ``dx``."""
    lesions = sorted({lesion for lesion, _, code in rows if code == dx})[:keep]
    return [row for row in rows if row[2] != dx or row[0] in lesions]


def test_a_diagnosis_too_rare_for_every_split_stays_in_training(tmp_path):
    rows = without_lesions(balanced_rows(10), "df", keep=2)
    out = tmp_path / "split"
    result = run_script("02_prepare_split.py", "--data-dir", make_kaggle_folder(tmp_path / "ham", rows),
                        "--out-dir", out, "--task", "multiclass")
    assert "df has 2" in result.stderr and "stay in the training split" in result.stderr
    table = pd.read_csv(out / "split.csv")
    assert set(table.loc[table["dx"] == "df", "split"]) == {"train"}
    assert all(set(table.loc[table["split"] == name, "dx"]) == {"akiec", "bcc", "bkl", "mel", "nv", "vasc"}
               for name in ("val", "test"))
    summary = json.loads((out / "split_summary.json").read_text())
    assert summary["train_only_diagnoses"] == ["df"] and summary["splits"]["test"]["dx_counts"]["df"] == 0


def test_data_without_malignant_lesions_is_refused_and_nothing_is_written(tmp_path):
    rows = [row for row in balanced_rows(6) if row[2] not in ("akiec", "bcc", "mel")]
    out = tmp_path / "split"
    result = run_script("02_prepare_split.py", "--data-dir", make_kaggle_folder(tmp_path / "ham", rows),
                        "--out-dir", out, check=False)
    assert result.returncode == 2
    assert "no malignant image" in result.stderr and "holds 0 malignant lesion(s)" in result.stderr
    assert "Add malignant images" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() or not list(out.iterdir())


def test_multiclass_split_without_a_diagnosis_says_what_works(tmp_path):
    rows = [row for row in balanced_rows(10) if row[2] != "vasc"]
    with pytest.raises(DatasetError, match="none of vasc. Add images of them, or use --task binary"):
        split_dataset(load_dataset(make_kaggle_folder(tmp_path / "ham", rows)), SEVEN_CLASS_TASK)
    assert len(split_dataset(load_dataset(tmp_path / "ham"), BINARY_TASK).table) == len(rows)


def test_a_split_too_small_for_its_ratios_gets_advice_that_works(tmp_path):
    root = make_kaggle_folder(tmp_path / "ham", balanced_rows(3))
    with pytest.raises(DatasetError, match="--ratios 0.5 0.25 0.25") as error:
        split_dataset(load_dataset(root), BINARY_TASK)
    assert "change the ratios" not in str(error.value)
    table = split_dataset(load_dataset(root), BINARY_TASK, ratios=(0.34, 0.33, 0.33)).table
    assert set(table["split"]) == {"train", "val", "test"}
