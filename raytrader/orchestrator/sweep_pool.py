"""Ray workers that run sweep trials: long-lived actors, one per CPU they are given.

The market data reaches a worker as an object-store reference (``ray.put`` once per sweep);
the worker resolves it once and keeps a ``TrialRunner`` per data set and setup, so indicators
and compiled code are reused across chunks and sweeps. A worker keeps at most a few runners,
so its memory stays bounded whatever the number of trials.

A trial is a backtest of an agent's parameters (``TrialSetup``) or of another kind: a
``TrialKind`` builds the runner of its trials on the data (the ML model search scores a
model's parameters by cross-validation).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Protocol

import ray

from raytrader.backtesting.trials import TrialRunner, TrialSetup
from raytrader.orchestrator.heap import keep_freed_memory

_RUNNERS_KEPT = 2


class TrialEvaluator(Protocol):
    def evaluate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A trial's record: key, params, metrics (the objective among them), seconds."""
        ...


class TrialKind(Hashable, Protocol):
    """Trials other than an agent's backtests; hashable (workers keep a runner per kind)."""

    def make_runner(self, data: Any) -> TrialEvaluator: ...


@ray.remote(num_cpus=1, max_restarts=-1)
class SweepWorker:
    def __init__(self) -> None:
        keep_freed_memory()
        self._runners: OrderedDict[tuple[str, Hashable], TrialEvaluator] = OrderedDict()
        self._node = ray.get_runtime_context().get_node_id()

    def _runner(
        self, data_ref: list[ray.ObjectRef[Any]], setup: TrialSetup | TrialKind
    ) -> TrialEvaluator:
        key = (data_ref[0].hex(), setup)
        runner = self._runners.get(key)
        if runner is None:
            data = ray.get(data_ref[0])
            runner = (
                TrialRunner(data, setup)
                if isinstance(setup, TrialSetup)
                else setup.make_runner(data)
            )
            self._runners[key] = runner
            while len(self._runners) > _RUNNERS_KEPT:
                self._runners.popitem(last=False)
        self._runners.move_to_end(key)
        return runner

    def run(
        self,
        data_ref: list[ray.ObjectRef[Any]],  # in a list so Ray passes the reference, not the data
        setup: TrialSetup | TrialKind,
        chunk: Sequence[Mapping[str, Any]],
    ) -> list[dict[str, Any]]:
        runner = self._runner(data_ref, setup)
        records = [runner.evaluate(params) for params in chunk]
        for rec in records:
            rec["node"] = self._node
            rec["pid"] = os.getpid()
        return records

    def ping(self) -> str:
        return self._node


class SweepPool:
    """``size`` workers (at most one per CPU of the cluster) spread over its nodes; reused by
    every sweep of a process. ``env`` sets environment variables in the workers (e.g. the
    data directory whose model registry an ML agent reads)."""

    def __init__(self, size: int | None = None, env: Mapping[str, str] | None = None) -> None:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]
        # A worker holds a CPU: more workers than CPUs would wait forever to be placed.
        self.size = min(size or cpus, cpus)
        options: dict[str, Any] = {"scheduling_strategy": "SPREAD"}
        if env:
            options["runtime_env"] = {"env_vars": dict(env)}
        self.workers = [
            SweepWorker.options(**options).remote()  # type: ignore[attr-defined]
            for _ in range(self.size)
        ]

    async def ready(self) -> list[str]:
        """Wait until every worker runs; their node ids."""
        return list(await _gather([w.ping.remote() for w in self.workers]))

    def shutdown(self) -> None:
        for w in self.workers:
            ray.kill(w)
        self.workers = []


async def _gather(refs: list[ray.ObjectRef[Any]]) -> list[Any]:
    import asyncio

    return list(await asyncio.gather(*refs))
