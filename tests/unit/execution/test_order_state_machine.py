"""The domain order state machine, as the paper broker relies on it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from raytrader.domain import IllegalTransition, Order, OrderState, OrderStatus, Side

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def _new(quantity: float = 10.0) -> OrderState:
    return OrderState(Order("o1", "AAA", Side.BUY, quantity, T0))


@pytest.mark.parametrize(
    ("path", "final"),
    [
        ([OrderStatus.ACCEPTED], OrderStatus.ACCEPTED),
        ([OrderStatus.REJECTED], OrderStatus.REJECTED),
        ([OrderStatus.CANCELLED], OrderStatus.CANCELLED),
        ([OrderStatus.ACCEPTED, OrderStatus.CANCELLED], OrderStatus.CANCELLED),
        ([OrderStatus.ACCEPTED, OrderStatus.EXPIRED], OrderStatus.EXPIRED),
        ([OrderStatus.ACCEPTED, OrderStatus.REJECTED], OrderStatus.REJECTED),
    ],
)
def test_legal_transitions(path: list[OrderStatus], final: OrderStatus) -> None:
    state = _new()
    for status in path:
        state = state.to(status, T0, "why")
    assert state.status is final
    assert state.updated == T0
    assert state.reason == "why"


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], OrderStatus.FILLED),
        ([], OrderStatus.PARTIALLY_FILLED),
        ([], OrderStatus.EXPIRED),
        ([OrderStatus.ACCEPTED], OrderStatus.NEW),
        ([OrderStatus.ACCEPTED, OrderStatus.FILLED], OrderStatus.CANCELLED),
        ([OrderStatus.ACCEPTED, OrderStatus.CANCELLED], OrderStatus.ACCEPTED),
        ([OrderStatus.ACCEPTED, OrderStatus.EXPIRED], OrderStatus.CANCELLED),
        ([OrderStatus.REJECTED], OrderStatus.ACCEPTED),
        ([OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED], OrderStatus.REJECTED),
    ],
)
def test_illegal_transitions_raise(path: list[OrderStatus], illegal: OrderStatus) -> None:
    state = _new()
    for status in path:
        state = state.to(status, T0)
    with pytest.raises(IllegalTransition, match=f"to {illegal}"):
        state.to(illegal, T0)


def test_fills_move_through_partial_to_filled_with_average_price() -> None:
    state = _new(10.0).to(OrderStatus.ACCEPTED, T0)
    state = state.with_fill(4.0, 100.0, T0)
    assert (state.status, state.filled_quantity, state.remaining) == (
        OrderStatus.PARTIALLY_FILLED,
        4.0,
        6.0,
    )
    state = state.with_fill(6.0, 105.0, T0)
    assert state.status is OrderStatus.FILLED
    assert state.filled_quantity == 10.0
    assert state.avg_fill_price == pytest.approx((400.0 + 630.0) / 10.0)
    with pytest.raises(IllegalTransition):
        state.to(OrderStatus.CANCELLED, T0)


def test_fill_on_new_order_is_illegal_and_overfill_is_refused() -> None:
    with pytest.raises(IllegalTransition):
        _new().with_fill(1.0, 100.0, T0)
    accepted = _new(10.0).to(OrderStatus.ACCEPTED, T0)
    with pytest.raises(ValueError, match="exceeds remaining"):
        accepted.with_fill(10.5, 100.0, T0)
