"""Errors a person can read: one line at the end of a failed run, naming the file or entry and what to do.

The bundle's checks raise ``ValueError`` (``LandmarkFileError`` among them), ``FileExistsError`` or
``FileNotFoundError`` with such a message, and ``FloatingPointError`` when a training diverges. MONAI's config
machinery wraps them ("Failed to instantiate component ...", "Failed to evaluate ConfigExpression ..."), so the
useful line would sit dozens of lines up the traceback.
:func:`install_error_summary` (the configs' ``run`` lists call it first) repeats that message as the last line
(``error: ...``); the traceback stays above it for whoever needs it, and the run still exits non-zero. The
command-line scripts call :func:`run_main`, which prints only that line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

__all__ = ["USER_ERRORS", "user_error", "install_error_summary", "run_main"]

USER_ERRORS = (ValueError, FileExistsError, FileNotFoundError, FloatingPointError)
_PACKAGE = Path(__file__).resolve().parent


def _raised_in(error: BaseException, root: Path) -> bool:
    tb = error.__traceback__
    last = None
    while tb is not None:
        last, tb = tb, tb.tb_next
    return last is not None and root in Path(last.tb_frame.f_code.co_filename).resolve().parents


def user_error(error: BaseException | None) -> BaseException | None:
    """The outermost error in ``error``'s chain (causes, and contexts that were not suppressed) that the bundle
    raised about its input, or None when there is none (a bug or an error of another library keeps its own
    traceback only). Outermost, because the bundle re-raises a detail with the entry it belongs to."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, USER_ERRORS) and _raised_in(error, _PACKAGE):
            return error
        error = error.__cause__ if error.__cause__ is not None or error.__suppress_context__ else error.__context__
    return None


def _one_line(error: BaseException) -> str:
    return "error: " + " ".join(str(error).split())


def _summary_hook(previous):
    def hook(exc_type, exc, tb):
        previous(exc_type, exc, tb)
        found = user_error(exc)
        if found is not None:
            print(_one_line(found), file=sys.stderr)

    hook.error_summary = True
    return hook


def install_error_summary() -> None:
    """Make an uncaught error whose chain holds a bundle input error end with that error's message on one line."""
    if not getattr(sys.excepthook, "error_summary", False):
        sys.excepthook = _summary_hook(sys.excepthook)


def run_main(main: Callable[[], int | None]) -> int:
    """Run a script's ``main``; an input error raised by the bundle or by the script itself (the folder holding the
    ``bundle`` package) becomes one ``error: ...`` line on stderr and exit status 1, without a traceback. Other
    errors (bugs, other libraries') propagate with theirs."""
    try:
        return main() or 0
    except USER_ERRORS as e:
        if not _raised_in(e, _PACKAGE.parent):
            raise
        print(_one_line(e), file=sys.stderr)
        return 1
