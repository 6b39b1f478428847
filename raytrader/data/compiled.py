"""``jit``: numba's ``njit(cache=True, nogil=True)`` for the compiled kernels of the package."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from numba import njit

_F = TypeVar("_F", bound=Callable[..., Any])


def jit(fn: _F) -> _F:
    """Compile ``fn`` with numba, its type kept for mypy.

    Where numba finds no writable cache directory (a read-only install without a home), the
    function is compiled per process instead of failing the import.
    """
    try:
        return cast(_F, njit(cache=True, nogil=True)(fn))
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return cast(_F, njit(nogil=True)(fn))
