"""Helpers shared by the rule agents."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import numpy as np

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
    out = np.zeros(a.shape)
    prev_a, prev_b, cur_a, cur_b = a[..., :-1], b[..., :-1], a[..., 1:], b[..., 1:]
    with np.errstate(invalid="ignore"):
        out[..., 1:] = np.where((prev_a < prev_b) & (cur_a > cur_b), 1.0, 0.0) - np.where(
            (prev_a > prev_b) & (cur_a < cur_b), 1.0, 0.0
        )
    return out
