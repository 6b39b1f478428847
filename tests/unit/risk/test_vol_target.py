"""Volatility targeting: hand-computed estimates and sizes, bounds as properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raytrader.risk.vol_target import (
    ewma_volatility,
    rolling_volatility,
    vol_target_scale,
    vol_target_units,
)


def test_rolling_is_the_root_mean_square_of_the_window() -> None:
    returns = [0.05, 0.01, -0.01, 0.02, -0.02]
    # Last 4: (1 + 1 + 4 + 4) e-4 / 4 = 2.5e-4.
    assert rolling_volatility(returns, window=4, periods_per_year=1) == pytest.approx(
        math.sqrt(2.5e-4)
    )
    assert rolling_volatility(returns, window=4) == pytest.approx(math.sqrt(2.5e-4 * 252))


def test_rolling_demeaned_is_the_sample_std() -> None:
    # Mean 0.02, deviations +-0.01, ddof 1: 2e-4.
    assert rolling_volatility([0.01, 0.03], window=2, periods_per_year=1, demean=True) == (
        pytest.approx(math.sqrt(2e-4))
    )


def test_ewma_weights_halve_every_halflife() -> None:
    # Newest (0.01) weighs 1, the older (0.02) 1/2: normalised 2/3 and 1/3.
    # (2/3) 1e-4 + (1/3) 4e-4 = 2e-4.
    assert ewma_volatility([0.02, 0.01], halflife=1, periods_per_year=1) == pytest.approx(
        math.sqrt(2e-4)
    )


def test_ewma_demeaned_by_hand() -> None:
    # Weighted mean (1/3) 0.02 + (2/3) 0.01 = 1/75; deviations 1/150, -1/300;
    # variance (1/3)(1/22500) + (2/3)(1/90000) = 1/45000.
    vol = ewma_volatility([0.02, 0.01], halflife=1, periods_per_year=1, demean=True)
    assert vol == pytest.approx(math.sqrt(1 / 45000))


def test_constant_magnitude_returns_give_that_magnitude() -> None:
    returns = 0.01 * np.resize([1.0, -1.0], 101)
    assert ewma_volatility(returns, halflife=10) == pytest.approx(0.01 * math.sqrt(252))
    assert rolling_volatility(returns, window=50) == pytest.approx(0.01 * math.sqrt(252))


@pytest.mark.parametrize(
    ("realized", "target", "cap", "expected"),
    [
        (0.20, 0.10, 1.0, 0.5),
        (0.05, 0.10, 1.5, 1.5),  # 2x wanted, capped
        (0.05, 0.10, 3.0, 2.0),
        (0.0, 0.10, 2.0, 0.0),  # no estimate: no position
        (math.nan, 0.10, 2.0, 0.0),
        (math.inf, 0.10, 2.0, 0.0),
    ],
)
def test_scale_by_hand(realized: float, target: float, cap: float, expected: float) -> None:
    assert vol_target_scale(realized, target, cap) == pytest.approx(expected)


def test_units_by_hand() -> None:
    # Scale 0.10 / 0.25 = 0.4: 40,000 of notional at 50 a unit.
    assert vol_target_units(100_000, 50.0, 0.25, 0.10) == pytest.approx(800.0)
    assert vol_target_units(100_000, 50.0, 0.25, 0.10, point_value=2.0) == pytest.approx(400.0)
    # Capped at 2x equity.
    assert vol_target_units(100_000, 50.0, 0.01, 0.10, max_leverage=2.0) == pytest.approx(4000.0)
    assert vol_target_units(100_000, 0.0, 0.25, 0.10) == 0.0


def test_a_target_from_estimated_vol() -> None:
    returns = 0.01 * np.resize([1.0, -1.0], 60)  # 15.87% a year
    scale = vol_target_scale(rolling_volatility(returns, window=20), target_vol=0.10)
    assert scale == pytest.approx(0.10 / (0.01 * math.sqrt(252)))


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: vol_target_scale(0.2, 0.0), "target_vol"),
        (lambda: vol_target_scale(0.2, math.nan), "target_vol"),
        (lambda: vol_target_scale(0.2, 0.1, max_leverage=0.0), "max_leverage"),
        (lambda: vol_target_units(1e5, 50.0, 0.2, 0.1, point_value=0.0), "point_value"),
        (lambda: ewma_volatility([], halflife=5), "returns"),
        (lambda: ewma_volatility([0.01, math.nan]), "returns"),
        (lambda: ewma_volatility([[0.01, 0.02]]), "returns"),
        (lambda: ewma_volatility([0.01], halflife=0), "halflife"),
        (lambda: ewma_volatility([0.01], periods_per_year=0), "periods_per_year"),
        (lambda: rolling_volatility([0.01] * 5, window=10), "window=10"),
        (lambda: rolling_volatility([0.01] * 5, window=0), "window"),
        (lambda: rolling_volatility([0.01] * 5, window=1, demean=True), "demean"),
    ],
)
def test_bad_inputs_are_named(call: object, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        call()  # type: ignore[operator]


vols = st.floats(min_value=1e-4, max_value=5.0)


@given(realized=vols, target=vols, cap=st.floats(min_value=0.1, max_value=10.0))
def test_scale_hits_the_target_unless_capped(realized: float, target: float, cap: float) -> None:
    scale = vol_target_scale(realized, target, cap)
    assert 0 < scale <= cap
    assert scale * realized <= target * (1 + 1e-12)
    if target / realized <= cap:
        assert scale * realized == pytest.approx(target)


@settings(max_examples=50)
@given(
    returns=st.lists(st.floats(min_value=-0.2, max_value=0.2), min_size=20, max_size=80),
    k=st.floats(min_value=0.1, max_value=10.0),
    halflife=st.floats(min_value=0.5, max_value=50.0),
)
def test_estimates_scale_with_the_returns(returns: list[float], k: float, halflife: float) -> None:
    r = np.asarray(returns)
    for estimate in (
        lambda x: ewma_volatility(x, halflife=halflife),
        lambda x: rolling_volatility(x, window=20),
    ):
        assert estimate(k * r) == pytest.approx(k * estimate(r), rel=1e-9, abs=1e-12)
        assert estimate(r) <= np.max(np.abs(r)) * math.sqrt(252) * (1 + 1e-12)
