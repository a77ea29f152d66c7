"""Collecting what several processes saw (``torchrun``), for the writers that write one file for the whole run."""

from __future__ import annotations

import torch

__all__ = ["gather"]


def gather(items: list) -> list | None:
    """One process: ``items`` as they are. Several: every process's ``items`` concatenated in rank order on the
    first process (the order in which MONAI's distributed metrics gather their buffers), and None on the others.
    Every process must call it."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return items
    world = torch.distributed.get_world_size()
    if world == 1:
        return items
    everyone = [None] * world
    torch.distributed.all_gather_object(everyone, list(items))
    if torch.distributed.get_rank() != 0:
        return None
    return [item for part in everyone for item in part]
