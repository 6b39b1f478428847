"""Signals to orders: sizing, limits and cash management."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from itertools import count

import numpy as np
import pandas as pd
import pytest

from raytrader.agents import Agent
from raytrader.agents.context import BarContext
from raytrader.backtesting.engine import BacktestEngine
from raytrader.data.market_data import MarketData
from raytrader.domain import OrderType, Side, Signal, TimeInForce
from raytrader.execution.costs import CommissionModel, SlippageModel
from raytrader.portfolio import AccountView, PortfolioConfig, Rebalancer
from raytrader.risk import RiskLimits, SizingConfig

TS = datetime(2024, 1, 2, tzinfo=UTC)


def ids() -> callable:  # type: ignore[valid-type]
    c = count(1)
    return lambda: f"o{next(c)}"


def rebalancer(
    lot: float = 1.0,
    bps: float = 0.0,
    minimum: float = 0.0,
    slip: float = 0.0,
    limits: RiskLimits | None = None,
    sizing: SizingConfig | None = None,
) -> Rebalancer:
    cfg = PortfolioConfig(
        lot_size=lot, limits=limits or RiskLimits(), sizing=sizing or SizingConfig()
    )
    return Rebalancer(cfg, CommissionModel(bps=bps, minimum=minimum), SlippageModel(bps=slip))


def flat(cash: float) -> AccountView:
    return AccountView(cash=cash, equity=cash, positions={}, gross_exposure=0.0)


def test_weight_target_includes_costs_and_rounds_down_to_lots() -> None:
    rb = rebalancer(bps=10.0)
    [order] = rb.orders([Signal("X", TS, weight=0.9999)], {"X": 101.0}, flat(10_000), TS, ids())
    # floor(0.9999 * 10000 / (101 * 1.001)) = floor(98.897...) = 98
    assert order.side is Side.BUY
    assert order.quantity == math.floor(0.9999 * 10_000 / (101 * 1.001)) == 98


def test_quantity_target_moves_from_current_holding() -> None:
    rb = rebalancer()
    account = AccountView(cash=5_000, equity=10_000, positions={"X": 50.0}, gross_exposure=5_000)
    [order] = rb.orders([Signal("X", TS, quantity=20.0)], {"X": 100.0}, account, TS, ids())
    assert (order.side, order.quantity) == (Side.SELL, 30.0)


def test_sells_fund_buys_and_buys_stop_when_cash_runs_out() -> None:
    rb = rebalancer()
    account = AccountView(cash=1_000, equity=11_000, positions={"A": 100.0}, gross_exposure=10_000)
    signals = [
        Signal("B", TS, quantity=80.0),  # first priority
        Signal("A", TS, quantity=0.0),  # frees 10,000
        Signal("C", TS, quantity=50.0),  # only 3,000 left for it
    ]
    orders = rb.orders(signals, {"A": 100.0, "B": 100.0, "C": 100.0}, account, TS, ids())
    by_symbol = {o.symbol: o for o in orders}
    assert orders[0].symbol == "A" and orders[0].side is Side.SELL  # sells first
    assert by_symbol["B"].quantity == 80.0
    assert by_symbol["C"].quantity == 30.0
    cut = [a for a in rb.adjustments if a.symbol == "C"]
    assert cut and cut[0].reason == "insufficient cash"


def test_minimum_commission_is_reserved() -> None:
    rb = rebalancer(minimum=5.0)
    [order] = rb.orders([Signal("X", TS, quantity=100.0)], {"X": 10.0}, flat(504.0), TS, ids())
    assert order.quantity == 49.0  # 49 * 10 + 5 <= 504 < 50 * 10 + 5


def test_max_position_weight_clips_the_target() -> None:
    rb = rebalancer(limits=RiskLimits(max_position_weight=0.25))
    [order] = rb.orders([Signal("X", TS, weight=1.0)], {"X": 10.0}, flat(10_000), TS, ids())
    assert order.quantity == 250.0
    assert rb.adjustments[0].reason == "max_position_weight"


def test_max_gross_exposure_caps_the_sum_of_positions() -> None:
    rb = rebalancer(limits=RiskLimits(max_position_weight=0.6, max_gross_exposure=1.0))
    account = flat(10_000)
    orders = rb.orders(
        [Signal("A", TS, weight=0.6), Signal("B", TS, weight=0.6)],
        {"A": 10.0, "B": 10.0},
        account,
        TS,
        ids(),
    )
    assert [o.quantity for o in orders] == [600.0, 400.0]
    assert rb.adjustments[-1].reason in {"max_gross_exposure", "insufficient cash"}


def test_short_targets_are_refused_unless_allowed() -> None:
    rb = rebalancer()
    assert rb.orders([Signal("X", TS, weight=-0.5)], {"X": 10.0}, flat(1_000), TS, ids()) == []
    rb = rebalancer(limits=RiskLimits(allow_short=True))
    [order] = rb.orders([Signal("X", TS, weight=-0.5)], {"X": 10.0}, flat(1_000), TS, ids())
    assert (order.side, order.quantity) == (Side.SELL, 50.0)


def test_direction_signals_use_the_sizer() -> None:
    rb = rebalancer(sizing=SizingConfig(method="atr_risk", risk_factor=0.01))
    [order] = rb.orders(
        [Signal("X", TS, direction=1)], {"X": 50.0}, flat(100_000), TS, ids(), atr=lambda s: 2.5
    )
    assert order.quantity == 400.0  # 100,000 x 0.01 / 2.5
    rb = rebalancer(sizing=SizingConfig(method="fixed_fractional", fraction=0.1))
    [order] = rb.orders([Signal("X", TS, direction=1)], {"X": 50.0}, flat(100_000), TS, ids())
    assert order.quantity == 200.0


def test_fractional_lots_and_order_fields_follow_the_signal() -> None:
    rb = rebalancer(lot=0.0)
    sig = Signal(
        "X",
        TS,
        weight=0.5,
        order_type=OrderType.LIMIT,
        limit_price=99.0,
        time_in_force=TimeInForce.DAY,
        reason="why",
    )
    [order] = rb.orders([sig], {"X": 100.0}, flat(1_000), TS, ids())
    assert order.quantity == pytest.approx(5.0)
    assert (order.type, order.limit_price, order.time_in_force, order.tag) == (
        OrderType.LIMIT,
        99.0,
        TimeInForce.DAY,
        "why",
    )


def test_last_signal_per_symbol_wins_and_missing_price_is_skipped() -> None:
    rb = rebalancer()
    orders = rb.orders(
        [Signal("X", TS, quantity=5.0), Signal("X", TS, quantity=7.0), Signal("Y", TS, quantity=1)],
        {"X": 10.0, "Y": math.nan},
        flat(1_000),
        TS,
        ids(),
    )
    assert [(o.symbol, o.quantity) for o in orders] == [("X", 7.0)]
    assert rb.adjustments[0].reason == "no price"


def test_short_targets_are_capped_by_gross_exposure_too() -> None:
    rb = rebalancer(
        limits=RiskLimits(max_position_weight=0.5, max_gross_exposure=0.3, allow_short=True)
    )
    [order] = rb.orders([Signal("X", TS, weight=-0.5)], {"X": 10.0}, flat(10_000), TS, ids())
    assert (order.side, order.quantity) == (Side.SELL, 300.0)  # 0.3 x 10,000 / 10
    assert rb.adjustments[-1].reason == "max_gross_exposure"
    # Selling a long down to flat frees room rather than using it.
    account = AccountView(cash=5_000, equity=10_000, positions={"X": 500.0}, gross_exposure=5_000)
    [order] = rb.orders([Signal("X", TS, weight=-0.5)], {"X": 10.0}, account, TS, ids())
    assert (order.side, order.quantity) == (Side.SELL, 800.0)  # 500 to flat + 300 short


# ------------------------------------------------------------------------ no-trade band


def banded(band: float, allow_short: bool = False) -> Rebalancer:
    cfg = PortfolioConfig(
        lot_size=0.0, rebalance_band=band, limits=RiskLimits(allow_short=allow_short)
    )
    return Rebalancer(cfg, CommissionModel(), SlippageModel())


def test_the_band_skips_small_trades_but_never_opening_closing_or_flipping() -> None:
    # 50 X at 100 in 10,000 of equity: a 0.52 target is 2 units, 200 of notional.
    held = AccountView(cash=5_000, equity=10_000, positions={"X": 50.0}, gross_exposure=5_000)
    small = [Signal("X", TS, weight=0.52)]
    assert banded(0.03).orders(small, {"X": 100.0}, held, TS, ids()) == []
    [order] = banded(0.01).orders(small, {"X": 100.0}, held, TS, ids())
    assert (order.side, order.quantity) == (Side.BUY, pytest.approx(2.0))
    [order] = banded(0.0).orders(small, {"X": 100.0}, held, TS, ids())
    assert order.quantity == pytest.approx(2.0)
    # Opening from zero and closing to zero trade however small.
    [opened] = banded(0.5).orders([Signal("Y", TS, weight=0.01)], {"Y": 10.0}, held, TS, ids())
    assert (opened.side, opened.quantity) == (Side.BUY, pytest.approx(10.0))
    tiny = AccountView(cash=9_900, equity=10_000, positions={"X": 1.0}, gross_exposure=100)
    [closed] = banded(0.5).orders([Signal("X", TS, weight=0.0)], {"X": 100.0}, tiny, TS, ids())
    assert (closed.side, closed.quantity) == (Side.SELL, 1.0)
    [flipped] = banded(0.5, allow_short=True).orders(
        [Signal("X", TS, direction=-1, weight=-0.005)], {"X": 100.0}, tiny, TS, ids()
    )
    assert (flipped.side, flipped.quantity) == (Side.SELL, pytest.approx(1.5))


def test_the_band_cuts_the_small_trades_of_constant_weights_on_drifting_prices() -> None:
    """50/50 every day on two random walks: without a band an order per symbol and day; with
    a 2% band far fewer, and the weights after each open stay within the band."""
    rng = np.random.default_rng(5)
    n = 400
    index = pd.date_range("2024-01-01", periods=n, freq="1D", tz="UTC", name="ts")
    frames = {}
    for s in ("A", "B"):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        open_ = np.r_[close[0], close[:-1]]
        frames[s] = pd.DataFrame(
            {
                "open": open_,
                "high": np.maximum(open_, close),
                "low": np.minimum(open_, close),
                "close": close,
                "volume": 1e9,
            },
            index=index,
        )
    data = MarketData.from_frames(frames)

    class FiftyFifty(Agent):
        name = "fifty_fifty"

        def on_bar(self, ctx: BarContext) -> list[Signal]:
            return [Signal(s, ctx.ts, weight=0.5) for s in ("A", "B")]

    def run(band: float) -> tuple[int, float]:
        portfolio = PortfolioConfig(lot_size=0.0, rebalance_band=band)
        result = BacktestEngine(100_000.0, portfolio=portfolio).run(data, [FiftyFifty()])
        # Weights at each open, after that open's trades (no costs: the fills move no value).
        opens = np.vstack([data.open[j] for j in range(2)])
        qty = result.positions[["A", "B"]].to_numpy().T
        value = qty * opens
        weights = value / (result.cash.to_numpy() + value.sum(axis=0))
        return len(result.fills), float(np.abs(weights[:, 1:] - 0.5).max())

    fills_every_day, _ = run(0.0)
    fills_banded, worst = run(0.02)
    assert fills_every_day >= 2 * (n - 2)  # both symbols, nearly every day
    assert 2 <= fills_banded <= fills_every_day / 10
    assert worst < 0.02 + 1e-9
