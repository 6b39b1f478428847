"""Historical OHLCV download through ccxt into the Parquet cache (``raytrader data download``).

``download_ohlcv`` asks the exchange only for the parts of the range the cache does not cover
(so a download that stopped half-way resumes where it stopped), pages through ``fetch_ohlcv``
(``limit`` bars a page, each page starting after the last bar received), waits for ccxt's rate
limiter between requests, retries transient errors (network, HTTP 429, 5xx) with exponential
backoff a bounded number of times, and writes every page to the cache as it arrives. The report
names the duplicates dropped and the gaps left in the range.

ccxt itself is reached through ``raytrader.data.ccxt_feed`` (the one adapter of this package that
imports it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pandas as pd
import structlog

from raytrader.data.bar_checks import Duplicate, Gap, Timeframe, find_gaps, iso_ms, parse_rows
from raytrader.data.ccxt_feed import _redact, is_retryable, make_exchange
from raytrader.data.ohlcv_cache import Interval, OhlcvCache, SeriesKey

__all__ = [
    "DownloadFailed",
    "DownloadInputError",
    "DownloadReport",
    "RetryPolicy",
    "download_ohlcv",
    "open_exchange",
]

log = structlog.get_logger("raytrader.data.download")

_DETAIL_LIMIT: Final = 300
Progress = Callable[[int, int], None]


class DownloadInputError(ValueError):
    """Bad input to a download (exchange, symbol, timeframe, range), named in the message."""


class DownloadFailed(RuntimeError):
    """The exchange kept failing (or refused); what was downloaded before stays cached, and the
    same download run again resumes after it. ``report`` is the partial report."""

    def __init__(self, message: str, report: DownloadReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class RetryPolicy:
    """Transient errors are retried after ``base``, 2 x ``base``, ... (at most ``max_delay``)
    seconds, ``attempts`` tries in all per request."""

    attempts: int = 5
    base: float = 1.0
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"retry attempts must be >= 1, got {self.attempts}")
        if not 0 < self.base <= self.max_delay:
            raise ValueError(f"need 0 < base <= max_delay, got {self.base}, {self.max_delay}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        return float(min(self.max_delay, self.base * 2 ** (attempt - 1)))


@dataclass
class DownloadReport:
    """What a download did and found in ``[start_ms, end_ms)`` (``end_ms`` is clipped to the
    bars closed by now: the forming bar is never cached)."""

    key: SeriesKey
    start_ms: int
    end_ms: int
    bars: int = 0  # bars of the range in the cache now
    fetched: int = 0  # new bars this run wrote
    requests: int = 0  # fetch_ohlcv pages answered
    retries: int = 0
    cached: list[Interval] = field(default_factory=list)  # parts already cached (not asked)
    duplicates: list[Duplicate] = field(default_factory=list)
    invalid_rows: int = 0
    gaps: list[Gap] = field(default_factory=list)

    @property
    def missing_bars(self) -> int:
        return sum(g.bars for g in self.gaps)


def open_exchange(exchange_id: str, api_url: str | None = None, **config: Any) -> Any:
    """A ccxt (async) exchange for public data, rate limiter on; ``api_url`` points every API
    entry at another base (a gateway, a mirror, a test server)."""
    try:
        return make_exchange(
            exchange_id, api_urls={"*": api_url.rstrip("/")} if api_url else None, **config
        )
    except ValueError as exc:
        raise DownloadInputError(str(exc)) from None


def _detail(exc: BaseException) -> str:
    """An exchange's error message fit for logs and errors: one line, bounded, no credentials
    embedded in URLs."""
    return _redact(str(exc).replace("\n", " "), _DETAIL_LIMIT)


async def download_ohlcv(
    exchange: Any,
    cache: OhlcvCache,
    symbol: str,
    timeframe: str,
    since_ms: int,
    until_ms: int | None = None,
    *,
    page_limit: int | None = None,
    retry: RetryPolicy | None = None,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
) -> DownloadReport:
    """Download ``symbol``'s ``timeframe`` bars opening in ``[since_ms, until_ms)`` (None: up to
    now) into ``cache`` and report on the range.

    ``page_limit``: bars per request (default: the exchange's cap from ccxt's ``features``).
    ``progress(done, total)`` is called with bar counts as pages arrive. ``clock``: wall-clock
    seconds (which bars are closed). Raises ``DownloadInputError`` for bad input (before any
    request when it can) and ``DownloadFailed`` when the exchange keeps failing.
    """
    retry = retry or RetryPolicy()
    tf = _check_input(exchange, timeframe, since_ms, until_ms, page_limit)
    key = SeriesKey(exchange.id, symbol, timeframe)
    # Only bars surely closed: anything opening less than one bar length ago may still form.
    horizon = int(clock() * 1000) - tf.max_ms
    end_ms = horizon if until_ms is None else min(until_ms, horizon)
    report = DownloadReport(key, since_ms, max(since_ms, end_ms))
    todo = cache.missing(key, since_ms, end_ms) if end_ms > since_ms else []
    report.cached = _complement(since_ms, end_ms, todo)

    total = sum(tf.bars_between(a, b) for a, b in todo)
    done = 0
    if progress is not None:
        progress(0, total)
    if todo:
        if not getattr(exchange, "enableRateLimit", True):
            log.warning("download.rate_limit_off", exchange=exchange.id)
        await _call(exchange, report, retry, "load_markets", exchange.load_markets)
        market_limit = _page_limit(exchange, symbol)  # raises for an unknown symbol
        limit = page_limit or market_limit
        for start, end in todo:
            cursor = start
            while cursor < end:
                rows = await _call(
                    exchange,
                    report,
                    retry,
                    "fetch_ohlcv",
                    exchange.fetch_ohlcv,
                    symbol,
                    timeframe,
                    cursor,
                    limit,
                    {"until": end - 1},
                )
                report.requests += 1
                bars, duplicates, invalid = parse_rows(rows)
                report.duplicates += duplicates
                report.invalid_rows += invalid
                fresh = [b for b in bars if cursor <= b[0] < end]
                if not fresh:  # nothing more up to ``end``: the rest is a gap
                    cache.add_coverage(key, cursor, end)
                    done += tf.bars_between(cursor, end)
                    cursor = end
                else:
                    nxt = min(end, tf.step(fresh[-1][0]))
                    cache.write(key, fresh)
                    cache.add_coverage(key, cursor, nxt)
                    report.fetched += len(fresh)
                    done += tf.bars_between(cursor, nxt)
                    cursor = nxt
                if progress is not None:
                    progress(min(done, total), total)
    _finish(cache, report, tf)
    log.info(
        "download.done",
        series=str(key),
        start=iso_ms(report.start_ms),
        end=iso_ms(report.end_ms),
        bars=report.bars,
        fetched=report.fetched,
        requests=report.requests,
        duplicates=len(report.duplicates),
        gaps=len(report.gaps),
    )
    return report


def _check_input(
    exchange: Any, timeframe: str, since_ms: int, until_ms: int | None, page_limit: int | None
) -> Timeframe:
    try:
        tf = Timeframe.parse(timeframe)
    except ValueError as exc:
        raise DownloadInputError(str(exc)) from None
    timeframes: Mapping[str, Any] = getattr(exchange, "timeframes", None) or {}
    if not exchange.has.get("fetchOHLCV"):
        raise DownloadInputError(f"{exchange.id} has no fetchOHLCV: it cannot serve bars")
    if timeframe not in timeframes:
        raise DownloadInputError(
            f"{exchange.id} has no timeframe {timeframe!r}; it has {', '.join(timeframes)}"
        )
    if since_ms < 0:
        raise DownloadInputError(f"since {since_ms} is before 1970")
    if until_ms is not None and until_ms <= since_ms:
        raise DownloadInputError(f"since {iso_ms(since_ms)} is not before until {iso_ms(until_ms)}")
    if page_limit is not None and page_limit < 1:
        raise DownloadInputError(f"page_limit must be >= 1, got {page_limit}")
    return tf


def _page_limit(exchange: Any, symbol: str) -> int | None:
    """The exchange's per-request cap for this market (ccxt ``features``), if it names one;
    raises ``DownloadInputError`` for a symbol the exchange lacks."""
    markets = exchange.markets or {}
    if symbol not in markets:
        raise DownloadInputError(f"{exchange.id} has no market {symbol!r}")
    market = markets[symbol]
    features = getattr(exchange, "features", None) or {}
    node = features.get(market.get("type") or "spot") or {}
    if "fetchOHLCV" not in node:  # derivatives nest by settlement
        sub = "linear" if market.get("linear") else "inverse" if market.get("inverse") else None
        node = (node.get(sub) or {}) if sub else {}
    limit = (node.get("fetchOHLCV") or {}).get("limit")
    return int(limit) if isinstance(limit, int | float) and limit > 0 else None


def _complement(start: int, end: int, todo: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    cursor = start
    for a, b in todo:
        if a > cursor:
            out.append((cursor, a))
        cursor = b
    if cursor < end:
        out.append((cursor, end))
    return out


def _finish(cache: OhlcvCache, report: DownloadReport, tf: Timeframe) -> None:
    """Count the range's bars and find its gaps (covered parts only)."""
    if report.end_ms <= report.start_ms:
        return
    frame = cache.bars(report.key, report.start_ms, report.end_ms)
    report.bars = len(frame)
    ts = pd.DatetimeIndex(frame.index).asi8 // 1_000_000
    covered = [
        (max(a, report.start_ms), min(b, report.end_ms))
        for a, b in cache.coverage(report.key)
        if b > report.start_ms and a < report.end_ms
    ]
    report.gaps = [gap for a, b in covered for gap in find_gaps(ts[(ts >= a) & (ts < b)], a, b, tf)]


async def _call(
    exchange: Any,
    report: DownloadReport,
    retry: RetryPolicy,
    what: str,
    fn: Callable[..., Awaitable[Any]],
    *args: Any,
) -> Any:
    """``await fn(*args)``; transient errors are retried per ``retry``, and any error left
    becomes ``DownloadFailed`` naming the call, the error class and the exchange's message."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn(*args)
        except Exception as exc:
            transient = is_retryable(exc)
            if not transient or attempt >= retry.attempts:
                tries = f" after {attempt} attempts" if transient else ""
                raise DownloadFailed(
                    f"{exchange.id} {what} failed{tries}: {type(exc).__name__}: {_detail(exc)}; "
                    f"{report.fetched} new bars are cached, run the same download again to "
                    "resume",
                    report,
                ) from exc
            delay = retry.delay(attempt)
            report.retries += 1
            log.warning(
                "download.retry",
                exchange=exchange.id,
                call=what,
                attempt=attempt,
                delay_s=delay,
                error=type(exc).__name__,
                detail=_detail(exc),
            )
            await asyncio.sleep(delay)
