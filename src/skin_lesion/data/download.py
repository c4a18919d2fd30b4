"""Download a dataset from its official source, extract it safely and verify it.

HAM10000 comes from Kaggle; ISIC 2019 and ISIC 2020 from the ISIC challenge's S3 bucket over
plain HTTPS (no account; ISIC 2020 also from its Kaggle competition with ``kaggle=True``);
PAD-UFES-20 from Mendeley Data. ``DOWNLOADS`` is the one table of where each comes from and
how many images the published data holds.

The ``kaggle`` package authenticates as soon as it is imported, so credentials are looked for
first, without importing it and without any network call; a missing credential stops the step
with instructions. HTTPS files stream to ``<name>.partial`` and are renamed when complete; an
interrupted download resumes from there with an HTTP Range request. Archives are extracted
member by member, refusing any path that would land outside the destination, into a temporary
folder that is renamed into place once verified. Every network failure is one line that names
the URL and says how to download by hand.
"""
from __future__ import annotations

import contextlib
import fnmatch
import http.client
import logging
import os
import shutil
import socket
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Mapping, Sequence

from skin_lesion import layout
from skin_lesion.data import dataset as dataset_module
from skin_lesion.data.datasets import FORMATS, get_format, load_dataset
from skin_lesion.data.datasets import isic2019, isic2020
from skin_lesion.data.datasets.ham10000 import METADATA_FILE
from skin_lesion.data.files import list_some
from skin_lesion.errors import ConfigError, DatasetError, MissingFileError, OverwriteError, UserError
from skin_lesion.io_utils import staging_dir

log = logging.getLogger(__name__)

KAGGLE_DATASET = "kmader/skin-cancer-mnist-ham10000"
KAGGLE_URL = f"https://www.kaggle.com/datasets/{KAGGLE_DATASET}"
ARCHIVE_NAME = "skin-cancer-mnist-ham10000.zip"
HAM10000_IMAGES = 10015
ISIC_BUCKET = "https://isic-challenge-data.s3.amazonaws.com"
ISIC2020_COMPETITION = "siim-isic-melanoma-classification"
MENDELEY_ZIP = "https://prod-dcd-datasets-cache-zipfiles.s3.eu-west-1.amazonaws.com/zr7vgbcyr2-1.zip"
#: ``expected_images`` default: the published count from ``DOWNLOADS``.
PUBLISHED = "published"


@dataclass(frozen=True)
class Download:
    """Where one dataset comes from and what a complete copy of it holds."""

    name: str  # --dataset
    folder: str  # the default folder, data/<folder>
    images: int  # the published number of images
    page: str  # where a person downloads it by hand
    identifies: str  # the file that shows an archive holds this dataset, for messages
    origin: str  # how messages call the download
    urls: tuple[str, ...] = ()  # HTTPS files (none: the Kaggle download is the only route)
    kaggle_dataset: str = ""
    kaggle_competition: str = ""
    needs: tuple[str, ...] = ()  # files the reader can do without but a complete copy has
    nested: bool = False  # zips inside the zip are extracted too (PAD-UFES-20's image parts)
    skip: tuple[str, ...] = ()  # members not extracted (fnmatch patterns): other copies, test sets

    @property
    def files(self) -> tuple[str, ...]:
        """The downloaded files' names."""
        if self.urls:
            return tuple(url.rsplit("/", 1)[-1] for url in self.urls)
        return (kaggle_archive_name(self),)

    @property
    def again(self) -> str:
        """The command that runs this download again."""
        flag = "" if self.name == "ham10000" else f" --dataset {self.name}"
        return f"scripts/01_download_data.py{flag}"


DOWNLOADS: dict[str, Download] = {d.name: d for d in (
    Download("ham10000", "HAM10000", HAM10000_IMAGES, KAGGLE_URL, METADATA_FILE,
             "Kaggle HAM10000 download", kaggle_dataset=KAGGLE_DATASET),
    Download("isic2019", "ISIC2019", 25331, "https://challenge.isic-archive.com/data/#2019",
             isic2019.GROUND_TRUTH_FILE, "ISIC 2019 challenge data",
             urls=tuple(f"{ISIC_BUCKET}/2019/{name}" for name in (
                 "ISIC_2019_Training_Input.zip", isic2019.GROUND_TRUTH_FILE, isic2019.METADATA_FILE)),
             needs=(isic2019.METADATA_FILE,)),
    Download("isic2020", "ISIC2020", 33126, "https://challenge.isic-archive.com/data/#2020",
             "ISIC_2020_Training_GroundTruth.csv (or Kaggle's train.csv)", "ISIC 2020 challenge data",
             urls=tuple(f"{ISIC_BUCKET}/2020/{name}" for name in (
                 "ISIC_2020_Training_JPEG.zip", "ISIC_2020_Training_GroundTruth.csv",
                 isic2020.DUPLICATES_FILE)),
             kaggle_competition=ISIC2020_COMPETITION,
             skip=("test/*", "jpeg/test/*", "tfrecords/*", "*.dcm", "*.tfrec")),
    Download("pad-ufes-20", "PAD-UFES-20", 2298, "https://data.mendeley.com/datasets/zr7vgbcyr2/1",
             "metadata.csv", "Mendeley Data PAD-UFES-20 archive", urls=(MENDELEY_ZIP,), nested=True),
)}


class CredentialsError(UserError):
    """No Kaggle credentials were found; the message says how to provide them."""


class Unreachable(UserError):
    """A server could not be reached; callers add how to download by hand."""

    def __init__(self, url: str, reason: object):
        super().__init__(f"Cannot download {url}: the network is unreachable ({reason}).")
        self.url, self.reason = url, reason


def default_folder(name: str) -> Path:
    """``data/<Dataset folder>``, where a dataset goes without ``--data-dir``."""
    return layout.DATA_DIR / DOWNLOADS[name].folder


def kaggle_archive_name(download: Download) -> str:
    """The zip the Kaggle client writes: the dataset's or competition's slug."""
    return f"{(download.kaggle_competition or download.kaggle_dataset).split('/')[-1]}.zip"


def kaggle_page(download: Download) -> str:
    if download.kaggle_competition:
        return f"https://www.kaggle.com/competitions/{download.kaggle_competition}"
    return f"https://www.kaggle.com/datasets/{download.kaggle_dataset}"


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


def rules_note(download: Download) -> str:
    """Kaggle serves a competition's data only to accounts that accepted its rules."""
    if not download.kaggle_competition:
        return ""
    return (f"The competition's data is served only once its rules are accepted: sign in and click "
            f"'Join Competition' / 'I Understand and Accept' at {kaggle_page(download)}/rules.\n")


def credentials_help(archive_dir: Path, download: Download = DOWNLOADS["ham10000"]) -> str:
    name, flags = kaggle_archive_name(download), download.again.partition(".py")[2]
    return (
        "No Kaggle credentials found, so nothing was downloaded.\n"
        "Set them up in one of these ways:\n"
        "  * create an API token at https://www.kaggle.com/settings (API section), save the\n"
        "    downloaded kaggle.json as ~/.kaggle/kaggle.json and run: chmod 600 ~/.kaggle/kaggle.json\n"
        "  * or export KAGGLE_USERNAME=<user> and KAGGLE_KEY=<key> (or KAGGLE_API_TOKEN=<token>)\n"
        + rules_note(download)
        + "Or download by hand: open " + kaggle_page(download) + ", click Download, and run\n"
        f"  python scripts/01_download_data.py{flags} --from-zip PATH/TO/{name}\n"
        f"(or place the zip at {archive_dir / name} and run this script again)."
    )


def default_kaggle_api():
    """The authenticated Kaggle API client (imported only once credentials are known)."""
    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    api.authenticate()
    return api


def kaggle_failure(error: OSError, download: Download, archive_dir: Path) -> UserError:
    """One line for a failed Kaggle download (``requests`` errors are OSErrors): refused (rules
    not accepted, credentials out of date) or unreachable, and what to do instead."""
    status = getattr(getattr(error, "response", None), "status_code", None)
    network = type(error).__module__.split(".")[0] in ("requests", "urllib3") or isinstance(
        error, (ConnectionError, TimeoutError, socket.gaierror))
    if status is None and not network:
        raise error  # a local problem (a full disk ...): its own message says what
    by_hand = (f"or download {kaggle_archive_name(download)} by hand from {kaggle_page(download)} and pass "
               f"it with {download.again} --from-zip PATH (or put it in {archive_dir}).")
    if status in (401, 403):
        why = (f"accept the competition's rules at {kaggle_page(download)}/rules with the account of "
               "your credentials" if download.kaggle_competition else "check that your Kaggle credentials are current")
        return UserError(f"Kaggle refused the download of {kaggle_page(download)} (HTTP {status}): {why}, {by_hand}")
    if status is not None:
        return UserError(f"Kaggle answered HTTP {status} for {kaggle_page(download)}; try again later, {by_hand}")
    return UserError(f"{Unreachable(kaggle_page(download), error)} Try again when online, {by_hand}")


def download_from_kaggle(
    download: Download, archive_dir: Path, api_factory: Callable[[], object] = default_kaggle_api,
    environ: Mapping[str, str] | None = None, home: Path | None = None,
) -> Path:
    """Download the Kaggle zip into ``archive_dir`` (kept if already there) and return its path.

    The client writes into a ``.partial`` folder that survives an interruption, so its own
    resume picks up where it stopped; the zip is moved into place once complete."""
    name = kaggle_archive_name(download)
    archive = Path(archive_dir) / name
    if archive.is_file():
        log.info("Using the archive already downloaded at %s", archive)
        return archive
    source = find_kaggle_credentials(environ, home)
    if source is None:
        raise CredentialsError(credentials_help(Path(archive_dir), download))
    log.info("Downloading %s with Kaggle credentials from %s", kaggle_page(download), source)
    if download.kaggle_competition:
        log.info("(the whole competition, over 100 GB; its rules must be accepted at %s/rules)", kaggle_page(download))
    partial = archive.with_name(f".{name}.partial")
    partial.mkdir(parents=True, exist_ok=True)
    try:
        api = api_factory()
        if download.kaggle_competition:
            api.competition_download_files(download.kaggle_competition, path=str(partial), quiet=False)
        else:
            api.dataset_download_files(download.kaggle_dataset, path=str(partial), quiet=False, unzip=False)
    except OSError as error:
        with contextlib.suppress(OSError):
            partial.rmdir()  # only if the client wrote nothing to resume from
        raise kaggle_failure(error, download, Path(archive_dir)) from None
    downloaded = partial / name
    if not downloaded.is_file():
        raise UserError(
            f"The Kaggle client finished without writing {name}; download it by hand "
            f"from {kaggle_page(download)} and use --from-zip."
        )
    os.replace(downloaded, archive)
    shutil.rmtree(partial, ignore_errors=True)
    return archive


def range_total(error: urllib.error.HTTPError) -> int | None:
    """The full size a 416 answer names (``Content-Range: bytes */SIZE``), if it does."""
    value = (error.headers or {}).get("Content-Range", "")
    total = value.rpartition("/")[2]
    return int(total) if total.isdigit() else None


def stream(url: str, partial: Path, opener: Callable[..., object], timeout: float) -> int | None:
    """Append the rest of ``url`` to ``partial`` (all of it if the server ignores the range);
    returns the full size the server announced, if it did."""
    start = partial.stat().st_size if partial.is_file() else 0
    headers = {"User-Agent": "skin-lesion-cnn"} | ({"Range": f"bytes={start}-"} if start else {})
    with opener(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
        resumed = bool(start) and getattr(response, "status", 200) == 206
        if start:
            log.info("Resuming %s at byte %d", url, start) if resumed else log.info(
                "%s: the server cannot resume, so it is downloaded again from the start", url)
        length = response.headers.get("Content-Length")
        with partial.open("ab" if resumed else "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    return int(length) + (start if resumed else 0) if length and length.isdigit() else None


def fetch_url(url: str, target: Path, opener: Callable[..., object] = urllib.request.urlopen,
              timeout: float = 60) -> Path:
    """Download ``url`` to ``target`` through ``<target>.partial``, renamed once complete.

    A partial file left by an interrupted run is resumed with an HTTP Range request, so a 9 GB
    zip is never fetched twice. Failures are one line: unreachable (:class:`Unreachable`),
    refused (the HTTP status), or stopped half-way (run again to resume)."""
    target = Path(target)
    partial = target.with_name(target.name + ".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        total = stream(url, partial, opener, timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and partial.is_file() and range_total(error) == partial.stat().st_size:
            os.replace(partial, target)  # the partial file already held all of it
            return target
        raise UserError(f"{url} answered HTTP {error.code} ({error.reason}): the file may have moved; "
                        "download it by hand (see the dataset's page) and pass it with --from-zip.") from None
    except urllib.error.URLError as error:
        raise Unreachable(url, error.reason) from None
    except (OSError, http.client.HTTPException) as error:
        total, reason = None, f" ({error or type(error).__name__})"
    else:
        reason = ""
    done = partial.stat().st_size if partial.is_file() else 0
    if reason or (total is not None and done < total):
        of = f" of {total}" if total else ""
        raise UserError(f"The download of {url} stopped after {done}{of} bytes{reason}; run the same "
                        f"command again to resume it from {partial}.")
    os.replace(partial, target)
    return target


def offline_help(error: Unreachable, download: Download, archive_dir: Path) -> str:
    """One line: the URL, the network, and how to download by hand and where to put the files."""
    names = download.files
    listed = f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else names[0]
    return (f"{error} Download {listed} by hand from {download.page}, put "
            f"{'them' if len(download.files) > 1 else 'it'} in {archive_dir} and run "
            f"{download.again} again (or pass {'each' if len(download.files) > 1 else 'it'} with --from-zip PATH).")


def download_https(download: Download, archive_dir: Path,
                   fetch: Callable[[str, Path], Path] = fetch_url) -> list[Path]:
    """The dataset's files in ``archive_dir``, downloading those not there yet."""
    files = []
    for url, name in zip(download.urls, download.files):
        target = Path(archive_dir) / name
        if target.is_file():
            log.info("Using %s, downloaded before", target)
        else:
            log.info("Downloading %s to %s", url, target)
            try:
                fetch(url, target)
            except Unreachable as error:
                raise UserError(offline_help(error, download, Path(archive_dir))) from None
        files.append(target)
    return files


def unsafe_member(name: str) -> bool:
    """True for archive paths that are absolute or climb out of the destination."""
    path = PurePosixPath(name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0])


def extract_archive(archive: Path, destination: Path, remedy: str, skip: Sequence[str] = ()) -> None:
    """Extract ``archive`` into ``destination`` member by member, refusing unsafe members.

    Symbolic links (which could point anywhere) are refused as well; ``remedy`` says what to do
    about an archive that is no zip file. Members matching a ``skip`` pattern are left out
    (every member is checked all the same).
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
                    f"{', '.join((unsafe + links)[:10])} would be written outside the folder it is "
                    "extracted into, or are links. The archive is damaged or malicious; download it again."
                )
            root = destination.resolve()
            for member in members:
                if any(fnmatch.fnmatchcase(member.filename, pattern) for pattern in skip):
                    continue
                target = (root / member.filename).resolve()
                if root != target and root not in target.parents:
                    raise DatasetError(f"Refusing to extract {member.filename} from {archive}.")
                bundle.extract(member, root)
    except zipfile.BadZipFile as error:
        raise DatasetError(
            f"{archive} is not a valid zip file ({error}); {remedy}."
        ) from error


def extract_nested(folder: Path, remedy: str) -> None:
    """Extract the zips found inside an extracted archive beside themselves, then delete them
    (PAD-UFES-20 packs its images as images/imgs_part_1.zip ... inside its zip)."""
    for _ in range(3):  # zips in zips in zips, no deeper
        nested = sorted(path for path in folder.rglob("*.zip") if path.is_file())
        if not nested:
            return
        for archive in nested:
            extract_archive(archive, archive.parent, remedy)
            archive.unlink()


def in_archive_terms(text: str, staging: Path, archive: Path, copies: Mapping[str, Path] | None = None) -> str:
    """``text`` with paths in the hidden staging folder named as members of the archive (or as
    the user's own file, for the ``copies`` put there by name)."""
    for name, source in (copies or {}).items():
        text = text.replace(str(staging / name), str(source))
    return text.replace(f"{staging}{os.sep}", f"{archive}:").replace(str(staging), str(archive))


@contextlib.contextmanager
def archive_terms_in_logs(staging: Path, archive: Path, copies: Mapping[str, Path] | None = None) -> Iterator[None]:
    """While an archive is checked in its staging folder, the dataset reader's warnings name the
    archive (the user's file), not the hidden folder that is about to disappear."""
    def rename(record: logging.LogRecord) -> bool:
        record.msg, record.args = in_archive_terms(record.getMessage(), staging, archive, copies), ()
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


def hoist(staging: Path, root: Path) -> None:
    """Make the dataset folder ``root``, found inside ``staging``, the top of ``staging``: an
    archive that wraps its files in a folder installs as if it did not."""
    holder = staging / ".hoisting"
    root.rename(holder)
    for leftover in staging.iterdir():
        if leftover != holder:
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    for child in holder.iterdir():
        child.rename(staging / child.name)
    holder.rmdir()


def locate(staging: Path, name: str) -> bool:
    """Whether the dataset's files are in ``staging`` (hoisted from a folder up to two deep)."""
    dataset_format = get_format(name)
    if dataset_format.find(staging) is not None:
        return True
    for folder in sorted([*staging.glob("*/"), *staging.glob("*/*/")]):
        if folder.is_dir() and dataset_format.find(folder) is not None:
            hoist(staging, folder)
            return True
    return False


def unpack(files: Sequence[Path], staging: Path, download: Download, remedy: str) -> None:
    """Zips extracted, other files (the ISIC CSVs) copied, into ``staging``."""
    for path in files:
        if path.suffix.lower() == ".zip":
            extract_archive(path, staging, remedy, download.skip)
        else:
            shutil.copyfile(path, staging / path.name)
    if download.nested:
        extract_nested(staging, remedy)


def check_contents(staging: Path, download: Download, described: str, remedy: str) -> None:
    """The unpacked files are this dataset (hoisted out of a wrapping folder) and complete."""
    if not locate(staging, download.name):
        top = sorted(path.name for path in staging.iterdir())
        raise DatasetError(
            f"{described[0].upper()}{described[1:]} holds no {download.identifies} (at its top level: "
            f"{list_some(top) or 'nothing'}), so it is not the {download.origin}; {remedy}."
        )
    root = get_format(download.name).find(staging)
    lacking = [need for need in download.needs if not (root / need).is_file()]
    if lacking:
        raise DatasetError(f"{described[0].upper()}{described[1:]} lacks {', '.join(lacking)}, part of the "
                           f"{download.origin}; {remedy}.")


def install_dataset(
    archive: Path | Sequence[Path], data_dir: Path, expected_images: int | None = HAM10000_IMAGES,
    remedy: str = f"download {ARCHIVE_NAME} again from {KAGGLE_URL}", name: str = "ham10000",
) -> int:
    """Extract and verify ``archive`` (or several files) into ``data_dir``; returns the number of images.

    Nothing is written to ``data_dir`` unless the extracted data verifies: every metadata row
    has its image and, for the real download, the published number of images is there.
    Problems name the archive and what it lacks, never the temporary folder it was unpacked
    into; ``remedy`` says what to do (a user's own zip is never to be deleted by our advice).
    """
    files = [Path(archive)] if isinstance(archive, (str, Path)) else [Path(path) for path in archive]
    data_dir = Path(data_dir)
    main = next((path for path in files if path.suffix.lower() == ".zip"), files[0])
    copies = {path.name: path for path in files if path.suffix.lower() != ".zip"}
    described = f"the archive {main}" if len(files) == 1 else f"the download ({list_some(files)})"
    if data_dir.exists():
        raise OverwriteError(f"{data_dir} already exists; remove it to extract again.")
    with staging_dir(data_dir) as staging, archive_terms_in_logs(staging, main, copies):
        try:
            unpack(files, staging, DOWNLOADS[name], remedy)
            check_contents(staging, DOWNLOADS[name], described, remedy)
            count = verify_dataset(staging, expected_images, described, remedy, name)
        except DatasetError as error:
            raise DatasetError(in_archive_terms(str(error), staging, main, copies)) from None
    return count


def verify_dataset(data_dir: Path, expected_images: int | None = HAM10000_IMAGES, label: str | None = None,
                   remedy: str = "delete it and download it again", name: str = "ham10000") -> int:
    """Check that a dataset folder is complete; returns the number of usable images.

    ``label`` is how messages call the folder (default: its path), ``remedy`` what they advise.
    """
    dataset = load_dataset(data_dir, name)
    title = get_format(name).title
    label = label or str(data_dir)
    count = len(dataset.table)
    if dataset.missing_images:
        raise DatasetError(
            f"{len(dataset.missing_images)} image(s) listed in the metadata are missing from "
            f"{label} ({list_some(dataset.missing_images)}); the download is incomplete: {remedy}."
        )
    if expected_images is not None and count != expected_images:
        raise DatasetError(
            f"{label} holds {count} images matched to the metadata, not the "
            f"{expected_images} of {title}: {remedy}."
        )
    return count


def given_files(download: Download, archives: Sequence[Path]) -> list[Path]:
    """The files passed with ``--from-zip``, plus the dataset's other official files found
    beside them (ISIC's CSVs next to the images zip)."""
    files = [Path(path) for path in archives]
    for path in files:
        if not path.is_file():
            raise MissingFileError(f"--from-zip: {path} does not exist.")
    names = {path.name for path in files}
    beside = [files[0].parent / name for name in download.files if name not in names]
    return files + [path for path in beside if path.is_file()]


def hand_remedy(download: Download) -> str:
    """What to do about a file the user downloaded by hand (never: delete it)."""
    if len(download.files) == 1:
        return f"download {download.files[0]} again from {download.page}"
    return (f"download {', '.join(download.files)} from {download.page} and pass each with --from-zip "
            "(or put them side by side)")


def fetch_dataset(
    name: str, data_dir: Path | None = None, archives: Sequence[Path] = (),
    expected_images: int | None | str = PUBLISHED, kaggle: bool = False,
    api_factory: Callable[[], object] = default_kaggle_api, fetch: Callable[[str, Path], Path] = fetch_url,
    environ: Mapping[str, str] | None = None, home: Path | None = None,
) -> int:
    """Make ``data_dir`` (default ``data/<folder>``) hold a verified copy of dataset ``name``;
    idempotent. Returns the image count.

    With ``archives`` (``--from-zip``) those files are used, otherwise the official ones are
    downloaded (once) beside ``data_dir`` in ``downloads/``: over HTTPS, or with ``kaggle``
    (or for HAM10000) through the Kaggle client.
    """
    if name not in DOWNLOADS:
        raise ConfigError(f"--dataset {name}: no download for it; choose one of {', '.join(DOWNLOADS)}.")
    download = DOWNLOADS[name]
    if kaggle and not (download.kaggle_competition or download.kaggle_dataset):
        raise ConfigError(f"--kaggle: {name} is not on Kaggle; drop --kaggle.")
    data_dir = Path(data_dir) if data_dir else default_folder(name)
    expected = download.images if expected_images == PUBLISHED else expected_images
    title = get_format(name).title
    if data_dir.exists():
        count = verify_dataset(data_dir, expected, name=name)
        log.info("%s already holds a verified %s (%d images); nothing to do.", data_dir, title, count)
        return count
    if archives:
        count = install_dataset(given_files(download, archives), data_dir, expected, hand_remedy(download), name)
    else:
        archive_dir = data_dir.parent / "downloads"
        if kaggle or not download.urls:
            files = [download_from_kaggle(download, archive_dir, api_factory, environ, home)]
        else:
            files = download_https(download, archive_dir, fetch)
        ours = " and ".join(str(path) for path in files)
        count = install_dataset(files, data_dir, expected,
                                f"delete {ours} (our download) and run {download.again}"
                                f"{' --kaggle' if kaggle and download.urls else ''} again", name)
    log.info("%s is ready in %s (%d images).", title, data_dir, count)
    return count


def fetch_ham10000(
    data_dir: Path,
    archive: Path | None = None,
    api_factory: Callable[[], object] = default_kaggle_api,
    expected_images: int | None = HAM10000_IMAGES,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> int:
    """Make ``data_dir`` hold a verified HAM10000 (:func:`fetch_dataset` for ``ham10000``)."""
    return fetch_dataset("ham10000", data_dir, [archive] if archive else (), expected_images,
                         api_factory=api_factory, environ=environ, home=home)
