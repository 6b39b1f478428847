"""Fixtures of the live-broker tests: local Binance-format venues, a SQLite store, brokers.

Real ccxt (async) talks to ``FakeExchange`` servers on 127.0.0.1 through the sandbox URLs
(``set_sandbox_mode``) rewritten to the local server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr

from raytrader.execution.ccxt_broker import (
    CcxtBroker,
    CcxtBrokerConfig,
    make_trading_exchange,
)
from raytrader.orchestrator.config import SessionConfig
from raytrader.secrets import ExchangeCredentials
from raytrader.state.stores.sqlite_store import SqliteStore
from tests.integration.exchange.fake_exchange import FakeExchange, running

SANDBOX = "https://testnet.binance.vision"
KEY = "test-key"
SECRET = "test-secret-0123456789"
FAST = CcxtBrokerConfig(max_retries=4, retry_base=0.01, retry_max=0.05)

MakeBroker = Callable[..., CcxtBroker]


@pytest.fixture
def venue() -> Iterator[FakeExchange]:
    with running() as srv:
        yield srv


@pytest.fixture
def venue_b() -> Iterator[FakeExchange]:
    with running() as srv:
        yield srv


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "state.db") as s:
        yield s


def credentials(key: str = KEY, secret: str = SECRET) -> ExchangeCredentials:
    return ExchangeCredentials(api_key=SecretStr(key), secret=SecretStr(secret))


@pytest_asyncio.fixture
async def make_broker(store: SqliteStore) -> AsyncIterator[MakeBroker]:
    """Brokers on fresh sandbox exchanges pointed at a venue; all closed at the end."""
    made: list[CcxtBroker] = []

    def make(
        srv: FakeExchange,
        *,
        creds: ExchangeCredentials | None = None,
        account: str = "acct",
        timeout_ms: int = 2_000,
        config: CcxtBrokerConfig = FAST,
        **kwargs: Any,
    ) -> CcxtBroker:
        creds = creds if creds is not None else credentials()
        exchange = make_trading_exchange(
            "binance",
            creds,
            sandbox=True,
            api_urls={SANDBOX: srv.base},
            timeout_ms=timeout_ms,
            rate_limit=False,  # local server: no need to space requests by Binance's weights
        )
        broker = CcxtBroker(
            exchange,
            kwargs.pop("store", store),
            account,
            secrets=creds.values(),
            config=config,
            **kwargs,
        )
        made.append(broker)
        return broker

    yield make
    for b in made:
        await b.close()


def live_config(venue: FakeExchange, **agent: Any) -> SessionConfig:
    """A live session on ``venue`` (its sandbox URL), trading BTC/USDT on 1s bars."""
    return SessionConfig.model_validate(
        {
            "name": "live",
            "mode": "live",
            "symbols": ["BTC/USDT"],
            "timeframe": "1s",
            "agents": [{"name": "sma_cross", "params": agent or {"fast": 2, "slow": 4}}],
            "initial_cash": 1_000,
            "portfolio": {"lot_size": 0.001},
            "feed": {
                "kind": "ccxt",
                "exchange": "binance",
                "api_url": venue.base,
                "poll_interval": 0.2,
            },
            "live": {
                "sandbox": True,
                "api_urls": {SANDBOX: venue.base},
                "rate_limit": False,
                "timeout_ms": 2_000,
                "retry": {"max_retries": 2, "retry_base": 0.01, "retry_max": 0.05},
            },
        }
    )
