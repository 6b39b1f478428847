"""Accounting identities of the ledger on random event sequences."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from raytrader.domain import Fill, Side
from raytrader.state import Ledger

SYMBOLS = ("AAA", "BBB", "CCC")
T0 = datetime(2024, 1, 1, tzinfo=UTC)

prices = st.floats(0.01, 1000.0, allow_nan=False)
quantities = st.floats(0.001, 1000.0, allow_nan=False)
commissions = st.floats(0.0, 5.0, allow_nan=False)

# ("trade", symbol, side, qty, price, commission): a fill of qty;
# ("close", ...) / ("flip", ...): a fill closing (or 1.5x reversing) the current position.
fill_actions = st.tuples(
    st.sampled_from(["trade", "trade", "close", "flip"]),
    st.sampled_from(SYMBOLS),
    st.sampled_from([Side.BUY, Side.SELL]),
    quantities,
    prices,
    commissions,
)
corporate_actions = st.one_of(
    st.tuples(st.just("split"), st.sampled_from(SYMBOLS), st.sampled_from([0.5, 2.0, 3.0, 0.1])),
    st.tuples(st.just("dividend"), st.sampled_from(SYMBOLS), st.floats(0.0, 3.0)),
    st.tuples(st.just("deposit"), st.just(""), st.floats(-1000.0, 1000.0)),
)


def run(ledger: Ledger, actions: list[tuple[object, ...]]) -> dict[str, float]:
    """Apply ``actions``; return the last traded price per symbol."""
    last: dict[str, float] = {}
    for i, action in enumerate(actions):
        ts = T0 + timedelta(minutes=i)
        kind, symbol = action[0], str(action[1])
        if kind in ("trade", "close", "flip"):
            _, _, side, qty, price, commission = action
            assert isinstance(side, Side) and isinstance(qty, float)
            assert isinstance(price, float) and isinstance(commission, float)
            held = ledger.position(symbol).quantity
            if kind != "trade" and held != 0.0:
                side = Side.SELL if held > 0 else Side.BUY
                qty = abs(held) * (1.0 if kind == "close" else 1.5)
            ledger.apply_fill(Fill(f"o{i}", symbol, side, qty, price, commission, ts))
            last[symbol] = price
        elif kind == "split":
            ratio = action[2]
            assert isinstance(ratio, float)
            ledger.apply_split(symbol, ratio, ts)
            if symbol in last:
                last[symbol] /= ratio
        elif kind == "dividend":
            assert isinstance(action[2], float)
            ledger.apply_dividend(symbol, action[2], ts)
        else:
            assert isinstance(action[2], float)
            ledger.deposit(action[2], ts)
    return last


def assert_close(lhs: float, rhs: float, scale: float) -> None:
    assert math.isclose(lhs, rhs, rel_tol=1e-9, abs_tol=1e-9 * scale), (lhs, rhs)


@settings(max_examples=300, deadline=None)
@given(initial=st.floats(1e3, 1e7), actions=st.lists(fill_actions, max_size=60))
def test_fill_identity(initial: float, actions: list[tuple[object, ...]]) -> None:
    """cash + sum(qty * last price) == initial + realized + unrealized - commissions."""
    ledger = Ledger(initial)
    last = run(ledger, actions)
    lhs = ledger.cash + sum(p.quantity * last[s] for s, p in ledger.positions().items())
    rhs = initial + ledger.realized_pnl + ledger.unrealized_pnl(last) - ledger.commission_paid
    scale = initial + sum(abs(t.quantity * t.price) for t in ledger.transactions)
    assert_close(lhs, rhs, scale)
    assert_close(lhs, ledger.equity(last), scale)


@settings(max_examples=300, deadline=None)
@given(
    initial=st.floats(1e3, 1e7),
    actions=st.lists(st.one_of(fill_actions, corporate_actions), max_size=60),
)
def test_identity_with_corporate_actions_and_trades(
    initial: float, actions: list[tuple[object, ...]]
) -> None:
    """The identity with dividends and deposits; trades account for every PnL component."""
    ledger = Ledger(initial)
    last = run(ledger, actions)
    scale = initial + sum(abs(t.quantity * t.price) + abs(t.amount) for t in ledger.transactions)
    equity = ledger.equity(last)
    unrealized = ledger.unrealized_pnl(last)
    expected = (
        initial
        + ledger.deposits
        + ledger.dividends
        + ledger.realized_pnl
        + unrealized
        - ledger.commission_paid
    )
    assert_close(equity, expected, scale)

    # Closed plus open (marked-to-market) trades explain all PnL but deposits.
    trades_pnl = sum(t.pnl for t in ledger.trades) + sum(t.pnl for t in ledger.open_trades(last))
    assert_close(trades_pnl, equity - initial - ledger.deposits, scale)
    assert {t.symbol for t in ledger.open_trades()} == set(ledger.positions())
    for trade in ledger.trades:
        assert trade.exit_ts is not None and trade.entry_ts <= trade.exit_ts
        assert trade.quantity > 0 and trade.direction in (-1, 1)

    # Cash is the sum of the transactions' cash effects.
    assert_close(ledger.cash, initial + sum(t.amount for t in ledger.transactions), scale)

    # A snapshot restores the same state.
    snap = ledger.snapshot()
    assert Ledger.from_snapshot(json.loads(json.dumps(snap))).snapshot() == snap
