"""Several agents sharing one account: capital weights, netted targets, attribution."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from raytrader.agents import Agent, create
from raytrader.agents.context import BarContext
from raytrader.backtesting.attribution import TRADING
from raytrader.backtesting.config import BacktestConfig
from raytrader.backtesting.engine import BacktestEngine
from raytrader.backtesting.fast_path import FastPathUnsupported, run_fast, unsupported_reason
from raytrader.data.market_data import MarketData
from raytrader.domain import Signal
from raytrader.execution import CommissionModel, PaperBrokerConfig, SlippageModel
from raytrader.portfolio import PortfolioConfig
from raytrader.portfolio.allocation import (
    UNALLOCATED,
    CombinedTargets,
    attribute_pnl,
    attribute_positions,
)
from raytrader.portfolio.config import AgentCapital
from raytrader.risk import RiskLimits
from raytrader.risk.sizing import SizingConfig

Frame = Callable[..., pd.DataFrame]


class Scripted(Agent):
    """Emits given target weights at given bars."""

    name = "scripted"

    def __init__(self, script: dict[int, dict[str, float]]) -> None:
        super().__init__()
        self.script = script

    def on_bar(self, ctx: BarContext) -> list[Signal] | None:
        targets = self.script.get(ctx.i, {})
        return [Signal(s, ctx.ts, weight=w, reason=f"bar {ctx.i}") for s, w in targets.items()]


class Trend(Scripted):
    name = "trend"


class Hedge(Scripted):
    name = "hedge"


def frame(closes: list[float]) -> pd.DataFrame:
    """Daily bars opening at the previous close (the first at its own close)."""
    index = pd.date_range("2024-01-01", periods=len(closes), freq="1D", tz="UTC", name="ts")
    close = np.asarray(closes, dtype=float)
    open_ = np.r_[close[0], close[:-1]]
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close),
            "low": np.minimum(open_, close),
            "close": close,
            "volume": 1e9,
        },
        index=index,
    )


X_CLOSE = [100.0, 100.0, 110.0, 110.0, 121.0, 121.0]
Y_CLOSE = [50.0, 50.0, 50.0, 50.0, 40.0, 40.0]


def hand_data() -> MarketData:
    return MarketData.from_frames({"X": frame(X_CLOSE), "Y": frame(Y_CLOSE)})


def two_agents() -> list[Agent]:
    # Trend: long X (all of its capital) and half of it in Y. Hedge: short X with half, then
    # flat at bar 2.
    trend = Trend({0: {"X": 1.0, "Y": 0.5}})
    hedge = Hedge({0: {"X": -0.5}, 2: {"X": 0.0}})
    return [trend, hedge]


def run(capital: dict[str, float] | None, agents: list[Agent] | None = None):  # type: ignore[no-untyped-def]
    portfolio = PortfolioConfig(lot_size=1.0, capital=capital)
    engine = BacktestEngine(100_000.0, PaperBrokerConfig(), portfolio)
    return engine.run(hand_data(), agents or two_agents())


def test_two_agents_hold_the_netted_combination_by_hand() -> None:
    res = run({"trend": 0.6, "hedge": 0.4})
    # Bar 1 open: X 0.6 x 1.0 + 0.4 x (-0.5) = 0.4 of 100,000 at 100 -> 400; Y 0.6 x 0.5 = 0.3
    # at 50 -> 600. Bar 3 open: the hedge is flat, X = 0.6 of 30,000 + 400 x 110 + 600 x 50
    # = 104,000 at 110 -> 567.27 -> 567 (a lot of 1).
    fills = [(f.ts.day, f.symbol, f.side.value, f.quantity, f.price) for f in res.fills]
    # Symbols in the order of their latest signals (the hedge's X came last), as without.
    assert fills == [
        (2, "Y", "buy", 600.0, 50.0),
        (2, "X", "buy", 400.0, 100.0),
        (4, "X", "buy", 167.0, 110.0),
    ]
    assert res.positions.iloc[-1].to_dict() == {"X": 567.0, "Y": 600.0}
    cash = 100_000.0 - 400 * 100 - 600 * 50 - 167 * 110
    assert res.cash.iloc[-1] == pytest.approx(cash)
    assert res.equity.iloc[-1] == pytest.approx(cash + 567 * 121 + 600 * 40)
    assert [o.order.tag for o in res.orders] == ["net: bar 0", "net: bar 0", "net: bar 2"]


def test_the_attribution_sums_to_the_account_by_hand() -> None:
    res = run({"trend": 0.6, "hedge": 0.4})
    pnl = res.attribution
    assert pnl is not None and res.attributed_positions is not None
    assert list(pnl.columns) == ["trend", "hedge", UNALLOCATED, TRADING]
    # Close of bar 1: equity 100,000, X at 100 -> 1,000 units a unit of weight: the trend owns
    # 0.6 x 1,000 = 600, the hedge -0.2 x 1,000 = -200 (the 400 held, nothing left over). X
    # gains 10 on bar 2.
    assert pnl.iloc[2]["trend"] == pytest.approx(6_000.0)
    assert pnl.iloc[2]["hedge"] == pytest.approx(-2_000.0)
    # Close of bar 3: the 567 X are the trend's alone (the hedge's contribution is 0): +11 each;
    # its 600 Y lose 10 each.
    assert pnl.iloc[4]["trend"] == pytest.approx(567 * 11 - 600 * 10)
    assert pnl.iloc[4]["hedge"] == pytest.approx(0.0, abs=1e-9)
    # Every row sums to the equity change; the cumulated PnL rebuilds the equity curve.
    change = res.equity.diff().fillna(res.equity.iloc[0] - 100_000.0)
    np.testing.assert_allclose(pnl.sum(axis=1), change, rtol=0, atol=1e-7)
    np.testing.assert_allclose(100_000.0 + pnl.sum(axis=1).cumsum(), res.equity, rtol=0, atol=1e-7)
    assert (pnl[UNALLOCATED] == 0).all()
    # No costs and fills at the previous close: nothing is left for trading.
    np.testing.assert_allclose(pnl[TRADING], 0.0, atol=1e-7)
    held = res.attributed_positions
    np.testing.assert_allclose(held.sum(axis=1), res.positions.iloc[-1], rtol=0, atol=1e-9)
    assert held.loc["X", "trend"] == pytest.approx(567.0)
    assert held.loc["Y", "trend"] == pytest.approx(600.0)
    assert held.loc["X", "hedge"] == pytest.approx(0.0, abs=1e-9)


def test_the_attribution_is_the_pure_functions_at_every_bar() -> None:
    res = run({"trend": 0.6, "hedge": 0.4})
    assert res.attribution is not None
    # Contributions in effect: from bar 1 (X: 0.6, -0.2; Y: 0.3), from bar 3 (X: 0.6, 0.0).
    early = CombinedTargets({"X": {"trend": 0.6, "hedge": -0.2}, "Y": {"trend": 0.3}})
    late = CombinedTargets({"X": {"trend": 0.6, "hedge": 0.0}, "Y": {"trend": 0.3}})
    for t in range(2, 6):
        combined = early if t - 1 < 3 else late
        prev, now = res.positions.index[t - 1], res.positions.index[t]
        prices_prev = {"X": X_CLOSE[t - 1], "Y": Y_CLOSE[t - 1]}
        prices_now = {"X": X_CLOSE[t], "Y": Y_CLOSE[t]}
        held = {s: float(q) for s, q in res.positions.loc[prev].items() if q}
        attributed = attribute_positions(combined, held, prices_prev, float(res.equity[prev]))
        want = attribute_pnl(attributed, prices_prev, prices_now)
        for agent, value in want.items():
            assert res.attribution.loc[now, agent] == pytest.approx(value, abs=1e-7), (t, agent)


def test_capital_by_index_with_costs_and_a_leftover() -> None:
    agents = [Scripted({0: {"X": 1.0}}), Scripted({0: {"X": 1.0}, 3: {"Y": 0.5}})]
    portfolio = PortfolioConfig(lot_size=0.0, capital={"0": 0.5, "1": 0.25})
    broker = PaperBrokerConfig(commission=CommissionModel(bps=10), slippage=SlippageModel(bps=5))
    res = BacktestEngine(100_000.0, broker, portfolio).run(hand_data(), agents)
    assert res.attribution is not None and res.attributed_positions is not None
    assert list(res.attribution.columns) == ["0", "1", UNALLOCATED, TRADING]
    change = res.equity.diff().fillna(res.equity.iloc[0] - 100_000.0)
    np.testing.assert_allclose(res.attribution.sum(axis=1), change, rtol=0, atol=1e-7)
    assert (res.attribution[TRADING] < 0).any()  # commissions and slippage
    held = res.attributed_positions
    np.testing.assert_allclose(held.sum(axis=1), res.positions.iloc[-1], rtol=0, atol=1e-9)
    # 0.75 of the equity in X: the first agent owns two thirds of it, the second a third.
    x = res.positions.iloc[-1]["X"]
    assert held.loc["X", "0"] == pytest.approx(2 * x / 3, rel=1e-9)
    assert held.loc["X", "1"] == pytest.approx(x / 3, rel=1e-9)
    y_weight = res.positions.iloc[-1]["Y"] * Y_CLOSE[3] / res.equity.iloc[3]
    assert y_weight == pytest.approx(0.125, rel=0.01)


def test_one_agent_with_all_the_capital_trades_as_without(gbm_frame: Frame) -> None:
    data = MarketData.from_frames({"X": gbm_frame(600, seed=4)})
    broker = PaperBrokerConfig(commission=CommissionModel(bps=10), slippage=SlippageModel(bps=3))

    def fills(capital: dict[str, float] | None) -> list[tuple[object, ...]]:
        agent = create("sma_cross", {"fast": 5, "slow": 20})
        engine = BacktestEngine(100_000.0, broker, PortfolioConfig(lot_size=0.01, capital=capital))
        res = engine.run(data, [agent])
        return [(f.ts, f.side, f.quantity, f.price) for f in res.fills]

    plain = fills(None)
    assert len(plain) > 5
    assert fills({"sma_cross": 1.0}) == plain


def test_quantity_signals_keep_their_units_with_all_the_capital() -> None:
    class Units(Agent):
        name = "units"

        def on_bar(self, ctx: BarContext) -> list[Signal] | None:
            if ctx.i == 0:
                return [Signal("X", ctx.ts, quantity=123.0), Signal("Y", ctx.ts, direction=1)]
            return None

    broker = PaperBrokerConfig(commission=CommissionModel(bps=20), slippage=SlippageModel(bps=7))
    portfolio = PortfolioConfig(
        lot_size=0.0,
        capital={"units": 1.0, "scripted": 0.0},
        sizing=SizingConfig(fraction=0.1),
    )
    res = BacktestEngine(100_000.0, broker, portfolio).run(hand_data(), [Units(), Scripted({})])
    qty = {f.symbol: f.quantity for f in res.fills}
    assert qty["X"] == pytest.approx(123.0, rel=1e-12)
    # A direction is sized by the sizer: here 10% of the equity, costs included.
    buy = 50.0 * (1 + 7e-4) * (1 + 20e-4)
    equity_at_open = 100_000.0  # bar 1 opens where bar 0 closed
    assert qty["Y"] == pytest.approx(0.1 * equity_at_open / buy, rel=1e-9)


def test_opposite_targets_net_to_a_short_when_allowed() -> None:
    agents = [Trend({0: {"X": 0.5}}), Hedge({0: {"X": -1.0}})]
    allow = PortfolioConfig(
        lot_size=1.0, capital={"trend": 0.2, "hedge": 0.8}, limits=RiskLimits(allow_short=True)
    )
    res = BacktestEngine(100_000.0, PaperBrokerConfig(), allow).run(hand_data(), agents)
    # 0.2 x 0.5 - 0.8 x 1.0 = -0.7 of 100,000 at 100.
    assert res.positions.iloc[1]["X"] == -700.0
    held = res.attributed_positions
    assert held is not None
    # Netted: each agent keeps its own side, and the two cancel down to the account's.
    assert held.loc["X", "trend"] > 0 > held.loc["X", "hedge"]
    assert held.loc["X"].sum() == pytest.approx(-700.0)


def test_without_capital_the_result_has_no_attribution() -> None:
    res = run(None)
    assert res.attribution is None and res.attributed_positions is None
    # The latest signal of X wins: the hedge's -0.5 comes after the trend's 1.0, and a short
    # is not allowed.
    assert res.positions.iloc[1]["X"] == 0.0


@pytest.mark.parametrize(
    ("capital", "agents", "message"),
    [
        ({"trend": 0.6}, ["trend", "hedge"], "agents 1 (hedge) have no capital weight"),
        ({"x": 0.5, "0": 0.5}, ["trend"], "no agent is named 'x'"),
        ({"2": 0.5}, ["a", "b"], "agent index 2 is out of range"),
        ({"a": 0.5}, ["a", "a"], "agents [0, 1] are all named 'a'; key them by index"),
        ({"0": 0.5, "a": 0.5}, ["a"], "agent 0 is given twice"),
    ],
)
def test_capital_keys_must_name_every_agent_once(
    capital: dict[str, float], agents: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        AgentCapital.resolve(capital, agents)


def test_capital_resolves_names_and_indices() -> None:
    shares = AgentCapital.resolve({"1": 0.3, "trend": 0.5}, ["trend", "trend2"])
    assert shares.labels == ("trend", "1")
    assert (shares.of(0), shares.of(1)) == (0.5, 0.3)
    assert shares.weights.reserve == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("capital", "message"),
    [
        ({"a": 0.7, "b": 0.4}, "capital weights sum to 1.1 > 1"),
        ({"a": -0.1}, "capital weight must be >= 0"),
        ({}, "at least 1 item"),
    ],
)
def test_capital_weights_are_validated(capital: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PortfolioConfig(capital=capital)


def test_yaml_integer_keys_are_agent_indices() -> None:
    config = PortfolioConfig.model_validate({"capital": {0: 0.6, 1: 0.4}})
    assert config.capital == {"0": 0.6, "1": 0.4}


def test_a_backtest_config_checks_the_keys_against_its_agents() -> None:
    base = {
        "data": {"synthetic": {"n_bars": 50}},
        "agents": [{"name": "sma_cross", "params": {"fast": 3, "slow": 8}}, {"name": "sma_cross"}],
    }
    with pytest.raises(ValidationError, match="all named 'sma_cross'; key them by index"):
        BacktestConfig.model_validate({**base, "portfolio": {"capital": {"sma_cross": 1.0}}})
    config = BacktestConfig.model_validate({**base, "portfolio": {"capital": {0: 0.5, 1: 0.5}}})
    assert config.portfolio.capital == {"0": 0.5, "1": 0.5}


def test_the_fast_path_refuses_capital_weights(gbm_frame: Frame) -> None:
    data = MarketData.from_frames({"X": gbm_frame(100, seed=2)})
    portfolio = PortfolioConfig(capital={"sma_cross": 1.0})
    reason = unsupported_reason(data, portfolio=portfolio)
    assert reason is not None and reason.startswith("capital weights are set")
    agent = create("sma_cross", {"fast": 3, "slow": 8})
    with pytest.raises(FastPathUnsupported, match="capital weights"):
        run_fast(data, agent, portfolio=portfolio)
