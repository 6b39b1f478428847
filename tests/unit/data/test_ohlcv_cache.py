"""The OHLCV cache's coverage and merge rules, and the gap and duplicate checks, without a
network (the download itself is tested against a Binance-format server in integration)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from raytrader.data.bar_checks import Duplicate, Gap, Timeframe, find_gaps, parse_rows
from raytrader.data.ohlcv_cache import NotCached, OhlcvCache, SeriesKey, merge_intervals, subtract

H = 3_600_000


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_intervals_merge_and_subtract() -> None:
    assert merge_intervals([(5, 7), (0, 2), (2, 3), (6, 9), (4, 4)]) == [(0, 3), (5, 9)]
    assert subtract(0, 10, [(2, 3), (5, 9)]) == [(0, 2), (3, 5), (9, 10)]
    assert subtract(3, 6, [(0, 10)]) == []
    assert subtract(3, 6, []) == [(3, 6)]


def test_parse_rows_keeps_the_first_copy_and_counts_bad_rows() -> None:
    rows = [
        [3 * H, "1", "2", "0.5", "1.5", "10"],
        [1 * H, 1, 2, 0.5, 1.5, 10],
        [3 * H, "9", "9", "9", "9", "9"],  # a conflicting copy
        [1 * H, 1, 2, 0.5, 1.5, 10],  # an equal copy
        [3 * H, 7, 7, 7, 7, 7],  # a third copy
        [2 * H, "nan", 2, 0.5, 1.5, 10],  # not a finite price
        ["x", 1, 2, 0.5, 1.5, 10],  # no integer timestamp
        [4 * H, 1, 2, 0.5, 1.5, None],  # no volume: NaN
    ]
    bars, duplicates, invalid = parse_rows(rows)
    assert [b[0] for b in bars] == [H, 3 * H, 4 * H]
    assert bars[1] == (3 * H, 1.0, 2.0, 0.5, 1.5, 10.0)
    assert math.isnan(bars[2][5])
    assert duplicates == [Duplicate(H, 2, False), Duplicate(3 * H, 3, True)]
    assert invalid == 2


def test_gaps_on_fixed_and_calendar_grids() -> None:
    hourly = Timeframe.parse("1h")
    ts = [2 * H, 3 * H, 6 * H, 7 * H]
    assert find_gaps(ts, 0, 10 * H, hourly) == [
        Gap(0, 2 * H, 2, "start"),
        Gap(4 * H, 6 * H, 2, "inside"),
        Gap(8 * H, 10 * H, 2, "end"),
    ]
    assert find_gaps([], 0, 3 * H, hourly) == [Gap(0, 3 * H, 3, "all")]
    # an end that is not on the grid: the bar opening before it is expected
    assert find_gaps([0, H], 0, 2 * H + 1, hourly) == [Gap(2 * H, 2 * H + 1, 1, "end")]

    monthly = Timeframe.parse("1M")
    jan, feb, mar, apr = (ms(f"2024-{m:02d}-01") for m in (1, 2, 3, 4))
    assert monthly.step(jan) == feb and monthly.step(mar, -1) == feb
    assert find_gaps([jan, apr], jan, ms("2024-05-01"), monthly) == [Gap(feb, apr, 2, "inside")]
    with pytest.raises(ValueError, match="'1minute'"):
        Timeframe.parse("1minute")


def test_cache_merges_months_keeps_cached_bars_and_reads_only_covered_ranges(
    tmp_path: Path,
) -> None:
    cache = OhlcvCache(tmp_path)
    key = SeriesKey("binance", "BTC/USDT:USDT", "1h")
    dec31 = ms("2023-12-31T22:00")
    bars = [(dec31 + k * H, 1.0 + k, 2.0 + k, 0.5, 1.5, 10.0) for k in range(4)]
    cache.write(key, bars)
    cache.add_coverage(key, dec31, dec31 + 4 * H)
    assert cache.path(key) == tmp_path / "exchange=binance/symbol=BTC-USDT_USDT/timeframe=1h"
    assert sorted(p.name for p in cache.path(key).glob("*.parquet")) == [
        "2023-12.parquet",
        "2024-01.parquet",
    ]
    # a later copy of a cached timestamp does not replace it
    cache.write(key, [(dec31 + H, 99.0, 99.0, 99.0, 99.0, 99.0), (dec31 + 4 * H, 5, 6, 4, 5, 1)])
    cache.add_coverage(key, dec31 + 4 * H, dec31 + 5 * H)
    assert cache.coverage(key) == [(dec31, dec31 + 5 * H)]
    frame = cache.read(key, dec31, dec31 + 5 * H)
    assert list(frame["open"]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert str(frame.index.tz) == "UTC" and frame.index.name == "ts"
    assert len(cache.read(key, dec31 + H, dec31 + 3 * H)) == 2
    with pytest.raises(NotCached, match="2024-01-01T03:00:00"):
        cache.read(key, dec31, dec31 + 6 * H)
    with pytest.raises(ValueError, match="empty range"):
        cache.read(key, dec31, dec31)


def test_a_data_spec_reads_downloaded_bars_from_the_cache(tmp_path: Path) -> None:
    from raytrader.data.spec import DataSpec

    start = ms("2024-01-01")
    for n, symbol in enumerate(("BTC/USDT", "ETH/USDT")):
        key = SeriesKey("binance", symbol, "1h")
        cache = OhlcvCache(tmp_path / "cache")
        cache.write(
            key, [(start + k * H, 10.0 * (n + 1) + k, 99.0, 1.0, 50.0, 5.0) for k in range(48)]
        )
        cache.add_coverage(key, start, start + 48 * H)
    spec = DataSpec.model_validate(
        {
            "cache": {"exchange": "binance", "timeframe": "1h", "root": "cache"},
            "symbols": ["BTC/USDT", "ETH/USDT"],
            "start": "2024-01-01T02:00:00Z",
            "end": "2024-01-02T00:00:00Z",
            "timeframe": "2h",
        }
    ).relative_to(tmp_path)
    frames = spec.frames()
    assert list(frames) == ["BTC/USDT", "ETH/USDT"]
    assert len(frames["BTC/USDT"]) == 11  # 22 hourly bars as 2h bars
    assert frames["ETH/USDT"]["open"].iloc[0] == 22.0
    assert spec.load().symbols == ("BTC/USDT", "ETH/USDT")

    late = spec.model_copy(update={"end": datetime(2024, 1, 3, 1, tzinfo=UTC)})
    with pytest.raises(
        ValueError, match="raytrader data download --exchange binance --symbol BTC/USDT"
    ):
        late.frames()
    with pytest.raises(ValueError, match="needs symbols, end"):
        DataSpec.model_validate(
            {"cache": {"exchange": "binance", "timeframe": "1h"}, "start": "2024-01-01"}
        )
