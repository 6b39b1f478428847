"""The RL agent: registered, params checked against the policy registry, and in a backtest
it takes the actions its environment took, with the same fills and equity."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from raytrader.agents import AgentConfigError, available, create
from raytrader.agents.rl_agent import RLAgent
from raytrader.backtesting.engine import BacktestEngine
from raytrader.data.market_data import MarketData
from raytrader.execution.costs import CommissionModel, SlippageModel
from raytrader.execution.paper_broker import PaperBrokerConfig
from raytrader.portfolio.config import PortfolioConfig
from raytrader.risk.limits import RiskLimits
from raytrader.rl.config import TradingEnvConfig
from raytrader.rl.env import TradingEnv
from raytrader.rl.registry import PolicyRegistry
from raytrader.rl.training import RLTrainSpec, train_policy
from tests.unit.ml._synthetic import ar1_frame

COSTS = PaperBrokerConfig(commission=CommissionModel(bps=10), slippage=SlippageModel(bps=5))
SHORTS = PortfolioConfig(limits=RiskLimits(allow_short=True))
N_BARS, N_TRAIN = 500, 300
TINY_PPO = {"n_steps": 64, "batch_size": 32, "n_epochs": 2}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PolicyRegistry]:
    """Policies in a fresh data directory: ``sfl`` (short/flat/long, one symbol) and ``cont``
    (continuous weights, two symbols), each trained on the first ``N_TRAIN`` bars; shared by
    the module's tests, which only read it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAYTRADER_DATA_DIR", str(tmp_path_factory.mktemp("rl-agent")))
        yield _train_policies()


def _train_policies() -> PolicyRegistry:
    reg = PolicyRegistry()
    one = MarketData.from_frames({"AR": ar1_frame(N_BARS, 0.3, 1)}).slice(0, N_TRAIN)
    # Large features make the barely trained policy's actions move with them: more trades.
    env = TradingEnvConfig(
        action="short_flat_long", portfolio=SHORTS, broker=COSTS, feature_scale=50.0
    )
    spec = RLTrainSpec(env=env, total_timesteps=256, seed=3, params=TINY_PPO, net_arch=(16,))
    result = train_policy(one, spec)
    reg.save("sfl", result.model, result.info)
    two = MarketData.from_frames({"A": ar1_frame(N_BARS, 0.3, 2), "B": ar1_frame(N_BARS, 0.3, 3)})
    # The barely trained means move little: trade every change of the targets.
    env2 = TradingEnvConfig(
        action="continuous", broker=COSTS, portfolio=PortfolioConfig(lot_size=0), min_change=0.0
    )
    result2 = train_policy(two.slice(0, N_TRAIN), spec.model_copy(update={"env": env2}))
    reg.save("cont", result2.model, result2.info)
    return reg


def test_rl_agent_is_registered_and_params_name_the_missing_policy(
    registry: PolicyRegistry,
) -> None:
    assert "rl" in available()
    with pytest.raises(AgentConfigError, match="no model named 'nope'"):
        create("rl", {"model": "nope"})
    with pytest.raises(AgentConfigError, match="model 'sfl' has no version 3"):
        create("rl", {"model": "sfl", "version": 3})
    agent = create("rl", {"model": "sfl", "version": 1})
    assert isinstance(agent, RLAgent)
    assert agent.warmup == agent.env_config.warmup


def _env_episode(policy: PolicyRegistry, name: str, data: MarketData) -> tuple[TradingEnv, list]:
    loaded = policy.load(name)
    cfg = TradingEnvConfig.model_validate(loaded.record.params["env"])
    env = TradingEnv(data, cfg)
    obs, _ = env.reset(seed=0)
    equity = [env.equity]
    while True:
        action, _ = loaded.model.predict(obs, deterministic=True)
        obs, _, term, trunc, info = env.step(action)
        equity.append(info["equity"])
        if term or trunc:
            return env, equity


@pytest.mark.parametrize(("name", "seeds"), [("sfl", {"AR": 1}), ("cont", {"A": 2, "B": 3})])
def test_backtest_of_the_agent_equals_its_environment_episode(
    registry: PolicyRegistry, name: str, seeds: dict[str, int]
) -> None:
    data = MarketData.from_frames({s: ar1_frame(N_BARS, 0.3, k) for s, k in seeds.items()})
    env, equity = _env_episode(registry, name, data)
    agent = RLAgent(model=name, trade_in_sample=True)
    cfg = agent.env_config
    result = BacktestEngine(cfg.initial_cash, cfg.broker, cfg.portfolio).run(data, [agent])
    env_fills = [(t.ts, t.symbol, t.quantity, t.price) for t in env.ledger.transactions]
    bt_fills = [(t.ts, t.symbol, t.quantity, t.price) for t in result.ledger.transactions]
    assert len(bt_fills) > 20 and bt_fills == env_fills
    np.testing.assert_allclose(result.equity.to_numpy()[env.start :], equity, rtol=1e-12)


def test_agent_trades_only_after_the_training_window_by_default(
    registry: PolicyRegistry,
) -> None:
    data = MarketData.from_frames({"AR": ar1_frame(N_BARS, 0.3, 1)})
    result = BacktestEngine(100_000.0, COSTS, SHORTS).run(data, [RLAgent(model="sfl")])
    end = registry.metadata("sfl").training_end
    assert result.fills and all(f.ts > end for f in result.fills)
    signals = result.signals_frame()
    assert len(signals) > 0


def test_agent_refuses_data_of_other_symbols(registry: PolicyRegistry) -> None:
    data = MarketData.from_frames({"XY": ar1_frame(N_BARS, 0.3, 1)})
    with pytest.raises(ValueError, match=r"trades \['AR'\]"):
        BacktestEngine().run(data, [RLAgent(model="sfl")])


def test_state_round_trip_keeps_targets_and_cost_basis(registry: PolicyRegistry) -> None:
    data = MarketData.from_frames({"AR": ar1_frame(N_BARS, 0.3, 1)})
    agent = RLAgent(model="sfl", trade_in_sample=True)
    BacktestEngine(100_000.0, COSTS, SHORTS).run(data, [agent])
    state = agent.get_state()
    again = RLAgent(model="sfl")
    again.set_state(state)
    assert again.get_state() == state and state["targets"]


def test_listing_agents_imports_no_torch_gymnasium_or_sb3() -> None:
    code = (
        "import sys; from raytrader.agents import available; assert 'rl' in available(); "
        "print([m for m in ('torch', 'gymnasium', 'stable_baselines3') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_scores_are_the_policy_targets_causal_and_vote_in_the_ensemble(
    registry: PolicyRegistry,
) -> None:
    frame = ar1_frame(N_BARS, 0.3, 1)
    data = MarketData.from_frames({"AR": frame})
    agent = RLAgent(model="sfl")
    scores = agent.scores(data)
    end = registry.metadata("sfl").training_end
    in_sample = np.asarray(data.index <= end)
    assert np.isnan(scores[0, in_sample]).all()
    voted = scores[0, ~in_sample]
    assert np.isin(voted, [-1.0, 0.0, 1.0]).all() and len(set(voted.tolist())) > 1
    # The votes are the targets of the agent's own backtest (it starts flat at the same bar).
    cut = 420
    changed = frame.copy()
    changed.iloc[cut + 1 :, :4] *= 1.3
    later = agent.scores(MarketData.from_frames({"AR": changed}))
    np.testing.assert_array_equal(scores[:, : cut + 1], later[:, : cut + 1])

    ensemble = create("ensemble", {"rl": {"agent": "rl", "params": {"model": "sfl"}}})
    ind = ensemble.indicators(data)
    np.testing.assert_array_equal(ind["score_rl"], scores)


def test_infer_gives_the_targets_the_agent_sends_in_a_backtest(
    registry: PolicyRegistry,
) -> None:
    from raytrader.rl.infer import infer_targets

    data = MarketData.from_frames({"AR": ar1_frame(N_BARS, 0.3, 1)})
    rows = infer_targets(data, "sfl")
    agent = RLAgent(model="sfl", trade_in_sample=True)
    assert rows[0].ts == data.ts(agent.warmup) and rows[-1].ts == data.ts(N_BARS - 1)
    by_ts = {r.ts: r.target_weight for r in rows}
    result = BacktestEngine(100_000.0, COSTS, SHORTS).run(data, [agent])
    sent = [(s.signal.ts, s.signal.weight) for s in result.signals]
    assert len(sent) > 5 and all(by_ts[ts] == w for ts, w in sent)
    assert [r.ts for r in infer_targets(data, "sfl", version=1, limit=3)] == [
        data.ts(i) for i in range(N_BARS - 3, N_BARS)
    ]


def test_session_host_fed_bar_by_bar_sends_the_backtest_signals(
    registry: PolicyRegistry,
) -> None:
    """A paper session's agent host, given the account the backtest had at each close and
    the fills as they happen, decides what the backtest's agent decided."""
    from raytrader.agents.host import AccountSnapshot, AgentHost

    data = MarketData.from_frames({"AR": ar1_frame(N_BARS, 0.3, 1)})
    bt_agent = RLAgent(model="sfl", trade_in_sample=True)  # in sample too: more decisions
    result = BacktestEngine(100_000.0, COSTS, SHORTS).run(data, [bt_agent])
    want = [(s.signal.ts, s.signal.weight) for s in result.signals]
    assert len(want) > 10

    agent = RLAgent(model="sfl", trade_in_sample=True)
    host = AgentHost([agent], ["AR"])
    start = agent.warmup
    host.extend(data.slice(0, start))
    held = 0.0
    live = []
    for i in range(start, N_BARS):
        host.extend(data.slice(i, i + 1))
        for fill in (f for f in result.fills if f.ts == data.ts(i)):
            agent.on_fill(fill)
            held += fill.signed_quantity
        equity = float(result.equity.iloc[i])
        account = AccountSnapshot(
            cash=equity - held * data.close[0, i],
            equity_value=equity,
            positions={"AR": held} if held else {},
        )
        live.extend((sig.ts, sig.weight) for _, sig in host.decide(account))
    assert live == want


def test_backtest_equals_the_environment_with_gaps_in_a_symbol(
    registry: PolicyRegistry,
) -> None:
    """B has no bars for a while: both mark it at its last close and read its missing
    features as 0, so the agent's backtest still gives the env's episode."""
    b = ar1_frame(N_BARS, 0.3, 3)
    b = b.drop(b.index[350:362])
    data = MarketData.from_frames({"A": ar1_frame(N_BARS, 0.3, 2), "B": b})
    assert np.isnan(data.close[1]).sum() == 12
    env, equity = _env_episode(registry, "cont", data)
    agent = RLAgent(model="cont", trade_in_sample=True)
    cfg = agent.env_config
    result = BacktestEngine(cfg.initial_cash, cfg.broker, cfg.portfolio).run(data, [agent])
    env_fills = [(t.ts, t.symbol, t.quantity, t.price) for t in env.ledger.transactions]
    bt_fills = [(t.ts, t.symbol, t.quantity, t.price) for t in result.ledger.transactions]
    assert len(bt_fills) > 20 and bt_fills == env_fills
    np.testing.assert_allclose(result.equity.to_numpy()[env.start :], equity, rtol=1e-12)
