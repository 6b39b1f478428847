"""Summaries of a finished walk-forward: stitched out-of-sample equity, in-sample versus
out-of-sample degradation and the stability of the chosen parameters.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def stitch_equity(segments: Sequence[pd.Series], initial_cash: float) -> pd.Series:
    """Chain out-of-sample equity curves into one curve that starts at ``initial_cash``.

    Each segment is scaled by ``previous end / segment start`` (the first by
    ``initial_cash / segment start``), so its returns are kept and it starts where the
    previous one ended; the move from one segment's last bar to the next one's first bar
    counts as no return. The index is the segments' indexes in order and must be strictly
    increasing.
    """
    if not segments:
        raise ValueError("no equity segments to stitch")
    if not (math.isfinite(initial_cash) and initial_cash > 0):
        raise ValueError(f"initial_cash must be a positive number, got {initial_cash}")
    level = float(initial_cash)
    parts: list[pd.Series] = []
    for i, segment in enumerate(segments):
        values = segment.to_numpy(dtype=np.float64)
        if values.size == 0:
            raise ValueError(f"segment {i} is empty")
        if not np.isfinite(values).all():
            raise ValueError(f"segment {i} has non-finite equity values")
        if values[0] <= 0:
            raise ValueError(f"segment {i} starts at {values[0]}; it must start above 0 to scale")
        scaled = values * (level / values[0])
        parts.append(pd.Series(scaled, index=segment.index))
        level = float(scaled[-1])
    out: pd.Series = pd.concat(parts)
    if not (out.index.is_monotonic_increasing and out.index.is_unique):
        raise ValueError("the segments' indexes must be strictly increasing when concatenated")
    out.name = "equity"
    return out


@dataclass(frozen=True)
class Degradation:
    """In-sample (IS) versus out-of-sample (OOS) values of one metric, window by window.

    ``ratios`` are OOS / IS, NaN where the IS value is not positive (a ratio to a zero or losing
    in-sample result says nothing about how much of it was kept); ``mean_ratio`` averages the
    defined ratios (NaN if none). ``differences`` are OOS - IS. With annualized returns as the
    metric, ``mean_ratio`` is the walk-forward efficiency (Pardo): the share of the in-sample
    return the optimized parameters kept out of sample, about 0.5 or more being the usual bar.
    """

    ratios: tuple[float, ...]
    differences: tuple[float, ...]
    mean_ratio: float
    mean_difference: float


def degradation(is_values: Sequence[float], oos_values: Sequence[float]) -> Degradation:
    """Per-window and mean OOS / IS ratio and OOS - IS difference of a metric (e.g. Sharpe)."""
    if len(is_values) != len(oos_values):
        raise ValueError(
            f"is_values has {len(is_values)} windows but oos_values has {len(oos_values)}"
        )
    if not is_values:
        raise ValueError("no windows")
    for name, values in (("is_values", is_values), ("oos_values", oos_values)):
        for i, value in enumerate(values):
            if not math.isfinite(value):
                raise ValueError(f"{name}[{i}] is {value}; every value must be finite")
    ratios = tuple(
        float(oos) / float(ins) if ins > 0 else math.nan
        for ins, oos in zip(is_values, oos_values, strict=True)
    )
    differences = tuple(
        float(oos) - float(ins) for ins, oos in zip(is_values, oos_values, strict=True)
    )
    defined = [r for r in ratios if not math.isnan(r)]
    mean_ratio = sum(defined) / len(defined) if defined else math.nan
    return Degradation(ratios, differences, mean_ratio, sum(differences) / len(differences))


def walk_forward_efficiency(
    is_annual_returns: Sequence[float], oos_annual_returns: Sequence[float]
) -> float:
    """Mean OOS / IS annualized return over the windows with a positive IS return."""
    return degradation(is_annual_returns, oos_annual_returns).mean_ratio


@dataclass(frozen=True)
class ParameterStability:
    """How consistently the windows chose one parameter.

    ``mean``, ``std`` (population, ddof=0) and ``cv`` (``std / |mean|``, NaN when the mean is 0)
    are None for a parameter that is not numeric in every window. ``modal_share`` is the share
    of windows that chose ``modal_value``, the most frequent value (the earliest on ties).
    """

    mean: float | None
    std: float | None
    cv: float | None
    modal_value: Any
    modal_share: float


def _is_number(value: Any) -> bool:
    # bool is an int subclass but a flag, not a magnitude.
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _mode(values: list[Any]) -> tuple[Any, int]:
    # Grouped by equality, not hashing: parameters may be lists or dicts.
    best, best_count = values[0], 0
    seen: list[Any] = []
    for value in values:
        if any(value == s for s in seen):
            continue
        seen.append(value)
        count = sum(1 for v in values if v == value)
        if count > best_count:
            best, best_count = value, count
    return best, best_count


def parameter_stability(
    params_per_window: Sequence[Mapping[str, Any]],
) -> dict[str, ParameterStability]:
    """Mean, std, coefficient of variation and modal share of each chosen parameter.

    Every window must choose the same parameter names; the result follows the first
    window's order.
    """
    if not params_per_window:
        raise ValueError("no windows")
    names = list(params_per_window[0])
    for i, params in enumerate(params_per_window):
        if set(params) != set(names):
            missing = sorted(set(names) - set(params))
            extra = sorted(set(params) - set(names))
            raise ValueError(
                f"window {i} chose parameters {sorted(params)}, window 0 chose {sorted(names)}"
                f" (missing {missing}, extra {extra})"
            )
    out: dict[str, ParameterStability] = {}
    for name in names:
        values = [params[name] for params in params_per_window]
        modal, count = _mode(values)
        share = count / len(values)
        if all(_is_number(v) for v in values):
            arr = np.asarray(values, dtype=np.float64)
            mean, std = float(arr.mean()), float(arr.std())
            cv = std / abs(mean) if mean != 0 else math.nan
            out[name] = ParameterStability(mean, std, cv, modal, share)
        else:
            out[name] = ParameterStability(None, None, None, modal, share)
    return out


def plot_walk_forward(
    equity: pd.Series, test_starts: Sequence[pd.Timestamp], path: Path, title: str = ""
) -> None:
    """The stitched out-of-sample equity above its drawdown, test windows marked; one PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    drawdown = equity / equity.cummax() - 1.0
    fig, (ax_eq, ax_dd) = plt.subplots(
        2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax_eq.plot(equity.index, equity.to_numpy(), lw=1.0, color="tab:blue")
    for ts in test_starts:
        ax_eq.axvline(ts, color="grey", lw=0.8, ls="--")
    ax_eq.set_ylabel("out-of-sample equity")
    ax_eq.set_title(title)
    ax_eq.grid(alpha=0.3)
    ax_dd.fill_between(drawdown.index, drawdown.to_numpy() * 100, 0, color="tab:red", alpha=0.4)
    ax_dd.set_ylabel("drawdown %")
    ax_dd.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_walk_forward(
    folder: Path,
    config_json: str,
    windows_frame: pd.DataFrame,
    equity: pd.Series,
    summary: Mapping[str, Any],
) -> Path:
    """config.json, windows.parquet, oos_equity.parquet, summary.json and walk_forward.png."""
    from raytrader.backtesting.sweep_report import json_safe

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(config_json)
    frame = windows_frame.copy()
    frame["params"] = frame["params"].map(lambda p: json.dumps(json_safe(p)))
    frame.to_parquet(folder / "windows.parquet", index=False)
    equity.to_frame("equity").to_parquet(folder / "oos_equity.parquet")
    (folder / "summary.json").write_text(json.dumps(json_safe(summary), indent=2))
    starts = pd.to_datetime(windows_frame["test_start"]).tolist()
    plot_walk_forward(equity, starts, folder / "walk_forward.png", "walk-forward (out of sample)")
    return folder
