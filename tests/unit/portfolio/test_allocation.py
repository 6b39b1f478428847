"""Capital weights, netted account targets and attribution, on hand-computed cases."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from raytrader.portfolio.allocation import (
    UNALLOCATED,
    CapitalWeights,
    attribute_pnl,
    attribute_positions,
    combine_targets,
)

CAPITAL = CapitalWeights(weights={"trend": 0.5, "revert": 0.3})
# trend is long X, revert short X: the account nets them.
TARGETS = {"trend": {"X": 0.4, "Y": 0.2}, "revert": {"X": -0.5, "Y": 0.6}}
PRICES = {"X": 100.0, "Y": 50.0}
EQUITY = 100_000.0


def test_capital_weights_validation_names_the_field_and_agent() -> None:
    assert CAPITAL.reserve == pytest.approx(0.2)
    assert CapitalWeights(weights={"a": 0.25, "b": 0.75}).reserve == 0.0
    cases = [
        ({"a": 0.6, "b": 0.5}, "sum to 1.1"),
        ({"a": -0.1}, "'a'"),
        ({"a": float("nan")}, "'a'"),
        ({"": 0.1}, "agent name"),
    ]
    for weights, match in cases:
        with pytest.raises(ValidationError, match=match) as err:
            CapitalWeights(weights=weights)
        assert err.value.errors()[0]["loc"] == ("weights",)


def test_opposite_targets_of_two_agents_net_in_the_account() -> None:
    combined = combine_targets(CAPITAL, TARGETS)
    assert combined.contributions["X"] == pytest.approx({"trend": 0.2, "revert": -0.15})
    assert combined.account == pytest.approx({"X": 0.05, "Y": 0.28})
    assert combined.gross("X") == pytest.approx(0.35)
    assert combined.netted("X") == pytest.approx(0.30)
    assert combined.netted("Y") == pytest.approx(0.0)
    frame = combined.to_frame()
    assert list(frame.columns) == ["trend", "revert", "net", "gross", "netted"]
    assert frame.loc["X", "net"] == pytest.approx(0.05)


def test_agents_need_capital_and_finite_targets() -> None:
    with pytest.raises(ValueError, match="'other'"):
        combine_targets(CAPITAL, {"other": {"X": 0.1}})
    with pytest.raises(ValueError, match="'X'"):
        combine_targets(CAPITAL, {"trend": {"X": float("inf")}})
    # An agent without targets contributes nothing.
    assert combine_targets(CAPITAL, {"trend": {"X": 1.0}}).account == {"X": 0.5}


def test_attribution_at_target_gives_each_agent_its_own_target() -> None:
    combined = combine_targets(CAPITAL, TARGETS)
    # X: trend 0.2 * 100k / 100 = 200, revert -150, account 50. Y: 200 + 360 = 560.
    got = attribute_positions(combined, {"X": 50.0, "Y": 560.0}, PRICES, EQUITY)
    assert got["trend"] == pytest.approx({"X": 200.0, "Y": 200.0})
    assert got["revert"] == pytest.approx({"X": -150.0, "Y": 360.0})


def test_attribution_splits_the_shortfall_by_gross_share() -> None:
    combined = combine_targets(CAPITAL, TARGETS)
    got = attribute_positions(combined, {"X": 40.0, "Y": 280.0, "Z": 10.0}, PRICES, EQUITY)
    # X holds 10 less than the target 50: trend bears 0.2/0.35 of it, revert 0.15/0.35.
    assert got["trend"]["X"] == pytest.approx(200 - 10 * 0.2 / 0.35)
    assert got["revert"]["X"] == pytest.approx(-150 - 10 * 0.15 / 0.35)
    # Y, one-signed: plain pro rata, half the target held -> half each.
    assert got["trend"]["Y"] == pytest.approx(100.0)
    assert got["revert"]["Y"] == pytest.approx(180.0)
    assert got[UNALLOCATED] == {"Z": 10.0}
    for symbol, held in {"X": 40.0, "Y": 280.0, "Z": 10.0}.items():
        assert sum(a.get(symbol, 0.0) for a in got.values()) == pytest.approx(held)

    pnl = attribute_pnl(got, {**PRICES, "Z": 5.0}, {"X": 101.0, "Y": 49.0, "Z": 6.0})
    assert pnl["trend"] == pytest.approx(194.2857142857 - 100.0)
    assert pnl["revert"] == pytest.approx(-154.2857142857 - 180.0)
    assert pnl[UNALLOCATED] == pytest.approx(10.0)
    assert sum(pnl.values()) == pytest.approx(40 * 1 - 280 * 1 + 10 * 1)


def test_fully_netted_agents_keep_opposite_positions() -> None:
    capital = CapitalWeights(weights={"long": 0.5, "short": 0.2})
    combined = combine_targets(capital, {"long": {"X": 0.4}, "short": {"X": -1.0}})
    assert combined.account == pytest.approx({"X": 0.0})
    assert combined.netted("X") == pytest.approx(0.4)
    got = attribute_positions(combined, {"X": 0.0}, PRICES, EQUITY)
    assert got["long"] == pytest.approx({"X": 200.0})
    assert got["short"] == pytest.approx({"X": -200.0})
    pnl = attribute_pnl(got, PRICES, {"X": 103.0, "Y": 50.0})
    assert pnl == pytest.approx({"long": 600.0, "short": -600.0})
    with pytest.raises(ValueError, match="'X'"):
        attribute_positions(combined, {"X": 1.0}, {}, EQUITY)
