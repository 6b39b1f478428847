"""Pre-trade checks: each limit passes what it should and refuses the rest with an exact reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from raytrader.domain import Order, OrderType, Side
from raytrader.domain.bracket import bracket
from raytrader.execution.paper_broker import PaperBroker
from raytrader.portfolio.planner import marked_account
from raytrader.risk.checks import (
    MIN_OBSERVATIONS,
    PreTradeRisk,
    RiskContext,
    bar_returns,
    historical_var,
    order_price,
    resting_quantities,
)
from raytrader.risk.limits import RiskLimits

T0 = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
_ids = iter(range(1_000_000))


def order(
    symbol: str = "A",
    side: Side = Side.BUY,
    quantity: float = 10.0,
    ts: datetime = T0,
    **kw: object,
) -> Order:
    return Order(f"o-{next(_ids)}", symbol, side, quantity, ts, **kw)  # type: ignore[arg-type]


def check(
    orders: list[Order],
    cash: float = 100_000.0,
    positions: dict[str, float] | None = None,
    prices: dict[str, float] | None = None,
    context: RiskContext | None = None,
    **limits: Any,
) -> tuple[list[Order], list[tuple[Order, str]]]:
    prices = prices or {"A": 100.0, "B": 50.0, "C": 20.0}
    account = marked_account(cash, positions or {}, prices)
    return PreTradeRisk(RiskLimits(**limits)).check(orders, account, prices, context)


def reasons(refused: list[tuple[Order, str]]) -> list[str]:
    return [why for _, why in refused]


# ---------------------------------------------------------------------- the basic limits


def test_defaults_pass_an_order_within_equity_and_refuse_beyond_it() -> None:
    passed, refused = check([order(quantity=900), order("B", quantity=400)])
    assert len(passed) == 1
    assert reasons(refused) == ["max_gross_exposure: 1.1000 > 1.0000"]


def test_max_position_weight_names_the_weights() -> None:
    ok = order(quantity=400)
    big = order("B", quantity=1_000)
    passed, refused = check([ok, big], max_position_weight=0.4)
    assert passed == [ok]
    assert reasons(refused) == ["max_position_weight: 0.5000 > 0.4000"]


def test_no_price_and_short_selling_reasons() -> None:
    _, refused = check([order("Z"), order("A", Side.SELL, 5)])
    assert reasons(refused) == ["no price for Z", "short selling not allowed"]


def test_the_old_call_without_a_context_still_works() -> None:
    prices = {"A": 100.0}
    account = marked_account(10_000.0, {}, prices)
    passed, refused = PreTradeRisk(RiskLimits()).check([order(quantity=50)], account, prices)
    assert len(passed) == 1 and refused == []


# ------------------------------------------------------------ orders resting at the broker


def test_resting_sells_count_toward_the_short_check() -> None:
    """Long 10: a resting limit sell of 10 passes; a second one of 5 would go short if both
    filled, so it is refused with the numbers."""
    broker = PaperBroker()
    held = {"A": 10.0}

    def send(o: Order) -> list[tuple[Order, str]]:
        ctx = RiskContext(resting=resting_quantities(broker.open_orders()))
        passed, refused = check([o], positions=held, context=ctx)
        for p in passed:
            broker.submit(p)
        return refused

    first = order(side=Side.SELL, quantity=10, type=OrderType.LIMIT, limit_price=120.0)
    assert send(first) == []
    second = order(side=Side.SELL, quantity=5, type=OrderType.LIMIT, limit_price=125.0)
    assert reasons(send(second)) == [
        "short selling not allowed: position 10 - resting sells 10 - this sell 5 = -5"
    ]
    assert [st.order.client_order_id for st in broker.open_orders()] == [first.client_order_id]
    # Once the first is cancelled, the second fits.
    broker.cancel(first.client_order_id, T0)
    assert send(second) == []
    # Allowed shorts are not limited by what rests.
    ctx = RiskContext(resting=resting_quantities(broker.open_orders()))
    passed, _ = check(
        [order(side=Side.SELL, quantity=50)], positions=held, context=ctx, allow_short=True
    )
    assert len(passed) == 1


def test_resting_buys_count_toward_the_position_weight() -> None:
    ctx = RiskContext(resting={"A": (300.0, 0.0)})
    passed, refused = check([order(quantity=100)], context=ctx, max_position_weight=0.35)
    assert passed == []
    assert reasons(refused) == ["max_position_weight: 0.4000 > 0.3500 (with 300 resting)"]
    passed, _ = check([order(quantity=100)], max_position_weight=0.35)
    assert len(passed) == 1  # without the resting buys it fits


def test_resting_quantities_count_an_oco_group_once_and_leave_exits_out() -> None:
    broker = PaperBroker()
    entry, tp, sl = bracket(order(quantity=10), take_profit=110.0, stop_loss=90.0)
    for o in (entry, tp, sl):
        broker.submit(o)
    oco = [
        order("B", Side.SELL, 4, type=OrderType.LIMIT, limit_price=60.0, oco_group="g"),
        order("B", Side.SELL, 6, type=OrderType.STOP, stop_price=40.0, oco_group="g"),
        order("B", Side.SELL, 1, type=OrderType.LIMIT, limit_price=70.0),
    ]
    for o in oco:
        broker.submit(o)
    states = broker.orders()
    assert resting_quantities(states) == {"A": (10.0, 0.0), "B": (0.0, 7.0)}
    assert resting_quantities(states, but=["B"]) == {"A": (10.0, 0.0)}
    broker.on_bar("B", T0 + timedelta(minutes=1), 50.0, 61.0, 49.0, 50.0, 1e6)  # the 4 fill
    assert resting_quantities(broker.orders())["B"] == (0.0, 1.0)


# ----------------------------------------------------------------------- net exposure


def test_max_net_exposure_refuses_what_adds_to_it_and_passes_hedges() -> None:
    positions = {"A": 500.0}  # 50,000 long of 100,000 equity
    kw: dict[str, Any] = {"max_net_exposure": 0.6, "allow_short": True, "max_gross_exposure": 3.0}
    cash = 50_000.0
    passed, refused = check([order("B", quantity=400)], cash, positions, **kw)
    assert passed == [] and reasons(refused) == ["max_net_exposure: 0.7000 > 0.6000"]
    hedge = order("B", Side.SELL, 1_000)  # -50,000: net 0
    passed, refused = check([hedge], cash, positions, **kw)
    assert passed == [hedge] and refused == []


def test_max_net_exposure_counts_orders_passed_earlier_in_the_batch() -> None:
    first, second = order(quantity=300), order("B", quantity=300)  # 30,000 then 15,000
    passed, refused = check([first, second], max_net_exposure=0.4)
    assert passed == [first] and reasons(refused) == ["max_net_exposure: 0.4500 > 0.4000"]


# ------------------------------------------------------------------------ order limits


def test_max_order_notional() -> None:
    small, big = order(quantity=100), order(quantity=125)
    passed, refused = check([small, big], max_order_notional=10_000)
    assert passed == [small]
    assert reasons(refused) == ["max_order_notional: 12,500.00 > 10,000.00"]


def test_max_order_notional_values_a_limit_order_at_its_limit_price() -> None:
    lim = order(quantity=90, type=OrderType.LIMIT, limit_price=120.0)  # 10,800
    _, refused = check([lim], max_order_notional=10_000)
    assert reasons(refused) == ["max_order_notional: 10,800.00 > 10,000.00"]
    assert order_price(lim, 100.0) == 120.0
    assert order_price(order(type=OrderType.STOP, stop_price=90.0), 100.0) == 90.0
    assert order_price(order(), 100.0) == 100.0


def test_price_band_refuses_limit_and_stop_prices_far_from_the_last_price() -> None:
    near = order(type=OrderType.LIMIT, limit_price=104.0)
    far = order(type=OrderType.LIMIT, limit_price=110.0)
    stop = order("A", Side.BUY, type=OrderType.STOP, stop_price=94.0)
    market = order(quantity=1)
    passed, refused = check([near, far, stop, market], price_band=0.05)
    assert passed == [near, market]
    assert reasons(refused) == [
        "price_band: limit 110.00 vs last 100.00 is 0.1000 > 0.0500",
        "price_band: stop 94.00 vs last 100.00 is 0.0600 > 0.0500",
    ]


def test_max_open_orders_counts_the_working_orders_and_the_batch() -> None:
    ctx = RiskContext(open_orders=3)
    a, b = order(quantity=1), order("B", quantity=1)
    passed, refused = check([a, b], context=ctx, max_open_orders=4)
    assert passed == [a] and reasons(refused) == ["max_open_orders: 5 > 4"]
    # Without a context only the batch counts.
    passed, refused = check([order(quantity=1), order("B", quantity=1)], max_open_orders=4)
    assert len(passed) == 2 and refused == []


def test_max_orders_per_minute_counts_orders_sent_in_the_last_sixty_seconds() -> None:
    sent = [T0 - timedelta(seconds=s) for s in (61, 60, 30, 0)]  # 60 s ago is out
    ctx = RiskContext(now=T0, order_times=sent)
    a, b = order(quantity=1), order("B", quantity=1)
    passed, refused = check([a, b], context=ctx, max_orders_per_minute=3)
    assert passed == [a] and reasons(refused) == ["max_orders_per_minute: 4 > 3"]


def test_the_rate_limit_uses_each_orders_time_without_now() -> None:
    later = T0 + timedelta(minutes=2)
    ctx = RiskContext(order_times=[T0, T0, T0])
    passed, refused = check(
        [order(quantity=1, ts=later), order(quantity=1, ts=T0)],
        context=ctx,
        max_orders_per_minute=3,
    )
    assert len(passed) == 1 and reasons(refused) == ["max_orders_per_minute: 4 > 3"]


# ------------------------------------------------------------------------ account state


def test_daily_loss_limit_refuses_orders_that_add_exposure_once_breached() -> None:
    ctx = RiskContext(day_start_equity=100_000.0)
    positions = {"A": 200.0}
    # Equity 94,000: cash 74,000 + 200 x 100; lost 6% of the day's start.
    buy, sell = order(quantity=10), order("A", Side.SELL, 50)
    passed, refused = check(
        [buy, sell], cash=74_000.0, positions=positions, context=ctx, daily_loss_limit=0.05
    )
    assert passed == [sell]
    assert reasons(refused) == [
        "daily_loss_limit: 0.0600 > 0.0500 (equity 94,000.00, day start 100,000.00)"
    ]
    passed, refused = check(
        [order(quantity=10)], cash=76_000.0, positions=positions, context=ctx, daily_loss_limit=0.05
    )
    assert len(passed) == 1 and refused == []


def test_daily_loss_limit_needs_the_days_start() -> None:
    passed, _ = check([order(quantity=1)], cash=1_000.0, daily_loss_limit=0.01)
    assert len(passed) == 1


def _walks(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 0.01, n)
    twin = base + rng.normal(0, 0.001, n)  # corr ~0.99 with base
    other = rng.normal(0, 0.01, n)  # uncorrelated
    return base, twin, other


def test_max_correlation_refuses_a_position_that_moves_with_a_holding() -> None:
    a, b, c = _walks(60)
    ctx = RiskContext(returns={"A": a, "B": b, "C": c})
    positions = {"A": 100.0}
    kw: dict[str, Any] = {"max_correlation": 0.8, "allow_short": True}
    to_b, to_c = order("B", quantity=10), order("C", quantity=10)
    passed, refused = check([to_b, to_c], positions=positions, context=ctx, **kw)
    corr = float(np.corrcoef(a, b)[0, 1])
    assert passed == [to_c]
    assert reasons(refused) == [f"max_correlation: B with A {corr:.4f} > 0.8000"]
    # A short of the twin hedges the long: its signed correlation is negative.
    passed, refused = check([order("B", Side.SELL, 10)], positions=positions, context=ctx, **kw)
    assert len(passed) == 1 and refused == []
    # Reducing never refused; nor is anything without enough history.
    passed, _ = check(
        [order("B", Side.SELL, 5)], positions={"A": 100.0, "B": 10.0}, context=ctx, **kw
    )
    assert len(passed) == 1
    short = RiskContext(returns={"A": a[: MIN_OBSERVATIONS - 1], "B": b})
    passed, _ = check([order("B", quantity=10)], positions=positions, context=short, **kw)
    assert len(passed) == 1


def test_max_correlation_looks_back_risk_lookback_bars() -> None:
    a, b, c = _walks(60)
    # Long ago B moved with A; over the last 20 bars it does not.
    b2 = np.concatenate([b[:40], c[40:]])
    ctx = RiskContext(returns={"A": a, "B": b2})
    kw: dict[str, Any] = {"max_correlation": 0.5, "risk_lookback": 20}
    passed, _ = check([order("B", quantity=10)], positions={"A": 100.0}, context=ctx, **kw)
    assert len(passed) == 1
    _, refused = check(
        [order("B", quantity=10)], positions={"A": 100.0}, context=ctx, max_correlation=0.5
    )
    assert reasons(refused)[0].startswith("max_correlation: B with A ")


def test_max_var_refuses_an_order_that_lifts_the_var_above_the_limit() -> None:
    a, _, c = _walks(100, seed=3)
    returns = {"A": a, "C": c}
    ctx = RiskContext(returns=returns)
    prices = {"A": 100.0, "C": 20.0}
    big = order("A", quantity=600)  # 60,000 of A
    passed, refused = check([big], prices=prices, context=ctx, max_var=0.01)
    pnl = 60_000.0 * a[-60:]
    var = -float(np.quantile(pnl, 0.05)) / 100_000.0
    assert var > 0.01
    assert passed == [] and reasons(refused) == [f"max_var: {var:.4f} > 0.0100"]
    small = order("A", quantity=100)
    passed, refused = check([small], prices=prices, context=ctx, max_var=0.01)
    assert passed == [small] and refused == []


def test_max_var_passes_orders_that_lower_the_var_even_above_the_limit() -> None:
    a, _, c = _walks(100, seed=3)
    ctx = RiskContext(returns={"A": a, "C": c})
    prices = {"A": 100.0, "C": 20.0}
    positions = {"A": 900.0}  # VaR well above 1%
    cut = order("A", Side.SELL, 100)
    passed, _ = check(
        [cut], cash=10_000.0, positions=positions, prices=prices, context=ctx, max_var=0.01
    )
    assert passed == [cut]


def test_historical_var_and_bar_returns_by_hand() -> None:
    closes = np.array([[100.0, 110.0, 99.0], [10.0, 10.0, 12.0]])
    r = bar_returns(["A", "B"], closes)
    assert np.allclose(r["A"], [0.1, -0.1]) and np.allclose(r["B"], [0.0, 0.2])
    rng = np.random.default_rng(1)
    ra, rb = rng.normal(0, 0.02, 30), rng.normal(0, 0.01, 30)
    var = historical_var({"A": 10.0, "B": -100.0}, {"A": 100.0, "B": 10.0}, {"A": ra, "B": rb}, 60)
    pnl = 1_000.0 * ra - 1_000.0 * rb
    assert var == pytest.approx(-np.quantile(pnl, 0.05))
    assert historical_var({}, {}, {}, 60) == 0.0
    assert historical_var({"A": 1.0}, {"A": 1.0}, {"A": ra[:5]}, 60) is None


# ---------------------------------------------------------------------------- halted


def test_a_halted_context_refuses_everything_with_the_reason() -> None:
    ctx = RiskContext(halted="max_drawdown: 0.1200 > 0.1000")
    passed, refused = check([order(quantity=1), order("A", Side.SELL, 1)], context=ctx)
    assert passed == []
    assert reasons(refused) == ["halted: max_drawdown: 0.1200 > 0.1000"] * 2


def test_limits_off_by_default_and_listed_when_on() -> None:
    assert RiskLimits().extended == [] and not RiskLimits().needs_returns
    limits = RiskLimits(max_var=0.02, max_open_orders=3)
    assert limits.extended == ["max_open_orders", "max_var"] and limits.needs_returns
