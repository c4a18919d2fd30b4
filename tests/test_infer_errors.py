"""Images that cannot be scored: each named on the console in plain words, no TensorFlow log
lines, and an exit status a calling script can act on (0 all scored, 1 some not, 2 none)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import REPO, SCRIPTS

pytestmark = pytest.mark.slow

MODEL = REPO / "tests" / "fixtures" / "legacy_runs" / "binary" / "models" / "simple_cnn_best.h5"


def infer(source, output, tmp_path) -> subprocess.CompletedProcess:
    """06_infer.py as a user runs it: without TF_CPP_MIN_LOG_LEVEL set (``output`` None: the
    default output)."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    shutil.copy(MODEL, tmp_path / "model.h5")
    where = ["--output", str(output)] if output else []
    return subprocess.run([sys.executable, str(SCRIPTS / "06_infer.py"), str(source), "--model-file",
                           str(tmp_path / "model.h5"), "--outputs-dir", str(tmp_path / "outputs"), *where],
                          capture_output=True, text=True, env=env, cwd=REPO)


def test_damaged_files_are_named_in_plain_words_and_the_exit_status_says_so(sample_dir, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    good = next((sample_dir / "HAM10000_images_part_2").iterdir())
    shutil.copy(good, folder / "good.jpg")
    (folder / "cut.jpg").write_bytes(good.read_bytes()[:3000])
    (folder / "notes.jpg").write_text("not an image")
    result = infer(folder, tmp_path / "scores.csv", tmp_path)
    assert result.returncode == 1, result.stderr
    assert "cut.jpg: not scored: damaged or truncated JPEG" in result.stderr
    assert "notes.jpg: not scored: not an image" in result.stderr
    assert "jpeg_mem" not in result.stderr and "E0000" not in result.stderr  # no TensorFlow log
    scores = pd.read_csv(tmp_path / "scores.csv", keep_default_na=False).set_index("path")
    assert scores.loc[str(folder / "cut.jpg"), "error"].startswith("damaged or truncated JPEG (")
    assert scores.loc[str(folder / "good.jpg"), "error"] == ""

    alone = infer(folder / "cut.jpg", None, tmp_path)
    assert alone.returncode == 2 and "cut.jpg: not scored: damaged or truncated JPEG" in alone.stderr
    assert not (tmp_path / "outputs").exists()  # one image: its verdict on the console, no CSV


def test_many_damaged_files_are_named_up_to_a_limit_then_counted(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(12):
        (folder / f"broken{index:02d}.png").write_text("not an image")
    result = infer(folder, tmp_path / "scores.csv", tmp_path)
    assert result.returncode == 2
    assert result.stderr.count(": not scored: not an image") == 10
    assert f"... and 2 more file(s) not scored; the error column of {tmp_path / 'scores.csv'} says why" in result.stderr
