"""Deflated Sharpe Ratio: the paper's example, scipy cross-checks, limits and a Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats  # type: ignore[import-untyped]

from raytrader.state.deflated_sharpe import (
    DeflatedSharpe,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
)


def test_paper_numerical_example() -> None:
    # Bailey & López de Prado (2014), numerical example: 100 trials whose annualized Sharpe
    # ratios have variance 1/2, a selected annualized SR of 2.5 over 5 years of daily returns
    # (T = 1250, 250 days a year), skewness -3, kurtosis 10. Per bar: divide SR by sqrt(250)
    # and the variance by 250. The paper finds SR0 ~ 0.1132 and DSR ~ 0.9004.
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = probabilistic_sharpe_ratio(2.5 / math.sqrt(250), sr0, 1250, -3.0, 10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def scipy_dsr(returns: np.ndarray, trial_sharpes: np.ndarray) -> tuple[float, float, float]:
    """The DSR written independently with scipy.stats: (dsr, sr, sr0)."""
    n = len(trial_sharpes)
    sr = returns.mean() / returns.std(ddof=1)
    skew = stats.skew(returns)
    kurt = stats.kurtosis(returns, fisher=False)
    v = trial_sharpes.var(ddof=1)
    g = np.euler_gamma
    sr0 = math.sqrt(v) * (
        (1 - g) * stats.norm.ppf(1 - 1 / n) + g * stats.norm.ppf(1 - 1 / (n * math.e))
    )
    z = (sr - sr0) * math.sqrt(len(returns) - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    return float(stats.norm.cdf(z)), float(sr), float(sr0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_a_direct_scipy_computation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Skewed, fat-tailed returns so the skew and kurtosis terms matter.
    returns = 0.0052 + 0.01 * rng.standard_t(4, 750) - 0.004 * rng.exponential(1.0, 750)
    trials = rng.normal(0.02, 0.03, 40)
    result = deflated_sharpe_ratio(returns, trials)
    dsr, sr, sr0 = scipy_dsr(returns, trials)
    assert result.sr == pytest.approx(sr, rel=1e-12)
    assert result.sr0 == pytest.approx(sr0, rel=1e-9)
    assert result.dsr == pytest.approx(dsr, rel=1e-9, abs=1e-12)
    assert result.skew == pytest.approx(float(stats.skew(returns)), rel=1e-12)
    assert result.kurtosis == pytest.approx(float(stats.kurtosis(returns, fisher=False)), rel=1e-12)
    assert result.var_trials == pytest.approx(float(trials.var(ddof=1)), rel=1e-12)
    assert (result.n_trials, result.n_obs) == (40, 750)
    assert 0.05 < result.dsr < 0.95  # away from the flat tails of Phi


def test_psr_matches_scipy_and_its_fixed_points() -> None:
    sr, n, skew, kurt = 0.08, 500, -0.7, 6.0
    expected = stats.norm.cdf(
        (sr - 0.03) * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    )
    assert probabilistic_sharpe_ratio(sr, 0.03, n, skew, kurt) == pytest.approx(expected, rel=1e-12)
    # At the benchmark the probability is one half, whatever the moments.
    assert probabilistic_sharpe_ratio(0.1, 0.1, 30, 2.0, 9.0) == pytest.approx(0.5, abs=1e-15)
    # Negative skew and fat tails widen the estimate's spread and lower the PSR.
    assert probabilistic_sharpe_ratio(sr, 0.0, n, -2.0, 9.0) < probabilistic_sharpe_ratio(
        sr, 0.0, n, 0.0, 3.0
    )


def test_one_trial_gives_the_psr_against_zero() -> None:
    rng = np.random.default_rng(5)
    returns = rng.normal(0.0005, 0.01, 300)
    result = deflated_sharpe_ratio(returns, [1.23])
    assert result.sr0 == 0.0
    assert result.var_trials == 0.0
    assert result.n_trials == 1
    psr = probabilistic_sharpe_ratio(result.sr, 0.0, 300, result.skew, result.kurtosis)
    assert result.dsr == pytest.approx(psr, rel=1e-15)
    assert expected_max_sharpe(1, 0.5) == 0.0


def with_variance(n: int, var: float, seed: int) -> np.ndarray:
    """n draws rescaled to sample variance exactly ``var`` (ddof=1)."""
    x = np.random.default_rng(seed).normal(size=n)
    out: np.ndarray = (x - x.mean()) / x.std(ddof=1) * math.sqrt(var)
    return out


def test_more_trials_lower_the_dsr() -> None:
    rng = np.random.default_rng(11)
    returns = rng.normal(0.001, 0.01, 1000)
    results = [
        deflated_sharpe_ratio(returns, with_variance(n, 4e-4, n)) for n in (2, 10, 100, 1000)
    ]
    sr0s = [r.sr0 for r in results]
    dsrs = [r.dsr for r in results]
    assert sr0s == sorted(sr0s) and len(set(sr0s)) == 4
    assert dsrs == sorted(dsrs, reverse=True) and len(set(dsrs)) == 4
    assert all(r.var_trials == pytest.approx(4e-4, rel=1e-12) for r in results)


def test_more_dispersed_trials_lower_the_dsr() -> None:
    returns = np.random.default_rng(12).normal(0.001, 0.01, 1000)
    narrow = deflated_sharpe_ratio(returns, with_variance(50, 1e-4, 0))
    wide = deflated_sharpe_ratio(returns, with_variance(50, 9e-4, 0))
    assert wide.sr0 == pytest.approx(3 * narrow.sr0, rel=1e-12)
    assert wide.dsr < narrow.dsr


def test_expected_max_sharpe_matches_a_monte_carlo() -> None:
    # The largest per-bar Sharpe ratio among 100 zero-mean normal return series of 250 bars,
    # averaged over 1000 experiments, against the formula with each experiment's variance.
    rng = np.random.default_rng(2014)
    n_trials, n_obs, n_experiments = 100, 250, 1000
    maxima, variances = [], []
    for _ in range(n_experiments // 100):
        r = rng.normal(0.0, 0.01, size=(100, n_trials, n_obs))
        sharpes = r.mean(axis=2) / r.std(axis=2, ddof=1)
        maxima.extend(sharpes.max(axis=1))
        variances.extend(sharpes.var(axis=1, ddof=1))
    simulated = float(np.mean(maxima))
    formula = expected_max_sharpe(n_trials, float(np.mean(variances)))
    assert formula == pytest.approx(simulated, rel=0.03)
    # The formula approximates E[max of N standard normals] (2.5076 for N = 100) from above.
    assert expected_max_sharpe(100, 1.0) == pytest.approx(2.5306, abs=1e-4)


def test_expected_max_sharpe_grows_with_trials_and_scales_with_the_spread() -> None:
    values = [expected_max_sharpe(n, 1.0) for n in (2, 5, 10, 100, 10**6, 10**12)]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert expected_max_sharpe(10, 4.0) == pytest.approx(2 * expected_max_sharpe(10, 1.0))
    assert expected_max_sharpe(10, 0.0) == 0.0


def test_result_is_frozen() -> None:
    result = deflated_sharpe_ratio(np.random.default_rng(0).normal(0.001, 0.01, 50), [0.1, 0.2])
    assert isinstance(result, DeflatedSharpe)
    with pytest.raises(AttributeError):
        result.dsr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("returns", "trials", "message"),
    [
        ([0.01, -0.02, 0.03], [], "trial_sharpes is empty"),
        ([0.01], [0.1, 0.2], "at least 2 observations"),
        ([0.01] * 20, [0.1, 0.2], "zero variance"),
        ([0.0] * 20, [0.1, 0.2], "zero variance"),
        ([0.01, math.nan, 0.02], [0.1, 0.2], "returns has 1 non-finite"),
        ([0.01, -0.02, 0.03], [0.1, math.inf], "trial_sharpes has 1 non-finite"),
        ([[0.01, 0.02], [0.03, 0.04]], [0.1, 0.2], "returns must be one-dimensional"),
    ],
)
def test_degenerate_inputs_raise(returns: object, trials: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        deflated_sharpe_ratio(returns, trials)  # type: ignore[arg-type]


def test_degenerate_scalars_raise() -> None:
    with pytest.raises(ValueError, match="n_obs must be at least 2"):
        probabilistic_sharpe_ratio(0.1, 0.0, 1, 0.0, 3.0)
    with pytest.raises(ValueError, match="non-excess"):
        # Excess kurtosis passed by mistake: 1 - 0 + (0 - 1) / 4 * 4 = 0.
        probabilistic_sharpe_ratio(2.0, 0.0, 100, 0.0, 0.0)
    with pytest.raises(ValueError, match="sr must be finite"):
        probabilistic_sharpe_ratio(math.nan, 0.0, 100, 0.0, 3.0)
    with pytest.raises(ValueError, match="n_trials must be at least 1, got 0"):
        expected_max_sharpe(0, 1.0)
    with pytest.raises(ValueError, match="var_sharpe must be >= 0"):
        expected_max_sharpe(10, -1e-6)
