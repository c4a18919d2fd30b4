"""One home for where things live on disk: data folders, the split, caches and run folders.

Every script takes its defaults from here, so a run folder always has the same shape and the
later steps find what the earlier ones wrote.
"""
from __future__ import annotations

from pathlib import Path

DATA_DIR = Path("data")
HAM10000_DIR = DATA_DIR / "HAM10000"
SAMPLE_DIR = DATA_DIR / "sample"
OUTPUTS_DIR = Path("outputs")
SPLIT_DIR = OUTPUTS_DIR / "split"
SPLIT_FILE = "split.csv"
SPLIT_SUMMARY_FILE = "split_summary.json"


def split_paths(split_dir: Path) -> tuple[Path, Path]:
    """The split table and its JSON summary inside ``split_dir``."""
    split_dir = Path(split_dir)
    return split_dir / SPLIT_FILE, split_dir / SPLIT_SUMMARY_FILE
CACHE_DIR = OUTPUTS_DIR / "cache"
