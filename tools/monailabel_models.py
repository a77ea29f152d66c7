"""Write the bundle folders that MONAI Label serves, from this repository's code, configs and weights.

MONAI Label serves each folder under ``<app>/model/`` as one model, and reads of it only ``configs/inference.json``
(``/infer``), ``configs/train.json`` (``/train``), ``configs/metadata.json`` and ``models/model.pt``. This writes:

- ``coortransformer_landmarks``: the shipped cephalometric model (``models/model.pt``) with the bundle's configs. Its
  ``train.json`` assumes, for images without geometry (the JPEG/PNG cephalograms of a MONAI Label datastore), the
  spacing that ``inference.json`` assumes (0.1 mm per pixel, the ISBI 2015 images'); edit ``assumed_spacing`` in both
  for other X-ray machines.
- ``afids_landmarks``: the 3D model of ``configs/afids3d.json`` (32 AFIDs fiducials in T1w MRI): ``inference.json`` and
  ``train.json`` are the bundle's with that overlay merged in (MONAI Label takes no overlays), weights from
  ``--afids_weights`` (by default ``models/afids3d/model.pt``, which ``run training`` with that overlay writes), and
  a metadata.json that describes the 3D network.

The folder names follow MONAI Label's rule that a name holding "detection", "segmentation", ... sets the task type:
these hold none, so MONAI Label calls them segmentation models, which is what their output is (a label image).

Usage:
  python -m tools.monailabel_models --app apps/landmarks [--models coortransformer_landmarks afids_landmarks]
      [--afids_weights models/afids3d/model.pt] [--overwrite]
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
from pathlib import Path

from monai.bundle import ConfigParser

from bundle.error_line import run_main
from bundle.errors import InputError, MissingFileError, OutputExistsError

REPO = Path(__file__).resolve().parents[1]
CEPHALOMETRIC, AFIDS = "coortransformer_landmarks", "afids_landmarks"
CODE = (
    "LICENSE",
    "bundle",
    "docs/data_license.txt",
    "configs/logging.conf",
    "configs/multi_gpu_train.json",
    "configs/landmark_sets",
)


def write_cephalometric(folder: Path, root: Path = REPO) -> Path:
    """The shipped cephalometric model as a served folder."""
    _copy_code(folder, root)
    inference = json.loads((root / "configs" / "inference.json").read_text())
    train = json.loads((root / "configs" / "train.json").read_text())
    train["assumed_spacing"] = inference["assumed_spacing"]
    _write_json(folder / "configs" / "inference.json", inference)
    _write_json(folder / "configs" / "train.json", train)
    shutil.copy2(root / "configs" / "metadata.json", folder / "configs" / "metadata.json")
    _copy_weights(root / "models" / "model.pt", folder)
    return folder


def write_afids(folder: Path, weights: Path, root: Path = REPO) -> Path:
    """The 3D AFIDs model of ``configs/afids3d.json`` as a served folder, with ``weights``."""
    _copy_code(folder, root)
    overlay = root / "configs" / "afids3d.json"
    for name in ("inference.json", "train.json"):
        config = _merged([root / "configs" / name, overlay])
        config["ckpt_dir"] = "$@bundle_root + '/models'"  # MONAI Label reads models/model.pt of the folder
        _write_json(folder / "configs" / name, config)
    train = ConfigParser()
    train.read_config(str(folder / "configs" / "train.json"))
    train["bundle_root"] = str(folder)
    metadata = json.loads((root / "configs" / "metadata.json").read_text())
    _write_json(
        folder / "configs" / "metadata.json", afids_metadata(metadata, train.get_parsed_content("landmark_names"))
    )
    _copy_weights(weights, folder)
    return folder


def afids_metadata(base: dict, names: list) -> dict:
    """The bundle's metadata.json turned to the 3D AFIDs model: its network's input and outputs (the label image first:
    MONAI Label reads its labels from it), what it was trained on, and none of the cephalometric model's results."""
    metadata = copy.deepcopy(base)
    metadata["name"] = "CoorTransformer AFIDs landmarks (3D)"
    metadata["task"] = "The 32 AFIDs anatomical fiducials in T1-weighted brain MRI, in 3D, with heatmaps"
    metadata["description"] = (
        "The bundle's 3D pipeline (configs/afids3d.json) as a served model: a CoorTransformer detector on a 48 x 56 x 48 "
        "grid. Its weights come from the one-template AFIDs fixture (data/afids): they exercise the 3D path (NIfTI, "
        "RAS, 3D Slicer), they are not an accurate AFIDs model; fine-tune it on your own labelled volumes."
    )
    metadata["data_source"] = "data/afids: the MNI152NLin2009cAsym template at 4 mm and the AFIDs consensus fiducials"
    metadata["data_type"] = "nifti"
    metadata["image_classes"] = "single-channel T1w MRI volume, intensities scaled to [0, 1], resized to the grid"
    metadata["pred_classes"] = f"one heatmap (logits) channel per landmark, {len(names)} channels in AFIDs order"
    metadata["eval_metrics"] = {}
    formats = metadata["network_data_format"]
    formats["inputs"]["image"].update(modality="MR", spatial_shape=["8*n", "8*n", "8*n"])
    label, pred = formats["outputs"]["label"], formats["outputs"]["pred"]
    label.update(spatial_shape=["*", "*", "*"], value_range=[0, len(names)])
    label["channel_def"] = {"0": "background", **{str(k + 1): n for k, n in enumerate(names)}}
    pred.update(num_channels=len(names), spatial_shape=["8*n", "8*n", "8*n"])
    pred["channel_def"] = {str(k): n for k, n in enumerate(names)}
    return metadata


def _merged(files: list) -> dict:
    """The configs merged as ``monai.bundle run`` merges several ``--config_file`` (later ones override keys, ``a#b``
    keys reach into nested items)."""
    parser = ConfigParser()
    parser.read_config([str(f) for f in files])
    return parser.config


def _copy_code(folder: Path, root: Path) -> None:
    for item in CODE:
        source, target = root / item, folder / item
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)


# what inference reads beside model.pt: the refinement stage (refines when present; in a folder of its own, so that
# MONAI Label, which offers every models/*.pt as the detector's weights, does not offer it), the shape model (the
# trust checks need it), the error calibration (radii are null without it) and the review's risk (no landmark is
# flagged for its risk without it)
COMPANIONS = ("refiner/model.pt", "shape_model.json", "calibration.json", "review_risk.json")


def _copy_weights(weights: Path, folder: Path) -> None:
    """``weights`` to ``models/model.pt``, with the companions found beside them; without a shape model the served
    inference.json switches the trust checks off (they would fail on every request)."""
    (folder / "models").mkdir(parents=True, exist_ok=True)
    shutil.copy2(weights, folder / "models" / "model.pt")
    for name in COMPANIONS:
        if (weights.parent / name).is_file():
            (folder / "models" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(weights.parent / name, folder / "models" / name)
    if not (folder / "models" / "shape_model.json").is_file():
        path = folder / "configs" / "inference.json"
        inference = json.loads(path.read_text())
        inference["trust"] = False
        _write_json(path, inference)
        print(f"{weights.parent} holds no shape_model.json: {folder.name} serves without the trust checks")


def _write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=4) + "\n")


def write_models(app: Path, models: list, afids_weights: Path, overwrite: bool = False, root: Path = REPO) -> list:
    """Write the ``models`` folders under ``app/model/``; returns them.

    Raises:
        FileExistsError: a folder exists and ``overwrite`` is not set (a served folder holds its fine-tuned weights).
        FileNotFoundError: weights are missing (with the command that makes them).
        ValueError: an unknown model name.
    """
    unknown = [m for m in models if m not in (CEPHALOMETRIC, AFIDS)]
    if unknown:
        raise InputError(f"unknown models {unknown}: choose from {CEPHALOMETRIC}, {AFIDS}.")
    folders = {m: app / "model" / m for m in models}
    existing = [str(f) for f in folders.values() if f.exists()]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{', '.join(existing)} already exist (with any weights MONAI Label fine-tuned there): pass --overwrite."
        )
    if AFIDS in models and not afids_weights.is_file():
        raise MissingFileError(
            f"{afids_weights} not found: train the 3D model first, python -m monai.bundle run training --config_file "
            "\"['configs/train.json','configs/afids3d.json']\", or pass --afids_weights."
        )
    if CEPHALOMETRIC in models and not (root / "models" / "model.pt").is_file():
        raise MissingFileError(f"{root / 'models' / 'model.pt'} not found: the shipped weights are part of a checkout.")
    written = []
    for name, folder in folders.items():
        if folder.exists():
            shutil.rmtree(folder)
        written.append(
            write_cephalometric(folder, root) if name == CEPHALOMETRIC else write_afids(folder, afids_weights, root)
        )
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", required=True, help="the MONAI Label app folder (e.g. apps/landmarks)")
    parser.add_argument("--models", nargs="+", default=[CEPHALOMETRIC, AFIDS], help="which folders to write")
    parser.add_argument("--afids_weights", default=str(REPO / "models" / "afids3d" / "model.pt"))
    parser.add_argument("--overwrite", action="store_true", help="replace existing folders (and their weights)")
    args = parser.parse_args(argv)
    for folder in write_models(Path(args.app), args.models, Path(args.afids_weights), args.overwrite):
        print(folder)


if __name__ == "__main__":
    sys.exit(run_main(main))
