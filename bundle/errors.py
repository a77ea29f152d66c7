"""Errors a person can read: one line at the end of a failed run, naming the file or entry and what to do.

The bundle's checks raise its own error types, all :class:`BundleError`: :class:`InputError` (a bad image, landmark
file, datalist entry or setting; a ``ValueError``), :class:`OutputExistsError` (a run would replace earlier results;
a ``FileExistsError``), :class:`MissingFileError` (weights, a shape model; a ``FileNotFoundError``) and
:class:`DivergedError` (a training that diverged; a ``FloatingPointError``). Their message is the whole story.
MONAI's config machinery wraps them ("Failed to instantiate component ...", "Failed to evaluate ConfigExpression
..."), so the useful line would sit dozens of lines up a double traceback.

:func:`install_error_summary` (the configs' ``run`` lists call it first) makes an uncaught error whose chain holds a
:class:`BundleError` end the run with that one line, ``error: ...``, and no traceback, unless the run asks for one
(``--debug true``, or the environment variable ``BUNDLE_DEBUG=1``). Every other error (a bug, MONAI's or Python's
own failures) keeps its traceback. The command-line scripts call :func:`run_main`, which does the same.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

__all__ = [
    "BundleError",
    "InputError",
    "OutputExistsError",
    "MissingFileError",
    "DivergedError",
    "user_error",
    "install_error_summary",
    "run_main",
]

DEBUG_VARIABLE = "BUNDLE_DEBUG"


class BundleError(Exception):
    """A problem with what a run was given or would write, found by the bundle and said in one line."""


class InputError(BundleError, ValueError):
    """A bad input: an image, a landmark file, a datalist entry, a setting."""


class OutputExistsError(BundleError, FileExistsError):
    """A run would replace earlier results without being told to."""


class MissingFileError(BundleError, FileNotFoundError):
    """A file the run needs is not there (weights, a shape model, a datalist)."""


class DivergedError(BundleError, FloatingPointError):
    """A training diverged (a loss or a weight is no longer finite)."""


def user_error(error: BaseException | None) -> BundleError | None:
    """The outermost :class:`BundleError` in ``error``'s chain (causes, and contexts that were not suppressed), or
    None when there is none. Outermost, because the bundle re-raises a detail with the entry it belongs to."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, BundleError):
            return error
        error = error.__cause__ if error.__cause__ is not None or error.__suppress_context__ else error.__context__
    return None


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
    from .switches import as_bool

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
