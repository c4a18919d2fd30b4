"""The data layer: layouts, and every validation error with a real malformed file."""
from __future__ import annotations

import json
import logging
import shutil

import pytest

from skin_lesion.data.dataset import Provenance
from skin_lesion.data.datasets import load_dataset
from skin_lesion.data.files import scan_folder
from skin_lesion.errors import DatasetError
from tests.conftest import balanced_rows, make_kaggle_folder, write_image


def test_kaggle_layout_reads_every_image_once(tmp_path):
    root = make_kaggle_folder(tmp_path / "ham", balanced_rows())
    dataset = load_dataset(root)
    assert dataset.layout == "kaggle"
    assert len(dataset.table) == 42 and dataset.table["image_id"].is_unique
    assert set(dataset.table["dx"]) == {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}


def test_a_real_layout_records_its_dataset_and_a_provenance_file_wins(tmp_path):
    root = make_kaggle_folder(tmp_path / "ham", balanced_rows())
    record = load_dataset(root).provenance
    assert (record.name, record.synthetic) == ("HAM10000", False)
    assert record.licence.startswith("CC BY-NC 4.0") and "Tschandl" in record.citation and "Kaggle" in record.source
    (root / "provenance.json").write_text(json.dumps({"name": "Clinic X, drawn", "source": "a generator",
                                                      "licence": "CC0", "synthetic": True}))
    assert load_dataset(root).provenance == Provenance("Clinic X, drawn", "a generator", "CC0", True)
    (root / "provenance.json").write_text('{"name": "Clinic X"}')
    with pytest.raises(DatasetError, match=r"provenance.json must say what the data is: .*synthetic \(true or false\)"):
        load_dataset(root)


def test_an_image_list_is_named_by_its_labels_file_with_no_licence_claimed(tmp_path):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.png")
    (tmp_path / "images.csv").write_text("path,label\na.png,mel\nb.png,nv\n")
    (tmp_path / "labels.json").write_text(json.dumps({"name": "My clinic 2025", "malignant": ["mel"]}))
    record = load_dataset(tmp_path / "images.csv").provenance
    assert (record.name, record.synthetic, record.citation) == ("My clinic 2025", False, "")
    assert record.licence.startswith("not recorded") and str(tmp_path) in record.source


def test_kaggle_zip_duplicate_folders_and_hmnist_files_are_not_double_counted(tmp_path):
    root = make_kaggle_folder(tmp_path / "ham", balanced_rows())
    for part in ("HAM10000_images_part_1", "HAM10000_images_part_2"):
        shutil.copytree(root / part, root / part.lower())
    (root / "hmnist_28_28_RGB.csv").write_text("pixel0000,label\n1,2\n")
    dataset = load_dataset(root)
    assert len(dataset.table) == 42
    assert all("/HAM10000_images_part_" in path for path in dataset.table["image_path"])
    assert dataset.unlisted_images == []


def test_metadata_in_a_subfolder_is_found(tmp_path):
    make_kaggle_folder(tmp_path / "outer" / "inner", balanced_rows())
    assert len(load_dataset(tmp_path / "outer").table) == 42


def test_missing_columns_are_named(tmp_path):
    root = make_kaggle_folder(tmp_path / "ham", balanced_rows())
    (root / "HAM10000_metadata.csv").write_text("lesion_id,image,diagnosis\nHAM_1,ISIC_1,nv\n")
    with pytest.raises(DatasetError, match=r"HAM10000_metadata.csv lacks the column\(s\) image_id, dx"):
        load_dataset(root)


def test_unknown_dx_codes_are_named_with_their_lines(tmp_path):
    rows = balanced_rows()
    rows[3] = (rows[3][0], rows[3][1], "melanoma")
    rows[10] = (rows[10][0], rows[10][1], "xyz")
    root = make_kaggle_folder(tmp_path / "ham", rows, with_images=False)
    with pytest.raises(DatasetError) as error:
        load_dataset(root)
    assert "melanoma, xyz" in str(error.value) and "line(s) 5, 12" in str(error.value)


def test_dx_case_and_spaces_are_normalised(tmp_path):
    rows = [(lesion, image, f" {dx.upper()} ") for lesion, image, dx in balanced_rows()]
    assert set(load_dataset(make_kaggle_folder(tmp_path / "ham", rows)).table["dx"]) >= {"mel", "nv"}


def test_duplicate_image_ids_are_named(tmp_path):
    rows = balanced_rows()
    rows.append(("HAM_extra", rows[0][1], rows[0][2]))
    root = make_kaggle_folder(tmp_path / "ham", rows, with_images=False)
    with pytest.raises(DatasetError, match=rf"image_id listed more than once: {rows[0][1]} \(lines 2, 44\)"):
        load_dataset(root)


def test_empty_metadata_file(tmp_path):
    root = make_kaggle_folder(tmp_path / "ham", balanced_rows())
    (root / "HAM10000_metadata.csv").write_text("")
    with pytest.raises(DatasetError, match="is empty"):
        load_dataset(root)


def test_header_without_rows(tmp_path):
    root = make_kaggle_folder(tmp_path / "ham", balanced_rows())
    (root / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\n")
    with pytest.raises(DatasetError, match="has a header but no rows"):
        load_dataset(root)


def test_lesion_with_two_diagnoses_is_refused(tmp_path):
    rows = balanced_rows()
    rows[1] = (rows[0][0], rows[1][1], "mel")
    with pytest.raises(DatasetError, match=f"lesion\\(s\\) {rows[0][0]} have images with different dx"):
        load_dataset(make_kaggle_folder(tmp_path / "ham", rows))


def test_few_missing_images_warn_with_the_list(tmp_path, caplog):
    rows = balanced_rows(lesions_per_class=6, images_per_lesion=4)  # 168 images
    root = make_kaggle_folder(tmp_path / "ham", rows)
    gone = sorted(rows[i][1] for i in (5, 50))
    for image_id in gone:
        next(root.glob(f"*/{image_id}.jpg")).unlink()
    with caplog.at_level(logging.WARNING):
        dataset = load_dataset(root)
    assert dataset.missing_images == gone
    assert len(dataset.table) == 166
    assert "2 of 168 images" in caplog.text and ", ".join(gone) in caplog.text


def test_missing_five_percent_or_more_aborts(tmp_path):
    rows = balanced_rows(lesions_per_class=2, images_per_lesion=5)  # 70 images
    root = make_kaggle_folder(tmp_path / "ham", rows)
    for image_id in [row[1] for row in rows[:4]]:  # 4/70 = 5.7 %
        next(root.glob(f"*/{image_id}.jpg")).unlink()
    with pytest.raises(DatasetError, match=r"4 of 70 images .* missing on disk \(5.7%\)"):
        load_dataset(root)


def test_images_on_disk_but_not_in_metadata_are_reported(tmp_path, caplog):
    root = make_kaggle_folder(tmp_path / "ham", balanced_rows())
    write_image(root / "HAM10000_images_part_2" / "ISIC_9999999.jpg")
    with caplog.at_level(logging.WARNING):
        dataset = load_dataset(root)
    assert dataset.unlisted_images == ["ISIC_9999999"]
    assert "ISIC_9999999" in caplog.text and len(dataset.table) == 42


def test_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(DatasetError, match="01_download_data.py"):
        load_dataset(tmp_path / "nowhere")


def test_class_folder_layout_any_case(tmp_path):
    for split, per_class in (("train", 4), ("Val", 2), ("TEST", 2)):
        for dx in ("AKIEC", "bcc", "Bkl", "DF", "mel", "NV", "vasc"):
            for i in range(per_class):
                write_image(tmp_path / "cf" / split / dx / f"{split}_{dx}_{i}.jpg")
    (tmp_path / "cf" / "train" / "NV" / "notes.txt").write_text("not an image")
    dataset = load_dataset(tmp_path / "cf")
    assert dataset.layout == "class_folders"
    assert len(dataset.table) == 56
    assert set(dataset.table["dx"]) == {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}
    assert dataset.table.groupby("split").size().to_dict() == {"test": 14, "train": 28, "val": 14}


def test_class_folders_of_other_names_make_their_own_label_space(tmp_path):
    for name in ("melanoma/a.jpg", "naevus/b.jpg", "Naevus/c.jpg"):
        write_image(tmp_path / "cf" / "train" / name)
    with pytest.raises(DatasetError, match=r"name their classes \(melanoma, naevus\) but not which are malignant: "
                                           r"pass --malignant"):
        load_dataset(tmp_path / "cf")
    with pytest.raises(DatasetError, match="Malignant code.s. mel .from --malignant. are not among"):
        load_dataset(tmp_path / "cf", malignant=("mel",))
    space = load_dataset(tmp_path / "cf", malignant=("Melanoma",)).label_space
    assert space.codes == ("melanoma", "naevus") and space.malignant == {"melanoma"} and space.name == "cf"
    (tmp_path / "cf" / "labels.json").write_text('{"name": "Clinic", "malignant": ["melanoma"]}')
    assert load_dataset(tmp_path / "cf").label_space.name == "Clinic"


def test_semicolon_separated_metadata_is_read(tmp_path):
    root = make_kaggle_folder(tmp_path / "ham", balanced_rows())
    metadata = root / "HAM10000_metadata.csv"
    metadata.write_text(metadata.read_text().replace(",", ";"))
    dataset = load_dataset(root)
    assert len(dataset.table) == 42 and set(dataset.table["sex"]) == {"male"}


def test_unreadable_header_names_the_separator_as_a_possible_cause(tmp_path):
    root = make_kaggle_folder(tmp_path / "ham", balanced_rows())
    (root / "HAM10000_metadata.csv").write_text("lesion_id image_id dx\nHAM_1 ISIC_1 nv\n")
    with pytest.raises(DatasetError, match="lacks the column") as error:
        load_dataset(root)
    assert "separated by commas" in str(error.value)


def test_patient_columns_are_kept(tmp_path):
    table = load_dataset(make_kaggle_folder(tmp_path / "ham", balanced_rows())).table
    assert {"age", "sex", "localization"} <= set(table.columns)
    assert set(table["localization"]) == {"back"} and set(table["age"]) == {"50.0"}


def test_folder_scan_is_recursive_sorted_and_says_what_it_skipped(tmp_path):
    for name in ("b/z.jpg", "a/y.PNG", "a/x.webp", "top.jpeg", "a/notes.txt", ".hidden/q.jpg", "a/.DS_Store"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    scan = scan_folder(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in scan.images] == ["a/x.webp", "a/y.PNG", "b/z.jpg", "top.jpeg"]
    assert sorted(p.name for p in scan.skipped["hidden"]) == [".DS_Store", "q.jpg"]
    summary = scan.skipped_summary()
    assert summary.startswith("3 file(s) skipped") and "notes.txt" in summary and "not a supported image format" in summary
