"""Deterministic synthetic OHLCV: regime-switching GBM for one symbol, a one-factor universe.

Everything is drawn from one ``numpy.random.Generator`` seeded by ``seed`` in a fixed order, so
the same arguments always give identical frames. Daily data sits on business days (like
equities); other frequencies run around the clock (like crypto).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from raytrader.data._linear import linear_recursion
from raytrader.data.loaders import OHLCV_COLUMNS, utc_index
from raytrader.data.resample import timeframe_to_timedelta

__all__ = [
    "CALM_BULL",
    "DEFAULT_TRANSITION",
    "MARKET_BEAR",
    "MARKET_BULL",
    "MARKET_TRANSITION",
    "VOLATILE_BEAR",
    "Regime",
    "RegimeSeries",
    "SyntheticUniverse",
    "correlated_universe",
    "gbm_regimes",
    "markov_chain",
    "synthetic_universe",
    "timeline",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Regime:
    """One market state: annualized drift of the price and annualized volatility."""

    name: str
    drift: float
    vol: float


CALM_BULL = Regime("calm_bull", drift=0.25, vol=0.15)
VOLATILE_BEAR = Regime("volatile_bear", drift=-0.35, vol=0.45)
# Per-bar transition probabilities: ~150-bar bull runs, ~75-bar bear runs.
DEFAULT_TRANSITION: tuple[tuple[float, ...], ...] = ((0.9933, 0.0067), (0.0133, 0.9867))

MARKET_BULL = Regime("bull", drift=0.24, vol=0.13)
MARKET_BEAR = Regime("bear", drift=-0.28, vol=0.26)
# Long regimes (~330 and ~125 bars) so a 200-bar moving average filter has something to find.
MARKET_TRANSITION: tuple[tuple[float, ...], ...] = ((0.997, 0.003), (0.008, 0.992))


@dataclass(frozen=True, eq=False)
class RegimeSeries:
    """One synthetic symbol and the true regime of every bar (an index into ``regime_names``)."""

    frame: pd.DataFrame
    regimes: IntArray
    regime_names: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class SyntheticUniverse:
    """Symbol -> frame (stocks and the index), the market regime path and the stocks' betas."""

    frames: dict[str, pd.DataFrame]
    market_regimes: IntArray
    regime_names: tuple[str, ...]
    betas: dict[str, float]
    index_symbol: str


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


def _is_daily(freq: str) -> bool:
    return timeframe_to_timedelta(freq) == pd.Timedelta(days=1)


def timeline(start: str | pd.Timestamp, n_bars: int, freq: str) -> pd.DatetimeIndex:
    """``n_bars`` UTC bar-open times from ``start``: business days for daily, else every step."""
    if n_bars < 0:
        raise ValueError(f"n_bars must be >= 0, got {n_bars}")
    ts = pd.Timestamp(start)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if _is_daily(freq):
        index = pd.bdate_range(start=ts.normalize(), periods=n_bars, tz="UTC")
    else:
        index = pd.date_range(start=ts, periods=n_bars, freq=timeframe_to_timedelta(freq))
    return utc_index(index)


def _periods_per_year(freq: str) -> float:
    if _is_daily(freq):
        return 252.0
    return pd.Timedelta(days=365.25) / timeframe_to_timedelta(freq)


def _check_transition(transition: Sequence[Sequence[float]], n_states: int) -> FloatArray:
    matrix = np.asarray(transition, dtype=np.float64)
    if matrix.shape != (n_states, n_states):
        raise ValueError(f"transition must be {n_states}x{n_states}, got shape {matrix.shape}")
    if (matrix < 0).any() or not np.allclose(matrix.sum(axis=1), 1.0, atol=1e-9):
        raise ValueError("transition rows must be probabilities summing to 1")
    return matrix


def _stationary(matrix: FloatArray) -> FloatArray:
    n = matrix.shape[0]
    system = np.vstack([matrix.T - np.eye(n), np.ones(n)])
    target = np.zeros(n + 1)
    target[-1] = 1.0
    dist = np.linalg.lstsq(system, target, rcond=None)[0]
    dist = np.clip(dist, 0.0, None)
    return dist / dist.sum()  # type: ignore[no-any-return]


def markov_chain(
    transition: Sequence[Sequence[float]], n_bars: int, rng: np.random.Generator
) -> IntArray:
    """A path of a Markov chain with per-bar ``transition`` matrix, started from its stationary
    distribution.

    Sampled one regime spell at a time (geometric spell lengths, then the next state from the
    off-diagonal probabilities): the same law as a per-bar chain with a loop per spell only.
    """
    matrix = np.asarray(transition, dtype=np.float64)
    _check_transition(transition, matrix.shape[0])
    n_states = matrix.shape[0]
    states = np.empty(n_bars, dtype=np.int64)
    state = int(np.searchsorted(np.cumsum(_stationary(matrix)), rng.random(), side="right"))
    state = min(state, n_states - 1)
    pos = 0
    while pos < n_bars:
        stay = float(matrix[state, state])
        if stay >= 1.0:
            length = n_bars - pos
        else:
            # Inverse CDF of the geometric law P(L = k) = stay**(k-1) * (1 - stay), k >= 1.
            u = 1.0 - rng.random()  # in (0, 1]
            length = 1 if stay <= 0.0 else max(1, math.ceil(math.log(u) / math.log(stay)))
        states[pos : pos + length] = state
        pos += length
        leave = matrix[state].copy()
        leave[state] = 0.0
        total = leave.sum()
        if total > 0.0:
            cum = np.cumsum(leave / total)
            state = min(int(np.searchsorted(cum, rng.random(), side="right")), n_states - 1)
    return states


def _ohlcv_from_returns(
    rng: np.random.Generator,
    log_ret: FloatArray,
    bar_vol: FloatArray,
    s0: float,
    base_volume: float,
    gap_frac: float,
) -> dict[str, FloatArray]:
    """OHLCV whose close-to-close log returns are exactly ``log_ret``.

    The open sits a small gap away from the previous close, the body carries the rest of the
    return, and wicks extend past the body by half-normal multiples of the bar volatility.
    Volume is lognormal and grows with volatility and with the size of the move.
    """
    n = log_ret.shape[0]
    gap = rng.standard_normal(n) * gap_frac * bar_vol
    wick_up = np.abs(rng.standard_normal(n)) * 0.5 * bar_vol
    wick_down = np.abs(rng.standard_normal(n)) * 0.5 * bar_vol
    noise = rng.standard_normal(n)
    close = s0 * np.exp(np.cumsum(log_ret))
    prev_close = np.concatenate([[s0], close[:-1]])
    open_ = prev_close * np.exp(gap)
    high = np.maximum(open_, close) * np.exp(wick_up)
    low = np.minimum(open_, close) * np.exp(-wick_down)
    surprise = np.abs(log_ret - log_ret.mean()) / bar_vol
    vol_level = bar_vol / np.median(bar_vol)
    volume = base_volume * np.exp(0.35 * noise) * vol_level * (0.6 + 0.4 * surprise)
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def _frame(index: pd.DatetimeIndex, cols: dict[str, FloatArray]) -> pd.DataFrame:
    return pd.DataFrame({c: cols[c] for c in OHLCV_COLUMNS}, index=index)


# ---------------------------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------------------------


def gbm_regimes(
    n_bars: int,
    seed: int,
    start: str | pd.Timestamp = "2020-01-01",
    freq: str = "1D",
    *,
    s0: float = 100.0,
    regimes: Sequence[Regime] = (CALM_BULL, VOLATILE_BEAR),
    transition: Sequence[Sequence[float]] = DEFAULT_TRANSITION,
    base_volume: float = 1_000_000.0,
    gap_frac: float = 0.1,
    periods_per_year: float | None = None,
) -> RegimeSeries:
    """One symbol from geometric Brownian motion whose drift and volatility follow a Markov
    chain of ``regimes`` (per-bar ``transition`` matrix).

    Returns the OHLCV frame and the true regime of every bar. ``drift`` and ``vol`` are
    annualized with ``periods_per_year`` (252 for daily bars, else calendar time).
    """
    if n_bars < 1:
        raise ValueError(f"n_bars must be >= 1, got {n_bars}")
    if not regimes:
        raise ValueError("at least one regime is needed")
    if s0 <= 0:
        raise ValueError(f"s0 must be > 0, got {s0}")
    _check_transition(transition, len(regimes))
    rng = np.random.default_rng(seed)
    index = timeline(start, n_bars, freq)
    dt = 1.0 / (periods_per_year or _periods_per_year(freq))
    path = markov_chain(transition, n_bars, rng)
    drift = np.array([r.drift for r in regimes])[path]
    vol = np.array([r.vol for r in regimes])[path]
    bar_vol = vol * math.sqrt(dt)
    log_ret = (drift - 0.5 * vol * vol) * dt + bar_vol * rng.standard_normal(n_bars)
    cols = _ohlcv_from_returns(rng, log_ret, bar_vol, s0, base_volume, gap_frac)
    return RegimeSeries(
        frame=_frame(index, cols),
        regimes=path,
        regime_names=tuple(r.name for r in regimes),
    )


def synthetic_universe(
    n_symbols: int = 30,
    n_bars: int = 1500,
    seed: int = 0,
    freq: str = "1D",
    index_symbol: str = "INDEX",
    start: str | pd.Timestamp = "2016-01-04",
    *,
    market_regimes: Sequence[Regime] = (MARKET_BULL, MARKET_BEAR),
    transition: Sequence[Sequence[float]] = MARKET_TRANSITION,
    alpha_vol: float = 0.12,
    alpha_halflife: float = 250.0,
    periods_per_year: float | None = None,
) -> SyntheticUniverse:
    """A one-factor universe: ``n_symbols`` stocks plus the market index as ``index_symbol``.

    Stock log return = alpha(t) * dt + beta * market return + idiosyncratic noise. The market
    follows bull/bear regimes long enough that the index spends long stretches on both sides of
    its 200-bar moving average. Each stock's alpha is a fixed part plus a slow Ornstein-Uhlenbeck
    part (half-life ``alpha_halflife`` bars, stationary sd ``alpha_vol`` a year), so winners
    keep winning for a while (momentum) and leadership rotates.
    """
    if n_symbols < 0 or n_bars < 1:
        raise ValueError(f"need n_symbols >= 0 and n_bars >= 1, got {n_symbols}, {n_bars}")
    _check_transition(transition, len(market_regimes))
    width = max(2, len(str(max(n_symbols - 1, 0))))
    symbols = [f"S{i:0{width}d}" for i in range(n_symbols)]
    if index_symbol in symbols:
        raise ValueError(f"index_symbol {index_symbol!r} clashes with a stock symbol")
    rng = np.random.default_rng(seed)
    index = timeline(start, n_bars, freq)
    ppy = periods_per_year or _periods_per_year(freq)
    dt = 1.0 / ppy
    sqdt = math.sqrt(dt)

    path = markov_chain(transition, n_bars, rng)
    m_drift = np.array([r.drift for r in market_regimes])[path]
    m_vol = np.array([r.vol for r in market_regimes])[path]
    # Idiosyncratic risk rises with market stress, as in real sell-offs.
    stress = m_vol / min(r.vol for r in market_regimes)
    market = (m_drift - 0.5 * m_vol**2) * dt + m_vol * sqdt * rng.standard_normal(n_bars)

    betas = rng.uniform(0.6, 1.6, n_symbols)
    idio_vol = rng.uniform(0.15, 0.40, n_symbols)
    fixed_alpha = rng.normal(0.02, 0.06, n_symbols)
    start_prices = np.exp(rng.uniform(math.log(10.0), math.log(500.0), n_symbols))
    base_volumes = 10.0 ** rng.uniform(5.0, 7.0, n_symbols)
    keep = 0.5 ** (1.0 / alpha_halflife)
    innovation = alpha_vol * math.sqrt(1.0 - keep * keep)

    frames: dict[str, pd.DataFrame] = {}
    for i, symbol in enumerate(symbols):
        shocks = rng.standard_normal(n_bars)
        alpha = fixed_alpha[i] + linear_recursion(
            shocks, keep, innovation, alpha_vol * rng.standard_normal()
        )
        noise_vol = idio_vol[i] * np.sqrt(stress)
        log_ret = (
            alpha * dt
            + betas[i] * market
            - 0.5 * noise_vol**2 * dt
            + noise_vol * sqdt * rng.standard_normal(n_bars)
        )
        bar_vol = np.sqrt((betas[i] * m_vol) ** 2 + noise_vol**2) * sqdt
        cols = _ohlcv_from_returns(
            rng, log_ret, bar_vol, float(start_prices[i]), float(base_volumes[i]), 0.15
        )
        frames[symbol] = _frame(index, cols)
    index_cols = _ohlcv_from_returns(rng, market, m_vol * sqdt, 1000.0, 5e8, 0.05)
    frames[index_symbol] = _frame(index, index_cols)
    return SyntheticUniverse(
        frames=frames,
        market_regimes=path,
        regime_names=tuple(r.name for r in market_regimes),
        betas={s: float(b) for s, b in zip(symbols, betas, strict=True)},
        index_symbol=index_symbol,
    )


def correlated_universe(
    n_symbols: int = 30,
    n_bars: int = 1500,
    seed: int = 0,
    freq: str = "1D",
    index_symbol: str = "INDEX",
    start: str | pd.Timestamp = "2016-01-04",
) -> dict[str, pd.DataFrame]:
    """Symbol -> OHLCV frame of a one-factor universe plus its index (see
    ``synthetic_universe`` for the model and for the regimes and betas)."""
    return synthetic_universe(n_symbols, n_bars, seed, freq, index_symbol, start).frames
