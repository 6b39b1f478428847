"""Inference: the targets a registry policy sends on some bars (``POST /api/rl/infer``)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from raytrader.data.market_data import MarketData

if TYPE_CHECKING:
    from raytrader.agents.rl_agent import RLAgent
    from raytrader.rl.registry import PolicyRegistry

__all__ = ["PolicyTarget", "infer_targets", "policy_agent"]


class PolicyTarget(BaseModel):
    """The target weight of ``symbol`` the policy sends at the close of ``ts``."""

    model_config = ConfigDict(frozen=True)

    ts: datetime
    symbol: str
    target_weight: float


def policy_agent(
    model: str,
    version: int | None = None,
    trade_in_sample: bool = False,
    registry: PolicyRegistry | None = None,
) -> RLAgent:
    """The ``rl`` agent of a policy; from ``registry`` when given (an app's own data
    directory), else from the default registry the agent reads in sessions. Raises
    ``ModelNotFoundError`` for an unknown policy or version."""
    from raytrader.agents.rl_agent import RLAgent

    if registry is None:
        return RLAgent(model=model, version=version, trade_in_sample=trade_in_sample)
    return RLAgent.of_policy(registry.load(model, version), trade_in_sample)


def infer_targets(
    data: MarketData,
    model: str,
    version: int | None = None,
    limit: int | None = None,
    trade_in_sample: bool = True,
    registry: PolicyRegistry | None = None,
) -> list[PolicyTarget]:
    """The policy's target weights per bar and symbol (deterministic actions, its own
    simulated account from the first bar with a full observation), the last ``limit`` bars.
    In-sample bars are included by default: inference answers what the policy does there."""
    agent = policy_agent(model, version, trade_in_sample, registry)
    votes = agent.scores(data) * agent.env_config.max_weight
    rows = [
        PolicyTarget(ts=data.ts(i), symbol=s, target_weight=float(votes[j, i]))
        for i in range(data.n_bars)
        for j, s in enumerate(data.symbols)
        if not math.isnan(votes[j, i])
    ]
    if limit is not None:
        rows = rows[-limit * len(data.symbols) :] if limit > 0 else []
    return rows
