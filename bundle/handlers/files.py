"""Per-image landmark files of an inference run, written from the evaluator's outputs."""

from __future__ import annotations

from ignite.engine import Engine, Events

__all__ = ["LandmarkFileSaver"]


class LandmarkFileSaver:
    """Apply a :class:`bundle.transforms.SaveLandmarksd` to every image's post-processed output at each iteration.

    The files are written by a handler rather than by a post-processing transform because MONAI Label runs the
    bundle's ``postprocessing`` (and not its handlers) for ``/infer``, and must not write into the bundle's folder.

    Args:
        saver: the :class:`~bundle.transforms.SaveLandmarksd` that writes one image's files.
    """

    def __init__(self, saver):
        self.saver = saver

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        # MONAI's post-processing writes a key of the batch that it changes back into the batch, not the output (the
        # fine copy of the image, which the overlay is drawn on, stays there): each item is the two merged
        output, batch = engine.state.output, engine.state.batch
        outputs = output if isinstance(output, list) else [output]
        batches = batch if isinstance(batch, list) and len(batch) == len(outputs) else [{}] * len(outputs)
        for item, inputs in zip(outputs, batches):
            self.saver({**inputs, **item})
