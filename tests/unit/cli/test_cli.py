"""The command line: backtest from YAML, run folders, errors, demo, agents."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from raytrader.backtesting.config import load_config
from raytrader.backtesting.runner import run_backtest
from raytrader.cli import app

runner = CliRunner()
CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(textwrap.dedent(body))
    return path


SMA = """
    name: cli_sma
    data:
      synthetic: {kind: single, n_bars: 3000, seed: 4, freq: 1h}
    agents:
      - name: sma_cross
        params: {fast: 10, slow: 30}
    initial_cash: 50000
    broker: {commission: {bps: 10}}
    portfolio: {lot_size: 0.001}
"""


def test_backtest_prints_metrics_and_writes_a_run_folder(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, SMA)
    out = tmp_path / "runs"
    result = runner.invoke(app, ["backtest", str(cfg), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Sharpe" in result.output and "cli_sma" in result.output
    [folder] = list(out.iterdir())
    names = {p.name for p in folder.iterdir()}
    assert {
        "config.json",
        "metrics.json",
        "equity.parquet",
        "orders.parquet",
        "order_journal.parquet",
        "fills.parquet",
        "trades.parquet",
        "positions.parquet",
        "equity.png",
    } <= names
    assert (folder / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((folder / "metrics.json").read_text())
    direct = run_backtest(load_config(cfg))
    assert metrics["final_equity"] == pytest.approx(direct.equity.iloc[-1], rel=1e-12)
    assert metrics["trade_count"] == len(direct.trades) > 5
    equity = pd.read_parquet(folder / "equity.parquet")
    assert len(equity) == 3000 and equity["equity"].iloc[-1] == metrics["final_equity"]
    trades = pd.read_parquet(folder / "trades.parquet")
    assert len(trades) == len(direct.trades)
    assert json.loads((folder / "config.json").read_text())["name"] == "cli_sma"


def test_bad_config_exits_2_naming_the_field(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, SMA.replace("initial_cash: 50000", "initial_cash: -5"))
    result = runner.invoke(app, ["backtest", str(cfg), "--no-save"])
    assert result.exit_code == 2
    assert "initial_cash" in result.output and "cfg.yaml" in result.output


def test_bad_agent_params_exit_2_naming_the_agent(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, SMA.replace("{fast: 10, slow: 30}", "{fast: 40, slow: 30}"))
    result = runner.invoke(app, ["backtest", str(cfg), "--no-save"])
    assert result.exit_code == 2
    assert "sma_cross" in result.output and "fast (40) must be below slow" in result.output


def test_missing_data_file_is_a_clear_error(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path,
        SMA.replace(
            "synthetic: {kind: single, n_bars: 3000, seed: 4, freq: 1h}", "path: nowhere.csv"
        ),
    )
    result = runner.invoke(app, ["backtest", str(cfg), "--no-save"])
    assert result.exit_code == 2
    assert "nowhere.csv" in result.output


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_validates(config: Path) -> None:
    cfg = load_config(config)
    assert cfg.agents
    cfg.data.load()


def test_demo_backtests_both_reference_strategies(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "momentum" in result.output and "sma_cross" in result.output
    assert len(list(tmp_path.iterdir())) == 2


def test_agents_lists_names_and_shows_a_schema() -> None:
    listing = runner.invoke(app, ["agents"])
    assert listing.exit_code == 0
    assert "momentum" in listing.output.split()
    schema = runner.invoke(app, ["agents", "momentum"])
    assert json.loads(schema.output)["properties"]["lookback_period"]["default"] == 90
    unknown = runner.invoke(app, ["agents", "momentun"])
    assert unknown.exit_code == 2 and "did you mean 'momentum'" in unknown.output
