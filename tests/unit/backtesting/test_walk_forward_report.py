"""Walk-forward summaries against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from raytrader.backtesting.walk_forward_report import (
    ParameterStability,
    degradation,
    parameter_stability,
    stitch_equity,
    walk_forward_efficiency,
)

DAYS = pd.date_range("2024-01-01", periods=7, freq="D", tz="UTC")


def test_stitch_chains_segments_where_the_previous_one_ended() -> None:
    first = pd.Series([100.0, 110.0, 121.0], index=DAYS[:3])
    second = pd.Series([50.0, 45.0], index=DAYS[3:5])
    third = pd.Series([7.0, 14.0], index=DAYS[5:7])
    out = stitch_equity([first, second, third], initial_cash=1000.0)
    # 1000 * 1.1 * 1.1 = 1210; then -10 % -> 1089; then +100 % -> 2178.
    np.testing.assert_allclose(out.to_numpy(), [1000, 1100, 1210, 1210, 1089, 1089, 2178])
    assert out.index.equals(first.index.append(second.index).append(third.index))
    assert out.name == "equity"
    # Within each segment the returns are the segment's own.
    np.testing.assert_allclose(out.iloc[3:5].pct_change().iloc[1], -0.1)


def test_stitch_one_segment_rescales_it_to_the_initial_cash() -> None:
    out = stitch_equity([pd.Series([200.0, 300.0, 150.0], index=DAYS[:3])], 10.0)
    np.testing.assert_allclose(out.to_numpy(), [10.0, 15.0, 7.5])


def test_stitch_works_on_a_bar_number_index() -> None:
    out = stitch_equity(
        [pd.Series([1.0, 2.0], index=[0, 1]), pd.Series([3.0, 6.0], index=[2, 3])], 5
    )
    np.testing.assert_allclose(out.to_numpy(), [5.0, 10.0, 10.0, 20.0])


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        ([], "no equity segments"),
        ([pd.Series([1.0, 2.0], index=DAYS[2:4]), pd.Series([1.0], index=DAYS[:1])], "increasing"),
        ([pd.Series([1.0, 2.0], index=DAYS[:2]), pd.Series([1.0], index=DAYS[1:2])], "increasing"),
        ([pd.Series([2.0, 1.0], index=DAYS[1::-1])], "increasing"),
        ([pd.Series([], dtype=float)], "segment 0 is empty"),
        ([pd.Series([1.0]), pd.Series([0.0, 1.0], index=[1, 2])], "segment 1 starts at 0.0"),
        ([pd.Series([1.0, math.nan])], "segment 0 has non-finite"),
    ],
)
def test_stitch_rejects_bad_segments(segments: list[pd.Series], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stitch_equity(segments, 100.0)


def test_stitch_rejects_bad_initial_cash() -> None:
    with pytest.raises(ValueError, match="initial_cash"):
        stitch_equity([pd.Series([1.0])], 0.0)


def test_degradation_per_window_and_mean() -> None:
    result = degradation([2.0, 1.0, -0.5], [1.0, 0.8, 0.2])
    assert result.ratios[:2] == pytest.approx((0.5, 0.8))
    assert math.isnan(result.ratios[2])  # a losing in-sample window has no ratio
    assert result.mean_ratio == pytest.approx(0.65)
    assert result.differences == pytest.approx((-1.0, -0.2, 0.7))
    assert result.mean_difference == pytest.approx(-0.5 / 3)


def test_walk_forward_efficiency_is_the_mean_return_ratio() -> None:
    # IS 20 % and 10 % a year, OOS 12 % and 2 %: efficiencies 0.6 and 0.2.
    assert walk_forward_efficiency([0.20, 0.10], [0.12, 0.02]) == pytest.approx(0.4)
    assert math.isnan(walk_forward_efficiency([0.0, -0.1], [0.05, 0.02]))


@pytest.mark.parametrize(
    ("is_values", "oos_values", "message"),
    [
        ([1.0, 2.0], [1.0], "2 windows but oos_values has 1"),
        ([], [], "no windows"),
        ([1.0, math.nan], [1.0, 1.0], r"is_values\[1\] is nan"),
        ([1.0, 1.0], [math.inf, 1.0], r"oos_values\[0\] is inf"),
    ],
)
def test_degradation_rejects_bad_input(
    is_values: list[float], oos_values: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        degradation(is_values, oos_values)


def test_parameter_stability_hand_computed() -> None:
    chosen = [
        {"fast": 10, "slow": 50, "kind": "ema", "flag": True},
        {"fast": 20, "slow": 50, "kind": "sma", "flag": False},
        {"fast": 10, "slow": 50.0, "kind": "ema", "flag": True},
        {"fast": 20, "slow": 50, "kind": "ema", "flag": True},
    ]
    out = parameter_stability(chosen)
    assert list(out) == ["fast", "slow", "kind", "flag"]
    # fast: mean 15, population std 5, cv 1/3; 10 and 20 tie, the earliest wins.
    fast = out["fast"]
    assert (fast.mean, fast.std, fast.modal_value, fast.modal_share) == (15.0, 5.0, 10, 0.5)
    assert fast.cv == pytest.approx(1 / 3)
    assert out["slow"] == ParameterStability(50.0, 0.0, 0.0, 50, 1.0)
    assert out["kind"] == ParameterStability(None, None, None, "ema", 0.75)
    # Flags are not magnitudes: no mean or spread.
    assert out["flag"] == ParameterStability(None, None, None, True, 0.75)


def test_parameter_stability_edge_cases() -> None:
    out = parameter_stability(
        [
            {"shift": -1.0, "lags": [1, 2]},
            {"shift": 1.0, "lags": [1, 2]},
            {"shift": np.float64(0.0), "lags": [3]},
        ]
    )
    assert out["shift"].mean == 0.0
    assert out["shift"].std == pytest.approx(math.sqrt(2 / 3))
    assert out["shift"].cv is not None and math.isnan(out["shift"].cv)  # mean 0
    assert out["lags"].modal_value == [1, 2]  # unhashable values are grouped too
    assert out["lags"].modal_share == pytest.approx(2 / 3)


def test_parameter_stability_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no windows"):
        parameter_stability([])
    with pytest.raises(ValueError, match=r"window 1 chose .*missing \['b'\], extra \['c'\]"):
        parameter_stability([{"a": 1, "b": 2}, {"a": 1, "c": 2}])
