"""Ledger on hand-computed sequences."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from raytrader.domain import Fill, Position, Side
from raytrader.state import Ledger, Trade, Transaction

T0 = datetime(2024, 1, 2, tzinfo=UTC)


def ts(day: int) -> datetime:
    return T0 + timedelta(days=day)


def fill(
    side: Side,
    qty: float,
    price: float,
    day: int,
    commission: float = 0.0,
    symbol: str = "AAA",
    fill_id: str = "",
) -> Fill:
    return Fill(f"o{day}", symbol, side, qty, price, commission, ts(day), fill_id)


def round_trip_ledger() -> Ledger:
    """Buy, add, partial sell, flip to short, cover."""
    ledger = Ledger(100_000.0)
    ledger.apply_fill(fill(Side.BUY, 10, 100.0, 0, 1.0))
    ledger.apply_fill(fill(Side.BUY, 10, 110.0, 1, 1.0))
    ledger.apply_fill(fill(Side.SELL, 5, 120.0, 2, 1.0))
    ledger.apply_fill(fill(Side.SELL, 25, 90.0, 3, 2.0))
    ledger.apply_fill(fill(Side.BUY, 10, 80.0, 4, 1.0))
    return ledger


def test_fresh_ledger() -> None:
    ledger = Ledger(1000.0)
    assert ledger.cash == 1000.0
    assert ledger.position("X") == Position("X")
    assert ledger.positions() == {}
    assert ledger.equity({}) == 1000.0
    assert ledger.realized_pnl == 0.0
    assert ledger.trades == [] and ledger.open_trades() == []


def test_buy_add_reduce_flip_cover_step_by_step() -> None:
    ledger = Ledger(100_000.0)
    ledger.apply_fill(fill(Side.BUY, 10, 100.0, 0, 1.0))
    assert ledger.cash == 98_999.0
    assert ledger.position("AAA") == Position("AAA", 10.0, 100.0, 0.0)

    ledger.apply_fill(fill(Side.BUY, 10, 110.0, 1, 1.0))
    assert ledger.cash == 97_898.0
    assert ledger.position("AAA") == Position("AAA", 20.0, 105.0, 0.0)
    assert ledger.unrealized_pnl({"AAA": 120.0}) == 300.0
    assert ledger.equity({"AAA": 120.0}) == 97_898.0 + 2400.0

    ledger.apply_fill(fill(Side.SELL, 5, 120.0, 2, 1.0))
    assert ledger.cash == 98_497.0
    assert ledger.position("AAA") == Position("AAA", 15.0, 105.0, 75.0)
    assert ledger.trades == []

    tx = ledger.apply_fill(fill(Side.SELL, 25, 90.0, 3, 2.0))
    assert tx is not None and tx.realized_pnl == -225.0
    assert ledger.cash == 100_745.0
    assert ledger.position("AAA") == Position("AAA", -10.0, 90.0, -150.0)
    assert ledger.unrealized_pnl({"AAA": 85.0}) == 50.0
    assert len(ledger.trades) == 1

    ledger.apply_fill(fill(Side.BUY, 10, 80.0, 4, 1.0))
    assert ledger.cash == 99_944.0
    assert ledger.position("AAA") == Position("AAA", 0.0, 0.0, -50.0)
    assert ledger.positions() == {}
    assert ledger.realized_pnl == -50.0
    assert ledger.commission_paid == 6.0
    assert ledger.equity({}) == 100_000.0 - 50.0 - 6.0


def assert_trade(trade: Trade, **expected: object) -> None:
    """Every field of ``trade`` equals ``expected`` (floats to 1e-12)."""
    assert set(expected) == set(Trade.__dataclass_fields__)
    for name, want in expected.items():
        got = getattr(trade, name)
        if isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-12), name
        else:
            assert got == want, name


def test_round_trip_trades_exact() -> None:
    ledger = round_trip_ledger()
    long, short = ledger.trades
    assert_trade(
        long,
        symbol="AAA",
        direction=1,
        entry_ts=ts(0),
        exit_ts=ts(3),
        entry_price=105.0,
        exit_price=97.5,  # (5 * 120 + 15 * 90) / 20
        quantity=20.0,
        pnl=75.0 - 225.0 - 4.2,
        return_pct=(75.0 - 225.0 - 4.2) / 2100.0,
        commission=4.2,  # 1 + 1 + 1 + the flip's 2.0 split 15:10
    )
    assert_trade(
        short,
        symbol="AAA",
        direction=-1,
        entry_ts=ts(3),
        exit_ts=ts(4),
        entry_price=90.0,
        exit_price=80.0,
        quantity=10.0,
        pnl=100.0 - 1.8,
        return_pct=98.2 / 900.0,
        commission=1.8,
    )
    assert long.duration == timedelta(days=3)
    assert sum(t.pnl for t in ledger.trades) == pytest.approx(-56.0)
    assert ledger.open_trades() == []


def test_transactions_record_every_fill() -> None:
    ledger = round_trip_ledger()
    assert [t.kind for t in ledger.transactions] == ["fill"] * 5
    first = ledger.transactions[0]
    assert first == Transaction(ts(0), "fill", "AAA", 10.0, 100.0, -1001.0, 1.0, "o0", 0.0, "")
    assert [t.quantity for t in ledger.transactions] == [10, 10, -5, -25, 10]
    assert sum(t.amount for t in ledger.transactions) == ledger.cash - 100_000.0
    assert sum(t.realized_pnl for t in ledger.transactions) == ledger.realized_pnl


def test_resizing_inside_a_trade_keeps_one_trade() -> None:
    ledger = Ledger(10_000.0)
    ledger.apply_fill(fill(Side.BUY, 10, 10.0, 0))
    ledger.apply_fill(fill(Side.SELL, 5, 12.0, 1))
    ledger.apply_fill(fill(Side.BUY, 5, 14.0, 2))
    (open_trade,) = ledger.open_trades()
    assert open_trade.is_open and open_trade.exit_ts is None
    assert open_trade.exit_price == 12.0
    assert open_trade.pnl == 10.0
    assert open_trade.entry_price == pytest.approx((100.0 + 70.0) / 15.0)
    ledger.apply_fill(fill(Side.SELL, 10, 13.0, 3))
    (trade,) = ledger.trades
    assert trade.entry_ts == ts(0) and trade.exit_ts == ts(3)
    assert trade.quantity == 10.0  # the largest position held, not the sum of entries
    assert trade.exit_price == pytest.approx((60.0 + 130.0) / 15.0)
    # 5 * (12 - 10) + 10 * (13 - 12): avg cost after the add is (5*10 + 5*14) / 10 = 12.
    assert trade.pnl == pytest.approx(20.0)
    assert trade.return_pct == pytest.approx(20.0 / 170.0)


def test_short_from_flat() -> None:
    ledger = Ledger(1000.0)
    ledger.apply_fill(fill(Side.SELL, 4, 50.0, 0, 0.5))
    assert ledger.cash == 1000.0 + 200.0 - 0.5
    assert ledger.position("AAA") == Position("AAA", -4.0, 50.0, 0.0)
    assert ledger.unrealized_pnl({"AAA": 60.0}) == -40.0
    assert ledger.equity({"AAA": 60.0}) == 1199.5 - 240.0
    ledger.apply_fill(fill(Side.SELL, 4, 40.0, 1))
    assert ledger.position("AAA").avg_cost == 45.0
    ledger.apply_fill(fill(Side.BUY, 8, 30.0, 2, 0.5))
    (trade,) = ledger.trades
    assert trade.direction == -1
    assert trade.pnl == pytest.approx(8 * 15.0 - 1.0)
    assert ledger.cash == pytest.approx(1000.0 + 120.0 - 1.0)


def test_open_trades_marked_to_market() -> None:
    ledger = Ledger(1000.0)
    ledger.apply_fill(fill(Side.BUY, 2, 100.0, 0, 1.0))
    (trade,) = ledger.open_trades({"AAA": 110.0})
    assert trade.pnl == 19.0
    assert trade.exit_price is None
    (trade,) = ledger.open_trades()
    assert trade.pnl == -1.0


def test_multiple_symbols_are_independent() -> None:
    ledger = Ledger(10_000.0)
    ledger.apply_fill(fill(Side.BUY, 10, 100.0, 0, symbol="AAA"))
    ledger.apply_fill(fill(Side.SELL, 5, 20.0, 0, symbol="BBB"))
    assert set(ledger.positions()) == {"AAA", "BBB"}
    assert ledger.equity({"AAA": 101.0, "BBB": 21.0}) == 10_000.0 + 10.0 - 5.0
    with pytest.raises(KeyError, match="BBB"):
        ledger.equity({"AAA": 101.0})


def test_dust_left_by_float_sums_closes_the_position() -> None:
    ledger = Ledger(1000.0)
    ledger.apply_fill(fill(Side.BUY, 0.1, 10.0, 0))
    ledger.apply_fill(fill(Side.BUY, 0.2, 10.0, 1))
    assert ledger.position("AAA").quantity != 0.3  # 0.30000000000000004
    ledger.apply_fill(fill(Side.SELL, 0.3, 20.0, 2))
    assert ledger.position("AAA").quantity == 0.0
    assert ledger.positions() == {} and ledger.open_trades() == []
    assert len(ledger.trades) == 1
    # The identity stays exact: the dust's proceeds are booked as realized PnL.
    assert ledger.cash == pytest.approx(1000.0 + ledger.realized_pnl, rel=0, abs=1e-12)


def test_duplicate_fill_id_is_ignored() -> None:
    ledger = Ledger(1000.0)
    assert ledger.apply_fill(fill(Side.BUY, 1, 10.0, 0, fill_id="f1")) is not None
    assert ledger.apply_fill(fill(Side.BUY, 1, 10.0, 0, fill_id="f1")) is None
    assert ledger.position("AAA").quantity == 1.0
    # Without a fill id every fill is booked.
    ledger.apply_fill(fill(Side.BUY, 1, 10.0, 1))
    ledger.apply_fill(fill(Side.BUY, 1, 10.0, 1))
    assert ledger.position("AAA").quantity == 3.0


def test_split_mid_position() -> None:
    ledger = Ledger(10_000.0)
    ledger.apply_fill(fill(Side.BUY, 10, 100.0, 0, 1.0))
    tx = ledger.apply_split("AAA", 2.0, ts(1))
    assert tx == Transaction(ts(1), "split", "AAA", 2.0, 0.0, 0.0)
    assert ledger.position("AAA") == Position("AAA", 20.0, 50.0, 0.0)
    assert ledger.cash == 8999.0
    assert ledger.equity({"AAA": 50.0}) == 9999.0
    ledger.apply_fill(fill(Side.SELL, 20, 60.0, 2, 1.0))
    assert ledger.realized_pnl == 200.0
    (trade,) = ledger.trades
    assert (trade.entry_price, trade.exit_price, trade.quantity) == (50.0, 60.0, 20.0)
    assert trade.pnl == 198.0
    assert trade.return_pct == 198.0 / 1000.0


def test_reverse_split_of_a_short() -> None:
    ledger = Ledger(10_000.0)
    ledger.apply_fill(fill(Side.SELL, 30, 2.0, 0))
    ledger.apply_split("AAA", 0.1, ts(1))
    pos = ledger.position("AAA")
    assert pos.quantity == pytest.approx(-3.0) and pos.avg_cost == pytest.approx(20.0)
    with pytest.raises(ValueError, match="ratio"):
        ledger.apply_split("AAA", 0.0, ts(2))


def test_dividend_long_and_short() -> None:
    ledger = Ledger(10_000.0)
    ledger.apply_fill(fill(Side.BUY, 10, 100.0, 0, symbol="LNG"))
    ledger.apply_fill(fill(Side.SELL, 20, 50.0, 0, symbol="SHT"))
    long_tx = ledger.apply_dividend("LNG", 0.5, ts(1))
    short_tx = ledger.apply_dividend("SHT", 0.25, ts(1))
    assert long_tx == Transaction(ts(1), "dividend", "LNG", 10.0, 0.5, 5.0)
    assert short_tx.amount == -5.0
    assert ledger.cash == 10_000.0 - 1000.0 + 1000.0
    assert ledger.dividends == 0.0
    assert ledger.apply_dividend("NONE", 1.0, ts(1)).amount == 0.0
    ledger.apply_fill(fill(Side.SELL, 10, 100.0, 2, symbol="LNG"))
    ledger.apply_fill(fill(Side.BUY, 20, 50.0, 2, symbol="SHT"))
    pnl = {t.symbol: t.pnl for t in ledger.trades}
    assert pnl == {"LNG": 5.0, "SHT": -5.0}
    assert ledger.realized_pnl == 0.0  # dividends are tracked apart from trading PnL


def test_deposit_and_withdrawal() -> None:
    ledger = Ledger(100.0)
    ledger.deposit(50.0, ts(0))
    ledger.deposit(-30.0, ts(1))
    assert ledger.cash == 120.0 and ledger.deposits == 20.0
    assert [t.kind for t in ledger.transactions] == ["deposit", "deposit"]
    with pytest.raises(ValueError, match="UTC"):
        ledger.deposit(1.0, datetime(2024, 1, 1))  # noqa: DTZ001


def test_snapshot_round_trip() -> None:
    ledger = round_trip_ledger()
    ledger.apply_fill(fill(Side.BUY, 3, 70.0, 5, 0.5, fill_id="x1"))
    ledger.apply_fill(fill(Side.SELL, 1, 75.0, 6, 0.5, symbol="BBB"))
    ledger.apply_split("AAA", 3.0, ts(7))
    ledger.apply_dividend("AAA", 0.1, ts(8))
    ledger.deposit(500.0, ts(9))

    snap = ledger.snapshot()
    restored = Ledger.from_snapshot(json.loads(json.dumps(snap)))
    assert restored.snapshot() == snap
    assert restored.transactions == ledger.transactions
    assert restored.trades == ledger.trades
    assert restored.open_trades() == ledger.open_trades()
    assert restored.positions() == ledger.positions()
    assert restored.cash == ledger.cash and restored.realized_pnl == ledger.realized_pnl

    # Both continue identically; the seen fill id survives the round trip.
    for book in (ledger, restored):
        assert book.apply_fill(fill(Side.BUY, 3, 70.0, 5, 0.5, fill_id="x1")) is None
        book.apply_fill(fill(Side.SELL, 9, 25.0, 10, 0.5))
    assert restored.snapshot() == ledger.snapshot()
    assert len(restored.trades) == 3


def test_snapshot_rejects_unknown_version() -> None:
    snap = Ledger(1.0).snapshot()
    snap["version"] = 99
    with pytest.raises(ValueError, match="version"):
        Ledger.from_snapshot(snap)


def test_frames() -> None:
    ledger = round_trip_ledger()
    tx = ledger.transactions_frame()
    assert len(tx) == 5
    assert list(tx.columns[:3]) == ["ts", "kind", "symbol"]
    assert str(tx["ts"].dt.tz) == "UTC"
    trades = ledger.trades_frame()
    assert list(trades["direction"]) == [1, -1]
    assert list(trades["duration"]) == [timedelta(days=3), timedelta(days=1)]
    empty = Ledger(1.0)
    assert empty.transactions_frame().empty and empty.trades_frame().empty
    assert "pnl" in empty.trades_frame().columns
