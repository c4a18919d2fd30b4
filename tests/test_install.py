"""The README's Python promise: `make install` refuses an older Python in one line, and the
locked versions install on every Python the README names."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

#: The Pythons the README names: 3.11 is tested, 3.12 and 3.13 must resolve the same lock.
SUPPORTED = ("3.11", "3.12", "3.13")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "linux_x86_64", "any")


def test_make_install_refuses_an_older_python_in_one_line(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    old_python = tmp_path / "python3.10"
    old_python.write_text(f"#!{sys.executable}\nimport sys\nsys.version_info = (3, 10, 12, 'final', 0)\n"
                          "sys.version = '3.10.12 (a stand-in)'\ncode = sys.argv[2]\nexec(code)\n")
    old_python.chmod(0o755)
    result = subprocess.run(["make", "-C", str(REPO), "install", f"PYTHON={old_python}",
                             f"VENV={tmp_path / 'venv'}"], capture_output=True, text=True)
    assert result.returncode != 0
    assert f"Python 3.11 or newer is needed, but {old_python} is 3.10.12" in result.stderr
    assert "PYTHON=python3.11" in result.stderr and not (tmp_path / "venv").exists()


@pytest.mark.slow
@pytest.mark.parametrize("version", SUPPORTED)
def test_the_lock_resolves_for_every_python_the_readme_names(version, tmp_path):
    platforms = [argument for platform in PLATFORMS for argument in ("--platform", platform)]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
         "--only-binary=:all:", "--python-version", version, *platforms, "--target", str(tmp_path),
         "-r", str(REPO / "requirements-lock.txt")], capture_output=True, text=True, timeout=600)
    if result.returncode and "No matching distribution" not in result.stderr:
        pytest.skip(f"the package index could not be asked: {result.stderr.strip().splitlines()[-1:]}")
    assert result.returncode == 0, result.stderr[-2000:]
