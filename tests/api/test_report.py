"""HTML reports of finished jobs over the API: a run, a sweep, a walk-forward."""

from __future__ import annotations

import asyncio
import time
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
import schemathesis

from raytrader.backtesting.config import BacktestConfig
from raytrader.backtesting.runner import run_backtest

pytestmark = pytest.mark.asyncio

SYN = {"synthetic": {"n_bars": 3000, "seed": 4, "freq": "1h"}}
COSTS = {"broker": {"commission": {"bps": 10}}, "portfolio": {"lot_size": 0.001}}


class Cells(HTMLParser):
    """Table cells by table id; asserts tags close in order."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.stack: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("meta", "img", "br"):
            self.stack.append(tag)
        if tag == "table":
            self._table = str(dict(attrs).get("id"))
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        assert self.stack.pop() == tag
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


async def wait_done(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        job: dict[str, Any] = (await client.get(f"/api/backtest/jobs/{job_id}")).json()
        if job["status"] in ("done", "failed", "cancelled"):
            assert job["status"] == "done", job["error"]
            return job
        assert time.monotonic() < deadline, f"{job_id} did not finish"
        await asyncio.sleep(0.05)


async def report(client: httpx.AsyncClient, job_id: str) -> Cells:
    resp = await client.get(f"/api/backtest/report/{job_id}")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    schema = schemathesis.openapi.from_dict((await client.get("/openapi.json")).json())
    schema["/api/backtest/report/{job_id}"]["GET"].validate_response(resp)
    assert "http://" not in resp.text and "https://" not in resp.text
    cells = Cells()
    cells.feed(resp.text)
    cells.close()
    assert cells.stack == []
    return cells


async def test_reports_of_a_run_a_sweep_and_a_walk_forward(api: Any) -> None:
    client: httpx.AsyncClient = api.client
    run = await client.post(
        "/api/backtest/run",
        json={
            "name": "rep-run",
            "data": SYN,
            "agents": [{"name": "sma_cross", "params": {"fast": 5, "slow": 20}}],
            **COSTS,
        },
    )
    assert run.status_code == 202, run.text
    run_id = run.json()["id"]
    sweep_body = {
        "name": "rep-sweep",
        "data": SYN,
        "agent": "sma_cross",
        "space": {"fast": {"values": [5, 10, 15]}, "slow": {"values": [20, 40]}},
        **COSTS,
    }
    sweep = await client.post("/api/backtest/optimize", json=sweep_body)
    assert sweep.status_code == 202, sweep.text
    sweep_id = sweep.json()["id"]
    early = await client.get(f"/api/backtest/report/{sweep_id}")
    if early.status_code != 200:  # the job may have finished already on a fast machine
        assert early.status_code == 409, early.text

    job = await wait_done(client, run_id)
    cells = await report(client, run_id)
    direct = run_backtest(BacktestConfig.model_validate((await client.get(
        f"/api/backtest/results/{run_id}")).json()["config"]))  # fmt: skip
    metrics = direct.metrics()
    shown = {row[0]: row[1] for row in cells.tables["metrics"]}
    assert shown["Total return"] == f"{metrics.total_return:.2%}"
    assert shown["Final equity"] == f"{metrics.final_equity:,.2f}"
    assert len(cells.tables["trades"]) == len(direct.trades) + 1
    assert job["name"] == "rep-run"

    await wait_done(client, sweep_id)
    cells = await report(client, sweep_id)
    rows = cells.tables["trials"]
    assert len(rows) == 1 + 6
    results = (await client.get(f"/api/backtest/results/{sweep_id}")).json()["results"]
    header = rows[0]
    best = results["best"]["params"]
    assert int(rows[1][header.index("fast")]) == best["fast"]
    assert int(rows[1][header.index("slow")]) == best["slow"]

    wf = await client.post(
        "/api/backtest/optimize",
        json={**sweep_body, "name": "rep-wf", "walk_forward": {"mode": "rolling", "n_windows": 2}},
    )
    assert wf.status_code == 202, wf.text
    await wait_done(client, wf.json()["id"])
    cells = await report(client, wf.json()["id"])
    assert len(cells.tables["trades"]) == 1 + 2  # the windows

    missing = await client.get("/api/backtest/report/bt-000000000000")
    assert missing.status_code == 404
