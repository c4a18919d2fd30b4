"""The README's promises: every file and flag it names exists, and its Python snippet
reproduces 06_infer.py's score exactly."""
from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO, SCRIPTS, run_script

README = (REPO / "README.md").read_text()


def readme_snippet(name: str) -> str:
    match = re.search(rf"<!-- snippet: {name} .*?-->\s*```python\n(.*?)```", README, re.S)
    assert match, f"README has no snippet {name}"
    return match.group(1)


def script_commands() -> list[tuple[str, list[str]]]:
    """Each ``python scripts/NAME.py ...`` command in the README's shell blocks, as the script's
    name and its words (continuation lines joined, comments dropped)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in [line for line in block.replace("\\\n", " ").splitlines() if "scripts/" in line]:
            words = shlex.split(re.sub(r"(^|\s)#.*", "", line))
            for index, word in enumerate(words):
                if word.startswith("scripts/") and word.endswith(".py"):
                    commands.append((Path(word).name, words[index + 1:]))
    return commands


def script_parser(name: str):
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), SCRIPTS / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_parser()


def test_every_file_the_readme_names_exists():
    named = set(re.findall(r"(?:src/skin_lesion|scripts|configs|tests)/[\w/.-]*\.(?:py|json)", README))
    assert named and not [path for path in named if not (REPO / path).exists()]


def test_every_flag_in_the_readmes_commands_exists():
    commands = script_commands()
    assert len(commands) > 20
    for name, words in commands:
        options = script_parser(name)._option_string_actions
        unknown = [word.split("=")[0] for word in words
                   if word.startswith("--") and word.split("=")[0] not in options]
        assert not unknown, f"README: {name} has no {unknown}"


@pytest.mark.slow
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
