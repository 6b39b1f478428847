"""VaR / ES: every estimate against a direct numpy / scipy computation, plus invariants.

Reference conventions of these tests: quantiles are ``np.quantile(..., method="linear")``, the
ES is the mean of the explicitly sorted samples at or below that quantile, normal quantiles and
densities come from scipy.stats, skewness and excess kurtosis from scipy.stats with
``bias=True``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats  # type: ignore[import-untyped]

from raytrader.risk.var import (
    METHODS,
    Moments,
    ParametricMethod,
    cornish_fisher_z,
    historical_var_es,
    horizon_returns,
    parametric_var_es,
    portfolio_risk,
    sample_moments,
    scaled_var_es,
)

CONFIDENCE = st.floats(0.5, 0.999)
SAMPLES = hnp.arrays(
    np.float64,
    st.integers(1, 300),
    elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
)


def ref_var_es(x: np.ndarray, c: float) -> tuple[float, float]:
    """Historical VaR / ES by hand: linear quantile, then the sorted tail's mean."""
    ordered = np.sort(x)
    cut = np.quantile(ordered, 1 - c, method="linear")
    tail = ordered[ordered <= cut]
    return -float(cut), -float(tail.mean())


def ref_windows(r: np.ndarray, h: int) -> np.ndarray:
    """Overlapping h-bar compounded returns, one window at a time."""
    return np.array([np.prod(1 + r[t : t + h], axis=0) - 1 for t in range(len(r) - h + 1)])


def cf_quantile(z: np.ndarray, s: float, k: float) -> np.ndarray:
    q = z + (z**2 - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s**2 / 36
    return np.asarray(q)


@functools.cache
def tail_grid(c: float, m: int = 50_000) -> np.ndarray:
    """Standard normal quantiles at the midpoints of m equal cells of (0, 1 - c)."""
    return np.asarray(stats.norm.ppf((1 - c) * (np.arange(m) + 0.5) / m))


def cf_increasing(s: float, k: float) -> bool:
    """The Cornish-Fisher polynomial is increasing on the whole line (a quantile function)."""
    c1 = 1 - k / 8 + 5 * s**2 / 36
    c2 = s / 6
    c3 = k / 24 - s**2 / 18
    return c3 > 0 and 4 * c2**2 - 12 * c1 * c3 < 0


def make_returns(t: int = 500, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cov = np.array([[4.0, 1.2, -0.8], [1.2, 2.25, 0.3], [-0.8, 0.3, 1.0]]) * 1e-4
    r = rng.multivariate_normal([0.0005, 0.0002, -0.0001], cov, size=t)
    r[:, 0] += 0.01 * rng.standard_t(3, size=t) * 0.3  # fat tails in the first asset
    index = pd.date_range("2021-01-01", periods=t, freq="1D", tz="UTC")
    return pd.DataFrame(r, index=index, columns=["AAA", "BBB", "CCC"])


# --- historical_var_es -------------------------------------------------------------------


def test_historical_by_hand() -> None:
    x = np.arange(100.0) - 50  # -50..49
    # 1 - c = 0.05: position 0.05 * 99 = 4.95 between -46 and -45 -> -45.05; tail -50..-46.
    v = historical_var_es(x, 0.95)
    assert v.var == pytest.approx(45.05)
    assert v.es == pytest.approx(48.0)
    # All gains: the VaR is a negative loss, not clipped.
    assert historical_var_es(x + 1000, 0.95).var == pytest.approx(-954.95)


@settings(max_examples=100, deadline=None)
@given(SAMPLES, CONFIDENCE)
def test_historical_matches_numpy(x: np.ndarray, c: float) -> None:
    var, es = historical_var_es(x, c)
    ref_var, ref_es = ref_var_es(x, c)
    assert var == pytest.approx(ref_var, rel=1e-12, abs=1e-9)
    assert es == pytest.approx(ref_es, rel=1e-12, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(SAMPLES, CONFIDENCE, CONFIDENCE)
def test_historical_es_above_var_and_monotone(x: np.ndarray, c1: float, c2: float) -> None:
    lo, hi = sorted((c1, c2))
    a, b = historical_var_es(x, lo), historical_var_es(x, hi)
    tol = 1e-9 * (1 + float(np.abs(x).max()))
    assert a.es >= a.var - tol
    assert b.var >= a.var - tol
    assert b.es >= a.es - tol


def test_historical_matches_the_endpoint_convention() -> None:
    # The REST endpoint's one-bar VaR of an equity curve: fractions, clipped at zero.
    equity = 1e5 * np.cumprod(1 + np.random.default_rng(3).normal(0.0002, 0.01, 300))
    returns = equity[1:] / equity[:-1] - 1
    cut = float(np.quantile(returns, 0.05))
    tail = returns[returns <= cut]
    endpoint_var = max(-cut, 0.0)
    endpoint_es = max(-float(tail.mean()), endpoint_var)
    var, es = historical_var_es(returns, 0.95)
    assert max(var, 0.0) == pytest.approx(endpoint_var, rel=1e-14)
    assert max(es, 0.0) == pytest.approx(endpoint_es, rel=1e-14)


def test_historical_nan_ignored_and_bad_input() -> None:
    x = np.array([1.0, np.nan, -3.0, 2.0, np.nan, -1.0])
    assert historical_var_es(x, 0.9) == ref_var_es(x[~np.isnan(x)], 0.9)
    with pytest.raises(ValueError, match="infinities"):
        historical_var_es([1.0, -np.inf], 0.95)
    with pytest.raises(ValueError, match="no PnL"):
        historical_var_es([np.nan], 0.95)
    for c in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="confidence"):
            historical_var_es([1.0, 2.0], c)


# --- parametric --------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.floats(-1e4, 1e4), st.floats(0, 1e4), CONFIDENCE)
def test_gaussian_matches_scipy(mean: float, std: float, c: float) -> None:
    var, es = parametric_var_es(mean, std, c)
    z = stats.norm.ppf(c)
    assert var == pytest.approx(-mean + std * z, rel=1e-9, abs=1e-7)
    assert es == pytest.approx(-mean + std * stats.norm.pdf(z) / (1 - c), rel=1e-9, abs=1e-7)
    assert es >= var - 1e-7


def test_gaussian_es_is_the_tail_mean_of_the_distribution() -> None:
    # ES = -E[X | X <= q]: integrate x over the tail of N(m, s²) with scipy.
    m, s, c = 3.0, 20.0, 0.975
    q = stats.norm.ppf(1 - c, m, s)
    tail_mean = stats.norm.expect(lambda x: x, loc=m, scale=s, ub=q, conditional=True)
    assert parametric_var_es(m, s, c).es == pytest.approx(-tail_mean, rel=1e-7)


@settings(max_examples=100, deadline=None)
@given(st.floats(-1e4, 1e4), st.floats(0, 1e4), CONFIDENCE)
def test_cornish_fisher_without_skew_or_excess_kurtosis_is_gaussian(
    mean: float, std: float, c: float
) -> None:
    g = parametric_var_es(mean, std, c)
    for s, k in ((0.0, 0.0), (None, None)):
        cf = parametric_var_es(mean, std, c, skew=s, kurtosis=k, method="cornish_fisher")
        assert cf.var == pytest.approx(g.var, rel=1e-12, abs=1e-9)
        assert cf.es == pytest.approx(g.es, rel=1e-9, abs=1e-7)


@pytest.mark.parametrize(("s", "k"), [(-0.8, 3.0), (0.5, 1.0), (-0.3, 6.0), (1.0, 0.5)])
@pytest.mark.parametrize("c", [0.9, 0.95, 0.99])
def test_cornish_fisher_against_formula_and_tail_grid(s: float, k: float, c: float) -> None:
    mean, std = 0.5, 2.0
    var, es = parametric_var_es(mean, std, c, skew=s, kurtosis=k, method="cornish_fisher")
    z = stats.norm.ppf(1 - c)
    assert var == pytest.approx(-(mean + std * cf_quantile(np.array(z), s, k)), rel=1e-12)
    # ES: the mean of the Cornish-Fisher quantile over tail probabilities (0, 1 - c], by the
    # midpoint rule on a fine grid.
    grid_es = -(mean + std * cf_quantile(tail_grid(c), s, k).mean())
    assert es == pytest.approx(grid_es, rel=1e-4)


def test_cornish_fisher_negative_skew_fattens_the_loss_tail() -> None:
    g = parametric_var_es(0.0, 1.0, 0.99)
    cf = parametric_var_es(0.0, 1.0, 0.99, skew=-0.5, kurtosis=2.0, method="cornish_fisher")
    assert cf.var > g.var
    assert cf.es > g.es


@settings(max_examples=100, deadline=None)
@given(
    st.floats(-100, 100),
    st.floats(0.01, 100),
    st.floats(-1.0, 1.0),
    st.floats(0.0, 8.0),
    CONFIDENCE,
    CONFIDENCE,
)
def test_cornish_fisher_es_above_var_and_monotone(
    mean: float, std: float, s: float, k: float, c1: float, c2: float
) -> None:
    assume(cf_increasing(s, k))
    lo, hi = sorted((c1, c2))
    a = parametric_var_es(mean, std, lo, skew=s, kurtosis=k, method="cornish_fisher")
    b = parametric_var_es(mean, std, hi, skew=s, kurtosis=k, method="cornish_fisher")
    tol = 1e-9 * (1 + abs(mean) + std)
    assert a.es >= a.var - tol
    assert b.var >= a.var - tol
    assert b.es >= a.es - tol


def test_cornish_fisher_z_is_the_expansion() -> None:
    z = -1.6448536269514722
    assert cornish_fisher_z(z, 0.0, 0.0) == z
    expected = float(cf_quantile(np.array(z), -0.4, 1.5))
    assert cornish_fisher_z(z, -0.4, 1.5) == pytest.approx(expected)


def test_parametric_bad_input() -> None:
    with pytest.raises(ValueError, match="std"):
        parametric_var_es(0.0, -1.0, 0.95)
    with pytest.raises(ValueError, match="method"):
        parametric_var_es(0.0, 1.0, 0.95, method="student")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="skew"):
        parametric_var_es(0.0, 1.0, 0.95, skew=math.nan, method="cornish_fisher")


def test_sample_moments_match_scipy() -> None:
    x = make_returns()["AAA"].to_numpy()
    m = sample_moments(x)
    assert m.mean == pytest.approx(x.mean(), rel=1e-12)
    assert m.std == pytest.approx(x.std(ddof=1), rel=1e-12)
    assert m.skew == pytest.approx(stats.skew(x, bias=True), rel=1e-10)
    assert m.kurtosis == pytest.approx(stats.kurtosis(x, fisher=True, bias=True), rel=1e-10)
    flat = sample_moments(np.full(10, 0.01))
    assert flat.mean == pytest.approx(0.01)
    assert flat.std == pytest.approx(0.0, abs=1e-15)
    assert (flat.skew, flat.kurtosis) == (0.0, 0.0)


@pytest.mark.parametrize("method", ["gaussian", "cornish_fisher"])
@pytest.mark.parametrize("h", [1, 4, 10])
def test_horizon_scaling(method: ParametricMethod, h: int) -> None:
    mom = Moments(mean=0.0, std=3.0, skew=-0.6, kurtosis=2.0)
    one = scaled_var_es(mom, 0.99, 1, method)
    many = scaled_var_es(mom, 0.99, h, method)
    sqrt_h = math.sqrt(h)
    direct = parametric_var_es(
        0.0, 3.0 * sqrt_h, 0.99, skew=-0.6 / sqrt_h, kurtosis=2.0 / h, method=method
    )
    assert many == pytest.approx(direct, rel=1e-12)
    if method == "gaussian":  # zero mean: the square-root-of-time rule
        assert many.var == pytest.approx(math.sqrt(h) * one.var, rel=1e-12)
        assert many.es == pytest.approx(math.sqrt(h) * one.es, rel=1e-12)


# --- portfolio_risk ----------------------------------------------------------------------


@pytest.mark.parametrize("h", [1, 5])
def test_portfolio_risk_against_numpy(h: int) -> None:
    returns = make_returns()
    pos = np.array([50_000.0, -20_000.0, 30_000.0])
    report = portfolio_risk(returns, pos, (0.95, 0.99), horizon=h)
    r = returns.to_numpy()
    windows = ref_windows(r, h)
    assert report.horizon == h
    assert report.methods == METHODS
    assert report.observations == len(r) - h + 1
    assert report.bars == len(r)
    assert [p.name for p in report.positions] == ["AAA", "BBB", "CCC"]
    assert report.portfolio.value == pytest.approx(pos.sum())

    series = {
        str(name): (windows[:, i] * pos[i], r[:, i] * pos[i])
        for i, name in enumerate(returns.columns)
    }
    series["portfolio"] = (windows @ pos, r @ pos)
    for name, (window_pnl, bar_pnl) in series.items():
        profile = report.portfolio if name == "portfolio" else report.position(name)
        mean, std = bar_pnl.mean() * h, bar_pnl.std(ddof=1) * math.sqrt(h)
        skew = stats.skew(bar_pnl, bias=True) / math.sqrt(h)
        kurt = stats.kurtosis(bar_pnl, fisher=True, bias=True) / h
        for c in (0.95, 0.99):
            hist = profile.get("historical", c)
            assert (hist.var, hist.es) == pytest.approx(ref_var_es(window_pnl, c), rel=1e-10)
            z = stats.norm.ppf(1 - c)
            gauss = profile.get("gaussian", c)
            assert gauss.var == pytest.approx(-(mean + std * z), rel=1e-10)
            assert gauss.es == pytest.approx(-mean + std * stats.norm.pdf(z) / (1 - c), rel=1e-10)
            cf = profile.get("cornish_fisher", c)
            assert cf.var == pytest.approx(-(mean + std * cf_quantile(z, skew, kurt)), rel=1e-10)
            for m in (hist, gauss, cf):
                assert m.es >= m.var
            assert profile.get(m.method, 0.99).var >= profile.get(m.method, 0.95).var


def test_portfolio_diversifies_and_positions_are_standalone() -> None:
    returns = make_returns()
    report = portfolio_risk(returns, [10_000.0, 10_000.0, 10_000.0], (0.99,), method="gaussian")
    standalone = sum(p.get("gaussian", 0.99).var for p in report.positions)
    assert report.portfolio.get("gaussian", 0.99).var < standalone
    assert report.methods == ("gaussian",)


def test_portfolio_risk_nan_windows_dropped() -> None:
    returns = make_returns(200)
    returns.iloc[50, 1] = np.nan
    pos = {"AAA": 1e4, "BBB": 2e4, "CCC": -5e3}
    h = 3
    report = portfolio_risk(returns, pos, (0.95,), horizon=h, method="historical")
    r = returns.to_numpy()
    vec = np.array(list(pos.values()))
    keep = [t for t in range(len(r) - h + 1) if not (t <= 50 < t + h)]
    windows = np.array([np.prod(1 + r[t : t + h], axis=0) - 1 for t in keep])
    assert report.observations == len(r) - h + 1 - h
    assert report.bars == len(r) - 1
    got = report.portfolio.get("historical", 0.95)
    assert (got.var, got.es) == pytest.approx(ref_var_es(windows @ vec, 0.95), rel=1e-12)
    aaa = report.position("AAA").get("historical", 0.95)
    assert (aaa.var, aaa.es) == pytest.approx(ref_var_es(windows[:, 0] * 1e4, 0.95), rel=1e-12)


def test_portfolio_risk_one_bar_is_historical_var_es_of_returns_at_positions() -> None:
    returns = make_returns(300).to_numpy()  # a plain array: assets named "0", "1", "2"
    pos = np.array([3e3, 4e3, -1e3])
    report = portfolio_risk(returns, pos, (0.975,), method=("historical",))
    got = report.portfolio.get("historical", 0.975)
    assert (got.var, got.es) == historical_var_es(returns @ pos, 0.975)
    assert [p.name for p in report.positions] == ["0", "1", "2"]


def test_zero_position_has_no_risk_and_frame() -> None:
    returns = make_returns(100)
    report = portfolio_risk(returns, pd.Series({"CCC": 0.0, "AAA": 1e4, "BBB": 0.0}))
    for m in report.position("BBB").measures:
        assert m.var == 0.0
        assert m.es == 0.0
    frame = report.to_frame()
    assert len(frame) == 4 * 3 * 2
    assert frame["is_portfolio"].sum() == 3 * 2
    assert set(frame["method"]) == set(METHODS)


def test_horizon_returns_compound() -> None:
    r = np.array([[0.1, -0.5], [0.1, 1.0], [np.nan, 0.0]])
    out = horizon_returns(r, 2)
    assert out[0] == pytest.approx([0.21, 0.0])
    assert np.isnan(out[1, 0])
    assert out[1, 1] == pytest.approx(1.0)
    assert horizon_returns(r, 4).shape == (0, 2)


def test_portfolio_risk_bad_input() -> None:
    returns = make_returns(50)
    with pytest.raises(ValueError, match="missing"):
        portfolio_risk(returns, {"AAA": 1.0, "BBB": 1.0})
    with pytest.raises(ValueError, match="unknown"):
        portfolio_risk(returns, {"AAA": 1.0, "BBB": 1.0, "CCC": 1.0, "DDD": 1.0})
    with pytest.raises(ValueError, match="positions"):
        portfolio_risk(returns, [1.0, 2.0])
    with pytest.raises(ValueError, match="horizon"):
        portfolio_risk(returns, [1.0, 2.0, 3.0], horizon=0)
    with pytest.raises(ValueError, match="method"):
        portfolio_risk(returns, [1.0, 2.0, 3.0], method="monte_carlo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window"):
        portfolio_risk(returns, [1.0, 2.0, 3.0], horizon=51, method="historical")
    with pytest.raises(ValueError, match="infinities"):
        returns.iloc[0, 0] = np.inf
        portfolio_risk(returns, [1.0, 2.0, 3.0])
