"""Labels on hand-made price paths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raytrader.ml.labels import direction_labels, triple_barrier_labels


def _series(values: list[float]) -> pd.Series:
    index = pd.date_range("2024-01-01", periods=len(values), freq="1D", tz="UTC")
    return pd.Series(values, index=index, dtype=float)


def test_direction_labels_dead_band_by_hand() -> None:
    close = _series([100, 101, 103, 102.5, 99, 100])
    out = direction_labels(close, horizon=2, dead_band=0.01)
    # forward 2-bar returns: 103/100-1=+3%, 102.5/101-1=+1.49%, 99/103-1=-3.9%,
    # 100/102.5-1=-2.4%; the last two bars have no label.
    np.testing.assert_allclose(
        out["ret"].iloc[:4], [0.03, 102.5 / 101 - 1, 99 / 103 - 1, -0.025 / 1.025]
    )
    assert out["label"].iloc[:4].tolist() == [1.0, 1.0, -1.0, -1.0]
    assert out["label"].iloc[4:].isna().all()
    assert out["end"].tolist() == [2, 3, 4, 5, 6, 7]
    # A wider band turns the +1.49% move into "flat"; the +3% stays up.
    wide = direction_labels(close, horizon=2, dead_band=0.02)
    assert wide["label"].iloc[:4].tolist() == [1.0, 0.0, -1.0, -1.0]
    # A return exactly at the band is inside it.
    edge = direction_labels(_series([1.0, 1.25, 0.75]), horizon=1, dead_band=0.25)
    assert edge["ret"].iloc[0] == 0.25
    assert edge["label"].iloc[0] == 0.0
    assert edge["label"].iloc[1] == -1.0  # -40%


def test_direction_labels_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="horizon"):
        direction_labels(_series([1, 2, 3]), horizon=0)
    with pytest.raises(ValueError, match="dead_band"):
        direction_labels(_series([1, 2, 3]), horizon=1, dead_band=-0.1)


def test_triple_barrier_first_touch_by_hand() -> None:
    # Constant volatility 1%: take-profit at +2%, stop-loss at -1%, 3 bars to the vertical.
    close = _series([100, 101, 102.5, 98, 100, 100.5, 100.2, 100, 100, 100])
    vol = pd.Series(0.01, index=close.index)
    out = triple_barrier_labels(
        close, take_profit=2.0, stop_loss=1.0, max_holding=3, volatility=vol, dead_band=0.001
    )
    rows = out.iloc[:7]
    # bar 0: path +1%, +2.5% -> take-profit at bar 2 (before the -2% at bar 3)
    # bar 1: path +1.49%, -2.97% -> stop-loss at bar 3
    # bar 2: path -4.4% -> stop-loss at bar 3 at once
    # bar 3: path +2.04% -> take-profit at bar 4
    # bar 4: path +0.5%, +0.2%, 0% -> vertical, return 0 inside the dead band -> 0
    # bar 5: path -0.30%, -0.50%, -0.50% -> vertical, -0.5% -> -1
    # bar 6: path -0.2%, -0.2%, -0.2% -> vertical, -0.2% -> -1
    assert rows["label"].tolist() == [1.0, -1.0, -1.0, 1.0, 0.0, -1.0, -1.0]
    assert rows["barrier"].tolist() == [
        "take_profit",
        "stop_loss",
        "stop_loss",
        "take_profit",
        "vertical",
        "vertical",
        "vertical",
    ]
    assert rows["end"].tolist() == [2, 3, 3, 4, 7, 8, 9]
    assert rows["ret"].iloc[0] == pytest.approx(0.025)
    assert rows["ret"].iloc[2] == pytest.approx(98 / 102.5 - 1)
    # The last max_holding bars have no full window: no label.
    assert out["label"].iloc[7:].isna().all()
    assert out["barrier"].iloc[7:].isna().all()


def test_triple_barrier_touch_exactly_on_barrier_counts() -> None:
    close = _series([100, 102, 100, 100])
    vol = pd.Series(0.01, index=close.index)
    out = triple_barrier_labels(
        close, take_profit=2.0, stop_loss=2.0, max_holding=2, volatility=vol
    )
    assert out["label"].iloc[0] == 1.0
    assert out["barrier"].iloc[0] == "take_profit"


def test_triple_barrier_no_volatility_no_label() -> None:
    close = _series([100 + i for i in range(30)])
    out = triple_barrier_labels(close, max_holding=3, vol_window=10)
    # pct_change leaves the first bar NaN, so the first 10 bars lack a full volatility window.
    assert out["label"].iloc[:10].isna().all()
    assert out["label"].iloc[10:27].notna().all()
