"""Small helpers the bundle's configs call around training: output protection and resuming."""

from __future__ import annotations

import logging
import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Sequence

from .errors import MissingFileError, OutputExistsError
from .switches import as_bool

__all__ = ["check_outputs", "latest_checkpoint", "lower_is_better"]

_EPOCH = re.compile(r"=(\d+)\.pt$")
logger = logging.getLogger(__name__)


def latest_checkpoint(directory: str | os.PathLike) -> str:
    """The complete resume checkpoint with the highest epoch number in ``directory`` (``resume_checkpoint_epoch=N.pt``).

    A training killed while it wrote a checkpoint leaves that file incomplete; it is passed over (with a warning) for
    the one before. ``torch.save`` writes a zip archive whose directory comes last, so a complete file is a zip file.

    Raises:
        FileNotFoundError: there is none, so there is nothing to resume.
    """
    candidates = [(int(m.group(1)), p) for p in Path(directory).glob("*.pt") if (m := _EPOCH.search(p.name))]
    for _, path in sorted(candidates, reverse=True):
        if zipfile.is_zipfile(path):
            return str(path)
        logger.warning(f"{path} is incomplete (the training stopped while writing it); resuming from an earlier one.")
    raise MissingFileError(f"no checkpoint to resume from in {directory}: train without --resume first.")


def check_outputs(
    model_path: str | os.PathLike,
    checkpoint_dir: str | os.PathLike,
    resume: bool,
    overwrite: bool,
    starts_from: Sequence[str | os.PathLike] = (),
):
    """Refuse to start a training that would silently replace earlier results.

    A fresh training (``resume=False``) needs ``model_path`` and ``checkpoint_dir`` to be absent, unless
    ``overwrite=True``, which deletes the old resume checkpoints (the model is replaced at the first validation).
    A resumed training needs a checkpoint to resume from. A fine-tuning that starts from weights in ``model_path``'s
    own folder (among ``starts_from``, the weights that the training's checkpoint loaders read, as MONAI Label's
    training task adds one for ``models/model.pt`` or the file chosen in its options) replaces ``model_path``
    knowingly: that counts as ``overwrite``. The first such fine-tuning keeps the weights it replaces as
    ``model_pretrained.pt`` beside them, never overwritten, which MONAI Label then offers as a model file to go back to.
    """
    model_path, checkpoint_dir = Path(model_path), Path(checkpoint_dir)
    resume, overwrite = as_bool(resume, "resume"), as_bool(overwrite, "overwrite")
    if resume:
        latest_checkpoint(checkpoint_dir)
        return
    folder = model_path.resolve().parent
    if model_path.exists() and any(Path(p).is_file() and Path(p).resolve().parent == folder for p in starts_from or ()):
        kept = model_path.with_name("model_pretrained.pt")
        if not kept.exists():
            shutil.copy2(model_path, kept)
        logger.info(
            f"fine-tuning: the best model of this training will replace {model_path} (earlier weights: {kept})."
        )
        overwrite = True
    existing = [str(p) for p in (model_path, checkpoint_dir) if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{' and '.join(existing)} already exist: pass --resume true to continue that training, --overwrite true "
            "to replace it, or other --ckpt_dir / --output_dir."
        )
    if overwrite and checkpoint_dir.exists():
        shutil.rmtree(checkpoint_dir)


def lower_is_better(current: float, best: float) -> bool:
    """``metric_cmp_fn`` for MONAI engines whose key metric is an error or a loss (the configs' one statement that
    a lower mean radial error, or training loss, is better): True when ``current`` improves on ``best``.

    MONAI starts ``best_metric`` at -1, before any value; errors and losses are never negative, so a negative best
    means there is none yet.
    """
    return best < 0 or current < best
