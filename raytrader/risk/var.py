"""Value at Risk and expected shortfall: historical, Gaussian and Cornish-Fisher.

Conventions, shared with :mod:`raytrader.risk.stress`:

* ``returns`` is a T x N matrix of simple bar returns (``p_t / p_{t-1} - 1``), one column per
  asset, as a DataFrame (its columns name the assets), a Series (one asset) or an array
  (assets named ``"0"``, ``"1"``, ...). NaN marks a missing return; an infinite return is an
  error.
* ``positions`` are N signed currency amounts (market values; negative = short), as an array in
  the column order, or a Series / mapping keyed by asset name (every asset needs a position,
  every position an asset). The PnL of position i over h bars, units held fixed, is
  ``positions[i] * (prod(1 + r_i) - 1)``; the portfolio's PnL is the sum, ``returns @ positions``
  for one bar.
* VaR and ES are losses, in currency, positive when the portfolio loses: at confidence ``c`` the
  VaR is minus the ``1 - c`` quantile of the PnL and the ES minus the mean PnL at or below that
  quantile. A VaR is negative when even the ``1 - c`` quantile is a gain; nothing is clipped
  at zero.
* NaN: a PnL sample or an h-bar window that touches a missing return (in any asset) is left
  out, so the positions and the portfolio rest on the same observations.
* Horizon h (bars): the historical method uses the overlapping h-bar windows of compounded
  returns ``prod(1 + r_t..r_{t+h-1}) - 1``, t = 0..T-h (T - h + 1 autocorrelated samples, so
  the effective sample is smaller than it looks). The parametric methods take the moments of
  the one-bar PnL and scale them as for a sum of h independent bars: mean x h, std x sqrt(h),
  skewness / sqrt(h), excess kurtosis / h (compounding is ignored there).

Quantiles use numpy's default ("linear", Hyndman-Fan type 7) interpolation, the convention of
the REST endpoint's one-bar ``historical_var``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal, NamedTuple, TypeAlias, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray: TypeAlias = npt.NDArray[np.float64]
ReturnsLike: TypeAlias = pd.DataFrame | pd.Series | npt.ArrayLike
PositionsLike: TypeAlias = pd.Series | Mapping[str, float] | npt.ArrayLike

Method = Literal["historical", "gaussian", "cornish_fisher"]
ParametricMethod = Literal["gaussian", "cornish_fisher"]
METHODS: tuple[Method, ...] = get_args(Method)

_STD_NORMAL = NormalDist()


class VaRES(NamedTuple):
    """A VaR and an expected shortfall, losses in the unit of the PnL (positive = a loss)."""

    var: float
    es: float


# --- inputs ------------------------------------------------------------------------------


def check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return c


def check_horizon(horizon: int) -> int:
    if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a whole number of bars >= 1, got {horizon}")
    return int(horizon)


@dataclass(frozen=True)
class ReturnsMatrix:
    """Returns as a float matrix, with the assets' names and the rows' index (if any)."""

    values: FloatArray
    names: tuple[str, ...]
    index: pd.Index | None


def returns_matrix(returns: ReturnsLike) -> ReturnsMatrix:
    """``returns`` as a T x N float matrix; raises on infinities or a shape that is not 1-D/2-D."""
    index: pd.Index | None = None
    if isinstance(returns, pd.DataFrame):
        values = returns.to_numpy(dtype=np.float64, na_value=np.nan)
        names = tuple(str(c) for c in returns.columns)
        index = returns.index
    elif isinstance(returns, pd.Series):
        values = returns.to_numpy(dtype=np.float64, na_value=np.nan).reshape(-1, 1)
        names = (str(returns.name) if returns.name is not None else "0",)
        index = returns.index
    else:
        values = np.asarray(returns, dtype=np.float64)
        if values.ndim == 1:
            values = values.reshape(-1, 1)
        if values.ndim != 2:
            raise ValueError(f"returns must be 1-D or 2-D, got {values.ndim} dimensions")
        names = tuple(str(i) for i in range(values.shape[1]))
    if np.isinf(values).any():
        raise ValueError("returns hold infinities")
    if len(set(names)) != len(names):
        raise ValueError("asset names must be unique")
    return ReturnsMatrix(values, names, index)


def position_vector(positions: PositionsLike, names: Sequence[str]) -> FloatArray:
    """``positions`` as a float vector in the order of ``names``."""
    if isinstance(positions, pd.Series | Mapping):
        items = positions.items()
        by_name = {str(k): float(v) for k, v in items}
        missing = [n for n in names if n not in by_name]
        extra = sorted(set(by_name) - set(names))
        if missing or extra:
            raise ValueError(f"positions and returns differ: missing {missing}, unknown {extra}")
        vector = np.array([by_name[n] for n in names], dtype=np.float64)
    else:
        vector = np.asarray(positions, dtype=np.float64).reshape(-1)
        if vector.shape != (len(names),):
            raise ValueError(f"{len(names)} assets but {vector.size} positions")
    if not np.isfinite(vector).all():
        raise ValueError("positions must be finite")
    return vector


def horizon_returns(values: FloatArray, horizon: int) -> FloatArray:
    """Overlapping ``horizon``-bar compounded returns of a T x N matrix: row t is
    ``prod(1 + values[t:t + horizon]) - 1``, for t = 0..T-horizon. A window with a NaN is NaN."""
    h = check_horizon(horizon)
    n = values.shape[0] - h + 1
    if n < 1:
        return np.empty((0, *values.shape[1:]), dtype=np.float64)
    if h == 1:
        return np.array(values, dtype=np.float64)  # not (1 + r) - 1: that rounds
    growth = 1.0 + values[:n]
    for k in range(1, h):
        growth = growth * (1.0 + values[k : k + n])
    return np.asarray(growth - 1.0, dtype=np.float64)


# --- one PnL series ----------------------------------------------------------------------


def historical_var_es(pnl_samples: npt.ArrayLike, confidence: float) -> VaRES:
    """Historical VaR and ES of PnL (or return) samples at ``confidence``.

    VaR = ``-np.quantile(samples, 1 - confidence)`` (linear interpolation); ES = minus the mean
    of the samples at or below that quantile, so ES >= VaR. NaN samples are ignored; infinite
    ones raise. This is the convention of the REST endpoint's one-bar ``historical_var``, which
    further clips both at zero (``max(var, 0)``, ``max(es, 0)``).
    """
    c = check_confidence(confidence)
    samples = np.asarray(pnl_samples, dtype=np.float64).reshape(-1)
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        raise ValueError("no PnL samples")
    if np.isinf(samples).any():
        raise ValueError("PnL samples hold infinities")
    cut = float(np.quantile(samples, 1.0 - c))
    tail = samples[samples <= cut]
    return VaRES(-cut, -float(tail.mean()))


def cornish_fisher_z(z: float, skew: float, kurtosis: float) -> float:
    """The Cornish-Fisher expansion of a standard quantile ``z`` for a skewness and an
    excess kurtosis: ``z + (z²-1)S/6 + (z³-3z)K/24 - (2z³-5z)S²/36``."""
    s, k = skew, kurtosis
    return z + (z * z - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s * s / 36


def _cornish_fisher_tail_mean(z: float, skew: float, kurtosis: float) -> float:
    """``E[q(Z) | Z <= z]`` for the Cornish-Fisher polynomial q and a standard normal Z: the
    mean of the Cornish-Fisher quantile over the tail probabilities (0, Φ(z)], exactly.

    q(Z) = c0 + c1 Z + c2 Z² + c3 Z³ and the truncated moments ``E[Z^k; Z <= z]`` are
    Φ(z), -φ(z), Φ(z) - zφ(z) and -(z² + 2)φ(z).
    """
    s, k = skew, kurtosis
    c0 = -s / 6
    c1 = 1 - k / 8 + 5 * s * s / 36
    c2 = s / 6
    c3 = k / 24 - s * s / 18
    p, d = _STD_NORMAL.cdf(z), _STD_NORMAL.pdf(z)
    moments = c0 * p + c1 * -d + c2 * (p - z * d) + c3 * -(z * z + 2) * d
    return moments / p


def parametric_var_es(
    mean: float,
    std: float,
    confidence: float,
    skew: float | None = None,
    kurtosis: float | None = None,
    method: ParametricMethod = "gaussian",
) -> VaRES:
    """Parametric VaR and ES of a PnL with this ``mean`` and ``std`` (and, for Cornish-Fisher,
    ``skew`` and ``kurtosis``, the EXCESS kurtosis: 0 for a normal PnL; None counts as 0).

    With z = Φ⁻¹(1 - c):

    * ``gaussian``: VaR = -(mean + std z), ES = -mean + std φ(z) / (1 - c); ``skew`` and
      ``kurtosis`` are ignored.
    * ``cornish_fisher``: VaR = -(mean + std q(z)) with q the Cornish-Fisher expansion
      (:func:`cornish_fisher_z`); ES = -(mean + std m) with m the mean of the Cornish-Fisher
      quantile over the tail, ``(1 / (1 - c)) ∫_0^{1-c} q(Φ⁻¹(u)) du``, computed in closed form
      from truncated normal moments. With skew = kurtosis = 0 both are the Gaussian ones.
      The expansion is a quantile function (and ES >= VaR, both monotone in ``confidence``)
      only while q is increasing, roughly |skew| small and kurtosis >= 4 skew² / 3 but not
      large; far outside that it is no longer meaningful.
    """
    c = check_confidence(confidence)
    if not (math.isfinite(mean) and math.isfinite(std) and std >= 0):
        raise ValueError(f"mean must be finite and std finite and >= 0, got {mean}, {std}")
    z = _STD_NORMAL.inv_cdf(1.0 - c)
    if method == "gaussian":
        return VaRES(-(mean + std * z), -mean + std * _STD_NORMAL.pdf(z) / (1.0 - c))
    if method == "cornish_fisher":
        s = 0.0 if skew is None else float(skew)
        k = 0.0 if kurtosis is None else float(kurtosis)
        if not (math.isfinite(s) and math.isfinite(k)):
            raise ValueError(f"skew and kurtosis must be finite, got {skew}, {kurtosis}")
        q = cornish_fisher_z(z, s, k)
        return VaRES(-(mean + std * q), -(mean + std * _cornish_fisher_tail_mean(z, s, k)))
    raise ValueError(f"unknown parametric method {method!r}")


class Moments(NamedTuple):
    """Sample moments: mean, std (ddof=1), skewness and EXCESS kurtosis (the plain moment
    ratios ``m3 / m2^1.5`` and ``m4 / m2² - 3`` of the central moments, no small-sample
    correction; both 0 for a constant series)."""

    mean: float
    std: float
    skew: float
    kurtosis: float


def sample_moments(samples: npt.ArrayLike) -> Moments:
    """:class:`Moments` of the samples (at least two)."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if x.size < 2:
        raise ValueError(f"need at least 2 samples for moments, got {x.size}")
    mean = float(x.mean())
    dev = x - mean
    m2 = float(np.mean(dev**2))
    std = math.sqrt(m2 * x.size / (x.size - 1))
    # A spread at rounding level (a constant series) has no shape.
    if m2 <= (1e-12 * max(float(np.max(np.abs(x))), 1e-300)) ** 2:
        return Moments(mean, std, 0.0, 0.0)
    skew = float(np.mean(dev**3)) / m2**1.5
    kurt = float(np.mean(dev**4)) / m2**2 - 3.0
    return Moments(mean, std, skew, kurt)


def scaled_var_es(
    moments: Moments, confidence: float, horizon: int, method: ParametricMethod
) -> VaRES:
    """Parametric VaR/ES over ``horizon`` bars from one-bar moments, scaled as for a sum of
    independent bars (mean h, std sqrt(h), skew / sqrt(h), excess kurtosis / h)."""
    h = check_horizon(horizon)
    return parametric_var_es(
        moments.mean * h,
        moments.std * math.sqrt(h),
        confidence,
        skew=moments.skew / math.sqrt(h),
        kurtosis=moments.kurtosis / h,
        method=method,
    )


# --- a portfolio -------------------------------------------------------------------------


@dataclass(frozen=True)
class RiskMeasure:
    """One VaR / ES estimate, losses in currency over the report's horizon."""

    method: Method
    confidence: float
    var: float
    es: float


@dataclass(frozen=True)
class RiskProfile:
    """The measures of one position (standalone) or of the whole portfolio."""

    name: str
    value: float  # the position (currency); for the portfolio, the net of the positions
    measures: tuple[RiskMeasure, ...]

    def get(self, method: Method, confidence: float) -> RiskMeasure:
        for m in self.measures:
            if m.method == method and math.isclose(m.confidence, confidence, abs_tol=1e-12):
                return m
        raise KeyError((method, confidence))


@dataclass(frozen=True)
class PortfolioRiskReport:
    """VaR / ES of each position (standalone) and of the portfolio.

    ``observations`` counts the h-bar PnL windows of the historical estimates, ``bars`` the
    one-bar PnL samples of the parametric moments (both without the ones touching a NaN).
    """

    horizon: int
    confidence_levels: tuple[float, ...]
    methods: tuple[Method, ...]
    observations: int
    bars: int
    portfolio: RiskProfile
    positions: tuple[RiskProfile, ...]

    def position(self, name: str) -> RiskProfile:
        for p in self.positions:
            if p.name == name:
                return p
        raise KeyError(name)

    def to_frame(self) -> pd.DataFrame:
        """One row per (name, method, confidence); the portfolio's name is ``"portfolio"``
        with ``is_portfolio`` True."""
        rows = [
            {
                "name": p.name,
                "is_portfolio": p is self.portfolio,
                "value": p.value,
                "method": m.method,
                "confidence": m.confidence,
                "var": m.var,
                "es": m.es,
            }
            for p in (self.portfolio, *self.positions)
            for m in p.measures
        ]
        return pd.DataFrame(rows)


def _profile(
    name: str,
    value: float,
    window_pnl: FloatArray,
    bar_pnl: FloatArray,
    confidence_levels: tuple[float, ...],
    methods: tuple[Method, ...],
    horizon: int,
) -> RiskProfile:
    moments = sample_moments(bar_pnl) if any(m != "historical" for m in methods) else None
    measures = []
    for method in methods:
        for c in confidence_levels:
            if method == "historical":
                v = historical_var_es(window_pnl, c)
            else:
                assert moments is not None
                v = scaled_var_es(moments, c, horizon, method)
            measures.append(RiskMeasure(method, c, v.var, v.es))
    return RiskProfile(name, value, tuple(measures))


def portfolio_risk(
    returns: ReturnsLike,
    positions: PositionsLike,
    confidence_levels: Sequence[float] = (0.95, 0.99),
    horizon: int = 1,
    method: Method | Sequence[Method] = METHODS,
) -> PortfolioRiskReport:
    """VaR and ES of each position on its own and of the portfolio, in currency over
    ``horizon`` bars, by each ``method`` at each confidence level (see the module's notes).

    The portfolio's estimates use its own PnL series (``returns @ positions``), so they include
    diversification; the positions' are standalone (they do not add up to the portfolio's).
    """
    h = check_horizon(horizon)
    levels = tuple(check_confidence(c) for c in confidence_levels)
    if not levels:
        raise ValueError("no confidence levels")
    methods: tuple[Method, ...] = (method,) if isinstance(method, str) else tuple(method)
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; expected one of {METHODS}")
    if not methods:
        raise ValueError("no methods")
    data = returns_matrix(returns)
    pos = position_vector(positions, data.names)

    windows = horizon_returns(data.values, h)
    windows = windows[~np.isnan(windows).any(axis=1)]
    bars = data.values[~np.isnan(data.values).any(axis=1)]
    if "historical" in methods and len(windows) < 1:
        raise ValueError(f"no complete {h}-bar window in {len(data.values)} rows")
    if any(m != "historical" for m in methods) and len(bars) < 2:
        raise ValueError("the parametric methods need at least 2 complete rows")

    window_pnl = windows * pos
    bar_pnl = bars * pos
    profiles = tuple(
        _profile(name, float(pos[i]), window_pnl[:, i], bar_pnl[:, i], levels, methods, h)
        for i, name in enumerate(data.names)
    )
    portfolio = _profile(
        "portfolio", float(pos.sum()), windows @ pos, bars @ pos, levels, methods, h
    )
    return PortfolioRiskReport(h, levels, methods, len(windows), len(bars), portfolio, profiles)
