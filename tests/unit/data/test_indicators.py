"""Indicators against TA-Lib and direct references, causality, NaN handling and speed."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
import talib

from raytrader.data import indicators as ind

FloatArray = npt.NDArray[np.float64]
RTOL = 1e-9
N = 5000


def random_walk(n: int = N, seed: int = 11) -> tuple[FloatArray, FloatArray, FloatArray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.012, n)))
    high = close * np.exp(np.abs(rng.normal(0.0, 0.006, n)))
    low = close * np.exp(-np.abs(rng.normal(0.0, 0.006, n)))
    return high, low, close


def assert_matches(ours: FloatArray, ref: FloatArray, atol: float = 0.0) -> None:
    """Same NaN positions, then equal values within ``RTOL`` outside the warm-up."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape
    assert ours.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    valid = ~np.isnan(ref)
    assert valid.sum() > 0
    np.testing.assert_allclose(ours[valid], ref[valid], rtol=RTOL, atol=atol)


PERIODS = [2, 5, 14, 50, 200]


@pytest.mark.parametrize("n", PERIODS)
def test_sma_matches_talib(n: int) -> None:
    _, _, c = random_walk()
    assert_matches(ind.sma(c, n), talib.SMA(c, timeperiod=n))


@pytest.mark.parametrize("n", PERIODS)
def test_ema_matches_talib(n: int) -> None:
    _, _, c = random_walk()
    assert_matches(ind.ema(c, n), talib.EMA(c, timeperiod=n))


@pytest.mark.parametrize("n", PERIODS)
def test_rsi_matches_talib(n: int) -> None:
    _, _, c = random_walk()
    assert_matches(ind.rsi(c, n), talib.RSI(c, timeperiod=n))


@pytest.mark.parametrize("n", [1, *PERIODS])
def test_atr_matches_talib(n: int) -> None:
    h, lo, c = random_walk()
    assert_matches(ind.atr(h, lo, c, n), talib.ATR(h, lo, c, timeperiod=n))


def test_true_range_matches_talib() -> None:
    h, lo, c = random_walk()
    assert_matches(ind.true_range(h, lo, c), talib.TRANGE(h, lo, c))


@pytest.mark.parametrize(("n", "k"), [(20, 2.0), (5, 1.5), (50, 2.5), (200, 1.0)])
def test_bollinger_matches_talib(n: int, k: float) -> None:
    _, _, c = random_walk()
    ours = ind.bollinger(c, n, k)
    ref = talib.BBANDS(c, timeperiod=n, nbdevup=k, nbdevdn=k, matype=0)
    for o, r in zip(ours, ref, strict=True):
        assert_matches(o, r)


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (5, 35, 5), (3, 10, 16)])
def test_macd_matches_talib(fast: int, slow: int, signal: int) -> None:
    _, _, c = random_walk()
    ours = ind.macd(c, fast, slow, signal)
    ref = talib.MACD(c, fastperiod=fast, slowperiod=slow, signalperiod=signal)
    # MACD values cross zero, where a relative tolerance means nothing: the absolute slack is
    # 1e-12 of the price level (the EMAs themselves agree to ~1e-14 relative).
    for o, r in zip(ours, ref, strict=True):
        assert_matches(o, r, atol=1e-12 * float(np.mean(c)))


def test_macd_swaps_periods_like_talib() -> None:
    _, _, c = random_walk()
    for o, r in zip(ind.macd(c, 26, 12, 9), ind.macd(c, 12, 26, 9), strict=True):
        np.testing.assert_array_equal(o, r)


# --- leading NaN: the warm-up starts at the first valid bar (like TA-Lib's wrapper) --------------

LEAD = 137


def with_leading_nan(x: FloatArray, lead: int = LEAD) -> FloatArray:
    y = x.copy()
    y[:lead] = np.nan
    return y


def test_leading_nan_single_input_matches_talib() -> None:
    _, _, c = random_walk()
    cn = with_leading_nan(c)
    assert_matches(ind.sma(cn, 20), talib.SMA(cn, 20))
    assert_matches(ind.ema(cn, 20), talib.EMA(cn, 20))
    assert_matches(ind.rsi(cn, 14), talib.RSI(cn, 14))
    for o, r in zip(ind.bollinger(cn, 20, 2.0), talib.BBANDS(cn, 20, 2.0, 2.0, 0), strict=True):
        assert_matches(o, r)
    for o, r in zip(ind.macd(cn), talib.MACD(cn), strict=True):
        assert_matches(o, r, atol=1e-12 * float(np.nanmean(cn)))
    assert np.isnan(ind.ema(cn, 20)[: LEAD + 19]).all()
    assert not np.isnan(ind.ema(cn, 20)[LEAD + 19])


def test_leading_nan_atr_starts_when_all_inputs_are_valid() -> None:
    h, lo, c = random_walk()
    hn, lon, cn = with_leading_nan(h, 40), with_leading_nan(lo, 90), with_leading_nan(c, 60)
    assert_matches(ind.atr(hn, lon, cn, 14), talib.ATR(hn, lon, cn, 14))
    assert np.isnan(ind.atr(hn, lon, cn, 14)[: 90 + 14]).all()


def test_interior_nan_bars_are_skipped() -> None:
    _, _, c = random_walk(600)
    gappy = c.copy()
    holes = [100, 101, 102, 350, 599]
    gappy[holes] = np.nan
    valid = ~np.isnan(gappy)
    for func in (
        lambda x: ind.sma(x, 20),
        lambda x: ind.ema(x, 20),
        lambda x: ind.rsi(x, 14),
        lambda x: ind.exp_regression_momentum(x, 50),
        lambda x: ind.bollinger(x, 20)[0],
        lambda x: ind.macd(x)[1],
    ):
        out = func(gappy)
        assert np.isnan(out[holes]).all()
        np.testing.assert_array_equal(out[valid], func(c[valid]))


def test_all_nan_and_short_inputs() -> None:
    assert np.isnan(ind.ema(np.full(10, np.nan), 3)).all()
    assert np.isnan(ind.sma(np.arange(4.0), 5)).all()
    assert np.isnan(ind.rsi(np.arange(14.0), 14)).all()
    assert ind.sma(np.empty(0), 5).shape == (0,)
    assert np.isnan(ind.macd(np.arange(33.0))[0]).all()
    assert not np.isnan(ind.macd(np.arange(34.0))[0][33])
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        ind.sma(np.arange(5.0), 0)
    with pytest.raises(ValueError, match="one-dimensional"):
        ind.sma(np.ones((2, 5)), 2)


def test_rsi_flat_series_is_zero_like_talib() -> None:
    flat = np.full(50, 42.0)
    assert_matches(ind.rsi(flat, 14), talib.RSI(flat, 14))
    up = np.arange(1.0, 51.0)
    assert_matches(ind.rsi(up, 14), talib.RSI(up, 14))


def test_accepts_lists_and_int_arrays() -> None:
    values = list(range(1, 31))
    np.testing.assert_allclose(ind.sma(values, 3)[2:], np.arange(2.0, 30.0))
    assert ind.ema(np.arange(30), 5).dtype == np.float64


# --- exponential regression momentum against np.polyfit per window ------------------------------


def momentum_reference(close: FloatArray, n: int, periods_per_year: float) -> FloatArray:
    out = np.full(close.shape[0], np.nan)
    x = np.arange(n, dtype=np.float64)
    for t in range(n - 1, close.shape[0]):
        y = np.log(close[t - n + 1 : t + 1])
        slope, intercept = np.polyfit(x, y, 1)
        fitted = intercept + slope * x
        r2 = 1.0 - np.sum((y - fitted) ** 2) / np.sum((y - y.mean()) ** 2)
        out[t] = (np.exp(slope) ** periods_per_year - 1.0) * r2
    return out


@pytest.mark.parametrize(("n", "ppy"), [(90, 252), (20, 252), (5, 365)])
def test_exp_regression_momentum_matches_polyfit(n: int, ppy: float) -> None:
    _, _, c = random_walk(400, seed=5)
    ours = ind.exp_regression_momentum(c, n, ppy)
    ref = momentum_reference(c, n, ppy)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    valid = ~np.isnan(ref)
    np.testing.assert_allclose(ours[valid], ref[valid], rtol=1e-8, atol=1e-12)


def test_exp_regression_momentum_long_series_stays_accurate() -> None:
    """Blocked sums keep their accuracy far into a long series with a drifting price."""
    rng = np.random.default_rng(2)
    c = 50.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, 300_000)))
    ours = ind.exp_regression_momentum(c, 90)
    tail = slice(c.shape[0] - 300, None)
    ref = momentum_reference(c[tail.start - 89 :], 90, 252)[89:]
    np.testing.assert_allclose(ours[tail], ref, rtol=1e-7, atol=1e-10)


def test_exp_regression_momentum_on_exact_exponential() -> None:
    growth = 0.001  # per bar
    c = 10.0 * np.exp(growth * np.arange(300))
    out = ind.exp_regression_momentum(c, 90, 252)
    np.testing.assert_allclose(out[89:], np.expm1(growth * 252), rtol=1e-9)
    flat = ind.exp_regression_momentum(np.full(100, 3.0), 20)
    np.testing.assert_array_equal(flat[19:], 0.0)


def test_bollinger_long_series_flat_windows() -> None:
    """Per-block references avoid the E[x^2] - E[x]^2 cancellation on high, flat prices."""
    rng = np.random.default_rng(8)
    c = 50_000.0 + np.round(np.cumsum(rng.normal(0, 5, 200_000)), 0)
    upper, middle, _ = ind.bollinger(c, 20, 2.0)
    t = np.arange(c.shape[0] - 1000, c.shape[0])
    windows = np.lib.stride_tricks.sliding_window_view(c, 20)[t - 19]
    np.testing.assert_allclose(middle[t], windows.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(upper[t] - middle[t], 2.0 * windows.std(axis=1), atol=1e-6)


# --- causality ------------------------------------------------------------------------------------

INDICATORS: dict[str, Callable[[FloatArray, FloatArray, FloatArray], list[FloatArray]]] = {
    "sma": lambda h, lo, c: [ind.sma(c, 30)],
    "ema": lambda h, lo, c: [ind.ema(c, 30)],
    "rsi": lambda h, lo, c: [ind.rsi(c, 14)],
    "macd": lambda h, lo, c: list(ind.macd(c)),
    "atr": lambda h, lo, c: [ind.atr(h, lo, c, 14)],
    "true_range": lambda h, lo, c: [ind.true_range(h, lo, c)],
    "bollinger": lambda h, lo, c: list(ind.bollinger(c, 20, 2.0)),
    "momentum": lambda h, lo, c: [ind.exp_regression_momentum(c, 90)],
}


@pytest.mark.parametrize("name", list(INDICATORS))
def test_causal(name: str) -> None:
    func = INDICATORS[name]
    h, lo, c = random_walk(3000, seed=4)
    base = func(h, lo, c)
    rng = np.random.default_rng(99)
    for t in (0, 13, 250, 1023, 2047, 2999):
        h2, lo2, c2 = h.copy(), lo.copy(), c.copy()
        k = c.shape[0] - (t + 1)
        bump = np.exp(rng.normal(0.0, 0.2, k))
        c2[t + 1 :] *= bump
        h2[t + 1 :] *= bump * 1.3
        lo2[t + 1 :] *= bump * 0.7
        changed = func(h2, lo2, c2)
        for b, ch in zip(base, changed, strict=True):
            np.testing.assert_array_equal(b[: t + 1], ch[: t + 1])
        # The same holds when the future simply does not exist yet.
        short = func(h[: t + 1], lo[: t + 1], c[: t + 1])
        for b, s in zip(base, short, strict=True):
            np.testing.assert_allclose(s, b[: t + 1], rtol=1e-12, atol=1e-12)
