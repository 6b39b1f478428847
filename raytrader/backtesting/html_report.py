"""Self-contained HTML reports of a backtest or a sweep: one file, charts as inline PNGs.

Nothing in a report points outside the file (no scripts, fonts or images from a URL), so it
opens offline, can be mailed, and shows the same thing years later.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from raytrader.backtesting.report import equity_figure
from raytrader.backtesting.sweep_report import plot_heatmap
from raytrader.state.metrics import compute_metrics, periods_per_year

# (label, metrics key, kind): the kinds decide the formatting below.
METRIC_ROWS: tuple[tuple[str, str, str], ...] = (
    ("Total return", "total_return", "pct"),
    ("CAGR", "cagr", "pct"),
    ("Volatility (ann.)", "volatility", "pct"),
    ("Sharpe", "sharpe", "num"),
    ("Sortino", "sortino", "num"),
    ("Calmar", "calmar", "num"),
    ("Max drawdown", "max_drawdown", "pct"),
    ("Max DD length (bars)", "max_drawdown_bars", "int"),
    ("Trades", "trade_count", "int"),
    ("Win rate", "win_rate", "pct"),
    ("Profit factor", "profit_factor", "num"),
    ("Exposure", "exposure", "pct"),
    ("Turnover (ann.)", "turnover", "num"),
    ("Start equity", "start_equity", "money"),
    ("Final equity", "final_equity", "money"),
)
# A stitched walk-forward curve comes without its trades: these would read as zero trades.
_TRADE_METRICS = frozenset(
    {"trade_count", "win_rate", "profit_factor", "avg_trade_pnl", "avg_trade_return"}
)
MAX_TRADES = 2000  # rows of the trades table; the rest are counted, not shown
MAX_TRIALS = 500  # rows of a sweep's ranked table

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#1d2330;background:#fff}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid
#dde;padding-bottom:.2em}.sub{color:#667}
table{border-collapse:collapse;margin:.5em 0;font-variant-numeric:tabular-nums}
th,td{padding:3px 9px;border-bottom:1px solid #eef;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f4f6fa}
td.pos{color:#17803d}td.neg{color:#c0262d}img{max-width:100%}
.scroll{max-height:520px;overflow:auto}pre{background:#f4f6fa;padding:.8em;overflow:auto}
"""


def fmt(value: Any, kind: str = "num") -> str:
    """A metric's value as the report shows it; ``n/a`` for a missing or non-finite one."""
    if value is None or isinstance(value, bool):
        return "n/a" if value is None else str(value)
    if isinstance(value, int | float | np.integer | np.floating):
        v = float(value)
        if not math.isfinite(v):
            return "n/a"
        if kind == "pct":
            return f"{v:.2%}"
        if kind == "int":
            return f"{v:,.0f}"
        if kind == "money":
            return f"{v:,.2f}"
        return f"{v:.4g}" if abs(v) < 1e-3 and v != 0 else f"{v:,.4f}".rstrip("0").rstrip(".")
    return str(value)


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Compounded return of each calendar month (rows: years, columns 1-12, plus ``year``).

    A month's return is its last equity over the previous month's last (the first month's over
    the curve's first value); months without bars are missing, not zero.
    """
    eq = equity.astype(float).dropna()
    if eq.empty:
        return pd.DataFrame(columns=[*range(1, 13), "year"])
    index = pd.DatetimeIndex(eq.index)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    eq = pd.Series(eq.to_numpy(), index=index)
    month_end = eq.groupby(index.to_period("M")).last()
    prev = month_end.shift(1)
    prev.iloc[0] = eq.iloc[0]
    rets = month_end / prev - 1.0
    months = pd.PeriodIndex(rets.index)
    table = pd.DataFrame({"y": months.year, "m": months.month, "r": rets.to_numpy()}).pivot(
        index="y", columns="m", values="r"
    )
    table = table.reindex(columns=range(1, 13))
    year_end = eq.groupby(index.year).last()
    year_prev = year_end.shift(1)
    year_prev.iloc[0] = eq.iloc[0]
    table["year"] = (year_end / year_prev - 1.0).reindex(table.index)
    table.index.name = None
    table.columns.name = None
    return table


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(png_b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png_b64}">'


def equity_chart(equity: pd.Series, title: str = "") -> str:
    """Equity above drawdown, a base64 PNG."""
    return _png(equity_figure(equity, title, height=5.5))


def heatmap_png(table: pd.DataFrame, x: str, y: str, objective: str, title: str = "") -> str:
    """The sweep heatmap (the same plot as the run folder's ``heatmap.png``), base64."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "heatmap.png"
        plot_heatmap(table, x, y, objective, path, title)
        return base64.b64encode(path.read_bytes()).decode("ascii")


def _cell(value: Any, kind: str = "num", signed: bool = False) -> str:
    text = html.escape(fmt(value, kind))
    cls = ""
    if signed and isinstance(value, int | float) and math.isfinite(float(value)) and value:
        cls = ' class="pos"' if value > 0 else ' class="neg"'
    return f"<td{cls}>{text}</td>"


def _metrics_table(metrics: Mapping[str, Any]) -> str:
    rows = []
    shown = set()
    for label, key, kind in METRIC_ROWS:
        if key in metrics:
            shown.add(key)
            rows.append(f"<tr><th>{html.escape(label)}</th>{_cell(metrics[key], kind)}</tr>")
    for key, value in metrics.items():  # whatever else the run measured
        if key not in shown and isinstance(value, int | float) and not isinstance(value, bool):
            rows.append(f"<tr><th>{html.escape(key)}</th>{_cell(value)}</tr>")
    return f'<table id="metrics">{"".join(rows)}</table>'


def _monthly_table(equity: pd.Series) -> str:
    table = monthly_returns(equity)
    head = "".join(f"<th>{m}</th>" for m in ("", *_MONTHS, "Year"))
    body = []
    for year, row in table.iterrows():
        cells = "".join(
            _cell(None if pd.isna(v) else float(v), "pct", signed=True) for v in row.to_numpy()
        )
        body.append(f"<tr><th>{year}</th>{cells}</tr>")
    return f'<table id="monthly"><tr>{head}</tr>{"".join(body)}</table>'


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def frame_table(frame: pd.DataFrame, table_id: str, limit: int) -> str:
    """A data frame as an HTML table, at most ``limit`` rows (and a note of the rest)."""
    shown = frame.head(limit)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = []
    for row in shown.itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, pd.Timestamp | datetime):
                cells.append(f"<td>{html.escape(v.isoformat())}</td>")
            elif isinstance(v, pd.Timedelta):
                cells.append(f"<td>{html.escape(str(v))}</td>")
            elif isinstance(v, float | int | np.number) and not isinstance(v, bool):
                cells.append(_cell(v))
            else:
                cells.append(f"<td>{html.escape('' if v is None else str(v))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    more = ""
    if len(frame) > limit:
        more = f'<p class="sub">{len(frame) - limit:,} more rows not shown.</p>'
    table = f'<table id="{table_id}"><tr>{head}</tr>{"".join(body)}</table>'
    return f'<div class="scroll">{table}</div>{more}'


def _page(title: str, subtitle: str, sections: Sequence[tuple[str, str]]) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">{html.escape(subtitle)} · generated {stamp}</p>',
    ]
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    parts.append("</body></html>")
    return "\n".join(parts)


def _config_block(config: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    if not config:
        return []
    text = json.dumps(config, indent=2, default=str)
    return [("Config", f"<pre>{html.escape(text)}</pre>")]


def backtest_html(
    *,
    title: str,
    metrics: Mapping[str, Any],
    equity: pd.Series,
    trades: pd.DataFrame | None = None,
    config: Mapping[str, Any] | None = None,
    trades_title: str = "Trades",
) -> str:
    """One backtest: metrics, equity and drawdown, monthly returns, trades (or another
    table under ``trades_title``), config."""
    eq = equity.astype(float).dropna()
    span = ""
    if len(eq):
        span = (
            f"{pd.Timestamp(eq.index[0]).isoformat()} to {pd.Timestamp(eq.index[-1]).isoformat()}"
        )
    sections = [
        ("Metrics", _metrics_table(metrics)),
        ("Equity and drawdown", _img(equity_chart(eq, title), "equity and drawdown")),
        ("Monthly returns", _monthly_table(eq)),
    ]
    if trades is not None:
        heading = f"{trades_title} ({len(trades):,})"
        sections.append((heading, frame_table(trades, "trades", MAX_TRADES)))
    sections += _config_block(config)
    return _page(title, f"Backtest · {len(eq):,} bars · {span}", sections)


def numeric_params(table: pd.DataFrame, names: Sequence[str]) -> list[str]:
    """The searched parameters a heatmap can use: numeric and not boolean columns."""
    return [
        n
        for n in names
        if n in table
        and pd.api.types.is_numeric_dtype(table[n].dtype)
        and not pd.api.types.is_bool_dtype(table[n].dtype)
    ]


def sweep_html(
    *,
    title: str,
    table: pd.DataFrame,
    names: Sequence[str],
    objective: str,
    best: Mapping[str, Any] | None = None,
    summary: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
) -> str:
    """One sweep: best trial, heatmap of the objective over the first two numeric
    parameters, the ranked table, summary and config."""
    sections: list[tuple[str, str]] = []
    if best:
        params = ", ".join(f"{k}={v}" for k, v in dict(best.get("params", {})).items())
        value = fmt(best.get("value"))
        sections.append(
            ("Best trial", f'<p id="best">{html.escape(params)}: {objective} = {value}</p>')
        )
    numeric = numeric_params(table, names)
    if len(numeric) >= 2 and len(table) and objective in table:
        png = heatmap_png(table, numeric[0], numeric[1], objective, title)
        sections.append(("Heatmap", _img(png, f"{objective} by {numeric[0]} and {numeric[1]}")))
    shown = table.drop(columns=["node"], errors="ignore")
    sections.append((f"Ranked trials ({len(table):,})", frame_table(shown, "trials", MAX_TRIALS)))
    if summary:
        text = json.dumps(summary, indent=2, default=str)
        sections.append(("Summary", f"<pre>{html.escape(text)}</pre>"))
    sections += _config_block(config)
    return _page(title, f"Sweep · {len(table):,} trials · objective {objective}", sections)


def report_from_folder(folder: Path) -> str:
    """The report of a run folder (``metrics.json`` + ``equity.parquet``), a sweep folder
    (``trials.parquet``) or a walk-forward folder (``windows.parquet`` +
    ``oos_equity.parquet``); ``ValueError`` for anything else."""
    config = _read_json(folder / "config.json")
    if (folder / "trials.parquet").exists():
        table = pd.read_parquet(folder / "trials.parquet")
        cfg = config or {}
        objective = str(cfg.get("objective", "sharpe"))
        names = list(dict(cfg.get("space", {})))
        return sweep_html(
            title=str(cfg.get("name", folder.name)),
            table=table,
            names=names,
            objective=objective,
            best=_read_json(folder / "best.json"),
            summary=_read_json(folder / "summary.json"),
            config=config,
        )
    if (folder / "windows.parquet").exists() and (folder / "oos_equity.parquet").exists():
        # A walk-forward: the stitched out-of-sample curve, its metrics, the windows.
        equity = pd.read_parquet(folder / "oos_equity.parquet")["equity"]
        ppy = (config or {}).get("periods_per_year") or periods_per_year(
            pd.DatetimeIndex(equity.index)
        )
        oos = compute_metrics(equity, [], periods_per_year=float(ppy)).as_dict()
        return backtest_html(
            title=f"{(config or {}).get('name', folder.name)} (walk-forward, out of sample)",
            metrics={k: v for k, v in oos.items() if k not in _TRADE_METRICS},
            equity=equity,
            trades=pd.read_parquet(folder / "windows.parquet"),
            trades_title="Windows",
            config=config,
        )
    if (folder / "metrics.json").exists() and (folder / "equity.parquet").exists():
        metrics = _read_json(folder / "metrics.json") or {}
        frame = pd.read_parquet(folder / "equity.parquet")
        trades_path = folder / "trades.parquet"
        trades = pd.read_parquet(trades_path) if trades_path.exists() else None
        return backtest_html(
            title=str((config or {}).get("name", folder.name)),
            metrics=metrics,
            equity=frame["equity"],
            trades=trades,
            config=config,
        )
    raise ValueError(
        f"{folder} is neither a backtest run folder (metrics.json, equity.parquet), "
        "a sweep folder (trials.parquet) nor a walk-forward folder (windows.parquet)"
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    value = json.loads(path.read_text())
    return value if isinstance(value, dict) else None
