"""Command line: ``raytrader backtest | sweep | demo | serve | agents | train``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from raytrader.agents import registry
from raytrader.backtesting.config import AgentSpec, BacktestConfig, ConfigError, load_config
from raytrader.backtesting.report import write_run
from raytrader.backtesting.result import BacktestResult
from raytrader.backtesting.runner import run_backtest
from raytrader.cli_data import data_app
from raytrader.cli_sweep import sweep
from raytrader.cli_train import train_app
from raytrader.data.spec import DataSpec
from raytrader.execution.costs import CommissionModel, SlippageModel
from raytrader.execution.paper_broker import PaperBrokerConfig
from raytrader.log import configure_logging
from raytrader.portfolio.config import PortfolioConfig
from raytrader.settings import Settings
from raytrader.state.metrics import Metrics

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

_ROWS: list[tuple[str, str, str]] = [
    # (label, metrics key, format)
    ("Total return", "total_return", "{:.2%}"),
    ("CAGR", "cagr", "{:.2%}"),
    ("Volatility (ann.)", "volatility", "{:.2%}"),
    ("Sharpe", "sharpe", "{:.2f}"),
    ("Sortino", "sortino", "{:.2f}"),
    ("Calmar", "calmar", "{:.2f}"),
    ("Max drawdown", "max_drawdown", "{:.2%}"),
    ("Max DD duration", "max_drawdown_duration", "{}"),
    ("Max DD length (bars)", "max_drawdown_bars", "{:,.0f}"),
    ("Trades", "trade_count", "{:,.0f}"),
    ("Win rate", "win_rate", "{:.2%}"),
    ("Profit factor", "profit_factor", "{:.2f}"),
    ("Exposure", "exposure", "{:.2%}"),
    ("Turnover (ann.)", "turnover", "{:.2f}"),
    ("Final equity", "final_equity", "{:,.2f}"),
]


def metrics_table(runs: dict[str, Metrics]) -> Table:
    table = Table(title="Backtest metrics", show_lines=False)
    table.add_column("metric")
    for name in runs:
        table.add_column(name, justify="right")
    values = {name: m.as_dict() for name, m in runs.items()}
    for label, key, fmt in _ROWS:
        cells = []
        for name in runs:
            v = values[name].get(key)
            cells.append(fmt.format(v) if v is not None else "n/a")
        table.add_row(label, *cells)
    return table


def _run(config: BacktestConfig, out_root: Path | None) -> tuple[BacktestResult, Metrics]:
    data = config.data.load()
    with Progress(
        TextColumn(f"[bold]{config.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("bars"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(config.name, total=data.n_bars)
        result = run_backtest(
            config, data=data, progress=lambda done: bar.update(task, completed=done)
        )
    metrics = result.metrics(config.periods_per_year)
    if out_root is not None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        folder = write_run(result, config, out_root / f"{config.name}-{stamp}", metrics)
        console.print(f"[dim]{config.name}: run folder {folder}[/dim]")
    return result, metrics


@app.command()
def backtest(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG.yaml", help="backtest config")],
    out: Annotated[Path | None, typer.Option(help="run folders go here")] = None,
    no_save: Annotated[bool, typer.Option("--no-save", help="print only")] = False,
) -> None:
    """Run one backtest, print its metrics and write a run folder."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    try:
        config = load_config(config_path)
        _, metrics = _run(config, None if no_save else (out or settings.runs_dir))
    except (ConfigError, ValueError, KeyError, OSError) as exc:
        err_console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from exc
    console.print(metrics_table({config.name: metrics}))


def demo_configs() -> list[BacktestConfig]:
    """The demo: the reference momentum strategy and an SMA crossover on the bundled data."""
    return [
        BacktestConfig(
            name="momentum",
            data=DataSpec(bundled="universe_daily"),
            agents=[AgentSpec(name="momentum")],
            initial_cash=1_000_000.0,
            broker=PaperBrokerConfig(
                commission=CommissionModel(bps=5.0), slippage=SlippageModel(bps=2.0)
            ),
            portfolio=PortfolioConfig(lot_size=1.0),
        ),
        BacktestConfig(
            name="sma_cross",
            data=DataSpec(bundled="btc_1h"),
            agents=[AgentSpec(name="sma_cross", params={"fast": 10, "slow": 30})],
            initial_cash=100_000.0,
            broker=PaperBrokerConfig(commission=CommissionModel(bps=10.0)),
            portfolio=PortfolioConfig(lot_size=0.0001),
        ),
    ]


@app.command()
def demo(
    out: Annotated[Path | None, typer.Option(help="run folders go here")] = None,
) -> None:
    """Backtest the bundled demos (momentum universe, SMA crossover) and print a table."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    runs = {cfg.name: _run(cfg, out or settings.runs_dir)[1] for cfg in demo_configs()}
    console.print(metrics_table(runs))


def demo_session() -> dict[str, object]:
    """The paper session ``serve --demo`` starts: momentum on the replayed bundled universe."""
    return {
        "name": "demo-momentum",
        "agents": [{"name": "momentum"}],
        "initial_cash": 1_000_000,
        "broker": {"commission": {"bps": 5}, "slippage": {"bps": 2}},
        "feed": {"kind": "replay", "data": {"bundled": "universe_daily"}, "speed": 20},
    }


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8000)")] = None,
    demo: Annotated[bool, typer.Option(help="start a demo paper session")] = False,
) -> None:
    """Run the orchestrator: Ray actors, the REST API, paper sessions."""
    import uvicorn

    from raytrader.orchestrator.api.app import create_app

    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    configure_logging(settings.log_level, settings.log_json)
    base = f"http://{settings.host}:{settings.port}"
    api = create_app(settings, demo_session=demo_session() if demo else None, announce=base)
    uvicorn.run(
        api, host=settings.host, port=settings.port, log_config=None, timeout_graceful_shutdown=10
    )


@app.command()
def agents(
    name: Annotated[str | None, typer.Argument(help="show this agent's parameter schema")] = None,
) -> None:
    """List the registered agents, or one agent's parameter schema."""
    if name is None:
        for agent in registry.available():
            console.print(agent)
        return
    try:
        schema = registry.params_schema(name).model_json_schema()
    except registry.UnknownAgentError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    sys.stdout.write(json.dumps(schema, indent=2) + "\n")


@app.command()
def report(
    folder: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="a backtest or sweep folder")],
    out: Annotated[
        Path | None, typer.Option(help="the HTML file (default RUN_DIR/report.html)")
    ] = None,
) -> None:
    """Write a self-contained HTML report of a backtest run folder or a sweep folder."""
    from raytrader.backtesting.html_report import report_from_folder

    try:
        page = report_from_folder(folder)
        target = out or folder / "report.html"
        target.write_text(page, encoding="utf-8")
    except (ValueError, KeyError, OSError) as exc:
        err_console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from exc
    console.print(f"report: {target}")


app.command()(sweep)
app.add_typer(train_app, name="train")
app.add_typer(data_app, name="data")


if __name__ == "__main__":
    app()
