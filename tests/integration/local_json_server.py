"""What the local exchange servers share: a threaded HTTP server on a free port of 127.0.0.1
answering JSON, and the market entry of Binance spot's exchangeInfo."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LocalJSONServer(ThreadingHTTPServer):
    """Serves ``handler`` on 127.0.0.1 (a free port) from ``self.thread`` once it is started."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.lock = threading.Lock()
        self.thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up mid-answer are part of the tests


class JSONHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any) -> None:
        self._raw(status, json.dumps(body).encode())

    def _raw(self, status: int, data: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client is gone


def binance_market(base: str, quote: str, filters: list[dict[str, Any]]) -> dict[str, Any]:
    """One entry of ``symbols`` in Binance spot's ``GET /api/v3/exchangeInfo``."""
    return {
        "symbol": base + quote,
        "status": "TRADING",
        "baseAsset": base,
        "quoteAsset": quote,
        "baseAssetPrecision": 8,
        "quoteAssetPrecision": 8,
        "isSpotTradingAllowed": True,
        "orderTypes": ["LIMIT", "MARKET"],
        "permissions": ["SPOT"],
        "filters": filters,
    }
