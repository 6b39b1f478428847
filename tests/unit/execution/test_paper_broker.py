"""Paper broker matching, costs, caps, time in force and bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from raytrader.domain import (
    Fill,
    IllegalTransition,
    Order,
    OrderState,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from raytrader.execution import (
    DAY_EXPIRED,
    INSUFFICIENT_CASH,
    IOC_REMAINDER,
    CommissionModel,
    PaperBroker,
    PaperBrokerConfig,
)

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)
BUY, SELL = Side.BUY, Side.SELL
MARKET, LIMIT, STOP, STOP_LIMIT = (
    OrderType.MARKET,
    OrderType.LIMIT,
    OrderType.STOP,
    OrderType.STOP_LIMIT,
)


def order(
    cid: str = "o1",
    side: Side = BUY,
    quantity: float = 10.0,
    type: OrderType = MARKET,
    limit: float | None = None,
    stop: float | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    symbol: str = "AAA",
    ts: datetime = T0,
) -> Order:
    return Order(cid, symbol, side, quantity, ts, type, limit, stop, tif)


def bar(
    broker: PaperBroker,
    ts: datetime,
    o: float,
    h: float,
    low: float,
    c: float | None = None,
    v: float = 1e6,
    symbol: str = "AAA",
) -> list[Fill]:
    return broker.on_bar(symbol, ts, o, h, low, o if c is None else c, v)


def broker_with(**config: object) -> PaperBroker:
    return PaperBroker(PaperBrokerConfig.model_validate(config))


# ------------------------------------------------------------------ market orders


def test_market_buy_fills_at_this_bars_open_with_adverse_slippage() -> None:
    broker = broker_with(slippage={"bps": 10.0})
    assert broker.submit(order()).status is OrderStatus.ACCEPTED
    fills = bar(broker, T0, 100.0, 103.0, 99.0, 102.0)
    assert len(fills) == 1
    f = fills[0]
    assert (f.client_order_id, f.fill_id, f.side, f.quantity) == ("o1", "o1-1", BUY, 10.0)
    assert f.price == pytest.approx(100.1)
    assert f.ts == T0
    state = broker.order("o1")
    assert state.status is OrderStatus.FILLED
    assert state.avg_fill_price == pytest.approx(100.1)


def test_market_sell_slippage_receives_less() -> None:
    broker = broker_with(slippage={"bps": 10.0})
    broker.submit(order(side=SELL))
    (f,) = bar(broker, T0, 100.0, 103.0, 99.0)
    assert f.price == pytest.approx(99.9)


def test_bar_older_than_the_order_does_not_fill_it() -> None:
    broker = broker_with()
    broker.submit(order(ts=T0 + HOUR))
    assert bar(broker, T0, 100.0, 101.0, 99.0) == []
    assert broker.order("o1").status is OrderStatus.ACCEPTED
    (f,) = bar(broker, T0 + HOUR, 101.0, 102.0, 100.0)
    assert f.price == 101.0


def test_missing_bar_with_nan_prices_fills_nothing() -> None:
    broker = broker_with()
    broker.submit(order())
    nan = float("nan")
    assert broker.on_bar("AAA", T0, nan, nan, nan, nan, nan) == []
    assert broker.order("o1").status is OrderStatus.ACCEPTED


def test_bar_of_another_symbol_does_not_touch_the_order() -> None:
    broker = broker_with()
    broker.submit(order(symbol="AAA"))
    assert bar(broker, T0, 100.0, 101.0, 99.0, symbol="BBB") == []
    assert broker.order("o1").status is OrderStatus.ACCEPTED


# ------------------------------------------------------------------- limit orders


@pytest.mark.parametrize(
    ("side", "limit", "ohl", "expected"),
    [
        (BUY, 99.0, (100.0, 101.0, 98.5), 99.0),  # trades down through the limit
        (BUY, 99.0, (98.0, 99.5, 97.0), 98.0),  # gaps below the limit: the better open
        (BUY, 99.0, (100.0, 101.0, 99.5), None),  # low stays above the limit
        (SELL, 101.0, (100.0, 101.5, 99.0), 101.0),
        (SELL, 101.0, (102.0, 103.0, 101.5), 102.0),  # gaps above the limit
        (SELL, 101.0, (100.0, 100.9, 99.0), None),
    ],
)
def test_limit_orders(
    side: Side, limit: float, ohl: tuple[float, float, float], expected: float | None
) -> None:
    # Slippage is configured to show that limit fills do not get it.
    broker = broker_with(slippage={"bps": 50.0})
    broker.submit(order(side=side, type=LIMIT, limit=limit))
    fills = bar(broker, T0, *ohl)
    if expected is None:
        assert fills == []
        assert broker.order("o1").status is OrderStatus.ACCEPTED
    else:
        assert [f.price for f in fills] == [expected]
        assert broker.order("o1").status is OrderStatus.FILLED


# -------------------------------------------------------------------- stop orders


@pytest.mark.parametrize(
    ("side", "stop", "ohl", "base"),
    [
        (BUY, 105.0, (100.0, 106.0, 99.0), 105.0),  # trades up through the stop
        (BUY, 105.0, (107.0, 108.0, 106.0), 107.0),  # gaps above the stop: the worse open
        (BUY, 105.0, (100.0, 104.9, 99.0), None),
        (SELL, 95.0, (100.0, 101.0, 94.0), 95.0),
        (SELL, 95.0, (93.0, 94.0, 92.0), 93.0),  # gaps below the stop
        (SELL, 95.0, (100.0, 101.0, 95.1), None),
    ],
)
def test_stop_orders(
    side: Side, stop: float, ohl: tuple[float, float, float], base: float | None
) -> None:
    broker = broker_with(slippage={"bps": 20.0})
    broker.submit(order(side=side, type=STOP, stop=stop))
    fills = bar(broker, T0, *ohl)
    if base is None:
        assert fills == []
        assert broker.order("o1").status is OrderStatus.ACCEPTED
    else:
        slipped = base * 1.002 if side is BUY else base * 0.998
        assert [f.price for f in fills] == [pytest.approx(slipped)]


def test_stop_triggered_without_volume_fills_at_the_next_open_without_retrigger() -> None:
    broker = broker_with(participation_rate=0.1)
    broker.submit(order(type=STOP, stop=105.0))
    assert bar(broker, T0, 100.0, 106.0, 99.0, v=0.0) == []  # triggered, nothing tradable
    # The next bar never reaches the stop again, but the order is a market order now.
    (f,) = bar(broker, T0 + HOUR, 103.0, 104.0, 102.0, v=1_000.0)
    assert (f.quantity, f.price) == (10.0, 103.0)


# -------------------------------------------------------------- stop-limit orders


def test_stop_limit_fills_on_the_trigger_bar_at_the_stop_within_the_limit() -> None:
    broker = broker_with(slippage={"bps": 20.0})
    broker.submit(order(type=STOP_LIMIT, stop=105.0, limit=106.0))
    (f,) = bar(broker, T0, 100.0, 105.5, 99.0)
    assert f.price == 105.0  # a limit fill: no slippage


def test_stop_limit_below_stop_does_not_fill_before_the_trigger() -> None:
    broker = broker_with()
    broker.submit(order(type=STOP_LIMIT, stop=105.0, limit=106.0))
    # The low is below the limit, but the stop was never reached.
    assert bar(broker, T0, 100.0, 104.0, 99.0) == []
    assert broker.order("o1").status is OrderStatus.ACCEPTED


def test_stop_limit_triggers_on_a_gap_rests_then_fills_as_a_limit() -> None:
    broker = broker_with()
    broker.submit(order(type=STOP_LIMIT, stop=105.0, limit=106.0))
    # Gap to 107: triggered, but the trigger price 107 is above the limit 106.
    assert bar(broker, T0, 107.0, 108.0, 106.5) == []
    assert broker.order("o1").status is OrderStatus.ACCEPTED
    # Later bar: open above the limit, low trades down to it -> filled at the limit.
    (f,) = bar(broker, T0 + HOUR, 106.5, 107.0, 105.5)
    assert f.price == 106.0
    assert broker.order("o1").status is OrderStatus.FILLED


def test_stop_limit_sell_mirrored() -> None:
    broker = broker_with()
    broker.submit(order(side=SELL, type=STOP_LIMIT, stop=95.0, limit=94.0))
    assert bar(broker, T0, 93.0, 93.8, 92.0) == []  # gap to 93 < limit 94: rests
    assert bar(broker, T0 + HOUR, 93.0, 93.9, 92.5) == []  # never back up to 94
    (f,) = bar(broker, T0 + 2 * HOUR, 93.5, 94.5, 93.0)
    assert f.price == 94.0


# ------------------------------------------------------------------ time in force


def test_ioc_remainder_is_cancelled_after_the_first_bar() -> None:
    broker = broker_with(participation_rate=0.5)
    broker.submit(order(type=LIMIT, limit=99.0, tif=TimeInForce.IOC))
    (f,) = bar(broker, T0, 100.0, 101.0, 98.0, v=8.0)  # cap 0.5 * 8 = 4
    assert (f.quantity, f.price) == (4.0, 99.0)
    state = broker.order("o1")
    assert (state.status, state.filled_quantity, state.reason) == (
        OrderStatus.CANCELLED,
        4.0,
        IOC_REMAINDER,
    )
    assert broker.open_orders() == []


def test_ioc_that_does_not_reach_its_price_is_cancelled_unfilled() -> None:
    broker = broker_with()
    broker.submit(order(type=LIMIT, limit=95.0, tif=TimeInForce.IOC))
    assert bar(broker, T0, 100.0, 101.0, 98.0) == []
    state = broker.order("o1")
    assert (state.status, state.filled_quantity) == (OrderStatus.CANCELLED, 0.0)


def test_day_order_expires_on_the_first_bar_of_a_later_utc_date() -> None:
    broker = broker_with()
    ts = datetime(2024, 1, 2, 23, 0, tzinfo=UTC)
    broker.submit(order(type=LIMIT, limit=95.0, tif=TimeInForce.DAY, ts=ts))
    assert bar(broker, ts + timedelta(minutes=59), 100.0, 101.0, 96.0) == []  # 23:59 same day
    assert broker.order("o1").status is OrderStatus.ACCEPTED
    # 00:00 next day: the bar would hit the limit, but expiry comes before matching.
    next_day = datetime(2024, 1, 3, 0, 0, tzinfo=UTC)
    assert bar(broker, next_day, 94.0, 96.0, 93.0) == []
    state = broker.order("o1")
    assert (state.status, state.reason, state.updated) == (
        OrderStatus.EXPIRED,
        DAY_EXPIRED,
        next_day,
    )
    assert broker.open_symbols == set()


def test_gtc_order_rests_across_days_until_filled() -> None:
    broker = broker_with()
    broker.submit(order(type=LIMIT, limit=95.0))
    for day in range(1, 4):
        assert bar(broker, T0 + timedelta(days=day), 100.0, 101.0, 96.0) == []
        assert broker.order("o1").status is OrderStatus.ACCEPTED
    (f,) = bar(broker, T0 + timedelta(days=4), 96.0, 97.0, 94.0)
    assert (f.price, f.ts) == (95.0, T0 + timedelta(days=4))


def test_expire_day_expires_day_orders_of_every_symbol_only() -> None:
    broker = broker_with()
    broker.submit(order("d1", type=LIMIT, limit=90.0, tif=TimeInForce.DAY, symbol="AAA"))
    broker.submit(order("d2", type=LIMIT, limit=90.0, tif=TimeInForce.DAY, symbol="BBB"))
    broker.submit(order("g1", type=LIMIT, limit=90.0, symbol="BBB"))
    assert broker.expire_day(T0 + HOUR) == []  # same date
    expired = broker.expire_day(T0 + timedelta(days=1))
    assert [s.order.client_order_id for s in expired] == ["d1", "d2"]
    assert [s.order.client_order_id for s in broker.open_orders()] == ["g1"]
    assert broker.open_symbols == {"BBB"}


# --------------------------------------------------------- partial fills and lots


def test_participation_cap_fills_over_several_bars_with_average_price() -> None:
    broker = broker_with(participation_rate=0.1)
    broker.submit(order(quantity=100.0))
    f1 = bar(broker, T0, 10.0, 10.5, 9.5, v=300.0)  # cap 30
    assert broker.order("o1").status is OrderStatus.PARTIALLY_FILLED
    f2 = bar(broker, T0 + HOUR, 11.0, 11.5, 10.5, v=500.0)  # cap 50
    f3 = bar(broker, T0 + 2 * HOUR, 12.0, 12.5, 11.5, v=400.0)  # cap 40, 20 left
    fills = f1 + f2 + f3
    assert [(f.fill_id, f.quantity, f.price) for f in fills] == [
        ("o1-1", 30.0, 10.0),
        ("o1-2", 50.0, 11.0),
        ("o1-3", 20.0, 12.0),
    ]
    state = broker.order("o1")
    assert state.status is OrderStatus.FILLED
    assert state.filled_quantity == 100.0
    assert state.avg_fill_price == pytest.approx((300.0 + 550.0 + 240.0) / 100.0)  # 10.9


@pytest.mark.parametrize("volume", [0.0, float("nan")])
def test_no_volume_under_a_cap_fills_nothing(volume: float) -> None:
    broker = broker_with(participation_rate=0.5)
    broker.submit(order())
    assert bar(broker, T0, 100.0, 101.0, 99.0, v=volume) == []
    assert broker.order("o1").status is OrderStatus.ACCEPTED


def test_nan_volume_without_a_cap_fills_everything() -> None:
    broker = broker_with()
    broker.submit(order())
    (f,) = bar(broker, T0, 100.0, 101.0, 99.0, v=float("nan"))
    assert f.quantity == 10.0


def test_lot_size_floors_capped_fills_and_rejects_odd_quantities() -> None:
    broker = broker_with(participation_rate=0.1, lot_size=10.0)
    rejected = broker.submit(order("odd", quantity=15.0))
    assert rejected.status is OrderStatus.REJECTED
    assert "lot size" in rejected.reason
    broker.submit(order(quantity=50.0))
    (f,) = bar(broker, T0, 100.0, 101.0, 99.0, v=250.0)  # cap 25 -> 20
    assert f.quantity == 20.0
    assert bar(broker, T0 + HOUR, 100.0, 101.0, 99.0, v=90.0) == []  # cap 9 -> 0 lots
    (f,) = bar(broker, T0 + 2 * HOUR, 100.0, 101.0, 99.0, v=1000.0)  # cap 100, 30 left
    assert f.quantity == 30.0
    assert broker.order("o1").status is OrderStatus.FILLED


def test_fractional_lots_survive_float_noise() -> None:
    broker = broker_with(participation_rate=0.5, lot_size=0.1)
    broker.submit(order(quantity=0.7))
    # cap 0.5 * 0.6 = 0.3, and 0.3 / 0.1 == 2.9999999999999996 in floats: still 3 lots
    (f,) = bar(broker, T0, 100.0, 101.0, 99.0, v=0.6)
    assert f.quantity == pytest.approx(0.3)
    (f,) = bar(broker, T0 + HOUR, 100.0, 101.0, 99.0, v=10.0)
    assert f.quantity == pytest.approx(0.4)
    assert broker.order("o1").status is OrderStatus.FILLED


# --------------------------------------------------------------------- commission


def test_commission_minimum_applies_per_fill() -> None:
    broker = broker_with(commission={"bps": 10.0, "minimum": 5.0}, participation_rate=0.5)
    broker.submit(order(quantity=100.0))
    f1 = bar(broker, T0, 100.0, 101.0, 99.0, v=20.0)  # 10 @ 100: 1.0 -> minimum 5
    f2 = bar(broker, T0 + HOUR, 100.0, 101.0, 99.0, v=1000.0)  # 90 @ 100: 9.0
    assert [f.commission for f in f1 + f2] == [5.0, pytest.approx(9.0)]


# --------------------------------------------------------------------------- cash


class Cash:
    """A mutable buying-power source, as a ledger would provide."""

    def __init__(self, amount: float) -> None:
        self.amount = amount
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.amount


@pytest.mark.parametrize(("lot", "cash"), [(1.0, 50.0), (0.0, 0.0)])
def test_buy_without_cash_is_rejected(lot: float, cash: float) -> None:
    # Whole shares: 50 cannot buy one share at 100; fractional: nothing buys nothing.
    broker = PaperBroker(PaperBrokerConfig(lot_size=lot), buying_power=Cash(cash))
    broker.submit(order(quantity=1.0))
    assert bar(broker, T0, 100.0, 101.0, 99.0) == []
    state = broker.order("o1")
    assert (state.status, state.reason) == (OrderStatus.REJECTED, INSUFFICIENT_CASH)
    assert broker.open_symbols == set()


def test_cash_caps_a_buy_and_the_unaffordable_remainder_is_cancelled_later() -> None:
    cash = Cash(1_000.0)
    broker = PaperBroker(PaperBrokerConfig(), buying_power=cash)
    broker.submit(order(quantity=20.0))
    (f,) = bar(broker, T0, 100.0, 101.0, 99.0)
    assert (f.quantity, f.price) == (10.0, 100.0)
    assert broker.order("o1").status is OrderStatus.PARTIALLY_FILLED
    cash.amount = 0.0  # the ledger booked the fill
    assert bar(broker, T0 + HOUR, 100.0, 101.0, 99.0) == []
    state = broker.order("o1")
    assert (state.status, state.reason, state.filled_quantity) == (
        OrderStatus.CANCELLED,
        INSUFFICIENT_CASH,
        10.0,
    )


def test_cash_cap_includes_commission_and_lots() -> None:
    config = PaperBrokerConfig(commission=CommissionModel(bps=10.0, minimum=2.0), lot_size=1.0)
    broker = PaperBroker(config, buying_power=lambda: 1_000.0)
    broker.submit(order(quantity=20.0))
    (f,) = bar(broker, T0, 100.0, 101.0, 99.0)
    # Unrounded cap 9.98 (see test_costs), floored to 9 lots: 900 + 2 (minimum) <= 1000.
    assert (f.quantity, f.commission) == (9.0, 2.0)


def test_cash_cap_without_lots_spends_the_budget_exactly() -> None:
    config = PaperBrokerConfig(commission=CommissionModel(bps=10.0, minimum=2.0))
    broker = PaperBroker(config, buying_power=lambda: 1_000.0)
    broker.submit(order(quantity=20.0))
    (f,) = bar(broker, T0, 100.0, 101.0, 99.0)
    assert f.quantity == pytest.approx(9.98)
    assert f.quantity * f.price + f.commission <= 1_000.0


def test_sells_match_before_buys_so_their_proceeds_fund_the_buy() -> None:
    cash = Cash(0.0)
    broker = PaperBroker(PaperBrokerConfig(), buying_power=cash)
    broker.submit(order("buy", side=BUY, quantity=10.0))  # submitted first
    broker.submit(order("sell", side=SELL, quantity=10.0))
    fills = bar(broker, T0, 100.0, 101.0, 99.0)
    assert [(f.client_order_id, f.quantity) for f in fills] == [("sell", 10.0), ("buy", 10.0)]
    assert cash.calls == 1  # read once per call; the sell proceeds are netted in


def test_on_bars_sells_of_every_symbol_fund_buys_of_another() -> None:
    cash = Cash(0.0)
    broker = PaperBroker(PaperBrokerConfig(), buying_power=cash)
    broker.submit(order("buy-b", side=BUY, quantity=5.0, symbol="BBB"))
    broker.submit(order("sell-a", side=SELL, quantity=10.0, symbol="AAA"))
    fills = broker.on_bars(
        T0,
        {
            "BBB": (200.0, 201.0, 199.0, 200.0, 1e6),  # listed first, matched after the sell
            "AAA": (100.0, 101.0, 99.0, 100.0, 1e6),
            "CCC": (50.0, 51.0, 49.0, 50.0, 1e6),  # no orders: ignored
        },
    )
    assert [(f.client_order_id, f.quantity, f.price) for f in fills] == [
        ("sell-a", 10.0, 100.0),
        ("buy-b", 5.0, 200.0),  # 1000 of proceeds buys exactly 5 at 200
    ]
    assert cash.calls == 1
    assert broker.open_symbols == set()


def test_on_bar_per_symbol_cannot_use_another_symbols_proceeds() -> None:
    # The same situation, bar by bar with the buy's symbol first: the buy sees no cash.
    broker = PaperBroker(PaperBrokerConfig(), buying_power=Cash(0.0))
    broker.submit(order("buy-b", side=BUY, quantity=5.0, symbol="BBB"))
    broker.submit(order("sell-a", side=SELL, quantity=10.0, symbol="AAA"))
    assert bar(broker, T0, 200.0, 201.0, 199.0, symbol="BBB") == []
    assert broker.order("buy-b").status is OrderStatus.REJECTED
    assert len(bar(broker, T0, 100.0, 101.0, 99.0, symbol="AAA")) == 1


def test_buys_in_one_bar_share_the_buying_power() -> None:
    broker = PaperBroker(PaperBrokerConfig(), buying_power=lambda: 1_500.0)
    broker.submit(order("b1", quantity=10.0))
    broker.submit(order("b2", quantity=10.0))
    fills = bar(broker, T0, 100.0, 101.0, 99.0)
    assert [(f.client_order_id, f.quantity) for f in fills] == [("b1", 10.0), ("b2", 5.0)]


def test_sells_ignore_buying_power() -> None:
    broker = PaperBroker(PaperBrokerConfig(), buying_power=lambda: 0.0)
    broker.submit(order(side=SELL))
    (f,) = bar(broker, T0, 100.0, 101.0, 99.0)
    assert f.quantity == 10.0


# ------------------------------------------------------------ ids and bookkeeping


def test_duplicate_client_order_id_is_rejected_and_the_original_untouched() -> None:
    updates: list[OrderState] = []
    broker = PaperBroker(PaperBrokerConfig(), on_update=updates.append)
    original = broker.submit(order("dup", type=LIMIT, limit=90.0, quantity=10.0))
    duplicate = broker.submit(order("dup", quantity=99.0, side=SELL))
    assert duplicate.status is OrderStatus.REJECTED
    assert "'dup'" in duplicate.reason
    assert duplicate.order.quantity == 99.0
    assert broker.order("dup") is original
    assert broker.orders() == [original]
    assert broker.journal == [original]
    assert updates == [original]
    # Also after the original is done.
    broker.cancel("dup", T0)
    assert broker.submit(order("dup")).status is OrderStatus.REJECTED
    assert broker.order("dup").status is OrderStatus.CANCELLED


def test_journal_and_hook_see_every_state_change_in_order() -> None:
    updates: list[OrderState] = []
    broker = PaperBroker(PaperBrokerConfig(participation_rate=0.5), on_update=updates.append)
    broker.submit(order("a", quantity=10.0))
    broker.submit(order("b", type=LIMIT, limit=50.0))
    bar(broker, T0, 100.0, 101.0, 99.0, v=10.0)  # a: 5
    bar(broker, T0 + HOUR, 100.0, 101.0, 99.0, v=10.0)  # a: 5 more
    broker.cancel("b", T0 + HOUR, "changed my mind")
    expected = [
        ("a", OrderStatus.ACCEPTED, 0.0),
        ("b", OrderStatus.ACCEPTED, 0.0),
        ("a", OrderStatus.PARTIALLY_FILLED, 5.0),
        ("a", OrderStatus.FILLED, 10.0),
        ("b", OrderStatus.CANCELLED, 0.0),
    ]
    got = [(s.order.client_order_id, s.status, s.filled_quantity) for s in broker.journal]
    assert got == expected
    assert updates == broker.journal
    assert broker.journal[-1].reason == "changed my mind"
    drained = broker.drain_journal()
    assert len(drained) == 5
    assert broker.journal == []


def test_cancel_unknown_and_terminal_orders() -> None:
    broker = broker_with()
    with pytest.raises(KeyError, match="nope"):
        broker.cancel("nope", T0)
    broker.submit(order())
    bar(broker, T0, 100.0, 101.0, 99.0)
    with pytest.raises(IllegalTransition):
        broker.cancel("o1", T0)
    assert broker.order("o1").status is OrderStatus.FILLED
    with pytest.raises(KeyError, match="nope"):
        broker.order("nope")


def test_cancel_all_by_symbol_then_everything() -> None:
    broker = broker_with()
    broker.submit(order("a1", type=LIMIT, limit=50.0, symbol="AAA"))
    broker.submit(order("b1", type=LIMIT, limit=50.0, symbol="BBB"))
    broker.submit(order("a2", type=LIMIT, limit=50.0, symbol="AAA"))
    assert broker.open_symbols == {"AAA", "BBB"}
    done = broker.cancel_all(T0 + HOUR, symbol="AAA")
    assert [(s.order.client_order_id, s.status) for s in done] == [
        ("a1", OrderStatus.CANCELLED),
        ("a2", OrderStatus.CANCELLED),
    ]
    assert broker.open_symbols == {"BBB"}
    assert [s.order.client_order_id for s in broker.open_orders()] == ["b1"]
    assert broker.open_orders("AAA") == []
    assert [s.order.client_order_id for s in broker.cancel_all(T0 + HOUR)] == ["b1"]
    assert broker.open_symbols == set()
    assert broker.cancel_all(T0 + HOUR) == []
    assert [s.order.client_order_id for s in broker.orders()] == ["a1", "b1", "a2"]


def test_open_symbols_tracks_fills() -> None:
    broker = broker_with()
    broker.submit(order("a", symbol="AAA"))
    broker.submit(order("b", type=LIMIT, limit=50.0, symbol="BBB"))
    assert broker.open_symbols == {"AAA", "BBB"}
    bar(broker, T0, 100.0, 101.0, 99.0, symbol="AAA")
    assert broker.open_symbols == {"BBB"}
    assert [s.order.client_order_id for s in broker.open_orders("BBB")] == ["b"]


def test_naive_timestamps_are_refused() -> None:
    broker = broker_with()
    broker.submit(order())
    naive = datetime(2024, 1, 2, 14, 30)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="tz-aware"):
        broker.on_bar("AAA", naive, 100.0, 101.0, 99.0, 100.0, 1e6)
    with pytest.raises(ValueError, match="tz-aware"):
        broker.cancel("o1", naive)


@pytest.mark.parametrize(
    "config",
    [
        {"participation_rate": 0.0},
        {"participation_rate": 1.5},
        {"lot_size": -1.0},
        {"slippage_bps": 1.0},
        {"commission": {"bps": -1.0}},
    ],
)
def test_invalid_config_is_refused(config: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PaperBrokerConfig.model_validate(config)
