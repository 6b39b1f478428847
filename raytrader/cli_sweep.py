"""``raytrader sweep CONFIG.yaml``: a parameter sweep or a walk-forward on Ray, with progress."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from raytrader.backtesting.config import ConfigError
from raytrader.backtesting.sweep_config import SweepConfig, load_sweep_config
from raytrader.backtesting.sweep_report import write_sweep
from raytrader.backtesting.walk_forward_report import write_walk_forward
from raytrader.log import configure_logging
from raytrader.settings import Settings

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

_SHOWN = ("total_return", "sharpe", "max_drawdown", "trade_count", "final_equity")


def _top_table(table: pd.DataFrame, config: SweepConfig, n: int = 10) -> Table:
    out = Table(
        title=f"{config.name}: top {min(n, len(table))} of {len(table)} by {config.objective}"
    )
    columns = ["rank", *config.space, *dict.fromkeys([config.objective, *_SHOWN])]
    for c in columns:
        out.add_column(c, justify="right")
    for _, row in table.head(n).iterrows():
        out.add_row(*(_fmt(row[c]) for c in columns))
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


async def _run(
    config: SweepConfig,
    settings: Settings,
    store_url: str | None,
    sweep_id: str | None,
    fresh: bool,
    out_root: Path | None,
) -> None:
    from raytrader.orchestrator.runtime import init_ray
    from raytrader.orchestrator.sweep_pool import SweepPool
    from raytrader.orchestrator.sweep_runner import (
        SWEEPS,
        SweepProgress,
        SweepRunner,
        default_sweep_id,
        trials_namespace,
    )
    from raytrader.orchestrator.walk_forward_runner import WalkForwardRunner
    from raytrader.state.stores import open_store

    init_ray()
    pool = SweepPool(config.workers)
    sweep_id = sweep_id or default_sweep_id(config)
    async with open_store(store_url or settings.redis_url, settings.data_dir) as store:
        if fresh:
            for key in await store.list_records(SWEEPS):
                if key == sweep_id or key.startswith(f"{sweep_id}-w"):
                    await store.delete_record(SWEEPS, key)
                    for trial in await store.list_records(trials_namespace(key)):
                        await store.delete_record(trials_namespace(key), trial)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("trials  {task.fields[rate]:.1f}/s  best {task.fields[best]}"),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task(sweep_id, total=None, rate=0.0, best="-")

            def show(p: SweepProgress, label: str = sweep_id) -> None:
                best = "-" if p.best is None else f"{p.best['value']:.4g} {p.best['params']}"
                bar.update(
                    task, description=label, completed=p.done, total=p.total,
                    rate=p.trials_per_s, best=best,
                )  # fmt: skip

            if config.walk_forward is None:
                outcome = await SweepRunner(
                    config, store, pool, sweep_id=sweep_id, on_progress=show
                ).run()
            else:
                wf = await WalkForwardRunner(
                    config,
                    store,
                    pool,
                    wf_id=sweep_id,
                    on_progress=lambda k, n, p: show(p, f"{sweep_id} window {k + 1}/{n}"),
                ).run()
    pool.shutdown()
    if config.walk_forward is None:
        console.print(_top_table(outcome.table, config))
        s = outcome.summary
        console.print(
            f"{s['trials']} trials ({s['ran']} run now, {s['resumed']} resumed), "
            f"{s['trials_per_s'] or 0:.1f} trials/s on {s['workers']} workers; "
            f"engines {s['engines']}; best {outcome.best}"
        )
        if out_root is not None:
            folder = write_sweep(out_root / sweep_id, config, outcome.table, outcome.best, s)
            console.print(f"[dim]sweep folder {folder}[/dim]")
        return
    frame = wf.windows_frame()
    console.print(frame.drop(columns=["train_start", "test_end"]).to_string(index=False))
    s = wf.summary
    console.print(
        f"out of sample: return {wf.oos_metrics.total_return:.2%}, sharpe "
        f"{wf.oos_metrics.sharpe:.2f}, max drawdown {wf.oos_metrics.max_drawdown:.2%}; "
        f"walk-forward efficiency {s['walk_forward_efficiency']:.2f}; "
        f"mean window DSR {s['mean_window_dsr']}"
    )
    if out_root is not None:
        folder = write_walk_forward(
            out_root / sweep_id, config.model_dump_json(indent=2), frame, wf.oos_equity, s
        )
        console.print(f"[dim]walk-forward folder {folder}[/dim]")


def sweep(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG.yaml", help="sweep config")],
    sweep_id: Annotated[
        str | None, typer.Option("--id", help="resume or name the sweep (default: from config)")
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="parallel workers")] = None,
    store: Annotated[
        str | None, typer.Option(help="state store URL (default: RAYTRADER_REDIS_URL or SQLite)")
    ] = None,
    fresh: Annotated[bool, typer.Option(help="forget recorded trials and start over")] = False,
    out: Annotated[Path | None, typer.Option(help="sweep folders go here")] = None,
    no_save: Annotated[bool, typer.Option("--no-save", help="print only")] = False,
) -> None:
    """Search an agent's parameters on Ray (grid, random, Optuna) or walk forward; resumable."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    try:
        config = load_sweep_config(config_path)
        if workers is not None:
            config = config.model_copy(update={"workers": workers})
        out_root = None if no_save else (out or settings.runs_dir / "sweeps")
        asyncio.run(_run(config, settings, store, sweep_id, fresh, out_root))
    except (ConfigError, ValueError, KeyError, OSError) as exc:
        err_console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from exc
