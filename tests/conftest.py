"""Shared test helpers: where the real data lives (a skip when it is absent), the shipped inference config run
in-process, and CI's skip policy.

CI's skip policy: with ``BUNDLE_CI_STRICT=1`` (``.ci/run`` sets it), a test that skips fails instead, unless its
reason is one of :data:`MAY_SKIP_IN_CI`: CI has no GPU, does not install landmarker, and has no model-zoo checkout.
Everything else CI is meant to run (the browser test, the MONAI Label server, the tests on ``../shared/data``, the
git checks) cannot pass by skipping there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
STRICT_VARIABLE = "BUNDLE_CI_STRICT"
# the starts of the only skip reasons CI accepts
MAY_SKIP_IN_CI = ("needs CUDA", "landmarker not installed", "the model zoo's CI scripts are not here")


def skip_reason(report) -> str:
    """The reason of a skipped test's report ("Skipped: " left off)."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def may_skip_in_ci(reason: str) -> bool:
    return reason.startswith(MAY_SKIP_IN_CI)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get(STRICT_VARIABLE) == "1" and not hasattr(report, "wasxfail"):
        reason = skip_reason(report)
        if not may_skip_in_ci(reason):
            report.outcome = "failed"
            report.longrepr = f"skipped where CI must run it ({STRICT_VARIABLE}=1): {reason}"


def shared_data(*parts: str) -> Path:
    """Path under ../shared/data; skips the calling test, with the reason, when it is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (tests on ../shared/data run where it is present)")
    return path


def run_inference(dataset, output_dir, **overrides) -> None:
    """``configs/inference.json`` run in this process, as ``run inference`` would: ``dataset`` (a folder, an image or
    a datalist) to ``output_dir``, with ``overrides`` of config ids (``ckpt_dir``, ``spacing``, ``trust``, ...)."""
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(
        config_file=str(REPO_ROOT / "configs" / "inference.json"),
        workflow_type="infer",
        bundle_root=str(REPO_ROOT),
        dataset_dir=str(dataset),
        output_dir=str(output_dir),
        **overrides,
    )
    workflow.initialize()
    workflow.run()
