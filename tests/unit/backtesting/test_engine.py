"""The event-driven engine: order of steps, determinism, no look-ahead, accounting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from raytrader.agents import Agent, create
from raytrader.agents.context import BarContext
from raytrader.backtesting.engine import BacktestEngine, CorporateAction
from raytrader.backtesting.result import BacktestResult
from raytrader.data.market_data import MarketData
from raytrader.domain import OrderStatus, OrderType, Side, Signal
from raytrader.execution import CommissionModel, PaperBrokerConfig
from raytrader.portfolio import PortfolioConfig
from raytrader.risk import RiskLimits

Frame = Callable[..., pd.DataFrame]


class Scripted(Agent):
    """Emits given signals at given bars (a test double of a real agent, not a mock)."""

    name = "scripted"

    def __init__(self, script: dict[int, list[dict[str, object]]]) -> None:
        super().__init__()
        self.script = script
        self.fills: list[object] = []

    def on_bar(self, ctx: BarContext):  # type: ignore[no-untyped-def]
        return [Signal(ts=ctx.ts, **kw) for kw in self.script.get(ctx.i, [])]  # type: ignore[arg-type]

    def on_fill(self, fill):  # type: ignore[no-untyped-def]
        self.fills.append(fill)


def engine(cash: float = 10_000.0, bps: float = 0.0, **portfolio: object) -> BacktestEngine:
    return BacktestEngine(
        cash,
        PaperBrokerConfig(commission=CommissionModel(bps=bps)),
        PortfolioConfig(**portfolio),  # type: ignore[arg-type]
    )


def test_signal_at_close_fills_at_next_open_and_books_exactly(gbm_frame: Frame) -> None:
    df = gbm_frame(10, seed=1)
    data = MarketData.from_frames({"X": df})
    agent = Scripted({2: [{"symbol": "X", "weight": 1.0}], 5: [{"symbol": "X", "weight": 0.0}]})
    res = engine(bps=10.0).run(data, [agent])
    buy, sell = res.fills
    o3, o6 = df["open"].iloc[3], df["open"].iloc[6]
    qty = np.floor(10_000 / (o3 * 1.001))
    assert (buy.side, buy.ts, buy.price, buy.quantity) == (Side.BUY, df.index[3], o3, qty)
    assert (sell.side, sell.ts, sell.price, sell.quantity) == (Side.SELL, df.index[6], o6, qty)
    cash = 10_000 - qty * o3 * 1.001 + qty * o6 * 0.999
    assert res.equity.iloc[-1] == pytest.approx(cash, rel=1e-12)
    # Between the fills the equity is cash plus the position marked at each close.
    mid = 10_000 - qty * o3 * 1.001 + qty * df["close"].iloc[4]
    assert res.equity.iloc[4] == pytest.approx(mid, rel=1e-12)
    assert res.equity.iloc[2] == 10_000.0
    assert agent.fills == res.fills
    assert len(res.trades) == 1 and res.trades[0].pnl == pytest.approx(cash - 10_000, rel=1e-9)


def test_equity_curve_agrees_with_the_ledger(gbm_frame: Frame) -> None:
    frames = {s: gbm_frame(400, seed=k) for k, s in enumerate("ABC")}
    data = MarketData.from_frames(frames)
    res = engine(cash=1e6, bps=5.0, lot_size=0.0).run(
        data, [create("sma_cross", {"fast": 5, "slow": 20, "weight": 0.3})]
    )
    last = {s: frames[s]["close"].iloc[-1] for s in frames}
    assert res.equity.iloc[-1] == pytest.approx(res.ledger.equity(last), rel=1e-12)
    assert len(res.fills) > 20
    assert res.cash.min() >= 0


def test_runs_are_deterministic(gbm_frame: Frame) -> None:
    data = MarketData.from_frames({"X": gbm_frame(3000, seed=5)})

    def run() -> BacktestResult:
        return engine(bps=10).run(data, [create("rsi_reversion")])

    a, b = run(), run()
    assert a.fills == b.fills
    assert a.equity.equals(b.equity)
    assert len(a.fills) > 10


@pytest.mark.parametrize(
    ("agent_name", "params"),
    [
        ("sma_cross", {"fast": 10, "slow": 30}),
        ("rsi_reversion", {}),
        ("bollinger_breakout", {}),
    ],
)
def test_a_future_bar_cannot_change_an_earlier_decision(
    gbm_frame: Frame, agent_name: str, params: dict[str, object]
) -> None:
    df = gbm_frame(2000, seed=11)
    t = 1200
    changed = df.copy()
    rng = np.random.default_rng(99)
    changed.iloc[t + 1 :] = changed.iloc[t + 1 :].to_numpy() * rng.uniform(
        0.5, 1.5, (len(df) - t - 1, 1)
    )
    changed["high"] = changed[["open", "high", "close"]].max(axis=1)
    changed["low"] = changed[["open", "low", "close"]].min(axis=1)
    runs = [
        engine(bps=10).run(MarketData.from_frames({"X": d}), [create(agent_name, params)])
        for d in (df, changed)
    ]
    before = [[(r.bar, r.signal) for r in res.signals if r.bar <= t] for res in runs]
    assert before[0] == before[1]
    assert len(before[0]) > 5
    cut = df.index[t]
    assert [f for f in runs[0].fills if f.ts <= cut] == [f for f in runs[1].fills if f.ts <= cut]
    assert runs[0].equity.iloc[: t + 1].equals(runs[1].equity.iloc[: t + 1])
    # ... and the change does reach later decisions, so the test can tell.
    after = [[(r.bar, r.signal) for r in res.signals if r.bar > t] for res in runs]
    assert after[0] != after[1]


def test_momentum_on_a_universe_never_overspends_and_trades_on_thursdays(
    gbm_frame: Frame,
) -> None:
    frames = {f"S{k:02d}": gbm_frame(700, seed=100 + k, freq="B", vol=0.015) for k in range(15)}
    frames["INDEX"] = gbm_frame(700, seed=7, freq="B", vol=0.008)
    data = MarketData.from_frames(frames)
    res = engine(cash=200_000.0, bps=5.0).run(data, [create("momentum")])
    assert res.fills, "expected the strategy to trade"
    assert {f.ts.weekday() for f in res.fills} == {3}  # Wednesday decisions, Thursday opens
    assert res.cash.min() >= -1e-6
    assert "INDEX" not in {f.symbol for f in res.fills}
    assert max(len(res.ledger.positions()), 0) <= 3  # top 20% of 15


def test_position_weight_limit_holds_at_order_time(gbm_frame: Frame) -> None:
    data = MarketData.from_frames({"X": gbm_frame(500, seed=2)})
    res = engine(limits=RiskLimits(max_position_weight=0.4)).run(
        data, [create("sma_cross", {"fast": 5, "slow": 20})]
    )
    for fill in res.fills:
        if fill.side is Side.BUY:
            i = res.equity.index.get_loc(fill.ts)
            assert fill.notional <= 0.4 * res.equity.iloc[i - 1] * 1.2  # within a bar's move
    assert any(a.reason == "max_position_weight" for a in res.adjustments)


def test_limit_orders_rest_and_a_new_signal_supersedes_them(gbm_frame: Frame) -> None:
    df = gbm_frame(20, seed=3)
    data = MarketData.from_frames({"X": df})
    far = float(df["low"].min()) * 0.5  # never reached
    agent = Scripted(
        {
            2: [
                {"symbol": "X", "quantity": 5.0, "order_type": OrderType.LIMIT, "limit_price": far}
            ],
            8: [{"symbol": "X", "quantity": 3.0}],
        }
    )
    res = engine().run(data, [agent])
    first, second = res.orders
    assert first.status is OrderStatus.CANCELLED
    assert first.reason == "superseded by a new signal"
    assert second.status is OrderStatus.FILLED and second.order.quantity == 3.0
    assert res.fills[0].ts == df.index[9]


def test_split_and_dividend_reach_the_ledger(gbm_frame: Frame) -> None:
    df = gbm_frame(10, seed=4)
    data = MarketData.from_frames({"X": df})
    agent = Scripted({0: [{"symbol": "X", "quantity": 10.0}]})
    actions = [
        CorporateAction("X", df.index[4].to_pydatetime(), "split", 2.0),
        CorporateAction("X", df.index[6].to_pydatetime(), "dividend", 0.5),
    ]
    res = engine(cash=10_000.0).run(data, [agent], corporate_actions=actions)
    assert res.positions["X"].iloc[3] == 10.0
    assert res.positions["X"].iloc[4] == 20.0
    cash_before = res.cash.iloc[5]
    assert res.cash.iloc[6] == pytest.approx(cash_before + 20 * 0.5)


def test_bad_engine_input_is_refused() -> None:
    with pytest.raises(ValueError, match="initial_cash must be positive"):
        BacktestEngine(0.0)
    data = MarketData.from_frames(
        {
            "X": pd.DataFrame(
                {c: [1.0] for c in ("open", "high", "low", "close", "volume")},
                index=pd.DatetimeIndex([datetime(2024, 1, 1, tzinfo=UTC)]),
            )
        }
    )
    with pytest.raises(ValueError, match="at least one agent"):
        BacktestEngine().run(data, [])
