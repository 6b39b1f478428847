"""Out-of-sample evaluation of a registry policy against buy-and-hold and random policies.

Every contender is a backtest through the event engine with the policy's own costs, limits
and action space, acting from the same first bar (the policy's first bar after its warm-up
and its training window): the policy as the ``rl`` agent, buy-and-hold as its full long
action, and seeded random draws of its action space. What ``POST /api/rl/evaluate`` reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from raytrader.agents.base import Agent
from raytrader.agents.context import BarContext
from raytrader.backtesting.engine import BacktestEngine
from raytrader.data.market_data import MarketData
from raytrader.domain import Signal
from raytrader.rl.config import TradingEnvConfig, decode_action, target_signals
from raytrader.rl.registry import PolicyRegistry
from raytrader.state.metrics import Metrics, compute_metrics, periods_per_year

__all__ = ["PolicyEvaluation", "evaluate_policy"]


class PolicyEvaluation(BaseModel):
    """Metrics of the policy, buy-and-hold and each random policy over the same bars."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    model: str
    version: int
    first_bar: int
    policy: Metrics
    buy_and_hold: Metrics
    random: list[Metrics]

    @property
    def beats_buy_and_hold(self) -> bool:
        return self.policy.total_return > self.buy_and_hold.total_return

    @property
    def beats_random(self) -> bool:
        """Above every random policy's total return."""
        return all(self.policy.total_return > r.total_return for r in self.random)

    def summary(self) -> dict[str, Any]:
        """Total return, Sharpe and max drawdown of each contender, and who beat whom."""

        def short(m: Metrics) -> dict[str, float]:
            return {k: getattr(m, k) for k in ("total_return", "sharpe", "max_drawdown")}

        rand = [r.total_return for r in self.random]
        return {
            "model": self.model,
            "version": self.version,
            "policy": short(self.policy),
            "buy_and_hold": short(self.buy_and_hold),
            "random_total_return": {"mean": float(np.mean(rand)), "max": max(rand)} if rand else {},
            "beats_buy_and_hold": self.beats_buy_and_hold,
            "beats_random": self.beats_random,
        }


class _Scripted(Agent):
    """Sends the targets of ``choose(bar)`` from ``first`` on, as the RL agent sends its own."""

    name = "rl-baseline"

    def __init__(self, cfg: TradingEnvConfig, first: int, choose: Callable[[int], object]) -> None:
        super().__init__()
        self.cfg, self.first, self.choose = cfg, first, choose
        self._targets: dict[str, float] = {}

    @property
    def warmup(self) -> int:
        return self.first

    def on_bar(self, ctx: BarContext) -> Sequence[Signal] | None:
        targets = decode_action(self.choose(ctx.i), self.cfg, len(ctx.symbols))
        sent = target_signals(targets, self._targets, ctx.symbols, ctx.ts, self.cfg.min_change)
        return sent or None


def _full_long(cfg: TradingEnvConfig, n_symbols: int) -> object:
    if cfg.action == "long_flat":
        return 1
    if cfg.action == "short_flat_long":
        return 2
    return np.ones(n_symbols, dtype=np.float32)  # equal weights, scaled to a gross of 1


def _after_validation(
    data: MarketData, params: dict[str, Any], cfg: TradingEnvConfig, trade_in_sample: bool
) -> MarketData:
    """``data`` from ``cfg.warmup`` bars before the first bar after the policy's validation
    window (the early stop picked the policy there), so it acts first on that bar; unchanged
    without a validation window or with ``trade_in_sample``."""
    end = params.get("validation_end")
    if end is None or trade_in_sample:
        return data
    after = int(data.index.searchsorted(pd.Timestamp(end), side="right"))
    if after >= data.n_bars:
        raise ValueError(f"no bar of the data is after the validation window (ends {end})")
    return data.slice(max(0, after - cfg.warmup), data.n_bars)


def evaluate_policy(
    data: MarketData,
    model: str,
    version: int | None = None,
    n_random: int = 5,
    seed: int = 0,
    trade_in_sample: bool = False,
    registry: PolicyRegistry | None = None,
) -> PolicyEvaluation:
    """Backtest policy ``model`` (from ``registry``, by default the policy registry) on
    ``data`` against buy-and-hold and ``n_random`` seeded random policies; all start at the
    policy's first tradable bar: after its training window and, unless ``trade_in_sample``,
    after its validation window (``first_bar`` counts from the bars evaluated)."""
    from raytrader.rl.env import TradingEnv
    from raytrader.rl.infer import policy_agent

    agent = policy_agent(model, version, trade_in_sample, registry)
    cfg = agent.env_config
    data = _after_validation(data, agent.loaded.record.params, cfg, trade_in_sample)
    live = agent.indicators(data)["rl_live"][0] > 0
    env = TradingEnv(data, cfg)  # its start is the first bar with a full observation
    live[: env.start] = False
    if not live.any():
        raise ValueError(f"no bar of the data is out of policy {model!r}'s training window")
    first = int(np.argmax(live))
    engine = BacktestEngine(cfg.initial_cash, cfg.broker, cfg.portfolio, run_id="rl-eval")

    ppy = periods_per_year(data.index)

    def window_metrics(agent: Agent) -> Metrics:
        """Metrics from the first tradable bar's close on: the idle warm-up would dilute them."""
        result = engine.run(data, [agent])
        equity = result.equity.iloc[first:]
        exposure = (result.gross_exposure / result.equity).fillna(0.0).iloc[first:]
        traded = float(sum(f.notional for f in result.fills))
        return compute_metrics(
            equity,
            result.trades,
            periods_per_year=ppy,
            exposure=exposure,
            traded_notional=traded,
        )

    n_sym = len(data.symbols)
    hold = _full_long(cfg, n_sym)
    randoms: list[Metrics] = []
    for k in range(n_random):
        space = env.action_space
        space.seed(seed + k)
        draws = [space.sample() for _ in range(data.n_bars)]
        randoms.append(window_metrics(_Scripted(cfg, first, draws.__getitem__)))
    record = agent.loaded.record
    return PolicyEvaluation(
        model=model,
        version=record.version,
        first_bar=first,
        policy=window_metrics(agent),
        buy_and_hold=window_metrics(_Scripted(cfg, first, lambda _: hold)),
        random=randoms,
    )
