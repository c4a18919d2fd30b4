"""The Hugging Face Hub: publishing a run's exports and scoring a published model, through
``huggingface_hub`` (``HfApi.upload_folder``, ``snapshot_download``).

A Hub repository holds the chosen formats' folders as ``export/`` lays them out (each with its
``description.json``) and the run's model card as its ``README.md``, under the Hub's metadata
header (licence, datasets, metrics), so it is found and read as any model there. A model is named
``hf://OWNER/NAME`` (its first format by ``PULL_ORDER``) or ``hf://OWNER/NAME/FORMAT``.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from skin_lesion.errors import ConfigError, MissingFileError, UserError
from skin_lesion.export.catalogue import FORMATS
from skin_lesion.io_utils import read_json
from skin_lesion.tasks import SCREENING_METRICS

SCHEME = "hf://"
#: The format a bare ``hf://OWNER/NAME`` scores with: the fastest to start first.
PULL_ORDER = ("tflite", "onnx", "keras", "savedmodel", "tflite-float16", "tflite-int8")
LICENCE = "mit"


class HubError(UserError):
    """The Hub could not be reached or holds no model of this project; the message says what to do."""


def is_hub_name(name: str | Path) -> bool:
    return str(name).startswith(SCHEME)


def parse(name: str) -> tuple[str, str | None]:
    """``hf://OWNER/NAME[/FORMAT]`` as the repository id and the format (None: the first found)."""
    parts = name[len(SCHEME):].strip("/").split("/")
    if len(parts) not in (2, 3) or not all(parts) or (len(parts) == 3 and parts[2] not in FORMATS):
        raise ConfigError(f"--model-file {name}: a Hub model is hf://OWNER/NAME or hf://OWNER/NAME/FORMAT "
                          f"(FORMAT one of {', '.join(FORMATS)}).")
    return "/".join(parts[:2]), parts[2] if len(parts) == 3 else None


def card(run_root: Path, model_card: Path) -> str:
    """The run's model card under the Hub's metadata header."""
    from huggingface_hub import ModelCard, ModelCardData

    config = read_json(run_root / "training_config.json", "Training config")
    metrics_file = run_root / "test_metrics.json"
    metrics = read_json(metrics_file, "Test metrics").get(SCREENING_METRICS, {}) if metrics_file.is_file() else {}
    data = ModelCardData(license=LICENCE, datasets=[config.get("dataset", {}).get("name", "HAM10000")],
                         metrics=sorted(name for name in metrics if "@" not in name), library_name="keras",
                         tags=["image-classification", "dermatology", "skin-lesion", "tflite", "onnx"])
    body = model_card.read_text(encoding="utf-8") if model_card.is_file() else "# Skin-lesion classifier\n"
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}").content


def push(run_root: Path, export_dir: Path, formats: list[str], repo_id: str, api=None) -> str:
    """Upload the exported ``formats`` and the model card to ``repo_id``; returns its address."""
    from huggingface_hub import HfApi

    missing = [name for name in formats if not (export_dir / name / "description.json").is_file()]
    if missing:
        raise MissingFileError(f"--push-to-hub: {', '.join(missing)} not exported under {export_dir}; "
                               "export them first (--format).")
    api = api or HfApi()
    with hub_errors(repo_id):
        api.create_repo(repo_id, exist_ok=True)
        api.upload_folder(folder_path=str(export_dir), repo_id=repo_id,
                          allow_patterns=[f"{name}/**" for name in formats], commit_message="Exported models")
        api.upload_file(path_or_fileobj=card(run_root, run_root / "model_card.md").encode("utf-8"),
                        path_in_repo="README.md", repo_id=repo_id, commit_message="Model card")
    return f"https://huggingface.co/{repo_id}"


def pull(name: str, download=None) -> Path:
    """The local path of a Hub model (downloaded, or from the Hub's cache), ready to score."""
    from huggingface_hub import snapshot_download

    repo_id, wanted = parse(name)
    with hub_errors(repo_id):
        folder = Path((download or snapshot_download)(repo_id=repo_id))
    found = [fmt for fmt in ((wanted,) if wanted else PULL_ORDER) if (folder / fmt / "description.json").is_file()]
    if not found:
        raise HubError(f"{name}: the repository holds no {wanted or 'exported'} model of this project "
                       "(a folder per format with its description.json, as scripts/08_export.py writes).")
    return folder / found[0] / FORMATS[found[0]].file_name


@contextlib.contextmanager
def hub_errors(repo_id: str) -> Iterator[None]:
    """The Hub's network and access errors as one line that says what to do."""
    from huggingface_hub import errors

    try:
        yield
    except (errors.RepositoryNotFoundError, errors.GatedRepoError) as error:
        raise HubError(f"Hugging Face Hub repository {repo_id} not found or not accessible; check the "
                       "name, or log in (hf auth login) for a private one.") from error
    except (errors.LocalEntryNotFoundError, errors.HfHubHTTPError, OSError) as error:
        raise HubError(f"Cannot reach the Hugging Face Hub for {repo_id} ({type(error).__name__}); check "
                       "the network, or work offline with a copy downloaded before (HF_HUB_OFFLINE=1).") from error
