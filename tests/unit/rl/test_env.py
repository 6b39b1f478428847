"""TradingEnv: the checkers, the engine's own fills and equity, no look-ahead, rewards."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from raytrader.agents.base import Agent
from raytrader.agents.context import BarContext
from raytrader.backtesting.engine import BacktestEngine
from raytrader.data.market_data import MarketData
from raytrader.domain import Signal
from raytrader.execution.costs import CommissionModel, SlippageModel
from raytrader.execution.paper_broker import PaperBrokerConfig
from raytrader.portfolio.config import PortfolioConfig
from raytrader.risk.limits import RiskLimits
from raytrader.rl.config import TradingEnvConfig, decode_action, target_signals
from raytrader.rl.env import TradingEnv
from tests.unit.ml._synthetic import ar1_frame

COSTS = PaperBrokerConfig(commission=CommissionModel(bps=10), slippage=SlippageModel(bps=5))
SHORTS = PortfolioConfig(limits=RiskLimits(allow_short=True))


def _data(n: int = 400, seed: int = 1, symbols: Sequence[str] = ("AR",)) -> MarketData:
    return MarketData.from_frames({s: ar1_frame(n, 0.3, seed + k) for k, s in enumerate(symbols)})


@pytest.mark.parametrize(
    ("action", "portfolio", "symbols"),
    [
        ("long_flat", PortfolioConfig(), ("AR",)),
        ("short_flat_long", SHORTS, ("AR",)),
        ("continuous", SHORTS, ("AR",)),
        ("continuous", PortfolioConfig(), ("A", "B", "C")),
    ],
)
def test_env_passes_gymnasium_and_sb3_checkers(
    action: str, portfolio: PortfolioConfig, symbols: tuple[str, ...]
) -> None:
    cfg = TradingEnvConfig.model_validate(
        {"action": action, "portfolio": portfolio, "broker": COSTS}
    )
    env = TradingEnv(_data(symbols=symbols), cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no spec" and render-mode notes, not failures
        check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    assert env.observation_space.shape == (cfg.n_features(len(symbols)),)


class _Replay(Agent):
    """Sends, at each bar's close, the targets of a recorded action sequence."""

    name = "rl-replay-test"

    def __init__(self, actions: dict[int, object], cfg: TradingEnvConfig, warmup: int) -> None:
        super().__init__()
        self.actions, self.cfg, self._warmup = actions, cfg, warmup
        self._targets: dict[str, float] = {}

    @property
    def warmup(self) -> int:
        return self._warmup

    def on_bar(self, ctx: BarContext) -> Sequence[Signal] | None:
        if ctx.i not in self.actions:
            return None
        targets = decode_action(self.actions[ctx.i], self.cfg, len(ctx.symbols))
        return target_signals(targets, self._targets, ctx.symbols, ctx.ts, self.cfg.min_change)


@pytest.mark.parametrize(
    ("action", "portfolio", "symbols"),
    [
        ("short_flat_long", SHORTS, ("AR",)),
        ("continuous", PortfolioConfig(lot_size=0.0), ("A", "B")),
        (
            "continuous",
            PortfolioConfig(
                lot_size=0.0,
                limits=RiskLimits(
                    allow_short=True,
                    max_order_notional=30_000.0,
                    max_var=0.012,
                    risk_lookback=20,
                    daily_loss_limit=0.01,
                    max_orders_per_minute=1,
                ),
            ),
            ("A", "B"),
        ),
    ],
)
def test_env_fills_and_equity_equal_the_backtest_engine(
    action: str, portfolio: PortfolioConfig, symbols: tuple[str, ...]
) -> None:
    """Random actions through the env and, replayed as an agent's signals, through the
    engine: the same fills, refusals aside, and the same equity at every step."""
    cfg = TradingEnvConfig.model_validate(
        {"action": action, "portfolio": portfolio, "broker": COSTS}
    )
    data = _data(n=300, symbols=symbols)
    env = TradingEnv(data, cfg)
    env.action_space.seed(3)
    env.reset(seed=0)
    actions: dict[int, object] = {}
    equity = [env.equity]
    fills = []
    done = False
    while not done:
        a = env.action_space.sample()
        actions[env.t] = a
        n_before = len(env.ledger.transactions)
        _, _, term, trunc, info = env.step(a)
        fills.extend(env.ledger.transactions[n_before:])
        equity.append(info["equity"])
        done = term or trunc
    assert env.t == data.n_bars - 1 and len(fills) > 20

    agent = _Replay(actions, cfg, env.start)
    result = BacktestEngine(cfg.initial_cash, COSTS, portfolio).run(data, [agent])
    env_fills = [(f.ts, f.symbol, f.quantity, f.price, f.commission) for f in fills]
    engine_fills = [
        (t.ts, t.symbol, t.quantity, t.price, t.commission) for t in result.ledger.transactions
    ]
    assert env_fills == engine_fills
    curve = result.equity.to_numpy()[env.start :]
    np.testing.assert_allclose(equity, curve, rtol=1e-12)
    refused = [(o.order.ts, o.order.symbol, o.reason) for o in result.orders if o.reason]
    env_refused = [(o.order.ts, o.order.symbol, o.reason) for o in env.refused]
    assert env_refused == [r for r in refused if r[2] != "superseded by a new signal"]
    if portfolio.limits.extended:  # each optional limit refused orders, as in the engine
        assert {r[2].split(":")[0] for r in env_refused} >= set(portfolio.limits.extended)


def _episode(env: TradingEnv, actions: Sequence[int]) -> tuple[list[np.ndarray], list[float]]:
    obs, _ = env.reset(seed=0)
    seen, rewards = [obs], []
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        seen.append(obs)
        rewards.append(r)
        if term or trunc:
            break
    return seen, rewards


def test_observations_do_not_see_the_future() -> None:
    """Rewriting every bar after ``cut`` leaves the observations up to ``cut`` bit-identical."""
    frame = ar1_frame(300, 0.3, 5)
    cut = 150
    changed = frame.copy()
    rng = np.random.default_rng(0)
    changed.iloc[cut + 1 :, :4] *= rng.uniform(0.5, 1.5, (len(frame) - cut - 1, 1))
    changed.iloc[cut + 1 :, 4] *= 7.0
    cfg = TradingEnvConfig(action="short_flat_long", portfolio=SHORTS, broker=COSTS)
    a = TradingEnv(MarketData.from_frames({"AR": frame}), cfg)
    b = TradingEnv(MarketData.from_frames({"AR": changed}), cfg)
    actions = [int(x) for x in np.random.default_rng(1).integers(0, 3, 300)]
    obs_a, rew_a = _episode(a, actions)
    obs_b, rew_b = _episode(b, actions)
    k = cut - a.start  # obs_a[k] is the observation at bar cut
    for x, y in zip(obs_a[: k + 1], obs_b[: k + 1], strict=True):
        np.testing.assert_array_equal(x, y)
    assert rew_a[:k] == rew_b[:k]
    assert not np.array_equal(obs_a[k + 1], obs_b[k + 1])


def test_rewards_are_equity_returns_net_of_costs_and_penalize_drawdown() -> None:
    data = _data(n=300, seed=2)
    actions = [int(x) for x in np.random.default_rng(4).integers(0, 2, 300)]
    pnl = TradingEnv(data, TradingEnvConfig(broker=COSTS, reward_scale=1.0))
    _, rewards = _episode(pnl, actions)
    growth = float(np.prod(1.0 + np.asarray(rewards)))
    assert growth == pytest.approx(pnl.equity / pnl.config.initial_cash, rel=1e-9)
    assert pnl.ledger.commission_paid > 0

    free = TradingEnv(data, TradingEnvConfig(reward_scale=1.0))
    _episode(free, actions)
    assert free.equity > pnl.equity  # the same trades without costs end richer

    risk = TradingEnv(
        data, TradingEnvConfig(broker=COSTS, reward="risk_adjusted", drawdown_penalty=2.0)
    )
    _, penalized = _episode(risk, actions)
    diff = np.asarray(penalized) - 100.0 * np.asarray(rewards)
    assert np.all(diff <= 1e-9) and np.any(diff < -1e-6)
    assert np.allclose(diff[np.asarray(rewards) > 0], 0.0)  # gains add no drawdown


def test_random_episode_start_is_seeded_and_bounded() -> None:
    env = TradingEnv(_data(n=300), TradingEnvConfig(episode_bars=50))
    starts = [env.reset(seed=s)[1]["t"] for s in range(5)]
    assert starts == [env.reset(seed=s)[1]["t"] for s in range(5)]
    assert len(set(starts)) > 1 and min(starts) >= env.start
    env.reset(seed=1)
    n = 0
    while True:
        n += 1
        _, _, term, trunc, _ = env.step(1)
        if term or trunc:
            break
    assert n == 50 and trunc


def test_config_refuses_what_the_env_does_not_run() -> None:
    with pytest.raises(ValueError, match="allow_short"):
        TradingEnvConfig(action="short_flat_long")
    with pytest.raises(ValueError, match="kill_switch"):
        TradingEnvConfig(portfolio={"kill_switch": {"max_drawdown": 0.2}})
    with pytest.raises(ValueError, match="unknown feature columns"):
        TradingEnvConfig(columns=("ret_1", "nope"))
    with pytest.raises(ValueError, match="one symbol"):
        TradingEnv(_data(symbols=("A", "B")), TradingEnvConfig())


def test_pre_trade_limits_cut_the_env_targets_as_the_engine_does() -> None:
    """max_position_weight 0.4: a full long of continuous weights holds at most 40% of equity."""
    capped = PortfolioConfig(lot_size=0.0, limits=RiskLimits(max_position_weight=0.4))
    cfg = TradingEnvConfig(action="continuous", portfolio=capped, broker=COSTS)
    env = TradingEnv(_data(n=200), cfg)
    env.reset(seed=0)
    weights = []
    for _ in range(30):
        obs, *_ = env.step(np.ones(1, dtype=np.float32))
        weights.append(float(obs[-2]))  # the position weight, just before the unrealized PnL
    assert max(weights) == pytest.approx(0.4, abs=0.02) and max(weights) < 0.41
    assert any(a.reason == "max_position_weight" for a in env.planner.rebalancer.adjustments)
