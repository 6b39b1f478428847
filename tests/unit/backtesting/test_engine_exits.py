"""Exits attached to positions (``PortfolioConfig.exits``) in the event-driven engine, on
hand-built price paths: orders go out at a bar's open, exits work from the next bar on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from raytrader.agents import Agent
from raytrader.agents.context import BarContext
from raytrader.backtesting.engine import BacktestEngine
from raytrader.backtesting.result import BacktestResult
from raytrader.data.market_data import MarketData
from raytrader.domain import OrderStatus, Signal
from raytrader.portfolio import PortfolioConfig
from raytrader.portfolio.exits import ExitsConfig

Bar = tuple[float, float, float, float]  # open, high, low, close
FLAT: Bar = (100.0, 100.0, 100.0, 100.0)


class Scripted(Agent):
    """Emits given target weights of X at given bars."""

    name = "scripted"

    def __init__(self, script: dict[int, float]) -> None:
        super().__init__()
        self.script = script

    def on_bar(self, ctx: BarContext) -> list[Signal] | None:
        if ctx.i not in self.script:
            return None
        return [Signal("X", ctx.ts, weight=self.script[ctx.i], reason=f"bar {ctx.i}")]


def data(bars: list[Bar]) -> MarketData:
    index = pd.date_range("2024-01-01", periods=len(bars), freq="1D", tz="UTC", name="ts")
    a = np.array(bars, dtype=float)
    frame = pd.DataFrame(
        {"open": a[:, 0], "high": a[:, 1], "low": a[:, 2], "close": a[:, 3], "volume": 1e9},
        index=index,
    )
    return MarketData.from_frames({"X": frame})


def run(bars: list[Bar], script: dict[int, float], **exits: float) -> BacktestResult:
    portfolio = PortfolioConfig(exits=ExitsConfig(**exits) if exits else None)
    return BacktestEngine(10_000.0, portfolio=portfolio).run(data(bars), [Scripted(script)])


def fills(result: BacktestResult) -> list[tuple[str, str, float, float]]:
    return [(f.client_order_id, f.side.value, f.quantity, f.price) for f in result.fills]


def final(result: BacktestResult) -> dict[str, tuple[OrderStatus, str]]:
    return {st.order.client_order_id: (st.status, st.reason) for st in result.orders}


def position(result: BacktestResult) -> float:
    return result.ledger.position("X").quantity


def test_a_long_entry_hits_its_stop_loss_at_the_stop() -> None:
    # Bought 50 at bar 1's open (100): stop 95, take-profit 110, working from bar 2.
    bars = [FLAT, (100, 101, 99, 100), (99, 99.5, 94, 96), FLAT]
    result = run(bars, {0: 0.5}, take_profit_pct=0.1, stop_loss_pct=0.05)
    assert fills(result) == [("bt-1-1", "buy", 50.0, 100.0), ("bt-1-1-sl", "sell", 50.0, 95.0)]
    assert final(result)["bt-1-1-tp"] == (OrderStatus.CANCELLED, "oco: bt-1-1-oco filled")
    assert position(result) == 0.0
    # The exits were held until the entry filled, then sized to its fill.
    journal = [(st.order.client_order_id, st.status) for st in result.journal]
    assert journal.index(("bt-1-1-sl", OrderStatus.NEW)) < journal.index(
        ("bt-1-1-sl", OrderStatus.ACCEPTED)
    )


def test_a_gap_through_the_stop_fills_at_the_open() -> None:
    bars = [FLAT, (100, 101, 99, 100), (90, 92, 88, 91), FLAT]
    result = run(bars, {0: 0.5}, stop_loss_pct=0.05)
    assert fills(result)[1] == ("bt-1-1-sl", "sell", 50.0, 90.0)
    assert position(result) == 0.0


def test_the_take_profit_fills_at_its_limit() -> None:
    bars = [FLAT, (100, 101, 99, 100), (101, 104, 100, 103), (104, 112, 103, 111), FLAT]
    result = run(bars, {0: 0.5}, take_profit_pct=0.1, stop_loss_pct=0.05)
    assert fills(result)[1] == ("bt-1-1-tp", "sell", 50.0, pytest.approx(110.0))
    assert final(result)["bt-1-1-sl"] == (OrderStatus.CANCELLED, "oco: bt-1-1-oco filled")
    assert position(result) == 0.0


def test_the_trailing_stop_ratchets_up_with_the_highs() -> None:
    # 10% behind the best price: from the entry's 100 (stop 90) up to 120 (stop 108).
    bars = [
        FLAT,
        (100, 101, 99, 100),
        (105, 120, 104, 118),  # new high: the stop moves to 108 for the next bar
        (118, 119, 109, 110),  # above 108: nothing
        (110, 111, 100, 101),  # through 108: filled there
        FLAT,
    ]
    result = run(bars, {0: 0.5}, trailing_pct=0.1)
    assert fills(result)[1] == ("bt-1-1-ts", "sell", 50.0, pytest.approx(108.0))
    assert position(result) == 0.0


def test_the_agents_own_exit_cancels_the_exits_and_nothing_flips() -> None:
    # The agent sells at bar 3's open; that bar then falls through the stop (95).
    bars = [FLAT, (100, 101, 99, 100), (100, 101, 99, 100), (100, 100, 80, 85), FLAT]
    result = run(bars, {0: 0.5, 2: 0.0}, take_profit_pct=0.1, stop_loss_pct=0.05)
    assert fills(result) == [("bt-1-1", "buy", 50.0, 100.0), ("bt-3-1", "sell", 50.0, 100.0)]
    why = "exits: bt-3-1 reduces the position"
    assert final(result)["bt-1-1-sl"] == (OrderStatus.CANCELLED, why)
    assert final(result)["bt-1-1-tp"] == (OrderStatus.CANCELLED, why)
    assert position(result) == 0.0
    assert [st for st in result.orders if st.is_open] == []


def test_an_increase_resizes_the_exits_to_the_whole_position() -> None:
    bars = [
        FLAT,
        (100, 101, 99, 100),  # buys 30
        (100, 101, 99, 100),
        (100, 101, 99, 100),  # buys 30 more: the first exits grow to 60
        (100, 101, 99, 100),
        (96, 96, 90, 92),  # through the first stop (95): the whole position goes
        FLAT,
    ]
    result = run(bars, {0: 0.3, 2: 0.6}, stop_loss_pct=0.05)
    assert fills(result) == [
        ("bt-1-1", "buy", 30.0, 100.0),
        ("bt-3-1", "buy", 30.0, 100.0),
        ("bt-1-1-sl", "sell", 60.0, 95.0),
    ]
    assert final(result)["bt-3-1-sl"] == (
        OrderStatus.CANCELLED,
        "exits: merged into the exits of bt-1-1",
    )
    assert position(result) == 0.0
    resized = [st for st in result.journal if st.order.client_order_id == "bt-1-1-sl"]
    assert [st.order.quantity for st in resized] == [30.0, 30.0, 60.0, 60.0]


def test_a_reduction_cancels_the_exits_and_a_later_drop_leaves_the_rest() -> None:
    bars = [
        FLAT,
        (100, 101, 99, 100),  # buys 60
        (100, 101, 99, 100),
        (100, 101, 99, 100),  # sells 30: the exits are cancelled
        (90, 91, 80, 85),  # no exit left to fire
        FLAT,
    ]
    result = run(bars, {0: 0.6, 2: 0.3}, stop_loss_pct=0.05)
    assert [f[0] for f in fills(result)] == ["bt-1-1", "bt-3-1"]
    assert final(result)["bt-1-1-sl"] == (
        OrderStatus.CANCELLED,
        "exits: bt-3-1 reduces the position",
    )
    assert position(result) == 30.0


def test_without_exits_no_child_orders() -> None:
    bars = [FLAT, (100, 101, 99, 100), (99, 99.5, 94, 96), FLAT]
    result = run(bars, {0: 0.5})
    assert [st.order.client_order_id for st in result.orders] == ["bt-1-1"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({}, "exits"),
        ({"stop_loss_pct": 0}, "stop_loss_pct"),
        ({"stop_loss_pct": 1.0}, "stop_loss_pct"),
        ({"trailing_pct": -0.1}, "trailing_pct"),
        ({"take_profit_pct": 0.1, "stop": 0.1}, "stop"),
    ],
)
def test_exits_config_errors_name_the_field(raw: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        PortfolioConfig.model_validate({"exits": raw})
    error = err.value.errors()[0]
    assert field in [str(p) for p in error["loc"]] or field in error["msg"]
