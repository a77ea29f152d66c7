"""Small helpers the bundle's configs call around training: output protection and resuming."""

from __future__ import annotations

import logging
import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Iterable

__all__ = ["as_bool", "check_outputs", "latest_checkpoint", "refuse_existing"]

_EPOCH = re.compile(r"=(\d+)\.pt$")
logger = logging.getLogger(__name__)


_TRUE, _FALSE = ("true", "1"), ("false", "0")


def as_bool(value, name: str = "value") -> bool:
    """A switch from a config or the command line, parsed strictly.

    ``python -m monai.bundle run ... --overwrite false`` hands the config the *string* ``"false"``, which Python
    treats as true. This accepts a bool, 0 or 1, or the strings true / false / 1 / 0 (any case, surrounding spaces
    ignored), and nothing else.

    Raises:
        ValueError: naming ``name`` and the value, for anything else.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{name} must be true or false (or 1 / 0), got {value!r}.")


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
    raise FileNotFoundError(f"no checkpoint to resume from in {directory}: train without --resume first.")


def check_outputs(model_path: str | os.PathLike, checkpoint_dir: str | os.PathLike, resume: bool, overwrite: bool):
    """Refuse to start a training that would silently replace earlier results.

    A fresh training (``resume=False``) needs ``model_path`` and ``checkpoint_dir`` to be absent, unless
    ``overwrite=True``, which deletes the old resume checkpoints (the model is replaced at the first validation).
    A resumed training needs a checkpoint to resume from.
    """
    model_path, checkpoint_dir = Path(model_path), Path(checkpoint_dir)
    resume, overwrite = as_bool(resume, "resume"), as_bool(overwrite, "overwrite")
    if resume:
        latest_checkpoint(checkpoint_dir)
        return
    existing = [str(p) for p in (model_path, checkpoint_dir) if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{' and '.join(existing)} already exist: pass --resume true to continue that training, --overwrite true "
            "to replace it, or other --ckpt_dir / --output_dir."
        )
    if overwrite and checkpoint_dir.exists():
        shutil.rmtree(checkpoint_dir)


def refuse_existing(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    overwrite: bool,
    hint: str = "pass --overwrite to replace it, or choose another --out.",
) -> None:
    """Raise if any of ``paths`` exists and ``overwrite`` is not set: the one guard against replacing earlier output
    (scripts, evaluation and inference writers, landmark files).

    Raises:
        FileExistsError: naming the existing paths, followed by ``hint`` (how to get past it).
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not as_bool(overwrite, "overwrite"):
        named = ", ".join(existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
        raise FileExistsError(f"{named} {'exists' if len(existing) == 1 else 'exist'}: {hint}")
