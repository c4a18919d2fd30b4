"""Downloads: Kaggle's credential check and a fake client at the API boundary, HTTPS from a local
server (resumed, offline), safe extraction, verification against the published counts."""
from __future__ import annotations

import dataclasses
import importlib.util
import stat
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from skin_lesion import cli
from skin_lesion.data import download
from skin_lesion.data.download import (ARCHIVE_NAME, DOWNLOADS, CredentialsError, fetch_dataset, fetch_ham10000,
                                       fetch_url, find_kaggle_credentials)
from skin_lesion.errors import DatasetError, UserError
from tests.conftest import SCRIPTS, balanced_rows, make_kaggle_folder, run_script, write_image
from tests.test_cli import load_parser


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


# --- ISIC 2019, ISIC 2020 and PAD-UFES-20: HTTPS from a local server, Kaggle from a fake client

class Server(ThreadingHTTPServer):
    """Serves ``files`` by name, honours Range, and can cut a file's first answer short."""

    daemon_threads = True

    def __init__(self, files: dict[str, bytes]):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files, self.cut_once, self.ignore_range, self.requests = files, set(), False, []

    def url(self, name: str = "") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        name, server = self.path.lstrip("/"), self.server
        server.requests.append((name, self.headers.get("Range")))
        if name not in server.files:
            self.send_error(404)
            return
        data = server.files[name]
        start = int(self.headers["Range"][6:-1]) if self.headers.get("Range") and not server.ignore_range else 0
        if start >= len(data) and start:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if name in server.cut_once:  # the connection drops half-way
            server.cut_once.discard(name)
            body = body[: len(body) // 2]
            self.close_connection = True
        self.wfile.write(body)


@pytest.fixture
def serve(monkeypatch):
    """Start a server for ``files`` and point ``DOWNLOADS[name]`` at it."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    servers = []

    def start(name: str, files: dict[str, Path]) -> Server:
        server = Server({path.name: path.read_bytes() for path in files.values()})
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        urls = tuple(server.url(path.name) for path in files.values())
        monkeypatch.setitem(DOWNLOADS, name, dataclasses.replace(DOWNLOADS[name], urls=urls))
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def zip_files(archive: Path, members: dict[str, bytes | Path]) -> Path:
    with zipfile.ZipFile(archive, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data.read_bytes() if isinstance(data, Path) else data)
    return archive


def image_bytes(tmp_path: Path, suffix: str = ".jpg") -> bytes:
    return write_image(tmp_path / f"pixel{suffix}").read_bytes()


@pytest.fixture
def isic2019_files(tmp_path) -> dict[str, Path]:
    """The three ISIC 2019 challenge files with 6 images (one ``_downsampled``)."""
    source = tmp_path / "isic2019-src"
    source.mkdir()
    codes = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
    truth, meta, members = [",".join(["image", *codes])], ["image,age_approx,anatom_site_general,lesion_id,sex"], {}
    for i, code in enumerate(["MEL", "NV", "NV", "BCC", "BKL", "NV"]):
        image = f"ISIC_{i:07d}" + ("_downsampled" if i == 5 else "")
        truth.append(",".join([image, *("1.0" if c == code else "0.0" for c in codes)]))
        meta.append(f"{image},50,back,{'BCN_%07d' % i if i % 2 else ''},male")
        members[f"ISIC_2019_Training_Input/{image}.jpg"] = image_bytes(tmp_path)
    members["ISIC_2019_Training_Input/LICENSE.txt"] = b"CC BY-NC"
    (source / "ISIC_2019_Training_GroundTruth.csv").write_text("\n".join(truth) + "\n")
    (source / "ISIC_2019_Training_Metadata.csv").write_text("\n".join(meta) + "\n")
    return {"zip": zip_files(source / "ISIC_2019_Training_Input.zip", members),
            "truth": source / "ISIC_2019_Training_GroundTruth.csv",
            "meta": source / "ISIC_2019_Training_Metadata.csv"}


ISIC2020_COLUMNS = "image_name,patient_id,sex,age_approx,anatom_site_general_challenge,diagnosis,benign_malignant,target"


def isic2020_rows(count: int = 5) -> str:
    return "\n".join([ISIC2020_COLUMNS, *(f"ISIC_{i:07d},IP_{i // 2},male,45,torso,nevus,"
                                          f"{'malignant' if i == 0 else 'benign'},{int(i == 0)}"
                                          for i in range(count))]) + "\n"


@pytest.fixture
def isic2020_files(tmp_path) -> dict[str, Path]:
    source = tmp_path / "isic2020-src"
    source.mkdir()
    (source / "ISIC_2020_Training_GroundTruth.csv").write_text(isic2020_rows())
    (source / "ISIC_2020_Training_Duplicates.csv").write_text("image_name_1,image_name_2\nISIC_0000001,ISIC_0000002\n")
    members = {f"train/ISIC_{i:07d}.jpg": image_bytes(tmp_path) for i in range(5)}
    return {"zip": zip_files(source / "ISIC_2020_Training_JPEG.zip", members),
            "truth": source / "ISIC_2020_Training_GroundTruth.csv",
            "duplicates": source / "ISIC_2020_Training_Duplicates.csv"}


def pad_ufes_zip(tmp_path: Path, wrapper: str = "", extra: dict[str, bytes] | None = None) -> Path:
    """The Mendeley Data layout: metadata.csv and images/imgs_part_1..3.zip inside the zip."""
    rows = ["patient_id,lesion_id,smoke,img_id,diagnostic,age,gender,region,fitspatrick"]
    parts: dict[int, dict[str, bytes]] = {1: {}, 2: {}, 3: {}}
    for i, dx in enumerate(["BCC", "NEV", "ACK", "SEK", "MEL", "SCC"]):
        rows.append(f"PAT_{i},{100 + i},False,PAT_{i}_{100 + i}_{i}.png,{dx},60,MALE,FACE,2")
        parts[i % 3 + 1][f"imgs_part_{i % 3 + 1}/PAT_{i}_{100 + i}_{i}.png"] = image_bytes(tmp_path, ".png")
    members = {f"{wrapper}metadata.csv": "\n".join(rows).encode() + b"\n"}
    for part, images in parts.items():
        if part == 3:
            images.update(extra or {})
        nested = zip_files(tmp_path / f"imgs_part_{part}.zip", images)
        members[f"{wrapper}images/imgs_part_{part}.zip"] = nested.read_bytes()
    return zip_files(tmp_path / "zr7vgbcyr2-1.zip", members)


def hidden(folder: Path) -> list[str]:
    return [path.name for path in folder.iterdir() if path.name.startswith(".")] if folder.exists() else []


def test_every_dataset_has_a_default_folder_and_a_published_count():
    assert {name: (str(download.default_folder(name)), d.images) for name, d in DOWNLOADS.items()} == {
        "ham10000": ("data/HAM10000", 10015), "isic2019": ("data/ISIC2019", 25331),
        "isic2020": ("data/ISIC2020", 33126), "pad-ufes-20": ("data/PAD-UFES-20", 2298)}
    assert DOWNLOADS["isic2019"].urls[0] == "https://isic-challenge-data.s3.amazonaws.com/2019/ISIC_2019_Training_Input.zip"


def test_isic2019_over_https_is_installed_once_verified_and_a_second_run_is_a_no_op(tmp_path, serve, isic2019_files):
    server = serve("isic2019", isic2019_files)
    target = tmp_path / "data" / "ISIC2019"
    assert fetch_dataset("isic2019", target, expected_images=6) == 6
    assert (target / "ISIC_2019_Training_GroundTruth.csv").is_file() and (target / "ISIC_2019_Training_Input").is_dir()
    downloads = tmp_path / "data" / "downloads"
    assert sorted(p.name for p in downloads.iterdir()) == sorted(p.name for p in isic2019_files.values())
    assert hidden(tmp_path / "data") == [] and len(server.requests) == 3
    assert fetch_dataset("isic2019", target, expected_images=6) == 6
    assert len(server.requests) == 3  # nothing fetched again


def test_a_wrong_count_names_the_dataset_and_leaves_no_folder(tmp_path, serve, isic2019_files):
    serve("isic2019", isic2019_files)
    target = tmp_path / "data" / "ISIC2019"
    with pytest.raises(DatasetError) as error:
        fetch_dataset("isic2019", target)
    message = str(error.value)
    assert "holds 6 images matched to the metadata, not the 25331 of ISIC 2019" in message
    assert "(our download) and run scripts/01_download_data.py --dataset isic2019 again" in message
    assert str(tmp_path / "data" / "downloads" / "ISIC_2019_Training_Input.zip") in message
    assert not target.exists() and hidden(tmp_path / "data") == []


def test_an_interrupted_download_resumes_with_a_range_request(tmp_path, serve, isic2019_files):
    server = serve("isic2019", isic2019_files)
    server.cut_once.add("ISIC_2019_Training_Input.zip")
    target = tmp_path / "data" / "ISIC2019"
    with pytest.raises(UserError, match="run the same command again to resume it") as error:
        fetch_dataset("isic2019", target, expected_images=6)
    assert "\n" not in str(error.value)
    partial = tmp_path / "data" / "downloads" / "ISIC_2019_Training_Input.zip.partial"
    assert 0 < partial.stat().st_size < isic2019_files["zip"].stat().st_size and not target.exists()
    cut_at = partial.stat().st_size
    assert fetch_dataset("isic2019", target, expected_images=6) == 6
    assert server.requests[0] == ("ISIC_2019_Training_Input.zip", None)
    assert server.requests[1] == ("ISIC_2019_Training_Input.zip", f"bytes={cut_at}-")
    assert not partial.exists()
    assert (tmp_path / "data" / "downloads" / "ISIC_2019_Training_Input.zip").read_bytes() == \
        isic2019_files["zip"].read_bytes()


@pytest.mark.parametrize("ignore_range", [False, True])
def test_fetch_url_resumes_a_partial_file_or_starts_again(tmp_path, serve, isic2019_files, ignore_range):
    server = serve("isic2019", isic2019_files)
    server.ignore_range = ignore_range
    data = isic2019_files["zip"].read_bytes()
    target = tmp_path / "out.zip"
    (tmp_path / "out.zip.partial").write_bytes(data[:100])
    fetch_url(server.url("ISIC_2019_Training_Input.zip"), target)
    assert target.read_bytes() == data and not (tmp_path / "out.zip.partial").exists()
    assert server.requests == [("ISIC_2019_Training_Input.zip", "bytes=100-")]
    (tmp_path / "whole.zip.partial").write_bytes(data)  # complete already: the server answers 416
    if not ignore_range:
        fetch_url(server.url("ISIC_2019_Training_Input.zip"), tmp_path / "whole.zip")
        assert (tmp_path / "whole.zip").read_bytes() == data


def test_offline_is_one_line_naming_the_url_and_what_to_do(tmp_path, monkeypatch):
    closed = dataclasses.replace(DOWNLOADS["pad-ufes-20"], urls=("http://127.0.0.1:9/zr7vgbcyr2-1.zip",))
    monkeypatch.setitem(DOWNLOADS, "pad-ufes-20", closed)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with pytest.raises(UserError) as error:
        fetch_dataset("pad-ufes-20", tmp_path / "data" / "PAD-UFES-20")
    message = str(error.value)
    assert "\n" not in message and "Cannot download http://127.0.0.1:9/zr7vgbcyr2-1.zip" in message
    assert "network is unreachable" in message and "https://data.mendeley.com/datasets/zr7vgbcyr2/1" in message
    assert str(tmp_path / "data" / "downloads") in message and "--from-zip" in message
    assert "scripts/01_download_data.py --dataset pad-ufes-20 again" in message
    assert not (tmp_path / "data" / "PAD-UFES-20").exists()


def test_offline_through_the_script_is_one_line_without_traceback(tmp_path, monkeypatch, capsys):
    urls = tuple(url.replace("https://isic-challenge-data.s3.amazonaws.com", "http://127.0.0.1:9")
                 for url in DOWNLOADS["isic2020"].urls)
    monkeypatch.setitem(DOWNLOADS, "isic2020", dataclasses.replace(DOWNLOADS["isic2020"], urls=urls))
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    module_spec = importlib.util.spec_from_file_location("s01_download_data", SCRIPTS / "01_download_data.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exit_:
        cli.run(module.build_parser, module.main, tensorflow=False,
                argv=["--dataset", "isic2020", "--data-dir", str(tmp_path / "ISIC2020")])
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert exit_.value.code == 2 and len(errors) == 1 and "Traceback" not in stderr
    assert "http://127.0.0.1:9/2020/ISIC_2020_Training_JPEG.zip" in errors[0]
    assert "network is unreachable" in errors[0] and "challenge.isic-archive.com" in errors[0]


def test_isic2019_from_zips_by_hand_and_csvs_found_beside_the_zip(tmp_path, isic2019_files):
    target = tmp_path / "ISIC2019"
    assert fetch_dataset("isic2019", target, [isic2019_files["zip"]], expected_images=6) == 6
    other = tmp_path / "elsewhere"
    other.mkdir()
    alone = other / "ISIC_2019_Training_Input.zip"
    alone.write_bytes(isic2019_files["zip"].read_bytes())
    with pytest.raises(DatasetError) as error:
        fetch_dataset("isic2019", tmp_path / "again", [alone], expected_images=6)
    assert f"The archive {alone} holds no ISIC_2019_Training_GroundTruth.csv" in str(error.value)
    assert "pass each with --from-zip" in str(error.value) and not (tmp_path / "again").exists()
    with pytest.raises(DatasetError, match="lacks ISIC_2019_Training_Metadata.csv"):
        fetch_dataset("isic2019", tmp_path / "again", [alone, isic2019_files["truth"]], expected_images=6)


def test_from_zip_repeated_through_the_script_checks_the_published_count(tmp_path, isic2019_files):
    other = tmp_path / "by-hand"
    other.mkdir()
    files = []
    for path in isic2019_files.values():
        files += ["--from-zip", other / path.name]
        (other / path.name).write_bytes(path.read_bytes())
    result = run_script("01_download_data.py", "--dataset", "isic2019", "--data-dir", tmp_path / "ISIC2019",
                        *files, check=False)
    assert result.returncode == 2 and "not the 25331 of ISIC 2019" in result.stderr, result.stderr
    assert f"the download ({other / 'ISIC_2019_Training_Input.zip'}, " in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "ISIC2019").exists()


def test_an_unsafe_member_is_refused_for_every_dataset(tmp_path, isic2019_files):
    evil = tmp_path / "evil" / "ISIC_2019_Training_Input.zip"
    evil.parent.mkdir()
    evil.write_bytes(isic2019_files["zip"].read_bytes())
    with zipfile.ZipFile(evil, "a") as bundle:
        bundle.writestr("../../escaped.txt", b"owned")
    with pytest.raises(DatasetError, match="Refusing to extract"):
        fetch_dataset("isic2019", tmp_path / "ISIC2019", [evil, isic2019_files["truth"], isic2019_files["meta"]])
    nested_evil = pad_ufes_zip(tmp_path / "pad", extra={"../../../escaped.txt": b"owned"})
    with pytest.raises(DatasetError, match="Refusing to extract") as error:
        fetch_dataset("pad-ufes-20", tmp_path / "PAD-UFES-20", [nested_evil])
    assert f"{nested_evil}:images/imgs_part_3.zip" in str(error.value)
    assert not list(tmp_path.rglob("escaped.txt")) and not (tmp_path / "PAD-UFES-20").exists()
    assert hidden(tmp_path) == []


@pytest.mark.parametrize("wrapper", ["", "PAD-UFES-20/"])
def test_pad_ufes_20_nested_zips_are_extracted(tmp_path, serve, wrapper):
    archive = pad_ufes_zip(tmp_path / "pad", wrapper)
    serve("pad-ufes-20", {"zip": archive})
    target = tmp_path / "data" / "PAD-UFES-20"
    assert fetch_dataset("pad-ufes-20", target, expected_images=6) == 6
    assert (target / "metadata.csv").is_file() and not list(target.rglob("*.zip"))
    assert sorted(p.name for p in (target / "images").iterdir()) == ["imgs_part_1", "imgs_part_2", "imgs_part_3"]
    with pytest.raises(DatasetError, match="not the 2298 of PAD-UFES-20"):
        fetch_dataset("pad-ufes-20", tmp_path / "other", [archive])


def test_isic2020_over_https_with_its_duplicates_list(tmp_path, serve, isic2020_files):
    serve("isic2020", isic2020_files)
    target = tmp_path / "data" / "ISIC2020"
    assert fetch_dataset("isic2020", target, expected_images=5) == 5
    assert (target / "ISIC_2020_Training_Duplicates.csv").is_file() and (target / "train").is_dir()


class FakeCompetitionApi:
    """Stands in for KaggleApi.competition_download_files; ``error`` is raised instead."""

    def __init__(self, archive: Path | None = None, error: Exception | None = None):
        self.archive, self.error, self.calls = archive, error, []

    def competition_download_files(self, competition, path, quiet):
        self.calls.append(competition)
        if self.error:
            raise self.error
        Path(path, f"{competition}.zip").write_bytes(self.archive.read_bytes())


def test_isic2020_from_the_kaggle_competition_extracts_only_the_training_jpegs(tmp_path):
    members = {"train.csv": isic2020_rows().encode(), "test.csv": b"image_name\n",
               **{f"jpeg/train/ISIC_{i:07d}.jpg": image_bytes(tmp_path) for i in range(5)},
               "jpeg/test/ISIC_9.jpg": image_bytes(tmp_path), "train/ISIC_0000000.dcm": b"DICM",
               "tfrecords/train00.tfrec": b"records"}
    api = FakeCompetitionApi(zip_files(tmp_path / "competition.zip", members))
    env = {"KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"}
    target = tmp_path / "data" / "ISIC2020"
    assert fetch_dataset("isic2020", target, expected_images=5, kaggle=True, api_factory=lambda: api,
                         environ=env, home=tmp_path) == 5
    assert api.calls == ["siim-isic-melanoma-classification"]
    assert sorted(p.name for p in target.iterdir()) == ["jpeg", "test.csv", "train.csv"]
    assert (tmp_path / "data" / "downloads" / "siim-isic-melanoma-classification.zip").is_file()
    assert hidden(tmp_path / "data" / "downloads") == []


def test_kaggle_competition_needs_credentials_and_its_rules_accepted(tmp_path):
    with pytest.raises(CredentialsError) as error:
        fetch_dataset("isic2020", tmp_path / "ISIC2020", kaggle=True, api_factory=lambda: 1 / 0,
                      environ={}, home=tmp_path)
    assert "rules" in str(error.value) and "--dataset isic2020 --from-zip" in str(error.value)
    requests = pytest.importorskip("requests")
    refused = requests.HTTPError("403 Client Error", response=type("R", (), {"status_code": 403})())
    env = {"KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"}
    with pytest.raises(UserError) as error:
        fetch_dataset("isic2020", tmp_path / "ISIC2020", kaggle=True, environ=env, home=tmp_path,
                      api_factory=lambda: FakeCompetitionApi(error=refused))
    assert "HTTP 403" in str(error.value) and "siim-isic-melanoma-classification/rules" in str(error.value)



class OfflineKaggleApi:
    """The Kaggle client without a network: ``requests`` fails to connect."""

    def dataset_download_files(self, dataset, path, quiet, unzip):
        raise pytest.importorskip("requests").ConnectionError("Failed to resolve 'www.kaggle.com'")


def test_kaggle_offline_is_one_line_and_keeps_nothing_half_done(tmp_path):
    env = {"KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"}
    with pytest.raises(UserError) as error:
        fetch_ham10000(tmp_path / "data" / "HAM10000", environ=env, home=tmp_path, api_factory=OfflineKaggleApi)
    message = str(error.value)
    assert "\n" not in message and "network is unreachable" in message and download.KAGGLE_URL in message
    assert "--from-zip" in message and str(tmp_path / "data" / "downloads") in message
    assert not (tmp_path / "data" / "HAM10000").exists()


def test_kaggle_is_refused_for_a_dataset_not_on_kaggle(tmp_path):
    with pytest.raises(UserError, match="--kaggle: pad-ufes-20 is not on Kaggle"):
        fetch_dataset("pad-ufes-20", tmp_path / "x", kaggle=True)


def test_the_script_offers_every_dataset():
    parser = load_parser(SCRIPTS / "01_download_data.py")
    args = parser.parse_args(["--dataset", "isic2019", "--from-zip", "a.zip", "--from-zip", "b.csv"])
    assert args.dataset == "isic2019" and args.from_zip == ["a.zip", "b.csv"]
    assert parser.parse_args([]).dataset == "ham10000"

