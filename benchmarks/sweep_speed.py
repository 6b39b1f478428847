"""Speed of raytrader's parameter sweeps against vectorbt, backtesting.py and a numba loop.

The grid: SMA crossover with ``fast`` in 5..50 step 5 and ``slow`` in 20..200 step 10, the pairs
with fast < slow (174 configs), on ``--bars`` (100k) seeded GBM 1-minute bars
(``peers.gbm_bars``). The strategy of ``benchmarks/peers.py`` in every engine: SMA(fast) crosses
above SMA(slow) at bar t's close -> buy all-in at bar t+1's open (whole units); crosses below ->
sell everything at the next open; long only; 0.1 % commission each side; 1M cash; the position
open at the end marked to the last close.

Timed in one process, one engine after the other, each after an untimed warm-up:

- ``numba loop``, the least an engine can do (one core): the SMA of every distinct window, then
  one compiled loop over the bars per config (defined here);
- ``vectorbt``, if installed: ``MA.run`` of the fast and of the slow windows (a column per
  config), ``ma_crossed_above`` / ``ma_crossed_below``, the signals moved one bar on and
  ``Portfolio.from_signals`` filled at the open: all the configs as the columns of one call;
- ``backtesting.py``: ``Backtest.optimize`` over the grid (its process pool: all the cores),
  once; ``--quick`` runs it on ``--quick-configs`` configs spread evenly over the grid (every
  fast length, short and long slow ones, rather than the first configs, all with fast=5), and
  its rate stands for the grid's, labelled so. It runs before Ray starts: its pool forks this
  process;
- ``raytrader``: ``SweepRunner.run`` on a ``SweepPool`` of 2 Ray workers, every trial on the
  numba fast path. Once cold, end to end: Ray's start, the pool's start-up and the first sweep
  (the workers import raytrader, load the compiled kernels, receive the data). Then warm (after
  a warm-up sweep), with the sweep capped at 1 and at 2 workers, interleaved. Every sweep has a
  new id (a known id would resume and find nothing left to run), so every sweep puts the data
  in the object store again and builds its workers' indicator caches again.

Then the 1 -> 2 worker scaling on a bigger grid (fast 2..60 step 1 x slow 10..300 step 5, 3,195
configs, which amortizes the per-sweep start-up), and one SMA(10/30) run on ``--single-bars``
(1M) bars: the fast path (``run_fast`` as in ``benchmarks/fast_path_speed.py``), vectorbt (the
same two runs as there) and the numba loop.

Wall time is the measure of the targets. CPU time is reported beside it, since other load on a
shared machine inflates it far less: this process's, plus its reaped children's (backtesting.py's
pool), plus the Ray workers' (from ``/proc``; Ray's own daemons are not counted).

Checks, printed, never failing the run: the best config by final equity of every engine against
raytrader's (among the configs it ran), and the largest relative difference of the final
equities config by config.

    .venv/bin/python benchmarks/sweep_speed.py                # ~4 min on 2 idle cores
    .venv/bin/python benchmarks/sweep_speed.py --quick        # backtesting.py on 20 configs
    .venv/bin/python benchmarks/sweep_speed.py --bars 20000 --repeats 3 --no-big-grid
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import math
import os
import resource
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.backtest_speed import _cores, _load, machine, revision  # noqa: E402
from benchmarks.fast_path_speed import vectorbt_runs  # noqa: E402
from benchmarks.peers import (  # noqa: E402  (sets TQDM_DISABLE before tqdm is imported)
    COMMISSION,
    DEFAULT_SEED,
    INITIAL_CASH,
    BtpySmaCross,
    backtesting_frame,
    gbm_bars,
)
from raytrader.agents import create  # noqa: E402
from raytrader.backtesting.fast_path import run_fast  # noqa: E402
from raytrader.backtesting.sweep_config import SweepConfig, parse_sweep_config  # noqa: E402
from raytrader.data.market_data import MarketData  # noqa: E402
from raytrader.execution import CommissionModel, PaperBrokerConfig  # noqa: E402
from raytrader.log import configure_logging  # noqa: E402
from raytrader.portfolio import PortfolioConfig  # noqa: E402

FloatArray = npt.NDArray[np.float64]
Pair = tuple[int, int]
Grid = dict[str, tuple[int, int, int]]

#: The grid of the issue, and a bigger one for the worker scaling (inclusive ranges).
GRID: Grid = {"fast": (5, 50, 5), "slow": (20, 200, 10)}
BIG_GRID: Grid = {"fast": (2, 60, 1), "slow": (10, 300, 5)}
POOL_SIZE = 2
WARMUP_BARS = 5_000
BROKER = PaperBrokerConfig(commission=CommissionModel(bps=COMMISSION * 1e4))
PORTFOLIO = PortfolioConfig(lot_size=1.0)
SINGLE_FAST, SINGLE_SLOW = 10, 30  # benchmarks/fast_path_speed.py's SMA(10/30)

#: The issue's targets: the fast path's single run and the sweep against vectorbt, the sweep
#: against backtesting.py's optimize, the 1 -> 2 worker speed-up on a big grid.
TARGET_SINGLE_VS_VBT = 5.0
TARGET_SWEEP_VS_VBT = 10.0
TARGET_SWEEP_VS_BTPY = 100.0
TARGET_SCALING = 1.7

VBT_MISSING = "vectorbt not installed (pip install vectorbt)"


def grid_pairs(grid: Grid) -> list[Pair]:
    """The (fast, slow) pairs with fast < slow, in raytrader's grid order (fast outer)."""
    (f0, f1, fs), (s0, s1, ss) = grid["fast"], grid["slow"]
    return [(f, s) for f in range(f0, f1 + 1, fs) for s in range(s0, s1 + 1, ss) if f < s]


def spread(pairs: Sequence[Pair], k: int) -> list[Pair]:
    """``k`` configs evenly spaced over ``pairs`` (all of them if ``k`` is not smaller)."""
    n = len(pairs)
    return list(pairs) if k >= n else [pairs[i * n // k] for i in range(k)]


def grid_label(grid: Grid) -> str:
    (f0, f1, fs), (s0, s1, ss) = grid["fast"], grid["slow"]
    return f"fast {f0}..{f1} step {fs} x slow {s0}..{s1} step {ss}"


# ---------------------------------------------------------------------------------- timing


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def pids_cpu(pids: Iterable[int]) -> float:
    """CPU seconds (user + system) used so far by the processes ``pids`` (Linux; else NaN)."""
    total = 0.0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return math.nan
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)"; utime, stime: 14, 15
        total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def own_cpu() -> float:
    """CPU seconds of this process and of its reaped children (a process pool's workers)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ru.ru_utime + ru.ru_stime


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, CPU seconds (``own_cpu``) and the result of ``fn()``."""
    gc.collect()
    t0, c0 = time.perf_counter(), own_cpu()
    out = fn()
    return time.perf_counter() - t0, own_cpu() - c0, out


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


@dataclass
class Row:
    """One engine of the grid table."""

    engine: str
    how: str
    configs: int  # configs of one timed run
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    final: dict[Pair, float] = field(default_factory=dict)  # final equity per config
    notes: list[str] = field(default_factory=list)
    unavailable: str | None = None

    @property
    def rate(self) -> float:
        return self.configs / median(self.seconds) if self.seconds else math.nan

    @property
    def cpu_rate(self) -> float:
        return self.configs / median(self.cpu) if self.cpu else math.nan


def best_of(final: dict[Pair, float], among: Iterable[Pair] | None = None) -> Pair | None:
    """The config with the highest final equity (ties: the first in grid order)."""
    keep = set(final if among is None else among)
    items = [(p, v) for p, v in final.items() if p in keep and v == v]
    return max(items, key=lambda pv: pv[1])[0] if items else None


def max_rel_diff(a: dict[Pair, float], b: dict[Pair, float]) -> tuple[float, int]:
    """Largest relative difference of the final equities of the configs both have."""
    common = [p for p in a if p in b and a[p] == a[p] and b[p] == b[p]]
    if not common:
        return math.nan, 0
    return max(abs(a[p] - b[p]) / abs(a[p]) for p in common), len(common)


# ------------------------------------------------------------------------------- numba loop


@numba.njit(cache=False, nogil=True)
def _sma_nb(close: FloatArray, n: int) -> FloatArray:
    out = np.full(close.shape[0], np.nan)
    s = 0.0
    for i in range(close.shape[0]):
        s += close[i]
        if i >= n:
            s -= close[i - n]
        if i >= n - 1:
            out[i] = s / n
    return out


@numba.njit(cache=False, nogil=True)
def _simulate_nb(
    open_: FloatArray,
    close: FloatArray,
    fast: FloatArray,
    slow: FloatArray,
    start: int,
    cash: float,
    fee: float,
) -> float:
    """Final equity of the strategy given both SMAs; signals from bar ``start`` (slow) on."""
    units = 0.0
    pending = 0  # +1 buy / -1 sell at this bar's open (decided at the previous close)
    for t in range(open_.shape[0]):
        if pending == 1 and units == 0.0:
            q = math.floor(cash / (open_[t] * (1.0 + fee)))
            if q > 0.0:
                notional = q * open_[t]
                cash -= notional + notional * fee
                units = q
        elif pending == -1 and units > 0.0:
            notional = units * open_[t]
            cash += notional - notional * fee
            units = 0.0
        pending = 0
        if t >= start and t >= 1:
            if fast[t - 1] < slow[t - 1] and fast[t] > slow[t]:
                pending = 1
            elif fast[t - 1] > slow[t - 1] and fast[t] < slow[t]:
                pending = -1
    return float(cash + units * close[-1])


@numba.njit(cache=False, nogil=True)
def _grid_nb(
    open_: FloatArray,
    close: FloatArray,
    smas: FloatArray,
    fast_row: npt.NDArray[np.int64],
    slow_row: npt.NDArray[np.int64],
    slow_len: npt.NDArray[np.int64],
    cash: float,
    fee: float,
) -> FloatArray:
    out = np.empty(fast_row.shape[0])
    for k in range(fast_row.shape[0]):
        out[k] = _simulate_nb(
            open_, close, smas[fast_row[k]], smas[slow_row[k]], slow_len[k], cash, fee
        )
    return out


def _arrays(bars: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
    return (
        np.ascontiguousarray(bars["open"].to_numpy(np.float64)),
        np.ascontiguousarray(bars["close"].to_numpy(np.float64)),
    )


def numba_sweep(bars: pd.DataFrame, pairs: Sequence[Pair]) -> dict[Pair, float]:
    """Final equity per config: each distinct window's SMA once, then one loop per config."""
    open_, close = _arrays(bars)
    windows = sorted({w for pair in pairs for w in pair})
    row = {w: k for k, w in enumerate(windows)}
    smas = np.empty((len(windows), len(close)))
    for w, k in row.items():
        smas[k] = _sma_nb(close, w)
    fast_row = np.array([row[f] for f, _ in pairs], dtype=np.int64)
    slow_row = np.array([row[s] for _, s in pairs], dtype=np.int64)
    slow_len = np.array([s for _, s in pairs], dtype=np.int64)
    final = _grid_nb(open_, close, smas, fast_row, slow_row, slow_len, INITIAL_CASH, COMMISSION)
    return dict(zip(pairs, final.tolist(), strict=True))


def numba_single(bars: pd.DataFrame, fast: int, slow: int) -> float:
    open_, close = _arrays(bars)
    fast_ma, slow_ma = _sma_nb(close, fast), _sma_nb(close, slow)
    return float(_simulate_nb(open_, close, fast_ma, slow_ma, slow, INITIAL_CASH, COMMISSION))


# --------------------------------------------------------------------------------- vectorbt


def vectorbt_module() -> Any | None:
    try:
        return importlib.import_module("vectorbt")
    except ImportError:
        return None


def vectorbt_sweep(vbt: Any, bars: pd.DataFrame, pairs: Sequence[Pair]) -> dict[Pair, float]:
    """Final equity per config, all the configs as the columns of one vectorbt portfolio."""
    # A naive index: with a tz-aware one pandas boxes every timestamp when vectorbt wraps its
    # results (see benchmarks/fast_path_speed.py), which would time pandas, not vectorbt.
    bars = bars.tz_convert(None)
    close, open_ = bars["close"], bars["open"]
    fast_ma = vbt.MA.run(close, [f for f, _ in pairs], short_name="fast")
    slow_ma = vbt.MA.run(close, [s for _, s in pairs], short_name="slow")
    up = fast_ma.ma_crossed_above(slow_ma)
    down = fast_ma.ma_crossed_below(slow_ma)
    # Decided at bar t's close, filled at bar t+1's open.
    entries = np.zeros(up.shape, dtype=bool)
    exits = np.zeros(down.shape, dtype=bool)
    entries[1:] = up.to_numpy()[:-1]
    exits[1:] = down.to_numpy()[:-1]
    pf = vbt.Portfolio.from_signals(
        close,
        pd.DataFrame(entries, index=up.index, columns=up.columns),
        pd.DataFrame(exits, index=up.index, columns=up.columns),
        price=open_,
        size=np.inf,
        fees=COMMISSION,
        size_granularity=1.0,
        init_cash=INITIAL_CASH,
        freq="1min",
    )
    final = pf.final_value().to_numpy()
    return dict(zip(pairs, final.tolist(), strict=True))


# ---------------------------------------------------------------------------- backtesting.py


def backtesting_sweep(bars: pd.DataFrame, pairs: Sequence[Pair]) -> dict[Pair, float]:
    """``Backtest.optimize`` over ``pairs``: final equity per config (NaN: no trade).

    Includes what ``optimize`` does besides the runs: its process pool and shared memory, and
    its re-run of the best config.
    """
    import backtesting

    allowed = set(pairs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "insufficient margin" once the account is small
        bt = backtesting.Backtest(
            backtesting_frame(bars), BtpySmaCross, cash=INITIAL_CASH, commission=COMMISSION
        )
        _, heatmap = bt.optimize(
            fast=sorted({f for f, _ in pairs}),
            slow=sorted({s for _, s in pairs}),
            constraint=lambda p: (p.fast, p.slow) in allowed,
            maximize="Equity Final [$]",
            return_heatmap=True,
        )
    return {(int(f), int(s)): float(v) for (f, s), v in heatmap.items()}


# ------------------------------------------------------------------------------- raytrader


def sweep_config(grid: Grid, workers: int) -> SweepConfig:
    (f0, f1, fs), (s0, s1, ss) = grid["fast"], grid["slow"]
    return parse_sweep_config(
        {
            "name": "bench",
            "data": {"synthetic": {"n_bars": 1000}},  # required; the runner is given data=
            "agent": "sma_cross",
            "space": {
                "fast": {"start": f0, "stop": f1, "step": fs},
                "slow": {"start": s0, "stop": s1, "step": ss},
            },
            "search": {"method": "grid"},
            "objective": "final_equity",
            "initial_cash": INITIAL_CASH,
            "broker": BROKER.model_dump(mode="json"),
            "portfolio": PORTFOLIO.model_dump(mode="json"),
            "engine": "fast",  # fail rather than time the event engine by mistake
            "workers": workers,
        }
    )


@dataclass
class SweepRun:
    seconds: float  # wall time of SweepRunner.run, as its caller sees it
    cpu: float  # CPU seconds of this process and of the pool's workers over the same span
    trials: int
    final: dict[Pair, float]
    trial_ms: float  # median time of one trial inside a worker (TrialRunner.evaluate)
    busy: float  # the trials' time / (wall time x workers used)
    summary: dict[str, Any]


class RaytraderBench:
    """A started pool and a store; ``sweep`` runs one grid under a new sweep id."""

    def __init__(self, store: Any, pool: Any) -> None:
        self.store = store
        self.pool = pool
        self.count = 0
        self.worker_pids: list[int] = []

    async def sweep(self, grid: Grid, workers: int, data: MarketData) -> SweepRun:
        from raytrader.orchestrator.sweep_runner import SweepRunner, trials_namespace

        self.count += 1
        sweep_id = f"bench-{self.count}-{workers}w"
        runner = SweepRunner(
            sweep_config(grid, workers), self.store, self.pool, data=data, sweep_id=sweep_id
        )
        gc.collect()
        cpu0 = time.process_time() + pids_cpu(self.worker_pids)
        t0 = time.perf_counter()
        out = await runner.run()
        seconds = time.perf_counter() - t0
        if not self.worker_pids:  # the cold run: the workers started within the timed span
            records = await self.store.list_records(trials_namespace(sweep_id))
            self.worker_pids = sorted({int(r["pid"]) for r in records.values() if "pid" in r})
        cpu = time.process_time() + pids_cpu(self.worker_pids) - cpu0
        table = out.table
        final = {
            (int(f), int(s)): float(v)
            for f, s, v in zip(table["fast"], table["slow"], table["final_equity"], strict=True)
        }
        return SweepRun(
            seconds=seconds,
            cpu=cpu,
            trials=len(table),
            final=final,
            trial_ms=float(table["seconds"].median()) * 1e3,
            busy=float(table["seconds"].sum()) / (seconds * out.summary["workers"]),
            summary=dict(out.summary),
        )


async def raytrader_section(
    args: argparse.Namespace, data: MarketData, log: Callable[[str], None]
) -> dict[str, Any]:
    """Cold end to end (Ray, pool, first sweep), then warm sweeps, then the big grid."""
    import ray

    from raytrader.orchestrator.runtime import init_ray
    from raytrader.orchestrator.sweep_pool import SweepPool
    from raytrader.state.stores import open_store

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with open_store(None, Path(tmp)) as store:
            gc.collect()
            t0, c0 = time.perf_counter(), time.process_time()
            init_ray(num_cpus=POOL_SIZE)
            t_ray = time.perf_counter()
            pool = SweepPool(POOL_SIZE)
            await pool.ready()
            t_pool = time.perf_counter()
            bench = RaytraderBench(store, pool)
            try:
                first = await bench.sweep(GRID, POOL_SIZE, data)
                out["cold"] = {
                    "ray": t_ray - t0,
                    "pool": t_pool - t_ray,
                    "total": time.perf_counter() - t0,
                    # The workers' CPU since they started: their imports included.
                    "cpu": time.process_time() - c0 + pids_cpu(bench.worker_pids),
                    "run": first,
                }
                log(f"raytrader cold: {out['cold']['total']:.2f} s")
                await bench.sweep(GRID, POOL_SIZE, data)  # warm-up
                warm: dict[int, list[SweepRun]] = {1: [], POOL_SIZE: []}
                for k in range(args.repeats):
                    for workers, runs in warm.items():
                        runs.append(await bench.sweep(GRID, workers, data))
                        log(f"raytrader {workers}w run {k + 1}: {runs[-1].seconds:.3f} s")
                out["warm"] = warm
                if not args.no_big_grid:
                    big: dict[int, list[SweepRun]] = {1: [], POOL_SIZE: []}
                    for k in range(args.big_repeats):
                        for workers, runs in big.items():
                            runs.append(await bench.sweep(BIG_GRID, workers, data))
                            log(
                                f"raytrader big grid {workers}w run {k + 1}: {runs[-1].seconds:.2f}"
                            )
                    out["big"] = big
            finally:
                pool.shutdown()
    ray.shutdown()
    return out


def raytrader_row(name: str, how: str, runs: list[SweepRun]) -> Row:
    row = Row(name, how, runs[0].trials, [r.seconds for r in runs], [r.cpu for r in runs])
    row.final = runs[0].final
    s = runs[0].summary
    given = [r.summary.get("overhead_ms_per_trial") for r in runs]
    overhead = median([math.nan if v is None else float(v) for v in given])
    row.notes.append(
        f"a trial takes {median([r.trial_ms for r in runs]):.2f} ms in its worker (median); "
        f"workers busy {median([r.busy for r in runs]):.0%} of the wall time"
        + (f", overhead {overhead:.2f} ms/trial" if overhead == overhead else "")
        + (f"; {s['chunks']} chunks" if "chunks" in s else "")
        + (f"; chunks of {s['chunk_size']}" if "chunk_size" in s else "")
        + f"; engines {s.get('engines')}"
    )
    return row


# -------------------------------------------------------------------------------- output


def print_table(title: str, headers: list[str], rows: list[list[str]], left: int = 1) -> None:
    """A rich table if rich is installed, else aligned text; the first ``left`` columns flush
    left."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        print(f"\n{title}")
        just = [str.ljust if i < left else str.rjust for i in range(len(headers))]
        print("  ".join(j(h, w) for j, h, w in zip(just, headers, widths, strict=True)))
        for row in rows:
            print("  ".join(j(c, w) for j, c, w in zip(just, row, widths, strict=True)))
        return
    table = Table(title=title)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i < left else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)


def _x(value: float) -> str:
    if value != value:
        return "-"
    return f"{value:,.2f}x" if value < 10 else f"{value:,.0f}x"


def _num(value: float, spec: str) -> str:
    return "-" if value != value else format(value, spec)


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("raytrader", "ray", "numba", "numpy", "pandas", "backtesting", "vectorbt"):
        try:
            out.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            out.append(f"{dist} not installed")
    return ", ".join(out)


def verdict(measured: float, target: float) -> str:
    if measured != measured:
        return "not measured"
    if measured >= target:
        return f"met, {measured:,.2f}x"
    return f"MISSED, {measured:,.2f}x ({measured / target:.0%} of the target)"


def grid_table(rows: list[Row], title: str) -> None:
    by = {r.engine: r for r in rows}
    ref = by["raytrader, 1 worker"].final
    vbt, btpy = by["vectorbt"], by["backtesting.py"]
    headers = [
        "engine", "runs", "wall s", "configs/s", "vs vectorbt", "vs backtesting.py", "CPU s",
        "configs/CPU s", "CPU vs vectorbt", "best (fast, slow)", "best = raytrader's",
        "final equity: max rel. diff (configs)",
    ]  # fmt: skip
    out = []
    for r in rows:
        if r.unavailable:
            out.append([r.engine, "-", "-", "-", r.unavailable, *["-"] * 7])
            continue
        best = best_of(r.final)
        same = "reference"
        if r.final is not ref:
            same = "yes" if best == best_of(ref, r.final) else "NO"
            if set(r.final) != set(ref):
                same += f" (among its {len(r.final)})"
        diff, common = max_rel_diff(ref, r.final)
        out.append(
            [
                r.engine,
                str(len(r.seconds)),
                _num(median(r.seconds), ".3f"),
                _num(r.rate, ",.1f"),
                _x(r.rate / vbt.rate),
                _x(r.rate / btpy.rate),
                _num(median(r.cpu), ".3f"),
                _num(r.cpu_rate, ",.1f"),
                _x(r.cpu_rate / vbt.cpu_rate),
                f"{best[0]}, {best[1]}" if best else "-",
                same,
                "-" if r.final is ref else f"{diff:.1e} ({common})",
            ]
        )
    print_table(title, headers, out)
    for r in rows:
        print(f"  {r.engine}: {r.how}" + "".join(f"; {n}" for n in r.notes))


# ---------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bars", type=int, default=100_000, help="bars of the grid sweeps (100000)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per engine (medians; 5)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="backtesting.py's optimize on --quick-configs configs spread over the grid",
    )
    p.add_argument("--quick-configs", type=int, default=20)
    p.add_argument("--big-repeats", type=int, default=3, help="runs per worker count, big grid")
    p.add_argument("--no-big-grid", action="store_true", help="skip the big-grid scaling")
    p.add_argument("--single-bars", type=int, default=1_000_000, help="bars of the single run")
    p.add_argument("--no-single", action="store_true", help="skip the single run")
    p.add_argument("--no-backtesting", action="store_true", help="skip backtesting.py")
    p.add_argument(
        "--profile-trials",
        action="store_true",
        help="also profile the grid's trials in this process, as a worker runs them",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    if min(args.repeats, args.big_repeats, args.quick_configs) < 1:
        p.error("--repeats, --big-repeats and --quick-configs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("warning")  # the sweep runner logs every sweep at info

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    pairs = grid_pairs(GRID)
    n = args.bars
    bars = gbm_bars(n, args.seed)
    warm_bars = gbm_bars(WARMUP_BARS, args.seed + 1)
    vbt = vectorbt_module()
    rev = revision()  # the code this process imports (others may commit while it runs)
    load_before = _load()
    started = time.perf_counter()
    rows: list[Row] = []

    row = Row("numba loop", "SMA per distinct window, one compiled loop per config; 1 core", 0)
    row.configs = len(pairs)
    numba_sweep(warm_bars, pairs)  # compile
    for k in range(args.repeats):
        wall, cpu, row.final = timed(lambda: numba_sweep(bars, pairs))
        row.seconds.append(wall)
        row.cpu.append(cpu)
        log(f"numba loop run {k + 1}: {wall:.3f} s")
    rows.append(row)

    row = Row(
        "vectorbt",
        "MA.run x2, ma_crossed_above/below, Portfolio.from_signals, configs as columns; 1 core",
        len(pairs),
    )
    if vbt is None:
        row.unavailable = VBT_MISSING
    else:
        vectorbt_sweep(vbt, warm_bars, pairs)  # compile (or load) vectorbt's numba functions
        for k in range(args.repeats):
            wall, cpu, row.final = timed(lambda: vectorbt_sweep(vbt, bars, pairs))
            row.seconds.append(wall)
            row.cpu.append(cpu)
            log(f"vectorbt run {k + 1}: {wall:.3f} s")
    rows.append(row)

    # backtesting.py before Ray starts: its process pool forks this process.
    btpy_pairs = spread(pairs, args.quick_configs) if args.quick else pairs
    how = f"Backtest.optimize, {_cores()} processes, 1 run (its re-run of the best included)"
    if args.quick:
        how += f"; QUICK: {len(btpy_pairs)} of the {len(pairs)} configs, spread over the grid"
    row = Row("backtesting.py", how, len(btpy_pairs))
    if args.no_backtesting:
        row.unavailable = "skipped (--no-backtesting)"
    else:
        backtesting_sweep(warm_bars, pairs[:4])  # imports, first-call costs
        log(f"backtesting.py optimize on {len(btpy_pairs)} configs...")
        wall, cpu, row.final = timed(lambda: backtesting_sweep(bars, btpy_pairs))
        row.seconds.append(wall)
        row.cpu.append(cpu)
        if args.quick:
            whole = wall * len(pairs) / len(btpy_pairs)
            row.notes.append(f"the whole grid would take ~{whole:.0f} s")
        log(f"backtesting.py: {wall:.1f} s")
    rows.append(row)

    rt = asyncio.run(raytrader_section(args, MarketData.from_frames({"X": bars}), log))
    warm_how = f"pool of {POOL_SIZE} started, after a warm-up sweep; fast path"
    rows.append(raytrader_row("raytrader, 1 worker", warm_how, rt["warm"][1]))
    rows.append(raytrader_row(f"raytrader, {POOL_SIZE} workers", warm_how, rt["warm"][POOL_SIZE]))
    cold = rt["cold"]
    row = raytrader_row(
        f"raytrader, {POOL_SIZE} workers, cold",
        f"Ray start {cold['ray']:.2f} s + pool start-up {cold['pool']:.2f} s + first sweep "
        f"{cold['run'].seconds:.2f} s, once (CPU: Ray's daemons not counted)",
        [cold["run"]],
    )
    row.seconds, row.cpu = [cold["total"]], [cold["cpu"]]
    rows.append(row)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    grid_table(
        rows,
        f"Grid sweep, SMA cross {grid_label(GRID)} (fast < slow: {len(pairs)} configs), "
        f"{n:,} bars; medians of up to {args.repeats} runs - {when} - {machine()}",
    )

    by = {r.engine: r for r in rows}
    one, two = by["raytrader, 1 worker"], by[f"raytrader, {POOL_SIZE} workers"]
    scaling = [[grid_label(GRID), f"{len(pairs):,}", str(args.repeats), *_scaling_cells(one, two)]]
    scale_small = median(one.seconds) / median(two.seconds)
    scale_big = math.nan
    if "big" in rt:
        big_one = raytrader_row("1", "", rt["big"][1])
        big_two = raytrader_row("2", "", rt["big"][POOL_SIZE])
        scale_big = median(big_one.seconds) / median(big_two.seconds)
        scaling.append(
            [
                grid_label(BIG_GRID),
                f"{big_one.configs:,}",
                str(args.big_repeats),
                *_scaling_cells(big_one, big_two),
            ]
        )
    headers = [
        "grid", "configs", "runs", "1 worker s", f"{POOL_SIZE} workers s", "configs/s 1w",
        f"configs/s {POOL_SIZE}w", "speed-up", "per pair of runs", "CPU s 1w",
        f"CPU s {POOL_SIZE}w",
    ]  # fmt: skip
    print_table(
        f"raytrader, 1 -> {POOL_SIZE} workers on {n:,} bars (pool of {POOL_SIZE}, warm; medians)",
        headers,
        scaling,
    )

    if args.profile_trials:
        profile_trials(bars, pairs)

    single_vs_vbt = single_cpu_vs_vbt = math.nan
    if not args.no_single:
        single_vs_vbt, single_cpu_vs_vbt = single_section(args, vbt, log)

    vs_vbt, vs_btpy = two.rate / by["vectorbt"].rate, two.rate / by["backtesting.py"].rate
    cpu_vs_vbt = two.cpu_rate / by["vectorbt"].cpu_rate
    print("\nTargets (wall time; CPU time in brackets):")
    print(
        f"- fast path single run, bars/s >= {TARGET_SINGLE_VS_VBT:g}x vectorbt's (end to end): "
        f"{verdict(single_vs_vbt, TARGET_SINGLE_VS_VBT)} [{_x(single_cpu_vs_vbt)}]"
    )
    print(
        f"- sweep, {POOL_SIZE} warm workers, configs/s >= {TARGET_SWEEP_VS_VBT:g}x vectorbt's: "
        f"{verdict(vs_vbt, TARGET_SWEEP_VS_VBT)} [{_x(cpu_vs_vbt)}]"
    )
    print(
        f"- the same >= {TARGET_SWEEP_VS_BTPY:g}x backtesting.py's optimize: "
        f"{verdict(vs_btpy, TARGET_SWEEP_VS_BTPY)}"
        + (" (its rate from the --quick subset)" if args.quick else "")
    )
    print(
        f"- 1 -> {POOL_SIZE} workers on the big grid >= {TARGET_SCALING:g}x: "
        f"{verdict(scale_big, TARGET_SCALING)} (on the {len(pairs)}-config grid "
        f"{scale_small:.2f}x)"
    )
    load_after = _load()
    print(
        f"\nraytrader at {rev}; {versions()}; seed {args.seed}; {time.perf_counter() - started:.0f}"
        f" s in all; load average {load_before:.1f} -> {load_after:.1f} on {_cores()} cores"
    )
    if max(load_before, load_after) > _cores():
        print("the load average exceeded the core count: other work shared the CPUs, so wall")
        print("times are inflated (those of several processes the most); see the CPU columns")
        if _autogroup():
            print("and this kernel shares the CPU out by session (autogroup): the Ray workers and")
            print("backtesting.py's processes share this session's one share, so under such load")
            print("1 -> 2 workers cannot speed up")
    return 0


def _autogroup() -> bool:
    """Whether Linux groups processes by session for CPU scheduling (sched_autogroup)."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def _scaling_cells(one: Row, two: Row) -> list[str]:
    return [
        f"{median(one.seconds):.3f}",
        f"{median(two.seconds):.3f}",
        f"{one.rate:,.0f}",
        f"{two.rate:,.0f}",
        _x(median(one.seconds) / median(two.seconds)),
        # Each 1-worker run and the 2-worker run right after it: close in time, so under
        # changing load on the machine these ratios are steadier than the ratio of medians.
        ", ".join(f"{a / b:.2f}" for a, b in zip(one.seconds, two.seconds, strict=True)),
        f"{median(one.cpu):.3f}",
        f"{median(two.cpu):.3f}",
    ]


def profile_trials(bars: pd.DataFrame, pairs: Sequence[Pair], top: int = 25) -> None:
    """cProfile of ``TrialRunner.evaluate`` over the grid, in this process: what a worker does
    per trial, with a fresh indicator cache as in the first chunk of a sweep."""
    import cProfile
    import pstats

    from raytrader.backtesting.trials import TrialRunner, TrialSetup

    cfg = sweep_config(GRID, 1)
    setup = TrialSetup(
        agent=cfg.agent,
        initial_cash=cfg.initial_cash,
        broker=cfg.broker,
        portfolio=cfg.portfolio,
        periods_per_year=cfg.periods_per_year,
        engine=cfg.engine,
    )
    data = MarketData.from_frames({"X": bars})
    params = [{"fast": f, "slow": s} for f, s in pairs]
    TrialRunner(data, setup).evaluate(params[0])  # first-call costs
    runner = TrialRunner(data, setup)
    c0 = time.process_time()
    for p in params:
        runner.evaluate(p)
    plain = (time.process_time() - c0) / len(params) * 1e3
    runner = TrialRunner(data, setup)
    prof = cProfile.Profile()
    prof.enable()
    for p in params:
        runner.evaluate(p)
    prof.disable()
    stats: dict[Any, Any] = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    entries = sorted(
        ((ct, tt, nc, f"{Path(file).name}:{line}({fn})") for (file, line, fn), (_, nc, tt, ct, _)
         in stats.items()),
        reverse=True,
    )  # fmt: skip
    k = len(params)
    rows = [
        [name, f"{nc / k:,.1f}", f"{tt / k * 1e3:.3f}", f"{ct / k * 1e3:.3f}"]
        for ct, tt, nc, name in entries[:top]
    ]
    print_table(
        f"TrialRunner.evaluate over the {k} configs on {len(bars):,} bars, in this process: "
        f"{plain:.2f} ms CPU per trial unprofiled; per trial, by cumulative time (profiled)",
        ["function", "calls", "own ms", "cumulative ms"],
        rows,
    )


def _final_value(fn: Callable[[], Any]) -> Callable[[], float]:
    return lambda: float(fn().final_value())


def single_section(
    args: argparse.Namespace, vbt: Any | None, log: Callable[[str], None]
) -> tuple[float, float]:
    """One SMA(10/30) run on ``--single-bars`` bars; the fast path's wall and CPU ratios to
    vectorbt end to end."""
    n = args.single_bars
    bars = gbm_bars(n, args.seed)
    data = MarketData.from_frames({"X": bars})
    warm_bars = gbm_bars(WARMUP_BARS, args.seed + 1)
    warm = MarketData.from_frames({"X": warm_bars})

    def agent() -> Any:
        return create("sma_cross", {"fast": SINGLE_FAST, "slow": SINGLE_SLOW})

    def fast(d: MarketData) -> float:
        return run_fast(d, agent(), INITIAL_CASH, BROKER, PORTFOLIO).final_equity

    def fast_metrics(d: MarketData) -> float:
        return run_fast(d, agent(), INITIAL_CASH, BROKER, PORTFOLIO).metrics().final_equity

    def numba_loop(b: pd.DataFrame) -> float:
        return numba_single(b, SINGLE_FAST, SINGLE_SLOW)

    runs: dict[str, Callable[[], float]] = {
        "fast path: run_fast": lambda: fast(data),
        "fast path: run_fast + metrics()": lambda: fast_metrics(data),
        "numba loop": lambda: numba_loop(bars),
        "  of which agent.target_events": lambda: float(agent().target_events(data).shape[1]),
    }
    fast(warm), fast_metrics(warm), numba_loop(warm_bars)  # compile / load the kernels
    if vbt is not None:
        got = vectorbt_runs(bars, agent().target_events(data))
        warm_got = vectorbt_runs(warm_bars, agent().target_events(warm))
        assert got is not None and warm_got is not None
        for fn in warm_got[0].values():
            fn()
        for name, fn in got[0].items():
            runs[name] = _final_value(fn)
    times: dict[str, list[float]] = {name: [] for name in runs}
    cpus: dict[str, list[float]] = {name: [] for name in runs}
    finals: dict[str, float] = {}
    for k in range(args.repeats):
        for name, fn in runs.items():
            wall, cpu, finals[name] = timed(fn)
            times[name].append(wall)
            cpus[name].append(cpu)
        log(f"single run, round {k + 1}/{args.repeats} done")
    e2e = "vectorbt end to end"
    vbt_wall = median(times.get(e2e, []))
    vbt_cpu = median(cpus.get(e2e, []))
    ref = finals["fast path: run_fast"]
    rows = [
        [
            name,
            str(len(times[name])),
            f"{median(times[name]):.4f}",
            f"{n / median(times[name]):,.0f}",
            _x(vbt_wall / median(times[name])),
            f"{median(cpus[name]):.4f}",
            f"{n / median(cpus[name]):,.0f}",
            _x(vbt_cpu / median(cpus[name])),
            "-" if "target_events" in name else f"{finals[name]:,.2f}",
            "reference"
            if name == "fast path: run_fast"
            else "-"
            if "target_events" in name
            else f"{abs(finals[name] / ref - 1):.1e}",
        ]
        for name in runs
    ]
    if vbt is None:
        rows.append([e2e, "-", "-", VBT_MISSING, *["-"] * 6])
    headers = [
        "run", "runs", "wall s", "bars/s", "vs vectorbt e2e", "CPU s", "bars/CPU s",
        "CPU vs vectorbt e2e", "final equity", "rel. diff",
    ]  # fmt: skip
    print_table(
        f"Single run: SMA({SINGLE_FAST}/{SINGLE_SLOW}) on {n:,} bars; medians of {args.repeats} "
        "interleaved runs after a warm-up",
        headers,
        rows,
    )
    fast_name = "fast path: run_fast"
    return vbt_wall / median(times[fast_name]), vbt_cpu / median(cpus[fast_name])


if __name__ == "__main__":
    sys.exit(main())
