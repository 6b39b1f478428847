"""Historical download (``raytrader data download``) with real ccxt against a Binance-format server.

Hourly bars from 2023-12-31 (two calendar months, so two cache files), small pages so that a
few dozen bars take several requests, fast retry backoffs.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import pytest_asyncio
from typer.testing import CliRunner

pytest.importorskip("ccxt")  # the ``live`` extra

from raytrader.cli import app
from raytrader.data.bar_checks import Duplicate, Gap
from raytrader.data.download import (
    DownloadFailed,
    DownloadInputError,
    DownloadReport,
    RetryPolicy,
    download_ohlcv,
    open_exchange,
)
from raytrader.data.loaders import utc_index
from raytrader.data.ohlcv_cache import NotCached, OhlcvCache, SeriesKey
from tests.integration.fake_binance import FakeBinance, SimClock, final_bar

pytestmark = pytest.mark.asyncio

H = 3_600_000


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


ORIGIN = ms("2023-12-31T00:00")  # the exchange's first bar
SINCE = ms("2023-12-31T16:00")
UNTIL = SINCE + 48 * H  # 2024-01-02T16:00
NOW = ms("2024-01-03T00:30")
KEY = SeriesKey("binance", "BTC/USDT", "1h")
MONTH_FILES = ["2023-12.parquet", "2024-01.parquet"]
FAST = RetryPolicy(attempts=3, base=0.05, max_delay=0.2)


def expected(start: int, end: int, missing: set[int] | None = None) -> pd.DataFrame:
    """The closed hourly bars the server has in ``[start, end)``, as the cache returns them."""
    ts = [t for t in range(start, end, H) if t not in (missing or set())]
    rows = [final_bar("BTCUSDT", t, H, ORIGIN) for t in ts]
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close", "volume"], dtype=float)
    frame.index = utc_index(pd.DatetimeIndex(pd.to_datetime(ts, unit="ms", utc=True)))
    return frame


@pytest.fixture
def server() -> Iterator[FakeBinance]:
    srv = FakeBinance(SimClock(NOW), origin=ORIGIN)
    srv.thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def cache(tmp_path: Path) -> OhlcvCache:
    return OhlcvCache(tmp_path / "ohlcv")


Download = Callable[..., Any]


@pytest_asyncio.fixture
async def download(server: FakeBinance, cache: OhlcvCache) -> AsyncIterator[Download]:
    """``download(**kw)``: one download of BTC/USDT 1h [SINCE, UNTIL) through a fresh exchange
    pointed at the server (closed afterwards)."""
    made: list[Any] = []

    async def run(
        symbol: str = "BTC/USDT",
        since: int = SINCE,
        until: int | None = UNTIL,
        exchange_config: dict[str, Any] | None = None,
        **kw: Any,
    ) -> DownloadReport:
        ex = open_exchange(
            "binance",
            server.base,
            options={"fetchMarkets": {"types": ["spot"]}},
            **(exchange_config or {}),
        )
        made.append(ex)
        kw.setdefault("retry", FAST)
        kw.setdefault("page_limit", 10)
        kw.setdefault("clock", server.clock)
        return await download_ohlcv(ex, cache, symbol, "1h", since, until, **kw)

    yield run
    for ex in made:
        await ex.close()


def starts(server: FakeBinance, market_id: str = "BTCUSDT") -> list[int]:
    return [int(q["startTime"]) for q in server.klines_requests(market_id)]


async def test_pages_through_the_range_into_monthly_parquet_files(
    download: Download, server: FakeBinance, cache: OhlcvCache
) -> None:
    seen: list[tuple[int, int]] = []
    report = await download(
        exchange_config={"rateLimit": 200}, progress=lambda d, t: seen.append((d, t))
    )
    assert (report.bars, report.fetched, report.requests, report.retries) == (48, 48, 5, 0)
    assert report.gaps == [] and report.duplicates == [] and report.cached == []
    # five pages of at most 10 bars, each from the bar after the last one received
    assert starts(server) == [SINCE + k * 10 * H for k in range(5)]
    assert {q["limit"] for q in server.klines_requests()} == {"10"}
    assert {q["endTime"] for q in server.klines_requests()} == {str(UNTIL - 1)}
    assert seen[0] == (0, 48) and seen[-1] == (48, 48)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    folder = cache.path(KEY)
    assert folder.relative_to(cache.root).as_posix() == (
        "exchange=binance/symbol=BTC-USDT/timeframe=1h"
    )
    assert sorted(p.name for p in folder.glob("*.parquet")) == [
        "2023-12.parquet",
        "2024-01.parquet",
    ]
    assert len(pd.read_parquet(folder / "2023-12.parquet")) == 8  # 16:00 .. 23:00
    pd.testing.assert_frame_equal(cache.read(KEY, SINCE, UNTIL), expected(SINCE, UNTIL))

    # ccxt's rate limiter (on by default) spaced the requests: a klines call costs 0.4 x
    # rateLimit = 80 ms here (a few ms apart without it)
    times = [r.time for r in server.requests if r.path.endswith("/klines")]
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.06


async def test_http_429_is_retried_after_a_backoff(
    download: Download, server: FakeBinance, cache: OhlcvCache
) -> None:
    server.faults["klines"] = [None, (429, {"code": -1003, "msg": "Too many requests."})]
    report = await download(retry=RetryPolicy(attempts=3, base=0.3, max_delay=1.0))
    assert (report.bars, report.fetched, report.retries) == (48, 48, 1)
    assert starts(server)[:4] == [SINCE, SINCE + 10 * H, SINCE + 10 * H, SINCE + 20 * H]
    assert starts(server)[4:] == [SINCE + 30 * H, SINCE + 40 * H]
    klines = [r for r in server.requests if r.path.endswith("/klines")]
    assert klines[2].time - klines[1].time >= 0.3  # the backoff waited before asking again
    pd.testing.assert_frame_equal(cache.read(KEY, SINCE, UNTIL), expected(SINCE, UNTIL))


async def test_an_interrupted_download_resumes_from_the_cache(
    download: Download, server: FakeBinance, cache: OhlcvCache
) -> None:
    # pages 1 and 2 arrive, then page 3 fails twice (a 503, a dropped connection): give up
    # (aiohttp sends a request again once when a kept-alive connection drops: two drops)
    server.faults["klines"] = [None, None, (503, "Service Unavailable"), "drop", "drop"]
    with pytest.raises(DownloadFailed, match="fetch_ohlcv failed after 2 attempts") as info:
        await download(retry=RetryPolicy(attempts=2, base=0.01, max_delay=0.01))
    assert "run the same download again" in str(info.value)
    assert info.value.report.fetched == 20
    assert cache.coverage(KEY) == [(SINCE, SINCE + 20 * H)]
    server.faults["klines"].clear()  # (a drop aiohttp did not send again would be left)
    before = len(server.klines_requests())
    assert starts(server)[:3] == [SINCE, SINCE + 10 * H, SINCE + 20 * H]
    assert set(starts(server)[2:]) == {SINCE + 20 * H}  # the failed page, nothing after it

    report = await download()
    assert starts(server)[before:] == [SINCE + 20 * H, SINCE + 30 * H, SINCE + 40 * H]
    assert (report.bars, report.fetched, report.requests) == (48, 28, 3)
    assert report.cached == [(SINCE, SINCE + 20 * H)]
    pd.testing.assert_frame_equal(cache.read(KEY, SINCE, UNTIL), expected(SINCE, UNTIL))


async def test_gaps_and_duplicates_are_reported_and_duplicates_dropped(
    download: Download, server: FakeBinance, cache: OhlcvCache
) -> None:
    missing = {SINCE + k * H for k in (5, 6, 30, 46, 47)}
    server.missing["BTCUSDT"] = missing
    server.duplicates["BTCUSDT"] = {SINCE + 2 * H: True, SINCE + 12 * H: False}
    report = await download()
    assert report.gaps == [
        Gap(SINCE + 5 * H, SINCE + 7 * H, 2, "inside"),
        Gap(SINCE + 30 * H, SINCE + 31 * H, 1, "inside"),
        Gap(SINCE + 46 * H, UNTIL, 2, "end"),
    ]
    assert report.missing_bars == 5
    assert report.duplicates == [
        Duplicate(SINCE + 2 * H, 2, conflicting=False),
        Duplicate(SINCE + 12 * H, 2, conflicting=True),
    ]
    frame = cache.read(KEY, SINCE, UNTIL)
    assert frame.index.is_unique
    # the first copy of the conflicting pair is the one kept
    pd.testing.assert_frame_equal(frame, expected(SINCE, UNTIL, missing))

    # A second run asks nothing (a gap, once asked, stays a gap) and still names the gaps.
    n = server.request_count()
    again = await download()
    assert server.request_count() == n
    assert again.gaps == report.gaps and again.duplicates == [] and again.fetched == 0

    # Before the exchange's first bar (its listing): a gap at the start.
    eth = await download(symbol="ETH/USDT", since=ORIGIN - 5 * H, until=ORIGIN + 5 * H)
    assert eth.gaps == [Gap(ORIGIN - 5 * H, ORIGIN, 5, "start")]
    assert eth.bars == 5


async def test_a_page_repeating_the_last_bar_of_the_previous_one(
    download: Download, server: FakeBinance, cache: OhlcvCache
) -> None:
    server.overlap = 1  # every answer starts with the bar before startTime (some exchanges)
    report = await download()
    assert starts(server) == [SINCE + k * 9 * H for k in range(6)]  # 9 new bars a page
    # ccxt drops rows before ``since`` itself: nothing doubled, nothing lost
    assert (report.bars, report.fetched, report.duplicates) == (48, 48, [])
    pd.testing.assert_frame_equal(cache.read(KEY, SINCE, UNTIL), expected(SINCE, UNTIL))


async def test_cached_reads_make_no_request_and_redis_keeps_them(
    download: Download, server: FakeBinance, cache: OhlcvCache, redis_url: str
) -> None:
    from raytrader.state.stores.redis_frames import RedisFrameMemo

    await download()
    n = server.request_count()
    frame = cache.read(KEY, SINCE + 3 * H, SINCE + 30 * H)
    pd.testing.assert_frame_equal(frame, expected(SINCE + 3 * H, SINCE + 30 * H))
    report = await download()  # covered: not even the markets are loaded
    assert (report.requests, report.fetched, report.bars) == (0, 0, 48)
    assert server.request_count() == n
    with pytest.raises(NotCached, match=r"2023-12-31T06:00:00\+00:00"):
        cache.read(KEY, SINCE - 10 * H, SINCE + H)

    memo = RedisFrameMemo(redis_url, prefix=f"test-{id(cache)}:")
    try:
        with_redis = OhlcvCache(cache.root, memo)
        first = with_redis.read(KEY, SINCE, UNTIL)
        for file in cache.path(KEY).iterdir():  # the files go: Redis still answers
            file.unlink()
        with pytest.raises(NotCached):
            cache.read(KEY, SINCE, UNTIL)
        pd.testing.assert_frame_equal(with_redis.read(KEY, SINCE, UNTIL), first)
        pd.testing.assert_frame_equal(first, expected(SINCE, UNTIL))
    finally:
        memo.close()
    assert server.request_count() == n


async def test_bad_input_is_named_before_any_request(
    download: Download, server: FakeBinance
) -> None:
    with pytest.raises(DownloadInputError, match="unknown ccxt exchange 'nosuch'"):
        open_exchange("nosuch")
    with pytest.raises(DownloadInputError, match="no timeframe '7m'"):
        await download_ohlcv(open_exchange("binance"), OhlcvCache("unused"), "BTC/USDT", "7m", 0)
    with pytest.raises(DownloadInputError, match="is not before until"):
        await download(since=UNTIL, until=SINCE)
    assert server.request_count() == 0
    with pytest.raises(DownloadInputError, match="no market 'DOGE/USDT'"):
        await download(symbol="DOGE/USDT")
    assert server.klines_requests() == []


# -- the command line ----------------------------------------------------------------------------


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["data", "download", *args])
    # rich wraps and boxes messages: compare on single-spaced text
    text = " ".join(result.output.replace("│", " ").split())
    return result.exit_code, text


def test_cli_downloads_into_parquet_and_prints_the_gaps(
    server: FakeBinance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAYTRADER_REDIS_URL", raising=False)
    server.missing["BTCUSDT"] = {SINCE + 5 * H, SINCE + 6 * H}
    base = ["--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1h"]
    args = [*base, "--since", "2023-12-31T16:00", "--until", "2024-01-02T16:00"]
    args += ["--cache-dir", str(tmp_path), "--api-url", server.base, "--page-limit", "10"]
    code, out = _cli(*args)
    assert code == 0, out
    assert "46 bars in 2023-12-31T16:00:00+00:00 .. 2024-01-02T16:00:00+00:00" in out
    assert "46 downloaded in 5 requests" in out
    assert "duplicates: 0" in out
    assert "gaps: 1 (2 bars missing)" in out
    assert "2023-12-31T21:00:00+00:00 .. 2023-12-31T23:00:00+00:00: 2 bars (inside)" in out
    folder = tmp_path / "exchange=binance" / "symbol=BTC-USDT" / "timeframe=1h"
    assert sorted(p.name for p in folder.glob("*.parquet")) == [
        "2023-12.parquet",
        "2024-01.parquet",
    ]
    whole = pd.concat(pd.read_parquet(p) for p in sorted(folder.glob("*.parquet")))
    assert len(whole) == 46

    n = server.request_count()
    code, out = _cli(*args)  # all cached: no request, same report
    assert code == 0 and server.request_count() == n
    assert "0 downloaded in 0 requests" in out and "gaps: 1 (2 bars missing)" in out


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"--exchange": "nosuch"}, "Invalid value for --exchange: unknown ccxt exchange 'nosuch'"),
        ({"--timeframe": "7m"}, "binance has no timeframe '7m'"),
        ({"--since": "2024-02-01"}, "--since 2024-02-01 is not before --until 2024-01-02"),
        ({"--since": "2024-13-01"}, "Invalid value for --since: '2024-13-01' is not an ISO date"),
        ({"--symbol": "DOGE/USDT"}, "binance has no market 'DOGE/USDT'"),
    ],
)
def test_cli_bad_input_names_it(
    server: FakeBinance, tmp_path: Path, change: dict[str, str], named: str
) -> None:
    given = {
        "--exchange": "binance",
        "--symbol": "BTC/USDT",
        "--since": "2024-01-01",
        "--until": "2024-01-02",
        "--cache-dir": str(tmp_path),
        "--api-url": server.base,
        **change,
    }
    code, out = _cli(*(x for kv in given.items() for x in kv))
    assert code == 2, out
    assert named in out, out
    assert server.klines_requests() == []
