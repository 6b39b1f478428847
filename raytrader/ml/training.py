"""From OHLCV bars to a fitted, cross-validated model and the metadata the registry keeps."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from raytrader.ml.features import FeatureConfig, build_features, feature_names
from raytrader.ml.labels import direction_labels, triple_barrier_labels
from raytrader.ml.models import DEFAULT_PARAMS, ModelKind, make_model
from raytrader.ml.registry import TrainingInfo
from raytrader.ml.search_spec import ModelSearchSpec

if TYPE_CHECKING:
    from raytrader.ml.search import SearchResult

__all__ = [
    "CV_METRICS",
    "Dataset",
    "LabelConfig",
    "TradingSpec",
    "TrainResult",
    "TrainSpec",
    "cross_validate",
    "data_hash",
    "make_dataset",
    "mean_metrics",
    "strategy_returns",
    "train",
]

# The mean CV metrics a training records and a search may rank by.
CV_METRICS = ("accuracy", "balanced_accuracy", "log_loss", "sharpe")


class LabelConfig(BaseModel):
    """Which label to learn."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["direction", "triple_barrier"] = "direction"
    horizon: int = Field(5, ge=1, le=1000, description="bars ahead (triple barrier: vertical)")
    dead_band: float = Field(0.0, ge=0, le=1, description="returns within it are labelled 0")
    take_profit: float = Field(2.0, gt=0, le=100, description="upper barrier, x volatility")
    stop_loss: float = Field(2.0, gt=0, le=100, description="lower barrier, x volatility")
    vol_window: int = Field(20, ge=2, le=1000)
    drop_flat: bool = Field(False, description="train on up/down samples only")


class TradingSpec(BaseModel):
    """How the CV's ``sharpe`` trades a test fold's predictions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cost_bps: float = Field(
        0.0, ge=0, le=1000, description="cost per unit of position change, in basis points"
    )
    allow_short: bool = Field(False, description="short when P(down) > 0.5 (else flat)")
    periods_per_year: float | None = Field(
        None, gt=0, le=1e7, description="annualization; default: inferred from the bars"
    )


class TrainSpec(BaseModel):
    """A training run: model kind and params, seed, features, labels and the CV."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ModelKind = "xgboost"
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = Field(0, ge=0)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    labels: LabelConfig = Field(default_factory=LabelConfig)
    cv_splits: int = Field(5, ge=2, le=50)
    embargo: int = Field(0, ge=0, le=10_000, description="bars dropped before each test fold")
    trading: TradingSpec = Field(
        default_factory=TradingSpec, description="the strategy the CV's sharpe scores"
    )
    search: ModelSearchSpec | None = Field(
        None, description="search these params first; the best CV score is trained and saved"
    )

    @model_validator(mode="after")
    def _check_search(self) -> Self:
        if self.search is not None:
            self.search.check(self.kind, self.params)
        return self


@dataclass(frozen=True)
class Dataset:
    """Aligned samples: features ``X``, labels ``y``, when each label was read (``label_end``,
    a Series of timestamps indexed like ``X``) and the simple return of the bar after each
    sample (``next_return``: what a position taken at the sample's close earns)."""

    X: pd.DataFrame
    y: pd.Series
    label_end: pd.Series
    next_return: pd.Series | None = None


@dataclass(frozen=True)
class TrainResult:
    """The model fitted on every sample, its CV folds' metrics and the registry metadata."""

    model: Any
    info: TrainingInfo
    folds: pd.DataFrame


def make_dataset(
    frame: pd.DataFrame, features: FeatureConfig | None = None, labels: LabelConfig | None = None
) -> Dataset:
    """Features and labels of one symbol's OHLCV frame, rows with both complete."""
    fcfg, lcfg = features or FeatureConfig(), labels or LabelConfig()
    X = build_features(frame, fcfg)
    close = frame["close"].astype(np.float64)
    if lcfg.method == "direction":
        lab = direction_labels(close, lcfg.horizon, lcfg.dead_band)
    else:
        lab = triple_barrier_labels(
            close,
            take_profit=lcfg.take_profit,
            stop_loss=lcfg.stop_loss,
            max_holding=lcfg.horizon,
            vol_window=lcfg.vol_window,
            dead_band=lcfg.dead_band,
        )
    keep = X.notna().all(axis=1).to_numpy() & lab["label"].notna().to_numpy()
    if lcfg.drop_flat:
        keep &= lab["label"].to_numpy() != 0
    ends = lab["end"].to_numpy()[keep]
    y = lab["label"][keep].astype(np.int64)
    label_end = pd.Series(frame.index[ends], index=X.index[keep], name="label_end")
    # Every kept sample has a label, so a bar after it: its return is never NaN.
    following = (close.shift(-1) / close - 1.0)[keep].rename("next_return")
    return Dataset(X=X[keep], y=y, label_end=label_end, next_return=following)


def data_hash(X: pd.DataFrame, y: pd.Series) -> str:
    """SHA-256 of the training samples: timestamps, feature names and values, labels."""
    h = hashlib.sha256()
    h.update("\x1f".join(map(str, X.columns)).encode())
    h.update(np.ascontiguousarray(X.index.asi8 if hasattr(X.index, "asi8") else X.index).data)
    h.update(np.ascontiguousarray(X.to_numpy(dtype=np.float64)).data)
    h.update(np.ascontiguousarray(y.to_numpy(dtype=np.int64)).data)
    return h.hexdigest()


def cross_validate(
    ds: Dataset, spec: TrainSpec, progress: Callable[[int], None] | None = None
) -> pd.DataFrame:
    """Purged walk-forward CV of ``spec``'s model on ``ds``: one row of metrics per fold.

    ``sharpe`` is the annualized Sharpe ratio of the fold's strategy returns (see
    ``strategy_returns``), NaN when ``ds`` has no ``next_return``. ``progress(k)`` is called
    after the ``k``-th fold's fit.
    """
    from sklearn.base import clone  # type: ignore[import-untyped]

    from raytrader.ml.cv import PurgedWalkForwardCV
    from raytrader.state.metrics import periods_per_year

    if len(ds.y) < 2 * (spec.cv_splits + 1):
        raise ValueError(
            f"{len(ds.y)} labelled samples after the warm-up are too few for "
            f"{spec.cv_splits} CV folds"
        )
    model = make_model(spec.kind, spec.params, spec.seed)
    cv = PurgedWalkForwardCV(spec.cv_splits, label_end=ds.label_end, embargo=spec.embargo)
    labels = np.unique(ds.y.to_numpy())
    trading = spec.trading
    per_year = trading.periods_per_year or periods_per_year(pd.DatetimeIndex(ds.X.index))
    rows = []
    for k, (tr, te) in enumerate(cv.split(ds.X)):
        fold = clone(model).fit(ds.X.iloc[tr], ds.y.iloc[tr])
        proba = _proba(fold, ds.X.iloc[te], labels)
        row = _fold_metrics(proba, ds.y.iloc[te], labels)
        row["sharpe"] = math.nan
        if ds.next_return is not None:
            rets = strategy_returns(proba, labels, ds.next_return.iloc[te].to_numpy(), trading)
            row["sharpe"] = _sharpe(rets, per_year)
        rows.append({"fold": k, **row})
        if progress is not None:
            progress(k + 1)
    return pd.DataFrame(rows)


def mean_metrics(folds: pd.DataFrame) -> dict[str, float]:
    """The CV score: each metric's mean over the folds (``sharpe``: the folds' mean Sharpe)."""
    return {m: float(folds[m].mean()) for m in CV_METRICS if m in folds}


def train(
    frame: pd.DataFrame,
    spec: TrainSpec | None = None,
    symbol: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    search: SearchResult | None = None,
) -> TrainResult:
    """Purged walk-forward CV of ``spec``'s model on ``frame``, then a fit on all samples.

    With ``spec.search``, the parameters are searched first (each trial scored by the same
    CV) and the best are trained; the search goes into the metadata. ``search`` is a search
    already run (on Ray); without it the search runs here, trial after trial, with the same
    result. ``progress(done, total)`` is called after each fit: the search's CV folds, then
    the CV folds and the final fit.
    """
    spec = spec or TrainSpec()
    if spec.search is not None:
        from raytrader.ml.search import search_local

        fits = spec.cv_splits + 1
        if search is None:
            search = search_local(frame, spec, symbol, progress, extra_fits=fits)
        done = search.fits

        def after(d: int, t: int) -> None:
            if progress is not None:
                progress(done + d, done + t)

        final = spec.model_copy(update={"params": search.best_params(spec), "search": None})
        result = train(frame, final, symbol, after)
        # The strategy its sharpe traded: the metrics alone do not say.
        meta = {**search.metadata(spec.search.top), "trading": spec.trading.model_dump()}
        info = result.info.model_copy(update={"search": meta})
        return TrainResult(model=result.model, info=info, folds=result.folds)

    ds = make_dataset(frame, spec.features, spec.labels)
    total = spec.cv_splits + 1
    folds = cross_validate(ds, spec, None if progress is None else (lambda k: progress(k, total)))
    fitted = make_model(spec.kind, spec.params, spec.seed).fit(ds.X, ds.y)
    if progress is not None:
        progress(total, total)
    info = TrainingInfo(
        kind=spec.kind,
        features=feature_names(spec.features),
        params={**DEFAULT_PARAMS[spec.kind], **spec.params},
        seed=spec.seed,
        training_start=ds.X.index[0].to_pydatetime(),
        # The last bar any label read: data up to here is in-sample.
        training_end=ds.label_end.max().to_pydatetime(),
        n_samples=len(ds.y),
        data_hash=data_hash(ds.X, ds.y),
        cv_metrics=mean_metrics(folds),
        feature_config=spec.features.model_dump(mode="json"),
        label_config=spec.labels.model_dump(mode="json"),
        symbol=symbol,
    )
    return TrainResult(model=fitted, info=info, folds=folds)


def _proba(model: Any, X: pd.DataFrame, labels: np.ndarray) -> np.ndarray:
    """Class probabilities in the columns of ``labels`` (sorted), rows summing to 1."""
    # A fold's training may miss a class: its probability is then 0 (log_loss clips it).
    proba = np.zeros((len(X), labels.shape[0]))
    got = model.predict_proba(X)
    for col, c in enumerate(model.classes_):
        proba[:, int(np.searchsorted(labels, c))] = got[:, col]
    # XGBoost answers in float32: renormalize in float64 so log_loss sees rows summing to 1.
    proba /= proba.sum(axis=1, keepdims=True)
    return proba


def _fold_metrics(proba: np.ndarray, y: pd.Series, labels: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import (  # type: ignore[import-untyped]
        accuracy_score,
        balanced_accuracy_score,
        log_loss,
    )

    pred = labels[np.argmax(proba, axis=1)]
    truth = y.to_numpy()
    return {
        "accuracy": float(accuracy_score(truth, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(truth, pred)),
        "log_loss": float(log_loss(truth, proba, labels=labels)),
    }


def strategy_returns(
    proba: np.ndarray, labels: np.ndarray, next_return: np.ndarray, trading: TradingSpec
) -> np.ndarray:
    """Per-sample returns of trading a test fold's predictions, net of costs.

    At each sample's close the position is long (1) when P(up) > 0.5, short (-1) when shorts
    are allowed and P(down) > 0.5, else flat; it earns the next bar's simple return. Each
    change of position costs ``cost_bps`` per unit, the fold starting flat (its first entry
    pays, the exit after its last sample does not). Samples dropped from the data set (warm-up,
    ``drop_flat``) are bars the strategy does not trade.
    """
    up = proba[:, labels == 1].sum(axis=1)
    position = np.where(up > 0.5, 1.0, 0.0)
    if trading.allow_short:
        down = proba[:, labels == -1].sum(axis=1)
        position = np.where(down > 0.5, -1.0, position)
    turnover = np.abs(np.diff(position, prepend=0.0))
    out: np.ndarray = position * next_return - turnover * trading.cost_bps / 1e4
    return out


def _sharpe(returns: np.ndarray, per_year: float) -> float:
    """mean / std (ddof 1) x sqrt(periods per year); 0.0 for returns with no spread (a fold
    the strategy stays flat in), like the backtest metrics."""
    if returns.shape[0] < 2:
        return 0.0
    std = float(np.std(returns, ddof=1))
    if std <= 1e-9 * float(np.max(np.abs(returns))):
        return 0.0
    return float(np.mean(returns)) / std * math.sqrt(per_year)
