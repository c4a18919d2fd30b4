"""The README's promises: its Python snippet reproduces 06_infer.py's score exactly."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import REPO, run_script

pytestmark = pytest.mark.slow


def readme_snippet(name: str) -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- snippet: {name} .*?-->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README has no snippet {name}"
    return match.group(1)


def test_the_use_elsewhere_snippet_gives_the_scripts_score(sample_dir, trained_run, tmp_path):
    run = trained_run.run
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    image = next((sample_dir / "HAM10000_images_part_2").iterdir())  # 600x450: decoded at 1/8
    for source, name in ((run / "models/vgg_scratch_best.h5", "simple_cnn_best.h5"), (image, "lesion.jpg"),
                         (run / "calibration.json", "calibration.json"), (run / "threshold.json", "threshold.json")):
        shutil.copy(source, elsewhere / name)
    (elsewhere / "snippet.py").write_text(readme_snippet("use-elsewhere") + "\nprint(repr(float(score)))\n")
    result = subprocess.run([sys.executable, "snippet.py"], cwd=elsewhere, capture_output=True, text=True,
                            env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr[-2000:]
    snippet_score = float(result.stdout.strip().splitlines()[-1])
    run_script("06_infer.py", image, "--outputs-dir", trained_run.outputs, "--output", tmp_path / "p.csv")
    script_score = pd.read_csv(tmp_path / "p.csv")["malignant_score"].iloc[0]
    assert snippet_score == pytest.approx(script_score, abs=1e-6)
    assert ("malignant" if script_score >= pd.read_json(run / "threshold.json", typ="series")["threshold"]
            else "benign") in result.stdout.splitlines()[-2]
