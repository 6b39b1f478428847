"""The websocket feed (ccxt.pro ``watch_ohlcv``) against local Binance-format servers.

REST is ``FakeBinance`` (a thread); the websocket server is aiohttp in the test's loop, speaking
Binance's kline stream: it answers SUBSCRIBE and pushes the kline events the test scripts, and
drops connections on demand. Both read the same simulated clock as the feed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from aiohttp import WSMsgType, web

pytest.importorskip("ccxt.pro")

from raytrader.data.ccxt_ws_feed import CcxtWatchFeed, make_pro_exchange
from raytrader.data.feeds import BarSlice
from tests.integration.fake_binance import (
    T0,
    TF,
    FakeBinance,
    SimClock,
    final_bar,
    forming_bar,
)

pytestmark = pytest.mark.asyncio


class KlineStream:
    """Binance's spot websocket: SUBSCRIBE / result, then ``kline`` events pushed by the test."""

    def __init__(self) -> None:
        self.sockets: list[web.WebSocketResponse] = []
        self.connections = 0
        self.subscriptions: list[list[str]] = []
        self.subscribed = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.base = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        await self.drop()
        if self.runner is not None:
            await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        self.sockets.append(ws)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            body = json.loads(msg.data)
            if body.get("method") == "SUBSCRIBE":
                self.subscriptions.append(body["params"])
                await ws.send_json({"result": None, "id": body["id"]})
                self.subscribed.set()
        if ws in self.sockets:
            self.sockets.remove(ws)
        return ws

    async def push(self, market_id: str, minute: int, closed: bool) -> None:
        ts = T0 + minute * TF
        bar = (final_bar if closed else forming_bar)(market_id, ts)
        await self.send(market_id, ts, TF, bar, closed)

    async def send(
        self, market_id: str, ts: int, tf: int, bar: tuple[float, ...], closed: bool
    ) -> None:
        """One kline event of the candle opening at ``ts`` to every connected client."""
        event = {
            "e": "kline",
            "E": ts + (tf - 1 if closed else tf // 2),
            "s": market_id,
            "k": {
                "t": ts,
                "T": ts + tf - 1,
                "s": market_id,
                "i": "1m" if tf == TF else f"{tf // 1000}s",
                "f": 0,
                "L": 0,
                "o": str(bar[0]),
                "h": str(bar[1]),
                "l": str(bar[2]),
                "c": str(bar[3]),
                "v": str(bar[4]),
                "n": 1,
                "x": closed,
                "q": "0",
                "V": "0",
                "Q": "0",
                "B": "0",
            },
        }
        for ws in list(self.sockets):
            await ws.send_json(event)

    async def drop(self) -> None:
        self.subscribed.clear()
        for ws in list(self.sockets):
            await ws.close()


@pytest.fixture
def clock() -> SimClock:
    return SimClock(T0)


@pytest.fixture
def rest(clock: SimClock) -> Iterator[FakeBinance]:
    srv = FakeBinance(clock)
    srv.thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest_asyncio.fixture
async def stream() -> AsyncIterator[KlineStream]:
    srv = KlineStream()
    await srv.start()
    yield srv
    await srv.stop()


@pytest_asyncio.fixture
async def feed(
    rest: FakeBinance, stream: KlineStream, clock: SimClock
) -> AsyncIterator[CcxtWatchFeed]:
    exchange = make_pro_exchange(
        "binance",
        # Binance's spot stream host holds "stream": ccxt tells spot from futures by it.
        api_urls={"*": rest.base, "ws": stream.base + "/stream"},
        options={"fetchMarkets": {"types": ["spot"]}},
    )
    f = CcxtWatchFeed(
        exchange,
        ["BTC/USDT"],
        "1m",
        poll_interval=0.3,
        since_ms=T0,
        clock=clock,
        retry_base=0.01,
        retry_max=0.05,
    )
    yield f
    await f.close()


async def collect(feed: CcxtWatchFeed, n: int, timeout: float = 5.0) -> list[BarSlice]:
    out: list[BarSlice] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            item = await feed.next()
            assert item is not None, "the feed ended early"
            out.append(item)
    return out


def minutes(slices: list[BarSlice]) -> list[int]:
    return [(round(s.ts.timestamp() * 1000) - T0) // TF for s in slices]


def assert_final(slices: list[BarSlice]) -> None:
    for s, m in zip(slices, minutes(slices), strict=True):
        assert s.bars == {"BTC/USDT": final_bar("BTCUSDT", T0 + m * TF)}


async def test_stream_bars_once_in_order_across_reconnects_and_holes(
    feed: CcxtWatchFeed, rest: FakeBinance, stream: KlineStream, clock: SimClock
) -> None:
    clock.set_minutes(3.5)
    await feed.start()
    got = await collect(feed, 3)  # minutes 0-2 by REST (the backlog)
    async with asyncio.timeout(5):
        await stream.subscribed.wait()
    assert stream.subscriptions == [["btcusdt@kline_1m"]]
    n_rest = len(rest.klines_requests())

    # Minute 3 closes on the stream: emitted from it, with no REST request.
    await stream.push("BTCUSDT", 3, closed=False)
    clock.set_minutes(4.01)
    await stream.push("BTCUSDT", 3, closed=True)
    await stream.push("BTCUSDT", 4, closed=False)
    got += await collect(feed, 1)
    assert len(rest.klines_requests()) == n_rest
    await asyncio.sleep(0.05)
    assert feed.queued == 0  # minute 4 is forming: not emitted

    # The stream drops; minutes 4-6 close meanwhile: REST fetches them, then the stream is back.
    clock.set_minutes(7.2)
    await stream.drop()
    got += await collect(feed, 3)
    async with asyncio.timeout(5):
        await stream.subscribed.wait()
    assert stream.connections == 2 and feed.reconnects >= 1
    # the stream repeats minute 6 (already emitted) and closes minute 7
    n_rest = len(rest.klines_requests())
    await stream.push("BTCUSDT", 6, closed=True)
    clock.set_minutes(8.01)
    await stream.push("BTCUSDT", 7, closed=True)
    await stream.push("BTCUSDT", 8, closed=False)
    got += await collect(feed, 1)
    assert len(rest.klines_requests()) == n_rest  # minute 7 came by the stream

    # A hole in the stream (minutes 8 and 9 never pushed as closed): REST fills it first.
    clock.set_minutes(11.01)
    await stream.push("BTCUSDT", 10, closed=True)
    await stream.push("BTCUSDT", 11, closed=False)
    got += await collect(feed, 3)

    # A quiet stream: minute 11 closes by the clock with no message; REST fetches it.
    clock.set_minutes(12.5)
    got += await collect(feed, 1)
    await asyncio.sleep(0.1)
    assert feed.queued == 0 and feed.error is None

    assert minutes(got) == list(range(12))
    assert [s.index for s in got] == list(range(12))
    assert_final(got)


# -- a session's feed ------------------------------------------------------------------------------


class WallClock:
    """The real time, in the ``ms`` attribute ``FakeBinance`` reads."""

    @property
    def ms(self) -> int:
        return int(time.time() * 1000)

    def __call__(self) -> float:
        return time.time()


STREAM_VOLUME = 777.0  # stream candles carry this volume: a slice shows where its bar came from


async def test_a_session_with_stream_true_gets_bars_from_the_websocket(
    stream: KlineStream,
) -> None:
    from raytrader.orchestrator.actors import _open_ccxt_feed
    from raytrader.orchestrator.config import SessionConfig

    wall = WallClock()
    origin = (wall.ms // 1000 - 120) * 1000
    rest = FakeBinance(wall, origin=origin)  # type: ignore[arg-type]
    rest.thread.start()

    def bar(ts: int) -> tuple[float, ...]:
        return (*final_bar("BTCUSDT", ts, 1000, origin)[:4], STREAM_VOLUME)

    async def pusher() -> None:  # Binance's order: the closing values, then the next candle
        while True:
            now = wall.ms // 1000 * 1000
            await stream.send("BTCUSDT", now - 1000, 1000, bar(now - 1000), closed=True)
            await stream.send("BTCUSDT", now, 1000, bar(now), closed=False)
            await asyncio.sleep(0.1)

    config = SessionConfig.model_validate(
        {
            "name": "stream",
            "symbols": ["BTC/USDT"],
            "timeframe": "1s",
            "agents": [{"name": "sma_cross", "params": {"fast": 2, "slow": 5}}],
            "feed": {
                "kind": "ccxt",
                "exchange": "binance",
                "api_url": rest.base,
                "ws_url": stream.base + "/stream",
                "stream": True,
                "poll_interval": 5,
            },
        }
    )
    feed = await _open_ccxt_feed(config, None)
    task = asyncio.create_task(pusher())
    try:
        assert isinstance(feed, CcxtWatchFeed)
        got: list[BarSlice] = []
        async with asyncio.timeout(15):
            while sum(s.bars["BTC/USDT"][4] == STREAM_VOLUME for s in got) < 3:
                item = await feed.next()
                assert item is not None
                got.append(item)
    finally:
        task.cancel()
        await feed.close()
        rest.shutdown()
        rest.server_close()
    assert stream.subscriptions == [["btcusdt@kline_1s"]]
    ts = [round(s.ts.timestamp() * 1000) for s in got]
    assert ts == list(range(ts[0], ts[-1] + 1000, 1000))  # every second once, in order
    assert [s.index for s in got] == list(range(len(got)))


def test_stream_settings_are_checked() -> None:
    from pydantic import ValidationError

    from raytrader.orchestrator.config import FeedSpec

    base = {"kind": "ccxt", "exchange": "binance"}
    assert not FeedSpec.model_validate(base).stream
    with pytest.raises(ValidationError, match="`ws_url` is for ccxt feeds with `stream: true`"):
        FeedSpec.model_validate({**base, "ws_url": "http://127.0.0.1:9"})
    with pytest.raises(ValidationError, match="`stream` is for ccxt feeds"):
        FeedSpec.model_validate({"data": {"bundled": "btc_1h"}, "stream": True})
