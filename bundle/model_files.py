"""One loader for the files of a model folder (``--ckpt_dir``): the weights of both stages, the shape model, the error
calibration, and whatever else a transform reads beside the weights.

Every file is read by path, and read again when it changes (its modification time, size or inode): MONAI Label's
``/train`` rewrites ``models/model.pt`` (and a site adaptation any of the files) while the server keeps the
configs' components alive, so whatever a request is answered with must be the file as it is now. Reading a file
that did not change costs one ``os.stat``. MONAI's ``CheckpointLoader`` loads once, at the start of an engine run,
and only weights; this loader serves every file, for engines and for transforms built outside any engine (MONAI
Label's ``BundleInferTask`` runs no handlers).
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from typing import Callable, Hashable, TypeVar

import torch

from .errors import MissingFileError

__all__ = ["file_stamp", "load_weights", "read_model_file", "forget_model_files", "module_device"]

T = TypeVar("T")
_lock = threading.Lock()
_read: dict = {}  # (real path, reader key) -> (stamp, object)
_loaded: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> (real path, stamp)


def file_stamp(path: str | os.PathLike) -> tuple[int, int, int]:
    """What changes when a file is rewritten: (modification time in ns, size in bytes, inode).

    Raises:
        MissingFileError: no such file.
    """
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise MissingFileError(f"{os.fspath(path)} is missing.") from None
    return status.st_mtime_ns, status.st_size, status.st_ino


def read_model_file(path: str | os.PathLike, reader: Callable[[str], T], key: Hashable) -> T:
    """``reader(path)``, kept until the file changes; ``key`` names the reading (e.g. ``("calibration", pipeline)``),
    so that readings of one file that differ are kept apart and one reading is shared by every caller.

    A missing file is left to ``reader``, whose error says what the file is and how to make it.
    """
    real = os.path.realpath(path)
    try:
        stamp = file_stamp(real)
    except MissingFileError:
        return reader(os.fspath(path))
    entry = (real, key)
    with _lock:
        cached = _read.get(entry)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    value = reader(real)
    with _lock:
        _read[entry] = (stamp, value)
    return value


def module_device(network: torch.nn.Module) -> torch.device:
    """Where ``network`` computes: its first parameter's (or buffer's) device; the CPU for a module holding neither."""
    first = next(itertools.chain(network.parameters(), network.buffers()), None)  # no list of every tensor
    return torch.device("cpu") if first is None else first.device


def load_weights(
    network: torch.nn.Module, path: str | os.PathLike, what: str = "the weights", missing: str = ""
) -> torch.nn.Module:
    """Load the state dict file ``path`` into ``network`` (on the network's device), unless this network already holds
    that file as it is now. Returns ``network``.

    Raises:
        MissingFileError: no such file: "``what`` ``path`` are missing", then ``missing`` (what to do about it).
    """
    real = os.path.realpath(path)
    try:
        stamp = file_stamp(real)
    except MissingFileError:
        raise MissingFileError(f"{what} {os.fspath(path)} are missing{': ' + missing if missing else '.'}") from None
    with _lock:
        if _loaded.get(network) == (real, stamp):
            return network
    device = module_device(network)
    network.load_state_dict(torch.load(real, map_location=device, weights_only=True))
    with _lock:
        _loaded[network] = (real, stamp)
    return network


def forget_model_files() -> None:
    """Forget every reading (the next use of each file reads it again)."""
    with _lock:
        _read.clear()
        _loaded.clear()
