"""Market regimes: a rule-based trend/volatility classifier and a Gaussian mixture filtered
forward like an HMM, on any timeframe.

Both are causal: the state at bar ``t`` reads bars ``<= t`` only (the model is fitted on a
training window first, then run forward). Each gives a probability per state (posteriors for
the model, margin-based scores for the rules) and a history of transitions. scikit-learn is
imported only when a model is fitted.

Fitting a mixture is the costly step, and a session classifies its growing history at every
bar: fits are memoized by their training rows (the fit is seeded, so a memoized fit is the fit),
and the model refits on a rolling window only every ``refit_every`` bars.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from raytrader.data.resample import infer_timeframe, resample_ohlcv, timeframe_to_timedelta

__all__ = [
    "TREND_STATES",
    "VOL_STATES",
    "GaussianRegimeModel",
    "RegimeModelConfig",
    "RegimeResult",
    "RuleRegimeClassifier",
    "RuleRegimeConfig",
    "RuleRegimes",
    "align_to_bars",
    "fit_cache_info",
    "on_timeframe",
    "on_timeframes",
]

FloatArray = npt.NDArray[np.float64]
Classify = Callable[[pd.DataFrame], "RegimeResult | RuleRegimes"]

TREND_STATES = ("down", "sideways", "up")
VOL_STATES = ("low", "normal", "high")


@dataclass(frozen=True, eq=False)
class RegimeResult:
    """Probability of every state at every bar (rows sum to 1; NaN where undefined)."""

    proba: pd.DataFrame

    @property
    def states(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.proba.columns)

    @property
    def label(self) -> pd.Series:
        """The most probable state per bar (None where undefined)."""
        values = self.proba.to_numpy()
        ok = np.isfinite(values).all(axis=1)
        names = np.array(self.states, dtype=object)
        out = np.full(len(values), None, dtype=object)
        out[ok] = names[np.argmax(values[ok], axis=1)]
        return pd.Series(out, index=self.proba.index, name="state", dtype=object)

    @property
    def confidence(self) -> pd.Series:
        """The probability of the most probable state per bar."""
        return self.proba.max(axis=1, skipna=False).rename("confidence")

    def transitions(self) -> pd.DataFrame:
        """Every change of state: ``ts``, ``bar`` (position), ``from``, ``to``, ``confidence``
        (of the new state at that bar)."""
        label = self.label.to_numpy()
        conf = self.confidence.to_numpy()
        rows: list[dict[str, Any]] = []
        prev: Any = None
        for i, state in enumerate(label):
            if not isinstance(state, str):
                continue
            if prev is not None and state != prev:
                rows.append(
                    {
                        "ts": self.proba.index[i],
                        "bar": i,
                        "from": prev,
                        "to": state,
                        "confidence": float(conf[i]),
                    }
                )
            prev = state
        return pd.DataFrame(rows, columns=["ts", "bar", "from", "to", "confidence"])


def _margin_scores(x: FloatArray, lower: float, upper: float, scale: float) -> FloatArray:
    """Softmax of the signed distances of ``x`` into (-inf, lower), [lower, upper], (upper, inf).

    The interval holding ``x`` is the only one with a positive margin, so it always has the
    largest score; the score tends to 1 as ``x`` moves away from the boundaries.
    """
    margins = np.stack([lower - x, np.minimum(x - lower, upper - x), x - upper], axis=1) / scale
    margins -= margins.max(axis=1, keepdims=True)  # NaN rows stay NaN
    e = np.exp(margins)
    out: FloatArray = e / e.sum(axis=1, keepdims=True)
    return out


def _log_returns(close: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.full_like(close, np.nan)
        out[1:] = np.log(close[1:] / close[:-1])
    return out


def _trend_and_vol(close: FloatArray, window: int) -> tuple[FloatArray, FloatArray]:
    """Trend strength (the window's log return over its expected spread, a t-like score) and
    rolling volatility of one-bar log returns, both over the trailing ``window`` bars."""
    ret = pd.Series(_log_returns(close))
    vol = ret.rolling(window).std().to_numpy()
    move = ret.rolling(window).sum().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(vol > 0, move / (vol * math.sqrt(window)), 0.0)
    z[np.isnan(vol)] = np.nan
    return z, vol


class RuleRegimeConfig(BaseModel):
    """Windows and thresholds of the rule classifier (bars of the classified timeframe)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trend_window: int = Field(50, ge=2, le=5000, description="window of the trend return")
    dead_band: float = Field(
        0.5, ge=0, le=10, description="|trend score| below it is sideways (t-like units)"
    )
    trend_scale: float = Field(0.5, gt=0, le=10, description="margin giving e^1 odds (trend)")
    vol_window: int = Field(20, ge=2, le=5000, description="rolling volatility window")
    vol_rank_window: int = Field(
        250, ge=10, le=20000, description="trailing history ranking today's volatility"
    )
    low_pct: float = Field(0.25, gt=0, lt=1, description="volatility percentile below: low")
    high_pct: float = Field(0.75, gt=0, lt=1, description="volatility percentile above: high")
    vol_scale: float = Field(0.1, gt=0, le=1, description="margin giving e^1 odds (volatility)")

    @model_validator(mode="after")
    def _check(self) -> RuleRegimeConfig:
        if self.low_pct >= self.high_pct:
            raise ValueError("low_pct must be below high_pct")
        return self

    @property
    def warmup(self) -> int:
        """First bar with both states defined."""
        return max(self.trend_window, self.vol_window + self.vol_rank_window - 1)


@dataclass(frozen=True, eq=False)
class RuleRegimes:
    """Trend and volatility states, and their product (states ``"up/low"`` etc.)."""

    trend: RegimeResult
    volatility: RegimeResult

    @property
    def joint(self) -> RegimeResult:
        # The joint score treats the two as independent: its argmax is the pair of argmaxes.
        t, v = self.trend.proba.to_numpy(), self.volatility.proba.to_numpy()
        cols = {
            f"{ts}/{vs}": t[:, a] * v[:, b]
            for (a, ts), (b, vs) in product(enumerate(TREND_STATES), enumerate(VOL_STATES))
        }
        return RegimeResult(pd.DataFrame(cols, index=self.trend.proba.index))


class RuleRegimeClassifier:
    """Trend from the trailing window's return against its volatility, with a dead band (up /
    sideways / down); volatility from today's rolling volatility ranked among its own trailing
    values (low / normal / high). Scores per state come from the margin to the thresholds."""

    def __init__(self, config: RuleRegimeConfig | None = None) -> None:
        self.config = config or RuleRegimeConfig()

    def classify(self, frame: pd.DataFrame) -> RuleRegimes:
        cfg = self.config
        close = frame["close"].to_numpy(dtype=np.float64)
        z, _ = _trend_and_vol(close, cfg.trend_window)
        _, vol = _trend_and_vol(close, cfg.vol_window)
        rank = pd.Series(vol).rolling(cfg.vol_rank_window).rank(pct=True).to_numpy()
        trend = _margin_scores(z, -cfg.dead_band, cfg.dead_band, cfg.trend_scale)
        vols = _margin_scores(rank, cfg.low_pct, cfg.high_pct, cfg.vol_scale)
        return RuleRegimes(
            trend=RegimeResult(pd.DataFrame(trend, index=frame.index, columns=list(TREND_STATES))),
            volatility=RegimeResult(
                pd.DataFrame(vols, index=frame.index, columns=list(VOL_STATES))
            ),
        )


class RegimeModelConfig(BaseModel):
    """The Gaussian mixture on (trend score, log volatility) and its forward filter."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_states: int = Field(2, ge=2, le=6)
    window: int = Field(20, ge=2, le=5000, description="window of the trend score and volatility")
    seed: int = Field(0, ge=0)
    n_init: int = Field(3, ge=1, le=20)
    stay_prior: float = Field(
        20.0, ge=0, description="pseudo-counts on staying put added to the transition counts"
    )
    refit_every: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="refit every this many bars after the training window, on as many bars up "
        "to then as it had (None: never)",
    )

    @property
    def warmup(self) -> int:
        return self.window


@dataclass(frozen=True, eq=False)
class _Fit:
    """A fitted mixture in volatility order, with its transition matrix."""

    means: FloatArray
    covariances: FloatArray
    weights: FloatArray
    transition: FloatArray


_FITS: OrderedDict[str, _Fit] = OrderedDict()
_FITS_KEPT = 4096  # a few KB each: a long session's refits all stay
_FIT_STATS = {"hits": 0, "misses": 0}


def fit_cache_info() -> dict[str, int]:
    """Memoized mixture fits of this process: ``hits``, ``misses`` (real fits) and ``size``."""
    return {**_FIT_STATS, "size": len(_FITS)}


def _fit_rows(X: FloatArray, cfg: RegimeModelConfig) -> _Fit:
    """The mixture of the usable rows of ``X`` (memoized by the rows and the config)."""
    ok = np.isfinite(X).all(axis=1)
    if ok.sum() < 10 * cfg.n_states:
        raise ValueError(f"regime model: {int(ok.sum())} usable bars, need {10 * cfg.n_states}")
    rows = np.ascontiguousarray(X[ok])
    head = f"{cfg.n_states}|{cfg.seed}|{cfg.n_init}|{cfg.stay_prior!r}|".encode()
    key = hashlib.sha1(head + rows.tobytes(), usedforsecurity=False).hexdigest()
    cached = _FITS.get(key)
    if cached is not None:
        _FITS.move_to_end(key)
        _FIT_STATS["hits"] += 1
        return cached
    _FIT_STATS["misses"] += 1
    fit = _fit_mixture(rows, cfg)
    _FITS[key] = fit
    while len(_FITS) > _FITS_KEPT:
        _FITS.popitem(last=False)
    return fit


def _fit_mixture(X: FloatArray, cfg: RegimeModelConfig) -> _Fit:
    from sklearn.mixture import GaussianMixture  # type: ignore[import-untyped]

    gmm = GaussianMixture(
        n_components=cfg.n_states,
        covariance_type="full",
        random_state=cfg.seed,
        n_init=cfg.n_init,
        reg_covar=1e-6,
    ).fit(X)
    order = np.argsort(gmm.means_[:, 1], kind="stable")  # by volatility
    means = np.asarray(gmm.means_[order], dtype=np.float64)
    covariances = np.asarray(gmm.covariances_[order], dtype=np.float64)
    weights = np.asarray(gmm.weights_[order], dtype=np.float64)
    hard = np.argmax(_log_density(X, means, covariances) + np.log(weights), axis=1)
    counts = np.full((cfg.n_states, cfg.n_states), 1.0) + cfg.stay_prior * np.eye(cfg.n_states)
    np.add.at(counts, (hard[:-1], hard[1:]), 1.0)
    return _Fit(means, covariances, weights, counts / counts.sum(axis=1, keepdims=True))


def _log_density(X: FloatArray, means: FloatArray, covariances: FloatArray) -> FloatArray:
    out = np.empty((len(X), len(means)))
    for k, (mu, cov) in enumerate(zip(means, covariances, strict=True)):
        chol = np.linalg.cholesky(cov)
        sol = np.linalg.solve(chol, (X - mu).T)
        logdet = 2.0 * np.log(np.diag(chol)).sum()
        out[:, k] = -0.5 * ((sol**2).sum(axis=0) + logdet + X.shape[1] * math.log(2 * math.pi))
    return out


def _state_names(n: int) -> tuple[str, ...]:
    if n == 2:
        return ("low_vol", "high_vol")
    if n == 3:
        return ("low_vol", "mid_vol", "high_vol")
    return tuple(f"vol_{k}" for k in range(n))


class GaussianRegimeModel:
    """A Gaussian mixture over (trend score, log volatility) with states ordered by volatility
    (so labels keep their meaning across refits), run forward as an HMM filter.

    ``fit`` learns the mixture and a transition matrix (from the training window's most likely
    states plus a stay prior); ``filter`` gives P(state at t | features up to t).
    """

    def __init__(self, config: RegimeModelConfig | None = None) -> None:
        self.config = config or RegimeModelConfig()
        self.means: FloatArray | None = None
        self.covariances: FloatArray | None = None
        self.weights: FloatArray | None = None
        self.transition: FloatArray | None = None
        self.training_end: pd.Timestamp | None = None
        self._fit_bars = 0

    @property
    def states(self) -> tuple[str, ...]:
        return _state_names(self.config.n_states)

    def features(self, frame: pd.DataFrame) -> FloatArray:
        """Rows of (trend score, log volatility); NaN during the warm-up."""
        z, vol = _trend_and_vol(frame["close"].to_numpy(dtype=np.float64), self.config.window)
        with np.errstate(divide="ignore"):
            return np.column_stack([z, np.log(vol)])

    def fit(self, frame: pd.DataFrame) -> GaussianRegimeModel:
        fit = _fit_rows(self.features(frame), self.config)
        self.means, self.covariances = fit.means, fit.covariances
        self.weights, self.transition = fit.weights, fit.transition
        self.training_end = pd.Timestamp(frame.index[-1])
        self._fit_bars = len(frame)
        return self

    def _log_density(self, X: FloatArray) -> FloatArray:
        assert self.means is not None and self.covariances is not None
        return _log_density(X, self.means, self.covariances)

    def refits(self, frame: pd.DataFrame) -> list[pd.Timestamp]:
        """Bars of ``frame`` at which ``filter`` refits (see ``refit_every``)."""
        return [frame.index[p] for p in self._refit_points(frame)]

    def _refit_points(self, frame: pd.DataFrame) -> range:
        every = self.config.refit_every
        if every is None or self.training_end is None:
            return range(0)
        last = int(pd.DatetimeIndex(frame.index).searchsorted(self.training_end, side="right")) - 1
        return range(last + every, len(frame), every)

    def filter(self, frame: pd.DataFrame) -> RegimeResult:
        """Filtered state probabilities of every bar of ``frame`` (NaN in the warm-up).

        Bars up to ``training_end`` are in sample: the model has seen them. With
        ``refit_every``, the mixture is refitted at every ``refit_every``-th bar after
        ``training_end`` on the features of the last bars up to it (as many as ``fit`` had)
        and filters on from that bar with the refit; the model itself keeps its first fit.
        """
        if self.transition is None or self.weights is None:
            raise RuntimeError("regime model: fit it before filtering")
        assert self.means is not None and self.covariances is not None
        X = self.features(frame)
        ok = np.isfinite(X).all(axis=1)
        out = np.full((len(X), len(self.weights)), np.nan)
        fits = [(0, _Fit(self.means, self.covariances, self.weights, self.transition))]
        for p in self._refit_points(frame):
            try:
                fits.append((p, _fit_rows(X[max(0, p - self._fit_bars + 1) : p + 1], self.config)))
            except ValueError:  # too few usable bars in the window: keep the last fit
                continue
        rows = np.flatnonzero(ok)
        if rows.size:
            starts = np.array([start for start, _ in fits])
            segment = np.searchsorted(starts, rows, side="right") - 1
            logd = np.empty((rows.size, len(self.weights)))
            for k, (_, fit) in enumerate(fits):
                mine = segment == k
                if mine.any():
                    logd[mine] = _log_density(X[rows[mine]], fit.means, fit.covariances)
            # Scaled so the largest density per bar is 1: the filter normalizes anyway.
            lik = np.exp(logd - logd.max(axis=1, keepdims=True))
            belief = self.weights
            post = np.empty_like(lik)
            prev_row = -2
            for n, i in enumerate(rows.tolist()):
                fit = fits[segment[n]][1]
                # A gap in the features (missing bars) restarts from the mixture weights.
                prior = belief @ fit.transition if i == prev_row + 1 else fit.weights
                b = prior * lik[n]
                belief = b / b.sum()
                post[n] = belief
                prev_row = i
            out[rows] = post
        return RegimeResult(pd.DataFrame(out, index=frame.index, columns=list(self.states)))

    def state_means(self) -> pd.DataFrame:
        """Each state's mean trend score and volatility (per bar), in state order."""
        if self.means is None:
            raise RuntimeError("regime model: not fitted")
        return pd.DataFrame(
            {"trend": self.means[:, 0], "volatility": np.exp(self.means[:, 1])},
            index=list(self.states),
        )


def align_to_bars(
    coarse: RegimeResult,
    timeframe: str,
    index: pd.DatetimeIndex,
    bar: pd.Timedelta | None = None,
) -> RegimeResult:
    """Regimes of ``timeframe`` bars as known at each bar of ``index`` (bar length ``bar``,
    inferred if None): a coarse bar counts once its last moment has closed, so a bar never
    reads the coarse bar still forming around it."""
    step = bar if bar is not None else infer_timeframe(index)
    if step is None:
        step = timeframe_to_timedelta(timeframe)
    starts = pd.DatetimeIndex(coarse.proba.index)
    ends = (starts + timeframe_to_timedelta(timeframe)).as_unit("ns").asi8
    closes = (index + step).as_unit("ns").asi8
    pos = np.searchsorted(ends, closes, side="right") - 1
    values = coarse.proba.to_numpy()
    out = np.full((len(index), values.shape[1]), np.nan)
    known = pos >= 0
    out[known] = values[pos[known]]
    return RegimeResult(pd.DataFrame(out, index=index, columns=coarse.proba.columns))


def on_timeframe(
    frame: pd.DataFrame, timeframe: str | None, classify: Classify
) -> RegimeResult | RuleRegimes:
    """Run ``classify`` (frame -> RegimeResult or RuleRegimes) on ``frame`` resampled to
    ``timeframe`` and align the answer causally to ``frame``'s bars (None: no resampling)."""
    if timeframe is None:
        result: RegimeResult | RuleRegimes = classify(frame)
        return result
    index = pd.DatetimeIndex(frame.index)
    coarse = classify(resample_ohlcv(frame, timeframe))
    if isinstance(coarse, RuleRegimes):
        return RuleRegimes(
            trend=align_to_bars(coarse.trend, timeframe, index),
            volatility=align_to_bars(coarse.volatility, timeframe, index),
        )
    return align_to_bars(coarse, timeframe, index)


def on_timeframes(
    frame: pd.DataFrame, timeframes: Sequence[str | None], classify: Classify
) -> dict[str, RegimeResult | RuleRegimes]:
    """``on_timeframe`` for each timeframe, keyed by it (``"native"`` for None), every answer
    on ``frame``'s bars."""
    return {tf or "native": on_timeframe(frame, tf, classify) for tf in timeframes}
