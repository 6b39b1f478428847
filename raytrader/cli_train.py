"""``raytrader train ml CONFIG.yaml``: train a model on one symbol, score it by purged
walk-forward CV, save it to the model registry as a new version.
``raytrader train rl CONFIG.yaml``: train an RL policy with early stop on a validation window,
save it to the policy registry as a new version."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from raytrader.config_files import ConfigError, load_config_file
from raytrader.data.spec import DataSpec
from raytrader.log import configure_logging
from raytrader.ml.training import CV_METRICS, TrainResult, TrainSpec
from raytrader.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from raytrader.data.market_data import MarketData
    from raytrader.ml.search import SearchResult
    from raytrader.rl.evaluate import PolicyEvaluation
    from raytrader.rl.run import RLRun

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

train_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Train models.")


class MLTrainConfig(TrainSpec):
    """A training config: the registry name, the data and the symbol, then ``TrainSpec``'s
    fields (kind, params, seed, features, labels, cv_splits, embargo)."""

    name: str
    data: DataSpec
    symbol: str | None = None

    def spec(self) -> TrainSpec:
        return TrainSpec.model_validate(self.model_dump(include=set(TrainSpec.model_fields)))


def load_train_config(path: Path) -> MLTrainConfig:
    """Read and validate a training YAML file (data paths relative to the file)."""
    return load_config_file(path, MLTrainConfig)


def _metrics_table(result: TrainResult) -> Table:
    table = Table(title="Purged walk-forward CV")
    table.add_column("fold", justify="right")
    for c in CV_METRICS:
        table.add_column(c, justify="right")
    for row in result.folds.to_dict(orient="records"):
        table.add_row(str(int(row["fold"])), *(_fmt(row.get(c)) for c in CV_METRICS))
    table.add_row("mean", *(_fmt(result.info.cv_metrics.get(c)) for c in CV_METRICS))
    return table


def _fmt(value: Any) -> str:
    return "-" if value is None or not math.isfinite(float(value)) else f"{float(value):.4f}"


def _search_table(search: SearchResult, n: int = 10) -> Table:
    s = search.spec
    better = "lower" if s.direction == "minimize" else "higher"
    shown = min(n, len(search.table))
    title = f"Search: top {shown} of {len(search.table)} by {s.objective} ({better} is better)"
    table = Table(title=title)
    columns = ["rank", *s.space, *CV_METRICS]
    for c in columns:
        table.add_column(c, justify="right")
    for row in search.table.head(n).to_dict(orient="records"):
        cells = [str(row["rank"]), *(str(row[p]) for p in s.space)]
        table.add_row(*cells, *(_fmt(row.get(c)) for c in CV_METRICS))
    return table


def _bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
        console=console,
    )


async def _search_on_ray(
    frame: pd.DataFrame,
    config: MLTrainConfig,
    symbol: str,
    settings: Settings,
    store_url: str | None,
    search_id: str | None,
    fresh: bool,
    workers: int | None,
) -> SearchResult:
    """The search on a local Ray (or ``RAY_ADDRESS``'s cluster): trials in the store."""
    from raytrader.orchestrator.ml_search import default_search_id, forget_search, search_on_ray
    from raytrader.orchestrator.runtime import init_ray
    from raytrader.orchestrator.sweep_pool import SweepPool
    from raytrader.orchestrator.sweep_runner import SweepProgress
    from raytrader.state.stores import open_store

    spec = config.spec()
    search_id = search_id or default_search_id(frame, spec, symbol, config.name)
    init_ray()
    pool = SweepPool(workers or (spec.search.workers if spec.search else None))
    try:
        async with open_store(store_url or settings.redis_url, settings.data_dir) as store:
            if fresh:
                await forget_search(store, search_id)
            with _bar() as bar:
                task = bar.add_task(search_id, total=None, unit="trials  best -")

                def show(p: SweepProgress) -> None:
                    best = "-" if p.best is None else f"{p.best['value']:.4g} {p.best['params']}"
                    bar.update(task, completed=p.done, total=p.total, unit=f"trials  best {best}")

                result = await search_on_ray(
                    frame, spec, store, pool, symbol=symbol, name=config.name,
                    search_id=search_id, on_progress=show,
                )  # fmt: skip
                # A search resumed whole ran no chunk, so reported no progress.
                n, best = len(result.table), result.best
                shown = "-" if best is None else f"{best['value']:.4g} {best['params']}"
                bar.update(task, completed=n, total=n, unit=f"trials  best {shown}")
                return result
    finally:
        pool.shutdown()


@train_app.command("ml")
def train_ml(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG.yaml", help="training config")],
    registry_dir: Annotated[
        Path | None,
        typer.Option("--registry", help="model registry (default: the data directory's models/)"),
    ] = None,
    in_process: Annotated[
        bool,
        typer.Option(
            "--in-process",
            "--local",
            help="run a search's trials here, one after the other, not on Ray (same result)",
        ),
    ] = False,
    search_id: Annotated[
        str | None,
        typer.Option(
            "--id", help="resume or name the search (default: from the config and the data)"
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            help="state store URL for the search's trials (default: RAYTRADER_REDIS_URL "
            "or the data directory's SQLite)"
        ),
    ] = None,
    fresh: Annotated[
        bool, typer.Option(help="forget the search's recorded trials and start over")
    ] = False,
    workers: Annotated[int | None, typer.Option(min=1, help="search workers on Ray")] = None,
) -> None:
    """Train an ML model, print its CV metrics and save it to the registry as a new version.

    A config with a ``search:`` section searches first: on Ray, its trials recorded in the
    state store as they finish, so the same search run again (same ``--id``, by default the
    same config and data) runs only the trials it lacks; the default store is SQLite in the
    data directory, which keeps them between runs. ``--in-process`` records nothing.
    """
    from raytrader.ml.registry import ModelRegistry
    from raytrader.ml.training import train

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    try:
        ray_only = {"--id": search_id, "--store": store, "--fresh": fresh, "--workers": workers}
        given = [flag for flag, value in ray_only.items() if value]
        if in_process and given:
            raise ConfigError(f"{', '.join(given)} apply to a search on Ray, not --in-process")
        config = load_train_config(config_path)
        frames = config.data.frames()
        symbol = config.symbol or next(iter(frames), None)
        if symbol is None or symbol not in frames:
            have = ", ".join(sorted(frames))
            raise ConfigError(f"{config_path}: symbol {symbol!r} not in the data (have {have})")
        registry = ModelRegistry(registry_dir)
        frame = frames[symbol]
        spec = config.spec()
        search = None
        if spec.search is not None and not in_process:
            search = asyncio.run(
                _search_on_ray(frame, config, symbol, settings, store, search_id, fresh, workers)
            )
        with _bar() as bar:
            label = f"{config.name} ({config.kind}, {symbol})"
            task = bar.add_task(label, total=None, unit="fits")

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            if spec.search is not None and search is None:
                from raytrader.ml.search import search_local

                final_fits = spec.cv_splits + 1
                search = search_local(frame, spec, symbol, progress, extra_fits=final_fits)
            result = train(frame, spec, symbol=symbol, progress=progress, search=search)
        record = registry.save(config.name, result.model, result.info)
    except (ConfigError, ValueError, KeyError, OSError) as exc:
        err_console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from exc
    if search is not None and result.info.search is not None:
        _print_search(result.info.search, search)
    console.print(_metrics_table(result))
    console.print(
        f"saved {record.name} version {record.version}: {record.n_samples} samples, "
        f"{record.training_start:%Y-%m-%d %H:%M} .. {record.training_end:%Y-%m-%d %H:%M}"
    )


def _print_search(meta: dict[str, Any], search: SearchResult) -> None:
    console.print(_search_table(search))
    ran = meta.get("ran_on")
    if ran == "ray":
        console.print(
            f"search {meta['sweep_id']}: {meta['trials']} trials ({meta.get('ran')} run now, "
            f"{meta.get('resumed')} resumed) on {meta.get('workers')} Ray workers; "
            f"best {meta['best']}",
            soft_wrap=True,
        )
    else:
        trials = meta["trials"]
        console.print(f"search: {trials} trials in-process; best {meta['best']}", soft_wrap=True)


def _validation_table(run: RLRun) -> Table:
    table = Table(title="Validation reward (* best, kept)")
    table.add_column("timestep", justify="right")
    table.add_column("reward", justify="right")
    best = max((r for _, r in run.result.evaluations), default=None)
    for step, reward in run.result.evaluations:
        mark = " *" if reward == best else ""
        table.add_row(f"{step:,}", f"{reward:.4f}{mark}")
    return table


def _evaluation_table(ev: PolicyEvaluation) -> Table:
    table = Table(title=f"Held-out bars from {ev.policy.start:%Y-%m-%d %H:%M}, after costs")
    for name in ("contender", "total return", "Sharpe", "max drawdown", "trades"):
        table.add_column(name, justify="left" if name == "contender" else "right")
    rows = [("policy", ev.policy), ("buy and hold", ev.buy_and_hold)]
    rows += [(f"random {k + 1}", m) for k, m in enumerate(ev.random)]
    for label, m in rows:
        table.add_row(
            label,
            f"{m.total_return:+.2%}",
            f"{m.sharpe:.2f}",
            f"{m.max_drawdown:.2%}",
            str(m.trade_count),
        )
    return table


def _span(data: MarketData | None) -> str:
    if data is None or data.n_bars == 0:
        return "none"
    return f"{data.ts(0):%Y-%m-%d %H:%M} .. {data.ts(data.n_bars - 1):%Y-%m-%d %H:%M}"


@train_app.command("rl")
def train_rl(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG.yaml", help="training config")],
    registry_dir: Annotated[
        Path | None,
        typer.Option(
            "--registry", help="policy registry (default: the data directory's policies/)"
        ),
    ] = None,
    total_timesteps: Annotated[
        int | None,
        typer.Option("--total-timesteps", min=1, help="override the config's training budget"),
    ] = None,
    torch_threads: Annotated[
        int, typer.Option("--torch-threads", min=1, help="1 trains bit-identical policies")
    ] = 1,
    evaluate: Annotated[
        bool,
        typer.Option(
            "--evaluate/--no-evaluate",
            help="backtest the policy, buy-and-hold and random policies on the held-out bars",
        ),
    ] = True,
) -> None:
    """Train an RL policy, print its validation scores and save it as a new version."""
    from raytrader.rl.run import load_rl_train_config, run_rl_training

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    try:
        config = load_rl_train_config(config_path)
        if total_timesteps is not None:
            config = config.model_copy(update={"total_timesteps": total_timesteps})
        try:
            import torch
        except ImportError as exc:
            raise ConfigError(
                "RL training needs the rl extra: pip install 'raytrader[rl]'"
            ) from exc
        torch.set_num_threads(torch_threads)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("timesteps"),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task(f"{config.name} ({config.algo})", total=config.total_timesteps)
            run = run_rl_training(
                config,
                registry_dir,
                # Rollouts can overshoot the budget by a part of one: the bar shows what ran.
                progress=lambda d, t: bar.update(task, completed=d, total=max(d, t)),
            )
        evaluation = None
        if evaluate:
            from raytrader.rl.evaluate import evaluate_policy
            from raytrader.rl.registry import PolicyRegistry

            # From the first held-out bar: after the validation window, its features warmed up.
            evaluation = evaluate_policy(
                run.data, run.record.name, run.record.version, registry=PolicyRegistry(registry_dir)
            )
    except (ConfigError, ValueError, KeyError, OSError) as exc:
        err_console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from exc
    if run.result.evaluations:
        console.print(_validation_table(run))
    record = run.record
    # With a validation window the policy kept is the best scored, from its own timestep.
    kept = "best on validation, " if run.result.evaluations else ""
    stop = ", stopped early" if run.result.stopped_early else ""
    console.print(
        f"saved {record.name} version {record.version}: {record.kind} on "
        f"{', '.join(run.train.symbols)}, the policy at timestep {record.n_samples:,} "
        f"({kept}budget {config.total_timesteps:,}{stop})",
        soft_wrap=True,
    )
    console.print(f"train      {_span(run.train)}", soft_wrap=True)
    console.print(f"validation {_span(run.validation)}", soft_wrap=True)
    console.print(f"test       {_span(run.test)}  (held out)", soft_wrap=True)
    if evaluation is not None:
        console.print(_evaluation_table(evaluation))
