"""``raytrader train ml CONFIG.yaml``: train a model on one symbol, score it by purged
walk-forward CV, save it to the model registry as a new version.
``raytrader train rl CONFIG.yaml``: train an RL policy with early stop on a validation window,
save it to the policy registry as a new version."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from raytrader.config_files import ConfigError, load_config_file
from raytrader.data.spec import DataSpec
from raytrader.log import configure_logging
from raytrader.ml.training import TrainResult, TrainSpec
from raytrader.settings import Settings

if TYPE_CHECKING:
    from raytrader.data.market_data import MarketData
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
    columns = ("accuracy", "balanced_accuracy", "log_loss")
    table.add_column("fold", justify="right")
    for c in columns:
        table.add_column(c, justify="right")
    for row in result.folds.to_dict(orient="records"):
        table.add_row(str(int(row["fold"])), *(f"{float(row[c]):.4f}" for c in columns))
    table.add_row("mean", *(f"{result.info.cv_metrics[c]:.4f}" for c in columns))
    return table


@train_app.command("ml")
def train_ml(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG.yaml", help="training config")],
    registry_dir: Annotated[
        Path | None,
        typer.Option("--registry", help="model registry (default: the data directory's models/)"),
    ] = None,
) -> None:
    """Train an ML model, print its CV metrics and save it to the registry as a new version."""
    from raytrader.ml.registry import ModelRegistry
    from raytrader.ml.training import train

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    try:
        config = load_train_config(config_path)
        frames = config.data.frames()
        symbol = config.symbol or next(iter(frames), None)
        if symbol is None or symbol not in frames:
            have = ", ".join(sorted(frames))
            raise ConfigError(f"{config_path}: symbol {symbol!r} not in the data (have {have})")
        registry = ModelRegistry(registry_dir)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("fits"),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task(f"{config.name} ({config.kind}, {symbol})", total=None)
            result = train(
                frames[symbol],
                config.spec(),
                symbol=symbol,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        record = registry.save(config.name, result.model, result.info)
    except (ConfigError, ValueError, KeyError, OSError) as exc:
        err_console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from exc
    console.print(_metrics_table(result))
    console.print(
        f"saved {record.name} version {record.version}: {record.n_samples} samples, "
        f"{record.training_start:%Y-%m-%d %H:%M} .. {record.training_end:%Y-%m-%d %H:%M}"
    )


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
