"""Exits follow their position in a session's book: manual orders and resizes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from raytrader.domain import Order, OrderStatus, OrderType, Side
from raytrader.domain.bracket import bracket
from raytrader.execution import PaperBrokerConfig
from raytrader.execution.book import SessionBook
from raytrader.execution.exits import sync_exits

T0 = datetime(2024, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def at(i: int) -> datetime:
    return T0 + i * HOUR


def bar(book: SessionBook, i: int, o: float, h: float, low: float) -> list[str]:
    return [f.client_order_id for f in book.on_bar(at(i), {"X": (o, h, low, o, 1e9)})]


def status(book: SessionBook, cid: str) -> tuple[OrderStatus, float, str]:
    st = book.broker.order(cid)
    return st.status, st.order.quantity, st.reason


def long_with_exits(qty: float = 10.0) -> SessionBook:
    book = SessionBook(100_000.0, PaperBrokerConfig(), ["X"])
    entry = Order("e", "X", Side.BUY, qty, at(0))
    book.submit((), bracket(entry, take_profit=110.0, stop_loss=95.0), at(0))
    assert bar(book, 1, 100, 101, 99) == ["e"]
    assert status(book, "e-sl")[0] is OrderStatus.ACCEPTED
    return book


def test_a_manual_sell_cancels_the_exits_so_the_bar_cannot_flip_the_position() -> None:
    book = long_with_exits()
    sell = Order("m", "X", Side.SELL, 10.0, at(1))
    book.submit(("X",), [sell], at(1))  # superseding leaves exits alone; the sell cancels them
    assert status(book, "e-sl") == (
        OrderStatus.CANCELLED,
        10.0,
        "exits: m reduces the position",
    )
    assert bar(book, 2, 100, 100, 80) == ["m"]  # through the stop: only the sell fills
    assert book.ledger.position("X").quantity == 0.0


def test_a_new_signal_does_not_supersede_exits() -> None:
    book = long_with_exits()
    book.submit(("X",), [], at(1))
    assert status(book, "e-tp")[0] is OrderStatus.ACCEPTED


def test_a_second_entry_merges_into_the_first_exits() -> None:
    book = long_with_exits()
    more = Order("f", "X", Side.BUY, 5.0, at(1))
    book.submit((), bracket(more, stop_loss=90.0), at(1))
    assert bar(book, 2, 100, 101, 99) == ["f"]
    assert status(book, "e-sl") == (OrderStatus.ACCEPTED, 15.0, "exits: position now 15")
    assert status(book, "e-tp")[1] == 15.0
    assert status(book, "f-sl") == (
        OrderStatus.CANCELLED,
        5.0,
        "exits: merged into the exits of e",
    )
    assert bar(book, 3, 96, 96, 94) == ["e-sl"]
    assert book.ledger.position("X").quantity == 0.0


def test_sync_cancels_exits_of_a_flat_or_reversed_position_and_keeps_the_trailing_best() -> None:
    book = SessionBook(100_000.0, PaperBrokerConfig(), ["X"])
    entry = Order("e", "X", Side.BUY, 10.0, at(0))
    book.submit((), bracket(entry, trail_percent=0.1), at(0))
    bar(book, 1, 100, 101, 99)
    bar(book, 2, 101, 120, 100)  # best price 120: stop 108
    sync_exits(book.broker, {"X": 20.0}, ["X"], at(2))
    assert status(book, "e-ts")[1] == 20.0
    assert book.broker.trailing_stop("e-ts") == pytest.approx(108.0)
    sync_exits(book.broker, {"X": -5.0}, ["X"], at(2))
    assert status(book, "e-ts") == (OrderStatus.CANCELLED, 20.0, "exits: position reversed")
    book2 = long_with_exits()
    sync_exits(book2.broker, {}, ["X"], at(1))
    assert status(book2, "e-tp") == (OrderStatus.CANCELLED, 10.0, "exits: position closed")


def test_resize_refuses_held_orders() -> None:
    book = SessionBook(100_000.0, PaperBrokerConfig(), ["X"])
    entry = Order("e", "X", Side.BUY, 10.0, at(0), OrderType.LIMIT, limit_price=50.0)
    book.submit((), bracket(entry, stop_loss=40.0), at(0))
    with pytest.raises(ValueError, match="held"):
        book.broker.resize("e-sl", 20.0, at(0))
