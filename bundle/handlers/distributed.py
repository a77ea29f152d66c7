"""Handlers under ``torchrun``: what several processes saw, collected for the writers that write one file for the whole
run, and the handlers that only the first process runs."""

from __future__ import annotations

import torch

__all__ = ["gather", "first_process", "FirstProcessOnly"]


def first_process() -> bool:
    """True in a run of one process, and in the first process (rank 0) of several."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return True
    return torch.distributed.get_rank() == 0


class FirstProcessOnly:
    """A handler that only the first process attaches, for what a run should say or write once (a progress bar,
    TensorBoard, the shape model, the closing summary); in a run of one process it is the handler itself. The configs
    mark such handlers by wrapping them, so that ``configs/multi_gpu_train.json`` needs no list of them.

    Args:
        handler: anything with ``attach(engine)``.
    """

    def __init__(self, handler):
        self.handler = handler

    def attach(self, engine) -> None:
        if first_process():
            self.handler.attach(engine)


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
