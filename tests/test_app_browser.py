"""The web app in a real browser: `streamlit run app.py` as a user starts it, driven by headless
Chromium through Playwright. Upload a sample image, wait for its score and compare it with the
score scripts/06_infer.py gives the same file.

Playwright's own browser download needs the internet; Debian's chromium package is used instead
(`apt-get install chromium`, as .ci/run does). Without it the test is skipped, saying so.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from skin_lesion.formatting import score_text
from tests.conftest import REPO
from tests.test_app import AppRuns, trained_runs

CHROMIUM = next(filter(None, map(shutil.which, ("/usr/bin/chromium", "/usr/bin/chromium-headless-shell",
                                                  "chromium", "chromium-headless-shell"))), None)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (/usr/bin/chromium or "
                                 "chromium-headless-shell); install it with: apt-get install chromium")]
#: Without the background-networking flags Chromium keeps calling Google's services, which on a
#: closed network means a flood of failing requests.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 120_000  # the first page load starts TensorFlow and loads the model


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"streamlit exited with {server.returncode}:\n{server.stdout.read()}")
        try:
            with urllib.request.urlopen(f"{url}_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"streamlit did not answer at {url} within {seconds} s")


@pytest.fixture(scope="module")
def app_runs(sample_dir, trained_run, metadata_run, tmp_path_factory) -> AppRuns:
    return trained_runs(sample_dir, trained_run.run, metadata_run.run, tmp_path_factory.getbasetemp() / "app_runs")


@pytest.fixture(scope="module")
def app_url(app_runs):
    """The app served as `streamlit run app.py` serves it, on a free local port."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env={**os.environ, "SKIN_LESION_OUTPUTS": str(app_runs.outputs)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(url, server)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def page(tmp_path):
    """A page of headless Chromium with a fresh profile."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1300})
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_an_uploaded_image_shows_the_score_of_06_infer(app_runs, app_url, page, tmp_path):
    name, score = next(iter(app_runs.reference_scores().items()))
    page.goto(app_url)
    page.get_by_text("not a medical device").wait_for(timeout=WAIT_MS)
    run = page.get_by_role("combobox", name="Run (newest first)")
    run.wait_for(timeout=WAIT_MS)
    run.click()
    page.get_by_role("option").filter(has_text="benign vs malignant").click()
    page.locator("input[type=file]").set_input_files(app_runs.folder / name)
    shown = page.locator("[data-testid='stMetricValue']")
    shown.wait_for(timeout=WAIT_MS)
    page.get_by_text("Grad-CAM: where the model saw evidence").wait_for(timeout=WAIT_MS)
    page.screenshot(path=tmp_path / "scored.png")
    assert shown.inner_text().strip() == score_text(score)
    assert page.get_by_role("heading", name=name).is_visible()
    assert (tmp_path / "scored.png").stat().st_size > 10_000


def test_an_image_unlike_lesions_shows_a_warning_not_a_verdict(app_runs, app_url, page, tmp_path):
    from skin_lesion.evaluation.non_lesions import constructed_images, write_png_folder

    (flat,) = write_png_folder({"skin_colour": constructed_images()["skin_colour"]}, tmp_path / "upload")
    page.goto(app_url)
    run = page.get_by_role("combobox", name="Run (newest first)")
    run.wait_for(timeout=WAIT_MS)
    run.click()
    page.get_by_role("option").filter(has_text="benign vs malignant").click()
    page.locator("input[type=file]").set_input_files(flat)
    page.get_by_text("Out of distribution: no verdict").wait_for(timeout=WAIT_MS)
    page.screenshot(path=tmp_path / "flagged.png")
    assert page.get_by_text("Nearly uniform").is_visible()
    assert page.locator("[data-testid='stMetricValue']").count() == 0
