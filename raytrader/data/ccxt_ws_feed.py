"""A live feed on ccxt's websocket ``watch_ohlcv`` (ccxt.pro), with REST as its safety net.

``CcxtWatchFeed`` is ``CcxtPollingFeed`` (same consumer interface, same guarantees: closed bars
only, each timestamp once, in increasing order, every symbol aligned) whose bars arrive by
websocket while it is caught up. The REST path stays underneath:

- at start, and after every reconnect, a REST round pages from each symbol's cursor (the last
  bar emitted), so whatever the stream missed while down is fetched, and nothing twice;
- when a stream update skips bars after the cursor (a hole), REST fetches them before the
  update is used, so a hole is never taken for an exchange gap;
- when the stream stays quiet for ``poll_interval`` seconds, a REST round runs (a bar closes
  by the clock even when nobody trades).

Candles are read from ccxt's candle cache of the symbol, which holds the latest values of the
recent candles (a bar's closing message updates it in place); the forming candle is never
emitted, whatever the stream says about it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import ccxt.pro as ccxt_pro
import structlog

from raytrader.data.ccxt_feed import CcxtPollingFeed, _redact, _rewrite_api_urls, is_retryable

__all__ = ["CcxtWatchFeed", "make_pro_exchange"]

log = structlog.get_logger("raytrader.data.ccxt_ws_feed")


def make_pro_exchange(
    exchange_id: str, api_urls: Mapping[str, str] | None = None, **config: Any
) -> Any:
    """A ccxt.pro exchange (REST and websocket), rate limiter on; ``api_urls`` as for
    ``make_exchange`` (websocket entries included)."""
    if exchange_id not in ccxt_pro.exchanges:
        raise ValueError(f"ccxt.pro has no websocket exchange {exchange_id!r}")
    exchange = getattr(ccxt_pro, exchange_id)({"enableRateLimit": True, **config})
    if api_urls:
        _rewrite_api_urls(exchange, api_urls)
    return exchange


class CcxtWatchFeed(CcxtPollingFeed):
    """``CcxtPollingFeed`` fed by ``watch_ohlcv_for_symbols`` while caught up (see the module).

    ``exchange`` must be a ccxt.pro exchange with ``watchOHLCV``. Stream errors that are
    transient (``is_retryable``) reconnect after a backoff of ``retry_base`` .. ``retry_max``
    seconds (``max_retries`` in a row, None: without end); the REST round after each reconnect
    keeps the bars exactly once and in order.
    """

    def __init__(self, exchange: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(exchange, *args, **kwargs)
        self.reconnects = 0  # stream failures recovered from (for logs and tests)
        self._watching: asyncio.Future[Any] | None = None

    def _check_exchange(self) -> None:
        super()._check_exchange()
        if not self.exchange.has.get("watchOHLCV"):
            raise ccxt_pro.NotSupported(f"{self.exchange.id} has no watchOHLCV")

    async def _run(self) -> None:
        failures = 0
        try:
            while True:
                # REST first: the backlog, and what the stream missed while it was down.
                if await self._poll_round():
                    self._emit_ready()
                    continue
                self._emit_ready()
                try:
                    await self._watch()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not is_retryable(exc) or (
                        self.max_retries is not None and failures >= self.max_retries
                    ):
                        raise
                    failures += 1
                    self.reconnects += 1
                    self._forget_stream()
                    delay = min(self.retry_max, self.retry_base * 2 ** (failures - 1))
                    log.warning(
                        "ccxt_ws_feed.reconnect",
                        exchange=self.exchange.id,
                        attempt=failures,
                        delay_s=round(delay, 3),
                        error=type(exc).__name__,
                        detail=_redact(str(exc)),
                    )
                    await asyncio.sleep(delay)
                else:
                    failures = 0
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc, during="watch")
        finally:
            self._wake.set()

    async def _watch(self) -> None:
        """Use stream updates until the stream stays quiet for ``poll_interval`` (returns) or
        fails (raises). A watch still pending when quiet is kept for the next call (cancelling
        it would cancel ccxt's shared subscription future)."""
        pairs = [[s, self.timeframe] for s in self.symbols]
        while True:
            watching = self._watching
            if watching is None:
                watching = asyncio.ensure_future(self.exchange.watch_ohlcv_for_symbols(pairs))
                self._watching = watching
            done, _ = await asyncio.wait({watching}, timeout=self.poll_interval)
            if not done:
                return  # quiet: the caller runs a REST round
            self._watching = None
            update = watching.result()  # raises the stream's error
            for symbol in update:
                if symbol in self._cursor:
                    await self._take_stream(symbol)
            self._emit_ready()

    async def close(self) -> None:
        self._closed = True
        task, self._watching = self._watching, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        await super().close()

    async def _take_stream(self, symbol: str) -> None:
        """Ingest the symbol's stream candles that are surely final, after fetching by REST any
        bar the stream skipped since the cursor.

        A candle is final once the stream has shown the next one: Binance sends a candle's
        closing values before the next candle's first message, and ccxt's cache keeps the
        latest values (the cache is cleared on reconnect, so no value from before a drop is
        used). A candle without its successor waits: for the stream, or for the REST round
        after ``poll_interval`` of quiet.
        """
        cursor = self._cursor[symbol]
        if cursor is None:
            return  # no bar yet: REST starts the symbol
        cached = (self.exchange.ohlcvs.get(symbol) or {}).get(self.timeframe) or []
        by_ts = {row[0]: list(row) for row in cached if isinstance(row[0], int)}
        final: list[list[Any]] = []
        ts = self._next_open(cursor)
        while ts in by_ts and self._next_open(ts) in by_ts:
            final.append(by_ts[ts])
            ts = self._next_open(ts)
        if final:
            self._ingest(symbol, final, self._now_ms())
        if any(t > ts for t in by_ts):  # the stream moved past a bar it did not show closing
            log.info("ccxt_ws_feed.hole", symbol=symbol, missing_from_ms=ts)
            await self._poll_round()

    def _forget_stream(self) -> None:
        """Drop ccxt's cached candles of the feed's symbols (their values may be stale)."""
        ohlcvs = getattr(self.exchange, "ohlcvs", None) or {}
        for symbol in self.symbols:
            (ohlcvs.get(symbol) or {}).pop(self.timeframe, None)
