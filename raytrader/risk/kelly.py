"""Fractional Kelly: the share of equity to risk per bet from its edge."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt


def _check_scaling(fraction: float, max_fraction: float) -> None:
    if not (0 < fraction <= 1):
        raise ValueError(f"fraction must be in (0, 1] (1 is full Kelly), got {fraction}")
    if not (max_fraction > 0 and math.isfinite(max_fraction)):
        raise ValueError(f"max_fraction must be positive and finite, got {max_fraction}")


def kelly_fraction(
    win_rate: float, payoff_ratio: float, *, fraction: float = 0.5, max_fraction: float = 1.0
) -> float:
    """``fraction x f*`` with ``f* = p - (1 - p) / b``, capped at ``max_fraction``; 0 when the
    edge is not positive.

    ``win_rate`` p: probability of a win, in [0, 1]. ``payoff_ratio`` b: average win over
    average loss, positive (``inf`` when there are no losses: then ``f* = p``).
    """
    if not (0 <= win_rate <= 1):
        raise ValueError(f"win_rate must be in [0, 1], got {win_rate}")
    if not payoff_ratio > 0:  # also refuses NaN
        raise ValueError(f"payoff_ratio must be positive, got {payoff_ratio}")
    _check_scaling(fraction, max_fraction)
    full = win_rate - (1 - win_rate) / payoff_ratio
    if full <= 0:
        return 0.0
    return min(fraction * full, max_fraction)


def win_rate_and_payoff(trade_returns: npt.ArrayLike) -> tuple[float, float]:
    """``(p, b)`` estimated from trade returns: p the share of trades that won (breakeven trades
    count as not won, the cautious side), b the mean win over the mean absolute loss (``inf``
    with no losses, 0 with no wins)."""
    r = np.asarray(trade_returns, dtype=np.float64)
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"trade_returns must be a non-empty 1-D sequence, got shape {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError("trade_returns contain NaN or inf")
    wins, losses = r[r > 0], r[r < 0]
    p = wins.size / r.size
    if wins.size == 0:
        return p, 0.0
    if losses.size == 0:
        return p, math.inf
    return p, float(wins.mean() / -losses.mean())


def kelly_from_returns(
    trade_returns: npt.ArrayLike, *, fraction: float = 0.5, max_fraction: float = 1.0
) -> float:
    """``kelly_fraction`` with p and b estimated by ``win_rate_and_payoff`` (0 with no wins)."""
    _check_scaling(fraction, max_fraction)
    p, b = win_rate_and_payoff(trade_returns)
    if b == 0:
        return 0.0
    return kelly_fraction(p, b, fraction=fraction, max_fraction=max_fraction)
