"""Risk parity: hand-computed weights, equal contributions on random covariances."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raytrader.risk.risk_parity import risk_contributions, risk_parity_weights


def cov_from(vols: list[float], corr: list[list[float]]) -> npt.NDArray[np.float64]:
    v = np.asarray(vols)
    return np.asarray(corr) * np.outer(v, v)


def random_cov(seed: int, n: int, noise: float = 0.05) -> npt.NDArray[np.float64]:
    """A factor-model covariance: correlated, SPD, volatilities spread over two decades."""
    rng = np.random.default_rng(seed)
    loadings = rng.normal(size=(n, max(1, n // 3)))
    corr_like = loadings @ loadings.T + noise * np.eye(n)
    d = np.sqrt(np.diag(corr_like))
    vols = np.exp(rng.uniform(np.log(0.01), np.log(1.0), n))
    return np.asarray(corr_like / np.outer(d, d) * np.outer(vols, vols))


@pytest.mark.parametrize("rho", [-0.9, -0.3, 0.0, 0.5, 0.99])
def test_two_assets_are_inverse_vol_whatever_the_correlation(rho: float) -> None:
    # w ∝ (1/0.2, 1/0.3) = (5, 10/3): (0.6, 0.4).
    w = risk_parity_weights(cov_from([0.2, 0.3], [[1, rho], [rho, 1]]))
    np.testing.assert_allclose(w, [0.6, 0.4], atol=1e-12)


def test_uncorrelated_assets_are_inverse_vol() -> None:
    # w ∝ (10, 5, 2.5): (4/7, 2/7, 1/7).
    w = risk_parity_weights(np.diag(np.square([0.1, 0.2, 0.4])))
    np.testing.assert_allclose(w, [4 / 7, 2 / 7, 1 / 7], atol=1e-12)


def test_a_correlated_pair_and_a_loner_by_hand() -> None:
    # Equal vols; assets 0 and 1 correlated 0.44, asset 2 independent. By symmetry w = (a, a, c):
    # contributions a^2 (1 + 0.44) and c^2, equal when c = 1.2 a; a + a + 1.2 a = 1.
    corr = [[1, 0.44, 0], [0.44, 1, 0], [0, 0, 1]]
    w = risk_parity_weights(cov_from([0.15, 0.15, 0.15], corr))
    np.testing.assert_allclose(w, [0.3125, 0.3125, 0.375], atol=1e-12)


def test_budgets_by_hand() -> None:
    # Uncorrelated, equal vols: w_i^2 ∝ b_i, so w ∝ (sqrt(0.8), sqrt(0.2)) = (2, 1).
    w = risk_parity_weights(np.diag([0.04, 0.04]), budgets=[0.8, 0.2])
    np.testing.assert_allclose(w, [2 / 3, 1 / 3], atol=1e-12)
    # Budgets need not sum to 1.
    np.testing.assert_allclose(risk_parity_weights(np.diag([0.04, 0.04]), [4, 1]), w, atol=1e-12)


def test_contributions_by_hand() -> None:
    cov = np.diag([0.04, 0.16])
    # Variance 0.25 * 0.04 + 0.25 * 0.16 = 0.05; w_i (cov w)_i = (0.01, 0.04).
    np.testing.assert_allclose(risk_contributions([0.5, 0.5], cov), [0.2, 0.8])
    absolute = risk_contributions([0.5, 0.5], cov, relative=False)
    np.testing.assert_allclose(absolute, np.array([0.01, 0.04]) / np.sqrt(0.05))
    assert absolute.sum() == pytest.approx(np.sqrt(0.05))


@pytest.mark.parametrize(("seed", "n"), [(0, 3), (1, 10), (2, 30), (3, 30)])
def test_equal_contributions_on_random_covariances(seed: int, n: int) -> None:
    cov = random_cov(seed, n)
    w = risk_parity_weights(cov)
    assert (w > 0).all()
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(risk_contributions(w, cov), 1 / n, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 30),
    noise=st.floats(min_value=1e-3, max_value=1.0),
    budgeted=st.booleans(),
)
def test_contributions_match_the_budgets(seed: int, n: int, noise: float, budgeted: bool) -> None:
    cov = random_cov(seed, n, noise)
    budgets = np.random.default_rng(seed + 1).uniform(0.1, 1.0, n) if budgeted else np.ones(n)
    w = risk_parity_weights(cov, budgets if budgeted else None)
    assert (w > 0).all()
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(risk_contributions(w, cov), budgets / budgets.sum(), atol=1e-6)
    # Only the correlations and the ratios of volatilities matter: scaling cov changes nothing.
    np.testing.assert_allclose(
        risk_parity_weights(7.0 * cov, budgets if budgeted else None), w, atol=1e-9
    )


@pytest.mark.parametrize(
    ("cov", "match"),
    [
        ([[0.04, 0.0]], "square"),
        ([[0.04, 0.01], [0.0, 0.09]], "symmetric"),
        ([[0.04, np.nan], [np.nan, 0.09]], "NaN"),
        ([[0.0, 0.0], [0.0, 0.09]], "variance of asset 0"),
        ([[0.04, 0.07], [0.07, 0.09]], "positive definite"),  # correlation 7/6
    ],
)
def test_bad_covariances_are_named(cov: list[list[float]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        risk_parity_weights(cov)


def test_bad_budgets_and_weights_are_named() -> None:
    cov = np.diag([0.04, 0.09])
    with pytest.raises(ValueError, match="budgets"):
        risk_parity_weights(cov, [1.0, 0.0])
    with pytest.raises(ValueError, match="budgets"):
        risk_parity_weights(cov, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="weights"):
        risk_contributions([1.0], cov)
    with pytest.raises(ValueError, match="weights are all zero"):
        risk_contributions([0.0, 0.0], cov)
