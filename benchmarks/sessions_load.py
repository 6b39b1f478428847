"""Concurrent paper sessions on one orchestrator: latency, CPU and memory under load.

For each N, starts ``raytrader serve`` on a fresh embedded store, starts N paper sessions
(SMA crossover on replayed synthetic hourly bars, ``--speed`` bars per second each), lets them
warm up, then measures for ``--measure`` seconds:

- bar-to-fill latency p50/p99 (the server's Prometheus histogram, difference over the window),
- ``GET /api/trading/status`` latency p50/p99 while the sessions run,
- bars processed per second against bars offered,
- CPU (cores used by the whole process tree) and its peak RSS.

Run: ``.venv/bin/python benchmarks/sessions_load.py --sessions 50 100 200 400``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def session_body(seed: int, n_bars: int, speed: float) -> dict[str, Any]:
    return {
        "name": f"load-{seed}",
        "agents": [{"name": "sma_cross", "params": {"fast": 3, "slow": 8}}],
        "initial_cash": 10_000,
        "broker": {"commission": {"bps": 10}},
        "portfolio": {"lot_size": 0.001},
        "feed": {
            "data": {"synthetic": {"kind": "single", "n_bars": n_bars, "seed": seed, "freq": "1h"}},
            "speed": speed,
        },
    }


def histogram(text: str, name: str) -> tuple[list[tuple[float, float]], float]:
    """Cumulative (upper bound, count) pairs and the total count of a Prometheus histogram."""
    buckets: list[tuple[float, float]] = []
    count = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                buckets.append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_count"):
                count = sample.value
    return sorted(buckets), count


def counter(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return 0.0


def quantile(
    q: float, before: list[tuple[float, float]], after: list[tuple[float, float]]
) -> float:
    """histogram_quantile over the difference of two snapshots (linear within a bucket)."""
    diff = [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=True)]
    total = diff[-1][1]
    if total <= 0:
        return float("nan")
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in diff:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            width = count - prev_count
            return prev_le + (le - prev_le) * ((rank - prev_count) / width if width else 1.0)
        prev_le, prev_count = le, count
    return prev_le


class Tree:
    """A process and its descendants; keeps Process objects so cpu_percent has a baseline."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.procs: dict[int, psutil.Process] = {}

    def sample(self) -> tuple[float, int]:
        """(cores used since the last sample, total RSS in bytes)."""
        with contextlib.suppress(psutil.Error):
            for p in [self.root, *self.root.children(recursive=True)]:
                if p.pid not in self.procs:
                    self.procs[p.pid] = p
                    with contextlib.suppress(psutil.Error):
                        p.cpu_percent(None)
        cpu = 0.0
        rss = 0
        for pid, p in list(self.procs.items()):
            try:
                cpu += p.cpu_percent(None)
                rss += p.memory_info().rss
            except psutil.Error:
                del self.procs[pid]
        return cpu / 100.0, rss


async def run_level(n: int, speed: float, warmup: float, measure: float) -> dict[str, Any]:
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="rt-load-"))
    env = {**os.environ, "RAYTRADER_DATA_DIR": str(data_dir), "RAYTRADER_LOG_LEVEL": "warning"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "raytrader", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 120
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/ready")).status_code == 200:
                        break
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("server did not become ready")
                await asyncio.sleep(0.3)
            n_bars = int(speed * (warmup + measure) * 1.5) + 100
            for k in range(n):
                resp = await client.post(
                    "/api/trading/start-session", json=session_body(1000 + k, n_bars, speed)
                )
                resp.raise_for_status()
            await asyncio.sleep(warmup)

            before = (await client.get("/metrics")).text
            t0 = time.monotonic()
            status_ms: list[float] = []
            cpu_samples: list[float] = []
            peak_rss = 0
            procs = Tree(proc.pid)
            procs.sample()
            next_sample = t0 + 1.0
            while time.monotonic() - t0 < measure:
                s = time.perf_counter()
                resp = await client.get("/api/trading/status")
                status_ms.append((time.perf_counter() - s) * 1000)
                resp.raise_for_status()
                if time.monotonic() >= next_sample:
                    cpu, rss = procs.sample()
                    peak_rss = max(peak_rss, rss)
                    cpu_samples.append(cpu)
                    next_sample += 1.0
                await asyncio.sleep(0.2)
            elapsed = time.monotonic() - t0
            after = (await client.get("/metrics")).text
            running = (await client.get("/api/trading/status")).json()["active_sessions"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    fill_before, _ = histogram(before, "raytrader_bar_to_fill_seconds")
    fill_after, fills = histogram(after, "raytrader_bar_to_fill_seconds")
    bars = counter(after, "raytrader_bars_total") - counter(before, "raytrader_bars_total")
    status_ms.sort()
    return {
        "sessions": n,
        "running": running,
        "offered": n * speed,
        "processed": bars / elapsed,
        "fill_p50": quantile(0.5, fill_before, fill_after) * 1000,
        "fill_p99": quantile(0.99, fill_before, fill_after) * 1000,
        "fills": fills - histogram(before, "raytrader_bar_to_fill_seconds")[1],
        "status_p50": statistics.median(status_ms),
        "status_p99": status_ms[min(len(status_ms) - 1, int(0.99 * len(status_ms)))],
        "cpu": statistics.mean(cpu_samples) if cpu_samples else float("nan"),
        "rss_gib": peak_rss / 2**30,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[50, 100, 200, 400])
    parser.add_argument("--speed", type=float, default=1.0, help="bars per second per session")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before measuring")
    parser.add_argument("--measure", type=float, default=40.0, help="seconds measured")
    args = parser.parse_args()
    console = Console(width=160)
    table = Table(
        title=f"Concurrent paper sessions ({args.speed:g} bar/s each, {os.cpu_count()} cores)"
    )
    for col in (
        "sessions",
        "bars/s offered",
        "bars/s done",
        "bar->fill p50 ms",
        "p99 ms",
        "fills",
        "status p50 ms",
        "p99 ms",
        "CPU cores",
        "peak RSS GiB",
    ):
        table.add_column(col, justify="right")
    for n in args.sessions:
        console.print(f"[dim]running {n} sessions ...[/dim]")
        r = asyncio.run(run_level(n, args.speed, args.warmup, args.measure))
        table.add_row(
            f"{r['sessions']} ({r['running']} live)",
            f"{r['offered']:.0f}",
            f"{r['processed']:.0f}",
            f"{r['fill_p50']:.1f}",
            f"{r['fill_p99']:.1f}",
            f"{r['fills']:.0f}",
            f"{r['status_p50']:.1f}",
            f"{r['status_p99']:.1f}",
            f"{r['cpu']:.2f}",
            f"{r['rss_gib']:.2f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
