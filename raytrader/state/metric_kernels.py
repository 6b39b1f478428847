"""Compiled passes over an equity curve for ``compute_metrics``.

A sweep computes the metrics of thousands of curves; numpy's version of these steps made
several temporaries and passes per curve and took half of a fast-path trial. ``curve_stats``
does what the definitions in ``compute_metrics``'s docstring say in two passes (one division
per bar), with the same float operations per element; its sums are serial, not numpy's
pairwise ones, so they differ from numpy's in the last bits only.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from raytrader.data.compiled import jit

FloatArray = npt.NDArray[np.float64]


@jit
def curve_stats(
    values: FloatArray, ticks: npt.NDArray[np.int64], rf: float
) -> tuple[float, float, float, float, float, float, float, int, int, float]:
    """Statistics of an equity curve with positive first value; ``ticks`` are its times.

    With r the bar returns (0 after equity <= 0) and x = r - rf: mean(x), std(r, ddof=1),
    std(x, ddof=1), sqrt(mean(min(x, 0) ** 2)), max(x), min(x) (all 0 with fewer than two
    returns); the max drawdown (min of equity / running peak - 1), the longest run of bars
    below the peak, the longest span of ``ticks`` from a peak's bar to the bar that recovers
    it (or to the last bar); and the mean equity.
    """
    size = values.shape[0]
    n = size - 1
    rets = np.empty(max(n, 0))
    total_v = values[0]
    total_r = 0.0
    total_x = 0.0
    hi = -np.inf
    lo = np.inf
    peak = values[0]
    trough = peak  # the lowest value since the peak
    worst = 1.0  # the lowest trough / peak (division is monotonic: min(v) / p = min(v / p))
    longest = 0
    span = 0
    start = -1  # first bar of the current run below the peak; -1 at the peak
    for i in range(1, size):
        prev = values[i - 1]
        v = values[i]
        total_v += v
        r = v / prev - 1.0 if prev > 0.0 else 0.0
        rets[i - 1] = r
        x = r - rf if rf != 0.0 else r
        total_r += r
        total_x += x
        if x > hi:
            hi = x
        if x < lo:
            lo = x
        if v < peak:
            if start < 0:
                start = i
            if v < trough:
                trough = v
        else:
            if start >= 0:
                if i - start > longest:
                    longest = i - start
                if ticks[i] - ticks[start - 1] > span:
                    span = ticks[i] - ticks[start - 1]
                start = -1
                if trough / peak < worst:
                    worst = trough / peak
            peak = v
            trough = v
    if start >= 0:
        if size - start > longest:
            longest = size - start
        if ticks[size - 1] - ticks[start - 1] > span:
            span = ticks[size - 1] - ticks[start - 1]
        if trough / peak < worst:
            worst = trough / peak
    mean_equity = total_v / size
    if n < 2:
        return 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, worst - 1.0, longest, span, mean_equity
    mean_r = total_r / n
    mean_x = total_x / n
    ss_r = 0.0
    ss_x = 0.0
    down = 0.0
    for i in range(n):
        r = rets[i]
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
        worst - 1.0,
        longest,
        span,
        mean_equity,
    )


@jit
def _exposure_value(g: float, big: float) -> float:
    # NaN reads as 0 (pandas' fillna), +-inf as the largest float (numpy's nan_to_num), then |.|
    if g != g:
        return 0.0
    if g == np.inf or g == -np.inf:
        return big
    return abs(g)


@jit
def exposure_stats(exposure: FloatArray) -> tuple[float, float]:
    """Fraction of non-zero values and mean of |value| (NaN read as 0, +-inf as max float)."""
    n = exposure.shape[0]
    if n == 0:
        return 0.0, 0.0
    big = np.finfo(np.float64).max
    nonzero = 0
    total = 0.0
    for i in range(n):
        g = _exposure_value(exposure[i], big)
        nonzero += g > 0.0
        total += g
    return nonzero / n, total / n


@jit
def position_exposure_stats(
    position: FloatArray, close: FloatArray, equity: FloatArray
) -> tuple[float, float]:
    """``exposure_stats`` of |position x close| / equity per bar without building the array."""
    n = position.shape[0]
    if n == 0:
        return 0.0, 0.0
    big = np.finfo(np.float64).max
    nonzero = 0
    total = 0.0
    for i in range(n):
        gross = abs(position[i] * close[i])
        e = equity[i]
        if e != 0.0:
            g = _exposure_value(gross / e, big)
        elif gross != 0.0:
            g = big  # x / 0 is +-inf
        else:
            g = 0.0  # 0 / 0 is NaN
        nonzero += g > 0.0
        total += g
    return nonzero / n, total / n
