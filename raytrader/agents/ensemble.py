"""The ensemble agent: a weighted vote of ML, RL and regime members.

A member is anything with a ``warmup`` and ``scores(data)``: an array ``(n_symbols, n_bars)``
of votes in [-1, 1] (NaN: no opinion at that bar), computed causally like indicators. The ML
member votes P(up) - P(down) of a registry model, the regime member the expected score of the
regime's states, and the RL member is any registered agent with a ``scores`` method (so an RL
agent plugs in by implementing it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from raytrader.agents.base import Agent, AgentParams
from raytrader.agents.context import BarContext
from raytrader.agents.ml_agent import MLAgent, MLAgentParams
from raytrader.agents.registry import create, register
from raytrader.data.market_data import FloatArray, MarketData
from raytrader.data.resample import infer_timeframe, timeframe_to_timedelta
from raytrader.domain import Signal
from raytrader.ml.regime import (
    TREND_STATES,
    VOL_STATES,
    GaussianRegimeModel,
    RegimeModelConfig,
    RegimeResult,
    RuleRegimeClassifier,
    RuleRegimeConfig,
    RuleRegimes,
    on_timeframe,
)

__all__ = [
    "DEFAULT_RULE_SCORES",
    "MEMBERS",
    "EnsembleAgent",
    "EnsembleParams",
    "MLMember",
    "Member",
    "RegimeMember",
    "RegimeMemberParams",
]

MEMBERS = ("ml", "rl", "regime")

#: Trend up +1 and down -1 in calm and normal markets; no view when volatility is high or the
#: market goes sideways.
DEFAULT_RULE_SCORES: dict[str, float] = {
    f"{t}/{v}": (0.0 if v == "high" else {"up": 1.0, "down": -1.0, "sideways": 0.0}[t])
    for t in TREND_STATES
    for v in VOL_STATES
}


@runtime_checkable
class Member(Protocol):
    """One voter of the ensemble."""

    @property
    def warmup(self) -> int: ...

    def scores(self, data: MarketData) -> FloatArray:
        """Votes in [-1, 1] of shape ``(n_symbols, n_bars)``, causal; NaN: no opinion."""
        ...


class MLMember:
    """Votes P(up) - P(down) of an ``ml`` agent's model (NaN in sample and in warm-up)."""

    def __init__(self, params: MLAgentParams) -> None:
        self.agent = MLAgent(params)

    @property
    def warmup(self) -> int:
        return self.agent.warmup

    def scores(self, data: MarketData) -> FloatArray:
        ind = self.agent.indicators(data)
        return np.clip(ind["p_up"] - ind["p_down"], -1.0, 1.0)


class RegimeMemberParams(BaseModel):
    """The regime voter: a classifier, the timeframe it reads and a score per state."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Literal["rules", "model"] = "rules"
    timeframe: str | None = Field(
        None, description="classify bars resampled to this timeframe (e.g. 1w); None: as is"
    )
    rules: RuleRegimeConfig = RuleRegimeConfig()
    model: RegimeModelConfig = RegimeModelConfig()
    fit_bars: int = Field(
        500, ge=50, description="model: fitted on the first bars; no vote up to their end"
    )
    state_scores: dict[str, float] | None = Field(
        None,
        description="score per state: rules 'up/low' ... 'down/high' (default: up +1, down "
        "-1, high volatility 0); model 'low_vol' ... (default: the state's mean trend score "
        "clipped to [-1, 1])",
    )

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, tf: str | None) -> str | None:
        if tf is not None:
            timeframe_to_timedelta(tf)
        return tf

    @model_validator(mode="after")
    def _check(self) -> RegimeMemberParams:
        if self.state_scores is None:
            return self
        if self.source == "rules":
            known: tuple[str, ...] = tuple(DEFAULT_RULE_SCORES)
        else:
            known = GaussianRegimeModel(self.model).states
        unknown = sorted(set(self.state_scores) - set(known))
        if unknown:
            raise ValueError(f"state_scores: unknown states {unknown} (states: {list(known)})")
        if any(not -1.0 <= v <= 1.0 for v in self.state_scores.values()):
            raise ValueError("state_scores must lie in [-1, 1]")
        return self


class RegimeMember:
    """Votes the expected score of the regime's states: sum over states of P(state) x score."""

    def __init__(self, params: RegimeMemberParams) -> None:
        self.params = params

    @property
    def warmup(self) -> int:
        p = self.params
        return p.rules.warmup if p.source == "rules" else max(p.fit_bars, p.model.warmup)

    def _symbol_scores(self, frame: pd.DataFrame) -> FloatArray:
        p = self.params
        if p.source == "rules":
            classifier = RuleRegimeClassifier(p.rules)
            rules = on_timeframe(frame, p.timeframe, classifier.classify)
            assert isinstance(rules, RuleRegimes)
            proba = rules.joint.proba
            scores = {**DEFAULT_RULE_SCORES, **(p.state_scores or {})}
            rule_out: FloatArray = proba.to_numpy() @ np.array([scores[s] for s in proba.columns])
            return rule_out
        if len(frame) < p.fit_bars:
            return np.full(len(frame), np.nan)
        # Only coarse bars complete by the close of the last fitted bar are fitted on.
        index = pd.DatetimeIndex(frame.index)
        step = infer_timeframe(index) or pd.Timedelta(0)
        cutoff = index[p.fit_bars - 1] + step
        span = timeframe_to_timedelta(p.timeframe) if p.timeframe else step
        model = GaussianRegimeModel(p.model)

        def classify(f: pd.DataFrame) -> RegimeResult:
            model.fit(f[pd.DatetimeIndex(f.index) + span <= cutoff])
            return model.filter(f)

        result = on_timeframe(frame, p.timeframe, classify)
        assert isinstance(result, RegimeResult)
        defaults = np.clip(model.state_means()["trend"].to_numpy(), -1.0, 1.0)
        given = p.state_scores or {}
        table = np.array([given.get(s, d) for s, d in zip(model.states, defaults, strict=True)])
        out: FloatArray = result.proba.to_numpy() @ table
        out[: p.fit_bars] = np.nan  # in sample
        return out

    def scores(self, data: MarketData) -> FloatArray:
        out = np.full((len(data.symbols), data.n_bars), np.nan)
        for j, symbol in enumerate(data.symbols):
            frame = data.frame(symbol)
            if frame.empty:
                continue
            rows = data.index.get_indexer(frame.index)
            out[j, rows] = self._symbol_scores(frame)
        clipped: FloatArray = np.clip(out, -1.0, 1.0)
        return clipped


class MemberRef(BaseModel):
    """A registered agent used as a member (it must have a ``scores`` method)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class MemberWeights(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ml: float = Field(0.4, ge=0)
    rl: float = Field(0.4, ge=0)
    regime: float = Field(0.2, ge=0)


class EnsembleParams(AgentParams):
    ml: MLAgentParams | None = Field(None, description="params of the ml member; None: absent")
    rl: MemberRef | None = Field(None, description="an agent with a scores method; None: absent")
    regime: RegimeMemberParams | None = Field(
        RegimeMemberParams(), description="the regime member; None: absent"
    )
    weights: MemberWeights = MemberWeights()
    long_threshold: float = Field(0.25, gt=0, le=1, description="combined score opening a long")
    short_threshold: float = Field(
        0.25, gt=0, le=1, description="minus the combined score opening a short"
    )
    exit_threshold: float = Field(
        0.0, ge=0, le=1, description="a long closes below +exit, a short above -exit"
    )
    sizing: Literal["fixed", "score"] = Field(
        "score", description="fixed: max_weight; score: max_weight x |combined score|"
    )
    max_weight: float = Field(1.0, gt=0, le=1)
    min_change: float = Field(0.1, ge=0, le=1)
    allow_short: bool = False

    @model_validator(mode="after")
    def _check(self) -> EnsembleParams:
        present = [m for m in MEMBERS if getattr(self, m) is not None]
        if not present:
            raise ValueError("an ensemble needs at least one member (ml, rl or regime)")
        if sum(getattr(self.weights, m) for m in present) <= 0:
            raise ValueError(f"weights of the members present ({present}) sum to 0")
        if self.exit_threshold > min(self.long_threshold, self.short_threshold):
            raise ValueError("exit_threshold must not exceed long_threshold and short_threshold")
        if self.rl is not None:
            agent = create(self.rl.agent, self.rl.params)
            if not isinstance(agent, Member):
                raise ValueError(f"rl: agent {self.rl.agent!r} has no scores method to vote with")
        return self


@register
class EnsembleAgent(Agent):
    """A weighted vote of its members, renormalized over those with an opinion at each bar.

    The combined score in [-1, 1] opens a long at ``long_threshold`` (a short at
    ``-short_threshold`` if allowed), closes it when the score falls below ``exit_threshold``
    and holds in between. Each signal's ``reason`` lists every member's score and weight.
    """

    name = "ensemble"
    Params = EnsembleParams
    params: EnsembleParams

    def __init__(self, params: AgentParams | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        p = self.params
        self.members: dict[str, Member] = {}
        if p.ml is not None:
            self.members["ml"] = MLMember(p.ml)
        if p.rl is not None:
            agent = create(p.rl.agent, p.rl.params)
            assert isinstance(agent, Member)
            self.members["rl"] = agent
        if p.regime is not None:
            self.members["regime"] = RegimeMember(p.regime)
        self._targets: dict[str, float] = {}

    @property
    def warmup(self) -> int:
        return max(m.warmup for m in self.members.values())

    def indicators(self, data: MarketData) -> dict[str, FloatArray]:
        return {f"score_{name}": m.scores(data) for name, m in self.members.items()}

    def active_bars(
        self, data: MarketData, indicators: Mapping[str, FloatArray]
    ) -> npt.NDArray[np.bool_]:
        """Bars at which some member votes for some symbol."""
        voted = np.zeros(data.n_bars, dtype=bool)
        for arr in indicators.values():
            voted |= np.isfinite(arr).any(axis=0)
        return voted

    def combine(self, scores: Mapping[str, float]) -> tuple[float, dict[str, float]] | None:
        """The combined score and the weight each voting member got (renormalized over the
        members with a finite score and a positive weight), or None when nobody votes."""
        raw = {
            m: getattr(self.params.weights, m)
            for m, s in scores.items()
            if math.isfinite(s) and getattr(self.params.weights, m) > 0
        }
        total = sum(raw.values())
        if total <= 0:
            return None
        weights = {m: w / total for m, w in raw.items()}
        combined = sum(weights[m] * scores[m] for m in weights)
        return max(-1.0, min(1.0, combined)), weights

    def target(self, score: float, current: float) -> float:
        """The target weight for a combined score, holding ``current`` in between."""
        p = self.params
        size = p.max_weight if p.sizing == "fixed" else p.max_weight * abs(score)
        if score >= p.long_threshold:
            return size
        if p.allow_short and score <= -p.short_threshold:
            return -size
        if (current > 0 and score < p.exit_threshold) or (
            current < 0 and score > -p.exit_threshold
        ):
            return 0.0
        return current

    def on_bar(self, ctx: BarContext) -> Sequence[Signal] | None:
        out: list[Signal] | None = None
        for j, symbol in enumerate(ctx.symbols):
            scores = {m: ctx.value(f"score_{m}", j) for m in self.members}
            vote = self.combine(scores)
            if vote is None:
                continue
            score, weights = vote
            current = self._targets.get(symbol, 0.0)
            new = self.target(score, current)
            flips = (new > 0) != (current > 0) or (new < 0) != (current < 0)
            if new == current or (not flips and abs(new - current) < self.params.min_change):
                continue
            self._targets[symbol] = new
            votes = ", ".join(
                f"{m}={scores[m]:+.3f} (w={weights[m]:.2f})"
                if m in weights
                else f"{m}=none (w=0.00)"
                for m in self.members
            )
            out = out or []
            out.append(
                Signal(
                    symbol,
                    ctx.ts,
                    direction=(new > 0) - (new < 0),
                    weight=new,
                    strength=min(1.0, abs(score)),
                    reason=f"ensemble score={score:+.3f}: {votes}",
                )
            )
        return out

    def get_state(self) -> dict[str, Any]:
        return {"targets": dict(self._targets)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._targets = {str(k): float(v) for k, v in state.get("targets", {}).items()}
