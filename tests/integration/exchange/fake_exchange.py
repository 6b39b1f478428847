"""A local server speaking Binance spot's REST format for trading: markets, depth, account,
orders (create, fetch by id or client id, cancel, open orders), with scripted faults.

Real ccxt talks to it over HTTP; only the internet is replaced. The order book is static (a
test sets it), market and marketable limit orders fill against it at once, the rest rests
until ``fill_resting`` fills it (the exchange acting while the orchestrator is down).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.integration.local_json_server import JSONHandler, LocalJSONServer, binance_market

# A fault of one request: (status, json body) answers without acting; the strings act first:
# "slow" answers after ``slow_seconds`` (the client times out), "malformed" answers broken
# JSON, "drop" hangs up before acting.
Fault = str | tuple[int, Any]

INSUFFICIENT = {"code": -2010, "msg": "Account has insufficient balance for requested action."}


_FILTERS = [
    {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
    {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "9000", "stepSize": "0.001"},
    {"filterType": "NOTIONAL", "minNotional": "10", "applyMinToMarket": True,
     "maxNotional": "9000000", "applyMaxToMarket": False, "avgPriceMins": 5},
]  # fmt: skip


@dataclass
class FakeOrder:
    order_id: int
    client_id: str
    symbol: str
    side: str
    type: str
    qty: float
    price: float | None
    tif: str
    time_ms: int
    status: str = "NEW"
    executed: float = 0.0
    quote: float = 0.0
    fills: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_id,
            "transactTime": self.time_ms,
            "time": self.time_ms,
            "updateTime": self.time_ms,
            "price": f"{self.price or 0.0:.8f}",
            "origQty": f"{self.qty:.8f}",
            "executedQty": f"{self.executed:.8f}",
            "cummulativeQuoteQty": f"{self.quote:.8f}",
            "status": self.status,
            "timeInForce": self.tif,
            "type": self.type,
            "side": self.side,
            "isWorking": True,
            "fills": list(self.fills),
        }


class FakeExchange(LocalJSONServer):
    """One venue. ``asks``/``bids``: (price, size) levels, best first, of ``BTCUSDT``."""

    def __init__(self, api_key: str = "test-key", fee: float = 0.001) -> None:
        super().__init__(_Handler)
        self.api_key = api_key
        self.fee = fee
        self.asks: list[tuple[float, float]] = [(100.0, 5.0), (101.0, 5.0)]
        self.bids: list[tuple[float, float]] = [(99.0, 5.0), (98.0, 5.0)]
        self.balances: dict[str, float] = {"USDT": 100_000.0, "BTC": 10.0}
        self.orders: list[FakeOrder] = []
        self.faults: dict[str, list[Fault]] = {}  # "METHOD endpoint" -> queued faults
        self.slow_seconds = 1.0
        self.requests: list[tuple[str, str, dict[str, str], str]] = []  # method, endpoint, q, key
        # When a test sets a list, each request is appended to it as it arrives, so the test
        # can order it among its own events (e.g. journal writes).
        self.trace: list[tuple[str, ...]] | None = None
        # Candles of ``klines`` (1-second bars up to the wall clock): the price at a time in ms.
        self.kline_price: Callable[[int], float] = lambda ts_ms: 100.0

    def fault(self, route: str, *faults: Fault) -> None:
        with self.lock:
            self.faults.setdefault(route, []).extend(faults)

    def orders_by_client_id(self, client_id: str) -> list[FakeOrder]:
        with self.lock:
            return [o for o in self.orders if o.client_id == client_id]

    def order_requests(self) -> list[tuple[str, str, dict[str, str], str]]:
        """Every request that places, fetches or cancels an order (paper mode sends none)."""
        with self.lock:
            return [r for r in self.requests if r[1] in ("order", "openOrders")]

    def fill_resting(self, client_id: str) -> None:
        """Fill the rest of a resting order at its limit (as if the market moved)."""
        with self.lock:
            (o,) = [o for o in self.orders if o.client_id == client_id]
            assert o.status in ("NEW", "PARTIALLY_FILLED") and o.price is not None
            self._fill(o, o.qty - o.executed, o.price)

    # -- matching (under the lock) ---------------------------------------------------------

    def _fill(self, o: FakeOrder, qty: float, price: float) -> None:
        base, quote = o.symbol[:-4], o.symbol[-4:]
        cost = qty * price
        fee = cost * self.fee
        sign = 1.0 if o.side == "BUY" else -1.0
        self.balances[base] = self.balances.get(base, 0.0) + sign * qty
        self.balances[quote] = self.balances.get(quote, 0.0) - sign * cost - fee
        o.executed += qty
        o.quote += cost
        o.status = "FILLED" if o.executed >= o.qty - 1e-12 else "PARTIALLY_FILLED"
        trade = len(o.fills) + 1
        o.fills.append(
            {"price": f"{price:.8f}", "qty": f"{qty:.8f}", "commission": f"{fee:.8f}",
             "commissionAsset": quote, "tradeId": o.order_id * 100 + trade}
        )  # fmt: skip

    def _create(self, q: dict[str, str]) -> tuple[int, Any]:
        client_id = q.get("newClientOrderId", "")
        if any(o.client_id == client_id for o in self.orders):
            return 400, {"code": -2010, "msg": "Duplicate order sent."}
        side, kind = q["side"], q["type"]
        qty = float(q["quantity"])
        price = float(q["price"]) if "price" in q else None
        levels = self.asks if side == "BUY" else self.bids
        takeable = [
            (p, s)
            for p, s in levels
            if price is None or (p <= price if side == "BUY" else p >= price)
        ]
        # Funds check: what the order could take from the book, or its limit value.
        if side == "BUY":
            need = qty * (price if price is not None else levels[-1][0]) * (1 + self.fee)
            if self.balances.get(q["symbol"][-4:], 0.0) < need:
                return 400, INSUFFICIENT
        elif self.balances.get(q["symbol"][:-4], 0.0) < qty:
            return 400, INSUFFICIENT
        o = FakeOrder(
            order_id=len(self.orders) + 1,
            client_id=client_id,
            symbol=q["symbol"],
            side=side,
            type=kind,
            qty=qty,
            price=price,
            tif=q.get("timeInForce", "GTC"),
            time_ms=int(time.time() * 1000),
        )
        self.orders.append(o)
        for p, s in takeable:
            left = o.qty - o.executed
            if left <= 1e-12:
                break
            self._fill(o, min(s, left), p)
        if o.status != "FILLED" and (kind == "MARKET" or o.tif == "IOC"):
            o.status = "EXPIRED"
        return 200, o.as_json()

    def _klines(self, q: dict[str, str]) -> list[list[Any]]:
        """Closed and current 1-second candles from ``startTime`` (Binance's row format)."""
        now = int(time.time() * 1000)
        start = int(q.get("startTime", now - 500_000)) // 1000 * 1000
        limit = min(int(q.get("limit", 500)), 1000)
        rows: list[list[Any]] = []
        for ts in range(start, now + 1, 1000)[:limit]:
            o, c = self.kline_price(ts), self.kline_price(ts + 1000)
            hi, lo = max(o, c) + 0.2, min(o, c) - 0.2
            rows.append(
                [ts, str(o), str(hi), str(lo), str(c), "5", ts + 999, "0", 1, "0", "0", "0"]
            )
        return rows

    def _find(self, q: dict[str, str]) -> FakeOrder | None:
        for o in self.orders:
            if ("origClientOrderId" in q and o.client_id == q["origClientOrderId"]) or (
                "orderId" in q and str(o.order_id) == q["orderId"]
            ):
                return o
        return None

    def route(self, method: str, endpoint: str, q: dict[str, str]) -> tuple[int, Any]:
        if endpoint == "exchangeInfo":
            return 200, {
                "timezone": "UTC",
                "serverTime": int(time.time() * 1000),
                "symbols": [binance_market("BTC", "USDT", _FILTERS)],
            }
        if endpoint == "depth":
            return 200, {
                "lastUpdateId": 1,
                "bids": [[f"{p}", f"{s}"] for p, s in self.bids],
                "asks": [[f"{p}", f"{s}"] for p, s in self.asks],
            }
        if endpoint == "klines":
            return 200, self._klines(q)
        if endpoint == "account":
            return 200, {
                "accountType": "SPOT",
                "canTrade": True,
                "updateTime": int(time.time() * 1000),
                "balances": [
                    {"asset": a, "free": f"{v:.8f}", "locked": "0.00000000"}
                    for a, v in self.balances.items()
                ],
            }
        if endpoint == "order" and method == "POST":
            return self._create(q)
        if endpoint == "order" and method == "GET":
            o = self._find(q)
            if o is None:
                return 400, {"code": -2013, "msg": "Order does not exist."}
            return 200, o.as_json()
        if endpoint == "order" and method == "DELETE":
            o = self._find(q)
            if o is None or o.status not in ("NEW", "PARTIALLY_FILLED"):
                return 400, {"code": -2011, "msg": "Unknown order sent."}
            o.status = "CANCELED"
            return 200, o.as_json()
        if endpoint == "openOrders":
            return 200, [
                o.as_json()
                for o in self.orders
                if o.status in ("NEW", "PARTIALLY_FILLED") and q.get("symbol") in (None, o.symbol)
            ]
        return 404, {"code": -1, "msg": f"no {method} {endpoint} here"}


_PRIVATE = frozenset({"account", "order", "openOrders"})


class _Handler(JSONHandler):
    server: FakeExchange
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        srv = self.server
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        q.update({k: v[0] for k, v in parse_qs(body).items()})
        endpoint = parts.path.rsplit("/", 1)[-1]
        key = self.headers.get("X-MBX-APIKEY", "")
        with srv.lock:
            srv.requests.append((method, endpoint, q, key))
            if srv.trace is not None:
                srv.trace.append(("request", method, endpoint, q.get("newClientOrderId", "")))
            queue = srv.faults.get(f"{method} {endpoint}")
            fault = queue.pop(0) if queue else None
        if fault == "drop":
            self.close_connection = True
            return
        if isinstance(fault, tuple):
            self._send(*fault)
            return
        if endpoint in _PRIVATE and key != srv.api_key:
            # A real exchange would not echo the key; this one does, to prove it never leaks.
            msg = f"Invalid API-key, IP, or permissions for action. (key {key})"
            self._send(401, {"code": -2015, "msg": msg})
            return
        with srv.lock:
            status, answer = srv.route(method, endpoint, q)
        if fault == "slow":
            time.sleep(srv.slow_seconds)
        if fault == "malformed":
            self._raw(200, b'{"symbol": "BTCUSDT", "orderId": ')
            return
        self._send(status, answer)


@contextmanager
def running(**kwargs: Any) -> Iterator[FakeExchange]:
    srv = FakeExchange(**kwargs)
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
