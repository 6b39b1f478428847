"""Probabilistic and Deflated Sharpe ratios.

Bailey and López de Prado, "The Sharpe Ratio Efficient Frontier" (Journal of Risk, 2012) and
"The Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting and
Non-Normality" (Journal of Portfolio Management, 2014).

Every Sharpe ratio here is per bar, NOT annualized: ``mean(r) / std(r, ddof=1)`` of the bar
returns (excess returns, or returns with a zero risk-free rate). An annualized Sharpe ratio
``S`` over ``P`` bars a year is ``S / sqrt(P)`` per bar, and a variance of annualized Sharpe
ratios ``V`` is ``V / P``. Kurtosis is the non-excess kind (3 for normal returns); skewness
and kurtosis are the plain sample moments (``scipy.stats.skew`` / ``kurtosis(fisher=False)``
with their default ``bias=True``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

EULER_GAMMA = 0.5772156649015329

_STD_NORMAL = NormalDist()

# A standard deviation below this fraction of the largest absolute return is zero (rounding).
_ZERO_SPREAD = 1e-9


@dataclass(frozen=True)
class DeflatedSharpe:
    """The Deflated Sharpe Ratio of a selected strategy and the numbers it was computed from.

    ``dsr`` is the probability that the true per-bar Sharpe ratio exceeds ``sr0``, the expected
    maximum Sharpe ratio of ``n_trials`` trials without skill (0.95 is the usual bar).
    """

    dsr: float
    sr: float
    sr0: float
    n_trials: int
    n_obs: int
    skew: float
    kurtosis: float
    var_trials: float


def _finite(**values: float) -> None:
    for name, value in values.items():
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, n_obs: int, skew: float, kurtosis: float
) -> float:
    """Probability that the true per-bar Sharpe ratio exceeds ``sr_benchmark``.

    ``Phi((sr - sr*) * sqrt(n - 1) / sqrt(1 - skew * sr + (kurtosis - 1) / 4 * sr**2))``
    for a Sharpe ratio ``sr`` measured on ``n_obs`` bar returns with that skewness and
    (non-excess) kurtosis.
    """
    _finite(sr=sr, sr_benchmark=sr_benchmark, skew=skew, kurtosis=kurtosis)
    if n_obs < 2:
        raise ValueError(f"n_obs must be at least 2, got {n_obs}")
    spread = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    # Never <= 0 for moments of real data (kurtosis >= 1 + skew**2); excess kurtosis can be.
    if spread <= 0.0:
        raise ValueError(
            f"1 - skew*sr + (kurtosis-1)/4*sr^2 = {spread:.6g} is not positive for sr={sr}, "
            f"skew={skew}, kurtosis={kurtosis}; kurtosis must be non-excess (3 if normal)"
        )
    z = (sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(spread)
    return _STD_NORMAL.cdf(z)


def expected_max_sharpe(n_trials: int, var_sharpe: float) -> float:
    """Expected maximum of ``n_trials`` Sharpe ratios of zero-skill strategies.

    ``sqrt(V) * ((1 - g) * Phi^-1(1 - 1/N) + g * Phi^-1(1 - 1/(N e)))`` with ``g`` the
    Euler-Mascheroni constant and ``V`` the variance of the trials' Sharpe ratios.
    One trial gives 0: nothing was selected, and the maximum of one zero-mean draw has mean 0
    (the formula is an asymptotic approximation and is undefined at N = 1).
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    _finite(var_sharpe=var_sharpe)
    if var_sharpe < 0.0:
        raise ValueError(f"var_sharpe must be >= 0, got {var_sharpe}")
    if n_trials == 1:
        return 0.0
    # Phi^-1(1 - p) = -Phi^-1(p) keeps precision when p is tiny.
    z_max = (1.0 - EULER_GAMMA) * -_STD_NORMAL.inv_cdf(1.0 / n_trials) + EULER_GAMMA * (
        -_STD_NORMAL.inv_cdf(1.0 / (n_trials * math.e))
    )
    return math.sqrt(var_sharpe) * z_max


def _vector(name: str, values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has {int((~np.isfinite(arr)).sum())} non-finite values")
    return arr


def deflated_sharpe_ratio(returns: npt.ArrayLike, trial_sharpes: npt.ArrayLike) -> DeflatedSharpe:
    """Deflated Sharpe Ratio of the selected strategy's bar ``returns``.

    ``trial_sharpes`` are the per-bar Sharpe ratios of every trial tried, the selected one
    included; their count and sample variance (ddof=1) set the benchmark ``sr0``. With a
    single trial there is no selection and no variance to measure: ``sr0`` is 0 and the DSR is
    the PSR against 0. Raises ``ValueError`` for no trials, fewer than two returns, non-finite
    values or returns with zero variance.
    """
    r = _vector("returns", returns)
    trials = _vector("trial_sharpes", trial_sharpes)
    n_obs = int(r.size)
    if n_obs < 2:
        raise ValueError(f"returns must have at least 2 observations, got {n_obs}")
    if trials.size < 1:
        raise ValueError("trial_sharpes is empty: at least the selected trial is needed")
    std = float(np.std(r, ddof=1))
    if std <= _ZERO_SPREAD * float(np.max(np.abs(r))):
        raise ValueError("returns have zero variance: the Sharpe ratio is undefined")
    mean = float(np.mean(r))
    centered = r - mean
    m2 = float(np.mean(centered**2))
    skew = float(np.mean(centered**3)) / m2**1.5
    kurtosis = float(np.mean(centered**4)) / m2**2
    sr = mean / std
    n_trials = int(trials.size)
    var_trials = float(np.var(trials, ddof=1)) if n_trials >= 2 else 0.0
    sr0 = expected_max_sharpe(n_trials, var_trials)
    dsr = probabilistic_sharpe_ratio(sr, sr0, n_obs, skew, kurtosis)
    return DeflatedSharpe(dsr, sr, sr0, n_trials, n_obs, skew, kurtosis, var_trials)
