"""Volatility targeting: scale exposure so its expected volatility matches a target."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt


def _returns(returns: npt.ArrayLike) -> npt.NDArray[np.float64]:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"returns must be 1-D, got {r.ndim}-D")
    if r.size == 0:
        raise ValueError("returns is empty")
    if not np.isfinite(r).all():
        raise ValueError("returns contain NaN or inf; drop them first")
    return r


def _check_periods(periods_per_year: float) -> None:
    if not (periods_per_year > 0 and math.isfinite(periods_per_year)):
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")


def ewma_volatility(
    returns: npt.ArrayLike,
    halflife: float = 20.0,
    periods_per_year: float = 252.0,
    *,
    demean: bool = False,
) -> float:
    """Annualised volatility of ``returns`` (oldest first) with exponentially decaying weights.

    The newest return weighs 1, one ``halflife`` older 1/2; weights are normalised over the
    sample. Returns are taken as mean zero (usual over short horizons) unless ``demean``.
    """
    r = _returns(returns)
    if not (halflife > 0 and math.isfinite(halflife)):
        raise ValueError(f"halflife must be positive, got {halflife}")
    _check_periods(periods_per_year)
    decay = 0.5 ** (1.0 / halflife)
    weights = decay ** np.arange(r.size - 1, -1, -1, dtype=np.float64)
    weights /= weights.sum()
    if demean:
        r = r - weights @ r
    return math.sqrt(float(weights @ r**2) * periods_per_year)


def rolling_volatility(
    returns: npt.ArrayLike,
    window: int = 20,
    periods_per_year: float = 252.0,
    *,
    demean: bool = False,
) -> float:
    """Annualised volatility of the last ``window`` returns, equally weighted.

    Root mean square (mean taken as zero) unless ``demean``, then the sample standard deviation.
    """
    r = _returns(returns)
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    if r.size < window:
        raise ValueError(f"rolling_volatility needs at least window={window} returns, got {r.size}")
    if demean and window < 2:
        raise ValueError("demean needs window >= 2")
    _check_periods(periods_per_year)
    tail = r[-window:]
    var = float(np.var(tail, ddof=1)) if demean else float(np.mean(tail**2))
    return math.sqrt(var * periods_per_year)


def vol_target_scale(realized_vol: float, target_vol: float, max_leverage: float = 1.0) -> float:
    """Exposure (share of equity) that brings ``realized_vol`` to ``target_vol``, at most
    ``max_leverage``: ``min(target / realized, max_leverage)``.

    Both vols annualised alike. A realized vol that is not positive and finite (no estimate)
    gives 0: no position, as for the other sizers.
    """
    if not (target_vol > 0 and math.isfinite(target_vol)):
        raise ValueError(f"target_vol must be positive and finite, got {target_vol}")
    if not (max_leverage > 0 and math.isfinite(max_leverage)):
        raise ValueError(f"max_leverage must be positive and finite, got {max_leverage}")
    if not (realized_vol > 0 and math.isfinite(realized_vol)):
        return 0.0
    return min(target_vol / realized_vol, max_leverage)


def vol_target_units(
    equity: float,
    price: float,
    realized_vol: float,
    target_vol: float,
    max_leverage: float = 1.0,
    point_value: float = 1.0,
) -> float:
    """Units whose notional is ``vol_target_scale(...) x equity`` at ``price``
    (``point_value``: currency per point per unit). 0 when the price is not positive."""
    if not (point_value > 0 and math.isfinite(point_value)):
        raise ValueError(f"point_value must be positive and finite, got {point_value}")
    scale = vol_target_scale(realized_vol, target_vol, max_leverage)
    if not (price > 0 and math.isfinite(price)):
        return 0.0
    return equity * scale / (price * point_value)
