"""What the repository may hold: the shipped weights and licences, but no research image or anything made from one."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REPO_ROOT

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".mha", ".mhd", ".nii", ".nii.gz", ".dcm")
# the only tracked images: the synthetic demo set, the AFIDs template derivative (notice beside it), and plots of
# numbers (docs/studies/figures/, written by matplotlib from measured errors: never a picture of the data)
IMAGE_FOLDERS = ("data/demo/", "data/afids/")
PLOT_FOLDER = "docs/studies/figures/"
MAX_FILE_BYTES = 25 * 1024 * 1024  # the MONAI model zoo's limit per file


def _git(*args: str) -> str:
    if not (REPO_ROOT / ".git").exists():
        pytest.skip(f"{REPO_ROOT} is not a git checkout")
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout


def test_tracked_images_are_only_the_synthetic_demo_and_the_afids_template():
    tracked = _git("ls-files").splitlines()
    images = [p for p in tracked if p.lower().endswith(IMAGE_SUFFIXES)]
    assert images, "the demo images should be tracked"
    assert [p for p in images if not p.startswith(IMAGE_FOLDERS + (PLOT_FOLDER,))] == []


def test_figures_in_the_docs_are_matplotlib_plots():
    """A file under docs/studies/figures must be a PNG that matplotlib wrote (its Software tag), so an image of the research
    data, or a crop or overlay of one, cannot hide there."""
    from PIL import Image

    for path in _git("ls-files", PLOT_FOLDER).splitlines():
        assert path.endswith(".png"), path
        with Image.open(REPO_ROOT / path) as plot:
            assert plot.format == "PNG" and plot.info.get("Software", "").startswith("Matplotlib"), path


def test_research_data_and_trained_weights_are_ignored_but_the_shipped_model_is_not():
    ignored = [
        "data/isbi2015/images/001.jpg",
        "data/hand/images/3001.mha",
        "data/chest/images/1.png",
        "models/demo/model.pt",
        "models/isbi2015_paper/model.pt",
        "models/model.json",
        "models/refiner/checkpoint.pt",
        "runs/train/checkpoints/resume_checkpoint_epoch=1.pt",
    ]
    result = subprocess.run(
        [
            "git",
            "check-ignore",
            "--no-index",
            *ignored,
            "models/model.pt",
            "models/model.ts",
            "models/refiner/model.pt",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.stdout.split() == ignored


def test_no_tracked_file_exceeds_the_model_zoo_limit():
    sizes = {p: (REPO_ROOT / p).stat().st_size for p in _git("ls-files").splitlines() if (REPO_ROOT / p).is_file()}
    assert {p: s for p, s in sizes.items() if s > MAX_FILE_BYTES} == {}
