"""The base of the handlers that write a run's own files (tables, reports) from what every image's output holds."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TextIO

from ignite.engine import Engine, Events

from ..io.files import refuse_existing, write_whole
from .distributed import gather

__all__ = ["RunFileWriter"]


class RunFileWriter:
    """Collects one record per image output (by default its result record, ``result``, from
    :class:`bundle.transforms.LandmarkResultd`) and writes the run's file(s) when the run completes: under
    ``torchrun`` the first process writes every process's records. Existing files are refused when the run starts,
    unless ``self.overwrite``.

    Subclasses set ``path`` (or ``paths``, for several files) and ``overwrite``, and write with :meth:`_write`;
    :meth:`_record` may check a record, :meth:`_item` take another one from the output.
    """

    path: Path
    overwrite: bool

    @property
    def paths(self) -> tuple[Path, ...]:
        """The files this writer writes."""
        return (self.path,)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._completed)

    def _started(self, engine: Engine) -> None:
        refuse_existing(self.paths, self.overwrite, "pass --overwrite true or another --output_dir.")
        self.records: list[dict] = []

    def _collect(self, engine: Engine) -> None:
        output = engine.state.output
        self.records.extend(self._item(item) for item in (output if isinstance(output, list) else [output]))

    def _completed(self, engine: Engine) -> None:
        records = gather(self.records)
        if records is not None:  # None: another process than the first, which writes everyone's
            self._write(records, engine)

    def _item(self, item: dict):
        """What is kept of one image's output."""
        return self._record(item["result"])

    def _record(self, record: dict) -> dict:
        """One image's result record as it is kept (raise to refuse it)."""
        return record

    def _write(self, records: list, engine: Engine) -> None:
        """Write the files from every record of the run (``engine``: the completed engine, for its metrics)."""
        raise NotImplementedError

    def _publish(self, write: Callable[[TextIO], None], path: Path | None = None) -> None:
        """Write ``path`` (``self.path`` by default) whole: a partial file first, renamed when complete."""
        write_whole(self.path if path is None else path, write)
