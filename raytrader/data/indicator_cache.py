"""Memoized indicators for sweeps: trials that share a parameter share its indicator.

A sweep of SMA crossovers over 10 fast x 19 slow lengths needs 29 moving averages, not 348.
Inside ``indicator_cache()`` the indicator functions of ``raytrader.data.indicators`` remember
their results for inputs that are read-only arrays (a sweep worker's market data is: Ray's
object store hands out read-only views). A writeable input is never cached, as its contents
could change under the same address; a cached entry keeps its input alive, so the address
cannot be reused by another array while the entry exists. Memory is bounded by ``max_bytes``
(least recently used entries go first); results are returned read-only.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar, cast

import numpy as np

_F = TypeVar("_F", bound=Callable[..., Any])


class IndicatorCache:
    """An LRU map from (indicator, inputs, parameters) to results, bounded in bytes."""

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = self.misses = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int, tuple[np.ndarray, ...]]] = (
            OrderedDict()
        )

    def get(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[0]

    def put(self, key: Hashable, value: Any, inputs: tuple[np.ndarray, ...]) -> None:
        arrays = value if isinstance(value, tuple) else (value,)
        size = sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))
        if size > self.max_bytes:
            return
        for a in arrays:
            if isinstance(a, np.ndarray):
                a.flags.writeable = False  # a caller mutating a shared result would poison it
        self._entries[key] = (value, size, inputs)
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            _, (_, old, _) = self._entries.popitem(last=False)
            self.nbytes -= old


_ACTIVE: ContextVar[IndicatorCache | None] = ContextVar("raytrader_indicator_cache", default=None)


@contextmanager
def indicator_cache(cache: IndicatorCache | None = None) -> Iterator[IndicatorCache]:
    """Memoize indicators of read-only inputs in this context (see the module docstring)."""
    cache = cache if cache is not None else IndicatorCache()
    token = _ACTIVE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE.reset(token)


def _array_key(a: np.ndarray) -> Hashable:
    return (a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str)


def memoized(fn: _F) -> _F:
    """Cache ``fn``'s result in the active ``indicator_cache`` when all its array inputs are
    read-only; call it plainly otherwise."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cache = _ACTIVE.get()
        if cache is None:
            return fn(*args, **kwargs)
        parts: list[Hashable] = [fn.__qualname__]
        inputs: list[np.ndarray] = []
        named = [(None, v) for v in args] + sorted(kwargs.items())
        for name, value in named:
            if isinstance(value, np.ndarray):
                if value.flags.writeable:
                    return fn(*args, **kwargs)
                inputs.append(value)
                parts.append((name, _array_key(value)))
            elif value is None or isinstance(value, int | float | str | bool):
                parts.append((name, type(value).__name__, value))
            else:
                return fn(*args, **kwargs)  # lists and other inputs: not worth keying
        key = tuple(parts)
        hit = cache.get(key)
        if hit is not None:
            return hit
        result = fn(*args, **kwargs)
        cache.put(key, result, tuple(inputs))
        return result

    return cast(_F, wrapper)
