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

    @model_validator(mode="after")
    def _check(self) -> MLAgentParams:
        if self.exit_threshold > min(self.long_threshold, self.short_threshold):
            raise ValueError("exit_threshold must not exceed long_threshold and short_threshold")
        try:  # a missing model is a config error, not a failure at the first bar
            registry = ModelRegistry()
            versions = registry.versions(self.model)
            if self.version is not None and self.version not in versions:
                registry.metadata(self.model, self.version)
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
    """

    name = "ml"
    Params = MLAgentParams
    params: MLAgentParams

    def __init__(self, params: AgentParams | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        self._loaded: RegisteredModel | None = None
        self._targets: dict[str, float] = {}

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
        return self.feature_config.warmup

    def indicators(self, data: MarketData) -> dict[str, FloatArray]:
        """``p_up`` and ``p_down`` per symbol and bar (NaN before the warm-up and in sample)."""
        loaded = self.loaded
        cfg = self.feature_config
        columns = list(loaded.record.features)
        classes = [int(c) for c in loaded.model.classes_]
        shape = (len(data.symbols), data.n_bars)
        p_up, p_down = np.full(shape, np.nan), np.full(shape, np.nan)
        for j in range(len(data.symbols)):
            frame = pd.DataFrame(
                {
                    "high": data.high[j],
                    "low": data.low[j],
                    "close": data.close[j],
                    "volume": data.volume[j],
                },
                index=data.index,
            )
            X = build_features(frame, cfg)[columns]
            ok = X.notna().all(axis=1).to_numpy()
            if not ok.any():
                continue
            proba = loaded.model.predict_proba(X[ok])
            p_up[j, ok] = proba[:, classes.index(1)] if 1 in classes else 0.0
            p_down[j, ok] = proba[:, classes.index(-1)] if -1 in classes else 0.0
        end = loaded.record.training_end
        if not self.params.trade_in_sample and end is not None:
            in_sample = np.asarray(data.index <= pd.Timestamp(end))
            p_up[:, in_sample] = np.nan
            p_down[:, in_sample] = np.nan
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
        return {"targets": dict(self._targets)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._targets = {str(k): float(v) for k, v in state.get("targets", {}).items()}
