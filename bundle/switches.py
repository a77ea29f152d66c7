"""Switches from a config or the command line, parsed strictly."""

from __future__ import annotations

from .errors import InputError

__all__ = ["as_bool", "Switches"]

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


class Switches:
    """A run's switches in one component, each parsed strictly by :func:`as_bool`: ``Switches(trust="false")`` has
    ``trust == False``. The configs read them as ``@switches.trust`` (``"_disabled_": "$not @switches.trust"``),
    because a config's ``$`` expressions cannot call the bundle's own functions in every run (MONAI evaluates the
    config's ``imports`` before it puts the bundle's folder on the path, so ``$bundle....`` fails in a run started
    from another folder); a component (``_target_``) is built after.

    Raises:
        ValueError: naming the switch, for a value that is not a switch.
    """

    def __init__(self, **values):
        self.names = sorted(values)
        for name, value in values.items():
            setattr(self, name, as_bool(value, name))

    def __repr__(self) -> str:
        return f"Switches({', '.join(f'{n}={getattr(self, n)}' for n in self.names)})"
