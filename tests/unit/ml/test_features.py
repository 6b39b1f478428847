"""Features are causal and agree with the indicators they come from."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from raytrader.data.indicators import atr, bollinger, rsi
from raytrader.ml.features import FeatureConfig, build_features, feature_names

N = 600


def _perturb_after(frame: pd.DataFrame, t: int, seed: int) -> pd.DataFrame:
    """The same bars up to ``t``, a different (still valid) market afterwards."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    k = len(frame) - t - 1
    scale = np.exp(np.cumsum(rng.normal(0.0, 0.05, k)))
    for col in ("open", "high", "low", "close"):
        out.iloc[t + 1 :, out.columns.get_loc(col)] = frame[col].to_numpy()[t + 1 :] * scale
    out.iloc[t + 1 :, out.columns.get_loc("volume")] = rng.integers(1, 50_000, k).astype(float)
    return out


@pytest.mark.parametrize("t", [0, 40, 299, 450, N - 2])
def test_build_features_future_bars_changed_past_rows_identical(
    gbm_frame: Callable[..., pd.DataFrame], t: int
) -> None:
    frame = gbm_frame(N, seed=3)
    base = build_features(frame)
    changed = build_features(_perturb_after(frame, t, seed=t))
    # Bit-identical up to t, and the perturbation did reach the features after t.
    pd.testing.assert_frame_equal(base.iloc[: t + 1], changed.iloc[: t + 1], check_exact=True)
    assert not base.iloc[t + 1 :].equals(changed.iloc[t + 1 :])


def test_build_features_truncated_history_same_values(
    gbm_frame: Callable[..., pd.DataFrame],
) -> None:
    # Computing on data that ends at t (as live) gives the backtest's values at t.
    frame = gbm_frame(N, seed=4)
    full = build_features(frame)
    for t in (300, 451):
        part = build_features(frame.iloc[: t + 1])
        np.testing.assert_allclose(part.to_numpy(), full.iloc[: t + 1].to_numpy(), rtol=1e-12)


def test_build_features_columns_match_indicators(gbm_frame: Callable[..., pd.DataFrame]) -> None:
    frame = gbm_frame(400, seed=5)
    cfg = FeatureConfig(vol_rank_window=100)
    f = build_features(frame, cfg)
    close = frame["close"].to_numpy()
    assert list(f.columns) == feature_names(cfg)
    np.testing.assert_allclose(f["ret_5"].iloc[5:], np.log(close[5:] / close[:-5]), atol=1e-14)
    np.testing.assert_allclose(f["rsi"], rsi(close, 14) / 100, rtol=1e-12, equal_nan=True)
    upper, _, lower = bollinger(close, 20, 2.0)
    np.testing.assert_allclose(
        f["bb_pct_b"], (close - lower) / (upper - lower), rtol=1e-10, equal_nan=True
    )
    atr_ = atr(frame["high"].to_numpy(), frame["low"].to_numpy(), close, 14)
    np.testing.assert_allclose(f["atr_pct"], atr_ / close, rtol=1e-12, equal_nan=True)
    t = 200  # rolling volatility and volume z-score by hand at one bar
    window = np.diff(np.log(close[t - 20 : t + 1]))
    assert f["volatility"].iloc[t] == pytest.approx(np.std(window, ddof=1), rel=1e-10)
    vol_w = frame["volume"].to_numpy()[t - 19 : t + 1]
    z = (vol_w[-1] - vol_w.mean()) / vol_w.std(ddof=1)
    assert f["volume_z"].iloc[t] == pytest.approx(z, rel=1e-10)
    assert set(np.unique(f["trend_sign"].dropna())) <= {-1.0, 0.0, 1.0}
    pct = f["vol_percentile"].dropna()
    assert ((pct > 0) & (pct <= 1)).all()


def test_build_features_warmup_covers_every_column(
    gbm_frame: Callable[..., pd.DataFrame],
) -> None:
    cfg = FeatureConfig(vol_rank_window=60)
    f = build_features(gbm_frame(300, seed=6), cfg)
    assert cfg.warmup == 20 + 60 - 1  # the volatility percentile needs the longest history
    assert not f.iloc[cfg.warmup :].isna().any().any()
    assert f.iloc[: cfg.warmup].isna().any(axis=1).all()
    # Each other column is defined from its own warm-up on, not later.
    first_valid = {c: int(np.argmax(f[c].notna().to_numpy())) for c in f.columns}
    assert first_valid["ret_20"] == 20
    assert first_valid["rsi"] == 14
    assert first_valid["macd"] == 26 + 9 - 2
    assert first_valid["bb_pct_b"] == 19
    assert first_valid["atr_pct"] == 14
    assert first_valid["trend_sign"] == 49


def test_feature_config_rejects_bad_lags() -> None:
    with pytest.raises(ValueError, match="return_lags"):
        FeatureConfig(return_lags=(0, 5))
    with pytest.raises(ValueError, match="extra"):
        FeatureConfig(lags=(1,))  # type: ignore[call-arg]
