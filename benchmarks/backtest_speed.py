"""Speed of raytrader's event-driven engine against backtesting.py and backtrader.

The same seeded GBM bars (``benchmarks/peers.py``) and the same SMA(10/30) crossover, long-only,
all-in, next-bar-open fills, 0.1 % commission, whole units, in all three engines. For every size:

- each engine runs ``--repeats`` times, interleaved (raytrader, backtesting.py, backtrader, then
  again), after an untimed warm-up on a small series; the median wall time is reported, and
  the median CPU time of the process over the same span (``time.process_time``), which other
  work on a shared machine inflates far less than wall time;
- the fills of every engine's first run are checked against raytrader's (bar, side, units,
  prices to 1e-12, final equity to 1e-6); the script exits with status 1 if any differ;
- peak memory of one run is measured in a fresh subprocess per engine: the peak RSS during the
  run (the high-water mark is reset just before it, on Linux) and the peak of Python/numpy
  allocations under ``tracemalloc`` (a second, untimed run).

Timed: each engine's own work from the in-memory frame (see ``peers.run_*``); data generation,
imports and the renaming of columns are not. Run from the repository root::

    .venv/bin/python benchmarks/backtest_speed.py                     # 100k and 1M bars
    .venv/bin/python benchmarks/backtest_speed.py --bars 100000 --repeats 5
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.peers import (  # noqa: E402  (sets TQDM_DISABLE before tqdm is imported)
    DEFAULT_SEED,
    ENGINES,
    FAST,
    INITIAL_CASH,
    RUNNERS,
    SLOW,
    PeerRun,
    backtesting_frame,
    backtrader_frame,
    diff_runs,
    gbm_bars,
)

WARMUP_BARS = 3_000


@dataclass
class EngineResult:
    engine: str
    bars: int
    seconds: list[float] = field(default_factory=list)  # wall time per run
    cpu_seconds: list[float] = field(default_factory=list)  # process CPU time per run
    fills: int = 0
    trades: int = 0
    final_equity: float = float("nan")
    agrees: bool | None = None  # with raytrader's fills; None for raytrader itself
    problems: list[str] = field(default_factory=list)
    peak_rss_mb: float | None = None  # process peak RSS during one run
    rss_before_mb: float | None = None  # RSS just before that run (data and imports loaded)
    traced_peak_mb: float | None = None  # tracemalloc peak of one run

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    @property
    def bars_per_second(self) -> float:
        return self.bars / self.median_seconds if self.seconds else float("nan")

    @property
    def median_cpu_seconds(self) -> float:
        return statistics.median(self.cpu_seconds) if self.cpu_seconds else float("nan")

    @property
    def bars_per_cpu_second(self) -> float:
        return self.bars / self.median_cpu_seconds if self.cpu_seconds else float("nan")


# ------------------------------------------------------------------------------------ memory


def _status_mb(key: str) -> float | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status in MB (Linux), else None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the process' RSS high-water mark (Linux >= 4.0); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_rss_mb() -> float:
    hwm = _status_mb("VmHWM")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1024.0  # bytes on macOS


def _engine_inputs(engine: str, bars: pd.DataFrame) -> dict[str, Any]:
    """The engine-specific frame, prepared outside the timing."""
    if engine == "backtesting.py":
        return {"frame": backtesting_frame(bars)}
    if engine == "backtrader":
        return {"frame": backtrader_frame(bars)}
    return {}


def memory_child(engine: str, n_bars: int, seed: int, cash: float) -> dict[str, float | None]:
    """One run of ``engine`` in this (fresh) process: peak RSS, then a traced run."""
    bars = gbm_bars(n_bars, seed)
    kwargs = _engine_inputs(engine, bars)
    RUNNERS[engine](bars[:WARMUP_BARS], cash=cash)  # imports and first-call costs, as timed runs
    gc.collect()
    reset = _reset_peak_rss()
    before = _status_mb("VmRSS")
    RUNNERS[engine](bars, cash=cash, **kwargs)
    peak = _peak_rss_mb()
    gc.collect()
    tracemalloc.start()
    RUNNERS[engine](bars, cash=cash, **kwargs)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "peak_rss_mb": peak if reset else None,  # without a reset it includes data generation
        "process_peak_rss_mb": peak,
        "rss_before_mb": before,
        "traced_peak_mb": traced_peak / 2**20,
    }


def measure_memory(engine: str, n_bars: int, seed: int, cash: float) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--memory-child",
        engine,
        "--bars",
        str(n_bars),
        "--seed",
        str(seed),
        "--cash",
        repr(cash),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------------- timing


def backtrader_repeats(n_bars: int, args: argparse.Namespace) -> int:
    if args.skip_backtrader_above is not None and n_bars > args.skip_backtrader_above:
        return 0
    if args.backtrader_once_above is not None and n_bars > args.backtrader_once_above:
        return 1
    return int(args.repeats)


def bench_size(n_bars: int, args: argparse.Namespace, log: Any) -> list[EngineResult]:
    bars = gbm_bars(n_bars, args.seed)
    inputs = {engine: _engine_inputs(engine, bars) for engine in args.engines}
    repeats = {
        engine: backtrader_repeats(n_bars, args) if engine == "backtrader" else args.repeats
        for engine in args.engines
    }
    results = {engine: EngineResult(engine, n_bars) for engine in args.engines}
    reference: PeerRun | None = None
    for k in range(max(repeats.values())):
        for engine in args.engines:
            if k >= repeats[engine]:
                continue
            gc.collect()
            run = RUNNERS[engine](bars, cash=args.cash, **inputs[engine])
            res = results[engine]
            res.seconds.append(run.seconds)
            res.cpu_seconds.append(run.cpu_seconds)
            done = f"run {k + 1}/{repeats[engine]}: {run.seconds:.3f} s ({run.cpu_seconds:.3f} CPU)"
            log(f"{n_bars:>9,} bars  {engine:<15} {done}")
            if k == 0:
                res.fills, res.trades, res.final_equity = (
                    len(run.fills),
                    len(run.trades),
                    run.final_equity,
                )
                if engine == "raytrader":
                    reference = run
                elif reference is not None:
                    res.problems = diff_runs(reference, run)
                    res.agrees = not res.problems
            del run
    if not args.no_memory:
        for engine in args.engines:
            if engine == "backtrader" and repeats[engine] < args.repeats:
                continue  # a slow single run: its memory is not worth another minute
            if repeats[engine] == 0:
                continue
            log(f"{n_bars:>9,} bars  {engine:<15} memory (subprocess)")
            mem = measure_memory(engine, n_bars, args.seed, args.cash)
            res = results[engine]
            if "error" in mem:
                res.problems.append(f"memory run failed: {mem['error']}")
                continue
            res.peak_rss_mb = mem["peak_rss_mb"] or mem["process_peak_rss_mb"]
            res.rss_before_mb = mem["rss_before_mb"]
            res.traced_peak_mb = mem["traced_peak_mb"]
    return [results[engine] for engine in args.engines if repeats[engine] > 0]


# ---------------------------------------------------------------------------------- output


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or value != value else format(value, spec)


def table_rows(results: list[EngineResult]) -> list[list[str]]:
    rows = []
    by_size: dict[int, dict[str, EngineResult]] = {}
    for r in results:
        by_size.setdefault(r.bars, {})[r.engine] = r
    for r in results:
        peer = by_size[r.bars].get("backtesting.py")
        ratio = cpu_ratio = None
        if peer is not None and peer.seconds:
            ratio = r.bars_per_second / peer.bars_per_second
            cpu_ratio = r.bars_per_cpu_second / peer.bars_per_cpu_second
        same = "reference" if r.agrees is None else ("identical" if r.agrees else "DIFFERENT")
        mem = "-"
        if r.peak_rss_mb is not None and r.rss_before_mb is not None:
            mem = f"{r.peak_rss_mb:,.0f} (+{r.peak_rss_mb - r.rss_before_mb:,.0f})"
        rows.append(
            [
                f"{r.bars:,}",
                r.engine,
                str(len(r.seconds)),
                _fmt(r.median_seconds, ".3f"),
                _fmt(r.bars_per_second, ",.0f"),
                _fmt(ratio, ".2f") + ("x" if ratio else ""),
                _fmt(r.median_cpu_seconds, ".3f"),
                _fmt(r.bars_per_cpu_second, ",.0f"),
                _fmt(cpu_ratio, ".2f") + ("x" if cpu_ratio else ""),
                f"{r.fills:,}",
                f"{r.trades:,}",
                same,
                mem,
                _fmt(r.traced_peak_mb, ",.0f"),
            ]
        )
    return rows


HEADERS = [
    "bars",
    "engine",
    "runs",
    "wall s",
    "bars/s",
    "vs backtesting.py",
    "CPU s",
    "bars/CPU s",
    "CPU vs backtesting.py",
    "fills",
    "closed trades",
    "fills vs raytrader",
    "peak RSS MB (+run)",
    "traced peak MB",
]


def print_table(results: list[EngineResult], title: str) -> None:
    rows = table_rows(results)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
        print(title)
        print("  ".join(h.rjust(w) for h, w in zip(HEADERS, widths, strict=True)))
        for row in rows:
            print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        return
    table = Table(title=title)
    for h in HEADERS:
        table.add_column(h, justify="left" if h == "engine" else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)


def machine() -> str:
    return f"{platform.machine()}, {_cores()} cores, Python {platform.python_version()}"


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def revision() -> str:
    """The git commit of the checkout, "+dirty" if ``raytrader/`` has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "raytrader"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "?"
    return (head or "?") + ("+dirty" if dirty else "")


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("raytrader", "backtesting", "backtrader", "numpy", "pandas"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "?"
    return out


# ------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bars", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--repeats", type=int, default=3, help="timed runs per engine and size")
    p.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    p.add_argument(
        "--skip-backtrader-above",
        type=int,
        default=None,
        metavar="N",
        help="do not run backtrader on more than N bars (default: always run it)",
    )
    p.add_argument(
        "--backtrader-once-above",
        type=int,
        default=100_000,
        metavar="N",
        help="run backtrader once (not --repeats times) on more than N bars (default 100000)",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--cash", type=float, default=INITIAL_CASH)
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    p.add_argument("--memory-child", choices=ENGINES, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if "raytrader" not in args.engines:
        p.error("raytrader is the reference of the fill checks; keep it in --engines")
    args.engines = [e for e in ENGINES if e in args.engines]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child is not None:
        print(json.dumps(memory_child(args.memory_child, args.bars[0], args.seed, args.cash)))
        return 0

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    for engine in args.engines:  # untimed warm-up: first-call costs of every engine
        RUNNERS[engine](gbm_bars(WARMUP_BARS, args.seed), cash=args.cash)

    rev = revision()  # the code this process imported (others may commit while it runs)
    load_before = _load()
    started = time.perf_counter()
    results: list[EngineResult] = []
    for n_bars in args.bars:
        results += bench_size(n_bars, args, log)
    elapsed = time.perf_counter() - started

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = (
        f"SMA({FAST}/{SLOW}) on seeded GBM 1-minute bars, median of up to {args.repeats} runs "
        f"- {when} - {machine()}"
    )
    print_table(results, title)
    load_after = _load()
    print(
        f"raytrader at {rev}; versions: {versions()}; seed {args.seed}; "
        f"cash {args.cash:,.0f}; {elapsed:.0f} s; "
        f"load average {load_before:.1f} -> {load_after:.1f}"
    )
    if max(load_before, load_after) > _cores():
        print("the load average exceeded the core count: other work shared the CPUs, so wall")
        print("times are inflated; the CPU-time columns are the fairer comparison (or rerun)")
    disagreements = [(r.bars, r.engine, p) for r in results for p in r.problems]
    for n_bars, engine, problem in disagreements:
        print(f"{n_bars:,} bars, {engine}: {problem}")
    if args.json is not None:
        payload = {
            "date": when,
            "machine": machine(),
            "revision": rev,
            "versions": versions(),
            "seed": args.seed,
            "cash": args.cash,
            "results": [
                {
                    **asdict(r),
                    "median_seconds": r.median_seconds,
                    "bars_per_second": r.bars_per_second,
                    "median_cpu_seconds": r.median_cpu_seconds,
                    "bars_per_cpu_second": r.bars_per_cpu_second,
                }
                for r in results
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 1 if any(r.agrees is False for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
