"""The transforms of a pipeline, in order, from the parts a config names."""

from __future__ import annotations

from typing import Callable

__all__ = ["chain"]


def chain(parts: list) -> list[Callable]:
    """One list of transforms from ``parts``, each a transform, a list of transforms, or None: a component the config
    switched off (``_disabled_``), which MONAI's parser resolves to None where it is referenced by ``@`` (it drops
    only components written inline in a list).

    Example: ``"transforms": {"_target_": "bundle.transforms.chain", "parts": ["@detect", "@refine_landmarks"]}``.
    """
    out = []
    for part in parts:
        if part is None:
            continue
        out.extend(p for p in (part if isinstance(part, (list, tuple)) else [part]) if p is not None)
    return out
