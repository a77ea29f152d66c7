"""Make the small 3D fixture in data/afids from ../shared/data/afids: the MNI152NLin2009cAsym T1w template
block-averaged to 4 mm, the 32 AFIDs ground-truth fiducials, the template's licence notice and an attribution README.

The template's licence allows copies and derivatives with its notice; the AFIDs coordinates are CC BY 4.0 (cite Lau et
al., Human Brain Mapping 2019, and Taha et al., Scientific Data 2023). The fiducials are copied unchanged (RAS mm).

Usage:
  python -m tools.make_afids_fixture [--source ../shared/data/afids] [--out data/afids] [--factor 4] [--overwrite]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from bundle.error_line import run_main
from bundle.io.files import refuse_existing

TEMPLATE = "tpl-MNI152NLin2009cAsym_res-01_T1w.nii.gz"
FIDUCIALS = "tpl-MNI152NLin2009cAsym_res-01_desc-groundtruth_afids.fcsv"


def block_average(image: nib.Nifti1Image, factor: int) -> nib.Nifti1Image:
    """Average ``factor``^3 blocks (the volume is cropped to a multiple of ``factor`` at its far end); the affine
    moves the origin to the new voxel centres, which lie at old index ``factor * i + (factor - 1) / 2``."""
    data = np.asarray(image.dataobj, dtype=np.float32)
    shape = [s // factor for s in data.shape[:3]]
    cropped = data[: shape[0] * factor, : shape[1] * factor, : shape[2] * factor]
    blocks = cropped.reshape(shape[0], factor, shape[1], factor, shape[2], factor).mean((1, 3, 5))
    scale = np.diag([factor, factor, factor, 1.0])
    scale[:3, 3] = (factor - 1) / 2
    affine = image.affine @ scale
    out = nib.Nifti1Image(np.round(blocks).astype(np.int16), affine)
    out.set_qform(affine, code=int(image.header["qform_code"]) or 1)
    out.set_sform(affine, code=int(image.header["sform_code"]) or 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "afids"))
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "afids"))
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--overwrite", action="store_true", help="replace the fixture in --out")
    args = parser.parse_args()
    source, out = Path(args.source), Path(args.out)
    refuse_existing(out / "datalist.json", args.overwrite)
    out.mkdir(parents=True, exist_ok=True)
    name = f"tpl-MNI152NLin2009cAsym_res-{args.factor:02d}mm_T1w.nii.gz"
    nib.save(block_average(nib.load(source / TEMPLATE), args.factor), out / name)
    # text copied as is, but for trailing spaces and a missing final newline (the model zoo's pre-commit checks)
    for source_name, name_out in (
        (FIDUCIALS, "afids_groundtruth.fcsv"),
        ("TEMPLATE_LICENSE.txt", "TEMPLATE_LICENSE.txt"),
    ):
        lines = (source / source_name).read_text().splitlines()
        (out / name_out).write_text("".join(line.rstrip() + "\n" for line in lines))
    entry = {"image": name, "landmarks": "afids_groundtruth.fcsv"}
    datalist = {"training": [entry], "validation": [entry], "test": [entry]}
    (out / "datalist.json").write_text(json.dumps(datalist, indent=4) + "\n")
    print(json.dumps({"image": str(out / name), "shape": list(nib.load(out / name).shape)}))


if __name__ == "__main__":
    sys.exit(run_main(main))
