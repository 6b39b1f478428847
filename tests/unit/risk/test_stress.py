"""Stress tests: scenarios, Monte Carlo and factor shocks against direct numpy computations.

Reference conventions: quantiles are ``np.quantile(..., method="linear")``, the ES is the mean
of the explicitly sorted samples at or below that quantile.
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from raytrader.risk.stress import (
    PnLDistribution,
    estimate_betas,
    factor_shock,
    historical_scenarios,
    monte_carlo,
)


def ref_var_es(x: np.ndarray, c: float) -> tuple[float, float]:
    ordered = np.sort(x)
    cut = np.quantile(ordered, 1 - c, method="linear")
    return -float(cut), -float(ordered[ordered <= cut].mean())


def make_returns(t: int = 400, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cov = np.array([[2.25, 0.9, 0.3], [0.9, 1.0, -0.2], [0.3, -0.2, 0.64]]) * 1e-4
    r = rng.multivariate_normal([0.0004, 0.0001, 0.0002], cov, size=t)
    index = pd.date_range("2022-01-03", periods=t, freq="1D", tz="UTC")
    return pd.DataFrame(r, index=index, columns=["X", "Y", "Z"])


POS = np.array([40_000.0, 25_000.0, -10_000.0])


# --- PnLDistribution ---------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.integers(2, 200),
        elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    )
)
def test_distribution_matches_numpy(x: np.ndarray) -> None:
    d = PnLDistribution.from_samples(x)
    q = np.quantile(x, [0.01, 0.05, 0.5, 0.95, 0.99], method="linear")
    assert d.n == len(x)
    assert d.mean == pytest.approx(x.mean(), rel=1e-12, abs=1e-6)
    assert d.std == pytest.approx(x.std(ddof=1), rel=1e-9, abs=1e-6)
    assert [d.q01, d.q05, d.q50, d.q95, d.q99] == pytest.approx(q, rel=1e-12, abs=1e-9)
    assert (d.var95, d.es95) == pytest.approx(ref_var_es(x, 0.95), rel=1e-12, abs=1e-9)
    assert (d.var99, d.es99) == pytest.approx(ref_var_es(x, 0.99), rel=1e-12, abs=1e-9)
    assert d.es99 >= d.var99 - 1e-6


def test_distribution_of_one_sample_and_nan() -> None:
    d = PnLDistribution.from_samples([np.nan, -5.0])
    assert (d.n, d.mean, d.std, d.q50, d.var99, d.es99) == (1, -5.0, 0.0, -5.0, 5.0, 5.0)
    with pytest.raises(ValueError, match="no PnL"):
        PnLDistribution.from_samples([])


# --- historical scenarios ----------------------------------------------------------------


def all_windows_pnl(r: np.ndarray, pos: np.ndarray, h: int) -> np.ndarray:
    """Per-asset PnL of every h-bar window, one at a time (T-h+1 x N)."""
    return np.array([(np.prod(1 + r[t : t + h], axis=0) - 1) * pos for t in range(len(r) - h + 1)])


def ref_worst(pnl: np.ndarray, h: int, k: int) -> list[int]:
    """The k worst non-overlapping windows' starts: repeatedly the minimum of what is left."""
    left = {t: float(v) for t, v in enumerate(pnl) if not np.isnan(v)}
    chosen: list[int] = []
    while left and len(chosen) < k:
        t = min(left, key=lambda s: (left[s], s))
        chosen.append(t)
        left = {s: v for s, v in left.items() if abs(s - t) >= h}
    return chosen


def test_scenarios_find_a_planted_crash() -> None:
    returns = make_returns()
    returns.iloc[300:305] = -0.04  # five bars of -4% in every asset
    returns.iloc[100:105, 0] = 0.05  # a rally of the long X, a gain: never a worst window
    h = 5
    scenarios = historical_scenarios(returns, POS, window=h, worst=4)
    crash = scenarios[0]
    assert (crash.rank, crash.start_bar, crash.end_bar) == (1, 300, 304)
    assert crash.start == returns.index[300]
    assert crash.end == returns.index[304]
    expected = POS * ((1 - 0.04) ** 5 - 1)
    assert crash.pnl == pytest.approx(expected.sum(), rel=1e-12)
    assert list(crash.position_pnl.values()) == pytest.approx(expected, rel=1e-12)
    assert list(crash.position_pnl) == ["X", "Y", "Z"]

    per_asset = all_windows_pnl(returns.to_numpy(), POS, h)
    pnl = per_asset.sum(axis=1)
    assert [s.start_bar for s in scenarios] == ref_worst(pnl, h, 4)
    assert [s.rank for s in scenarios] == [1, 2, 3, 4]
    for s in scenarios:
        assert s.pnl == pytest.approx(pnl[s.start_bar], rel=1e-12)
        assert sum(s.position_pnl.values()) == pytest.approx(s.pnl, rel=1e-9)
        assert s.end_bar == s.start_bar + h - 1
        assert not 100 <= s.start_bar <= 104
    assert [s.pnl for s in scenarios] == sorted(s.pnl for s in scenarios)
    starts = sorted(s.start_bar for s in scenarios)
    assert all(b - a >= h for a, b in itertools.pairwise(starts))


def test_scenarios_of_a_short_book_find_the_rally() -> None:
    returns = make_returns()
    returns.iloc[120:123] = 0.06
    scenarios = historical_scenarios(returns.to_numpy(), -np.abs(POS), window=3, worst=1)
    assert len(scenarios) == 1
    assert (scenarios[0].start_bar, scenarios[0].start, scenarios[0].end) == (120, None, None)
    assert scenarios[0].pnl == pytest.approx((-np.abs(POS) * (1.06**3 - 1)).sum())


def test_scenarios_skip_missing_and_run_out() -> None:
    r = np.array([[-0.1], [np.nan], [-0.2], [0.01], [0.02], [-0.05]])
    scenarios = historical_scenarios(r, [100.0], window=2, worst=10)
    # Windows: [0-1] and [1-2] touch the NaN; [2-3] -19.2, [3-4] +3.02, [4-5] -3.1.
    assert [s.start_bar for s in scenarios] == [2, 4]
    assert scenarios[0].pnl == pytest.approx(100 * (0.8 * 1.01 - 1))
    assert historical_scenarios(r, [100.0], window=7) == []
    with pytest.raises(ValueError, match="worst"):
        historical_scenarios(r, [100.0], window=2, worst=0)


# --- Monte Carlo -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["bootstrap", "normal"])
def test_monte_carlo_is_reproducible(method: Literal["bootstrap", "normal"]) -> None:
    returns = make_returns()
    a = monte_carlo(returns, POS, 5, 2_000, method=method, seed=11)
    b = monte_carlo(returns, POS, 5, 2_000, method=method, seed=np.random.default_rng(11))
    c = monte_carlo(returns, POS, 5, 2_000, method=method, seed=12)
    np.testing.assert_array_equal(a.pnl, b.pnl)
    np.testing.assert_array_equal(a.position_pnl, b.position_pnl)
    assert a.summary == b.summary
    assert not np.array_equal(a.pnl, c.pnl)
    assert a.pnl.shape == (2_000,)
    assert a.position_pnl.shape == (2_000, 3)
    np.testing.assert_allclose(a.position_pnl.sum(axis=1), a.pnl, rtol=1e-12)
    assert a.summary == PnLDistribution.from_samples(a.pnl)
    assert (a.names, a.horizon, a.method) == (("X", "Y", "Z"), 5, method)


def test_bootstrap_paths_compound_resampled_rows() -> None:
    returns = make_returns(50)
    r = returns.to_numpy()
    out = monte_carlo(returns, POS, 3, 20, method="bootstrap", seed=5)
    picks = np.random.default_rng(5).integers(0, len(r), size=(20, 3))
    expected = (np.prod(1 + r[picks], axis=1) - 1) * POS
    np.testing.assert_allclose(out.position_pnl, expected, rtol=1e-12)


def test_bootstrap_quantiles_converge_to_the_historical_ones() -> None:
    returns = make_returns(250)
    history = np.sort(returns.to_numpy() @ POS)
    out = monte_carlo(returns, POS, 1, 200_000, method="bootstrap", seed=0)
    n = len(history)
    qs = (0.01, 0.05, 0.5, 0.95, 0.99)
    got = (out.summary.q01, out.summary.q05, out.summary.q50, out.summary.q95, out.summary.q99)
    for p, q in zip(qs, got, strict=True):
        # The bootstrap draws the empirical distribution: its p-quantile lies within the order
        # statistics around the historical p-quantile (sampling error: ~0.05% in probability).
        lo = history[max(int(np.floor(p * (n - 1))) - 1, 0)]
        hi = history[min(int(np.ceil(p * (n - 1))) + 1, n - 1)]
        assert lo <= q <= hi
        assert q == pytest.approx(np.quantile(history, p), abs=hi - lo)
    se = history.std() / np.sqrt(200_000)
    assert abs(out.summary.mean - history.mean()) < 5 * se


def test_normal_monte_carlo_matches_mean_and_covariance() -> None:
    returns = make_returns()
    r = returns.to_numpy()
    mean, cov = r.mean(axis=0), np.cov(r, rowvar=False, ddof=1)
    n = 200_000
    out = monte_carlo(returns, POS, 1, n, method="normal", seed=3)
    sim = out.position_pnl / POS  # the simulated one-bar returns
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(sim.mean(axis=0) - mean) < 5 * sd / np.sqrt(n))
    np.testing.assert_allclose(np.cov(sim, rowvar=False), cov, rtol=0.02, atol=0.02 * sd.max() ** 2)
    assert out.summary.mean == pytest.approx(mean @ POS, abs=5 * np.sqrt(POS @ cov @ POS / n))
    assert out.summary.std == pytest.approx(np.sqrt(POS @ cov @ POS), rel=0.01)


def test_normal_monte_carlo_compounds_over_the_horizon() -> None:
    returns = make_returns()
    r = returns.to_numpy()
    h, n = 10, 100_000
    out = monte_carlo(returns, POS, h, n, method="normal", seed=4)
    # Independent bars: E[prod(1 + r)] = (1 + mean)^h per asset.
    expected = POS * ((1 + r.mean(axis=0)) ** h - 1)
    sd = out.position_pnl.std(axis=0)
    assert np.all(np.abs(out.position_pnl.mean(axis=0) - expected) < 5 * sd / np.sqrt(n))


def test_monte_carlo_bad_input() -> None:
    returns = make_returns(10)
    with pytest.raises(ValueError, match="n_paths"):
        monte_carlo(returns, POS, 1, 0)
    with pytest.raises(ValueError, match="method"):
        monte_carlo(returns, POS, 1, 10, method="garch")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="horizon"):
        monte_carlo(returns, POS, 0, 10)


# --- factor shocks -----------------------------------------------------------------------


def test_estimate_betas_is_ols() -> None:
    rng = np.random.default_rng(9)
    t = 300
    factor = pd.Series(rng.normal(0, 0.01, t), index=pd.RangeIndex(t))
    true_betas = np.array([1.5, -0.4, 0.0])
    noise = rng.normal(0, 0.002, (t, 3))
    returns = pd.DataFrame(0.0003 + np.outer(factor, true_betas) + noise, columns=["A", "B", "C"])
    betas = estimate_betas(returns, factor)
    design = np.column_stack([np.ones(t), factor.to_numpy()])
    ref = np.linalg.lstsq(design, returns.to_numpy(), rcond=None)[0][1]
    np.testing.assert_allclose(betas, ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(betas, true_betas, atol=0.05)

    # Missing values: each asset's regression uses the rows where it and the factor are known.
    returns.iloc[:20, 1] = np.nan
    shuffled = factor.sample(frac=1.0, random_state=1)  # aligned by label, not by position
    shuffled.iloc[0] = np.nan
    gap = int(shuffled.index[0])
    betas = estimate_betas(returns, shuffled)
    for i in range(3):
        y = returns.iloc[:, i].to_numpy()
        known = ~np.isnan(y) & (np.arange(t) != gap)
        d = np.column_stack([np.ones(known.sum()), factor.to_numpy()[known]])
        assert betas[i] == pytest.approx(np.linalg.lstsq(d, y[known], rcond=None)[0][1], rel=1e-10)


def test_estimate_betas_degenerate() -> None:
    r = np.array([[0.01, np.nan], [0.02, 0.01], [0.03, np.nan]])
    betas = estimate_betas(r, np.array([0.0, 0.01, 0.02]))
    assert betas[0] == pytest.approx(1.0)
    assert np.isnan(betas[1])  # one joint observation
    assert np.isnan(estimate_betas(r, np.zeros(3))[0])  # a constant factor
    with pytest.raises(ValueError, match="factor returns"):
        estimate_betas(r, np.zeros(4))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-1e6, 1e6), st.floats(-5, 5)),
        min_size=1,
        max_size=10,
    ),
    st.lists(st.floats(-1, 1), min_size=1, max_size=5),
)
def test_factor_shock_is_the_sum(rows: list[tuple[float, float]], shocks: list[float]) -> None:
    pos = np.array([p for p, _ in rows])
    betas = np.array([b for _, b in rows])
    out = factor_shock(pos, betas, shocks)
    for j, s in enumerate(shocks):
        terms = [p * b * s for p, b in rows]
        assert out.position_pnl[j] == pytest.approx(terms, rel=1e-12, abs=1e-9)
        assert out.pnl[j] == pytest.approx(sum(terms), rel=1e-9, abs=1e-6)


def test_factor_shock_scalar_and_distribution() -> None:
    out = factor_shock([1e4, -5e3], [1.2, 0.8], -0.1)
    assert out.pnl.tolist() == pytest.approx([1e4 * 1.2 * -0.1 + -5e3 * 0.8 * -0.1])
    history = np.random.default_rng(2).normal(0, 0.01, 500)
    dist = factor_shock([1e4, -5e3], [1.2, 0.8], history).distribution()
    pnl = history * (1e4 * 1.2 - 5e3 * 0.8)
    assert (dist.var99, dist.es99) == pytest.approx(ref_var_es(pnl, 0.99), rel=1e-9)
    with pytest.raises(ValueError, match="betas"):
        factor_shock([1.0], [1.0, 2.0], 0.1)
    with pytest.raises(ValueError, match="betas"):
        factor_shock([1.0], [np.nan], 0.1)
