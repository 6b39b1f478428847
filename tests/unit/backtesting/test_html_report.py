"""HTML reports: one self-contained file that parses and shows the run's own numbers."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from raytrader.backtesting.config import AgentSpec, BacktestConfig
from raytrader.backtesting.html_report import (
    backtest_html,
    fmt,
    monthly_returns,
    report_from_folder,
    sweep_html,
)
from raytrader.backtesting.report import write_run
from raytrader.backtesting.runner import run_backtest
from raytrader.backtesting.sweep_config import parse_sweep_config
from raytrader.backtesting.sweep_report import best_record, ranked_table, write_sweep
from raytrader.backtesting.trials import TrialSetup, evaluate_chunk
from raytrader.data.spec import DataSpec, SyntheticSpec
from raytrader.portfolio.config import PortfolioConfig


class Tables(HTMLParser):
    """Cells of every table by its id, plus every URL-ish attribute; fails on bad nesting."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.attrs: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("meta", "img", "br", "link"):
            self.stack.append(tag)
        self.attrs += [v or "" for _, v in attrs]
        if tag == "table":
            self._table = dict(attrs).get("id") or f"t{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(page: str) -> Tables:
    parser = Tables()
    parser.feed(page)
    parser.close()
    assert parser.stack == [], parser.stack
    return parser


def no_urls(page: str) -> None:
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", page)


@pytest.fixture(scope="module")
def run() -> tuple[BacktestConfig, Any]:
    config = BacktestConfig(
        name="sma-report",
        data=DataSpec(synthetic=SyntheticSpec(kind="single", n_bars=24 * 400, seed=5, freq="1h")),
        agents=[AgentSpec(name="sma_cross", params={"fast": 10, "slow": 40})],
        initial_cash=100_000.0,
        portfolio=PortfolioConfig(lot_size=0.001),
    )
    return config, run_backtest(config)


def test_backtest_report_holds_the_metrics_and_no_urls(run: tuple[BacktestConfig, Any]) -> None:
    config, result = run
    metrics = result.metrics(config.periods_per_year).as_dict()
    trades = result.ledger.trades_frame()
    page = backtest_html(
        title=config.name,
        metrics=metrics,
        equity=result.equity,
        trades=trades,
        config=config.model_dump(mode="json"),
    )
    parsed = parse(page)
    no_urls(page)
    shown = {row[0]: row[1] for row in parsed.tables["metrics"]}
    assert shown["Total return"] == f"{metrics['total_return']:.2%}"
    assert shown["Sharpe"] == fmt(metrics["sharpe"])
    assert float(shown["Sharpe"]) == pytest.approx(metrics["sharpe"], rel=1e-3)
    assert shown["Final equity"] == f"{metrics['final_equity']:,.2f}"
    assert shown["Trades"] == f"{metrics['trade_count']:,}"
    assert len(trades) > 5
    assert len(parsed.tables["trades"]) == len(trades) + 1  # the header row
    assert page.count("data:image/png;base64,") == 1


def test_monthly_table_equals_the_curve_monthly_returns(run: tuple[BacktestConfig, Any]) -> None:
    _, result = run
    equity = result.equity
    page = backtest_html(title="m", metrics={}, equity=equity)
    rows = parse(page).tables["monthly"]
    # Straight from the curve: each month's last equity over the previous month's last.
    last = equity.groupby([equity.index.year, equity.index.month]).last()
    prev = np.concatenate([[equity.iloc[0]], last.to_numpy()[:-1]])
    want = dict(zip(last.index, last.to_numpy() / prev - 1, strict=True))
    seen = 0
    for row in rows[1:]:
        year = int(row[0])
        for month in range(1, 13):
            cell = row[month]
            if (year, month) in want:
                assert cell == f"{want[(year, month)]:.2%}", (year, month)
                seen += 1
            else:
                assert cell == "n/a"
    assert seen == len(want) >= 12
    table = monthly_returns(equity)
    assert np.allclose(
        [table.loc[y, m] for (y, m) in want], list(want.values()), rtol=0, atol=1e-12
    )
    # The year column compounds its months.
    for year, row in table.iterrows():
        months = row.drop("year").dropna().to_numpy()
        assert row["year"] == pytest.approx(np.prod(1 + months) - 1, rel=1e-9), year


def test_run_folder_report(run: tuple[BacktestConfig, Any], tmp_path: Path) -> None:
    config, result = run
    metrics = result.metrics(config.periods_per_year)
    folder = write_run(result, config, tmp_path / "r", metrics)
    page = report_from_folder(folder)
    parsed = parse(page)
    no_urls(page)
    shown = {row[0]: row[1] for row in parsed.tables["metrics"]}
    assert shown["CAGR"] == f"{metrics.cagr:.2%}"
    assert "sma-report" in page
    with pytest.raises(ValueError, match="neither"):
        report_from_folder(tmp_path)


def test_sweep_report_ranks_and_draws_the_heatmap(tmp_path: Path) -> None:
    config = parse_sweep_config(
        {
            "name": "sw",
            "data": {"synthetic": {"kind": "single", "n_bars": 1500, "seed": 3, "freq": "1h"}},
            "agent": "sma_cross",
            "space": {"fast": {"values": [4, 8, 12]}, "slow": {"values": [20, 40]}},
            "portfolio": {"lot_size": 0.001},
        }
    )
    setup = TrialSetup(config.agent, config.initial_cash, config.broker, config.portfolio)
    records = evaluate_chunk(config.data.load(), setup, config.search_space().grid())
    table = ranked_table(records, ["fast", "slow"], "sharpe")
    best = best_record(table, ["fast", "slow"], "sharpe")
    page = sweep_html(
        title="sw", table=table, names=["fast", "slow"], objective="sharpe", best=best
    )
    parsed = parse(page)
    no_urls(page)
    rows = parsed.tables["trials"]
    header = rows[0]
    assert len(rows) == len(table) + 1 == 7
    ranks = [int(r[header.index("rank")]) for r in rows[1:]]
    assert ranks == list(range(1, 7))
    top = rows[1]
    assert best is not None
    assert int(top[header.index("fast")]) == best["params"]["fast"]
    assert page.count("data:image/png;base64,") == 1  # the heatmap
    # And from the sweep's folder.
    folder = write_sweep(tmp_path / "s", config, table, best, {"trials": len(table)})
    again = parse(report_from_folder(folder))
    assert again.tables["trials"] == rows


def test_empty_curve_and_missing_values() -> None:
    assert fmt(None) == fmt(float("nan")) == "n/a"
    assert monthly_returns(pd.Series(dtype=float)).empty


def test_cli_report_writes_the_file(run: tuple[BacktestConfig, Any], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from raytrader.cli import app

    config, result = run
    folder = write_run(result, config, tmp_path / "r", result.metrics(config.periods_per_year))
    out = tmp_path / "report.html"
    done = CliRunner().invoke(app, ["report", str(folder), "--out", str(out)])
    assert done.exit_code == 0, done.output
    parse(out.read_text())
    done = CliRunner().invoke(app, ["report", str(folder)])
    assert done.exit_code == 0, done.output
    assert (folder / "report.html").read_text().startswith("<!DOCTYPE html>")
    done = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert done.exit_code == 2


def test_walk_forward_folder_report(run: tuple[BacktestConfig, Any], tmp_path: Path) -> None:
    from raytrader.backtesting.walk_forward_report import write_walk_forward

    _, result = run
    equity = result.equity.iloc[-3000:]
    windows = pd.DataFrame(
        {
            "index": [0, 1],
            "test_start": equity.index[[0, 1500]],
            "params": [{"fast": 5}, {"fast": 10}],
            "oos_sharpe": [0.5, -0.2],
        }
    )
    folder = write_walk_forward(tmp_path / "wf", '{"name": "wf"}', windows, equity, {"n": 2})
    page = report_from_folder(folder)
    parsed = parse(page)
    no_urls(page)
    shown = {row[0]: row[1] for row in parsed.tables["metrics"]}
    assert shown["Total return"] == f"{equity.iloc[-1] / equity.iloc[0] - 1:.2%}"
    assert "Trades" not in shown
    assert len(parsed.tables["trades"]) == 3  # the windows and a header
    assert "wf (walk-forward, out of sample)" in page
