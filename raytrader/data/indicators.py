"""Vectorized technical indicators with TA-Lib's conventions and values.

Every function takes float arrays (anything ``np.asarray`` accepts) and returns float64 arrays of
the same length, NaN during the warm-up. All are causal: the value at bar ``t`` depends only on
bars ``<= t``.

NaN bars are treated as absent: an indicator runs over the valid bars only and returns NaN at the
NaN positions. So leading NaNs (a symbol that starts trading later) delay the warm-up to the first
valid bar, exactly like the TA-Lib Python wrapper, and a gap in an aligned multi-symbol array does
not poison the rest of the series (TA-Lib would return NaN forever after it).

No Python loop runs per bar: windows use blocked cumulative sums and the recursive smoothings
(EMA, Wilder) use a blocked closed form of the first-order linear recursion, so each indicator
takes milliseconds on a million bars.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from raytrader.data._linear import linear_recursion as _linear_recursion
from raytrader.data.compiled import jit
from raytrader.data.indicator_cache import memoized

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

__all__ = [
    "atr",
    "bollinger",
    "ema",
    "exp_regression_momentum",
    "macd",
    "rsi",
    "sma",
    "true_range",
]


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


def _as_float(x: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _check_period(n: int, name: str = "n", minimum: int = 1) -> None:
    if int(n) != n or n < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {n!r}")


def _over_valid(
    func: Callable[..., tuple[FloatArray, ...]],
    *series: FloatArray,
    valid: BoolArray | None = None,
) -> tuple[FloatArray, ...]:
    """Run ``func`` over the bars where every series is valid; NaN elsewhere."""
    if valid is None:
        # A sum is NaN if any term is NaN: one fast pass, no temporaries, in the common case.
        if not any(math.isnan(np.sum(s)) for s in series):
            return func(*series)
        valid = np.ones(series[0].shape, dtype=bool)
        for s in series:
            valid &= ~np.isnan(s)
    if valid.all():
        return func(*series)
    compact = func(*(s[valid] for s in series))
    outs: list[FloatArray] = []
    for c in compact:
        out = np.full(series[0].shape, np.nan)
        out[valid] = c
        outs.append(out)
    return tuple(outs)


def _block_size(n: int) -> int:
    # Rounding error of a blocked cumulative sum grows with the block length and with how far
    # values drift from the block's reference, so blocks are kept as short as the window allows
    # (a window then spans at most two blocks).
    return max(n, 64)


class _WindowSums:
    """Trailing ``n``-bar window sums of ``y - ref[t]``, valid from ``t = n - 1`` (NaN before).

    ``ref[t]`` is the first value of the block holding bar ``t``: summing deviations from a
    nearby value rather than raw values avoids the cancellation that makes the textbook
    ``E[y^2] - E[y]^2`` inaccurate, and cumulative sums restart every block so rounding error is
    that of ~``n`` terms, not of the whole series. ``s1`` weights each bar by its position
    ``0..n-1`` in the window and ``s2`` sums squares; both only when asked for.
    """

    def __init__(self, y: FloatArray, n: int, weighted: bool = False, squared: bool = False):
        size = y.shape[0]
        self.ref = np.full(size, np.nan)
        self.s0 = np.full(size, np.nan)
        self.s1 = np.full(size, np.nan)
        self.s2 = np.full(size, np.nan)
        if size < n or size == 0:
            return
        block = _block_size(n)
        n_blocks = -(-size // block)
        padded = np.full(n_blocks * block, y[-1])
        padded[:size] = y
        grid = padded.reshape(n_blocks, block)
        refs = grid[:, 0].copy()
        dev = grid - refs[:, np.newaxis]
        ref = np.repeat(refs, block)[:size]
        self.ref = ref

        def cums(values: FloatArray) -> tuple[FloatArray, FloatArray]:
            c = np.cumsum(values, axis=1)
            return c.ravel()[:size], np.repeat(c[:, -1], block)[:size]

        c0, tot0 = cums(dev)
        m = size - n  # number of windows after the first one
        pos_s = (np.arange(m) % block).astype(np.float64)  # block position of bar t - n
        blocks = np.arange(size) // block
        same = blocks[n:] == blocks[:m]
        d = ref[n:] - ref[:m]  # change of reference between the two blocks
        k = block - 1.0 - pos_s  # bars of the window in the earlier block when split
        tail0 = tot0[:m] - c0[:m]  # window part in the earlier block, earlier reference
        head0 = c0[n:]
        self.s0[n - 1] = c0[n - 1]
        self.s0[n:] = np.where(same, c0[n:] - c0[:m], tail0 - k * d + head0)
        if weighted:
            local = np.arange(block, dtype=np.float64)
            c1, tot1 = cums(dev * local)
            # Positions within the window of bars t-n+1..: local position - (pos_s + 1) when in
            # the same block as t - n, local position + (block - pos_s - 1) in the next block.
            tail1 = tot1[:m] - c1[:m] - (pos_s + 1.0) * tail0 - d * k * (k - 1.0) / 2.0
            head1 = c1[n:] + (block - pos_s - 1.0) * head0
            same1 = (c1[n:] - c1[:m]) - (pos_s + 1.0) * (c0[n:] - c0[:m])
            self.s1[n - 1] = c1[n - 1]
            self.s1[n:] = np.where(same, same1, tail1 + head1)
        if squared:
            c2, tot2 = cums(dev * dev)
            tail2 = tot2[:m] - c2[:m]
            split2 = tail2 - 2.0 * d * tail0 + k * d * d + c2[n:]
            self.s2[n - 1] = c2[n - 1]
            self.s2[n:] = np.where(same, c2[n:] - c2[:m], split2)


def _ema_core(x: FloatArray, n: int, k: float) -> FloatArray:
    """EMA with smoothing ``k`` seeded by the SMA of the first ``n`` values (TA-Lib)."""
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] < n:
        return out
    seed = float(np.mean(x[:n]))
    out[n - 1] = seed
    out[n:] = _linear_recursion(x[n:], 1.0 - k, k, seed)
    return out


def _wilder(values: FloatArray, n: int, seed: float) -> FloatArray:
    """Wilder smoothing ``avg = (prev * (n - 1) + v) / n`` over ``values`` after ``seed``."""
    return _linear_recursion(values, (n - 1) / n, 1.0 / n, seed)


# ---------------------------------------------------------------------------------------------
# Indicators
# ---------------------------------------------------------------------------------------------


@memoized
def sma(x: npt.ArrayLike, n: int) -> FloatArray:
    """Simple moving average over ``n`` bars (TA-Lib ``SMA``)."""
    _check_period(n)
    arr = _as_float(x, "x")

    return _over_valid(lambda v: (_sma_kernel(v, n),), arr)[0]


@jit
def _sma_kernel(v: FloatArray, n: int) -> FloatArray:
    # A running sum of deviations from a reference, restarted from an exact sum every
    # ``restart`` bars, so rounding error stays that of ~2 windows of terms (TA-Lib sums the
    # window incrementally over the whole series).
    size = v.shape[0]
    out = np.full(size, np.nan)
    if size < n:
        return out
    restart = max(n, 1024)
    ref = 0.0
    total = 0.0
    countdown = 0  # bars to the next restart (a counter: a modulo per bar costs a division)
    for t in range(n - 1, size):
        if countdown == 0:
            countdown = restart
            ref = v[t - n + 1]
            total = 0.0
            for j in range(t - n + 1, t + 1):
                total += v[j] - ref
        else:
            total += (v[t] - ref) - (v[t - n] - ref)
        countdown -= 1
        out[t] = ref + total / n
    return out


@memoized
def ema(x: npt.ArrayLike, n: int) -> FloatArray:
    """Exponential moving average, ``k = 2 / (n + 1)``, seeded with the SMA of the first ``n``."""
    _check_period(n)
    arr = _as_float(x, "x")
    return _over_valid(lambda v: (_ema_core(v, n, 2.0 / (n + 1)),), arr)[0]


@memoized
def rsi(close: npt.ArrayLike, n: int = 14) -> FloatArray:
    """Wilder's relative strength index (TA-Lib ``RSI``: first value at bar ``n``)."""
    _check_period(n)
    arr = _as_float(close, "close")

    def core(c: FloatArray) -> tuple[FloatArray]:
        out = np.full(c.shape[0], np.nan)
        if c.shape[0] <= n:
            return (out,)
        diff = np.diff(c)
        gain = np.maximum(diff, 0.0)
        loss = np.maximum(-diff, 0.0)
        avg_gain = np.empty(diff.shape[0] - n + 1)
        avg_loss = np.empty_like(avg_gain)
        avg_gain[0] = gain[:n].sum() / n
        avg_loss[0] = loss[:n].sum() / n
        avg_gain[1:] = _wilder(gain[n:], n, float(avg_gain[0]))
        avg_loss[1:] = _wilder(loss[n:], n, float(avg_loss[0]))
        total = avg_gain + avg_loss
        # TA-Lib returns 0 (not NaN) when there was no movement at all (TA_IS_ZERO).
        flat = np.abs(total) < 1e-14
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(flat, 0.0, 100.0 * avg_gain / np.where(flat, 1.0, total))
        out[n:] = value
        return (out,)

    return _over_valid(core, arr)[0]


@memoized
def macd(
    close: npt.ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """MACD line, signal line and histogram exactly as TA-Lib ``MACD``.

    As in TA-Lib the fast EMA is seeded at the same bar as the slow one (the SMA of the ``fast``
    values ending at bar ``slow - 1``), and all three outputs start at bar
    ``slow + signal - 2``.
    """
    _check_period(fast, "fast")
    _check_period(slow, "slow")
    _check_period(signal, "signal")
    if slow < fast:  # TA-Lib swaps them silently
        fast, slow = slow, fast
    arr = _as_float(close, "close")

    def core(c: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        size = c.shape[0]
        line = np.full(size, np.nan)
        sig = np.full(size, np.nan)
        start = slow + signal - 2
        if size <= start:
            return line, sig, np.full(size, np.nan)
        slow_ema = _ema_core(c, slow, 2.0 / (slow + 1))
        fast_ema = np.full(size, np.nan)
        fast_ema[slow - fast :] = _ema_core(c[slow - fast :], fast, 2.0 / (fast + 1))
        raw = fast_ema - slow_ema  # valid from slow - 1
        sig[slow - 1 :] = _ema_core(raw[slow - 1 :], signal, 2.0 / (signal + 1))
        line[start:] = raw[start:]
        sig[:start] = np.nan
        return line, sig, line - sig

    line, sig, hist = _over_valid(core, arr)
    return line, sig, hist


@memoized
def true_range(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike) -> FloatArray:
    """True range (TA-Lib ``TRANGE``): NaN on the first bar, which has no previous close."""
    h, lo, c = _as_float(high, "high"), _as_float(low, "low"), _as_float(close, "close")

    def core(hh: FloatArray, ll: FloatArray, cc: FloatArray) -> tuple[FloatArray]:
        out = np.full(hh.shape[0], np.nan)
        if hh.shape[0] < 2:
            return (out,)
        prev = cc[:-1]
        out[1:] = np.maximum.reduce([hh[1:] - ll[1:], np.abs(prev - hh[1:]), np.abs(prev - ll[1:])])
        return (out,)

    return _over_valid(core, h, lo, c)[0]


@memoized
def atr(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, n: int = 14) -> FloatArray:
    """Average true range, Wilder-smoothed, seeded with the mean of the first ``n`` true ranges
    (TA-Lib ``ATR``: first value at bar ``n``)."""
    _check_period(n)
    h, lo, c = _as_float(high, "high"), _as_float(low, "low"), _as_float(close, "close")
    if not h.shape == lo.shape == c.shape:
        raise ValueError(f"high, low, close lengths differ: {h.shape}, {lo.shape}, {c.shape}")

    def core(hh: FloatArray, ll: FloatArray, cc: FloatArray) -> tuple[FloatArray]:
        out = np.full(hh.shape[0], np.nan)
        if hh.shape[0] <= n:
            return (out,)
        tr = true_range(hh, ll, cc)
        seed = float(tr[1 : n + 1].sum() / n)
        out[n] = seed
        out[n + 1 :] = _wilder(tr[n + 1 :], n, seed)
        return (out,)

    return _over_valid(core, h, lo, c)[0]


@memoized
def bollinger(
    close: npt.ArrayLike, n: int = 20, k: float = 2.0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Bollinger bands ``(upper, middle, lower)``: SMA +- ``k`` population standard deviations
    (TA-Lib ``BBANDS`` with ``matype=0`` and ``nbdevup = nbdevdn = k``)."""
    _check_period(n)
    arr = _as_float(close, "close")

    def core(c: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        if c.shape[0] == 0:
            return np.empty(0), np.empty(0), np.empty(0)
        sums = _WindowSums(c, n, squared=True)
        mean_dev = sums.s0 / n
        var = sums.s2 / n - mean_dev * mean_dev
        # Like TA-Lib (TA_IS_ZERO_OR_NEG), a variance below 1e-14 is a flat window: width 0.
        std = np.sqrt(np.where(var >= 1e-14, var, 0.0))
        std[np.isnan(var)] = np.nan
        middle = sums.ref + mean_dev
        return middle + k * std, middle, middle - k * std

    upper, middle, lower = _over_valid(core, arr)
    return upper, middle, lower


@memoized
def exp_regression_momentum(
    close: npt.ArrayLike, n: int = 90, periods_per_year: float = 252
) -> FloatArray:
    """Clenow's exponential-regression momentum over trailing ``n``-bar windows.

    Least-squares fit of ``ln(close)`` on ``0..n-1``; returns the annualized slope times the
    window's R^2: ``(exp(slope) ** periods_per_year - 1) * r2``. Non-positive prices count as
    missing bars.
    """
    _check_period(n, minimum=2)
    arr = _as_float(close, "close")
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.where(arr > 0.0, np.log(np.where(arr > 0.0, arr, 1.0)), np.nan)
    valid = ~np.isnan(logp)

    def core(y: FloatArray) -> tuple[FloatArray]:
        if y.shape[0] == 0:
            return (np.empty(0),)
        sums = _WindowSums(y, n, weighted=True, squared=True)
        s0, s1, s2 = sums.s0, sums.s1, sums.s2
        x_mean = (n - 1) / 2.0
        sxx = n * (n * n - 1) / 12.0  # sum of (j - x_mean)^2
        sxy = s1 - x_mean * s0
        syy = s2 - s0 * s0 / n
        slope = sxy / sxx
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(syy > 0.0, sxy * sxy / (sxx * np.where(syy > 0.0, syy, 1.0)), 0.0)
            r2 = np.clip(r2, 0.0, 1.0)
            r2[np.isnan(syy)] = np.nan
            value = np.expm1(slope * periods_per_year) * r2
        return (value,)

    return _over_valid(core, logp, valid=valid)[0]
