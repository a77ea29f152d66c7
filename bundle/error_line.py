"""How a run that failed ends: one line, ``error: ...``, for an error of the bundle's own (:mod:`bundle.errors`).

:func:`install_error_summary` (the configs' ``run`` lists call it first) makes an uncaught error whose chain holds a
:class:`bundle.errors.BundleError` end the run with that one line and no traceback, unless the run asks for one
(``--debug true``, or the environment variable ``BUNDLE_DEBUG=1``). Every other error (a bug, MONAI's or Python's
own failures) keeps its traceback. The command-line scripts call :func:`run_main`, which does the same.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

from .errors import BundleError, user_error
from .switches import as_bool

__all__ = ["install_error_summary", "run_main", "DEBUG_VARIABLE"]

DEBUG_VARIABLE = "BUNDLE_DEBUG"


def _one_line(error: BaseException) -> str:
    return "error: " + " ".join(str(error).split())


def _debugging(debug: bool = False) -> bool:
    return bool(debug) or os.environ.get(DEBUG_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def _summary_hook(previous, debug: bool):
    def hook(exc_type, exc, tb):
        found = user_error(exc)
        if found is None or _debugging(debug):
            previous(exc_type, exc, tb)
        if found is not None:
            print(_one_line(found), file=sys.stderr)

    hook.error_summary = True
    return hook


def install_error_summary(debug: bool = False) -> None:
    """Make an uncaught error whose chain holds a :class:`BundleError` end the run with its one line (and its
    traceback above it only with ``debug`` or ``BUNDLE_DEBUG=1``)."""
    previous = getattr(sys.excepthook, "previous", sys.excepthook)
    hook = _summary_hook(previous, as_bool(debug, "debug"))
    hook.previous = previous
    sys.excepthook = hook


def run_main(main: Callable[[], int | None]) -> int:
    """Run a script's ``main``; a :class:`BundleError` becomes one ``error: ...`` line on stderr and exit status 1,
    without a traceback (with one too under ``BUNDLE_DEBUG=1``). Other errors propagate with their tracebacks."""
    try:
        return main() or 0
    except BundleError as e:
        if _debugging():
            raise
        print(_one_line(e), file=sys.stderr)
        return 1
