"""Shared test helpers: where the real data lives (a skip when it is absent), and the shipped inference config run
in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


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
