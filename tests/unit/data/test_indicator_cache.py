"""The indicator cache: only read-only inputs, same values, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from raytrader.data.indicator_cache import IndicatorCache, indicator_cache
from raytrader.data.indicators import bollinger, rsi, sma


def _read_only(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


@pytest.fixture
def close() -> np.ndarray:
    return 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, 5000)))


def test_read_only_inputs_are_computed_once_with_the_same_values(close: np.ndarray) -> None:
    x = _read_only(close)
    with indicator_cache() as cache:
        a = sma(x, 20)
        b = sma(x, 20)
        c = sma(x, 30)
        upper, _, _ = bollinger(x, 20, 2.0)
        again = bollinger(x, 20, 2.0)
    assert a is b
    assert cache.misses == 3 and cache.hits == 2
    np.testing.assert_array_equal(a, sma(close, 20))
    np.testing.assert_array_equal(c, sma(close, 30))
    assert again[0] is upper
    assert not a.flags.writeable  # a caller cannot poison what others share


def test_writeable_inputs_are_never_cached(close: np.ndarray) -> None:
    x = close.copy()
    with indicator_cache() as cache:
        first = rsi(x, 14)
        x[:] = x[::-1]  # same address, other contents
        second = rsi(x, 14)
    assert cache.hits == cache.misses == 0
    np.testing.assert_array_equal(second, rsi(close[::-1].copy(), 14))
    assert not np.array_equal(first, second, equal_nan=True)


def test_outside_the_context_nothing_is_cached(close: np.ndarray) -> None:
    x = _read_only(close)
    assert sma(x, 10) is not sma(x, 10)


def test_memory_is_bounded(close: np.ndarray) -> None:
    x = _read_only(close)
    cache = IndicatorCache(max_bytes=3 * close.nbytes)
    with indicator_cache(cache):
        for n in range(2, 12):
            sma(x, n)
        assert cache.nbytes <= 3 * close.nbytes
        sma(x, 11)  # the most recent survive
        sma(x, 2)  # the oldest were dropped
    assert cache.hits == 1 and cache.misses == 11
