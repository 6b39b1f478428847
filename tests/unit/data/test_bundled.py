"""The demo data shipped inside the package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import raytrader.data as data
from raytrader.data import MarketData, bundled_path, load_bundled_single, load_bundled_universe
from raytrader.data.bundled import BUNDLED_FILES, make_bundled
from raytrader.data.resample import infer_timeframe

PACKAGE_DIR = Path(data.__file__).parent / "bundled"


def test_files_live_inside_the_package_and_are_small() -> None:
    for name in BUNDLED_FILES:
        path = bundled_path(name)
        assert path.parent == PACKAGE_DIR
        assert path.stat().st_size < 3_000_000
    assert bundled_path("btc_1h") == bundled_path("btc_1h.parquet")
    with pytest.raises(KeyError, match="no bundled data set"):
        bundled_path("nope")


def test_bundled_universe() -> None:
    frames = load_bundled_universe()
    assert len(frames) == 31
    assert "INDEX" in frames
    assert [s for s in frames if s != "INDEX"] == [f"S{i:02d}" for i in range(30)]
    md = MarketData.from_frames(frames)
    assert 2000 <= md.n_bars <= 2200  # ~8 years of business days
    assert (md.index.dayofweek < 5).all()
    assert infer_timeframe(md.index) == pd.Timedelta(days=1)
    assert not np.isnan(md.close).any()
    years = (md.index[-1] - md.index[0]).days / 365.25
    assert 7.5 < years < 8.5


def test_bundled_single() -> None:
    frame = load_bundled_single()
    assert 19_000 <= len(frame) <= 21_000
    assert infer_timeframe(pd.DatetimeIndex(frame.index)) == pd.Timedelta(hours=1)
    assert (np.diff(frame.index.asi8) == 3600 * 10**9).all()  # crypto trades around the clock
    assert frame["close"].min() > 5_000 and frame["close"].max() < 200_000  # BTC-like levels
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]


def test_regenerating_gives_the_committed_data(tmp_path: Path) -> None:
    written = make_bundled.make_all(tmp_path)
    assert sorted(p.name for p in written.values()) == sorted(BUNDLED_FILES)
    fresh = data.load_long(written["universe_daily"])
    shipped = load_bundled_universe()
    assert list(fresh) == list(shipped)
    for symbol in shipped:
        pd.testing.assert_frame_equal(fresh[symbol], shipped[symbol], check_exact=True)
    pd.testing.assert_frame_equal(
        data.load_ohlcv(written["btc_1h"]), load_bundled_single(), check_exact=True
    )
