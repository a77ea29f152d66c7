"""Errors a person can read: one line at the end of a failed run, naming the file or entry and what to do.

The bundle's checks raise its own error types, all :class:`BundleError`: :class:`InputError` (a bad image, landmark
file, datalist entry or setting; a ``ValueError``), :class:`OutputExistsError` (a run would replace earlier results;
a ``FileExistsError``), :class:`MissingFileError` (weights, a shape model; a ``FileNotFoundError``) and
:class:`DivergedError` (a training that diverged; a ``FloatingPointError``). Their message is the whole story.
MONAI's config machinery wraps them ("Failed to instantiate component ...", "Failed to evaluate ConfigExpression
..."), so the useful line would sit dozens of lines up a double traceback.

:mod:`bundle.error_line` ends a run that failed with such an error in one line; :func:`user_error` finds it under
the wrappers.
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "InputError",
    "OutputExistsError",
    "MissingFileError",
    "DivergedError",
    "user_error",
]


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
