"""The embedded sample dataset and the benchmark scripts' output."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd

from skin_lesion.data.datasets import load_dataset
from skin_lesion.data.datasets.ham10000 import METADATA_COLUMNS
from tests.conftest import run_script


def test_sample_has_the_kaggle_layout_and_a_ham10000_like_mix(sample_dir):
    metadata = pd.read_csv(sample_dir / "HAM10000_metadata.csv")
    assert list(metadata.columns) == list(METADATA_COLUMNS)
    dataset = load_dataset(sample_dir)
    assert dataset.layout == "kaggle" and not dataset.missing_images and not dataset.unlisted_images
    counts = metadata["dx"].value_counts()
    assert counts.index[0] == "nv" and counts["nv"] > 0.5 * len(metadata)
    assert set(counts.index) == {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}
    per_lesion = metadata.groupby("lesion_id").size()
    assert (per_lesion > 1).sum() >= 50 and per_lesion.max() <= 3
    for folder in ("HAM10000_images_part_1", "HAM10000_images_part_2"):
        images = sorted((sample_dir / folder).glob("*.jpg"))
        assert len(images) > 200
        assert cv2.imread(str(images[0])).shape == (450, 600, 3)


def test_sample_is_marked_synthetic_and_its_ids_are_not_ham10000s(sample_dir):
    record = json.loads((sample_dir / "provenance.json").read_text())
    assert record["synthetic"] is True and record["source"] == "scripts/00_make_sample_data.py"
    dataset = load_dataset(sample_dir)
    assert dataset.provenance.synthetic and dataset.provenance.name == record["name"]
    assert "HAM10000" not in dataset.provenance.name and "CC BY-NC" not in dataset.provenance.licence
    table = dataset.table
    assert table["image_id"].str.fullmatch(r"SYN_\d{7}").all()
    assert table["lesion_id"].str.fullmatch(r"SYN_L_\d{7}").all()
    files = [path.stem for path in sample_dir.rglob("*.jpg")]
    assert len(files) == len(table) and not any(name.startswith(("ISIC", "HAM")) for name in files)


def test_sample_classes_look_different(sample_dir):
    table = load_dataset(sample_dir).table
    centre_colour = {}
    for dx in ("nv", "mel", "vasc"):
        paths = table.loc[table["dx"] == dx, "image_path"].iloc[:5]
        crops = [cv2.imread(p)[175:275, 250:350].reshape(-1, 3).mean(axis=0) for p in paths]
        centre_colour[dx] = np.mean(crops, axis=0)
    assert centre_colour["mel"].sum() < centre_colour["nv"].sum()  # melanoma drawn darker
    assert np.abs(centre_colour["vasc"] - centre_colour["nv"]).max() > 20


def test_sample_script_does_not_overwrite(sample_dir, tmp_path):
    target = tmp_path / "sample"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    result = run_script("00_make_sample_data.py", "--out-dir", target, check=False)
    assert result.returncode == 2 and "--force" in result.stderr
    assert (target / "keep.txt").read_text() == "mine"


def test_pipeline_benchmark_prints_its_figures(ham10000_fullsize_dir):
    result = run_script("bench_pipeline.py", "--data-dir", ham10000_fullsize_dir, "--img-size", 64,
                        "--epochs", 1, "--repeats", 1)
    lines = [line for line in result.stdout.splitlines() if "images/s" in line]
    assert len(lines) == 3 and all(float(line.split()[-3]) > 0 for line in lines), result.stdout
