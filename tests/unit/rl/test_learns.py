"""It learns, honestly: on returns with a known predictable component a small PPO budget
beats buy-and-hold and random policies out of sample, after costs, through the backtest
engine; on a random walk it finds no edge."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raytrader.agents.rl_agent import RLAgent
from raytrader.backtesting.engine import BacktestEngine
from raytrader.data.market_data import MarketData
from raytrader.execution.paper_broker import PaperBrokerConfig
from raytrader.rl.config import TradingEnvConfig
from raytrader.rl.env import TradingEnv
from raytrader.rl.registry import PolicyRegistry
from raytrader.rl.training import RLTrainSpec, train_policy
from tests.unit.ml._synthetic import ar1_frame

N_BARS, N_TRAIN = 3000, 2000
COSTS = PaperBrokerConfig.model_validate({"commission": {"bps": 5}, "slippage": {"bps": 2}})
ENV = TradingEnvConfig(
    broker=COSTS,
    columns=("ret_1", "ret_5"),
    window=2,
    feature_scale=100.0,  # one-bar returns are ~1e-2; the networks learn faster near 1
    episode_bars=200,
    min_change=0.0,
)
SPEC = RLTrainSpec(
    env=ENV,
    total_timesteps=4000,
    seed=0,
    net_arch=(16,),
    params={"n_steps": 256, "batch_size": 64, "learning_rate": 3e-3, "n_epochs": 5},
)


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PolicyRegistry]:
    monkeypatch.setenv("RAYTRADER_DATA_DIR", str(tmp_path))
    yield PolicyRegistry()


def _alpha_t(equity: pd.Series, close: pd.Series) -> float:
    """t-statistic of the intercept of the strategy's bar returns on the market's: the edge
    left after the market exposure."""
    r = equity.pct_change().dropna()
    m = close.pct_change().reindex(r.index)
    X = np.column_stack([np.ones(len(r)), m.to_numpy()])
    coef, *_ = np.linalg.lstsq(X, r.to_numpy(), rcond=None)
    resid = r.to_numpy() - X @ coef
    cov = resid @ resid / (len(r) - 2) * np.linalg.inv(X.T @ X)
    return float(coef[0] / np.sqrt(cov[0, 0]))


def _env_return(data: MarketData, policy: Callable[[np.ndarray], int]) -> float:
    env = TradingEnv(data, ENV.model_copy(update={"episode_bars": None}))
    obs, _ = env.reset(seed=0)
    while True:
        obs, _, terminated, truncated, info = env.step(policy(obs))
        if terminated or truncated:
            return float(info["equity"]) / ENV.initial_cash - 1.0


def _trained(phi: float, seed: int, registry: PolicyRegistry) -> tuple[MarketData, float, float]:
    """Train on the first bars, backtest the agent on the rest: its data, return, alpha t."""
    frame = ar1_frame(N_BARS, phi, seed)
    result = train_policy(MarketData.from_frames({"AR": frame.iloc[:N_TRAIN]}), SPEC)
    registry.save("ar", result.model, result.info)
    test = MarketData.from_frames({"AR": frame.iloc[N_TRAIN:]})
    agent = RLAgent(model="ar")  # trades only after the training window (it is all after)
    bt = BacktestEngine(ENV.initial_cash, ENV.broker, ENV.portfolio).run(test, [agent])
    equity = bt.equity.iloc[ENV.warmup :]
    ret = float(equity.iloc[-1] / equity.iloc[0] - 1.0)
    return test, ret, _alpha_t(equity, frame["close"].iloc[N_TRAIN:])


@pytest.mark.parametrize("seed", [8, 21])
def test_ppo_beats_buy_and_hold_and_random_out_of_sample_after_costs(
    registry: PolicyRegistry, seed: int
) -> None:
    test, ret, alpha_t = _trained(0.4, seed, registry)
    hold = _env_return(test, lambda _: 1)
    rng = np.random.default_rng(0)
    randoms = [_env_return(test, lambda _: int(rng.integers(0, 2))) for _ in range(3)]
    assert ret > hold + 0.5 and ret > max(randoms) + 0.5
    assert alpha_t > 4


@pytest.mark.parametrize("seed", [8, 21])
def test_ppo_finds_no_edge_on_a_random_walk(registry: PolicyRegistry, seed: int) -> None:
    test, ret, alpha_t = _trained(0.0, seed, registry)
    hold = _env_return(test, lambda _: 1)
    assert ret < hold + 0.1
    assert alpha_t < 2
