"""Lesion-level split: acceptance on real HAM10000, and the script's files and guards."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from src.data import DatasetError, load_dataset
from src.split import split_dataset
from tests.conftest import run_script, write_image

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
    check_split_quality(split_dataset(load_dataset(ham10000_dir), "binary", seed=seed), 1.5)


def test_split_script_on_sample_writes_table_and_summary(sample_dir, tmp_path):
    out = tmp_path / "split"
    run_script("02_prepare_split.py", "--data-dir", sample_dir, "--out-dir", out, "--task", "multiclass")
    table = pd.read_csv(out / "split.csv")
    assert list(table.columns) == ["image_id", "lesion_id", "dx", "label", "split", "image_path"]
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
    assert "already this split" in again.stderr
    refused = run_script("02_prepare_split.py", "--data-dir", sample_dir, "--out-dir", out,
                         "--seed", "7", check=False)
    assert refused.returncode == 2 and "--force" in refused.stderr
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
    table = split_dataset(load_dataset(tmp_path / "cf"), "binary")
    assert (table.loc[table["image_id"].str.startswith("te_"), "split"] == "test").all()
    carved = table[table["image_id"].str.startswith("tr_")]
    assert set(carved["split"]) == {"train", "val"}
    assert np.isclose((carved["split"] == "val").mean(), 0.15 / 0.85, atol=0.03)


def test_too_few_lesions_of_a_class_is_explained(tmp_path):
    from tests.conftest import balanced_rows, make_kaggle_folder

    rows = [row for row in balanced_rows(6) if not (row[2] == "df" and row[0] > "HAM_df001")]
    with pytest.raises(DatasetError, match="df has 2"):
        split_dataset(load_dataset(make_kaggle_folder(tmp_path / "ham", rows)), "binary")
