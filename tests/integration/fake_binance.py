"""A local server speaking Binance spot's public REST format, for real ccxt to talk to.

``FakeBinance`` is a ``ThreadingHTTPServer`` on 127.0.0.1 serving ``GET /api/v3/exchangeInfo``
and ``GET /api/v3/klines`` (``symbol``, ``interval``, ``startTime``, ``endTime``, ``limit`` as
Binance reads them) from in-memory series that start at ``origin`` and run to a simulated
clock's now (the last candle still forming). Tests script faults per endpoint, missing bars,
duplicated rows, and read the request log (every request, any method, with its arrival time).
"""

from __future__ import annotations

import random
import re
import time
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from tests.integration.local_json_server import JSONHandler, LocalJSONServer, binance_market

TF = 60_000  # 1m bars
T0 = 1_700_000_040_000  # a minute boundary (ms): the default series origin
BASE_PRICE = {"BTCUSDT": 100.0, "ETHUSDT": 10.0}
# A fault: "drop" (hang up without answering), "trunc" (send part of a body), a (status, JSON
# body) answer, or None (answer normally: lets a script fail the n-th request only).
Fault = str | tuple[int, Any] | None
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def interval_ms(interval: str) -> int:
    match = re.fullmatch(r"(\d+)([smhdw])", interval)
    if match is None:
        raise ValueError(f"interval {interval!r} is not served here")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def final_bar(
    market_id: str, ts: int, tf: int = TF, origin: int = T0
) -> tuple[float, float, float, float, float]:
    """The bar of a closed candle (what a client must keep)."""
    k = (ts - origin) // tf
    o = BASE_PRICE[market_id] + k
    return (o, o + 2.0, o - 1.0, o + 1.0, 10.0 + k)


def forming_bar(
    market_id: str, ts: int, tf: int = TF, origin: int = T0
) -> tuple[float, float, float, float, float]:
    """The same candle while it still forms (must never be kept)."""
    o = final_bar(market_id, ts, tf, origin)[0]
    return (o, o + 0.5, o - 0.5, o + 0.25, 0.5)


class SimClock:
    """Wall-clock seconds that only the test moves (shared by the client and the server)."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000

    def set_minutes(self, minutes: float) -> None:
        self.ms = T0 + round(minutes * TF)


class Request(NamedTuple):
    time: float  # time.monotonic() at arrival
    method: str
    path: str
    query: dict[str, str]


class FakeBinance(LocalJSONServer):
    """Binance spot's exchangeInfo and klines over series from ``origin`` to the clock's now.

    - ``missing[market_id]``: open times with no candle (gaps);
    - ``duplicates[market_id][ts]``: the candle at ``ts`` is sent twice in a row, with equal
      values (True) or a different close (False);
    - ``faults[endpoint]``: one fault popped per request to that endpoint;
    - ``invalid``: market ids answered with Binance's "Invalid symbol.";
    - ``messy``: rows shuffled, plus copies with bogus values after the genuine rows;
    - ``delay``: seconds before answering klines;
    - ``overlap``: how many bars before ``startTime`` an answer starts with;
    - ``max_limit``: the most rows one klines answer holds (Binance spot: 1000).

    Any POST, PUT or DELETE (an order) is logged and refused.
    """

    def __init__(self, clock: SimClock, origin: int = T0, max_limit: int = 1000) -> None:
        super().__init__(_Handler)
        self.clock = clock
        self.origin = origin
        self.max_limit = max_limit
        self.missing: dict[str, set[int]] = {m: set() for m in BASE_PRICE}
        self.duplicates: dict[str, dict[int, bool]] = {m: {} for m in BASE_PRICE}
        self.faults: dict[str, list[Fault]] = {"exchangeInfo": [], "klines": []}
        self.invalid: set[str] = set()
        self.messy = False
        self.delay = 0.0
        self.overlap = 0  # bars before startTime sent too (exchanges that repeat the last one)
        self.requests: list[Request] = []
        self.served: list[tuple[str, int]] = []  # (market id, rows) of every klines answer

    def klines_requests(self, market_id: str | None = None) -> list[dict[str, str]]:
        with self.lock:
            return [
                r.query
                for r in self.requests
                if r.path.endswith("/klines") and market_id in (None, r.query.get("symbol"))
            ]

    def request_count(self) -> int:
        with self.lock:
            return len(self.requests)

    def klines(self, q: dict[str, str]) -> list[list[Any]]:
        market_id = q["symbol"]
        tf = interval_ms(q.get("interval", "1m"))
        now = self.clock.ms
        origin = self.origin
        first = max(origin, int(q.get("startTime", origin)))
        first += -(first - origin) % tf
        first = max(origin, first - self.overlap * tf)
        last = min(now, int(q.get("endTime", now)))
        limit = min(int(q.get("limit", 500)), self.max_limit)
        all_ts = [ts for ts in range(origin, last + 1, tf) if ts not in self.missing[market_id]]
        chosen = (
            [ts for ts in all_ts if ts >= first][:limit] if "startTime" in q else all_ts[-limit:]
        )
        rows = []
        dupes = self.duplicates[market_id]
        for ts in chosen:
            closed = ts + tf <= now
            bar = (
                final_bar(market_id, ts, tf, origin)
                if closed
                else forming_bar(market_id, ts, tf, origin)
            )
            row = [ts, *map(str, bar), ts + tf - 1, "0", 1, "0", "0", "0"]
            rows.append(row)
            if ts in dupes:
                copy = list(row)
                if not dupes[ts]:
                    copy[4] = str(bar[3] + 0.5)
                rows.append(copy)
        if self.messy and rows:
            rng = random.Random(len(self.requests))
            rng.shuffle(rows)
            for row in rng.sample(rows, min(3, len(rows))):  # duplicates after the genuine rows
                rows.append([row[0], "999", "999", "999", "999", "999", *row[6:]])
        return rows


class _Handler(JSONHandler):
    server: FakeBinance

    def _log(self, method: str) -> tuple[str, dict[str, str]]:
        parts = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self.server.lock:
            self.server.requests.append(Request(time.monotonic(), method, parts.path, q))
        return parts.path, q

    def do_POST(self) -> None:  # orders and other private calls: never served here
        self._log(self.command)
        self._send(401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})

    do_PUT = do_POST
    do_DELETE = do_POST

    def do_GET(self) -> None:
        srv = self.server
        path, q = self._log("GET")
        endpoint = path.rsplit("/", 1)[-1]
        with srv.lock:
            queue = srv.faults.get(endpoint)
            fault = queue.pop(0) if queue else None
        if fault == "drop":  # hang up without an answer
            self.close_connection = True
            return
        if fault == "trunc":  # promise a body, send part of it, hang up
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"[[17")
            self.close_connection = True
            return
        if isinstance(fault, tuple):
            self._send(*fault)
            return
        if endpoint == "exchangeInfo":
            # Spot markets only: the derivatives APIs (fapi, dapi) list none.
            markets = MARKETS if path.startswith("/api/v3/") else []
            self._send(200, {"timezone": "UTC", "serverTime": srv.clock.ms, "symbols": markets})
        elif endpoint == "klines":
            if srv.delay:
                time.sleep(srv.delay)
            if q.get("symbol") in srv.invalid or q.get("symbol") not in srv.missing:
                self._send(400, {"code": -1121, "msg": "Invalid symbol."})
                return
            rows = srv.klines(q)
            with srv.lock:
                srv.served.append((q["symbol"], len(rows)))
            self._send(200, rows)
        else:
            self._send(404, {"code": -1, "msg": "not here"})


MARKETS = [binance_market("BTC", "USDT", []), binance_market("ETH", "USDT", [])]
SYMBOLS = ("BTC/USDT", "ETH/USDT")
