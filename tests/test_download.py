"""Kaggle download: credential check, fake client at the API boundary, safe extraction."""
from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from skin_lesion.data.download import (ARCHIVE_NAME, CredentialsError, fetch_ham10000,
                                       find_kaggle_credentials)
from skin_lesion.errors import DatasetError
from tests.conftest import balanced_rows, make_kaggle_folder, run_script


def zip_folder(folder: Path, archive: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                bundle.write(path, path.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            bundle.writestr(name, data)
    return archive


class FakeKaggleApi:
    """Stands in for kaggle's KaggleApi: writes the dataset zip where the real one would."""

    calls: list = []

    def __init__(self, archive: Path):
        self.archive = archive

    def dataset_download_files(self, dataset, path, quiet, unzip):
        FakeKaggleApi.calls.append(dataset)
        Path(path, ARCHIVE_NAME).write_bytes(self.archive.read_bytes())


@pytest.fixture
def kaggle_zip(tmp_path) -> Path:
    source = make_kaggle_folder(tmp_path / "src", balanced_rows())
    for part in ("HAM10000_images_part_1", "HAM10000_images_part_2"):  # as in the Kaggle zip
        (source / part.lower()).mkdir()
        for image in (source / part).iterdir():
            (source / part.lower() / image.name).write_bytes(image.read_bytes())
    return zip_folder(source, tmp_path / "kaggle.zip", {"hmnist_28_28_L.csv": b"label\n1\n"})


def test_no_credentials_stops_before_the_client_is_made(tmp_path):
    made = []
    with pytest.raises(CredentialsError) as error:
        fetch_ham10000(tmp_path / "data" / "HAM10000", api_factory=lambda: made.append(1),
                       environ={}, home=tmp_path)
    assert made == []
    message = str(error.value)
    assert "~/.kaggle/kaggle.json" in message and "KAGGLE_USERNAME" in message and "--from-zip" in message
    assert not (tmp_path / "data" / "HAM10000").exists()


def test_credentials_are_found_without_revealing_the_key(tmp_path):
    env = {"KAGGLE_USERNAME": "someone", "KAGGLE_KEY": "s3cr3t-key"}
    assert "s3cr3t" not in find_kaggle_credentials(env, tmp_path)
    (tmp_path / ".kaggle").mkdir()
    (tmp_path / ".kaggle" / "kaggle.json").write_text('{"username": "u", "key": "s3cr3t-key"}')
    assert find_kaggle_credentials({}, tmp_path) == str(tmp_path / ".kaggle" / "kaggle.json")
    assert find_kaggle_credentials({}, tmp_path / "elsewhere") is None


def test_download_script_without_credentials_explains_and_never_prints_a_key(tmp_path):
    env = {"HOME": str(tmp_path), "KAGGLE_USERNAME": "", "KAGGLE_KEY": "s3cr3t", "KAGGLE_API_TOKEN": "",
           "KAGGLE_CONFIG_DIR": "", "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    result = run_script("01_download_data.py", "--data-dir", tmp_path / "data" / "HAM10000",
                        env=env, check=False)
    assert result.returncode == 2
    assert "No Kaggle credentials found" in result.stderr and "kaggle.json" in result.stderr
    assert "s3cr3t" not in result.stdout + result.stderr
    assert not (tmp_path / "data" / "HAM10000").exists()


def test_fake_kaggle_download_installs_and_is_idempotent(tmp_path, kaggle_zip):
    FakeKaggleApi.calls = []
    target = tmp_path / "data" / "HAM10000"
    env = {"KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"}
    count = fetch_ham10000(target, api_factory=lambda: FakeKaggleApi(kaggle_zip),
                           expected_images=42, environ=env, home=tmp_path)
    assert count == 42 and (target / "HAM10000_metadata.csv").is_file()
    assert FakeKaggleApi.calls == ["kmader/skin-cancer-mnist-ham10000"]
    assert (tmp_path / "data" / "downloads" / ARCHIVE_NAME).is_file()
    again = fetch_ham10000(target, api_factory=lambda: FakeKaggleApi(kaggle_zip),
                           expected_images=42, environ=env, home=tmp_path)
    assert again == 42 and len(FakeKaggleApi.calls) == 1


def test_wrong_image_count_is_not_installed(tmp_path, kaggle_zip):
    result = run_script("01_download_data.py", "--data-dir", tmp_path / "HAM10000",
                        "--from-zip", kaggle_zip, check=False)
    assert result.returncode == 2 and "not the 10015 of HAM10000" in result.stderr
    assert f"the archive {kaggle_zip} holds 42 images" in result.stderr
    assert ".HAM10000." not in result.stderr and "--data-dir" not in result.stderr
    assert not (tmp_path / "HAM10000").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_archive_problems_name_the_archive_and_what_it_lacks(tmp_path, kaggle_zip):
    other = zip_folder(make_kaggle_folder(tmp_path / "other", balanced_rows()), tmp_path / "other.zip")
    with zipfile.ZipFile(other) as bundle:
        kept = [name for name in bundle.namelist() if name != "HAM10000_metadata.csv"]
    stripped = tmp_path / "stripped.zip"
    with zipfile.ZipFile(other) as source, zipfile.ZipFile(stripped, "w") as bundle:
        for name in kept:
            bundle.writestr(name, source.read(name))
    with pytest.raises(DatasetError) as error:
        fetch_ham10000(tmp_path / "HAM10000", archive=stripped, expected_images=42)
    message = str(error.value)
    assert f"The archive {stripped} holds no HAM10000_metadata.csv" in message
    assert "HAM10000_images_part_1" in message and "kaggle.com" in message
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(other) as source, zipfile.ZipFile(broken, "w") as bundle:
        for name in source.namelist():
            data = source.read(name)
            if name == "HAM10000_metadata.csv":
                data = data.replace(b",nv,", b",xyz,")
            bundle.writestr(name, data)
    with pytest.raises(DatasetError) as error:
        fetch_ham10000(tmp_path / "HAM10000", archive=broken, expected_images=42)
    assert f"{broken}:HAM10000_metadata.csv: unknown dx code(s) xyz" in str(error.value)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("member", ["../escaped.txt", "/tmp/absolute-escape.txt", "a/../../escaped.txt"])
def test_malicious_zip_paths_are_refused(tmp_path, kaggle_zip, member):
    evil = tmp_path / "evil.zip"
    evil.write_bytes(kaggle_zip.read_bytes())
    with zipfile.ZipFile(evil, "a") as bundle:
        bundle.writestr(member, b"owned")
    target = tmp_path / "deep" / "HAM10000"
    with pytest.raises(DatasetError, match="Refusing to extract"):
        fetch_ham10000(target, archive=evil, expected_images=42)
    assert not target.exists()
    assert not (tmp_path / "deep" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/absolute-escape.txt").exists()


def test_symlink_members_are_refused(tmp_path, kaggle_zip):
    evil = tmp_path / "link.zip"
    evil.write_bytes(kaggle_zip.read_bytes())
    with zipfile.ZipFile(evil, "a") as bundle:
        info = zipfile.ZipInfo("HAM10000_images_part_1/link.jpg")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(info, "/etc/passwd")
    with pytest.raises(DatasetError, match="are links"):
        fetch_ham10000(tmp_path / "HAM10000", archive=evil, expected_images=42)


def test_corrupt_zip_is_explained(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"this is not a zip")
    with pytest.raises(DatasetError, match="not a valid zip file") as error:
        fetch_ham10000(tmp_path / "HAM10000", archive=bad, expected_images=42)
    assert "delete" not in str(error.value) and "download skin-cancer-mnist-ham10000.zip again" in str(error.value)


def test_a_corrupt_download_of_ours_is_to_be_deleted_and_fetched_again(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"an interrupted download")
    with pytest.raises(DatasetError, match="not a valid zip file") as error:
        fetch_ham10000(tmp_path / "data" / "HAM10000", api_factory=lambda: FakeKaggleApi(bad),
                       environ={"KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"}, home=tmp_path, expected_images=42)
    downloaded = tmp_path / "data" / "downloads" / ARCHIVE_NAME
    assert f"delete {downloaded} (our download) and run scripts/01_download_data.py again" in str(error.value)


def test_warnings_about_an_archive_name_the_archive_not_the_hidden_folder(tmp_path, caplog):
    source = make_kaggle_folder(tmp_path / "src", balanced_rows(lesions_per_class=10))
    images = sorted(source.rglob("*.jpg"))
    (source / "HAM10000_images_part_1" / "EXTRA_1.jpg").write_bytes(images[1].read_bytes())  # unlisted
    images[0].unlink()  # one of 70 missing: a warning, then the incomplete archive is refused
    archive = zip_folder(source, tmp_path / "mine.zip")
    with caplog.at_level("WARNING"), pytest.raises(DatasetError, match="missing from the archive"):
        fetch_ham10000(tmp_path / "HAM10000", archive=archive, expected_images=None)
    assert "not listed in" in caplog.text and str(archive) in caplog.text
    assert ".HAM10000" not in caplog.text  # the staging folder the archive was unpacked into
