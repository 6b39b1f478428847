"""Sweep results: the ranked table, the best trial, a heatmap, and the folder holding them."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from raytrader.backtesting.sweep_config import SweepConfig


def ranked_table(
    records: Iterable[Mapping[str, Any]],
    names: Sequence[str],
    objective: str,
    direction: str = "maximize",
) -> pd.DataFrame:
    """One row per trial: rank, key, the searched parameters, the metrics, engine, seconds.

    Best first by ``objective``; trials whose objective is missing (NaN, infinite) come last.
    """
    rows = []
    for rec in records:
        row: dict[str, Any] = {"key": rec["key"]}
        row.update({n: rec["params"][n] for n in names})
        row.update({k: (math.nan if v is None else v) for k, v in rec["metrics"].items()})
        row["engine"] = rec.get("engine")
        row["seconds"] = rec.get("seconds")
        row["node"] = rec.get("node")
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = table.sort_values(
        [objective, "key"], ascending=[direction == "minimize", True], na_position="last"
    )
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table.reset_index(drop=True)


def best_record(table: pd.DataFrame, names: Sequence[str], objective: str) -> dict[str, Any] | None:
    """The first row with a usable objective: its parameters and objective value."""
    usable = table[np.isfinite(table[objective].astype(float))] if len(table) else table
    if usable.empty:
        return None
    row = usable.iloc[0]
    return {
        "key": str(row["key"]),
        "params": {n: _plain(row[n]) for n in names},
        "objective": objective,
        "value": float(row[objective]),
    }


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None and numpy scalars as Python ones (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    value = _plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def plot_heatmap(
    table: pd.DataFrame, x: str, y: str, objective: str, path: Path, title: str = ""
) -> None:
    """The objective over two parameters (the best over any other parameter), one PNG."""
    grid = table.pivot_table(index=y, columns=x, values=objective, aggfunc="max")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * grid.shape[1] + 3), max(4.5, 0.35 * len(grid))))
    values = grid.to_numpy(dtype=float)
    image = ax.imshow(values, origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(grid.shape[1]), [f"{v:g}" for v in grid.columns], rotation=90)
    ax.set_yticks(range(grid.shape[0]), [f"{v:g}" for v in grid.index])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title or f"{objective} by {x} and {y}")
    fig.colorbar(image, ax=ax, label=objective)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_sweep(
    folder: Path,
    config: SweepConfig,
    table: pd.DataFrame,
    best: Mapping[str, Any] | None,
    summary: Mapping[str, Any],
) -> Path:
    """config.json, trials.parquet (ranked), best.json, summary.json and, for two or more
    numeric parameters, heatmap.png (the first two)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(config.model_dump_json(indent=2))
    table.to_parquet(folder / "trials.parquet", index=False)
    (folder / "best.json").write_text(json.dumps(json_safe(best), indent=2))
    (folder / "summary.json").write_text(json.dumps(json_safe(summary), indent=2, default=str))
    numeric = [
        n
        for n in config.space
        if n in table
        and pd.api.types.is_numeric_dtype(table[n].dtype)
        and not pd.api.types.is_bool_dtype(table[n].dtype)
    ]
    if len(numeric) >= 2 and len(table):
        plot_heatmap(
            table, numeric[0], numeric[1], config.objective, folder / "heatmap.png", config.name
        )
    return folder
