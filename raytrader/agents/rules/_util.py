"""Helpers shared by the rule agents."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import numpy as np

from raytrader.data.compiled import jit
from raytrader.data.market_data import FloatArray
from raytrader.domain import Signal


def per_symbol(fn: Callable[..., FloatArray], *arrays: FloatArray) -> FloatArray:
    """Apply a 1-D indicator to every symbol row of ``(n_symbols, n_bars)`` arrays."""
    if len(arrays[0]) == 1:  # one symbol: a view, not vstack's copy (a sweep's common case)
        return fn(*(a[0] for a in arrays)).reshape(1, -1)
    return np.vstack([fn(*rows) for rows in zip(*arrays, strict=True)])


def weight_signal(symbol: str, ts: datetime, weight: float, reason: str) -> Signal:
    """A target weight as a signal, its direction the weight's sign."""
    direction = (weight > 0) - (weight < 0)
    return Signal(symbol, ts, direction=direction, weight=weight, reason=reason)


def crossings(a: FloatArray, b: FloatArray) -> FloatArray:
    """+1 where ``a`` crosses above ``b`` at this bar, -1 where below, else 0 (causal).

    Strict on both bars (a[t-1] < b[t-1] and a[t] > b[t]), as backtesting.py's ``crossover``.
    """
    return cross_values(a, b, 1.0, -1.0, 0.0)


def cross_values(
    a: FloatArray, b: FloatArray, up: float, down: float, other: float, start: int = 0
) -> FloatArray:
    """``up`` where ``a`` crosses above ``b`` (as ``crossings``), ``down`` where below,
    ``other`` elsewhere and at the bars before ``start``: an agent's targets in one pass."""
    a2 = np.ascontiguousarray(np.atleast_2d(a), dtype=np.float64)
    b2 = np.ascontiguousarray(np.atleast_2d(b), dtype=np.float64)
    return _cross_values(a2, b2, up, down, other, start).reshape(np.shape(a))


@jit
def _cross_values(
    a: FloatArray, b: FloatArray, up: float, down: float, other: float, start: int
) -> FloatArray:
    out = np.empty(a.shape)
    for i in range(a.shape[0]):
        out[i, 0] = other
        for t in range(1, a.shape[1]):
            pa, pb, ca, cb = a[i, t - 1], b[i, t - 1], a[i, t], b[i, t]
            if t < start:
                out[i, t] = other
            elif pa < pb and ca > cb:
                out[i, t] = up
            elif pa > pb and ca < cb:
                out[i, t] = down
            else:
                out[i, t] = other
    return out
