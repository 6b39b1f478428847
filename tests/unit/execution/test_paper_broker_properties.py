"""Property: on any bar path, fills stay within the order quantity and the bars' ranges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from raytrader.domain import Fill, Order, OrderType, Side, TimeInForce
from raytrader.execution import (
    CommissionModel,
    PaperBroker,
    PaperBrokerConfig,
    SlippageModel,
)

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
# Six-hour bars, so DAY orders meet a date boundary within a few bars.
STEP = timedelta(hours=6)

prices = st.floats(min_value=50.0, max_value=150.0, allow_nan=False)
extensions = st.floats(min_value=0.0, max_value=20.0, allow_nan=False)
volumes = st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=500.0, allow_nan=False))

# (open, close, up, down, volume): high = max(open, close) + up, low = min(open, close) - down.
bar_paths = st.lists(st.tuples(prices, prices, extensions, extensions, volumes), max_size=12)


@st.composite
def orders(draw: st.DrawFn, whole: bool) -> Order:
    kind = draw(st.sampled_from(list(OrderType)))
    quantity = (
        float(draw(st.integers(1, 300)))
        if whole
        else draw(st.floats(min_value=0.01, max_value=300.0, allow_nan=False))
    )
    needs_limit = kind in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    needs_stop = kind in (OrderType.STOP, OrderType.STOP_LIMIT)
    trail_amount = trail_percent = None
    if kind is OrderType.TRAILING_STOP:
        if draw(st.booleans()):
            trail_amount = draw(st.floats(min_value=0.01, max_value=30.0))
        else:
            trail_percent = draw(st.floats(min_value=0.001, max_value=0.5))
    return Order(
        client_order_id="p1",
        symbol="AAA",
        side=draw(st.sampled_from(list(Side))),
        quantity=quantity,
        ts=T0,
        type=kind,
        limit_price=draw(prices) if needs_limit else None,
        stop_price=draw(prices) if needs_stop else None,
        time_in_force=draw(st.sampled_from(list(TimeInForce))),
        trail_amount=trail_amount,
        trail_percent=trail_percent,
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[PaperBrokerConfig, float | None, Order]:
    whole = draw(st.booleans())
    config = PaperBrokerConfig(
        commission=CommissionModel(
            bps=draw(st.floats(0.0, 50.0)), minimum=draw(st.sampled_from([0.0, 1.0]))
        ),
        slippage=SlippageModel(bps=draw(st.floats(0.0, 100.0))),
        participation_rate=draw(st.one_of(st.none(), st.floats(0.01, 1.0))),
        lot_size=1.0 if whole else 0.0,
    )
    cash = draw(st.one_of(st.none(), st.floats(0.0, 30_000.0)))
    return config, cash, draw(orders(whole))


@settings(max_examples=300, deadline=None)
@given(scenario=scenarios(), path=bar_paths)
def test_fills_respect_quantity_and_bar_range(
    scenario: tuple[PaperBrokerConfig, float | None, Order],
    path: list[tuple[float, float, float, float, float]],
) -> None:
    config, cash, order = scenario
    broker = PaperBroker(config, buying_power=None if cash is None else (lambda: cash))
    broker.submit(order)
    slip = config.slippage.bps / 1e4
    all_fills: list[Fill] = []
    for i, (o, c, up, down, volume) in enumerate(path):
        high, low = max(o, c) + up, max(min(o, c) - down, 1.0)
        fills = broker.on_bar("AAA", T0 + i * STEP, o, high, low, c, volume)
        for f in fills:
            assert low * (1 - slip) * (1 - 1e-12) <= f.price <= high * (1 + slip) * (1 + 1e-12)
            if config.participation_rate is not None:
                assert f.quantity <= config.participation_rate * volume * (1 + 1e-9)
            if cash is not None and f.side is Side.BUY:
                assert f.quantity * f.price + f.commission <= cash * (1 + 1e-12)
            assert f.commission == config.commission.commission(f.quantity * f.price)
            if config.lot_size:
                assert f.quantity == round(f.quantity)
        all_fills += fills
    state = broker.order("p1")
    filled = sum(f.quantity for f in all_fills)
    assert filled <= order.quantity * (1 + 1e-9)
    assert abs(state.filled_quantity - filled) <= 1e-9 * order.quantity
    assert [f.fill_id for f in all_fills] == [f"p1-{n}" for n in range(1, len(all_fills) + 1)]
    assert state.is_open == ("AAA" in broker.open_symbols)
