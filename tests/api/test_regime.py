"""Regime endpoints: current state, confidence, history and classify on bundled data."""

from __future__ import annotations

import httpx
import pytest

from raytrader.ml.regime import RuleRegimeClassifier
from raytrader.orchestrator.api.data import bundled_frames

pytestmark = pytest.mark.asyncio


async def test_current_confidence_history_match_the_classifier(
    client: httpx.AsyncClient,
) -> None:
    expected = RuleRegimeClassifier().classify(bundled_frames("universe_daily")["S01"])
    resp = await client.get("/api/regime/current/S01")
    assert resp.status_code == 200, resp.text
    cur = resp.json()
    assert cur["regimes"]["trend"]["state"] == expected.trend.label.iloc[-1]
    assert cur["regimes"]["volatility"]["state"] == expected.volatility.label.iloc[-1]
    assert cur["regimes"]["trend"]["confidence"] == pytest.approx(
        float(expected.trend.confidence.iloc[-1])
    )

    conf = (await client.get("/api/regime/confidence/S01")).json()
    assert set(conf["probabilities"]["trend"]) == {"down", "sideways", "up"}
    assert sum(conf["probabilities"]["volatility"].values()) == pytest.approx(1.0)

    hist = (await client.get("/api/regime/history/S01", params={"limit": 5})).json()
    want = expected.trend.transitions().iloc[-5:]
    assert [t["to"] for t in hist["transitions"]["trend"]] == list(want["to"])
    assert sum(hist["time_in_state"]["volatility"].values()) == pytest.approx(1.0)

    # A Gaussian mixture on daily bars of the hourly BTC set.
    resp = await client.get(
        "/api/regime/current/BTC/USDT",
        params={"source": "btc_1h", "method": "mixture", "timeframe": "1d"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["regimes"]["volatility"]["state"] in ("low_vol", "high_vol")


async def test_classify_and_errors(client: httpx.AsyncClient) -> None:
    body = {"symbol": "S02", "rules": {"trend_window": 20, "vol_rank_window": 50}, "limit": 30}
    resp = await client.post("/api/regime/classify", json=body)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["count"] == 30 and len(out["bars"]) == 30
    assert all(b["regimes"]["trend"]["state"] is not None for b in out["bars"])

    resp = await client.post("/api/regime/classify", json={**body, "method": "mixture"})
    assert resp.status_code == 200, resp.text

    bad = await client.post(
        "/api/regime/classify", json={**body, "rules": {"low_pct": 0.8, "high_pct": 0.2}}
    )
    assert bad.status_code == 422 and "rules" in bad.text
    bad = await client.post("/api/regime/classify", json={**body, "symbol": "NOPE"})
    assert bad.status_code == 422 and "symbol" in bad.text
    assert (await client.get("/api/regime/current/NOPE")).status_code == 404
    resp = await client.get("/api/regime/current/S01", params={"start": "2031-01-01"})
    assert resp.status_code == 422 and "start" in resp.text
    resp = await client.get("/api/regime/current/S01", params={"method": "hmm"})
    assert resp.status_code == 422 and "method" in resp.text
