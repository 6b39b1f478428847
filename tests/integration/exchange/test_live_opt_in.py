"""Live mode is an explicit opt-in of whoever runs the server: ``mode: live`` in a session
config is refused unless the server runs with ``RAYTRADER_ALLOW_LIVE=1``. (The start-session
endpoint answers this refusal as a 422: tests/integration/orchestrator/test_trading_api.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from raytrader.orchestrator.config import SessionConfig

CONFIG: dict[str, Any] = {
    "agents": [{"name": "sma_cross"}],
    "feed": {"data": {"synthetic": {"kind": "single", "n_bars": 50, "seed": 1}}},
}
LIVE: dict[str, Any] = {
    "agents": [{"name": "sma_cross"}],
    "symbols": ["BTC/USDT"],
    "timeframe": "1m",
    "feed": {"kind": "ccxt", "exchange": "binance"},
}


def test_paper_is_the_default_mode() -> None:
    assert SessionConfig.model_validate(CONFIG).mode == "paper"


@pytest.mark.parametrize("value", [None, "0", "true", "yes"])
def test_live_without_the_opt_in_is_refused(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv("RAYTRADER_ALLOW_LIVE", raising=False)
    else:
        monkeypatch.setenv("RAYTRADER_ALLOW_LIVE", value)
    with pytest.raises(ValidationError, match=r"needs an explicit opt-in.*RAYTRADER_ALLOW_LIVE=1"):
        SessionConfig.model_validate({**CONFIG, "mode": "live"})


def test_live_with_the_opt_in_passes_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYTRADER_ALLOW_LIVE", "1")
    # Past the opt-in, a live session needs an exchange to trade on: a ccxt feed.
    with pytest.raises(ValidationError) as err:
        SessionConfig.model_validate({**CONFIG, "mode": "live"})
    assert "opt-in" not in str(err.value) and "needs a ccxt feed" in str(err.value)
    config = SessionConfig.model_validate({**LIVE, "mode": "live", "live": {"sandbox": True}})
    assert config.mode == "live" and config.live is not None and config.live.sandbox


def test_a_stored_live_config_is_not_checked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # The component actors re-read accepted configs; the opt-in is the server's, checked once.
    monkeypatch.delenv("RAYTRADER_ALLOW_LIVE", raising=False)
    assert SessionConfig.stored({**LIVE, "mode": "live"}).mode == "live"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"live": {"sandbox": True}}, "`live` is for sessions in mode 'live'"),
        ({"mode": "live", "portfolio": {"exits": {"stop_loss_pct": 0.05}}}, "not supported"),
        ({"mode": "live", "live": {"api_urls": {"binance": "http://x"}}}, "not an origin"),
    ],
)
def test_live_sections_are_checked(
    extra: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYTRADER_ALLOW_LIVE", "1")
    with pytest.raises(ValidationError, match=message):
        SessionConfig.model_validate({**LIVE, **extra})
