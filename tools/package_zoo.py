"""Write the bundle as a MONAI model zoo submission: ``models/<name>/`` and ``ci/unit_tests/test_<name>.py`` under --out.

The zoo refuses files over 1 MB in a pull request, so the weights stay out of it: ``large_files.yml`` gives, for
``models/model.pt``, ``models/model.ts`` and ``models/refiner/model.pt`` (the refinement stage), the URL where each is
published (``--weights_url`` + the file name) and
its sha256, as the zoo's CONTRIBUTING.md asks. ``--with_weights`` copies the weights in as well, to verify the folder
locally: the zoo's download step then finds them, checks the hash and downloads nothing.

What goes in: LICENSE, configs/, the ``bundle`` package, the scripts users run (``scripts/``: preparation, the
landmark report, the benchmark), the model card, the architecture and the data licence, the two small data sets that
the configs use (the synthetic demo and the AFIDs template fixture), and the shape model and error calibration. What
stays out: tests, tools, experiments and their studies, requirement files, CI files and the weights, which go by
URL.

Usage:
  python -m tools.package_zoo --out /path/to/model-zoo --weights_url https://host/release/ [--with_weights]
      [--overwrite]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

from bundle.error_line import run_main
from bundle.errors import MissingFileError, OutputExistsError

REPO = Path(__file__).resolve().parents[1]
BUNDLE_NAME = "coortransformer_landmarks"  # the folder name: MONAI Label reads a task type from it (not "detection")
# what users of the bundle need: the code, the configs, the scripts they run, the model card, the architecture and
# the data licence (the studies stay in the repository), the two small data sets the configs use, and the shape model,
# the error calibration and the review's risk, small JSON files beside the weights
INCLUDE = (
    "LICENSE", "configs", "bundle", "scripts", "docs/README.md", "docs/architecture.md", "docs/data_license.txt",
    "data/demo", "data/afids", "models/shape_model.json", "models/calibration.json", "models/review_risk.json",
)  # fmt: skip
WEIGHTS = ("models/model.pt", "models/model.ts", "models/refiner/model.pt")

UNIT_TEST = """# Unit test of the {name} bundle in the model zoo's style (ci/unit_tests/runner.py -b {name}).
# Written by tools/package_zoo.py of the bundle's repository.

import os
import shutil
import sys
import tempfile
import unittest

from monai.bundle import ConfigWorkflow
from parameterized import parameterized
from utils import check_workflow

BUNDLE_ROOT = "models/{name}"
sys.path = [BUNDLE_ROOT] + sys.path  # the configs import the bundle's own package, "bundle"
SMALL = {{"grid_size": [32, 32], "network_def#features": [8, 16, 32, 64]}}

TEST_CASE_1 = [  # train, evaluate: one epoch on the synthetic demo data that ships with the bundle
    {{**SMALL, "max_epochs": 1, "val_interval": 1, "batch_size": 2, "val_batch_size": 2}}
]

TEST_CASE_2 = [  # inference with the default (cephalometric) config on the demo images, without loading weights
    {{
        "grid_size": [32, 32],
        "detector#weights": None,
        "shape_model_file": BUNDLE_ROOT + "/models/shape_model.json",
        "calibration_file": BUNDLE_ROOT + "/models/calibration.json",
        "review_risk_file": BUNDLE_ROOT + "/models/review_risk.json",
        "dataset_dir": BUNDLE_ROOT + "/data/demo/images",
    }}
]


def test_order(test_name1, test_name2):
    def get_order(name):
        if "train" in name:
            return 1
        if "infer" in name:
            return 2
        return 3

    return get_order(test_name1) - get_order(test_name2)


class TestLandmarkBundle(unittest.TestCase):
    def setUp(self):
        self.output_dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.output_dir)

    def _workflow(self, workflow_type, configs, override):
        return ConfigWorkflow(
            workflow_type=workflow_type,
            config_file=[os.path.join(BUNDLE_ROOT, "configs", name) for name in configs],
            logging_file=os.path.join(BUNDLE_ROOT, "configs/logging.conf"),
            meta_file=os.path.join(BUNDLE_ROOT, "configs/metadata.json"),
            bundle_root=BUNDLE_ROOT,
            ckpt_dir=os.path.join(self.output_dir, "models"),
            **override,
        )

    @parameterized.expand([TEST_CASE_1])
    def test_train_eval_config(self, override):
        train = {{**override, "output_dir": os.path.join(self.output_dir, "train")}}
        check_workflow(self._workflow("train", ["train.json", "demo.json"], train), check_properties=True)
        self.assertTrue(os.path.exists(os.path.join(self.output_dir, "models", "model.pt")))
        evaluate = {{**SMALL, "output_dir": os.path.join(self.output_dir, "eval")}}
        # evaluate.json is an overlay on inference.json: the shipped inference pipeline, scored on the demo's test split
        check_workflow(self._workflow("infer", ["inference.json", "demo.json", "evaluate.json"], evaluate))
        self.assertTrue(os.path.exists(os.path.join(self.output_dir, "eval", "landmark_report.json")))

    @parameterized.expand([TEST_CASE_2])
    def test_infer_config(self, override):
        infer = {{**override, "output_dir": os.path.join(self.output_dir, "infer")}}
        check_workflow(self._workflow("infer", ["inference.json"], infer), check_properties=True)
        self.assertTrue(os.path.exists(os.path.join(self.output_dir, "infer", "landmarks.csv")))


if __name__ == "__main__":
    loader = unittest.TestLoader()
    loader.sortTestMethodsUsing = test_order
    unittest.main(testLoader=loader)
"""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(root: Path) -> list[Path]:
    """The files of the submission, relative to ``root`` (the repository)."""
    files = []
    for item in INCLUDE:
        path = root / item
        if not path.exists():
            raise MissingFileError(f"{path} is missing: package from a complete checkout of the bundle.")
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for p in candidates:
            relative = p.relative_to(root)
            if "__pycache__" in relative.parts or p.suffix == ".pyc":
                continue
            if relative.parts[0] == "scripts" and p.name == "__init__.py":
                continue
            files.append(relative)
    return files


def large_files_yml(weights_url: str, hashes: dict[str, str]) -> str:
    """The zoo's large-files list: path, URL, sha256 of each weight file."""
    base = weights_url if weights_url.endswith("/") else weights_url + "/"
    lines = ["large_files:"]
    for path, digest in hashes.items():
        lines += [
            f'  - path: "{path}"',
            f'    url: "{base}{Path(path).name}"',
            f'    hash_val: "{digest}"',
            '    hash_type: "sha256"',
        ]
    return "\n".join(lines) + "\n"


def package(out: Path, weights_url: str, with_weights: bool = False, overwrite: bool = False, root: Path = REPO):
    """Write ``out/models/<name>/`` and ``out/ci/unit_tests/test_<name>.py``; returns the bundle folder.

    Raises:
        FileExistsError: the bundle folder or the unit test exists and ``overwrite`` is not set.
        FileNotFoundError: a file of the bundle (the weights included) is missing.
    """
    bundle = out / "models" / BUNDLE_NAME
    unit_test = out / "ci" / "unit_tests" / f"test_{BUNDLE_NAME}.py"
    existing = [str(p) for p in (bundle, unit_test) if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{', '.join(existing)} already exist: pass --overwrite to replace them.")
    missing = [w for w in WEIGHTS if not (root / w).is_file()]
    if missing:
        raise MissingFileError(f"{', '.join(missing)} missing: the submission describes the shipped weights.")
    if bundle.exists():
        shutil.rmtree(bundle)
    for relative in _files(root):
        (bundle / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, bundle / relative)
    hashes = {w: sha256(root / w) for w in WEIGHTS}
    (bundle / "large_files.yml").write_text(large_files_yml(weights_url, hashes))
    if with_weights:
        for w in WEIGHTS:
            (bundle / w).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / w, bundle / w)
    unit_test.parent.mkdir(parents=True, exist_ok=True)
    unit_test.write_text(UNIT_TEST.format(name=BUNDLE_NAME))
    return bundle


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="a model-zoo checkout (or any folder): models/ and ci/ go there")
    parser.add_argument("--weights_url", required=True, help="where the weight files are published (a folder URL)")
    parser.add_argument("--with_weights", action="store_true", help="copy the weights in too, for local checks")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier package of this bundle")
    args = parser.parse_args(argv)
    print(package(Path(args.out), args.weights_url, args.with_weights, args.overwrite))


if __name__ == "__main__":
    sys.exit(run_main(main))
