"""Synthetic markets: determinism, valid OHLCV, regimes, factor structure, momentum."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raytrader.data import (
    MarketData,
    Regime,
    correlated_universe,
    gbm_regimes,
    sma,
    synthetic_universe,
    validate_ohlcv,
)
from raytrader.data.synthetic import markov_chain, timeline


def longest_run(mask: np.ndarray) -> int:
    best = cur = 0
    for value in mask:
        cur = cur + 1 if value else 0
        best = max(best, cur)
    return best


# --- gbm_regimes ---------------------------------------------------------------------------------


def test_gbm_same_seed_identical_different_seed_different() -> None:
    a = gbm_regimes(3000, seed=5)
    b = gbm_regimes(3000, seed=5)
    pd.testing.assert_frame_equal(a.frame, b.frame, check_exact=True)
    np.testing.assert_array_equal(a.regimes, b.regimes)
    c = gbm_regimes(3000, seed=6)
    assert not np.array_equal(a.frame["close"].to_numpy(), c.frame["close"].to_numpy())


def test_gbm_frame_is_valid_canonical_ohlcv() -> None:
    series = gbm_regimes(5000, seed=1)
    frame = series.frame
    pd.testing.assert_frame_equal(validate_ohlcv(frame), frame, check_exact=True)
    assert (frame["volume"] > 0).all()
    assert (frame["low"] > 0).all()
    # Open sits near the previous close: a small gap, not a jump.
    gap = np.log(frame["open"].to_numpy()[1:] / frame["close"].to_numpy()[:-1])
    move = np.log(frame["close"]).diff().abs().to_numpy()[1:]
    assert np.median(np.abs(gap)) < 0.25 * np.median(move)
    assert frame["open"].iloc[0] == pytest.approx(100.0, rel=0.02)


def test_gbm_daily_bars_are_business_days_and_intraday_is_continuous() -> None:
    daily = gbm_regimes(300, seed=1, start="2021-03-05").frame.index
    assert daily[0] == pd.Timestamp("2021-03-05", tz="UTC")
    assert (daily.dayofweek < 5).all()
    hourly = gbm_regimes(500, seed=1, start="2021-03-05 10:00", freq="1h").frame.index
    assert (np.diff(hourly.asi8) == 3600 * 10**9).all()
    assert str(hourly.tz) == "UTC"


def test_gbm_regimes_present_and_distinct() -> None:
    series = gbm_regimes(20_000, seed=3)
    assert series.regime_names == ("calm_bull", "volatile_bear")
    assert series.regimes.shape == (20_000,)
    counts = np.bincount(series.regimes, minlength=2)
    assert (counts > 2_000).all()  # both regimes, for long
    switches = np.count_nonzero(np.diff(series.regimes))
    assert 20 < switches < 1_000  # persistent, not flickering
    ret = np.log(series.frame["close"]).diff().to_numpy()[1:]
    reg = series.regimes[1:]
    vol_bull, vol_bear = ret[reg == 0].std(), ret[reg == 1].std()
    assert vol_bear > 2.0 * vol_bull
    assert ret[reg == 0].mean() > 0 > ret[reg == 1].mean()


def test_gbm_custom_regimes_and_levels() -> None:
    regimes = (Regime("a", 0.0, 0.2), Regime("b", 0.0, 0.6), Regime("c", 0.5, 0.3))
    transition = ((0.98, 0.01, 0.01), (0.01, 0.98, 0.01), (0.01, 0.01, 0.98))
    series = gbm_regimes(
        4000, seed=2, freq="1h", s0=30_000.0, regimes=regimes, transition=transition
    )
    assert set(np.unique(series.regimes)) == {0, 1, 2}
    assert 10_000 < series.frame["close"].median() < 90_000
    with pytest.raises(ValueError, match="3x3"):
        gbm_regimes(10, seed=0, regimes=regimes)
    with pytest.raises(ValueError, match="summing to 1"):
        gbm_regimes(10, seed=0, transition=((0.5, 0.4), (0.1, 0.9)))


def test_markov_chain_follows_its_transition_matrix() -> None:
    matrix = ((0.9, 0.1), (0.3, 0.7))
    path = markov_chain(matrix, 200_000, np.random.default_rng(0))
    prev, nxt = path[:-1], path[1:]
    for i in range(2):
        for j in range(2):
            observed = np.mean(nxt[prev == i] == j)
            assert observed == pytest.approx(matrix[i][j], abs=0.01)
    assert np.mean(path == 0) == pytest.approx(0.75, abs=0.02)  # stationary distribution


def test_timeline() -> None:
    idx = timeline("2024-01-05", 3, "1D")  # Friday
    assert list(idx.day_name()) == ["Friday", "Monday", "Tuesday"]
    assert idx.name == "ts"
    assert idx.freq is None
    assert timeline("2024-01-05 00:00", 3, "15m")[-1] == pd.Timestamp("2024-01-05 00:30", tz="UTC")


# --- correlated universe --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def universe() -> dict[str, pd.DataFrame]:
    return correlated_universe(n_symbols=30, n_bars=1500, seed=4)


def test_universe_same_seed_identical_different_seed_different(
    universe: dict[str, pd.DataFrame],
) -> None:
    again = correlated_universe(n_symbols=30, n_bars=1500, seed=4)
    assert list(again) == list(universe)
    for symbol, frame in universe.items():
        pd.testing.assert_frame_equal(again[symbol], frame, check_exact=True)
    other = correlated_universe(n_symbols=30, n_bars=1500, seed=5)
    assert not np.array_equal(other["S00"]["close"], universe["S00"]["close"])
    assert not np.array_equal(other["INDEX"]["close"], universe["INDEX"]["close"])


def test_universe_shape_symbols_and_validity(universe: dict[str, pd.DataFrame]) -> None:
    assert len(universe) == 31
    assert list(universe)[:3] == ["S00", "S01", "S02"]
    assert "INDEX" in universe
    index = universe["INDEX"].index
    assert (index.dayofweek < 5).all()
    for frame in universe.values():
        assert frame.index.equals(index)
        pd.testing.assert_frame_equal(validate_ohlcv(frame), frame, check_exact=True)
    data = MarketData.from_frames(universe)
    assert data.close.shape == (31, 1500)
    assert not np.isnan(data.close).any()


def test_universe_stocks_correlate_with_index(universe: dict[str, pd.DataFrame]) -> None:
    rets = pd.DataFrame({s: np.log(f["close"]).diff() for s, f in universe.items()}).dropna()
    corr = rets.corr()["INDEX"].drop("INDEX")
    assert (corr > 0.15).all()
    assert 0.3 < corr.mean() < 0.9
    # Pairwise stock correlations are positive on average (one common factor).
    stocks = rets.drop(columns="INDEX").corr().to_numpy()
    assert stocks[np.triu_indices_from(stocks, 1)].mean() > 0.1


def test_universe_betas_are_recovered() -> None:
    u = synthetic_universe(n_symbols=10, n_bars=3000, seed=1)
    rets = pd.DataFrame({s: np.log(f["close"]).diff() for s, f in u.frames.items()}).dropna()
    market = rets["INDEX"]
    for symbol, beta in u.betas.items():
        est = rets[symbol].cov(market) / market.var()
        assert est == pytest.approx(beta, abs=0.1)


def test_index_spends_long_stretches_above_and_below_its_200_ma() -> None:
    for seed in (0, 1, 2):
        u = synthetic_universe(n_symbols=5, n_bars=2000, seed=seed)
        close = u.frames[u.index_symbol]["close"].to_numpy()
        above = (close > sma(close, 200))[199:]
        assert 0.3 < above.mean() < 0.95
        assert longest_run(above) >= 150
        assert longest_run(~above) >= 60
        counts = np.bincount(u.market_regimes, minlength=2)
        assert (counts > 0).all()


def test_momentum_persists_cross_sectionally() -> None:
    """Past 6-month winners keep outperforming over the next month (positive rank IC)."""
    ics = []
    for seed in range(3):
        frames = correlated_universe(n_symbols=30, n_bars=1500, seed=seed)
        px = np.log(pd.DataFrame({s: f["close"] for s, f in frames.items() if s != "INDEX"}))
        past = px.diff(126)
        future = px.shift(-21) - px
        ic = past.rank(axis=1).corrwith(future.rank(axis=1), axis=1).iloc[126:-21:21]
        ics.append(ic.mean())
    assert np.mean(ics) > 0.01
