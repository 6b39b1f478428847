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
    return np.vstack([fn(*rows) for rows in zip(*arrays, strict=True)])


def weight_signal(symbol: str, ts: datetime, weight: float, reason: str) -> Signal:
    """A target weight as a signal, its direction the weight's sign."""
    direction = (weight > 0) - (weight < 0)
    return Signal(symbol, ts, direction=direction, weight=weight, reason=reason)


def crossings(a: FloatArray, b: FloatArray) -> FloatArray:
    """+1 where ``a`` crosses above ``b`` at this bar, -1 where below, else 0 (causal).

    Strict on both bars (a[t-1] < b[t-1] and a[t] > b[t]), as backtesting.py's ``crossover``.
    """
    a2 = np.ascontiguousarray(np.atleast_2d(a), dtype=np.float64)
    b2 = np.ascontiguousarray(np.atleast_2d(b), dtype=np.float64)
    return _crossings(a2, b2).reshape(np.shape(a))


@jit
def _crossings(a: FloatArray, b: FloatArray) -> FloatArray:
    out = np.zeros(a.shape)
    for i in range(a.shape[0]):
        for t in range(1, a.shape[1]):
            pa, pb, ca, cb = a[i, t - 1], b[i, t - 1], a[i, t], b[i, t]
            if pa < pb and ca > cb:
                out[i, t] = 1.0
            elif pa > pb and ca < cb:
                out[i, t] = -1.0
    return out
