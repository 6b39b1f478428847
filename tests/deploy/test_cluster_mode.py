"""Cluster mode on one machine: the wiring of k8s/, without Kubernetes.

As in the manifests, `raytrader serve` is a driver that joins a running Ray cluster through
``RAY_ADDRESS`` and keeps its state in a real Redis through ``RAYTRADER_REDIS_URL``. The
cluster is a head and a second node, each a ``ray start`` process of one CPU. Through the API
the test starts a paper session and a parameter sweep, and checks that the sweep's trials ran
on both nodes and that the session traded, with its state in Redis.

The cluster is started with the two-node sweep test's helpers (same ports, token and teardown
rules: see its docstring), loaded from that file rather than copied.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 180.0
JOB_TIMEOUT = 300.0
SESSION_TIMEOUT = 120.0


def _multinode() -> ModuleType:
    path = REPO / "tests" / "integration" / "multinode" / "test_sweep_two_nodes.py"
    spec = importlib.util.spec_from_file_location("_raytrader_multinode_helpers", path)
    assert spec is not None and spec.loader is not None, path
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server(tmp_path: Path) -> Iterator[str]:
    """A throw-away redis-server of this test's own, with AOF as in the manifests."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not on PATH (`apt-get install redis-server`)", pytrace=False)
    port = _free_port()
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)]
    args += ["--appendonly", "yes", "--maxmemory-policy", "noeviction"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
            assert proc.poll() is None and time.monotonic() < deadline, "redis did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def serve(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("raytrader")), "serve"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _wait(
    client: httpx.Client, path: str, done: Any, timeout: float, why: str, log: Path
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            resp = client.get(path)
            body = resp.json() if resp.headers.get("content-type", "").startswith("app") else {}
            if resp.status_code == 200 and done(body):
                return body
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{why} in {timeout:.0f} s; last {body}\n{log.read_text()[-3000:]}")


SESSION: dict[str, Any] = {
    "name": "cluster-mode",
    "agents": [{"name": "sma_cross", "params": {"fast": 4, "slow": 12}}],
    "initial_cash": 50_000,
    "broker": {"commission": {"bps": 10}},
    "portfolio": {"lot_size": 0.001},
    "feed": {
        "data": {"synthetic": {"kind": "single", "n_bars": 400, "seed": 7, "freq": "1h"}},
        "speed": 200.0,
    },
}
SWEEP: dict[str, Any] = {
    "data": {"synthetic": {"n_bars": 3000, "seed": 1}},
    "agent": "sma_cross",
    "space": {
        "fast": {"start": 5, "stop": 30, "step": 5},
        "slow": {"start": 40, "stop": 100, "step": 20},
    },
    # Small chunks, so both workers (one per node) get some.
    "chunk_size": 2,
}


def test_serve_on_a_two_node_cluster_with_redis(tmp_path: Path) -> None:
    helpers = _multinode()
    log = tmp_path / "serve.log"
    with redis_server(tmp_path) as redis_url, helpers.ray_cluster(2) as cluster:
        port = _free_port()
        env = {
            **cluster.env,
            "RAY_ADDRESS": cluster.address,
            "RAYTRADER_REDIS_URL": redis_url,
            "RAYTRADER_HOST": "127.0.0.1",
            "RAYTRADER_PORT": str(port),
            "RAYTRADER_DATA_DIR": str(tmp_path / "data"),
            "RAYTRADER_RUNS_DIR": str(tmp_path / "runs"),
            "RAYTRADER_LOG_JSON": "1",
        }
        env = {k: v for k, v in env.items() if k != "RAYTRADER_API_KEY"}
        with (
            serve(env, log) as proc,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
        ):
            ready = _wait(client, "/ready", lambda b: True, READY_TIMEOUT, "not ready", log)
            assert proc.poll() is None
            assert ready["store"] is True

            resp = client.post("/api/trading/start-session", json=SESSION)
            assert resp.status_code == 202, resp.text
            sid = resp.json()["session_id"]
            resp = client.post("/api/backtest/optimize", json=SWEEP)
            assert resp.status_code == 202, resp.text
            job = resp.json()["id"]

            _wait(
                client,
                f"/api/backtest/jobs/{job}",
                lambda b: b.get("status") in {"done", "failed", "cancelled"},
                JOB_TIMEOUT,
                "the sweep did not finish",
                log,
            )
            body = client.get(f"/api/backtest/results/{job}").json()
            assert body["status"] == "done", body.get("error")
            results = body["results"]
            summary = results["summary"]
            where = f"{summary}\n{cluster.logs_tail()}"
            # One sweep worker per node, and both nodes ran trials.
            assert len(summary["nodes"]) == 2, where
            assert all(n > 0 for n in summary["nodes"].values()), where
            assert sum(summary["nodes"].values()) == results["trials"] == 24, where

            session = _wait(
                client,
                f"/api/trading/sessions/{sid}",
                lambda b: b.get("fills", 0) > 0,
                SESSION_TIMEOUT,
                "the session made no fill",
                log,
            )
            assert session["bars"] > 0

        # The state is in the cluster's Redis, not on the API's disk.
        import redis

        keys = redis.Redis.from_url(redis_url).keys("*")
        assert any(sid.encode() in k for k in keys), keys[:20]
        assert not (tmp_path / "data" / "state.db").exists()
