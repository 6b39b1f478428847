"""Mean-variance weights: closed forms when no bound binds, hand-checked KKT when some do."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raytrader.risk.mean_variance import mean_variance_weights

DIAG3 = np.diag([0.04, 0.09, 0.16])


def random_problem(seed: int, n: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n + 2)) * 0.1
    cov = a @ a.T / n + 0.002 * np.eye(n)
    mu = rng.normal(0.05, 0.03, n)
    return cov, mu


def test_minimum_variance_by_hand() -> None:
    # Unbounded minimum variance: w ∝ cov^-1 1 = (25, 100/9, 6.25) ∝ (36, 16, 9).
    np.testing.assert_allclose(mean_variance_weights(DIAG3), np.array([36, 16, 9]) / 61, atol=1e-10)


def test_minimum_variance_with_a_binding_cap() -> None:
    # Asset 0 wants 36/61 > 0.5: it sits on the cap and the other two share the remaining 0.5 in
    # proportion 16 : 9 (0.32, 0.18). KKT: marginal variances cov w = (0.02, 0.0288, 0.0288):
    # equal on the free assets, lower on the capped one (it would like more).
    w = mean_variance_weights(DIAG3, max_weight=0.5)
    np.testing.assert_allclose(w, [0.5, 0.32, 0.18], atol=1e-10)
    np.testing.assert_allclose(DIAG3 @ w, [0.02, 0.0288, 0.0288], atol=1e-10)


def test_tangency_by_hand() -> None:
    # cov^-1 mu = (0.08 / 0.04, 0.09 / 0.09) = (2, 1); with risk_aversion = 1' cov^-1 mu = 3
    # the budget multiplier is zero and w = cov^-1 mu / 3.
    w = mean_variance_weights(np.diag([0.04, 0.09]), [0.08, 0.09], risk_aversion=3.0)
    np.testing.assert_allclose(w, [2 / 3, 1 / 3], atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unbounded_closed_forms(seed: int) -> None:
    cov, mu = random_problem(seed, 8)
    wide = {"min_weight": -50.0, "max_weight": 50.0}
    inv_mu, inv_one = np.linalg.solve(cov, mu), np.linalg.solve(cov, np.ones(8))
    # w ∝ cov^-1 mu, normalised, when risk_aversion = 1' cov^-1 mu.
    w = mean_variance_weights(cov, mu, risk_aversion=float(inv_mu.sum()), **wide)
    np.testing.assert_allclose(w, inv_mu / inv_mu.sum(), atol=1e-9)
    # Any risk aversion g: w = cov^-1 (mu - c 1) / g with c = (1' cov^-1 mu - g) / 1' cov^-1 1.
    g = 4.0
    c = (inv_mu.sum() - g) / inv_one.sum()
    w = mean_variance_weights(cov, mu, risk_aversion=g, **wide)
    np.testing.assert_allclose(w, (inv_mu - c * inv_one) / g, atol=1e-9)
    # Target return r: w = cov^-1 (x mu + y 1) with (x, y) fixing mu'w = r and 1'w = 1.
    r = float(np.median(mu))
    m = np.array([[mu @ inv_mu, mu @ inv_one], [inv_one @ mu, inv_one.sum()]])
    x, y = np.linalg.solve(m, [r, 1.0])
    w = mean_variance_weights(cov, mu, target_return=r, **wide)
    np.testing.assert_allclose(w, x * inv_mu + y * inv_one, atol=1e-9)


def test_risk_aversion_with_a_binding_floor() -> None:
    # Equal variances 0.04, risk aversion 2 (curvature 0.08), mu = (0.10, 0.08, -0.05).
    # Unbounded, asset 2 would be short; on its floor the others solve
    # 0.10 - 0.08 w0 = 0.08 - 0.08 w1 = c, w0 + w1 = 1: c = 0.05, w = (0.625, 0.375).
    # KKT: asset 2's marginal utility -0.05 - 0 is below c = 0.05, so it rightly stays at 0.
    w = mean_variance_weights(np.diag([0.04] * 3), [0.10, 0.08, -0.05], risk_aversion=2.0)
    np.testing.assert_allclose(w, [0.625, 0.375, 0.0], atol=1e-10)


def test_target_return_fixes_two_assets() -> None:
    # Two equations, two unknowns: 0.1 w0 + 0.2 w1 = 0.15, w0 + w1 = 1.
    cov = [[0.04, 0.01], [0.01, 0.09]]
    w = mean_variance_weights(cov, [0.1, 0.2], target_return=0.15)
    np.testing.assert_allclose(w, [0.5, 0.5], atol=1e-10)


def test_per_asset_bounds() -> None:
    w = mean_variance_weights(DIAG3, min_weight=[0.0, 0.0, 0.3], max_weight=[0.4, 1.0, 1.0])
    # Asset 2 on its floor 0.3, asset 0 on its cap 0.4, asset 1 takes the remaining 0.3.
    # KKT: marginal variances cov w = (0.016, 0.027, 0.048): the capped asset's is below the
    # free one's (it would like more), the floored asset's above (it would like less).
    np.testing.assert_allclose(w, [0.4, 0.3, 0.3], atol=1e-10)
    np.testing.assert_allclose(DIAG3 @ w, [0.016, 0.027, 0.048], atol=1e-10)


def kkt_holds(
    w: npt.NDArray[np.float64],
    grad: npt.NDArray[np.float64],
    lo: float,
    hi: float,
) -> bool:
    """Long/short bounds and the budget only: free assets share one marginal value; those on
    the floor have a higher one, those on the cap a lower one."""
    eps = 1e-7
    free = (w > lo + eps) & (w < hi - eps)
    if not free.any():
        return True
    level = float(np.median(grad[free]))
    tol = 1e-6 * max(1.0, float(np.abs(grad).max()))
    return bool(
        np.allclose(grad[free], level, atol=tol)
        and (grad[w <= lo + eps] >= level - tol).all()
        and (grad[w >= hi - eps] <= level + tol).all()
    )


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 15),
    cap=st.floats(min_value=0.2, max_value=1.0),
    aversion=st.floats(min_value=0.5, max_value=20.0),
)
def test_weights_are_feasible_and_optimal(seed: int, n: int, cap: float, aversion: float) -> None:
    cov, mu = random_problem(seed, n)
    cap = max(cap, 1.0 / n)
    w = mean_variance_weights(cov, mu, risk_aversion=aversion, max_weight=cap)
    assert w.sum() == pytest.approx(1.0, abs=1e-9)
    assert (w >= -1e-12).all()
    assert (w <= cap + 1e-12).all()
    # Gradient of the minimised objective aversion/2 w'cov w - mu'w.
    assert kkt_holds(w, aversion * cov @ w - mu, 0.0, cap)
    # No random feasible portfolio does better.
    utility = mu @ w - aversion / 2 * w @ cov @ w
    others = np.random.default_rng(seed).dirichlet(np.ones(n), 50)
    others = others[(others <= cap).all(axis=1)]
    utilities = others @ mu - aversion / 2 * np.einsum("ki,ij,kj->k", others, cov, others)
    assert (utilities <= utility + 1e-12).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_weight": 0.5}, "bounds cannot sum to 1"),
        ({"max_weight": 0.3}, "bounds cannot sum to 1"),
        ({"min_weight": [0.0, 0.6, 0.0], "max_weight": 0.5}, "above max_weight .* asset 1"),
        ({"max_weight": [1.0, 1.0]}, "max_weight must be a scalar or have shape"),
        ({"min_weight": -np.inf}, "min_weight must be finite"),
        ({"target_return": 0.1}, "need expected_returns"),
        ({"risk_aversion": 2.0}, "need expected_returns"),
        ({"expected_returns": [0.1, 0.2]}, "expected_returns must have shape"),
        ({"expected_returns": [0.1, np.nan, 0.2]}, "expected_returns contain NaN"),
        ({"expected_returns": [0.1, 0.2, 0.3], "risk_aversion": 0.0}, "risk_aversion"),
        (
            {"expected_returns": [0.1, 0.2, 0.3], "risk_aversion": 1.0, "target_return": 0.2},
            "not both",
        ),
        (
            # With caps of 0.5 the best reachable is 0.5 * 0.3 + 0.5 * 0.2 = 0.25.
            {"expected_returns": [0.1, 0.2, 0.3], "target_return": 0.26, "max_weight": 0.5},
            r"outside \[0.15, 0.25\]",
        ),
    ],
)
def test_bad_inputs_are_named(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        mean_variance_weights(DIAG3, **kwargs)  # type: ignore[arg-type]
