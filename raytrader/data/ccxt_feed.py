"""A polling feed of live public bars through ccxt, with the consumer interface of ``ReplayFeed``.

The one module of ``raytrader.data`` that imports ccxt (the ``live`` extra): import it only where a
session reads an exchange. Public market data only: the feed needs no API keys.

``CcxtPollingFeed`` polls ``fetch_ohlcv`` for every symbol, keeps only closed bars, and emits each
timestamp once, in increasing order, as one ``BarSlice`` holding every symbol's bar at that
timestamp. Network errors are retried with exponential backoff and jitter; any other error ends
the feed, and ``take``/``next`` raise it once the slices queued before it are consumed.
"""

from __future__ import annotations

import asyncio
import calendar
import math
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import ccxt
import ccxt.async_support as ccxt_async
import structlog

from raytrader.data.feeds import BarSlice
from raytrader.domain.bar import BarTuple

__all__ = ["CcxtPollingFeed", "NoBarQueued", "is_retryable", "make_exchange"]

log = structlog.get_logger("raytrader.data.ccxt_feed")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_TIMEFRAME = re.compile(r"^(\d+)([smhdwMy])$")
_URL_USERINFO = re.compile(r"(://)[^/@\s]+@")
_ORIGIN = re.compile(r"^https?://")
# How many of the latest bars to ask for when the feed starts "now" (since_ms=None).
_LATEST_BARS: Final = 5
# How long close() waits for ccxt's rate limiter to let go of a cancelled request.
_THROTTLER_DRAIN_S: Final = 5.0


class NoBarQueued(LookupError):
    """``take`` was called while the feed is live but has no slice queued: wait for
    ``wait_time()`` to be 0, or ``await next()``."""


def is_retryable(exc: BaseException) -> bool:
    """Whether a ccxt error is transient (retry with backoff) rather than final.

    ccxt's ``OperationFailed`` family is transient: ``NetworkError`` (``RequestTimeout``,
    ``RateLimitExceeded``, ``DDoSProtection``, ``ExchangeNotAvailable``, ``InvalidNonce``) and the
    exchange's own "unknown error, try again" codes. ccxt reports a transport failure that is not
    a connection error (a truncated body) as a bare ``ExchangeError`` caused by aiohttp: transient
    too.
    ``ExchangeError`` and its subclasses (``BadSymbol``, ``AuthenticationError``, ...) are final.
    """
    if isinstance(exc, ccxt.OperationFailed):
        return True
    return type(exc) is ccxt.ExchangeError and isinstance(exc.__cause__, aiohttp.ClientError)


def _redact(message: str, limit: int = 300) -> str:
    """An error message fit for logs: no credentials embedded in URLs, bounded length."""
    return _URL_USERINFO.sub(r"\1***@", message)[:limit]


def _iso(ts_ms: int) -> str:
    return (_EPOCH + ts_ms * _MS).isoformat()


def _add_months(ts_ms: int, months: int) -> int:
    dt = _EPOCH + ts_ms * _MS
    m0 = dt.month - 1 + months
    year, month = dt.year + m0 // 12, m0 % 12 + 1
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return (dt.replace(year=year, month=month, day=day) - _EPOCH) // _MS


class CcxtPollingFeed:
    """Live bars of ``symbols`` polled from a ccxt exchange, as a ``ReplayFeed`` yields them.

    - Only closed bars are emitted: a bar is closed once ``clock()`` (seconds since the epoch,
      wall time) has passed its end (``ts + timeframe``; calendar months for ``M``/``y``) by
      ``close_delay`` seconds. The still-forming candle is never emitted.
    - Each timestamp is emitted once, in increasing order, as one ``BarSlice`` holding every
      symbol's bar at that timestamp. A timestamp is emitted once every symbol has its bar or a
      later one; a symbol without a bar there is absent from the slice (gaps are logged).
    - ``since_ms``: the first bar to emit (its open time, ms); None starts at the latest closed
      bar when ``start()`` runs. Behind by more than a page, the feed pages through
      ``fetch_ohlcv`` (one page per symbol per round, so slices flow during a backfill), through
      ccxt's rate limiter (keep the exchange's ``enableRateLimit`` on).
    - ``stale_after``: None (the default) waits for every symbol. With a number of seconds, a
      symbol that the exchange still has no next bar for ``stale_after`` seconds after that bar
      should have closed stops holding the others back; its late bars are dropped (logged).
    - Transient errors (``is_retryable``) are retried with exponential backoff from
      ``retry_base`` to ``retry_max`` seconds (jittered), ``max_retries`` times in a row (None:
      without end); the feed's cursors only move on data received, so no bar is lost or repeated.
      Any other error ends the feed: it is kept in ``error``, and ``take``/``next`` raise it once
      the slices queued before it are consumed.

    ``BarSlice.index`` counts emitted slices from ``start_index``. The feed owns the exchange:
    ``close()`` closes it. Use ``async with feed:`` or ``start()`` / ``close()``.
    """

    def __init__(
        self,
        exchange: ccxt_async.Exchange,
        symbols: Sequence[str],
        timeframe: str,
        poll_interval: float = 5.0,
        start_index: int = 0,
        since_ms: int | None = None,
        clock: Callable[[], float] = time.time,
        *,
        close_delay: float = 0.0,
        stale_after: float | None = None,
        retry_base: float = 1.0,
        retry_max: float = 60.0,
        max_retries: int | None = None,
    ) -> None:
        if isinstance(symbols, str):
            raise TypeError("symbols must be a sequence of symbols, not one string")
        if not symbols:
            raise ValueError("a feed needs at least one symbol")
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"duplicate symbols in {list(symbols)}")
        match = _TIMEFRAME.match(timeframe)
        if match is None or int(match.group(1)) <= 0:
            raise ValueError(f"timeframe {timeframe!r} is not like '1m', '4h', '1d', '1w', '1M'")
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be positive seconds, got {poll_interval}")
        if start_index < 0:
            raise ValueError(f"start_index must be >= 0, got {start_index}")
        if since_ms is not None and since_ms < 0:
            raise ValueError(f"since_ms must be >= 0, got {since_ms}")
        if close_delay < 0:
            raise ValueError(f"close_delay must be >= 0 seconds, got {close_delay}")
        if stale_after is not None and not stale_after >= 0:
            raise ValueError(f"stale_after must be >= 0 seconds or None, got {stale_after}")
        if not 0 < retry_base <= retry_max:
            raise ValueError(f"need 0 < retry_base <= retry_max, got {retry_base}, {retry_max}")
        if max_retries is not None and max_retries < 0:
            raise ValueError(f"max_retries must be >= 0 or None, got {max_retries}")

        self.exchange = exchange
        self.symbols: tuple[str, ...] = tuple(symbols)
        self.timeframe = timeframe
        self.poll_interval = float(poll_interval)
        self.start_index = start_index
        self.since_ms = since_ms
        self.clock = clock
        self.close_delay_ms = round(close_delay * 1000)
        self.stale_after_ms = None if stale_after is None else round(stale_after * 1000)
        self.retry_base = float(retry_base)
        self.retry_max = float(retry_max)
        self.max_retries = max_retries
        self.error: BaseException | None = None

        amount, unit = int(match.group(1)), match.group(2)
        self._months = amount * (12 if unit == "y" else 1) if unit in "My" else 0
        self._tf_ms = int(exchange.parse_timeframe(timeframe) * 1000)
        self._page_limit: int | None = None
        self._index = start_index
        self._queue: deque[BarSlice] = deque()
        self._pending: dict[int, dict[str, BarTuple]] = {}
        # Per symbol: open time of the latest closed bar received (None: none yet).
        self._cursor: dict[str, int | None] = dict.fromkeys(self.symbols)
        # Per symbol: open time of the candle seen forming after the cursor (the exchange has
        # moved past every bar before it).
        self._forming: dict[str, int] = {}
        # Per symbol: whether the last poll drained what the exchange had, and when it ran.
        self._caught_up: dict[str, bool] = dict.fromkeys(self.symbols, False)
        self._polled_at: dict[str, int] = {}
        self._stale: set[str] = set()
        self._floor: int | None = since_ms  # no bar before this open time is emitted
        self._floor_is_bar = False  # whether the floor is itself a bar's open time
        self._last_emitted: int | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False
        self._exchange_closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load markets, check the exchange, the timeframe and the symbols, and start polling.

        Raises (and keeps in ``error``) ``ccxt.BadSymbol`` for symbols the exchange lacks,
        ``ccxt.NotSupported`` when it has no OHLCV or not this timeframe, and any final error of
        loading the markets.
        """
        if self._closed:
            raise RuntimeError("the feed is closed")
        if self._started:
            raise RuntimeError("the feed is already started")
        self._started = True
        ex = self.exchange
        if not getattr(ex, "enableRateLimit", True):
            log.warning("ccxt_feed.rate_limit_off", exchange=ex.id)
        try:
            await self._call("load_markets", None, ex.load_markets)
            self._check_exchange()
            if self._floor is None:
                await self._start_at_latest()
            elif self._months == 0 and self._floor % self._tf_ms == 0:
                self._floor_is_bar = True
        except Exception as exc:
            self._fail(exc, during="start")
            raise
        if self._closed:  # close() ran while the markets loaded: start nothing
            raise RuntimeError("the feed was closed while it started")
        log.info(
            "ccxt_feed.started",
            exchange=ex.id,
            symbols=list(self.symbols),
            timeframe=self.timeframe,
            since=_iso(self._floor) if self._floor is not None else None,
            page_limit=self._page_limit,
        )
        self._task = asyncio.create_task(self._run(), name=f"ccxt-feed-{ex.id}-{self.timeframe}")

    async def close(self) -> None:
        """Stop polling and close the exchange (its HTTP session). Safe to call twice."""
        self._closed = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            if not task.done():
                task.cancel()
            await asyncio.wait([task])  # never raises: our own cancellation stays ours
        if not self._exchange_closed:
            self._exchange_closed = True
            await self._drain_throttler()
            await self.exchange.close()

    async def __aenter__(self) -> CcxtPollingFeed:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- consumer interface (as ReplayFeed) ----------------------------------------------------

    @property
    def done(self) -> bool:
        """No slice will come: closed or failed (``error``), with nothing left in the queue."""
        if self._queue:
            return False
        return (
            self._closed or self.error is not None or (self._task is not None and self._task.done())
        )

    @property
    def queued(self) -> int:
        """How many slices wait to be taken."""
        return len(self._queue)

    def wait_time(self, now: float) -> float:
        """0 when ``take`` has an answer (a queued slice, the end, or the error); else a short
        wait before asking again. ``now`` (a monotonic clock) is accepted for ReplayFeed's
        interface and unused."""
        if self._queue or self.done:
            return 0.0
        return min(self.poll_interval, 0.25)

    def take(self, now: float | None = None) -> BarSlice | None:
        """The next queued slice; None once the feed is closed. Raises ``error`` when the feed
        failed (after its queued slices), and ``NoBarQueued`` when live with nothing queued."""
        if self._queue:
            return self._queue.popleft()
        if self.error is not None:
            raise self.error
        if self.done:
            return None
        raise NoBarQueued(
            "no bar queued yet: take() when wait_time() is 0, or await next()"
            if self._started
            else "the feed is not started: await start() first"
        )

    async def next(self) -> BarSlice | None:
        """Wait for the next slice and return it; None once closed; raises ``error``."""
        if not self._started and not self._closed:
            raise RuntimeError("the feed is not started: await start() first")
        while not self._queue and not self.done:
            self._wake.clear()
            await self._wake.wait()
        return self.take()

    # -- polling -------------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _next_open(self, ts: int) -> int:
        """Open time of the bar after the one opening at ``ts`` (its close time)."""
        return _add_months(ts, self._months) if self._months else ts + self._tf_ms

    def _check_exchange(self) -> None:
        ex = self.exchange
        if not ex.has.get("fetchOHLCV"):
            raise ccxt.NotSupported(f"{ex.id} has no fetchOHLCV: it cannot feed bars")
        timeframes = getattr(ex, "timeframes", None) or {}
        if self.timeframe not in timeframes:
            raise ccxt.NotSupported(
                f"{ex.id} has no timeframe {self.timeframe!r}; it has {sorted(timeframes)}"
            )
        markets = ex.markets or {}
        missing = [s for s in self.symbols if s not in markets]
        if missing:
            raise ccxt.BadSymbol(f"{ex.id} has no market {', '.join(missing)}")
        limits = [self._market_page_limit(ex.market(s)) for s in self.symbols]
        known = [n for n in limits if n is not None]
        self._page_limit = min(known) if known else None

    def _market_page_limit(self, market: Mapping[str, Any]) -> int | None:
        """The per-call cap of fetchOHLCV for this market's type (ccxt's ``features``)."""
        features = getattr(self.exchange, "features", None) or {}
        node = features.get(market.get("type") or "spot") or {}
        if "fetchOHLCV" not in node:  # derivatives nest by settlement: linear / inverse
            sub = "linear" if market.get("linear") else "inverse" if market.get("inverse") else None
            node = (node.get(sub) or {}) if sub else {}
        limit = (node.get("fetchOHLCV") or {}).get("limit")
        return int(limit) if isinstance(limit, int | float) and limit > 0 else None

    async def _start_at_latest(self) -> None:
        """since_ms=None: start at the latest bar closed on every symbol's answer (the newest
        such bar across symbols), so the first slice is whole, and keep what was fetched."""
        now = self._now_ms()
        answers: dict[str, list[list[Any]]] = {}
        latest: list[int] = []
        for symbol in self.symbols:
            rows = await self._call(
                "fetch_ohlcv",
                symbol,
                self.exchange.fetch_ohlcv,
                symbol,
                self.timeframe,
                None,
                _LATEST_BARS,
            )
            answers[symbol] = rows
            opens = [item[0] for item in map(_parse_row, rows) if item is not None]
            closed = [ts for ts in opens if self._next_open(ts) + self.close_delay_ms <= now]
            if closed:
                latest.append(max(closed))
        if latest:
            self._floor = max(latest)
            self._floor_is_bar = True
        else:  # nothing closed yet anywhere: start with the bar forming now
            self._floor = now - self._tf_ms
        for symbol, rows in answers.items():
            self._ingest(symbol, rows, now)

    async def _run(self) -> None:
        try:
            while True:
                more = await self._poll_round()
                self._emit_ready()
                if not more:
                    await asyncio.sleep(self.poll_interval)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc, during="poll")
        finally:
            self._wake.set()

    async def _poll_round(self) -> bool:
        """One page for every symbol whose next bar should be closed. True when some symbol
        got a full page and is still behind (page on at once)."""
        more = False
        for symbol in self.symbols:
            now = self._now_ms()
            upcoming = self._upcoming(symbol)
            if upcoming is not None and self._next_open(upcoming) + self.close_delay_ms > now:
                continue  # its next bar is not closed yet: nothing to ask for
            cursor = self._cursor[symbol]
            since = self._next_open(cursor) if cursor is not None else self._floor
            rows = await self._call(
                "fetch_ohlcv",
                symbol,
                self.exchange.fetch_ohlcv,
                symbol,
                self.timeframe,
                since,
                self._page_limit,
            )
            now = self._now_ms()
            added = self._ingest(symbol, rows, now)
            full = self._page_limit is not None and len(rows) >= self._page_limit
            self._caught_up[symbol] = not (full and added)
            self._polled_at[symbol] = now
            if full and added:
                cursor = self._cursor[symbol]
                assert cursor is not None
                upcoming = self._next_open(cursor)
                more = more or self._next_open(upcoming) + self.close_delay_ms <= now
        return more

    def _ingest(self, symbol: str, rows: Sequence[Sequence[Any]], now: int) -> int:
        """Add the closed, new bars of one answer; returns how many were added."""
        parsed: list[tuple[int, BarTuple]] = []
        invalid = 0
        for row in rows:
            item = _parse_row(row)
            if item is None:
                invalid += 1
            else:
                parsed.append(item)
        if invalid:
            log.warning("ccxt_feed.invalid_rows", symbol=symbol, rows=invalid)
        parsed.sort(key=lambda item: item[0])  # stable: the first of duplicates stays first

        added = duplicates = late = 0
        floor = self._floor
        for ts, bar in parsed:
            cursor = self._cursor[symbol]
            if (cursor is not None and ts <= cursor) or (floor is not None and ts < floor):
                duplicates += 1  # repeated, out of order, already held, or before the start
                continue
            if self._next_open(ts) + self.close_delay_ms > now:
                self._forming[symbol] = ts
                break  # the still-forming candle (and anything after it)
            if self._last_emitted is not None and ts <= self._last_emitted:
                late += 1  # its timestamp went out without it (the symbol was stale)
                self._cursor[symbol] = ts
                continue
            expected = self._next_open(cursor) if cursor is not None else self._first_expected()
            if expected is not None and ts > expected:
                log.warning(
                    "ccxt_feed.gap",
                    exchange=self.exchange.id,
                    symbol=symbol,
                    timeframe=self.timeframe,
                    missing_from=_iso(expected),
                    missing_until=_iso(ts),
                    missing_from_ms=expected,
                    missing_until_ms=ts,
                    bars=max(1, (ts - expected) // self._tf_ms),
                )
            self._pending.setdefault(ts, {})[symbol] = bar
            self._cursor[symbol] = ts
            added += 1
        if duplicates:
            log.debug("ccxt_feed.dropped_rows", symbol=symbol, rows=duplicates)
        if late:
            log.warning("ccxt_feed.late_bars", symbol=symbol, bars=late)
        return added

    def _first_expected(self) -> int | None:
        """Open time of the first bar the feed expects (for gaps at the start)."""
        if self._floor is None:
            return None
        return self._floor if self._floor_is_bar else self._next_open(self._floor)

    def _reached(self, symbol: str) -> int | None:
        """The timestamp up to which the symbol has every bar it will have (None: no bound)."""
        cursor = self._cursor[symbol]
        forming = self._forming.get(symbol)
        if forming is not None and (cursor is None or forming > cursor):
            return forming - 1  # a later candle exists: nothing older is still to come
        return cursor

    def _upcoming(self, symbol: str) -> int | None:
        """Open time of the symbol's next bar, if known (None: the first, from the floor)."""
        cursor = self._cursor[symbol]
        forming = self._forming.get(symbol)
        if forming is not None and (cursor is None or forming > cursor):
            return forming
        return self._next_open(cursor) if cursor is not None else None

    def _frontier(self) -> int | None:
        """The latest timestamp every symbol has reached (stale symbols aside)."""
        reached: list[int] = []
        stale: set[str] = set()
        for symbol in self.symbols:
            if self._is_stale(symbol):
                stale.add(symbol)
                continue
            bound = self._reached(symbol)
            if bound is None:
                return None
            reached.append(bound)
        for symbol in stale - self._stale:
            log.warning("ccxt_feed.stale", symbol=symbol, stale_after_ms=self.stale_after_ms)
        for symbol in self._stale - stale:
            log.info("ccxt_feed.fresh", symbol=symbol)
        self._stale = stale
        if reached:
            return min(reached)
        known = [c for c in self._cursor.values() if c is not None]
        return max(known) if known else None

    def _is_stale(self, symbol: str) -> bool:
        """Whether the exchange, asked ``stale_after`` after the symbol's next bar should
        have closed, still had no such bar."""
        if self.stale_after_ms is None or not self._caught_up[symbol]:
            return False
        polled = self._polled_at.get(symbol)
        expected = self._upcoming(symbol)
        if expected is None:
            expected = self._first_expected()
        if polled is None or expected is None:
            return False
        return polled >= self._next_open(expected) + self.stale_after_ms

    def _emit_ready(self) -> None:
        frontier = self._frontier()
        if frontier is None or not self._pending:
            return
        ready = sorted(ts for ts in self._pending if ts <= frontier)
        for ts in ready:
            bars = self._pending.pop(ts)
            ordered = {s: bars[s] for s in self.symbols if s in bars}
            self._queue.append(BarSlice(self._index, _EPOCH + ts * _MS, ordered))
            self._index += 1
            self._last_emitted = ts
        if ready:
            self._wake.set()

    # -- errors --------------------------------------------------------------------------------

    async def _call(
        self, what: str, symbol: str | None, fn: Callable[..., Awaitable[Any]], *args: Any
    ) -> Any:
        """``await fn(*args)``, retrying transient errors with jittered exponential backoff."""
        attempt = 0
        while True:
            try:
                return await fn(*args)
            except Exception as exc:
                if not is_retryable(exc) or (
                    self.max_retries is not None and attempt >= self.max_retries
                ):
                    raise
                delay = min(self.retry_max, self.retry_base * 2**attempt)
                delay *= 0.5 + random.random() / 2  # jitter: many feeds do not retry in step
                attempt += 1
                log.warning(
                    "ccxt_feed.retry",
                    exchange=self.exchange.id,
                    call=what,
                    symbol=symbol,
                    attempt=attempt,
                    delay_s=round(delay, 3),
                    error=type(exc).__name__,
                    detail=_redact(str(exc)),
                )
                await asyncio.sleep(delay)

    def _fail(self, exc: BaseException, during: str) -> None:
        if self.error is None:
            self.error = exc
        log.error(
            "ccxt_feed.failed",
            exchange=self.exchange.id,
            during=during,
            error=type(exc).__name__,
            detail=_redact(str(exc)),
        )
        self._wake.set()

    async def _drain_throttler(self) -> None:
        """Let ccxt's rate limiter finish with requests cancelled in its queue, so that no
        task of it outlives the feed."""
        throttler = getattr(self.exchange, "throttler", None)
        deadline = time.monotonic() + _THROTTLER_DRAIN_S
        while getattr(throttler, "running", False) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_row(row: Any) -> tuple[int, BarTuple] | None:
    """``[ts, o, h, l, c, v]`` from ccxt as ``(ts, (o, h, l, c, v))``; None if unusable.

    Prices must be finite numbers; a missing volume becomes NaN (no volume known).
    """
    if not isinstance(row, list | tuple) or len(row) < 6 or not _is_int(row[0]) or row[0] < 0:
        return None
    values: list[float] = []
    for value in row[1:6]:
        if value is None:
            values.append(math.nan)
            continue
        try:
            values.append(float(value))
        except (TypeError, ValueError):
            return None
    o, h, low, c, v = values
    if not all(math.isfinite(x) for x in (o, h, low, c)):
        return None
    return int(row[0]), (o, h, low, c, v)


# -- exchange factory ---------------------------------------------------------------------------


def make_exchange(
    exchange_id: str, api_urls: Mapping[str, str] | None = None, **config: Any
) -> ccxt_async.Exchange:
    """A ``ccxt.async_support`` exchange with the rate limiter on (unless ``config`` turns it
    off explicitly), for public market data (no keys needed).

    ``api_urls`` rewrites the entries of ``exchange.urls['api']`` to other bases (tests,
    self-hosted gateways); each value is a base (``http://host:port`` or with a path prefix) that
    replaces an entry's scheme and host, keeping its path. A key is one of:

    - ``"*"``: every entry;
    - an origin (``"https://api.binance.com"``): the entries on that origin;
    - an entry's name (``"public"``): that entry (all of it when nested).

    The most specific key wins. ``config`` goes to the exchange's constructor (``options``,
    ``timeout``, ...); its values are never logged.
    """
    if exchange_id not in ccxt_async.exchanges:
        raise ValueError(f"unknown ccxt exchange {exchange_id!r}")
    exchange_class = getattr(ccxt_async, exchange_id)
    exchange = exchange_class({"enableRateLimit": True, **config})
    if api_urls:
        _rewrite_api_urls(exchange, api_urls)
    return exchange


def _rewrite_api_urls(exchange: Any, api_urls: Mapping[str, str]) -> None:
    bases: dict[str, str] = {}  # normalized key -> base
    given: dict[str, str] = {}  # normalized key -> key as given (for errors)
    for key, base in api_urls.items():
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ValueError(f"api_urls[{key!r}] is not an http(s) base URL")
        norm = key.rstrip("/") if _ORIGIN.match(key) else key
        bases[norm] = base.rstrip("/")
        given[norm] = key
    used: set[str] = set()

    def rewrite(value: Any, name: str | None) -> Any:
        if isinstance(value, Mapping):
            return {k: rewrite(v, name) for k, v in value.items()}
        if not isinstance(value, str):
            return value
        parts = urlsplit(value)
        origin = f"{parts.scheme}://{parts.netloc}"
        for key in (name, origin, "*"):
            if key is not None and key in bases:
                used.add(key)
                return bases[key] + value[len(origin) :]
        return value

    api = exchange.urls.get("api")
    if isinstance(api, Mapping):
        exchange.urls["api"] = {name: rewrite(value, name) for name, value in api.items()}
    else:
        exchange.urls["api"] = rewrite(api, None)
    unused = sorted(given[k] for k in set(bases) - used)
    if unused:
        raise ValueError(f"api_urls keys match no entry of {exchange.id}'s urls['api']: {unused}")
