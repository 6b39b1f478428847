"""ML endpoints: a training job with progress, the registry's models, predictions, feature
importance, and 4xx naming the bad field."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.asyncio

TRAIN: dict[str, Any] = {
    "name": "s01-logit",
    "source": "universe_daily",
    "symbol": "S01",
    "kind": "logistic",
    "labels": {"horizon": 1},
    "features": {"vol_rank_window": 50},
    "cv_splits": 3,
}


async def _wait_done(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    seen: list[int] = []
    while True:
        resp = await client.get(f"/api/ml/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        job: dict[str, Any] = resp.json()
        seen.append(job["progress"]["done"])
        if job["status"] in ("done", "failed"):
            assert seen == sorted(seen)  # progress only moves forward
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.02)


async def test_train_job_saves_a_version_then_models_predict_importance(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.post("/api/ml/train", json=TRAIN)
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["status"] in ("queued", "running")
    assert job["progress"]["total"] == 4  # 3 CV folds and the final fit
    # The event loop keeps serving while the model trains.
    assert (await client.get("/health")).status_code == 200
    done = await _wait_done(client, job["id"])
    assert done["status"] == "done", done
    assert done["progress"] == {"done": 4, "total": 4, "unit": "fits"}
    result = done["result"]
    assert (result["name"], result["version"]) == ("s01-logit", 1)
    assert len(result["folds"]) == 3
    assert 0.0 <= result["cv_metrics"]["accuracy"] <= 1.0

    second = await client.post("/api/ml/train", json={**TRAIN, "seed": 1})
    assert (await _wait_done(client, second.json()["id"]))["result"]["version"] == 2

    models = (await client.get("/api/ml/models")).json()["models"]
    assert [(m["name"], m["version"]) for m in models] == [("s01-logit", 1), ("s01-logit", 2)]
    assert models[0]["symbol"] == "S01" and models[1]["seed"] == 1
    assert (await client.get("/api/ml/models", params={"name": "nope"})).status_code == 404

    resp = await client.post(
        "/api/ml/predict", json={"name": "s01-logit", "version": 1, "symbol": "S01", "limit": 5}
    )
    assert resp.status_code == 200, resp.text
    pred = resp.json()
    assert pred["count"] == 5 and pred["version"] == 1
    for row in pred["predictions"]:
        assert sum(row["probabilities"].values()) == pytest.approx(1.0)
        best = max(row["probabilities"], key=row["probabilities"].get)
        assert row["prediction"] == int(best)

    resp = await client.get("/api/ml/feature-importance", params={"name": "s01-logit"})
    assert resp.status_code == 200, resp.text
    imp = resp.json()
    assert imp["version"] == 2
    values = list(imp["importance"].values())
    assert sum(values) == pytest.approx(1.0) and values == sorted(values, reverse=True)

    await _search_then_cancel(client)


async def test_bad_input_is_a_4xx_naming_the_field(client: httpx.AsyncClient) -> None:
    async def named(body: dict[str, Any], field: str) -> None:
        resp = await client.post("/api/ml/train", json=body)
        assert resp.status_code == 422, resp.text
        assert any(field in d["loc"] for d in resp.json()["detail"]), resp.text

    await named({**TRAIN, "kind": "svm"}, "kind")
    await named({**TRAIN, "params": {"nope": 1}}, "params")
    await named({**TRAIN, "symbol": "ZZZ"}, "symbol")
    await named({**TRAIN, "cv_splits": 1}, "cv_splits")
    await named({**TRAIN, "labels": {"horizon": "5"}}, "horizon")  # no coercion
    await named({**TRAIN, "extra": 1}, "extra")
    await named({**TRAIN, "start": "2030-01-01"}, "symbol")  # no bars: too few samples
    resp = await client.post("/api/ml/predict", json={"name": "missing", "symbol": "S01"})
    assert resp.status_code == 404 and "missing" in resp.text
    assert (await client.get("/api/ml/jobs/ml-000000000000")).status_code == 404
    resp = await client.get("/api/ml/feature-importance", params={"name": "missing"})
    assert resp.status_code == 404


async def test_smart_trade_from_the_ensemble_signal(api: Any) -> None:
    # The session's own agent never warms up: the only orders are the ones under test.
    quiet = [{"name": "sma_cross", "params": {"fast": 5, "slow": 10_000}}]
    portfolio = {"lot_size": 0.001, "limits": {"allow_short": True}}
    sid = await api.start_session(min_bars=300, agents=quiet, portfolio=portfolio)
    ensemble = {
        "long_threshold": 0.001,
        "short_threshold": 0.001,
        "allow_short": True,
        "sizing": "fixed",
        "max_weight": 0.5,
    }
    body = {
        "session_id": sid,
        "source": "ensemble",
        "ensemble": ensemble,
        "symbol": "SYN",
        "client_order_id": "ens-1",
    }
    resp = await api.client.post("/api/trading/smart-trade", json=body)
    assert resp.status_code == 201, resp.text
    out = resp.json()
    why = out["reasoning"]
    # The regime member votes alone (the default members): its weight is all of the vote.
    assert why["votes"]["regime"]["weight"] == 1.0
    assert why["score"] == pytest.approx(why["votes"]["regime"]["score"])
    assert why["target_weight"] == pytest.approx(0.5 if why["score"] > 0 else -0.5)
    assert "regime=" in why["summary"]
    entry = out["entry"]
    assert entry["client_order_id"] == "ens-1" and entry["tag"] == "ensemble"
    assert entry["side"] == ("buy" if why["quantity"] > 0 else "sell")
    assert entry["quantity"] == pytest.approx(abs(why["quantity"]))
    assert abs(why["quantity"]) * why["price"] == pytest.approx(0.5 * 100_000, rel=0.02)
    filled = await api.order_in(sid, "ens-1", {"filled", "rejected", "cancelled"})
    assert filled["status"] == "filled", str(filled)
    assert filled["filled_quantity"] == pytest.approx(abs(why["quantity"]))

    async def bad(over: dict[str, Any], field: str) -> None:
        resp = await api.client.post("/api/trading/smart-trade", json={**body, **over})
        assert api.names(resp, field), resp.text

    await bad({"side": "buy"}, "side")
    await bad({"ensemble": {"max_weight": 2}}, "max_weight")
    await bad({"ensemble": {"regime": None}}, "ensemble")  # no member left
    await bad({"source": "manual", "ensemble": None, "quantity": 1}, "side")
    await api.stop(sid)


async def _search_then_cancel(client: httpx.AsyncClient) -> None:
    """A training with a search on the sweep workers, then cancelled jobs (run inside another
    test: the app's set-up costs more than these jobs)."""
    search = {"space": {"C": {"values": [0.001, 1.0]}}, "objective": "sharpe"}
    trading = {"cost_bps": 5.0, "allow_short": True}
    resp = await client.post(
        "/api/ml/train",
        json={**TRAIN, "name": "s01-searched", "search": search, "trading": trading},
    )
    assert resp.status_code == 202, resp.text
    assert resp.json()["progress"]["total"] == 10  # 2 trials x 3 folds, the best's 3 and its fit
    done = await _wait_done(client, resp.json()["id"])
    assert done["status"] == "done", done
    assert done["progress"] == {"done": 10, "total": 10, "unit": "fits"}
    result = done["result"]
    found = result["search"]
    assert found["ran_on"] == "ray" and found["sweep_id"] == done["id"] and found["trials"] == 2
    assert found["direction"] == "maximize"
    assert result["params"]["C"] == found["best"]["params"]["C"]
    # The saved model is the best trial's: its CV Sharpe (net of the costs) is the trial's score.
    assert result["cv_metrics"]["sharpe"] == pytest.approx(found["best"]["value"], rel=1e-12)
    (model,) = (await client.get("/api/ml/models", params={"name": "s01-searched"})).json()[
        "models"
    ]
    assert model["search"]["top"][0]["C"] == found["best"]["params"]["C"]
    assert model["search"]["trading"] == {**trading, "periods_per_year": None}
    # Ranked best first by Sharpe.
    sharpes = [row["sharpe"] for row in model["search"]["top"]]
    assert sharpes == sorted(sharpes, reverse=True)

    async def named(body: dict[str, Any], field: str) -> None:
        resp = await client.post("/api/ml/train", json={**TRAIN, "search": body})
        assert resp.status_code == 422, resp.text
        assert any(field in d["loc"] for d in resp.json()["detail"]), resp.text

    await named({"space": {"depth": {"values": [1]}}}, "search")
    await named({"space": {"C": {"start": 0.001, "stop": 100, "step": 0.1}}}, "space")  # too many
    await named({"space": {"C": {"low": 0.1, "high": 1}}, "method": "random"}, "search")
    await named({**search, "objective": "sortino"}, "objective")

    # Training jobs are cancellable.
    slow = {**TRAIN, "kind": "gradient_boosting", "params": {"n_estimators": 300}, "cv_splits": 8}
    first = (await client.post("/api/ml/train", json=slow)).json()
    second = (await client.post("/api/ml/train", json=TRAIN)).json()
    # The second waits for the first (one training at a time): cancelled before it ran.
    resp = await client.delete(f"/api/ml/jobs/{second['id']}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "cancelled" and resp.json()["started"] is None
    # The first stops after the fit it is in.
    resp = await client.delete(f"/api/ml/jobs/{first['id']}")
    assert resp.status_code == 200, resp.text
    job = resp.json()
    assert job["status"] == "cancelled" and job["result"] is None
    assert job["progress"]["done"] < job["progress"]["total"] == 9
    names = {m["name"] for m in (await client.get("/api/ml/models")).json()["models"]}
    assert names == {"s01-logit", "s01-searched"}  # nothing saved by the cancelled jobs
    assert (await client.delete(f"/api/ml/jobs/{first['id']}")).status_code == 409
    assert (await client.delete("/api/ml/jobs/ml-000000000000")).status_code == 404
