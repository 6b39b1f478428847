"""Per-agent attribution of a backtest whose agents share the account (capital weights).

At every close, the account's holdings are attributed to the agents as
``portfolio.allocation.attribute_positions`` does: agent ``a`` owns its contribution
``c_as x equity / price`` of symbol ``s``, and what the account holds beyond or short of the
summed contributions is split by gross share; a holding no agent targets is ``UNALLOCATED``.
The contributions in effect at a close are the ones the planner set at the latest open.

Agent ``a``'s PnL at bar ``t`` is what its attributed positions at the close of ``t - 1`` make
up to the close of ``t`` (``attribute_pnl``). These sum to the account's mark-to-market PnL;
``TRADING`` is the rest of the equity change (commissions, fills away from the close,
dividends), so every row sums to the equity change of its bar (the first row: from the
initial cash).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from raytrader.backtesting.result import BacktestResult
from raytrader.data.market_data import FloatArray
from raytrader.portfolio.allocation import UNALLOCATED

TRADING = "(trading)"
_EPS = 1e-9


def attribute(
    result: BacktestResult,
    close_ffill: FloatArray,
    initial_cash: float,
    labels: Sequence[str],
    allocation_log: Sequence[tuple[int, str, Mapping[str, float]]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(pnl, positions)``: PnL per bar with a column per agent, ``UNALLOCATED`` and
    ``TRADING``; the last bar's positions by symbol (rows) and agent (columns)."""
    index = result.positions.index
    symbols = list(result.positions.columns)
    held = result.positions.to_numpy(dtype=float)  # (n, m)
    price = np.asarray(close_ffill, dtype=float).T  # (n, m)
    equity = result.equity.to_numpy(dtype=float)
    n = held.shape[0]
    agents = list(dict.fromkeys(labels))
    contrib = _contributions(n, symbols, agents, allocation_log)  # (agents, n, m)

    valid = np.isfinite(price) & (price > 0)
    units = np.divide(
        equity[:, None], price, out=np.zeros_like(price), where=valid
    )  # equity / price
    gross = np.abs(contrib).sum(axis=0)
    targeted = gross > _EPS
    residual = held - (contrib * units).sum(axis=0)
    share = np.divide(residual, gross, out=np.zeros_like(residual), where=targeted)
    move = np.zeros_like(price)
    move[1:] = np.nan_to_num(np.diff(price, axis=0))

    def pnl_of(positions: FloatArray) -> FloatArray:
        out = np.zeros(n)
        out[1:] = (positions[:-1] * move[1:]).sum(axis=1)
        return out

    pnl: dict[str, FloatArray] = {}
    last: dict[str, FloatArray] = {}
    for a, label in enumerate(agents):
        c = contrib[a]
        positions = c * units + share * np.abs(c)
        pnl[label] = pnl_of(positions)
        last[label] = positions[-1]
    unallocated = np.where(targeted, 0.0, held)
    pnl[UNALLOCATED] = pnl_of(unallocated)
    last[UNALLOCATED] = unallocated[-1]
    change = np.diff(equity, prepend=initial_cash)
    pnl[TRADING] = change - pnl_of(held)
    return (
        pd.DataFrame(pnl, index=index),
        pd.DataFrame(last, index=pd.Index(symbols, name="symbol")),
    )


def _contributions(
    n: int,
    symbols: Sequence[str],
    agents: Sequence[str],
    allocation_log: Sequence[tuple[int, str, Mapping[str, float]]],
) -> FloatArray:
    """(agents, n, m): each agent's account weight of each symbol at every bar, from the
    planner's changes (a change at bar ``b`` holds from bar ``b`` on)."""
    out = np.zeros((len(agents), n, len(symbols)))
    col = {s: j for j, s in enumerate(symbols)}
    changes: dict[str, tuple[list[int], list[list[float]]]] = {}
    for bar, symbol, contributions in allocation_log:
        bars, values = changes.setdefault(symbol, ([], []))
        bars.append(bar)
        values.append([contributions.get(a, 0.0) for a in agents])
    for symbol, (bars, values) in changes.items():
        which = np.searchsorted(np.asarray(bars), np.arange(n), side="right") - 1
        table = np.vstack([np.zeros((1, len(agents))), np.asarray(values)])
        out[:, :, col[symbol]] = table[which + 1].T
    return out
