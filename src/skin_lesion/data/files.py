"""Which files are images: one list of supported formats, used by every step.

The formats are those TensorFlow's decoder reads (``skin_lesion.data.images``): JPEG, PNG, BMP, GIF
and WebP. Folders are scanned recursively in sorted order, so the same folder always gives the
same list, and whatever is passed over is reported with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
#: How many offending names a message lists before it summarises the rest.
LISTED = 10


def list_some(items, limit: int = LISTED) -> str:
    """``a, b, c`` for a few items, ``a, b, ... (N more)`` for many."""
    items = [str(item) for item in items]
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown}, ... ({len(items) - limit} more)"


def is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def has_image_extension(path: Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_image_file(path: Path) -> bool:
    return path.is_file() and has_image_extension(path) and not is_hidden(path)


@dataclass
class FolderScan:
    """The images found under a folder, and what was passed over and why."""

    images: list[Path]
    skipped: dict[str, list[Path]] = field(default_factory=dict)  # reason -> files

    def skipped_summary(self) -> str:
        """``3 files skipped: 2 not a supported image format (a.txt, b.csv); 1 hidden (.x)``."""
        parts = [f"{len(files)} {reason} ({list_some(path.name for path in files)})"
                 for reason, files in self.skipped.items()]
        total = sum(len(files) for files in self.skipped.values())
        return f"{total} file(s) skipped: " + "; ".join(parts)


def scan_folder(folder: Path) -> FolderScan:
    """Every image below ``folder``, subfolders included, in sorted path order.

    Hidden files and folders (names starting with a dot, such as ``.DS_Store`` or
    ``.ipynb_checkpoints``) and files of other formats are skipped, with their reason.
    """
    folder = Path(folder)
    scan = FolderScan([])
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            scan.skipped.setdefault("hidden", []).append(path)
        elif not has_image_extension(path):
            formats = ", ".join(IMAGE_EXTENSIONS)
            scan.skipped.setdefault(f"not a supported image format ({formats})", []).append(path)
        else:
            scan.images.append(path)
    return scan
