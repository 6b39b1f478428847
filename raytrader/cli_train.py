"""``raytrader train ml CONFIG.yaml``: train a model on one symbol, score it by purged
walk-forward CV, save it to the model registry as a new version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from raytrader.config_files import ConfigError, load_config_file
from raytrader.data.spec import DataSpec
from raytrader.log import configure_logging
from raytrader.ml.training import TrainResult, TrainSpec
from raytrader.settings import Settings

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
