"""``@gpu``: ZeroGPU's ``spaces.GPU`` where the ``spaces`` package exists, else a no-op."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

try:  # ZeroGPU exists only on Spaces; the import also fails on machines without it.
    import spaces as _spaces  # type: ignore[import-not-found]
except Exception:  # noqa: BLE001 - any failure means "not on ZeroGPU"
    _spaces = None

ON_SPACES = _spaces is not None


def gpu(fn: F) -> F:
    """Mark ``fn`` as needing the GPU: ``spaces.GPU(fn)`` on ZeroGPU, ``fn`` unchanged elsewhere."""
    if _spaces is None:
        return fn
    return _spaces.GPU(fn)  # type: ignore[no-any-return]
