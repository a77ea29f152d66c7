"""Switches from a config or the command line, parsed strictly."""

from __future__ import annotations

from .errors import InputError

__all__ = ["as_bool"]

_TRUE, _FALSE = ("true", "1"), ("false", "0")


def as_bool(value, name: str = "value") -> bool:
    """A switch from a config or the command line, parsed strictly.

    ``python -m monai.bundle run ... --overwrite false`` hands the config the *string* ``"false"``, which Python
    treats as true. This accepts a bool, 0 or 1, or the strings true / false / 1 / 0 (any case, surrounding spaces
    ignored), and nothing else.

    Raises:
        ValueError: naming ``name`` and the value, for anything else.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise InputError(f"{name} must be true or false (or 1 / 0), got {value!r}.")
