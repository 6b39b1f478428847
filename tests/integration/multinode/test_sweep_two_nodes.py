"""A sweep on a cluster of two Ray nodes: both nodes run trials, and the results are those of
the same trials run in process.

The cluster is started here: a head and a second node on this machine, each a
``ray start --block --num-cpus=1`` process. The sweep's driver is a separate Python process
that joins it through ``RAY_ADDRESS``, as a sweep submitted to a real cluster would; this test
process never joins it, so its own local Ray (the ``ray_runtime`` fixture of the other tests)
is left alone.

How the cluster stays apart from every other Ray on the machine:

- each ``ray start --block`` runs in a session (and process group) of its own; Ray ties the
  node's processes to it (kernel fate-sharing) and they stay in its group, so teardown
  SIGKILLs exactly those groups (what ``ray stop --force`` sends, without ``ray stop``'s
  machine-wide sweep, which would also kill this run's local Ray and anyone else's). SIGTERM
  would make a node drain for up to 30 s first;
- every port is given explicitly, from one block that is free when the cluster starts, between
  Ray's default worker ports and the usual ephemeral range, so neither another local Ray nor
  an outgoing connection takes one of them;
- each node has a temp dir of its own (short: Unix socket paths are limited to ~107 bytes);
  ``ray start`` records the cluster's address there, not in the default one that a plain
  ``ray.init()`` elsewhere would read;
- token authentication with a token of its own, given to every process in the environment:
  the cluster neither reads nor writes the user's token file, and no one else joins it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import pickle
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from raytrader.backtesting.sweep_config import parse_sweep_config
from raytrader.backtesting.trials import TrialSetup, evaluate_chunk
from raytrader.orchestrator.sweep_runner import trials_namespace
from raytrader.state.stores import open_store

pytestmark = pytest.mark.slow

# ---------------------------------------------------------------------------- the cluster

START_TIMEOUT = 90.0  # a node starts in seconds; far longer on a loaded machine
START_ATTEMPTS = 2  # a port of the block may be taken between the check and the start
_PORTS_LOW, _PORTS_HIGH = 20_000, 32_000  # above Ray's worker ports, below ephemeral ones
_NODE_PORTS = 6  # node manager, object manager, agent http and grpc, runtime env, metrics
_WORKER_PORTS = 16  # per node: the driver, actors, prestarted and idle workers
_READY_LINE = "This command will now block forever"


class NodeStartError(Exception):
    pass


def _ray_cli() -> str:
    """The ``ray`` script installed next to the interpreter running the tests."""
    exe = Path(sys.executable).with_name("ray")
    if exe.exists():
        return str(exe)
    found = shutil.which("ray")
    if found is None:
        pytest.fail("the `ray` command is not installed next to the test interpreter")
    return found


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def _port_block(size: int, attempts: int = 200) -> list[int]:
    """``size`` consecutive ports, each free now."""
    rng = random.Random()
    for _ in range(attempts):
        first = rng.randrange(_PORTS_LOW, _PORTS_HIGH - size)
        ports = list(range(first, first + size))
        if all(_is_free(p) for p in ports):
            return ports
    pytest.fail(f"no block of {size} free ports between {_PORTS_LOW} and {_PORTS_HIGH}")


def cluster_env(token: str) -> dict[str, str]:
    """The environment of the cluster's processes and of its drivers.

    None of the ``RAY_*`` settings of this process: its own Ray (``init_ray``) sets some, e.g.
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, with which a second node refuses to start.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    if env.get("PYTHONBREAKPOINT", "").startswith("ray."):  # set by ray.init
        del env["PYTHONBREAKPOINT"]
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=token,
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="1",  # a cluster of several nodes, on any OS
        RAY_USAGE_STATS_ENABLED="0",
    )
    return env


def _group_alive(pgid: int) -> list[int]:
    """The live (not zombie) processes of a process group."""
    proc = Path("/proc")
    if not proc.is_dir():  # no procfs: ask the kernel whether the group has members left
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    alive = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read: {exc.strerror})"
    kept = [line for line in text.splitlines() if not line.startswith("[state-dump]")]
    return "\n".join(kept[-lines:])


@dataclass
class RayNode:
    name: str
    temp_dir: Path
    process: subprocess.Popen[bytes]

    @property
    def start_log(self) -> Path:
        return self.temp_dir / "start.log"

    def logs_tail(self) -> str:
        """The ends of the ``ray start`` output and of the node's main logs."""
        parts = [f"--- {self.name}: ray start output\n{_tail(self.start_log, 30)}"]
        logs = self.temp_dir / "session_latest" / "logs"
        names = ["raylet.out", "raylet.err", "gcs_server.out", "gcs_server.err"]
        for path in [logs / n for n in names] + sorted(logs.glob("*worker*.err")):
            if path.exists() and path.stat().st_size:
                parts.append(f"--- {self.name}: {path.name}\n{_tail(path, 20)}")
        return "\n".join(parts)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGKILL the node's process group and check that none of it is left."""
        pgid = self.process.pid  # a session leader: its pid is its group's id
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        deadline = time.monotonic() + timeout
        while (alive := _group_alive(pgid)) and time.monotonic() < deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            time.sleep(0.2)
        assert not alive, f"processes {alive} of the Ray {self.name} node survived SIGKILL"
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@dataclass
class RayCluster:
    """One-CPU nodes; ``address`` is what ``RAY_ADDRESS`` takes, ``env`` what drivers need."""

    address: str
    env: dict[str, str]
    nodes: list[RayNode] = field(default_factory=list)

    def logs_tail(self) -> str:
        return "\n".join(n.logs_tail() for n in self.nodes)

    def stop(self) -> None:
        errors = []
        for node in reversed(self.nodes):  # the head last
            try:
                node.stop()
            except AssertionError as exc:
                errors.append(str(exc))
        self.nodes = []
        assert not errors, "; ".join(errors)


def _start_node(cluster: RayCluster, name: str, args: list[str], ports: list[int]) -> None:
    """Start a node and wait until ``ray start`` says it runs; ``NodeStartError`` if not."""
    temp_dir = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    node_ports, worker_ports = ports[:_NODE_PORTS], ports[_NODE_PORTS:]
    command = [
        _ray_cli(),
        "start",
        "--block",
        *args,
        "--num-cpus=1",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
        f"--node-manager-port={node_ports[0]}",
        f"--object-manager-port={node_ports[1]}",
        f"--dashboard-agent-listen-port={node_ports[2]}",
        f"--dashboard-agent-grpc-port={node_ports[3]}",
        f"--runtime-env-agent-port={node_ports[4]}",
        f"--metrics-export-port={node_ports[5]}",
        f"--min-worker-port={worker_ports[0]}",
        f"--max-worker-port={worker_ports[-1]}",
    ]
    with (temp_dir / "start.log").open("wb") as log:
        process = subprocess.Popen(
            command,
            env=cluster.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    node = RayNode(name, temp_dir, process)
    cluster.nodes.append(node)  # stopped with the cluster, whatever happens next
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if _READY_LINE in node.start_log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise NodeStartError(f"the {name} node exited with code {process.returncode}")
        time.sleep(0.2)
    raise NodeStartError(f"the {name} node did not start in {START_TIMEOUT:.0f} s")


def _start_cluster(n_nodes: int) -> RayCluster:
    per_node = _NODE_PORTS + _WORKER_PORTS
    ports = _port_block(1 + n_nodes * per_node)
    head_port, ports = ports[0], ports[1:]
    cluster = RayCluster(f"127.0.0.1:{head_port}", cluster_env(secrets.token_hex(32)))
    try:
        head = ["--head", f"--port={head_port}", "--include-dashboard=false"]
        _start_node(cluster, "head", head, ports[:per_node])
        for i in range(1, n_nodes):
            node_ports = ports[i * per_node : (i + 1) * per_node]
            _start_node(cluster, f"worker-{i}", [f"--address={cluster.address}"], node_ports)
    except NodeStartError as exc:
        tail = cluster.logs_tail()  # before stop() removes the logs
        cluster.stop()
        raise NodeStartError(f"{exc}; the logs end with:\n{tail}") from None
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextlib.contextmanager
def ray_cluster(n_nodes: int) -> Iterator[RayCluster]:
    """A head and ``n_nodes - 1`` more nodes, one CPU each; all of them killed at exit."""
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            cluster = _start_cluster(n_nodes)
            break
        except NodeStartError as exc:
            if attempt == START_ATTEMPTS:
                pytest.fail(f"Ray cluster did not start: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def two_node_cluster() -> Iterator[RayCluster]:
    """A Ray cluster of two one-CPU nodes, apart from the test run's own local Ray."""
    with ray_cluster(2) as cluster:
        yield cluster


# ------------------------------------------------------------------------------ the sweep

DRIVER_TIMEOUT = 180.0
SWEEP_ID = "two-nodes"
CONFIG: dict[str, Any] = {
    "name": "mn",
    "data": {"synthetic": {"n_bars": 3000, "seed": 1}},
    "agent": "sma_cross",
    "space": {
        "fast": {"start": 5, "stop": 30, "step": 5},
        "slow": {"start": 40, "stop": 100, "step": 20},
    },
    "search": {"method": "grid"},
    # 12 chunks of 2: the runner hands each worker two chunks at once, so both run trials
    "chunk_size": 2,
}

# The driver: joins the cluster (RAY_ADDRESS), waits for both nodes, runs the sweep with a
# SQLite store in its work dir and pickles what the test checks.
DRIVER = textwrap.dedent(
    """
    import asyncio
    import pickle
    import sys
    import time
    from pathlib import Path

    import ray

    from raytrader.backtesting.sweep_config import parse_sweep_config
    from raytrader.orchestrator.runtime import init_ray
    from raytrader.orchestrator.sweep_pool import SweepPool
    from raytrader.orchestrator.sweep_runner import SweepRunner
    from raytrader.state.stores import open_store


    def alive_nodes():
        return sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])


    async def main(config, work_dir, sweep_id, out):
        cfg = parse_sweep_config(config)
        init_ray()
        deadline = time.monotonic() + 60
        while len(alive_nodes()) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        nodes = alive_nodes()
        pool = SweepPool(2)
        workers = await asyncio.wait_for(pool.ready(), 120)
        async with open_store(None, work_dir) as store:
            runner = SweepRunner(cfg, store, pool, data=cfg.data.load(), sweep_id=sweep_id)
            outcome = await runner.run()
        pool.shutdown()
        result = {
            "nodes": nodes,
            "workers": workers,
            "summary": outcome.summary,
            "table": outcome.table,
        }
        Path(out).write_bytes(pickle.dumps(result))
        ray.shutdown()


    config, work_dir, sweep_id, out = pickle.loads(Path(sys.argv[1]).read_bytes())
    asyncio.run(main(config, Path(work_dir), sweep_id, out))
    """
)


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def run_driver(cluster: RayCluster, work_dir: Path) -> dict[str, Any]:
    """Run the sweep in a driver process joined to ``cluster``; what it reported."""
    args, out = work_dir / "args.pkl", work_dir / "result.pkl"
    args.write_bytes(pickle.dumps((CONFIG, str(work_dir), SWEEP_ID, str(out))))
    script = work_dir / "driver.py"
    script.write_text(DRIVER)
    try:
        done = subprocess.run(
            [sys.executable, str(script), str(args)],
            env={**cluster.env, "RAY_ADDRESS": cluster.address},
            cwd=work_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=DRIVER_TIMEOUT,
            check=False,
        )
        problem = f"exited with code {done.returncode}" if done.returncode else ""
        stdout, stderr = done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        problem = f"did not finish in {DRIVER_TIMEOUT:.0f} s"
        stdout, stderr = _text(exc.stdout), _text(exc.stderr)
    if problem or not out.exists():
        pytest.fail(
            f"the sweep driver {problem or 'wrote no result'}\n"
            f"--- driver stdout\n{stdout[-3000:]}\n--- driver stderr\n{stderr[-6000:]}\n"
            f"{cluster.logs_tail()}",
            pytrace=False,
        )
    result: dict[str, Any] = pickle.loads(out.read_bytes())
    return result


async def stored_trials(work_dir: Path) -> dict[str, dict[str, Any]]:
    async with open_store(None, work_dir) as store:
        return await store.list_records(trials_namespace(SWEEP_ID))


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def same_metric(a: Any, b: Any) -> bool:
    """Equal, or both missing (None in a record is NaN in the table)."""
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    return bool(a == b)


def test_a_sweep_runs_on_both_nodes_with_the_in_process_results(
    two_node_cluster: RayCluster, tmp_path: Path
) -> None:
    cfg = parse_sweep_config(CONFIG)
    grid = cfg.search_space().grid()

    result = run_driver(two_node_cluster, tmp_path)
    nodes, workers, table, summary = (
        result["nodes"],
        result["workers"],
        result["table"],
        result["summary"],
    )
    where = f"nodes {nodes}; workers on {workers}; trials per node {summary['nodes']}"

    # The cluster is the two nodes started here, with one sweep worker on each.
    assert len(nodes) == 2, f"{where}\n{two_node_cluster.logs_tail()}"
    assert sorted(workers) == nodes, where

    # Every grid point ran once, and both nodes ran some of them.
    assert len(table) == len(grid) == summary["trials"] == summary["ran"], summary
    counts = summary["nodes"]
    assert set(counts) == set(nodes), where
    assert all(n > 0 for n in counts.values()), where
    assert sum(counts.values()) == len(grid), where
    assert table["node"].value_counts().to_dict() == counts

    # The store holds one record per trial, each saying which node and process ran it.
    stored = asyncio.run(stored_trials(tmp_path))
    assert set(stored) == set(table["key"])
    assert {r["node"] for r in stored.values()} == set(nodes)
    ran_in = {(r["node"], r["pid"]) for r in stored.values()}
    assert len(ran_in) == 2, f"one worker process per node, not {ran_in}"

    # Distribution changes nothing: the metrics of the trials run in this process.
    local = evaluate_chunk(cfg.data.load(), TrialSetup(agent="sma_cross"), grid)
    by_params = table.set_index(["fast", "slow"])
    assert by_params.index.is_unique
    for rec in local:
        row = by_params.loc[(rec["params"]["fast"], rec["params"]["slow"])]
        assert (row["key"], row["engine"]) == (rec["key"], rec["engine"])
        differ = {
            name: (row[name], value)
            for name, value in rec["metrics"].items()
            if not same_metric(row[name], value)
        }
        assert not differ, f"params {rec['params']}: metric (on the cluster, in process) {differ}"
        kept = stored[rec["key"]]["metrics"]
        assert kept.keys() == rec["metrics"].keys()
        assert all(same_metric(kept[k], v) for k, v in rec["metrics"].items()), rec["params"]
