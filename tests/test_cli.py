"""The command line: fast --help, help for every flag, one-line user errors, tracebacks for bugs,
no TensorFlow start-up noise, and files readable by colleagues."""
from __future__ import annotations

import argparse
import importlib.util
import os
import stat
import subprocess
import sys

import pytest

from tests.conftest import REPO, SCRIPTS, run_script

SCRIPT_FILES = sorted(SCRIPTS.glob("*.py"))

HELP_WITHOUT_TENSORFLOW = """
import runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
heavy = sorted(name for name in ("tensorflow", "keras", "cv2", "sklearn") if name in sys.modules)
print("HEAVY", heavy)
"""


@pytest.mark.parametrize("script", SCRIPT_FILES, ids=lambda path: path.name)
def test_help_answers_without_loading_tensorflow(script):
    result = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TENSORFLOW, str(script)], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout and "--debug" in result.stdout
    assert "HEAVY []" in result.stdout, f"{script.name} --help imports {result.stdout.splitlines()[-1]}"


def load_parser(script):
    spec = importlib.util.spec_from_file_location(script.stem.replace("0", "s0", 1), script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_parser()


@pytest.mark.parametrize("script", SCRIPT_FILES, ids=lambda path: path.name)
def test_every_flag_has_help_text(script):
    parser = load_parser(script)
    undocumented = [action.option_strings or [action.dest] for action in parser._actions
                    if not action.help and not isinstance(action, argparse._HelpAction)]
    assert undocumented == [], f"{script.name}: flags without help: {undocumented}"


def test_model_flags_do_not_mean_two_things():
    train = {flag for action in load_parser(SCRIPTS / "03_train.py")._actions for flag in action.option_strings}
    infer = {flag for action in load_parser(SCRIPTS / "06_infer.py")._actions for flag in action.option_strings}
    assert "--model" in train and "--model" not in infer and "--model-file" in infer


def test_user_errors_are_one_line_and_debug_shows_the_traceback(tmp_path):
    missing = tmp_path / "nowhere"
    result = run_script("05_evaluate.py", "--outputs-dir", missing, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: No training run at") and "Traceback" not in result.stderr
    debug = run_script("05_evaluate.py", "--outputs-dir", missing, "--debug", check=False)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "MissingFileError" in debug.stderr


def test_bad_numbers_are_refused_by_the_parser_naming_the_flag(tmp_path):
    result = run_script("05_evaluate.py", "--outputs-dir", tmp_path, "--bootstrap", "-1", check=False)
    assert result.returncode == 2 and "--bootstrap: -1 is not a number >= 0" in result.stderr
    result = run_script("04_tune_threshold.py", "--outputs-dir", tmp_path, "--target-sensitivity", "0",
                        check=False)
    assert result.returncode == 2 and "--target-sensitivity: 0 is not a number > 0 and <= 1" in result.stderr


def test_a_bug_keeps_its_traceback():
    code = ("import sys\nsys.argv = ['x']\nfrom skin_lesion import cli\n"
            "def build():\n    return cli.parser('x')\n"
            "def main(args):\n    return {}['missing']\n"
            "cli.run(build, main, tensorflow=False)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" in result.stderr and "KeyError: 'missing'" in result.stderr


NOISE = ("absl::InitializeLog", "oneDNN", "cuInit", "cuda", "cpu_feature_guard", "rebuild TensorFlow")


def test_tensorflow_start_up_is_quiet_and_debug_shows_it(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    (tmp_path / "notes.h5").write_text("not a model")  # passes the early checks, fails to load
    command = [sys.executable, str(SCRIPTS / "07_explain.py"), "--model-file", str(tmp_path / "notes.h5"),
               "--images", str(tmp_path)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "Cannot load the model file" in result.stderr or "not an HDF5" in result.stderr, result.stderr
    assert not [word for word in NOISE if word in result.stderr]
    debug = subprocess.run([*command, "--debug"], cwd=REPO, capture_output=True, text=True, env=env)
    assert "TensorFlow start-up messages" in debug.stderr


def test_written_files_follow_the_umask(sample_dir, tmp_path):
    code = (f"import os, sys, runpy\nos.umask(0o022)\n"
            f"sys.argv = ['02_prepare_split.py', '--data-dir', {str(sample_dir)!r}, '--out-dir', {str(tmp_path / 'split')!r}]\n"
            f"runpy.run_path({str(SCRIPTS / '02_prepare_split.py')!r}, run_name='__main__')\n")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, check=False)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "split").iterdir()}
    assert modes == {"split.csv": 0o644, "split_summary.json": 0o644}


CHECKED_WITHOUT_TENSORFLOW = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exit:
    print("EXIT", exit.code)
print("TENSORFLOW", "tensorflow" in sys.modules)
"""


@pytest.mark.parametrize("arguments, message", [
    (["05_evaluate.py", "--outputs-dir", "{tmp}/nowhere"], "No training run at"),
    (["06_infer.py", "{tmp}/missing.jpg", "--outputs-dir", "{tmp}"], "Input {tmp}/missing.jpg does not exist"),
    (["06_infer.py", "{tmp}", "--model-file", "{tmp}/gone.h5"], "--model-file {tmp}/gone.h5: no such file"),
    (["07_explain.py", "--model-file", "{tmp}/gone.h5"], "--model-file has no test split of its own"),
    (["07_explain.py", "--model-file", "{tmp}/gone.h5", "--images", "{tmp}"],
     "--model-file {tmp}/gone.h5: no such"),
    (["07_explain.py", "--run-dir", "{run}", "--images", "{tmp}/missing.jpg"], "--images {tmp}/missing.jpg does not exist"),
    (["06_infer.py", "{tmp}", "--run-dir", "{run}", "--metadata", "{tmp}/meta.csv"],
     "--metadata {tmp}/meta.csv does not exist"),
    (["03_train.py", "--resume", "{tmp}/nowhere"], "No training run at --resume {tmp}/nowhere"),
    (["03_train.py", "--resume", "{run}"], "that run is already complete"),
], ids=lambda value: value[0] if isinstance(value, list) else "")
def test_mistakes_are_named_before_tensorflow_starts(arguments, message, tmp_path):
    """A missing run, input or model file costs no TensorFlow start-up (seconds) to learn about."""
    run = tmp_path / "completed_run"
    run.mkdir()
    (run / "training_config.json").write_text('{"architecture": "simple_cnn", "status": "completed"}')
    arguments = [argument.format(tmp=tmp_path, run=run) for argument in arguments]
    result = subprocess.run([sys.executable, "-c", CHECKED_WITHOUT_TENSORFLOW, str(SCRIPTS / arguments[0]),
                             *arguments[1:]], capture_output=True, text=True, cwd=REPO)
    assert "EXIT 2" in result.stdout and "TENSORFLOW False" in result.stdout, result.stdout + result.stderr
    assert message.format(tmp=tmp_path) in result.stderr


@pytest.mark.parametrize("arguments, message", [
    (["03_train.py", "--archtecture", "simple_cnn"], "unrecognized arguments: --archtecture simple_cnn "
                                                      "(did you mean --architecture?)"),
    (["bench_pipeline.py", "--data-dir", ""], "--data-dir is empty; give a path (is an environment variable"),
    (["06_infer.py", ""], "input is empty; give a path"),
    (["07_explain.py", "--images", "a.jpg", ""], "--images is empty; give a path"),
], ids=lambda value: value[0] if isinstance(value, list) else "")
def test_mistyped_flags_and_empty_paths_are_named(arguments, message):
    result = subprocess.run([sys.executable, str(SCRIPTS / arguments[0]), *arguments[1:]],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_after_the_demo_a_missing_run_points_to_the_demos(tmp_path):
    (tmp_path / "outputs/demo/runs/r").mkdir(parents=True)
    (tmp_path / "outputs/demo/latest").symlink_to("runs/r")
    result = subprocess.run([sys.executable, str(SCRIPTS / "05_evaluate.py")], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 2 and "The demo's run is in outputs/demo: pass --outputs-dir outputs/demo." \
        in result.stderr, result.stderr
