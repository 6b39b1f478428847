"""Risk parity: long-only weights whose assets contribute equal (or budgeted) shares of risk."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from raytrader.risk.covariance import check_covariance, covariance

__all__ = ["covariance", "risk_contributions", "risk_parity_weights"]

_MAX_ITER = 200
_TOL = 1e-12
# Squared Newton decrement (about twice the gap to the optimum) below which the objective's
# rounding noise would swamp a line search: take full steps...
_FULL_STEP = 1e-8
# ...and below which one more full step is as good as y gets (ill-conditioned correlations).
_DONE = 1e-18


def risk_contributions(
    weights: npt.ArrayLike, cov: npt.ArrayLike, *, relative: bool = True
) -> npt.NDArray[np.float64]:
    """Each asset's contribution to portfolio risk, ``w_i (cov w)_i``.

    ``relative=True``: shares of the variance (they sum to 1). ``relative=False``: contributions
    to the volatility (they sum to ``sqrt(w' cov w)``).
    """
    c = check_covariance(cov)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (c.shape[0],):
        raise ValueError(f"weights must have shape ({c.shape[0]},) to match cov, got {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("weights contain NaN or inf")
    marginal = c @ w
    variance = float(w @ marginal)
    if variance <= 0:
        raise ValueError("portfolio variance is zero: weights are all zero")
    contrib = w * marginal
    return contrib / variance if relative else contrib / math.sqrt(variance)


def risk_parity_weights(
    cov: npt.ArrayLike, budgets: npt.ArrayLike | None = None
) -> npt.NDArray[np.float64]:
    """Long-only, fully invested weights with ``w_i (cov w)_i`` proportional to ``budgets``
    (equal risk contribution when ``budgets`` is None).

    Solves Spinu's convex problem ``min 1/2 y'Cy - sum b_i log y_i`` (C the correlation matrix)
    by damped Newton steps; its minimiser, rescaled by the volatilities and normalised, is the
    unique answer. Raises ValueError on a bad ``cov`` or ``budgets``.
    """
    c = check_covariance(cov)
    n = c.shape[0]
    if budgets is None:
        b = np.full(n, 1.0 / n)
    else:
        b = np.asarray(budgets, dtype=np.float64)
        if b.shape != (n,):
            raise ValueError(f"budgets must have shape ({n},) to match cov, got {b.shape}")
        if not (np.isfinite(b).all() and (b > 0).all()):
            raise ValueError("budgets must be finite and positive")
        b = b / b.sum()
    vol = np.sqrt(np.diag(c))
    corr = c / np.outer(vol, vol)

    def objective(y: npt.NDArray[np.float64]) -> float:
        return float(0.5 * y @ corr @ y - b @ np.log(y))

    # At the optimum y'Cy = sum(b) = 1: start on that scale.
    y = b / math.sqrt(float(b @ corr @ b))
    for _ in range(_MAX_ITER):
        cy = corr @ y
        if np.max(np.abs(y * cy / b - 1.0)) <= _TOL:
            break
        grad = cy - b / y
        step = -np.linalg.solve(corr + np.diag(b / y**2), grad)
        decrement = -float(grad @ step)
        t = 1.0
        # Stay inside y > 0, then backtrack until the objective falls enough (Armijo).
        while (y + t * step <= 0).any():
            t *= 0.5
        if decrement > _FULL_STEP:
            f0 = objective(y)
            while objective(y + t * step) > f0 - 1e-4 * t * decrement and t > 1e-3:
                t *= 0.5
        y = y + t * step
        if decrement <= _DONE:
            break
    else:
        raise RuntimeError(  # pragma: no cover - Newton on this strictly convex problem converges
            f"risk_parity_weights did not converge in {_MAX_ITER} iterations"
        )
    w = y / vol
    return np.asarray(w / w.sum(), dtype=np.float64)
