"""Stress tests of today's positions: historical scenarios, Monte Carlo and factor shocks.

``returns`` and ``positions`` follow :mod:`raytrader.risk.var` (simple returns T x N, signed
currency positions, NaN = missing). PnL is in currency; VaR / ES are positive losses with the
quantile convention of :func:`raytrader.risk.var.historical_var_es`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from raytrader.risk.var import (
    FloatArray,
    PositionsLike,
    ReturnsLike,
    check_horizon,
    historical_var_es,
    horizon_returns,
    position_vector,
    returns_matrix,
)

QUANTILES = (0.01, 0.05, 0.5, 0.95, 0.99)


@dataclass(frozen=True)
class PnLDistribution:
    """Summary of PnL samples: count, mean, std (ddof=1; 0 for one sample), the 1/5/50/95/99%
    quantiles (numpy's linear interpolation) and VaR / ES at 95% and 99% (positive losses)."""

    n: int
    mean: float
    std: float
    q01: float
    q05: float
    q50: float
    q95: float
    q99: float
    var95: float
    es95: float
    var99: float
    es99: float

    @classmethod
    def from_samples(cls, pnl: npt.ArrayLike) -> PnLDistribution:
        """The summary of the finite samples (NaN ignored; at least one needed)."""
        x = np.asarray(pnl, dtype=np.float64).reshape(-1)
        x = x[~np.isnan(x)]
        if x.size == 0:
            raise ValueError("no PnL samples")
        if np.isinf(x).any():
            raise ValueError("PnL samples hold infinities")
        q = np.quantile(x, QUANTILES)
        v95, v99 = historical_var_es(x, 0.95), historical_var_es(x, 0.99)
        return cls(
            n=int(x.size),
            mean=float(x.mean()),
            std=float(x.std(ddof=1)) if x.size > 1 else 0.0,
            q01=float(q[0]),
            q05=float(q[1]),
            q50=float(q[2]),
            q95=float(q[3]),
            q99=float(q[4]),
            var95=v95.var,
            es95=v95.es,
            var99=v99.var,
            es99=v99.es,
        )


# --- historical scenarios ----------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A historical window replayed on today's positions.

    ``start_bar`` / ``end_bar`` are the row positions (inclusive) of the window's first and last
    returns; ``start`` / ``end`` their labels when the returns have a DatetimeIndex. A return is
    labelled by the bar it ends on, so the loss runs from the close before ``start`` to the close
    at ``end``. ``position_pnl`` sums to ``pnl``.
    """

    rank: int  # 1 = the worst
    start_bar: int
    end_bar: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    pnl: float
    position_pnl: dict[str, float]


def historical_scenarios(
    returns: ReturnsLike, positions: PositionsLike, window: int, worst: int = 5
) -> list[Scenario]:
    """The ``worst`` worst non-overlapping ``window``-bar windows of the data for today's
    positions, worst first.

    Every window's PnL is ``positions * (prod(1 + r) - 1)`` per asset (units held through the
    window). The windows are chosen greedily: the worst of all, then the worst one that shares
    no bar with those already chosen, and so on; fewer come back when the data runs out.
    Windows that touch a missing return are skipped.
    """
    h = check_horizon(window)
    if worst < 1:
        raise ValueError(f"worst must be >= 1, got {worst}")
    data = returns_matrix(returns)
    pos = position_vector(positions, data.names)
    position_pnl = horizon_returns(data.values, h) * pos
    pnl = position_pnl.sum(axis=1)
    times = data.index if isinstance(data.index, pd.DatetimeIndex) else None

    taken = np.zeros(len(data.values), dtype=bool)
    scenarios: list[Scenario] = []
    for start in np.argsort(pnl, kind="stable"):
        if len(scenarios) == worst or np.isnan(pnl[start]):
            break  # argsort puts NaN last
        end = int(start) + h - 1
        if taken[start : end + 1].any():
            continue
        taken[start : end + 1] = True
        scenarios.append(
            Scenario(
                rank=len(scenarios) + 1,
                start_bar=int(start),
                end_bar=end,
                start=times[start] if times is not None else None,
                end=times[end] if times is not None else None,
                pnl=float(pnl[start]),
                position_pnl={
                    n: float(v) for n, v in zip(data.names, position_pnl[start], strict=True)
                },
            )
        )
    return scenarios


# --- Monte Carlo -------------------------------------------------------------------------


@dataclass(frozen=True)
class MonteCarloResult:
    """Simulated ``horizon``-bar PnL: ``pnl`` (n_paths,) sums ``position_pnl``
    (n_paths x N, columns in the order of ``names``); ``summary`` describes ``pnl``."""

    method: Literal["bootstrap", "normal"]
    horizon: int
    names: tuple[str, ...]
    pnl: FloatArray
    position_pnl: FloatArray
    summary: PnLDistribution


def monte_carlo(
    returns: ReturnsLike,
    positions: PositionsLike,
    horizon: int,
    n_paths: int,
    method: Literal["bootstrap", "normal"] = "bootstrap",
    seed: int | np.random.Generator | None = None,
) -> MonteCarloResult:
    """Simulated PnL of today's positions over ``horizon`` bars.

    Each path draws ``horizon`` bars of returns for all assets together and compounds them
    (``prod(1 + r) - 1`` per asset, units held):

    * ``bootstrap``: whole rows of the complete rows of ``returns``, uniformly with replacement
      (keeps the cross-section's dependence and fat tails, loses autocorrelation);
    * ``normal``: independent draws from a multivariate normal with the sample mean and
      covariance (ddof=1) of the complete rows.

    The same ``seed`` (an int or a Generator) gives the same paths.
    """
    h = check_horizon(horizon)
    if n_paths < 1:
        raise ValueError(f"n_paths must be >= 1, got {n_paths}")
    data = returns_matrix(returns)
    pos = position_vector(positions, data.names)
    rows = data.values[~np.isnan(data.values).any(axis=1)]
    rng = np.random.default_rng(seed)
    if method == "bootstrap":
        if len(rows) < 1:
            raise ValueError("no complete rows of returns to bootstrap")
        picks = rng.integers(0, len(rows), size=(n_paths, h))
        growth = 1.0 + rows[picks[:, 0]]
        for k in range(1, h):
            growth *= 1.0 + rows[picks[:, k]]
    elif method == "normal":
        if len(rows) < 2:
            raise ValueError("the normal method needs at least 2 complete rows")
        mean = rows.mean(axis=0)
        cov = np.atleast_2d(np.cov(rows, rowvar=False, ddof=1))
        growth = np.ones((n_paths, len(pos)))
        for _ in range(h):
            growth *= 1.0 + rng.multivariate_normal(mean, cov, size=n_paths)
    else:
        raise ValueError(f"unknown method {method!r}; expected 'bootstrap' or 'normal'")
    position_pnl = np.asarray((growth - 1.0) * pos, dtype=np.float64)
    pnl = position_pnl.sum(axis=1)
    return MonteCarloResult(
        method, h, data.names, pnl, position_pnl, PnLDistribution.from_samples(pnl)
    )


# --- factor shocks -----------------------------------------------------------------------


def estimate_betas(returns: ReturnsLike, factor_returns: pd.Series | npt.ArrayLike) -> FloatArray:
    """OLS slopes (with an intercept) of each asset's returns on the factor's, in the order of
    the returns' columns: ``cov(r_i, f) / var(f)`` over the rows where both are known.

    A Series factor is aligned to a DataFrame's index by label; otherwise the lengths must
    match. An asset with fewer than 2 such rows, or a constant factor over them, gets NaN.
    """
    data = returns_matrix(returns)
    if isinstance(factor_returns, pd.Series) and data.index is not None:
        f = factor_returns.reindex(data.index).to_numpy(dtype=np.float64, na_value=np.nan)
    elif isinstance(factor_returns, pd.Series):
        f = factor_returns.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        f = np.asarray(factor_returns, dtype=np.float64).reshape(-1)
    if f.shape != (len(data.values),):
        raise ValueError(f"{len(data.values)} rows of returns but {f.size} factor returns")
    if np.isinf(f).any():
        raise ValueError("factor returns hold infinities")
    betas = np.full(len(data.names), np.nan)
    for i in range(len(data.names)):
        y = data.values[:, i]
        known = ~(np.isnan(y) | np.isnan(f))
        if known.sum() < 2:
            continue
        x = f[known] - f[known].mean()
        sxx = float(x @ x)
        if sxx > 0:
            betas[i] = float(x @ (y[known] - y[known].mean())) / sxx
    return betas


@dataclass(frozen=True)
class FactorShock:
    """PnL of shocks to one factor: ``pnl[j] = sum_i positions[i] * betas[i] * shocks[j]``,
    ``position_pnl`` (S x N) its terms. Linear in the shock, no compounding."""

    shocks: FloatArray
    pnl: FloatArray
    position_pnl: FloatArray

    def distribution(self) -> PnLDistribution:
        """The shocks' PnL as a distribution (e.g. shocks = the factor's history)."""
        return PnLDistribution.from_samples(self.pnl)


def factor_shock(
    positions: npt.ArrayLike, betas: npt.ArrayLike, shock: float | npt.ArrayLike
) -> FactorShock:
    """PnL of one or many single-factor shocks (factor returns, e.g. -0.2 for a 20% fall) on
    positions with these betas (:func:`estimate_betas`), both in the same asset order."""
    pos = np.asarray(positions, dtype=np.float64).reshape(-1)
    b = np.asarray(betas, dtype=np.float64).reshape(-1)
    shocks = np.asarray(shock, dtype=np.float64).reshape(-1)
    if pos.shape != b.shape:
        raise ValueError(f"{pos.size} positions but {b.size} betas")
    for name, v in (("positions", pos), ("betas", b), ("shocks", shocks)):
        if not np.isfinite(v).all():
            raise ValueError(f"{name} must be finite")
    position_pnl = np.outer(shocks, pos * b)
    return FactorShock(shocks, position_pnl.sum(axis=1), position_pnl)
