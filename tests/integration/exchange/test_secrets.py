"""Exchange credentials come only from the environment or a mounted secret file, and never reach
logs, answers (order states, journal), files on disk or exception messages, even when the
exchange echoes the key back in an authentication error."""

from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from raytrader.domain import Order, OrderStatus, Side
from raytrader.domain.codec import state_to_dict
from raytrader.execution.ccxt_broker import BrokerPaused
from raytrader.secrets import CredentialsError, load_credentials
from raytrader.state.stores.sqlite_store import SqliteStore
from tests.integration.exchange.conftest import MakeBroker, credentials
from tests.integration.exchange.fake_exchange import FakeExchange

KEY = "LEAKY-key-7f3a9c1e55d2"
SECRET = "LEAKY-secret-0b8e44aa91"
PREFIX = "RAYTRADER_EXCHANGE_BINANCE_"


def test_credentials_from_environment_variables() -> None:
    env = {PREFIX + "API_KEY": KEY, PREFIX + "SECRET": SECRET}
    creds = load_credentials("binance", env)
    assert creds is not None
    assert creds.api_key.get_secret_value() == KEY
    assert creds.ccxt_config() == {"apiKey": KEY, "secret": SECRET}
    for text in (repr(creds), str(creds), creds.model_dump_json()):
        assert KEY not in text and SECRET not in text and "**********" in text
    assert load_credentials("binance", {}) is None
    assert load_credentials("kraken", env) is None  # another exchange's variables


def test_credentials_from_mounted_secret_files(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(KEY + "\n")
    (tmp_path / "secret").write_text(SECRET + "\n")
    env = {
        PREFIX + "API_KEY_FILE": str(tmp_path / "key"),
        PREFIX + "SECRET_FILE": str(tmp_path / "secret"),
    }
    creds = load_credentials("binance", env)
    assert creds is not None and creds.values() == [KEY, SECRET]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({PREFIX + "API_KEY": KEY}, "set RAYTRADER_EXCHANGE_BINANCE_SECRET"),
        (
            {PREFIX + "API_KEY": KEY, PREFIX + "API_KEY_FILE": "x", PREFIX + "SECRET": SECRET},
            "not both",
        ),
        (
            {PREFIX + "API_KEY_FILE": "/nonexistent/key", PREFIX + "SECRET": SECRET},
            "API_KEY_FILE: cannot read the file",
        ),
    ],
)
def test_bad_credentials_name_the_variable_not_the_value(env: dict[str, str], message: str) -> None:
    with pytest.raises(CredentialsError, match=message) as err:
        load_credentials("binance", env)
    assert KEY not in str(err.value) and SECRET not in str(err.value)


@pytest.mark.asyncio
async def test_an_auth_error_echoing_the_key_leaks_it_nowhere(
    venue: FakeExchange,
    make_broker: MakeBroker,
    store: SqliteStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    venue.api_key = "the-right-key"
    broker = make_broker(venue, creds=credentials(KEY, SECRET))
    errors: list[BaseException] = []
    # ccxt logs request headers and answers at debug level: even asked for, they are masked.
    caplog.set_level(logging.DEBUG, logger="ccxt.base.exchange")
    with capture_logs() as logs:
        with pytest.raises(BrokerPaused) as started:
            await broker.start()  # reconciling reads private endpoints: 401 echoing the key
        errors.append(started.value)
        with pytest.raises(BrokerPaused) as paused:
            await broker.submit(Order("a1", "BTC/USDT", Side.BUY, 0.2, datetime.now(UTC)))
        errors.append(paused.value)
        broker.resume()
        state = await broker.submit(Order("a2", "BTC/USDT", Side.BUY, 0.2, datetime.now(UTC)))
    # The venue did get the key and echo it, so the checks below are not vacuous.
    assert {k for _m, _e, _q, k in venue.requests if k} == {KEY}
    assert state.status is OrderStatus.REJECTED and "AuthenticationError" in state.reason
    assert "***" in state.reason and broker.paused

    def assert_clean(text: str, where: str) -> None:
        assert KEY not in text and SECRET not in text, where

    for exc in errors:
        assert_clean("".join(traceback.format_exception(exc)), "exception")
    assert_clean(repr(logs), "structlog events")
    assert "X-MBX-APIKEY': '***'" in caplog.text  # ccxt's debug lines are there, masked
    assert_clean(caplog.text, "stdlib logs")
    assert_clean(repr(state_to_dict(state)), "order state as answered")
    assert_clean(repr([e.payload for e in await store.read_journal("acct")]), "journal")
    await store.close()  # flush the WAL into the file
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert KEY.encode() not in data and SECRET.encode() not in data, path.name
