"""Download HAM10000 from Kaggle and extract it safely.

The ``kaggle`` package authenticates as soon as it is imported, so credentials are looked for
first, without importing it and without any network call; a missing credential stops the step
with instructions. Archives are extracted member by member, refusing any path that would land
outside the destination, into a temporary folder that is renamed into place once verified.
"""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Mapping

from skin_lesion.data import dataset as dataset_module
from skin_lesion.data.datasets import FORMATS, load_dataset
from skin_lesion.data.datasets.ham10000 import METADATA_FILE, find_metadata
from skin_lesion.data.files import list_some
from skin_lesion.errors import DatasetError, MissingFileError, OverwriteError, UserError
from skin_lesion.io_utils import staging_dir

log = logging.getLogger(__name__)

KAGGLE_DATASET = "kmader/skin-cancer-mnist-ham10000"
KAGGLE_URL = f"https://www.kaggle.com/datasets/{KAGGLE_DATASET}"
ARCHIVE_NAME = "skin-cancer-mnist-ham10000.zip"
HAM10000_IMAGES = 10015


class CredentialsError(UserError):
    """No Kaggle credentials were found; the message says how to provide them."""


def find_kaggle_credentials(
    environ: Mapping[str, str] | None = None, home: Path | None = None
) -> str | None:
    """Where Kaggle credentials would come from, or None. Never returns the secret itself.

    Follows the ``kaggle`` client's own order: an API token (``KAGGLE_API_TOKEN`` or
    ``~/.kaggle/access_token``), then a legacy key (``KAGGLE_USERNAME`` + ``KAGGLE_KEY`` or a
    ``kaggle.json`` in ``KAGGLE_CONFIG_DIR``, ``~/.kaggle`` or ``~/.config/kaggle``), then the
    OAuth login of ``kaggle auth login``.
    """
    environ = os.environ if environ is None else environ
    home = Path.home() if home is None else Path(home)
    if environ.get("KAGGLE_API_TOKEN"):
        return "the KAGGLE_API_TOKEN environment variable"
    if environ.get("KAGGLE_USERNAME") and environ.get("KAGGLE_KEY"):
        return "the KAGGLE_USERNAME and KAGGLE_KEY environment variables"
    config_dirs = [Path(environ["KAGGLE_CONFIG_DIR"])] if environ.get("KAGGLE_CONFIG_DIR") else []
    xdg = Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"
    config_dirs += [home / ".kaggle", xdg]
    candidates = [home / ".kaggle" / "access_token", home / ".kaggle" / "access_token.txt"]
    candidates += [folder / name for folder in config_dirs
                   for name in ("kaggle.json", "credentials.json")]
    for path in candidates:
        if path.is_file() and path.stat().st_size > 0:
            return str(path)
    return None


def credentials_help(archive_dir: Path) -> str:
    return (
        "No Kaggle credentials found, so nothing was downloaded.\n"
        "Set them up in one of these ways:\n"
        "  * create an API token at https://www.kaggle.com/settings (API section), save the\n"
        "    downloaded kaggle.json as ~/.kaggle/kaggle.json and run: chmod 600 ~/.kaggle/kaggle.json\n"
        "  * or export KAGGLE_USERNAME=<user> and KAGGLE_KEY=<key> (or KAGGLE_API_TOKEN=<token>)\n"
        "Or download by hand: open " + KAGGLE_URL + ", click Download, and run\n"
        f"  python scripts/01_download_data.py --from-zip PATH/TO/{ARCHIVE_NAME}\n"
        f"(or place the zip at {archive_dir / ARCHIVE_NAME} and run this script again)."
    )


def default_kaggle_api():
    """The authenticated Kaggle API client (imported only once credentials are known)."""
    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    api.authenticate()
    return api


def download_archive(
    archive_dir: Path,
    api_factory: Callable[[], object] = default_kaggle_api,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> Path:
    """Download the Kaggle zip into ``archive_dir`` (kept if already there) and return its path."""
    archive = Path(archive_dir) / ARCHIVE_NAME
    if archive.is_file():
        log.info("Using the archive already downloaded at %s", archive)
        return archive
    source = find_kaggle_credentials(environ, home)
    if source is None:
        raise CredentialsError(credentials_help(Path(archive_dir)))
    log.info("Downloading %s with Kaggle credentials from %s", KAGGLE_DATASET, source)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download.", dir=archive.parent) as partial:
        api = api_factory()
        api.dataset_download_files(KAGGLE_DATASET, path=partial, quiet=False, unzip=False)
        downloaded = Path(partial) / ARCHIVE_NAME
        if not downloaded.is_file():
            raise UserError(
                f"The Kaggle client finished without writing {ARCHIVE_NAME}; download it by hand "
                f"from {KAGGLE_URL} and use --from-zip."
            )
        os.replace(downloaded, archive)
    return archive


def unsafe_member(name: str) -> bool:
    """True for archive paths that are absolute or climb out of the destination."""
    path = PurePosixPath(name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0])


def extract_archive(archive: Path, destination: Path, remedy: str) -> None:
    """Extract ``archive`` into ``destination`` member by member, refusing unsafe members.

    Symbolic links (which could point anywhere) are refused as well; ``remedy`` says what to do
    about an archive that is no zip file.
    """
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            unsafe = [member.filename for member in members if unsafe_member(member.filename)]
            links = [member.filename for member in members
                     if (member.external_attr >> 16) & 0o170000 == 0o120000]
            if unsafe or links:
                raise DatasetError(
                    f"Refusing to extract {archive}: member(s) "
                    f"{', '.join((unsafe + links)[:10])} would be written outside {destination} "
                    "or are links. The archive is damaged or malicious; download it again."
                )
            root = destination.resolve()
            for member in members:
                target = (root / member.filename).resolve()
                if root != target and root not in target.parents:
                    raise DatasetError(f"Refusing to extract {member.filename} from {archive}.")
                bundle.extract(member, root)
    except zipfile.BadZipFile as error:
        raise DatasetError(
            f"{archive} is not a valid zip file ({error}); {remedy}."
        ) from error


def in_archive_terms(text: str, staging: Path, archive: Path) -> str:
    """``text`` with paths in the hidden staging folder named as members of the archive."""
    return text.replace(f"{staging}{os.sep}", f"{archive}:").replace(str(staging), str(archive))


@contextlib.contextmanager
def archive_terms_in_logs(staging: Path, archive: Path) -> Iterator[None]:
    """While an archive is checked in its staging folder, the dataset reader's warnings name the
    archive (the user's file), not the hidden folder that is about to disappear."""
    def rename(record: logging.LogRecord) -> bool:
        record.msg, record.args = in_archive_terms(record.getMessage(), staging, archive), ()
        return True

    readers = [logging.getLogger(name) for name in
               {dataset_module.__name__, *(f.read.__module__ for f in FORMATS.values())}]
    for reader in readers:
        reader.addFilter(rename)
    try:
        yield
    finally:
        for reader in readers:
            reader.removeFilter(rename)


def install_dataset(
    archive: Path, data_dir: Path, expected_images: int | None = HAM10000_IMAGES,
    remedy: str = f"download {ARCHIVE_NAME} again from {KAGGLE_URL}",
) -> int:
    """Extract and verify ``archive`` into ``data_dir``; returns the number of images.

    Nothing is written to ``data_dir`` unless the extracted data verifies: every metadata row
    has its image and, for the real download, all 10,015 images are there. Problems name the
    archive and what it lacks, never the temporary folder it was unpacked into; ``remedy`` says
    what to do (a user's own zip is never to be deleted by our advice).
    """
    archive, data_dir = Path(archive), Path(data_dir)
    if data_dir.exists():
        raise OverwriteError(f"{data_dir} already exists; remove it to extract again.")
    with staging_dir(data_dir) as staging, archive_terms_in_logs(staging, archive):
        extract_archive(archive, staging, remedy)
        if find_metadata(staging) is None:
            top = sorted(path.name for path in staging.iterdir())
            raise DatasetError(
                f"The archive {archive} holds no {METADATA_FILE} (at its top level: "
                f"{list_some(top) or 'nothing'}), so it is not the Kaggle HAM10000 download; {remedy}."
            )
        try:
            count = verify_dataset(staging, expected_images, f"the archive {archive}", remedy)
        except DatasetError as error:
            raise DatasetError(in_archive_terms(str(error), staging, archive)) from None
    return count


def verify_dataset(data_dir: Path, expected_images: int | None = HAM10000_IMAGES,
                   name: str | None = None, remedy: str = "delete it and download it again") -> int:
    """Check that a HAM10000 folder is complete; returns the number of usable images.

    ``name`` is how messages call the folder (default: its path), ``remedy`` what they advise.
    """
    dataset = load_dataset(data_dir, "ham10000")
    name = name or str(data_dir)
    count = len(dataset.table)
    if dataset.missing_images:
        raise DatasetError(
            f"{len(dataset.missing_images)} image(s) listed in the metadata are missing from "
            f"{name} ({list_some(dataset.missing_images)}); the download is incomplete: {remedy}."
        )
    if expected_images is not None and count != expected_images:
        raise DatasetError(
            f"{name} holds {count} images matched to the metadata, not the "
            f"{expected_images} of HAM10000: {remedy}."
        )
    return count


def fetch_ham10000(
    data_dir: Path,
    archive: Path | None = None,
    api_factory: Callable[[], object] = default_kaggle_api,
    expected_images: int | None = HAM10000_IMAGES,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> int:
    """Make ``data_dir`` hold a verified HAM10000; idempotent. Returns the image count.

    With ``archive`` the given zip is used, otherwise it is downloaded (once) beside
    ``data_dir`` in ``downloads/``.
    """
    data_dir = Path(data_dir)
    if data_dir.exists():
        count = verify_dataset(data_dir, expected_images)
        log.info("%s already holds a verified HAM10000 (%d images); nothing to do.", data_dir, count)
        return count
    if archive is None:
        archive = download_archive(data_dir.parent / "downloads", api_factory, environ, home)
        count = install_dataset(archive, data_dir, expected_images,
                                f"delete {archive} (our download) and run scripts/01_download_data.py again")
    elif not Path(archive).is_file():
        raise MissingFileError(f"--from-zip: {archive} does not exist.")
    else:
        count = install_dataset(archive, data_dir, expected_images)
    log.info("HAM10000 is ready in %s (%d images).", data_dir, count)
    return count
