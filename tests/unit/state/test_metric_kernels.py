"""The compiled metric passes against the numpy expressions of their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from raytrader.state.metric_kernels import (
    curve_stats,
    exposure_stats,
    position_exposure_stats,
)


def _numpy_stats(values: np.ndarray, ticks: np.ndarray, rf: float) -> tuple[float, ...]:
    prev = values[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = np.where(prev > 0, values[1:] / prev - 1.0, 0.0)
    x = rets - rf
    dd = values / np.maximum.accumulate(values) - 1.0
    under = np.concatenate(([False], dd < 0.0, [False]))
    edges = np.flatnonzero(under[1:] != under[:-1])
    starts, ends = edges[0::2], edges[1::2]
    bars = int((ends - starts).max()) if len(starts) else 0
    span = 0
    if len(starts):
        recovery = np.minimum(ends, len(values) - 1)
        span = int((ticks[recovery] - ticks[starts - 1]).max())
    return (
        float(np.mean(x)),
        float(np.std(rets, ddof=1)),
        float(np.std(x, ddof=1)),
        float(np.sqrt(np.mean(np.minimum(x, 0.0) ** 2))),
        float(x.max()),
        float(x.min()),
        float(dd.min()),
        bars,
        span,
        float(values.mean()),
    )


def _curves() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    walk = 1e6 * np.cumprod(1.0 + rng.normal(0.0, 5e-3, 200_000))
    trend = 100.0 * np.cumprod(1.0 + rng.normal(2e-3, 1e-4, 500))
    ruined = np.concatenate(([100.0, 120.0, 90.0], [-10.0, 0.0, 5.0, 130.0, 80.0]))
    steps = np.repeat([10.0, 12.0, 11.0, 12.0, 9.0, 13.0], 3)
    return [walk, trend, ruined, steps, np.array([5.0, 4.0, 6.0])]


@pytest.mark.parametrize("rf", [0.0, 1e-4])
@pytest.mark.parametrize("k", range(5))
def test_curve_stats_are_the_numpy_definitions(k: int, rf: float) -> None:
    values = _curves()[k]
    ticks = np.cumsum(np.random.default_rng(k).integers(1, 100, len(values))).astype(np.int64)
    got = curve_stats(values, ticks, rf)
    want = _numpy_stats(values, ticks, rf)
    assert got[7:9] == want[7:9]  # drawdown bars and span: exact
    np.testing.assert_allclose(got[:7] + got[9:], want[:7] + want[9:], rtol=1e-9, atol=1e-15)


def test_curve_stats_of_one_or_two_points() -> None:
    one = curve_stats(np.array([3.0]), np.array([0], np.int64), 0.0)
    assert one == (0.0,) * 6 + (0.0, 0, 0, 3.0)
    two = curve_stats(np.array([4.0, 3.0]), np.array([0, 9], np.int64), 0.0)
    assert two[:6] == (0.0,) * 6  # one return: no spread
    assert two[6:] == (-0.25, 1, 9, 3.5)


def test_exposure_stats_read_nan_as_zero_and_inf_as_the_largest_float() -> None:
    big = np.finfo(np.float64).max
    time, mean = exposure_stats(np.array([0.5, np.nan, -0.25, -np.inf, 0.0, 0.0]))
    assert time == 3 / 6
    assert mean == (0.5 + 0.25 + big) / 6


def test_position_exposure_stats_are_those_of_the_exposure_array() -> None:
    rng = np.random.default_rng(3)
    position = rng.choice([0.0, 3.0, -2.0], 1_000)
    close = rng.uniform(10.0, 20.0, 1_000)
    equity = rng.uniform(50.0, 150.0, 1_000)
    equity[[5, 6]] = 0.0
    position[5] = 0.0  # 0 / 0: counts as 0
    position[6] = 1.0  # x / 0: the largest float
    with np.errstate(divide="ignore", invalid="ignore"):
        exposure = np.abs(position * close) / equity
    exposure[np.isnan(exposure)] = 0.0
    assert position_exposure_stats(position, close, equity) == exposure_stats(exposure)
