"""The HTML report a clinician opens, in a real browser: headless Chromium (Debian's package, which .ci/run installs)
renders it offline with no console message, its measurement tables and its embedded images there."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from bundle import bundled_landmark_set
from tests.conftest import run_inference
from tests.test_workflows import REPO

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0",
]  # fmt: skip


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"no headless browser ({', '.join(BROWSERS)}): .ci/run installs Debian's chromium where it can")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The shipped model's report on two pictures: the demo's (not a cephalogram: flagged) given a spacing."""
    root = tmp_path_factory.mktemp("report")
    images = root / "images"
    images.mkdir()
    for name in ("001.png", "002.png"):
        shutil.copy(REPO / "data" / "demo" / "images" / name, images / name)
    run_inference(images, root / "out", spacing=[0.5, 0.5])
    return root / "out"


def test_the_run_writes_the_report_and_the_measurement_table(report):
    page = (report / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<h2>") == 2
    assert "data:image/jpeg;base64," in page and not re.search(r"""(src|href)=["']?(https?:|file:|//)""", page)
    rows = (report / "measurements.csv").read_text().splitlines()
    names = [m["name"] for m in bundled_landmark_set("isbi2015").measurements]
    assert len(rows) == 1 + 2 * len(names) and rows[0].startswith("image,measurement,value,unit,interval_low")
    record = json.loads((report / "001.json").read_text())
    assert set(record["measurements"]) == set(names) and record["plausible"] is False


def test_the_report_renders_in_a_browser_without_errors(report, tmp_path):
    browser = _browser()
    url = (report / "report.html").as_uri()
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    shot = tmp_path / "report.png"
    result = subprocess.run(
        [browser, *FLAGS, *profile, "--window-size=1280,1600", f"--screenshot={shot}", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
    assert "CONSOLE" not in result.stderr, [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    dom = subprocess.run(
        [browser, *FLAGS, "--user-data-dir=" + str(tmp_path / "profile2"), "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert dom.returncode == 0 and "CONSOLE" not in dom.stderr
    assert dom.stdout.count("<table>") >= 3  # the run's summary and one measurement table per image
    assert dom.stdout.count('src="data:image/jpeg;base64,') == 2
    assert "SNA" in dom.stdout and "Check these landmarks" in dom.stdout


def test_report_false_writes_none(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(REPO / "data" / "demo" / "images" / "001.png", images / "001.png")
    run_inference(images, tmp_path / "out", spacing=[0.5, 0.5], report=False)
    assert (tmp_path / "out" / "001.json").exists() and not (tmp_path / "out" / "report.html").exists()
