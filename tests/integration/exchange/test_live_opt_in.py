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
    with pytest.raises(ValidationError) as err:
        SessionConfig.model_validate({**CONFIG, "mode": "live"})
    # Past the opt-in, sessions still refuse: they do not run the live broker yet.
    assert "opt-in" not in str(err.value) and "paper broker only" in str(err.value)
