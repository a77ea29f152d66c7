"""A MONAI Label app that serves this project's landmark bundles: every bundle folder under ``<app>/model/``.

``python -m tools.monailabel_models`` writes those folders (the cephalometric model and the 3D AFIDs model) from the
repository's code, configs and weights. Each folder is served by MONAI Label's own bundle tasks, as its sample
``monaibundle`` app does: :class:`BundleInferTask` runs the folder's ``configs/inference.json`` (its
``postprocessing`` returns a label image with a disk of value k + 1 at landmark k, and the landmarks as the result
JSON), and :class:`BundleTrainTask` fine-tunes with its ``configs/train.json`` on the datastore's labels: landmark
files (3D Slicer ``.mrk.json``, ``.csv``, the bundle's ``.json``) or label images (value k + 1 at landmark k, as
3D Slicer's *Submit Label* uploads them; each landmark is its value's centroid).

What this app adds to MONAI Label's tasks:

- Labels are checked when they are uploaded (``PUT /datastore/label``, tag ``final``), against the served model
  whose images have the label's image's dimension: a bad one is refused with HTTP 422 and the reason, and never
  stored. A label image from 3D Slicer has its values put back in the model's order by the segment names it comes
  with (Slicer numbers the segments it exports 1, 2, ... in its list, which holds every served model's landmarks).
- ``/train`` trains each model on the labels of its images' dimension, and checks them all first: bad labels (put
  in the datastore by hand) are listed in one error, or left out with a warning if the model's ``train.json`` says
  ``"skip_bad_labels": true``.
- Bad requests get a 4xx status with the bundle's one-line message as ``{"detail": ...}``: an unknown image or
  model (404), an image of the wrong dimension, an unreadable image, a bad label (422). MONAI Label answers any
  other exception with a bare 500.

Start it (see the README, "Serve with MONAI Label")::

    monailabel start_server --app apps/landmarks --studies /path/to/images --conf models all

``--conf models a,b`` serves only the named folders.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from typing import Dict

import numpy as np
from fastapi import HTTPException
from monai.bundle import ConfigParser
from monailabel.config import settings
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import DefaultLabelTag
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random
from monailabel.tasks.infer.bundle import BundleInferTask
from monailabel.tasks.train.bundle import BundleTrainTask

logger = logging.getLogger(__name__)


class ServedModel:
    """What the app needs to know of a served folder's labels: from its ``configs/train.json``.

    (A plain class: MONAI Label loads ``main.py`` without registering it as a module, which dataclasses need.)
    """

    def __init__(self, name, folder, num_landmarks, spatial_dims, landmark_names, assumed_spacing, skip_bad_labels):
        self.name, self.folder = name, folder
        self.num_landmarks, self.spatial_dims, self.landmark_names = num_landmarks, spatial_dims, landmark_names
        self.assumed_spacing, self.skip_bad_labels = assumed_spacing, skip_bad_labels

    @classmethod
    def read(cls, name: str, folder: str) -> "ServedModel":
        parser = ConfigParser()
        parser.read_config(os.path.join(folder, "configs", "train.json"))
        parser["bundle_root"] = folder  # the landmark set is read through it
        value = parser.get_parsed_content
        return cls(
            name,
            folder,
            int(value("num_landmarks")),
            int(value("spatial_dims")),
            list(value("landmark_names")),
            value("assumed_spacing"),
            bool(value("skip_bad_labels", default=False)),
        )

    def check(self, entries: list) -> list:
        """The entries (``image`` and ``landmarks``) of this model's dimension, all good (:func:`bundle.check_datalist`:
        one error names every bad one, or they are left out, with a warning, under ``skip_bad_labels``)."""
        from bundle import check_datalist

        return check_datalist(
            entries,
            self.num_landmarks,
            self.spatial_dims,
            "datastore",
            default_spacing=self.assumed_spacing,
            leave_out_other_dims=True,
            skip_bad=self.skip_bad_labels,
            landmark_names=self.landmark_names,
        )


class LandmarkApp(MONAILabelApp):
    def __init__(self, app_dir, studies, conf):
        self.bundles = _bundle_folders(os.path.join(app_dir, "model"), conf.get("models", "all"))
        _use_bundle_code(next(iter(self.bundles.values())))
        self.models = {name: ServedModel.read(name, path) for name, path in self.bundles.items()}
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="Anatomical landmarks (CoorTransformer bundles)",
            description="Landmark detection bundles: a label image with one disk per landmark, and the landmarks",
        )

    def init_datastore(self):
        if self.studies.startswith(("http://", "https://")):
            return super().init_datastore()
        return CheckedDatastore(
            list(self.models.values()),
            self.studies,
            extensions=settings.MONAI_LABEL_DATASTORE_FILE_EXT,
            auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
            read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY,
        )

    def init_infers(self) -> Dict[str, InferTask]:
        return self._valid(lambda name, path: BundleInferTask(path, self.conf))

    def init_trainers(self) -> Dict[str, TrainTask]:
        return self._valid(lambda name, path: LandmarkTrainTask(self.models[name], path, self.conf))

    def _valid(self, make) -> dict:
        """``{name: task}`` for each served folder that the MONAI Label task accepts (it logs why it refuses one)."""
        tasks = {name: make(name, path) for name, path in self.bundles.items()}
        return {name: task for name, task in tasks.items() if task.is_valid()}

    def init_strategies(self) -> Dict[str, Strategy]:
        return {"random": Random(), "first": First()}

    def infer(self, request, datastore=None):
        model, image = request.get("model"), request.get("image")
        if model not in self._infers:
            raise HTTPException(404, f"no model '{model}': this server has {', '.join(sorted(self._infers))}.")
        datastore = datastore or self.datastore()
        if isinstance(image, str) and not os.path.exists(image) and not datastore.get_image_uri(image):
            raise HTTPException(404, f"no image '{image}' in the datastore.")
        with _bundle_errors_as_http():
            return super().infer(request, datastore)

    def train(self, request):
        if request.get("model") not in self._trainers:
            raise HTTPException(404, f"no model '{request.get('model')}' to train: there are {sorted(self._trainers)}.")
        with _bundle_errors_as_http():
            return super().train(request)

    def on_save_label(self, image_id, label_id):
        """The answer to an upload: which model the label was read for, and its landmarks (world mm)."""
        info = self.datastore().get_label_info(label_id, DefaultLabelTag.FINAL.value)
        return {key: info[key] for key in ("landmarks_of", "landmarks") if key in info}


class CheckedDatastore(LocalDatastore):
    """MONAI Label's local datastore that refuses a bad label at upload instead of storing it (see the module)."""

    def __init__(self, models: list, *args, **kwargs):
        self.models = models
        super().__init__(*args, **kwargs)

    def save_label(self, image_id, label_filename, label_tag, label_info):
        if label_tag != DefaultLabelTag.FINAL.value:  # /infer's own results (tag "original") are not labels to check
            return super().save_label(image_id, label_filename, label_tag, label_info)
        image = self.get_image_uri(image_id)
        if not image:
            raise HTTPException(404, f"no image '{image_id}' in the datastore.")
        with tempfile.TemporaryDirectory() as scratch, _bundle_errors_as_http():
            model, label, landmarks = self._checked(image_id, image, label_filename, label_info or {}, scratch)
            info = {**(label_info or {}), "landmarks_of": model.name, "landmarks": landmarks}
            return super().save_label(image_id, label, label_tag, info)

    def _checked(self, image_id: str, image: str, label: str, label_info: dict, scratch: str):
        """``(model, label file to store, landmarks)`` for the first served model of the image's dimension that takes
        the label; raises with each model's reason otherwise."""
        from bundle import OtherDimensionsError, check_entry
        from bundle.errors import InputError

        reasons = []
        for model in self.models:
            settings = (model.num_landmarks, model.spatial_dims, model.assumed_spacing)
            path = label
            try:
                path = _in_model_order(label, label_info, model, scratch)
                entry = {"image": image, "landmarks": path}
                landmarks = check_entry(entry, *settings, landmark_names=model.landmark_names)
            except OtherDimensionsError:
                continue  # another model's image
            except InputError as e:
                try:  # the label may have failed for this model only because the image is another model's
                    check_entry({"image": image}, *settings, require_landmarks=False)
                except OtherDimensionsError:
                    continue
                # named after the upload, not the server's copy of it
                reasons.append(f"{model.name}: " + str(e).replace(path, "the label").replace(label, "the label"))
                continue
            world = [[round(float(v), 4) for v in point] for point in landmarks.coordinates]
            return model, path, [{"name": n, "world": w} for n, w in zip(model.landmark_names, world)]
        if not reasons:
            dims = ", ".join(f"{m.name} {m.spatial_dims}D" for m in self.models)
            raise InputError(f"{image_id}: no served model takes images of its dimension (served: {dims}).")
        raise InputError(f"label for {image_id} refused: " + "; ".join(reasons))


def _in_model_order(label: str, label_info: dict, model: ServedModel, scratch: str) -> str:
    """A label image from 3D Slicer with its values put in ``model``'s order (value k + 1 at landmark k) by the
    segment names of ``label_info``; other labels as they are.

    Slicer's *Submit Label* exports the segments it lists (those of ``label_info``, in its order) with values 1, 2,
    ... in that order; its list holds the landmarks of every served model (/info's labels). A non-empty segment
    whose name is none of the model's landmarks makes the label another model's, and an error.
    """
    from bundle.errors import InputError
    from bundle.io.formats import landmark_format
    from bundle.io.formats.label_image import LABEL_IMAGE_FORMATS

    segments = label_info.get("label_info")
    if landmark_format(label) not in LABEL_IMAGE_FORMATS or not isinstance(segments, list) or not segments:
        return label
    import itk

    image = itk.imread(label)
    values = itk.array_view_from_image(image)
    index = {name.lower(): k + 1 for k, name in enumerate(model.landmark_names)}
    table = np.zeros(max(int(values.max(initial=0)), len(segments)) + 1, dtype=np.int64)
    present = set(np.unique(values).tolist())  # one pass over the volume, not one per segment
    for position, segment in enumerate(segments, start=1):
        name = str(segment.get("name", "")) if isinstance(segment, dict) else ""
        if name.lower() in index:
            table[position] = index[name.lower()]
        elif position in present:
            raise InputError(f"segment '{name}' (value {position}) is not a landmark of {model.name}.")
    ordered = itk.image_from_array(table[np.asarray(values, dtype=np.int64)].astype(np.uint16))
    ordered.CopyInformation(image)
    path = os.path.join(scratch, model.name + LABEL_IMAGE_FORMATS[landmark_format(label)].suffix)
    itk.imwrite(ordered, path)
    return path


class LandmarkTrainTask(BundleTrainTask):
    """MONAI Label's bundle training on the datastore's labels of this model's dimension, all checked first."""

    def __init__(self, model: ServedModel, path: str, conf: dict):
        self.model = model
        super().__init__(path, conf)

    def _fetch_datalist(self, request, datastore):
        from bundle.errors import InputError

        entries = super()._fetch_datalist(request, datastore)
        checked = self.model.check([{**e, "landmarks": e["label"]} for e in entries])
        if not checked:
            raise InputError(
                f"no labelled {self.model.spatial_dims}D images in the datastore for {self.model.name}: label some "
                "(Submit Label in 3D Slicer, or PUT /datastore/label) first."
            )
        logger.info(f"{self.model.name}: training on {len(checked)} of the datastore's {len(entries)} labelled images")
        return [{"image": e["image"], "label": e["label"]} for e in checked]

    def _update_overrides(self, overrides):
        # the datastore was checked whole above, before MONAI Label split it: the datasets take the splits as they are
        overrides.update({"train#dataset#checked": True, "validate#dataset#checked": True})
        return overrides


@contextlib.contextmanager
def _bundle_errors_as_http():
    """The bundle's errors (bad input, by its one-line message) as HTTP 422, the way MONAI Label passes a
    ``fastapi.HTTPException`` to the client; anything else as it is."""
    from bundle.errors import user_error

    try:
        yield
    except HTTPException:
        raise
    except Exception as e:  # noqa: BLE001 - sorted below: the bundle's own errors, or anything else as it was
        error = user_error(e)
        if error is None:
            raise
        raise HTTPException(422, str(error)) from e


def _use_bundle_code(folder: str) -> None:
    """Make the ``bundle`` package of a served folder importable here (MONAI Label's tasks add each folder to the
    path for their own configs; every served folder holds the same copy)."""
    if folder not in sys.path:
        sys.path.insert(0, folder)


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


__all__ = ["LandmarkApp", "CheckedDatastore", "LandmarkTrainTask", "ServedModel"]
