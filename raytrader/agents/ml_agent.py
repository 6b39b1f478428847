"""An agent that trades the class probabilities of a model from the model registry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import Field, model_validator

from raytrader.agents.base import Agent, AgentParams
from raytrader.agents.context import BarContext
from raytrader.agents.registry import register
from raytrader.data.market_data import FloatArray, MarketData
from raytrader.domain import Signal
from raytrader.ml.features import FeatureConfig, build_features
from raytrader.ml.registry import ModelNotFoundError, ModelRegistry, RegisteredModel
from raytrader.ml.retrain import MIN_SAMPLES, fit_window, labels_of, refit_points


class MLAgentParams(AgentParams):
    model: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="model name in the registry (RAYTRADER_DATA_DIR/models)",
    )
    version: int | None = Field(None, ge=1, description="model version; None: the latest")
    long_threshold: float = Field(0.55, gt=0.5, lt=1, description="P(up) that opens a long")
    short_threshold: float = Field(0.55, gt=0.5, lt=1, description="P(down) that opens a short")
    exit_threshold: float = Field(
        0.5, gt=0, lt=1, description="a long closes when P(up) falls below it (shorts: P(down))"
    )
    sizing: Literal["fixed", "confidence"] = Field(
        "confidence", description="fixed: max_weight; confidence: grows with the probability"
    )
    full_size_at: float = Field(
        0.75, gt=0.5, le=1, description="probability at which confidence sizing is max_weight"
    )
    max_weight: float = Field(1.0, gt=0, le=1)
    min_change: float = Field(
        0.1, ge=0, le=1, description="smallest change of the target weight worth a new signal"
    )
    allow_short: bool = False
    trade_in_sample: bool = Field(
        False, description="also trade bars up to the end of the model's training data"
    )
    retrain_every: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="refit every this many bars on the last train_window bars (None: never)",
    )
    train_window: int | None = Field(
        None, ge=20, le=100_000, description="bars a refit trains on (with retrain_every)"
    )

    @model_validator(mode="after")
    def _check(self) -> MLAgentParams:
        if self.exit_threshold > min(self.long_threshold, self.short_threshold):
            raise ValueError("exit_threshold must not exceed long_threshold and short_threshold")
        if (self.retrain_every is None) != (self.train_window is None):
            raise ValueError("retrain_every and train_window go together")
        try:  # a missing model is a config error, not a failure at the first bar
            registry = ModelRegistry()
            versions = registry.versions(self.model)
            if self.version is not None and self.version not in versions:
                registry.metadata(self.model, self.version)
            if self.train_window is not None:
                horizon = int(registry.metadata(self.model, self.version).label_config["horizon"])
                if self.train_window < horizon + MIN_SAMPLES:
                    raise ValueError(
                        f"train_window ({self.train_window}) must exceed the label horizon "
                        f"({horizon}) by at least {MIN_SAMPLES} bars"
                    )
        except ModelNotFoundError as exc:
            raise ValueError(str(exc)) from None
        return self


@register
class MLAgent(Agent):
    """Trades a registry model's class probabilities (labels -1, 0, 1).

    At each close, per symbol: long when P(up) reaches ``long_threshold`` (and beats P(down)),
    short when P(down) reaches ``short_threshold`` (if shorts are allowed); a position closes
    when the probability of its side falls below ``exit_threshold`` and is held in between.
    Confidence sizing scales the weight linearly from 0 at probability 0.5 to ``max_weight``
    at ``full_size_at``; a new signal goes out only when the target moves by ``min_change``.
    By default nothing is traded up to the model's ``training_end``: those bars are in sample.

    With ``retrain_every`` and ``train_window`` the registry version is a recipe (kind, params,
    seed, features, labels): every ``retrain_every`` bars the agent refits it per symbol on the
    last ``train_window`` bars, with the labels known by then (``raytrader.ml.retrain``), and
    trades that model's predictions until the next refit. The first refit needs a full window
    of features, so the warm-up grows by ``train_window`` bars; in a walk-forward the test run
    starts that much earlier and the first refit falls on the test window's first bar. Refits
    are deterministic (seeded) and kept per symbol and bar, so a session refits once per
    scheduled bar; its state keeps the phase of the schedule.
    """

    name = "ml"
    Params = MLAgentParams
    params: MLAgentParams

    def __init__(self, params: AgentParams | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        self._loaded: RegisteredModel | None = None
        self._targets: dict[str, float] = {}
        self._refits: dict[tuple[str, pd.Timestamp], Any] = {}  # None: too few samples
        self._last_refit: pd.Timestamp | None = None

    @property
    def loaded(self) -> RegisteredModel:
        """The registry model (loaded on first use)."""
        if self._loaded is None:
            self._loaded = ModelRegistry().load(self.params.model, self.params.version)
        return self._loaded

    @property
    def feature_config(self) -> FeatureConfig:
        return FeatureConfig.model_validate(self.loaded.record.feature_config)

    @property
    def warmup(self) -> int:
        window = self.params.train_window
        return self.feature_config.warmup + (window - 1 if window is not None else 0)

    @property
    def refits(self) -> list[pd.Timestamp]:
        """Bars at which a model was refitted, oldest first (over all symbols)."""
        return sorted({ts for (_, ts), model in self._refits.items() if model is not None})

    def indicators(self, data: MarketData) -> dict[str, FloatArray]:
        """``p_up`` and ``p_down`` per symbol and bar (NaN before the warm-up and in sample)."""
        if self.params.retrain_every is not None:
            return self._refit_indicators(data)
        loaded = self.loaded
        cfg = self.feature_config
        columns = list(loaded.record.features)
        shape = (len(data.symbols), data.n_bars)
        p_up, p_down = np.full(shape, np.nan), np.full(shape, np.nan)
        for j in range(len(data.symbols)):
            X = build_features(_frame(data, j), cfg)[columns]
            ok = X.notna().all(axis=1).to_numpy()
            if not ok.any():
                continue
            p_up[j, ok], p_down[j, ok] = _up_down(loaded.model, X[ok])
        end = loaded.record.training_end
        if not self.params.trade_in_sample and end is not None:
            in_sample = np.asarray(data.index <= pd.Timestamp(end))
            p_up[:, in_sample] = np.nan
            p_down[:, in_sample] = np.nan
        return {"p_up": p_up, "p_down": p_down}

    def _refit_indicators(self, data: MarketData) -> dict[str, FloatArray]:
        """Predictions of the models refitted on the rolling window (see the class docs)."""
        every, window = self.params.retrain_every, self.params.train_window
        assert every is not None and window is not None
        record = self.loaded.record
        cfg = self.feature_config
        columns = list(record.features)
        drop_flat = bool(record.label_config.get("drop_flat", False))
        index = data.index
        anchor = None
        if self._last_refit is not None:
            pos = int(index.searchsorted(self._last_refit))
            anchor = pos if pos < len(index) and index[pos] == self._last_refit else None
        points = refit_points(data.n_bars, self.warmup, every, anchor)
        shape = (len(data.symbols), data.n_bars)
        p_up, p_down = np.full(shape, np.nan), np.full(shape, np.nan)
        kept: dict[tuple[str, pd.Timestamp], Any] = {}
        for j, symbol in enumerate(data.symbols):
            frame = _frame(data, j)
            X = build_features(frame, cfg)[columns]
            labels = None
            model = None
            for k, t in enumerate(points):
                key = (symbol, index[t])
                if key not in self._refits:
                    if labels is None:
                        labels = labels_of(frame["close"], record.label_config)
                    self._refits[key] = fit_window(
                        X, labels, int(t), window, kind=record.kind, params=record.params,
                        seed=record.seed, drop_flat=drop_flat,
                    )  # fmt: skip
                kept[key] = self._refits[key]
                model = kept[key] if kept[key] is not None else model  # else: the last one
                stop = int(points[k + 1]) if k + 1 < len(points) else data.n_bars
                rows = X.iloc[int(t) : stop]
                ok = rows.notna().all(axis=1).to_numpy()
                if model is None or not ok.any():
                    continue
                cols = np.flatnonzero(ok) + int(t)
                p_up[j, cols], p_down[j, cols] = _up_down(model, rows[ok])
        self._refits = kept  # models of bars no longer in the data are dropped
        if len(points):
            self._last_refit = index[int(points[-1])]
        return {"p_up": p_up, "p_down": p_down}

    def active_bars(
        self, data: MarketData, indicators: Mapping[str, FloatArray]
    ) -> npt.NDArray[np.bool_]:
        """Bars with a prediction for some symbol."""
        return np.asarray(np.isfinite(indicators["p_up"]).any(axis=0))

    def _size(self, p: float) -> float:
        w = self.params.max_weight
        if self.params.sizing == "fixed":
            return w
        return w * min(1.0, (p - 0.5) / (self.params.full_size_at - 0.5))

    def target(self, p_up: float, p_down: float, current: float) -> float:
        """The target weight for these probabilities, holding ``current`` in between."""
        p = self.params
        if p_up >= p.long_threshold and p_up >= p_down:
            return self._size(p_up)
        if p.allow_short and p_down >= p.short_threshold and p_down > p_up:
            return -self._size(p_down)
        if (current > 0 and p_up < p.exit_threshold) or (current < 0 and p_down < p.exit_threshold):
            return 0.0
        return current

    def on_bar(self, ctx: BarContext) -> Sequence[Signal] | None:
        out: list[Signal] | None = None
        for j, symbol in enumerate(ctx.symbols):
            p_up, p_down = ctx.value("p_up", j), ctx.value("p_down", j)
            if not (p_up == p_up and p_down == p_down):  # NaN: no prediction at this bar
                continue
            current = self._targets.get(symbol, 0.0)
            new = self.target(p_up, p_down, current)
            flips = (new > 0) != (current > 0) or (new < 0) != (current < 0)
            if new == current or (not flips and abs(new - current) < self.params.min_change):
                continue
            self._targets[symbol] = new
            confidence = p_up if new > 0 else p_down if new < 0 else max(p_up, p_down)
            sig = Signal(
                symbol,
                ctx.ts,
                direction=(new > 0) - (new < 0),
                weight=new,
                strength=min(1.0, max(0.0, confidence)),
                reason=f"ml p_up={p_up:.3f} p_down={p_down:.3f}",
            )
            out = out or []
            out.append(sig)
        return out

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"targets": dict(self._targets)}
        if self._last_refit is not None:
            state["last_refit"] = self._last_refit.isoformat()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        self._targets = {str(k): float(v) for k, v in state.get("targets", {}).items()}
        last = state.get("last_refit")
        self._last_refit = pd.Timestamp(last) if last is not None else None


def _frame(data: MarketData, j: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "high": data.high[j],
            "low": data.low[j],
            "close": data.close[j],
            "volume": data.volume[j],
        },
        index=data.index,
    )


def _up_down(model: Any, X: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
    """P(up) and P(down) of each row (0 for a class the model never saw)."""
    proba = model.predict_proba(X)
    classes = [int(c) for c in model.classes_]
    zero = np.zeros(len(X))
    up = proba[:, classes.index(1)] if 1 in classes else zero
    down = proba[:, classes.index(-1)] if -1 in classes else zero
    return np.asarray(up, dtype=np.float64), np.asarray(down, dtype=np.float64)
