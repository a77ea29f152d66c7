"""The base of the handlers that write one file for a whole run from every image's result record."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TextIO

from ignite.engine import Engine, Events

from ..io.files import refuse_existing, write_whole
from .distributed import gather

__all__ = ["RunFileWriter"]


class RunFileWriter:
    """Collects the run's result records (``result`` of each output, from :class:`bundle.transforms.LandmarkResultd`)
    and writes one file, ``self.path``, when the run completes: under ``torchrun`` the first process writes every
    process's records. An existing file is refused when the run starts, unless ``self.overwrite``.

    Subclasses set ``path`` and ``overwrite`` and write with :meth:`_write`; :meth:`_record` may check a record.
    """

    path: Path
    overwrite: bool

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._completed)

    def _started(self, engine: Engine) -> None:
        refuse_existing(self.path, self.overwrite, "pass --overwrite true or another --output_dir.")
        self.records: list[dict] = []

    def _collect(self, engine: Engine) -> None:
        output = engine.state.output
        self.records.extend(self._record(item["result"]) for item in (output if isinstance(output, list) else [output]))

    def _completed(self, engine: Engine) -> None:
        records = gather(self.records)
        if records is not None:  # None: another process than the first, which writes everyone's
            self._write(records)

    def _record(self, record: dict) -> dict:
        """One image's record as it is kept (raise to refuse it)."""
        return record

    def _write(self, records: list[dict]) -> None:
        """Write ``self.path`` from every record of the run."""
        raise NotImplementedError

    def _publish(self, write: Callable[[TextIO], None]) -> None:
        write_whole(self.path, write)
