"""A run folder: config, orders, fills, trades, equity curve, metrics and a plot."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from raytrader.backtesting.config import BacktestConfig
from raytrader.backtesting.result import BacktestResult
from raytrader.state.metrics import Metrics


def write_run(
    result: BacktestResult, config: BacktestConfig, folder: Path, metrics: Metrics
) -> Path:
    """Write every artifact of a run into ``folder`` (created) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(config.model_dump_json(indent=2))
    (folder / "metrics.json").write_text(json.dumps(metrics.as_dict(), indent=2, default=str))
    equity = result.equity.to_frame().join(result.cash).join(result.gross_exposure)
    equity.to_parquet(folder / "equity.parquet")
    result.positions.to_parquet(folder / "positions.parquet")
    result.orders_frame().to_parquet(folder / "orders.parquet")
    result.journal_frame().to_parquet(folder / "order_journal.parquet")
    result.fills_frame().to_parquet(folder / "fills.parquet")
    result.ledger.trades_frame().to_parquet(folder / "trades.parquet")
    plot_equity(result, folder / "equity.png", title=config.name)
    return folder


def equity_figure(equity: pd.Series, title: str = "", height: float = 6.0) -> Figure:
    """Equity curve above its drawdown."""
    eq = equity.astype(float)
    drawdown = eq / eq.cummax() - 1.0
    fig, (ax_eq, ax_dd) = plt.subplots(
        2, 1, figsize=(11, height), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax_eq.plot(eq.index, eq.to_numpy(), lw=1.0, color="tab:blue")
    ax_eq.set_ylabel("equity")
    ax_eq.set_title(title)
    ax_eq.grid(alpha=0.3)
    ax_dd.fill_between(drawdown.index, drawdown.to_numpy() * 100, 0, color="tab:red", alpha=0.4)
    ax_dd.set_ylabel("drawdown %")
    ax_dd.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_equity(result: BacktestResult, path: Path, title: str = "") -> None:
    """Equity curve above its drawdown, one PNG."""
    fig = equity_figure(result.equity, title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
