"""Fractional Kelly: hand-computed bets, estimates from trades, and the errors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raytrader.risk.kelly import kelly_fraction, kelly_from_returns, win_rate_and_payoff


@pytest.mark.parametrize(
    ("p", "b", "fraction", "cap", "expected"),
    [
        (0.6, 1.0, 1.0, 1.0, 0.2),  # 0.6 - 0.4 / 1
        (0.6, 1.0, 0.5, 1.0, 0.1),  # half Kelly
        (0.5, 2.0, 0.5, 1.0, 0.125),  # 0.5 - 0.5 / 2 = 0.25, halved
        (0.55, 3.0, 1.0, 0.25, 0.25),  # 0.55 - 0.45 / 3 = 0.40, capped
        (0.4, 1.0, 0.5, 1.0, 0.0),  # negative edge: -0.2
        (0.5, 1.0, 0.5, 1.0, 0.0),  # no edge
        (1.0, math.inf, 0.5, 1.0, 0.5),  # no losses: f* = p = 1
        (0.0, 5.0, 0.5, 1.0, 0.0),
    ],
)
def test_kelly_fraction_by_hand(
    p: float, b: float, fraction: float, cap: float, expected: float
) -> None:
    assert kelly_fraction(p, b, fraction=fraction, max_fraction=cap) == pytest.approx(expected)


def test_default_is_half_kelly() -> None:
    assert kelly_fraction(0.6, 1.0) == pytest.approx(0.1)


def test_estimates_from_trades_by_hand() -> None:
    trades = [0.10, 0.05, -0.05, 0.15, -0.10]
    p, b = win_rate_and_payoff(trades)
    # 3 wins of mean 0.10, 2 losses of mean 0.075.
    assert p == pytest.approx(0.6)
    assert b == pytest.approx(4 / 3)
    # f* = 0.6 - 0.4 * 3/4 = 0.3; half of it.
    assert kelly_from_returns(trades) == pytest.approx(0.15)
    assert kelly_from_returns(trades, fraction=1.0, max_fraction=0.2) == pytest.approx(0.2)


def test_breakeven_trades_count_as_not_won() -> None:
    # p = 1/3, b = 0.02 / 0.01 = 2: f* = 1/3 - (2/3) / 2 = 0.
    assert win_rate_and_payoff([0.02, 0.0, -0.01]) == pytest.approx((1 / 3, 2.0))
    assert kelly_from_returns([0.02, 0.0, -0.01], fraction=1.0) == pytest.approx(0.0, abs=1e-15)


def test_all_wins_and_no_wins() -> None:
    assert win_rate_and_payoff([0.01, 0.02]) == (1.0, math.inf)
    assert kelly_from_returns([0.01, 0.02]) == pytest.approx(0.5)
    assert win_rate_and_payoff([-0.01, 0.0]) == (0.0, 0.0)
    assert kelly_from_returns([-0.01, 0.0]) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"win_rate": 1.2, "payoff_ratio": 1.0}, "win_rate"),
        ({"win_rate": -0.1, "payoff_ratio": 1.0}, "win_rate"),
        ({"win_rate": math.nan, "payoff_ratio": 1.0}, "win_rate"),
        ({"win_rate": 0.5, "payoff_ratio": 0.0}, "payoff_ratio"),
        ({"win_rate": 0.5, "payoff_ratio": -1.0}, "payoff_ratio"),
        ({"win_rate": 0.5, "payoff_ratio": math.nan}, "payoff_ratio"),
        ({"win_rate": 0.5, "payoff_ratio": 1.0, "fraction": 0.0}, "fraction"),
        ({"win_rate": 0.5, "payoff_ratio": 1.0, "fraction": 1.5}, "fraction"),
        ({"win_rate": 0.5, "payoff_ratio": 1.0, "max_fraction": 0.0}, "max_fraction"),
        ({"win_rate": 0.5, "payoff_ratio": 1.0, "max_fraction": math.inf}, "max_fraction"),
    ],
)
def test_bad_inputs_are_named(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        kelly_fraction(**kwargs)


@pytest.mark.parametrize("trades", [[], [0.1, math.nan], [[0.1, -0.1]]])
def test_bad_trade_returns_are_named(trades: list[object]) -> None:
    with pytest.raises(ValueError, match="trade_returns"):
        kelly_from_returns(trades)  # type: ignore[arg-type]


def test_bad_fraction_is_refused_before_estimating() -> None:
    with pytest.raises(ValueError, match="fraction"):
        kelly_from_returns([0.1, -0.05], fraction=2.0)


unit = st.floats(min_value=0.0, max_value=1.0)
payoffs = st.floats(min_value=1e-3, max_value=1e3)


@settings(max_examples=50)
@given(p=unit, b=payoffs, fraction=st.floats(min_value=0.01, max_value=1.0), cap=unit)
def test_stays_within_zero_and_the_cap(p: float, b: float, fraction: float, cap: float) -> None:
    cap = max(cap, 1e-3)
    f = kelly_fraction(p, b, fraction=fraction, max_fraction=cap)
    assert 0.0 <= f <= cap
    assert f <= fraction * p + 1e-12  # never above the bet with no losses


@settings(max_examples=50)
@given(p1=unit, p2=unit, b1=payoffs, b2=payoffs)
def test_more_edge_never_means_a_smaller_bet(p1: float, p2: float, b1: float, b2: float) -> None:
    lo_p, hi_p = sorted((p1, p2))
    lo_b, hi_b = sorted((b1, b2))
    assert kelly_fraction(lo_p, lo_b) <= kelly_fraction(hi_p, hi_b) + 1e-12
