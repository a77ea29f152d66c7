"""The random state of a training, as a checkpointable object, so that a resumed training continues the very same
random sequence as an unbroken one."""

from __future__ import annotations

import random

import numpy as np
import torch
from monai.transforms import Randomizable

from ..errors import InputError

__all__ = ["RandomStates"]


def _randomizables(root) -> list[Randomizable]:
    """Every :class:`Randomizable` reachable from ``root`` through attributes, lists and tuples (a ``Compose`` holds
    ``RandAffined``, which holds ``RandAffine``, which holds ``RandAffineGrid``; each has its own generator), in a
    fixed order."""
    found, seen, stack = [], set(), [root]
    while stack:
        item = stack.pop()
        if id(item) in seen or item is None:
            continue
        seen.add(id(item))
        if isinstance(item, Randomizable):
            found.append(item)
        if isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        elif hasattr(item, "__dict__") and not isinstance(item, (torch.nn.Module, torch.Tensor)):
            stack.extend(reversed(list(vars(item).values())))
    return found


def _numpy_state(state: tuple) -> dict:
    """A NumPy generator state as tensors and numbers, which ``torch.load(weights_only=True)`` accepts."""
    name, keys, pos, has_gauss, cached = state
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "gauss": (has_gauss, cached)}


def _from_numpy_state(state: dict) -> tuple:
    return state["name"], state["keys"].numpy().astype(np.uint32), state["pos"], *state["gauss"]


class RandomStates:
    """``state_dict()`` / ``load_state_dict()`` for the generators a training draws from: Python's, NumPy's and
    torch's global ones (CUDA's too, when there), and the own ``RandomState`` of every random transform in
    ``transforms``. Put it in the checkpoint's ``save_dict``; a training resumed from an epoch's checkpoint then draws
    the same augmentations and batch order as the unbroken run, and ends with the same weights (on the same device
    and software, with ``num_workers`` 0: worker processes keep generators of their own).

    MONAI's checkpoints hold the model, optimiser, scheduler and engine state, but none of these: without them a
    resumed run takes other random draws from its first epoch on.

    Args:
        transforms: the training transforms (e.g. the ``Compose`` of the training dataset).
    """

    def __init__(self, transforms=None):
        self.transforms = transforms

    def state_dict(self) -> dict:
        version, words, gauss = random.getstate()
        state = {
            "python": {"version": version, "state": list(words), "gauss": gauss},
            "numpy": _numpy_state(np.random.get_state()),
            "torch": torch.get_rng_state(),
            "transforms": [_numpy_state(t.R.get_state()) for t in _randomizables(self.transforms)],
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        python = state["python"]
        random.setstate((python["version"], tuple(python["state"]), python["gauss"]))
        np.random.set_state(_from_numpy_state(state["numpy"]))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        randomizables = _randomizables(self.transforms)
        if len(randomizables) != len(state["transforms"]):
            raise InputError(
                f"the checkpoint holds {len(state['transforms'])} random transforms' states, the training has "
                f"{len(randomizables)}: resume with the configuration that wrote it."
            )
        for transform, transform_state in zip(randomizables, state["transforms"]):
            transform.R.set_state(_from_numpy_state(transform_state))
