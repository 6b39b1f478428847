"""Mean-variance weights: fully invested, with per-asset bounds."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from raytrader.risk.covariance import check_covariance

# Weights this close to a bound count as on it when the solver's answer is polished.
_ACTIVE_TOL = 1e-7
_FEAS_TOL = 1e-9

Bounds = float | npt.ArrayLike


def mean_variance_weights(
    cov: npt.ArrayLike,
    expected_returns: npt.ArrayLike | None = None,
    *,
    risk_aversion: float | None = None,
    target_return: float | None = None,
    min_weight: Bounds = 0.0,
    max_weight: Bounds = 1.0,
) -> npt.NDArray[np.float64]:
    """Fully invested weights within ``[min_weight, max_weight]`` (scalars or per asset) that:

    - maximise ``mu'w - risk_aversion/2 * w'cov w`` (``risk_aversion`` defaults to 1), or
    - minimise ``w'cov w`` subject to ``mu'w = target_return`` when that is given, or
    - minimise ``w'cov w`` when ``expected_returns`` is None (minimum variance).

    ``cov`` and ``expected_returns`` must be on the same scale (both per period or both annual).
    Solved with SLSQP (scipy, imported here), then polished to the exact solution of the KKT
    system on the assets found off their bounds. ValueError on bad or infeasible inputs.
    """
    c = check_covariance(cov)
    n = c.shape[0]
    lo = _bounds(min_weight, n, "min_weight")
    hi = _bounds(max_weight, n, "max_weight")
    if (lo > hi).any():
        bad = int(np.argmax(lo > hi))
        raise ValueError(f"min_weight {lo[bad]} is above max_weight {hi[bad]} for asset {bad}")
    if lo.sum() > 1 + _FEAS_TOL or hi.sum() < 1 - _FEAS_TOL:
        raise ValueError(
            f"bounds cannot sum to 1: min_weight sums to {lo.sum():g}, max_weight to {hi.sum():g}"
        )
    if risk_aversion is not None and target_return is not None:
        raise ValueError("give risk_aversion or target_return, not both")

    eq_rows = [np.ones(n)]
    eq_rhs = [1.0]
    linear = np.zeros(n)
    quad = c
    if expected_returns is None:
        if target_return is not None or risk_aversion is not None:
            raise ValueError("target_return and risk_aversion need expected_returns")
    else:
        mu = np.asarray(expected_returns, dtype=np.float64)
        if mu.shape != (n,):
            raise ValueError(
                f"expected_returns must have shape ({n},) to match cov, got {mu.shape}"
            )
        if not np.isfinite(mu).all():
            raise ValueError("expected_returns contain NaN or inf")
        if target_return is not None:
            low, high = _return_range(mu, lo, hi)
            if not low - _FEAS_TOL <= target_return <= high + _FEAS_TOL:
                raise ValueError(
                    f"target_return {target_return:g} is outside [{low:g}, {high:g}], "
                    "the returns reachable within the bounds"
                )
            eq_rows.append(mu)
            eq_rhs.append(float(target_return))
        else:
            gamma = 1.0 if risk_aversion is None else float(risk_aversion)
            if not (gamma > 0 and np.isfinite(gamma)):
                raise ValueError(f"risk_aversion must be positive and finite, got {risk_aversion}")
            quad = gamma * c
            linear = -mu
    a = np.vstack(eq_rows)
    rhs = np.asarray(eq_rhs)
    w = _slsqp(quad, linear, a, rhs, lo, hi)
    polished = _polish(quad, linear, a, rhs, lo, hi, w)
    return polished if polished is not None else np.clip(w, lo, hi)


def _bounds(value: Bounds, n: int, name: str) -> npt.NDArray[np.float64]:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a scalar or have shape ({n},), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (a wide bound such as -10 allows free shorts)")
    return arr


def _return_range(
    mu: npt.NDArray[np.float64], lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64]
) -> tuple[float, float]:
    """Lowest and highest ``mu'w`` over the bounded, fully invested weights (greedy fill)."""

    def fill(order: npt.NDArray[np.intp]) -> float:
        w = lo.copy()
        left = 1.0 - lo.sum()
        for i in order:
            take = min(hi[i] - lo[i], left)
            w[i] += take
            left -= take
        return float(mu @ w)

    order = np.argsort(mu)
    return fill(order), fill(order[::-1])


def _slsqp(
    quad: npt.NDArray[np.float64],
    linear: npt.NDArray[np.float64],
    a: npt.NDArray[np.float64],
    rhs: npt.NDArray[np.float64],
    lo: npt.NDArray[np.float64],
    hi: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    try:
        from scipy.optimize import minimize  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "mean_variance_weights needs scipy (installed with scikit-learn)"
        ) from exc

    def f(w: npt.NDArray[np.float64]) -> float:
        return float(0.5 * w @ quad @ w + linear @ w)

    def grad(w: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(quad @ w + linear, dtype=np.float64)

    start = np.clip(np.full(len(lo), 1.0 / len(lo)), lo, hi)
    constraint: dict[str, Any] = {
        "type": "eq",
        "fun": lambda w: a @ w - rhs,
        "jac": lambda w: a,
    }
    result = minimize(
        f,
        start,
        jac=grad,
        bounds=list(zip(lo, hi, strict=True)),
        constraints=[constraint],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 500},
    )
    w = np.asarray(result.x, dtype=np.float64)
    if not np.allclose(a @ w, rhs, atol=1e-6):
        raise RuntimeError(f"mean_variance_weights: the solver failed ({result.message})")
    return w


def _polish(
    quad: npt.NDArray[np.float64],
    linear: npt.NDArray[np.float64],
    a: npt.NDArray[np.float64],
    rhs: npt.NDArray[np.float64],
    lo: npt.NDArray[np.float64],
    hi: npt.NDArray[np.float64],
    w: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64] | None:
    """Solve the KKT system exactly with the solver's active bounds held fixed; None unless the
    answer is feasible and its bound multipliers have the right signs (then it is optimal)."""
    at_lo = w <= lo + _ACTIVE_TOL
    at_hi = (w >= hi - _ACTIVE_TOL) & ~at_lo
    free = ~(at_lo | at_hi)
    fixed = np.where(at_lo, lo, np.where(at_hi, hi, 0.0))
    k, m = int(free.sum()), a.shape[0]
    x = fixed.copy()
    if k:
        kkt = np.zeros((k + m, k + m))
        kkt[:k, :k] = quad[np.ix_(free, free)]
        kkt[:k, k:] = a[:, free].T
        kkt[k:, :k] = a[:, free]
        top = -linear[free] - quad[np.ix_(free, ~free)] @ fixed[~free]
        bottom = rhs - a[:, ~free] @ fixed[~free]
        try:
            sol = np.linalg.solve(kkt, np.concatenate([top, bottom]))
        except np.linalg.LinAlgError:
            return None
        x[free] = sol[:k]
        nu = sol[k:]
    else:
        nu = np.linalg.lstsq(a.T, -(quad @ x + linear), rcond=None)[0]
    if not np.allclose(a @ x, rhs, atol=_FEAS_TOL):
        return None
    if (x < lo - _FEAS_TOL).any() or (x > hi + _FEAS_TOL).any():
        return None
    # Stationarity: grad + a'nu = z, with z >= 0 on lower bounds and z <= 0 on upper ones.
    z = quad @ x + linear + a.T @ nu
    tol = 1e-9 * max(1.0, float(np.max(np.abs(quad @ x + linear))))
    if (z[at_lo] < -tol).any() or (z[at_hi] > tol).any():
        return None
    return np.clip(x, lo, hi)
