"""Compiled passes over an equity curve for ``compute_metrics``.

A sweep computes the metrics of thousands of curves; numpy's version of these steps made
several temporaries per curve and took half of a fast-path trial. Each kernel does what the
numpy expressions in ``compute_metrics``'s docstring define, in one or two passes, with the
same float operations per element (sums are serial, not numpy's pairwise: they differ in the
last bits only).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from raytrader.data.compiled import jit

FloatArray = npt.NDArray[np.float64]


@jit
def _bar_return(values: FloatArray, i: int) -> float:
    prev = values[i]
    return values[i + 1] / prev - 1.0 if prev > 0.0 else 0.0


@jit
def return_stats(values: FloatArray, rf: float) -> tuple[float, float, float, float, float, float]:
    """Moments of the bar returns of ``values`` (a return after equity <= 0 counts as 0).

    With r the returns and x = r - rf: mean(x), std(r, ddof=1), std(x, ddof=1),
    sqrt(mean(min(x, 0) ** 2)), max(x), min(x). Needs at least two returns.
    """
    n = values.shape[0] - 1
    total_r = 0.0
    total_x = 0.0
    hi = -np.inf
    lo = np.inf
    for i in range(n):
        r = _bar_return(values, i)
        x = r - rf if rf != 0.0 else r
        total_r += r
        total_x += x
        if x > hi:
            hi = x
        if x < lo:
            lo = x
    mean_r = total_r / n
    mean_x = total_x / n
    # A second pass for the deviations (recomputing the returns is cheaper than storing them).
    ss_r = 0.0
    ss_x = 0.0
    down = 0.0
    for i in range(n):
        r = _bar_return(values, i)
        d = r - mean_r
        ss_r += d * d
        x = r - rf if rf != 0.0 else r
        d = x - mean_x
        ss_x += d * d
        if x < 0.0:
            down += x * x
    return (
        mean_x,
        math.sqrt(ss_r / (n - 1)),
        math.sqrt(ss_x / (n - 1)),
        math.sqrt(down / n),
        hi,
        lo,
    )


@jit
def drawdown_stats(values: FloatArray, ticks: npt.NDArray[np.int64]) -> tuple[float, int, int]:
    """Max drawdown (equity / running peak - 1), the longest underwater run in bars, and the
    longest span in ``ticks`` from a peak's bar to the bar that recovers it (or the last)."""
    n = values.shape[0]
    peak = values[0]
    worst = 0.0
    longest = 0
    span = 0
    start = -1  # first bar of the current run below the peak, -1 when at the peak
    for i in range(n):
        v = values[i]
        if v > peak:
            peak = v
        dd = v / peak - 1.0
        if dd < worst:
            worst = dd
        if dd < 0.0:
            if start < 0:
                start = i
        elif start >= 0:
            if i - start > longest:
                longest = i - start
            if ticks[i] - ticks[start - 1] > span:
                span = ticks[i] - ticks[start - 1]
            start = -1
    if start >= 0:
        if n - start > longest:
            longest = n - start
        if ticks[n - 1] - ticks[start - 1] > span:
            span = ticks[n - 1] - ticks[start - 1]
    return worst, longest, span


@jit
def exposure_stats(exposure: FloatArray) -> tuple[float, float]:
    """Fraction of non-zero values and mean of |value| (NaN read as 0, +-inf as +-max float)."""
    n = exposure.shape[0]
    if n == 0:
        return 0.0, 0.0
    big = np.finfo(np.float64).max
    nonzero = 0
    total = 0.0
    for i in range(n):
        g = exposure[i]
        if g != g:
            g = 0.0
        elif g == np.inf or g == -np.inf:
            g = big
        g = abs(g)
        if g > 0.0:
            nonzero += 1
        total += g
    return nonzero / n, total / n


@jit
def mean(values: FloatArray) -> float:
    total = 0.0
    for i in range(values.shape[0]):
        total += values[i]
    return float(total / values.shape[0])
