"""A MONAI Label app that serves this project's landmark bundles: every bundle folder under ``<app>/model/``.

``python -m tools.monailabel_models`` writes those folders (the cephalometric model and the 3D AFIDs model) from the
repository's code, configs and weights. Each folder is served by MONAI Label's own bundle tasks, as its sample
``monaibundle`` app does: :class:`BundleInferTask` runs the folder's ``configs/inference.json`` (its
``postprocessing`` returns a label image with a disk of value k + 1 at landmark k, and the landmarks as the result
JSON), and :class:`BundleTrainTask` fine-tunes with its ``configs/train.json`` on the datastore's labels (landmark
files: 3D Slicer ``.mrk.json``, ``.csv``, the bundle's ``.json``).

Start it (see the README, "Serve with MONAI Label")::

    monailabel start_server --app apps/landmarks --studies /path/to/images --conf models all

``--conf models a,b`` serves only the named folders.
"""

from __future__ import annotations

import logging
import os
from typing import Dict

from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random
from monailabel.tasks.infer.bundle import BundleInferTask
from monailabel.tasks.train.bundle import BundleTrainTask

logger = logging.getLogger(__name__)


class LandmarkApp(MONAILabelApp):
    def __init__(self, app_dir, studies, conf):
        self.bundles = _bundle_folders(os.path.join(app_dir, "model"), conf.get("models", "all"))
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="Anatomical landmarks (CoorTransformer bundles)",
            description="Landmark detection bundles: a label image with one disk per landmark, and the landmarks",
        )

    def init_infers(self) -> Dict[str, InferTask]:
        return self._valid(BundleInferTask)

    def init_trainers(self) -> Dict[str, TrainTask]:
        return self._valid(BundleTrainTask)

    def _valid(self, task_class) -> dict:
        """``{name: task}`` for each served folder that the MONAI Label task accepts (it logs why it refuses one)."""
        tasks = {name: task_class(path, self.conf) for name, path in self.bundles.items()}
        return {name: task for name, task in tasks.items() if task.is_valid()}

    def init_strategies(self) -> Dict[str, Strategy]:
        return {"random": Random(), "first": First()}


def _bundle_folders(model_dir: str, wanted: str) -> Dict[str, str]:
    """``{name: folder}`` of the bundle folders in ``model_dir`` (those with ``configs/inference.json``), all of them
    or the comma-separated ``wanted`` names; a wanted name without a folder is an error."""
    found = {
        name: os.path.join(model_dir, name)
        for name in sorted(os.listdir(model_dir) if os.path.isdir(model_dir) else [])
        if os.path.isfile(os.path.join(model_dir, name, "configs", "inference.json"))
    }
    if wanted.strip() in ("", "all"):
        if not found:
            raise ValueError(f"no bundle folders in {model_dir}: run python -m tools.monailabel_models first.")
        return found
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"no bundle folder {missing} in {model_dir} (there are {sorted(found)}).")
    return {n: found[n] for n in names}
