"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright, against
``raytrader serve`` started as a subprocess with an API key set.

Screenshots go to ``test-artifacts/browser/`` (``RAYTRADER_TEST_ARTIFACTS`` moves it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
KEY = "browser-test-key-0123456789"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("RAYTRADER_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "browser"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("dashboard")
    port = _free_port()
    env = {
        **os.environ,
        "RAYTRADER_DATA_DIR": str(data_dir),
        "RAYTRADER_RUNS_DIR": str(data_dir / "runs"),
        "RAYTRADER_API_KEY": KEY,
    }
    env.pop("RAY_ADDRESS", None)
    log = (data_dir / "server.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "raytrader", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopping it takes Ray along
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # Ray starts slowly on a loaded machine
        while True:
            assert proc.poll() is None, (data_dir / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{base}/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server not ready in 180 s"
            time.sleep(0.3)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium package "
            "(apt-get install chromium; make test installs it when it can)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # --no-sandbox: the sandbox needs user namespaces, absent in containers and as root.
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        yield b
        b.close()


class Dashboard:
    """A tab on the dashboard; every request it makes is recorded, any to another host
    is refused (the page must work offline)."""

    def __init__(self, browser: Any, base: str) -> None:
        self.base = base
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.urls: list[str] = []
        self.foreign: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _route(self, route: Any) -> None:
        url = route.request.url
        self.urls.append(url)
        if url.startswith(self.base) or url.startswith(("data:", "blob:", "about:")):
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def open(self, wrong_key_first: bool = False) -> Any:
        """Load the page and give it the key when it asks."""
        page = self.page
        page.goto(self.base + "/")
        page.locator("#key-dialog").wait_for(state="visible")
        if wrong_key_first:
            page.fill("#key-input", "not-the-key")
            page.click("#key-save")
            page.wait_for_selector("#key-error:has-text('refused')")
        page.fill("#key-input", KEY)
        page.click("#key-save")
        page.wait_for_selector("body[data-ready='1']")
        return page

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        assert self.foreign == [], f"requests outside the server: {self.foreign}"
        assert not any(KEY in u for u in self.urls), "the API key went into a URL"
        assert self.errors == [], self.errors
        self.context.close()


@pytest.fixture
def dash(browser: Any, server: str, request: pytest.FixtureRequest) -> Iterator[Dashboard]:
    d = Dashboard(browser, server)
    try:
        yield d
    finally:
        d.shot(request.node.name)
        d.close()


def _int(page: Any, selector: str) -> int:
    return int(page.inner_text(selector))


def test_page_and_assets_load_without_the_key_and_data_needs_it(server: str) -> None:
    for path in ("/", "/static/app.js", "/static/app.css"):
        assert httpx.get(server + path).status_code == 200, path
    assert httpx.get(server + "/api/dashboard/sessions").status_code == 401
    ok = httpx.get(server + "/api/dashboard/sessions", headers={"X-API-Key": KEY})
    assert ok.status_code == 200


def test_paper_session_from_the_page(dash: Dashboard) -> None:
    """Start a session from a saved configuration on the form, watch events and the equity
    curve grow, stop it."""
    saved = httpx.post(
        dash.base + "/api/v1/strategy/configure_strategy/sma_cross",
        json={"config_name": "browser-fast", "params": {"fast": 5, "slow": 20}},
        headers={"X-API-Key": KEY},
    )
    assert saved.status_code == 200, saved.text
    page = dash.open(wrong_key_first=True)
    page.select_option("#s-saved", "browser-fast")
    assert json.loads(page.input_value("#s-params")) == saved.json()["params"]
    page.select_option("#s-data", "synthetic")
    page.fill("#s-name", "browser")
    page.fill("#s-speed", "40")
    page.fill("#s-lot", "0.001")
    page.click("#s-start")
    page.locator("#session-panel").wait_for(state="visible")
    page.wait_for_function("Number(document.querySelector('#sp-points').textContent) >= 30")
    first = _int(page, "#sp-points")
    page.wait_for_function(
        f"Number(document.querySelector('#sp-points').textContent) >= {first + 40}"
    )
    page.wait_for_selector("#sp-orders tbody tr")
    page.wait_for_selector("#sp-fills tbody tr")
    # Besides equity, orders, fills and signals arrived (both counts read in one go).
    events, points = page.evaluate(
        "() => ['#sp-events', '#sp-points'].map(s => Number(document.querySelector(s).textContent))"
    )
    assert events > points
    page.wait_for_selector("#sessions-table tbody tr .badge.running")
    risk = page.inner_text("#risk-state")
    assert "max_position_weight=1" in risk and "Kill switch" in risk
    assert 'sma_cross {"fast":5,"slow":20' in risk  # the saved configuration's params
    dash.shot("session-running")

    page.click("#sp-stop")
    page.wait_for_selector("#sp-status.stopped")
    page.wait_for_selector("#sessions-table tbody tr .badge.stopped")
    stopped_at = _int(page, "#sp-points")
    time.sleep(1.0)
    assert _int(page, "#sp-points") == stopped_at  # the stream ended with the session


def test_a_halted_session_shows_why_and_resumes(dash: Dashboard) -> None:
    """A kill switch halts a session: the risk panel says so and why; Resume resumes it."""
    body = {
        "name": "browser-halt",
        "agents": [{"name": "sma_cross", "params": {"fast": 5, "slow": 20}}],
        "broker": {"commission": {"bps": 10}},
        "portfolio": {"lot_size": 0.001, "kill_switch": {"max_drawdown": 0.01}},
        "feed": {
            "data": {"synthetic": {"kind": "single", "n_bars": 20_000, "seed": 8, "freq": "1h"}},
            "speed": 200,
        },
    }
    started = httpx.post(
        dash.base + "/api/trading/start-session", json=body, headers={"X-API-Key": KEY}
    )
    assert started.status_code == 202, started.text
    sid = started.json()["session_id"]
    page = dash.open()
    page.click(f"#sessions-table button.open[data-id='{sid}']")
    page.wait_for_selector("#sp-status.halted", timeout=60_000)
    risk = page.inner_text("#risk-state")
    assert "HALTED" in risk and "drawdown" in risk and "max_drawdown=0.01" in risk
    dash.shot("session-halted")
    with page.expect_response("**/api/trading/resume-session") as resumed:
        page.click("#sp-resume")
    assert resumed.value.status == 200
    page.click(f"#sessions-table button.stop[data-id='{sid}']")
    page.wait_for_selector("#sp-status.stopped")


def test_backtest_and_sweep_from_the_page(dash: Dashboard) -> None:
    """Run a backtest and a sweep from the forms; open their results: charts, metrics, the
    report with trades; sweep progress, the ranked table and the heatmap."""
    page = dash.open()
    page.click("#tab-backtests")
    page.select_option("#bt-agent", "sma_cross")
    page.fill("#bt-params", '{"fast": 5, "slow": 20}')
    page.select_option("#bt-data", "synthetic")
    page.fill("#bt-name", "browser-bt")
    page.fill("#bt-lot", "0.001")
    page.click("#bt-run")
    page.wait_for_selector("#bt-status.done", timeout=90_000)
    page.wait_for_selector("#bt-metrics tr[data-metric='sharpe']")
    assert page.inner_text("#bt-metrics tr[data-metric='total_return'] td").endswith("%")
    frame = page.frame_locator("#bt-frame")
    frame.locator("#monthly").wait_for()
    assert frame.locator("#trades tr").count() > 2
    page.wait_for_selector("#bt-jobs tbody tr .badge.done")
    dash.shot("backtest")

    page.click("#tab-sweeps")
    page.select_option("#sw-agent", "sma_cross")
    page.fill(
        "#sw-space",
        '{"fast": {"start": 5, "stop": 25, "step": 5}, "slow": {"values": [30, 40, 60, 80]}}',
    )
    page.select_option("#sw-data", "synthetic")
    page.fill("#sw-name", "browser-sweep")
    page.fill("#sw-lot", "0.001")
    page.click("#sw-run")
    page.locator("#sw-panel").wait_for(state="visible")
    assert "trials" in page.inner_text("#sw-progress")
    page.wait_for_selector("#sw-status.done", timeout=90_000)
    page.wait_for_function(
        "document.querySelector('#sw-progress').textContent.startsWith('20 / 20')"
    )
    assert "best so far" in page.inner_text("#sw-progress")
    page.wait_for_selector("#sw-heatmap[data-cells='20']")
    rows = page.locator("#sw-top tbody tr")
    assert rows.count() == 20
    assert page.inner_text("#sw-top tbody tr:first-child td:first-child") == "1"
    # The heatmap has colours drawn, not a blank canvas.
    colours = page.evaluate(
        """() => { const c = document.querySelector('#sw-heatmap');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const s = new Set(); for (let i = 0; i < d.length; i += 4 * 97) s.add(d[i] + ',' + d[i+1]);
        return s.size; }"""
    )
    assert colours > 10
    dash.shot("sweep")

    # What the page read, straight from the API.
    auth = {"X-API-Key": KEY}
    jobs = httpx.get(dash.base + "/api/dashboard/jobs", headers=auth).json()["jobs"]
    by_name = {j["name"]: j for j in jobs}
    assert by_name["browser-sweep"]["done"] == by_name["browser-sweep"]["total"] == 20
    sweep_id, run_id = by_name["browser-sweep"]["id"], by_name["browser-bt"]["id"]
    trials = httpx.get(f"{dash.base}/api/dashboard/trials/{sweep_id}", headers=auth).json()
    assert len(trials["trials"]) == 20 and trials["names"] == ["fast", "slow"]
    refused = httpx.get(f"{dash.base}/api/dashboard/trials/{run_id}", headers=auth)
    assert refused.status_code == 409

    # A finished job opened again from the list.
    page.click("#tab-backtests")
    page.click("#bt-jobs tbody tr:first-child button.open")
    page.wait_for_selector("#bt-status.done")
    assert "browser-bt" in page.inner_text("#bt-title")
