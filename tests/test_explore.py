"""scripts/explore_data.py: every figure is a real PNG that report.md embeds, and the report's
numbers equal counts computed straight from the metadata CSV, the split file and the images."""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import balanced_rows, make_kaggle_folder, run_script, write_image

FIGURES = ["class_counts.png", "images_per_lesion.png", "age_by_diagnosis.png",
           "sex_by_diagnosis.png", "localization_by_diagnosis.png", "image_sizes.png",
           "examples.png", "split_shares.png"]
METADATA_FIGURES = ["age_by_diagnosis.png", "sex_by_diagnosis.png", "localization_by_diagnosis.png"]
DIAGNOSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def section_table(report: str, heading: str) -> pd.DataFrame:
    """The first Markdown table under ``## heading``, as strings indexed by its first column."""
    section = report.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    assert lines, f"no table under '## {heading}'"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    table = pd.DataFrame(rows[2:], columns=rows[0])
    return table.set_index(table.columns[0])


def numbers(column: pd.Series) -> pd.Series:
    return column.astype(float)


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def sample_report(sample_dir, tmp_path_factory) -> tuple[Path, Path]:
    """The report on the sample data with its split: (report folder, split file)."""
    root = tmp_path_factory.mktemp("explore")
    run_script("02_prepare_split.py", "--data-dir", sample_dir, "--out-dir", root / "split")
    run_script("explore_data.py", "--data-dir", sample_dir, "--split-file", root / "split/split.csv",
               "--out-dir", root / "report")
    return root / "report", root / "split/split.csv"


def test_every_figure_is_a_png_that_the_report_embeds(sample_report):
    out_dir, _ = sample_report
    report = (out_dir / "report.md").read_text()
    embedded = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", report)
    assert sorted(embedded) == sorted(FIGURES)
    for name in FIGURES:
        assert (out_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        with Image.open(out_dir / name) as image:
            image.verify()
            assert min(image.size) > 200, f"{name} is {image.size}"
    assert not list(out_dir.glob(".*")), "a temporary file was left behind"


def test_the_report_says_what_the_data_is_not_what_its_layout_suggests(sample_report, patchy_dataset, tmp_path):
    report = (sample_report[0] / "report.md").read_text()
    title, caveat = report.split("\n\n")[:2]
    assert title == "# Synthetic sample (generated drawings) data exploration"
    assert caveat.startswith("**The data is synthetic") and "they say nothing about real lesions" in caveat
    assert "HAM10000 identifies" not in report and "CC BY-NC" not in report
    run_script("explore_data.py", "--data-dir", patchy_dataset, "--out-dir", tmp_path / "report")
    real = (tmp_path / "report/report.md").read_text()
    assert real.startswith("# HAM10000 data exploration\n\nData: ") and "licence CC BY-NC 4.0" in real
    assert "synthetic" not in real


def test_diagnosis_and_lesion_counts_match_the_metadata(sample_report, sample_dir):
    report = (sample_report[0] / "report.md").read_text()
    metadata = read_csv(sample_dir / "HAM10000_metadata.csv")
    table = section_table(report, "Diagnoses")
    images = metadata["dx"].value_counts()
    lesions = metadata.groupby("dx")["lesion_id"].nunique()
    assert (numbers(table.loc[DIAGNOSES, "images"]) == images[DIAGNOSES]).all()
    assert (numbers(table.loc[DIAGNOSES, "lesions"]) == lesions[DIAGNOSES]).all()
    assert numbers(table.loc[DIAGNOSES, "share (%)"]).round(1).tolist() == \
        (100 * images[DIAGNOSES] / len(metadata)).round(1).tolist()
    assert int(table.loc["all", "images"]) == len(metadata)
    assert int(table.loc["all", "lesions"]) == metadata["lesion_id"].nunique()
    assert table.loc["mel", "diagnosis"] == "Melanoma" and table.loc["mel", "malignant"] == "yes"
    ratio = images.max() / images.min()
    assert f"**{images.idxmax()}** has {images.max():,} images, **{ratio:.1f} times**" in report

    per_lesion = section_table(report, "Images per lesion")
    expected = metadata.groupby("lesion_id").size().value_counts()
    assert {int(k): int(v) for k, v in per_lesion["lesions"].items()} == expected.to_dict()


def test_patient_metadata_tables_match_the_metadata(sample_report, sample_dir):
    report = (sample_report[0] / "report.md").read_text()
    metadata = read_csv(sample_dir / "HAM10000_metadata.csv")
    ages = metadata.assign(age=metadata["age"].astype(float)).groupby("dx")["age"]
    age = section_table(report, "Age")
    assert numbers(age.loc[DIAGNOSES, "mean"]).tolist() == ages.mean()[DIAGNOSES].round(1).tolist()
    assert numbers(age.loc[DIAGNOSES, "max"]).tolist() == ages.max()[DIAGNOSES].tolist()
    for heading, column in (("Sex", "sex"), ("Lesion site", "localization")):
        table = section_table(report, heading)
        expected = pd.crosstab(metadata[column], metadata["dx"])
        assert sorted(table.index) == sorted(expected.index)
        for value in expected.index:
            expected_row = expected.loc[value, DIAGNOSES].tolist()
            assert numbers(table.loc[value, DIAGNOSES]).tolist() == expected_row
            assert int(table.loc[value, "all"]) == (metadata[column] == value).sum()


def test_split_table_matches_the_split_file(sample_report):
    out_dir, split_file = sample_report
    split = read_csv(split_file)
    table = section_table((out_dir / "report.md").read_text(), "Splits")
    for name, part in split.groupby("split"):
        counts = part["dx"].value_counts().reindex(DIAGNOSES, fill_value=0)
        assert numbers(table.loc[DIAGNOSES, f"{name} images"]).tolist() == counts.tolist()
        assert numbers(table.loc[DIAGNOSES, f"{name} share (%)"]).tolist() == \
            (100 * counts / len(part)).round(1).tolist()
        assert int(table.loc["all", f"{name} images"]) == len(part)
        assert int(table.loc["lesions", f"{name} images"]) == part["lesion_id"].nunique()


@pytest.fixture()
def patchy_dataset(tmp_path) -> Path:
    """Ten extra nv images, a few missing ages, sexes and sites, and two image sizes."""
    extra_nv = [(f"HAM_nvx{i}", f"ISIC_9{i:06d}", "nv") for i in range(8)]
    rows = balanced_rows(lesions_per_class=2) + extra_nv
    root = make_kaggle_folder(tmp_path / "patchy", rows)
    metadata = read_csv(root / "HAM10000_metadata.csv")
    metadata.loc[[0, 5, 9], "age"] = ""
    metadata.loc[[1, 2], "sex"] = "unknown"
    metadata.loc[[3, 4, 6, 7], "localization"] = ""
    metadata.to_csv(root / "HAM10000_metadata.csv", index=False)
    for image_id in metadata["image_id"][::3]:
        write_image(next(root.glob(f"*/{image_id}.jpg")), size=(64, 48))
    return root


def test_missing_metadata_and_image_sizes_are_counted(patchy_dataset, tmp_path):
    run_script("explore_data.py", "--data-dir", patchy_dataset, "--out-dir", tmp_path / "report")
    report = (tmp_path / "report/report.md").read_text()
    metadata = read_csv(patchy_dataset / "HAM10000_metadata.csv")
    assert ("Missing metadata: age for 3 images, sex for 2 (`unknown` or blank), "
            "lesion site for 4") in report
    assert "**nv** has 10 images, **5.0 times** as many as the rarest" in report
    age = section_table(report, "Age")
    missing = (metadata["age"] == "").groupby(metadata["dx"]).sum()
    assert numbers(age.loc[DIAGNOSES, "age missing"]).tolist() == missing[DIAGNOSES].tolist()
    assert int(section_table(report, "Lesion site").loc["unknown", "all"]) == 4

    sizes = section_table(report, "Image sizes").reset_index()
    shapes = pd.Series([cv2.imread(str(path)).shape[:2] for path in patchy_dataset.glob("*/*.jpg")])
    expected = {(width, height): count for (height, width), count in shapes.value_counts().items()}
    reported = {(int(row.width), int(row.height)): int(row.images) for row in sizes.itertuples()}
    assert reported == expected
    assert "## Splits" not in report and not (tmp_path / "report/split_shares.png").exists()


def test_class_folder_layout_says_its_metadata_is_missing(tmp_path):
    counts = {("train", "NV"): 5, ("val", "NV"): 2, ("train", "MEL"): 3, ("val", "MEL"): 1}
    for (split, dx), count in counts.items():
        for i in range(count):
            write_image(tmp_path / "data" / split / dx / f"{split}_{dx}_{i}.png")
    run_script("explore_data.py", "--data-dir", tmp_path / "data", "--out-dir", tmp_path / "report")
    out_dir = tmp_path / "report"
    report = (out_dir / "report.md").read_text()
    assert report.count("Not available in this layout") == 3
    assert "There is no patient metadata" in report
    assert "does not say how its diagnoses were confirmed (no `dx_type`)" in report
    assert not any((out_dir / name).exists() for name in METADATA_FIGURES)
    embedded = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", report)
    assert sorted(embedded) == sorted(set(FIGURES) - set(METADATA_FIGURES))
    assert all((out_dir / name).is_file() for name in embedded)
    splits = section_table(report, "Splits")
    reported = {(split, dx): int(splits.loc[dx.lower(), f"{split} images"]) for split, dx in counts}
    assert reported == counts
    assert int(section_table(report, "Diagnoses").loc["all", "images"]) == sum(counts.values())


def test_an_existing_report_is_replaced_only_with_force(patchy_dataset, tmp_path):
    out_dir = tmp_path / "report"
    out_dir.mkdir()
    (out_dir / "report.md").write_text("an earlier report\n")
    refused = run_script("explore_data.py", "--data-dir", patchy_dataset, "--out-dir", out_dir,
                         check=False)
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert (out_dir / "report.md").read_text() == "an earlier report\n"
    assert not list(out_dir.glob("*.png")), "figures were written although the report was refused"
    run_script("explore_data.py", "--data-dir", patchy_dataset, "--out-dir", out_dir, "--force")
    assert (out_dir / "report.md").read_text().startswith("# HAM10000 data exploration")


def test_a_split_of_other_data_is_refused(patchy_dataset, tmp_path):
    split_file = tmp_path / "split.csv"
    pd.DataFrame({"image_id": ["ISIC_elsewhere"], "lesion_id": ["HAM_x"], "dx": ["nv"], "label": [0],
                  "split": ["train"], "image_path": ["x.jpg"]}).to_csv(split_file, index=False)
    result = run_script("explore_data.py", "--data-dir", patchy_dataset, "--split-file", split_file,
                        "--out-dir", tmp_path / "report", check=False)
    assert result.returncode == 2
    assert str(split_file) in result.stderr and "none of the images" in result.stderr


def test_every_figure_has_a_title_and_axis_labels(patchy_dataset, tmp_path):
    from skin_lesion.data.datasets import load_dataset
    from skin_lesion.data.explore import draw_figures, summarise, with_image_sizes
    from skin_lesion.data.datasets.ham10000 import HAM10000

    table = with_image_sizes(load_dataset(patchy_dataset).table)
    split = table.assign(split=[("train", "val", "test")[i % 3] for i in range(len(table))])
    drawn = dict(draw_figures(table, summarise(table, HAM10000, split), HAM10000))
    assert sorted(drawn) == sorted(FIGURES)
    for name, figure in drawn.items():
        axes = [axis for axis in figure.axes if axis.get_visible()]
        has_title = figure.get_suptitle() or all(axis.get_title() for axis in axes)
        assert has_title, f"{name} has no title"
        for axis in axes:
            assert axis.get_xlabel(), f"{name}: an axis without an x label"
            assert axis.get_ylabel() or axis.images, f"{name}: a plot without a y label"
        plt.close(figure)


def test_real_data_report(ham10000_dir, tmp_path):
    run_script("explore_data.py", "--data-dir", ham10000_dir, "--out-dir", tmp_path)
    report = (tmp_path / "report.md").read_text()
    metadata = read_csv(ham10000_dir / "HAM10000_metadata.csv")
    table = section_table(report, "Diagnoses")
    assert int(table.loc["nv", "images"]) == 5385 and int(table.loc["all", "images"]) == 8044
    assert (numbers(table.loc[DIAGNOSES, "images"]) == metadata["dx"].value_counts()[DIAGNOSES]).all()
    assert int(table.loc["all", "lesions"]) == metadata["lesion_id"].nunique()
    assert f"age for {(metadata['age'] == '').sum()} images" in report
    assert len(section_table(report, "Lesion site")) == metadata["localization"].nunique()
    confirmed = section_table(report, "How the diagnoses were confirmed")
    histopathology = 100 * metadata["dx_type"].eq("histo").groupby(metadata["dx"]).mean()
    assert numbers(confirmed.loc[DIAGNOSES, "histopathology (%)"]).tolist() == histopathology[DIAGNOSES].round(1).tolist()


def test_balanced_classes_are_called_balanced(tmp_path):
    root = make_kaggle_folder(tmp_path / "balanced", balanced_rows(lesions_per_class=2))
    run_script("explore_data.py", "--data-dir", root, "--out-dir", tmp_path / "report")
    report = (tmp_path / "report/report.md").read_text()
    assert "The classes are balanced: 2 to 2 images each." in report and "imbalanced" not in report


def test_the_report_says_how_each_diagnosis_was_confirmed_with_0_in_empty_cells(tmp_path):
    root = make_kaggle_folder(tmp_path / "confirmed", balanced_rows(lesions_per_class=2))
    metadata = read_csv(root / "HAM10000_metadata.csv")
    metadata["dx_type"] = metadata["dx"].map({"nv": "follow_up", "df": "consensus", "bkl": "confocal"}).fillna("histo")
    metadata.loc[metadata["dx"] == "vasc", "dx_type"] = ["histo", ""]  # one image that does not say
    metadata.to_csv(root / "HAM10000_metadata.csv", index=False)
    run_script("explore_data.py", "--data-dir", root, "--out-dir", tmp_path / "report")
    table = section_table((tmp_path / "report/report.md").read_text(), "How the diagnoses were confirmed")
    assert list(table.columns) == ["images", "histopathology (%)", "follow-up (%)", "expert consensus (%)",
                                   "confocal microscopy (%)", "not recorded (%)"]
    assert table.loc["nv"].tolist() == ["2", "0.0", "100.0", "0.0", "0.0", "0.0"]
    assert table.loc["vasc"].tolist() == ["2", "50.0", "0.0", "0.0", "0.0", "50.0"]
    assert table.loc["all", "histopathology (%)"] == f"{100 * 7 / 14:.1f}"


def test_an_empty_heatmap_cell_reads_0_percent():
    from skin_lesion.data.explore import share_label

    assert [share_label(0, 0.0), share_label(1, 0.001), share_label(5, 0.25)] == ["0%", "<1%", "25%"]
