"""A paper session on live bars polled through real ccxt from a Binance-format server.

The server makes 1-second candles from the wall clock (a zig-zag price, so an SMA crossover
trades), like an exchange would. The session must trade on them through the paper broker and
never send the exchange an order.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from raytrader.orchestrator.config import SessionConfig
from raytrader.orchestrator.sessions import SessionManager

pytestmark = pytest.mark.asyncio

TF_MS = 1000


def price(ts_ms: int) -> float:
    # A 16-second zig-zag: fast and slow averages cross every few seconds.
    phase = (ts_ms // TF_MS) % 16
    return 100.0 + (phase if phase < 8 else 16 - phase) * 1.5 + math.sin(ts_ms / 7000.0)


class LiveBinance(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: LiveBinance

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, body: Any, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # an order: must never happen in paper mode
        with self.server.lock:
            self.server.requests.append(("POST", self.path))
        self._send({"code": -2015, "msg": "paper sessions must not trade"}, 401)

    do_PUT = do_POST
    do_DELETE = do_POST

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self.server.lock:
            self.server.requests.append(("GET", parts.path))
        endpoint = parts.path.rsplit("/", 1)[-1]
        if endpoint == "exchangeInfo":
            self._send(
                {"timezone": "UTC", "serverTime": int(time.time() * 1000), "symbols": [MARKET]}
            )
        elif endpoint == "klines":
            now = int(time.time() * 1000)
            start = int(q.get("startTime", now - 500 * TF_MS)) // TF_MS * TF_MS
            limit = min(int(q.get("limit", 500)), 1000)
            rows = []
            for ts in range(start, now + 1, TF_MS)[:limit]:
                o, c = price(ts), price(ts + TF_MS)
                rows.append(
                    [
                        ts,
                        str(o),
                        str(max(o, c) + 0.2),
                        str(min(o, c) - 0.2),
                        str(c),
                        "5",
                        ts + TF_MS - 1,
                        "0",
                        1,
                        "0",
                        "0",
                        "0",
                    ]
                )
            self._send(rows)
        else:
            self._send({"code": -1, "msg": "not here"}, 404)


MARKET = {
    "symbol": "BTCUSDT",
    "status": "TRADING",
    "baseAsset": "BTC",
    "quoteAsset": "USDT",
    "baseAssetPrecision": 8,
    "quoteAssetPrecision": 8,
    "isSpotTradingAllowed": True,
    "orderTypes": ["LIMIT", "MARKET"],
    "permissions": ["SPOT"],
    "filters": [],
}


@pytest.fixture
def exchange() -> Iterator[LiveBinance]:
    srv = LiveBinance()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


async def test_paper_session_trades_live_bars_and_sends_no_order(
    manager: SessionManager, exchange: LiveBinance
) -> None:
    config = SessionConfig.model_validate(
        {
            "name": "live-paper",
            "symbols": ["BTC/USDT"],
            "timeframe": "1s",
            "agents": [{"name": "sma_cross", "params": {"fast": 2, "slow": 5}}],
            "initial_cash": 10_000,
            "broker": {"commission": {"bps": 10}},
            "portfolio": {"lot_size": 0.001},
            "feed": {
                "kind": "ccxt",
                "exchange": "binance",
                "api_url": exchange.base,
                "poll_interval": 0.2,
            },
        }
    )
    sid = await manager.start(config)
    run = manager.runs[sid]
    deadline = time.monotonic() + 40
    while run.fills < 2:
        assert time.monotonic() < deadline, f"no fills yet ({run.status}, {run.reason})"
        assert run.status in ("starting", "running"), run.reason
        await asyncio.sleep(0.2)
    await manager.stop(sid)
    assert await manager.wait(sid, timeout=30) == "stopped"

    fills = await manager.fills(sid)
    assert len(fills) >= 2
    # Market orders fill at the open of the live bar after the signal, as the server made it.
    for f in fills:
        ts_ms = round(datetime.fromisoformat(f["ts"]).timestamp() * 1000)
        assert f["price"] == price(ts_ms)
    bars = sorted(run.equity)
    assert bars == list(range(bars[0], bars[-1] + 1))  # every bar once, in order
    # The session placed orders and the paper broker filled them ...
    orders = await manager.orders(sid)
    filled = [o for o in orders if o.get("status") == "filled"]
    assert len(filled) >= 2, orders
    assert {f["client_order_id"] for f in fills} <= {o["order"]["client_order_id"] for o in filled}
    # ... while the exchange only ever served public market data: no order was sent (no POST,
    # PUT or DELETE, no order, open-order or account endpoint).
    with exchange.lock:
        requests = list(exchange.requests)
    assert {method for method, _ in requests} == {"GET"}
    # (ccxt loads the spot and the derivatives markets: /api/v3, /fapi/v1, /dapi/v1)
    assert {path.rsplit("/", 1)[-1] for _, path in requests} == {"exchangeInfo", "klines"}
