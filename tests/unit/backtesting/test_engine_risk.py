"""The engine with the kill switch and the optional pre-trade limits; the fast path refuses them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from raytrader.agents import Agent, create
from raytrader.agents.context import BarContext
from raytrader.backtesting.engine import BacktestEngine
from raytrader.backtesting.fast_path import FastPathUnsupported, run_fast, unsupported_reason
from raytrader.data.market_data import MarketData
from raytrader.domain import OrderStatus, OrderType, Side, Signal
from raytrader.execution import PaperBrokerConfig
from raytrader.portfolio import PortfolioConfig
from raytrader.risk.kill_switch import KillSwitchConfig
from raytrader.risk.limits import RiskLimits


class Scripted(Agent):
    """Emits given signals at given bars."""

    name = "scripted"

    def __init__(self, script: dict[int, list[dict[str, Any]]]) -> None:
        super().__init__()
        self.script = script

    def on_bar(self, ctx: BarContext):  # type: ignore[no-untyped-def]
        return [Signal(ts=ctx.ts, **kw) for kw in self.script.get(ctx.i, [])]


def flat_frame(closes: list[float], freq: str = "1D") -> pd.DataFrame:
    """Bars whose open, high, low and close are all the given price."""
    c = np.asarray(closes, dtype=float)
    index = pd.date_range("2024-01-01", periods=len(c), freq=freq, tz="UTC", name="ts")
    return pd.DataFrame(
        {"open": c, "high": c, "low": c, "close": c, "volume": np.full(len(c), 1e6)}, index=index
    )


# X: flat at 100, up to 110 at bar 10, crashes to 80 at bar 15 (the threshold is crossed
# there, mid-run), then recovers; Y: flat at 50.
X_PATH = [100.0] * 10 + [110.0] * 5 + [80.0] * 5 + [95.0] * 10
CRASH = 15
SCRIPT: dict[int, list[dict[str, Any]]] = {
    1: [
        {"symbol": "X", "weight": 0.5},
        # A resting order: a limit buy the market never reaches.
        {"symbol": "Y", "quantity": 10.0, "order_type": OrderType.LIMIT, "limit_price": 1.0},
    ],
    20: [{"symbol": "X", "weight": 0.9}, {"symbol": "Y", "quantity": 5.0}],
}
REASON = "max_drawdown: 0.1429 > 0.1000 (equity 9,000.00, high-water mark 10,500.00)"


def crash_data() -> MarketData:
    return MarketData.from_frames({"X": flat_frame(X_PATH), "Y": flat_frame([50.0] * len(X_PATH))})


def run(portfolio: PortfolioConfig, data: MarketData | None = None) -> Any:
    engine = BacktestEngine(10_000.0, PaperBrokerConfig(), portfolio)
    return engine.run(data or crash_data(), [Scripted(SCRIPT)])


@pytest.mark.parametrize("flatten", [False, True])
def test_the_kill_switch_halts_a_run_that_crosses_the_drawdown(flatten: bool) -> None:
    data = crash_data()
    ks = KillSwitchConfig(max_drawdown=0.1, flatten=flatten)
    res = run(PortfolioConfig(kill_switch=ks), data)
    crash_ts = data.index[CRASH]
    assert res.halted == (crash_ts, REASON)
    # The resting limit order was cancelled at the close that tripped the switch.
    (limit,) = [st for st in res.orders if st.order.symbol == "Y" and st.order.limit_price]
    assert limit.status is OrderStatus.CANCELLED and limit.updated == crash_ts
    assert limit.reason == f"halted: {REASON}"
    # Later orders are refused with the reason, and journaled.
    refused = [st for st in res.journal if st.status is OrderStatus.REJECTED]
    assert {st.order.symbol for st in refused} == {"X", "Y"}
    assert all(st.reason == f"halted: {REASON}" for st in refused)
    assert all(st.updated == data.index[21] for st in refused)
    buy = res.fills[0]
    assert (buy.side, buy.quantity, buy.price, buy.ts) == (Side.BUY, 50.0, 100.0, data.index[2])
    if flatten:
        # Sold at the next open; nothing fills after that.
        assert len(res.fills) == 2
        sell = res.fills[1]
        assert (sell.side, sell.quantity, sell.price) == (Side.SELL, 50.0, 80.0)
        assert sell.ts == data.index[CRASH + 1]
        assert res.positions["X"].iloc[-1] == 0.0
        assert res.equity.iloc[-1] == pytest.approx(9_000.0)
        (flat,) = [st for st in res.orders if st.order.tag == "kill switch: flatten"]
        assert flat.order.client_order_id == f"bt-halt-{CRASH}-1"
        assert flat.status is OrderStatus.FILLED
    else:
        assert len(res.fills) == 1
        assert res.positions["X"].iloc[-1] == 50.0
        assert res.equity.iloc[-1] == pytest.approx(5_000.0 + 50 * 95.0)


def test_no_halt_without_a_kill_switch_or_below_the_threshold() -> None:
    plain = run(PortfolioConfig())
    loose = run(PortfolioConfig(kill_switch=KillSwitchConfig(max_drawdown=0.2)))
    assert plain.halted is None and loose.halted is None
    assert [f.ts for f in plain.fills] == [f.ts for f in loose.fills]
    assert len(plain.fills) == 3  # the buy, then the two orders of bar 20
    assert plain.equity.equals(loose.equity)


def test_a_refused_order_is_journaled_with_the_limit_and_the_numbers() -> None:
    limits = RiskLimits(max_order_notional=1_000.0)
    res = run(PortfolioConfig(limits=limits))
    refused = [st for st in res.journal if st.status is OrderStatus.REJECTED]
    reasons = [(st.order.symbol, st.reason) for st in refused]
    # 50 X at 100, then X to 90% of equity at bar 21; the limit and the Y orders fit.
    assert reasons[0] == ("X", "max_order_notional: 5,000.00 > 1,000.00")
    assert reasons[1][0] == "X" and reasons[1][1].startswith("max_order_notional: ")
    assert len(res.fills) == 1 and res.fills[0].symbol == "Y"


def test_daily_loss_limit_in_the_engine_uses_the_days_start() -> None:
    hours = [100.0] * 5 + [80.0] * 43  # two days of hourly bars
    data = MarketData.from_frames(
        {"X": flat_frame(hours, "1h"), "Y": flat_frame([50.0] * 48, "1h")}
    )
    script: dict[int, list[dict[str, Any]]] = {
        1: [{"symbol": "X", "weight": 0.5}],
        6: [{"symbol": "Y", "quantity": 10.0}],  # day 1, after the loss: refused
        30: [{"symbol": "Y", "quantity": 10.0}],  # day 2 starts at 9,000: passes
    }
    engine = BacktestEngine(
        10_000.0, PaperBrokerConfig(), PortfolioConfig(limits=RiskLimits(daily_loss_limit=0.05))
    )
    res = engine.run(data, [Scripted(script)])
    (refused,) = [st for st in res.journal if st.status is OrderStatus.REJECTED]
    assert refused.updated == data.index[7]
    assert refused.reason == (
        "daily_loss_limit: 0.1000 > 0.0500 (equity 9,000.00, day start 10,000.00)"
    )
    assert [f.ts for f in res.fills] == [data.index[2], data.index[31]]


def test_the_fast_path_refuses_a_kill_switch_and_the_optional_limits(
    gbm_frame: Any,
) -> None:
    data = MarketData.from_frames({"X": gbm_frame(300, seed=2)})
    agent = create("sma_cross", {"fast": 5, "slow": 20})
    with_ks = PortfolioConfig(kill_switch=KillSwitchConfig(daily_loss=0.05))
    with pytest.raises(FastPathUnsupported, match="kill switch is configured"):
        run_fast(data, agent, portfolio=with_ks)
    with_var = PortfolioConfig(limits=RiskLimits(max_var=0.02, max_open_orders=2))
    with pytest.raises(FastPathUnsupported, match="max_open_orders, max_var are set"):
        run_fast(data, agent, portfolio=with_var)
    assert unsupported_reason(data, agent=agent, portfolio=with_ks) == (
        "a kill switch is configured: halting needs the event engine"
    )
    assert unsupported_reason(data, agent=agent, portfolio=PortfolioConfig()) is None
    basic = PortfolioConfig(limits=RiskLimits(max_position_weight=0.5, risk_lookback=30))
    assert unsupported_reason(data, agent=agent, portfolio=basic) is None
    run_fast(data, agent, portfolio=basic)
