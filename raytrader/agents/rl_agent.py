"""An agent that trades a trained RL policy from the policy registry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import Field, model_validator

from raytrader.agents.base import Agent, AgentParams
from raytrader.agents.context import BarContext
from raytrader.agents.registry import register
from raytrader.data.market_data import FloatArray, MarketData
from raytrader.domain import Fill, Signal
from raytrader.ml.registry import ModelNotFoundError, RegisteredModel
from raytrader.rl.config import (
    TradingEnvConfig,
    decode_action,
    feature_tensor,
    observation,
    target_signals,
    weights_of,
)
from raytrader.rl.registry import PolicyRegistry
from raytrader.state.ledger import Ledger

_LIVE = "rl_live"


class RLAgentParams(AgentParams):
    model: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="policy name in the registry (RAYTRADER_DATA_DIR/policies)",
    )
    version: int | None = Field(None, ge=1, description="policy version; None: the latest")
    trade_in_sample: bool = Field(
        False, description="also trade bars up to the end of the policy's training data"
    )

    @model_validator(mode="after")
    def _check(self) -> RLAgentParams:
        try:  # a missing policy is a config error, not a failure at the first bar
            registry = PolicyRegistry()
            versions = registry.versions(self.model)
            if self.version is not None and self.version not in versions:
                registry.metadata(self.model, self.version)
        except ModelNotFoundError as exc:
            raise ValueError(str(exc)) from None
        return self


@register
class RLAgent(Agent):
    """Acts on a registry policy's deterministic actions, observing what its environment did.

    At each close it builds the observation its ``TradingEnv`` built in training (the same
    feature windows, the account's position weights, the unrealized PnL of its own fills) and
    sends the targets of the policy's action, when they move by the env's ``min_change``: so
    a backtest of the agent on the env's data gives the env's fills and equity. The symbols
    must be those the policy was trained on, in the same order. By default nothing is traded
    up to the policy's ``training_end``: those bars are in sample.
    """

    name = "rl"
    Params = RLAgentParams
    params: RLAgentParams

    def __init__(self, params: AgentParams | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        self._loaded: RegisteredModel | None = None
        self._targets: dict[str, float] = {}
        # Cost basis of the agent's own fills, for the observation's unrealized PnL (cash is
        # not read, so it starts at 0).
        self._book = Ledger(0.0)

    @classmethod
    def of_policy(cls, loaded: RegisteredModel, trade_in_sample: bool = False) -> RLAgent:
        """The agent of a policy loaded already, from any registry (the params' own check
        reads the default one, so they are built unchecked: the policy exists)."""
        params = RLAgentParams.model_construct(
            model=loaded.record.name, version=loaded.record.version, trade_in_sample=trade_in_sample
        )
        agent = cls(params)
        agent._loaded = loaded
        return agent

    @property
    def loaded(self) -> RegisteredModel:
        """The registry policy (loaded on first use; this imports torch)."""
        if self._loaded is None:
            self._loaded = PolicyRegistry().load(self.params.model, self.params.version)
        return self._loaded

    @property
    def env_config(self) -> TradingEnvConfig:
        return TradingEnvConfig.model_validate(self.loaded.record.params["env"])

    @property
    def warmup(self) -> int:
        return self.env_config.warmup

    def indicators(self, data: MarketData) -> dict[str, FloatArray]:
        """One array per observed feature, plus ``rl_live``: 1 where the agent may trade."""
        trained = list(self.loaded.record.params.get("symbols", []))
        if list(data.symbols) != trained:
            raise ValueError(
                f"policy {self.params.model!r} trades {trained}, the data has {list(data.symbols)}"
            )
        cfg = self.env_config
        feats = feature_tensor(data, cfg)
        out = {f"rl_{k}": np.ascontiguousarray(feats[:, :, k]) for k in range(len(cfg.columns))}
        live = np.ones((len(data.symbols), data.n_bars))
        # Nothing before the first full window of every symbol's features, as in the env.
        finite = np.isfinite(feats).all(axis=(0, 2))
        first = int(np.argmax(finite)) if finite.any() else data.n_bars
        live[:, : max(first + cfg.window - 1, cfg.warmup)] = 0.0
        end = self.loaded.record.training_end
        if not self.params.trade_in_sample and end is not None:
            live[:, np.asarray(data.index <= pd.Timestamp(end))] = 0.0
        out[_LIVE] = live
        return out

    def active_bars(
        self, data: MarketData, indicators: Mapping[str, FloatArray]
    ) -> npt.NDArray[np.bool_]:
        return np.asarray(indicators[_LIVE][0] > 0)

    def on_bar(self, ctx: BarContext) -> Sequence[Signal] | None:
        if not ctx.value(_LIVE) > 0:
            return None
        cfg = self.env_config
        w = cfg.window
        windows = []
        for j in range(len(ctx.symbols)):
            cols = [ctx.history(f"rl_{k}", j, w) for k in range(len(cfg.columns))]
            window = np.stack(cols, axis=1)
            if window.shape[0] < w:
                return None  # the env never observes an incomplete window
            windows.append(window)  # NaN (a symbol's gap) reads as 0, as in the env
        closes = {s: _last_close(ctx, j) for j, s in enumerate(ctx.symbols)}
        equity = ctx.equity()
        held = {s: ctx.position(s) for s in ctx.symbols}
        held_here = {s: p.quantity for s, p in self._book.positions().items()}
        unrealized = (
            self._book.unrealized_pnl({s: closes[s] for s in held_here}) / equity
            if equity > 0
            else 0.0
        )
        obs = observation(windows, weights_of(held, closes, equity), unrealized, cfg.obs_clip)
        action, _ = self.loaded.model.predict(obs, deterministic=True)
        targets = decode_action(action, cfg, len(ctx.symbols))
        return target_signals(targets, self._targets, ctx.symbols, ctx.ts, cfg.min_change) or None

    def scores(self, data: MarketData) -> FloatArray:
        """Votes in [-1, 1] for the ensemble: at each bar the target the policy sends there
        (over ``max_weight``), running its own simulated account through its environment on
        ``data``; causal, as the environment is. NaN before the warm-up and, unless
        ``trade_in_sample``, up to the end of the training data."""
        from raytrader.rl.env import TradingEnv

        live = self.indicators(data)[_LIVE][0] > 0
        cfg = self.env_config.model_copy(update={"episode_bars": None})
        env = TradingEnv(data, cfg)
        out = np.full((len(data.symbols), data.n_bars), np.nan)
        obs, _ = env.reset(seed=0)
        model = self.loaded.model
        while True:
            action, _ = model.predict(obs, deterministic=True)
            targets = decode_action(action, cfg, len(data.symbols))
            out[:, env.t] = np.clip(np.asarray(targets) / cfg.max_weight, -1.0, 1.0)
            if env.t >= data.n_bars - 1:
                break
            obs, _, terminated, _, _ = env.step(action)
            if terminated:  # bust: no opinion after it
                break
        out[:, ~live] = np.nan
        return out

    def on_fill(self, fill: Fill) -> None:
        self._book.apply_fill(fill)

    def get_state(self) -> dict[str, Any]:
        return {"targets": dict(self._targets), "book": self._book.snapshot()}

    def set_state(self, state: dict[str, Any]) -> None:
        self._targets = {str(k): float(v) for k, v in state.get("targets", {}).items()}
        if "book" in state:
            self._book = Ledger.from_snapshot(state["book"])


def _last_close(ctx: BarContext, j: int) -> float:
    """The symbol's close, or its last close when it has no bar now (the engine's marks)."""
    close = ctx.close(j)
    if close == close:
        return close
    past = ctx.price_history("close", j, ctx.i + 1)
    seen = past[np.isfinite(past)]
    return float(seen[-1]) if seen.size else close
