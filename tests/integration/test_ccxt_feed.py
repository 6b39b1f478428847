"""The ccxt polling feed against a local server speaking Binance spot's REST format.

Real ccxt (async, aiohttp) talks to a ``http.server`` on 127.0.0.1 in a thread. The server
(``fake_binance``) serves klines from in-memory series up to a simulated clock that the feed
reads too, so the tests decide which bars are closed, which candle is still forming, and which
requests fail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
from structlog.testing import capture_logs

ccxt = pytest.importorskip("ccxt")  # the ``live`` extra

import aiohttp  # noqa: E402  (comes with ccxt)

from raytrader.data.ccxt_feed import (  # noqa: E402
    CcxtPollingFeed,
    NoBarQueued,
    is_retryable,
    make_exchange,
)
from raytrader.data.feeds import BarSlice  # noqa: E402
from tests.integration.fake_binance import (  # noqa: E402
    BASE_PRICE,
    SYMBOLS,
    T0,
    TF,
    FakeBinance,
    SimClock,
    final_bar,
)

pytestmark = pytest.mark.asyncio


def bars(symbol: str, *minutes: int) -> list[tuple[float, float, float, float, float]]:
    return [final_bar(symbol.replace("/", ""), T0 + m * TF) for m in minutes]


@pytest.fixture
def clock() -> SimClock:
    return SimClock(T0)


@pytest.fixture
def server(clock: SimClock) -> Iterator[FakeBinance]:
    srv = FakeBinance(clock)
    srv.thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


MakeFeed = Callable[..., CcxtPollingFeed]


@pytest_asyncio.fixture
async def make_feed(server: FakeBinance, clock: SimClock) -> AsyncIterator[MakeFeed]:
    """Feeds on fresh exchanges pointed at the server; every one is closed at the end."""
    made: list[CcxtPollingFeed] = []

    def make(
        symbols: tuple[str, ...] = SYMBOLS,
        timeframe: str = "1m",
        exchange_config: dict[str, Any] | None = None,
        **kw: Any,
    ) -> CcxtPollingFeed:
        exchange = make_exchange(
            "binance",
            api_urls={"*": server.base},
            options={"fetchMarkets": {"types": ["spot"]}},
            **(exchange_config or {}),
        )
        kw.setdefault("poll_interval", 0.02)
        kw.setdefault("retry_base", 0.01)
        kw.setdefault("retry_max", 0.05)
        feed = CcxtPollingFeed(exchange, symbols, timeframe, clock=clock, **kw)
        made.append(feed)
        return feed

    yield make
    for feed in made:
        await feed.close()


async def collect(feed: CcxtPollingFeed, n: int, timeout: float = 5.0) -> list[BarSlice]:
    out: list[BarSlice] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            item = await feed.next()
            assert item is not None, "the feed ended early"
            out.append(item)
    return out


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def minutes_of(slices: list[BarSlice]) -> list[int]:
    return [(round(s.ts.timestamp() * 1000) - T0) // TF for s in slices]


def assert_whole(slices: list[BarSlice], *minutes: int) -> None:
    """Slices at these minutes, each with both symbols' final bars."""
    assert minutes_of(slices) == list(minutes)
    for s in slices:
        m = minutes_of([s])[0]
        assert s.bars == {sym: bars(sym, m)[0] for sym in SYMBOLS}
        assert list(s.bars) == list(SYMBOLS)


# -- bars: closed only, once, in order, aligned ---------------------------------------------------


async def test_closed_bars_once_in_order_aligned(
    make_feed: MakeFeed, server: FakeBinance, clock: SimClock
) -> None:
    clock.set_minutes(3.5)  # minutes 0-2 closed, minute 3 forming
    feed = make_feed(since_ms=T0, start_index=7)
    assert feed.wait_time(0.0) > 0
    with pytest.raises(NoBarQueued, match="not started"):
        feed.take(0.0)
    await feed.start()

    first = await collect(feed, 3)
    assert [s.index for s in first] == [7, 8, 9]
    assert_whole(first, 0, 1, 2)
    assert first[0].ts.tzinfo is not None
    assert ("BTCUSDT", 4) in server.served  # the forming candle was served ...
    await asyncio.sleep(0.15)  # ... and is not emitted, however long we wait
    assert feed.queued == 0
    assert not feed.done
    assert 0 < feed.wait_time(0.0) <= 0.25
    with pytest.raises(NoBarQueued):
        feed.take(0.0)

    clock.set_minutes(5.5)  # minute 3 is final now (other values than while forming)
    second = await collect(feed, 2)
    assert [s.index for s in second] == [10, 11]
    assert_whole(second, 3, 4)
    await asyncio.sleep(0.15)
    assert feed.queued == 0

    for market_id in BASE_PRICE:  # each poll asks from the bar after the last one received
        starts = [int(q["startTime"]) for q in server.klines_requests(market_id)]
        assert starts == [T0, T0 + 3 * TF]


async def test_take_and_wait_time_as_replay_feed(make_feed: MakeFeed, clock: SimClock) -> None:
    clock.set_minutes(2.5)
    feed = make_feed(since_ms=T0)
    await feed.start()
    await until(lambda: feed.queued == 2)
    assert feed.wait_time(0.0) == 0.0
    taken = [feed.take(0.0), feed.take(0.0)]
    assert_whole([t for t in taken if t is not None], 0, 1)
    await feed.close()
    assert feed.done
    assert feed.wait_time(0.0) == 0.0
    assert feed.take(0.0) is None
    assert await feed.next() is None


async def test_starts_at_the_latest_closed_bar(make_feed: MakeFeed, clock: SimClock) -> None:
    clock.set_minutes(10.5)
    async with make_feed() as feed:  # since_ms=None: from now on
        first = await collect(feed, 1)
        await asyncio.sleep(0.1)
        assert feed.queued == 0
        clock.set_minutes(12.01)
        more = await collect(feed, 2)
    assert first[0].index == 0
    assert_whole(first, 9)
    assert [s.index for s in more] == [1, 2]
    assert_whole(more, 10, 11)


async def test_pages_through_a_backlog_under_the_rate_limit(
    make_feed: MakeFeed, server: FakeBinance, clock: SimClock
) -> None:
    clock.set_minutes(2500.5)  # 2,500 closed bars: three pages of 1,000 per symbol
    feed = make_feed(since_ms=T0, exchange_config={"rateLimit": 100})
    assert feed.exchange.enableRateLimit
    await feed.start()
    slices = await collect(feed, 2500, timeout=15)
    assert minutes_of(slices) == list(range(2500))
    assert [s.index for s in slices] == list(range(2500))
    assert slices[-1].bars == {sym: bars(sym, 2499)[0] for sym in SYMBOLS}
    assert all(len(s.bars) == 2 for s in slices)
    for market_id in BASE_PRICE:
        reqs = server.klines_requests(market_id)
        assert [int(q["startTime"]) for q in reqs] == [T0, T0 + 1000 * TF, T0 + 2000 * TF]
        assert {q["limit"] for q in reqs} == {"1000"}
    # ccxt's leaky bucket (klines cost 0.4 x rateLimit 100 ms = 40 ms each, after a small
    # burst) spaced the six page requests
    times = sorted(r.time for r in server.requests if r.path.endswith("/klines"))
    assert times[-1] - times[0] >= 0.1
    await asyncio.sleep(0.1)
    assert feed.queued == 0


# -- faults --------------------------------------------------------------------------------------


async def test_network_errors_are_retried_without_losing_or_repeating_bars(
    make_feed: MakeFeed, server: FakeBinance, clock: SimClock
) -> None:
    throttled = (429, {"code": -1003, "msg": "Too many requests"})
    server.faults["exchangeInfo"] = [(503, "Service Unavailable"), "drop", "drop"]
    server.faults["klines"] = [throttled, (503, "Service Unavailable"), "drop", "drop", "trunc"]
    clock.set_minutes(3.5)
    feed = make_feed(since_ms=T0)
    with capture_logs() as logs:
        await feed.start()
        slices = await collect(feed, 3)
        assert server.faults == {"exchangeInfo": [], "klines": []}

        # again mid-stream, between bars already delivered and bars to come
        server.faults["klines"] = ["trunc", (418, {}), "drop", "drop", (504, "Gateway Timeout")]
        clock.set_minutes(6.5)
        slices += await collect(feed, 3)
        await asyncio.sleep(0.1)
    assert server.faults["klines"] == []
    assert_whole(slices, 0, 1, 2, 3, 4, 5)
    assert [s.index for s in slices] == list(range(6))
    assert feed.queued == 0 and feed.error is None
    retries = [e for e in logs if e["event"] == "ccxt_feed.retry"]
    assert {e["error"] for e in retries} >= {
        "DDoSProtection",
        "ExchangeNotAvailable",
        "ExchangeError",  # the truncated body (aiohttp's ClientPayloadError)
    }
    assert {e["call"] for e in retries} == {"load_markets", "fetch_ohlcv"}


async def test_retries_give_up_after_max_retries(
    make_feed: MakeFeed, server: FakeBinance, clock: SimClock
) -> None:
    clock.set_minutes(3.5)
    feed = make_feed(since_ms=T0, max_retries=2)
    await feed.start()
    await collect(feed, 3)
    server.faults["klines"] = [(503, "Service Unavailable")] * 3
    clock.set_minutes(4.5)
    await until(lambda: feed.done)
    assert isinstance(feed.error, ccxt.ExchangeNotAvailable)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await feed.next()


async def test_duplicated_and_out_of_order_klines(
    make_feed: MakeFeed, server: FakeBinance, clock: SimClock
) -> None:
    server.messy = True
    clock.set_minutes(6.5)
    feed = make_feed(since_ms=T0)
    await feed.start()
    slices = await collect(feed, 6)
    clock.set_minutes(9.5)
    slices += await collect(feed, 3)
    await asyncio.sleep(0.1)
    assert feed.queued == 0
    assert_whole(slices, *range(9))  # the bogus duplicates (999) were dropped
    assert [s.index for s in slices] == list(range(9))


async def test_gaps_are_reported_and_slices_wait_for_every_symbol(
    make_feed: MakeFeed, server: FakeBinance, clock: SimClock
) -> None:
    server.missing["ETHUSDT"] = {T0 + 2 * TF, T0 + 3 * TF, T0 + 6 * TF}
    clock.set_minutes(6.5)  # ETH's last closed bar (minute 6) is missing too
    feed = make_feed(since_ms=T0)
    with capture_logs() as logs:
        await feed.start()
        slices = await collect(feed, 6)
        await asyncio.sleep(0.1)
        assert feed.queued == 0  # minute 6 waits: ETH may still publish it
        clock.set_minutes(7.5)  # ETH's minute 7 forms: minute 6 goes out without ETH
        slices += await collect(feed, 1)
        await asyncio.sleep(0.1)
        assert feed.queued == 0
        clock.set_minutes(8.5)
        slices += await collect(feed, 1)
    assert minutes_of(slices) == list(range(8))
    for s, m in zip(slices, range(8), strict=True):
        expected = ("BTC/USDT",) if m in (2, 3, 6) else SYMBOLS
        assert s.bars == {sym: bars(sym, m)[0] for sym in expected}
    gaps = [e for e in logs if e["event"] == "ccxt_feed.gap"]
    assert [
        (e["symbol"], e["missing_from_ms"], e["missing_until_ms"], e["bars"]) for e in gaps
    ] == [
        ("ETH/USDT", T0 + 2 * TF, T0 + 4 * TF, 2),
        ("ETH/USDT", T0 + 6 * TF, T0 + 7 * TF, 1),
    ]
    assert gaps[0]["log_level"] == "warning"
    assert gaps[0]["missing_from"] == "2023-11-14T22:16:00+00:00"


async def test_a_stale_symbol_stops_holding_the_others_back(
    make_feed: MakeFeed, server: FakeBinance, clock: SimClock
) -> None:
    server.missing["ETHUSDT"] = {T0 + m * TF for m in range(3, 100)}  # ETH stops after minute 2
    clock.set_minutes(3.5)
    feed = make_feed(since_ms=T0, stale_after=30)
    await feed.start()
    assert_whole(await collect(feed, 3), 0, 1, 2)
    with capture_logs() as logs:
        clock.set_minutes(4.2)  # minute 3 closed 12 s ago: ETH may still come
        await asyncio.sleep(0.1)
        assert feed.queued == 0
        clock.set_minutes(4.6)  # 36 s: ETH is stale, minute 3 goes out without it
        late = await collect(feed, 1)
    assert late[0].bars == {"BTC/USDT": bars("BTC/USDT", 3)[0]}
    assert [e["symbol"] for e in logs if e["event"] == "ccxt_feed.stale"] == ["ETH/USDT"]


# -- final errors --------------------------------------------------------------------------------


async def test_unknown_symbol_fails_clearly(
    make_feed: MakeFeed, server: FakeBinance, clock: SimClock
) -> None:
    feed = make_feed(symbols=("BTC/USDT", "DOGE/USDT"))
    with pytest.raises(ccxt.BadSymbol, match="DOGE/USDT"):
        await feed.start()
    assert isinstance(feed.error, ccxt.BadSymbol)
    assert feed.done
    assert feed.wait_time(0.0) == 0.0
    with pytest.raises(ccxt.BadSymbol):
        feed.take(0.0)
    with pytest.raises(ccxt.BadSymbol):
        await feed.next()
    assert server.klines_requests() == []


async def test_unsupported_timeframe_fails_clearly(make_feed: MakeFeed) -> None:
    feed = make_feed(timeframe="7m")
    with pytest.raises(ccxt.NotSupported, match="7m"):
        await feed.start()


async def test_exchange_error_ends_the_feed_after_its_queued_slices(
    make_feed: MakeFeed, server: FakeBinance, clock: SimClock
) -> None:
    clock.set_minutes(3.5)
    feed = make_feed(since_ms=T0)
    await feed.start()
    await until(lambda: feed.queued == 3)
    n_requests = len(server.klines_requests())
    server.invalid.add("ETHUSDT")  # the exchange delists ETH
    clock.set_minutes(4.5)
    await until(lambda: feed.error is not None)
    assert isinstance(feed.error, ccxt.BadSymbol)
    assert len(server.klines_requests()) == n_requests + 2  # BTC, then ETH once: no retry
    assert not feed.done and feed.wait_time(0.0) == 0.0
    taken = [feed.take(0.0) for _ in range(3)]
    assert minutes_of([t for t in taken if t is not None]) == [0, 1, 2]
    assert feed.done
    with pytest.raises(ccxt.BadSymbol, match="Invalid symbol"):
        feed.take(0.0)
    with pytest.raises(ccxt.BadSymbol):
        await feed.next()


# -- close ---------------------------------------------------------------------------------------


async def test_close_mid_request_leaves_nothing_behind(
    make_feed: MakeFeed, server: FakeBinance, clock: SimClock
) -> None:
    clock.set_minutes(2.5)
    feed = make_feed(since_ms=T0)
    await feed.start()
    await collect(feed, 2)
    server.delay = 2.0
    clock.set_minutes(3.5)
    await until(lambda: len(server.klines_requests()) == 3)  # in flight, answer 2 s away
    waiter = asyncio.create_task(feed.next())
    started = time.monotonic()
    await feed.close()
    assert time.monotonic() - started < 1.5
    assert await waiter is None
    assert feed.exchange.session is None
    await feed.close()  # twice is fine
    await asyncio.sleep(0)
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert pending == []
    with pytest.raises(RuntimeError, match="closed"):
        await feed.start()


# -- exchange factory and errors -------------------------------------------------------------------


async def test_make_exchange_rewrites_api_urls() -> None:
    ex = make_exchange("binance", api_urls={"*": "http://127.0.0.1:9/"})
    try:
        assert ex.enableRateLimit
        assert ex.urls["api"]["public"] == "http://127.0.0.1:9/api/v3"
        assert ex.urls["api"]["fapiPublic"] == "http://127.0.0.1:9/fapi/v1"
        assert all(u.startswith("http://127.0.0.1:9/") for u in ex.urls["api"].values())
    finally:
        await ex.close()

    ex = make_exchange(
        "binance",
        api_urls={
            "https://api.binance.com": "http://gw:8080/binance",
            "fapiPublic": "http://other:1",
        },
    )
    try:
        api = ex.urls["api"]
        assert api["public"] == "http://gw:8080/binance/api/v3"
        assert api["sapi"] == "http://gw:8080/binance/sapi/v1"
        assert api["fapiPublic"] == "http://other:1/fapi/v1"
        assert api["dapiPublic"] == "https://dapi.binance.com/dapi/v1"  # untouched
    finally:
        await ex.close()

    with pytest.raises(ValueError, match="nosuch"):
        make_exchange("binance", api_urls={"nosuch": "http://127.0.0.1:9"})
    with pytest.raises(ValueError, match=r"api_urls\['\*'\]") as info:
        make_exchange("binance", api_urls={"*": "ftp://user:secret@host"})
    assert "secret" not in str(info.value)
    with pytest.raises(ValueError, match="unknown ccxt exchange"):
        make_exchange("no-such-exchange")


async def test_error_classes() -> None:
    assert is_retryable(ccxt.RequestTimeout("t"))
    assert is_retryable(ccxt.RateLimitExceeded("r"))
    assert is_retryable(ccxt.DDoSProtection("d"))
    assert is_retryable(ccxt.ExchangeNotAvailable("x"))
    assert not is_retryable(ccxt.BadSymbol("b"))
    assert not is_retryable(ccxt.AuthenticationError("a"))
    assert not is_retryable(ccxt.ExchangeError("e"))
    assert not is_retryable(ValueError("v"))
    try:  # how ccxt reports a truncated body: a bare ExchangeError caused by aiohttp
        raise ccxt.ExchangeError("binance GET ...") from aiohttp.ClientPayloadError("short")
    except ccxt.ExchangeError as exc:
        assert is_retryable(exc)


async def test_rejects_bad_arguments() -> None:
    ex = make_exchange("binance")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"symbols": "BTC/USDT"}, "not one string"),
        ({"symbols": []}, "at least one"),
        ({"symbols": ["BTC/USDT", "BTC/USDT"]}, "duplicate"),
        ({"timeframe": "1minute"}, "timeframe"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"retry_base": 0}, "retry_base"),
    ]
    try:
        for kw, match in cases:
            args: dict[str, Any] = {"symbols": SYMBOLS, "timeframe": "1m", **kw}
            with pytest.raises((ValueError, TypeError), match=match):
                CcxtPollingFeed(ex, **args)
    finally:
        await ex.close()


async def test_calendar_timeframes_close_on_calendar_boundaries() -> None:
    ex = make_exchange("binance")
    try:
        month = CcxtPollingFeed(ex, SYMBOLS, "1M")
        jan = 1_704_067_200_000  # 2024-01-01
        feb, mar = jan + 31 * 86_400_000, jan + 60 * 86_400_000  # 2024 is a leap year
        assert month._next_open(jan) == feb
        assert month._next_open(feb) == mar
        week = CcxtPollingFeed(ex, SYMBOLS, "1w")
        assert week._next_open(jan) == jan + 7 * 86_400_000
    finally:
        await ex.close()
