"""Causal features of one symbol's OHLCV bars for ML agents.

Every column at bar ``t`` is a function of bars ``<= t`` only: the indicators come from
``raytrader.data.indicators`` (causal, checked against TA-Lib) and the rolling statistics are
trailing windows. Prices enter as ratios (returns, distances over the close), so a model
trained on one price level applies at another.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from raytrader.data.indicators import atr, bollinger, exp_regression_momentum, macd, rsi

__all__ = ["FeatureConfig", "build_features", "feature_names"]


class FeatureConfig(BaseModel):
    """Windows of the feature pipeline (bars)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    return_lags: tuple[int, ...] = Field((1, 5, 10, 20), description="log-return horizons")
    rsi_period: int = Field(14, ge=2, le=500)
    macd_fast: int = Field(12, ge=2, le=500)
    macd_slow: int = Field(26, ge=3, le=500)
    macd_signal: int = Field(9, ge=2, le=500)
    bollinger_period: int = Field(20, ge=2, le=500)
    bollinger_k: float = Field(2.0, gt=0, le=10)
    atr_period: int = Field(14, ge=2, le=500)
    vol_window: int = Field(20, ge=2, le=500, description="rolling volatility of log returns")
    volume_window: int = Field(20, ge=2, le=500, description="volume z-score window")
    trend_window: int = Field(50, ge=3, le=1000, description="regression slope for the trend sign")
    vol_rank_window: int = Field(
        250, ge=10, le=5000, description="history over which the volatility percentile is taken"
    )

    @field_validator("return_lags")
    @classmethod
    def _positive_lags(cls, lags: tuple[int, ...]) -> tuple[int, ...]:
        if not lags or any(k < 1 for k in lags) or len(set(lags)) != len(lags):
            raise ValueError("return_lags must be distinct integers >= 1")
        return lags

    @property
    def warmup(self) -> int:
        """Index of the first bar at which every feature is defined."""
        return max(
            max(self.return_lags),
            self.rsi_period,
            max(self.macd_fast, self.macd_slow) + self.macd_signal - 2,
            self.bollinger_period - 1,
            self.atr_period,
            self.vol_window,
            self.volume_window - 1,
            self.trend_window - 1,
            self.vol_window + self.vol_rank_window - 1,
        )


def feature_names(config: FeatureConfig | None = None) -> list[str]:
    """The columns ``build_features`` returns, in order."""
    cfg = config or FeatureConfig()
    return [
        *(f"ret_{k}" for k in cfg.return_lags),
        "rsi",
        "macd",
        "macd_signal",
        "macd_hist",
        "bb_pct_b",
        "atr_pct",
        "volatility",
        "volume_z",
        "trend_sign",
        "vol_percentile",
    ]


def build_features(frame: pd.DataFrame, config: FeatureConfig | None = None) -> pd.DataFrame:
    """Features of an OHLCV frame (columns high, low, close, volume), one row per bar.

    Rows before a feature's warm-up hold NaN; drop them (``dropna()``) before training.
    """
    cfg = config or FeatureConfig()
    missing = {"high", "low", "close", "volume"} - set(frame.columns)
    if missing:
        raise ValueError(f"build_features: frame lacks columns {sorted(missing)}")
    high = frame["high"].to_numpy(dtype=np.float64)
    low = frame["low"].to_numpy(dtype=np.float64)
    close = frame["close"].to_numpy(dtype=np.float64)
    volume = frame["volume"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_close = np.log(close)
    cols: dict[str, np.ndarray] = {}
    for k in cfg.return_lags:
        lagged = np.full_like(log_close, np.nan)
        lagged[k:] = log_close[:-k]
        cols[f"ret_{k}"] = log_close - lagged
    cols["rsi"] = rsi(close, cfg.rsi_period) / 100.0
    line, signal, hist = macd(close, cfg.macd_fast, cfg.macd_slow, cfg.macd_signal)
    cols["macd"] = line / close
    cols["macd_signal"] = signal / close
    cols["macd_hist"] = hist / close
    upper, _, lower = bollinger(close, cfg.bollinger_period, cfg.bollinger_k)
    width = upper - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        # A flat window has no width: the close sits at the middle of the band.
        cols["bb_pct_b"] = np.where(width > 0, (close - lower) / width, 0.5)
    cols["bb_pct_b"][np.isnan(width)] = np.nan
    cols["atr_pct"] = atr(high, low, close, cfg.atr_period) / close

    one_bar = pd.Series(cols.get("ret_1", np.r_[np.nan, np.diff(log_close)]), index=frame.index)
    vol = one_bar.rolling(cfg.vol_window).std()
    cols["volatility"] = vol.to_numpy()
    vols = pd.Series(volume, index=frame.index).rolling(cfg.volume_window)
    mean, std = vols.mean().to_numpy(), vols.std().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["volume_z"] = np.where(std > 0, (volume - mean) / std, 0.0)
    cols["volume_z"][np.isnan(std)] = np.nan
    trend = exp_regression_momentum(close, cfg.trend_window)
    cols["trend_sign"] = np.sign(trend)
    # Where today's volatility ranks among the last vol_rank_window values (0..1].
    cols["vol_percentile"] = vol.rolling(cfg.vol_rank_window).rank(pct=True).to_numpy()
    out = pd.DataFrame(cols, index=frame.index)
    return out[feature_names(cfg)]
