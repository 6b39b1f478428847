"""The mixture regime in a session: a growing history is classified at every bar without
refitting at every bar (fits are memoized), and optional periodic refits on a rolling window
that read no future bar."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raytrader.agents.ensemble import RegimeMember, RegimeMemberParams
from raytrader.data.market_data import MarketData
from raytrader.ml.regime import GaussianRegimeModel, RegimeModelConfig, fit_cache_info
from tests.unit.ml._synthetic import ar1_frame

FIT = 300


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    calm, wild = ar1_frame(400, 0.1, seed=3), ar1_frame(400, 0.1, seed=4)
    wild["close"] = wild["close"] ** 3 / 100**2  # three times the log returns
    wild.index = calm.index + (calm.index[-1] - calm.index[0]) + pd.Timedelta(hours=1)
    return pd.concat([calm, wild])


def test_a_session_member_fits_once_not_at_every_bar(frame: pd.DataFrame) -> None:
    member = RegimeMember(
        RegimeMemberParams(source="model", fit_bars=FIT, model=RegimeModelConfig(seed=11))
    )
    data = MarketData.from_frames({"X": frame})
    before = fit_cache_info()["misses"]
    full = member.scores(data)
    assert fit_cache_info()["misses"] == before + 1
    for t in range(FIT, FIT + 30):  # the session's history grows by a bar at each close
        scores = member.scores(data.slice(0, t + 1))
        assert scores[0, -1] == pytest.approx(full[0, t], rel=1e-12)
    assert fit_cache_info()["misses"] == before + 1  # memoized: no refit per bar


def test_periodic_refits_on_a_rolling_window(frame: pd.DataFrame) -> None:
    every = 60
    config = RegimeModelConfig(seed=12, n_init=1, refit_every=every)
    model = GaussianRegimeModel(config).fit(frame.iloc[:FIT])
    before = fit_cache_info()["misses"]
    full = model.filter(frame).proba.to_numpy()
    points = list(range(FIT - 1 + every, len(frame), every))
    assert model.refits(frame) == [frame.index[p] for p in points]
    assert fit_cache_info()["misses"] == before + len(points)
    # Up to the first refit the first fit filters alone; from there on the refits take over.
    fixed = GaussianRegimeModel(config.model_copy(update={"refit_every": None}))
    first = fixed.fit(frame.iloc[:FIT]).filter(frame).proba.to_numpy()
    np.testing.assert_array_equal(full[: points[0]], first[: points[0]])
    assert not np.allclose(full[points[0] :], first[points[0] :])
    # The model keeps its first fit (the states' mean trends score every bar alike).
    pd.testing.assert_frame_equal(model.state_means(), fixed.state_means())

    # No look-ahead: bars after t changed, the probabilities up to t are the same.
    t = points[2] + 7
    changed = frame.copy()
    changed.iloc[t + 1 :, :4] *= 1.5
    other = GaussianRegimeModel(config).fit(changed.iloc[:FIT]).filter(changed).proba.to_numpy()
    np.testing.assert_array_equal(other[: t + 1], full[: t + 1])

    # A session's growing history: one fit per refit point, not one per bar.
    fresh = RegimeModelConfig(seed=13, n_init=1, refit_every=every)
    start = fit_cache_info()["misses"]
    grown = GaussianRegimeModel(fresh).fit(frame.iloc[:FIT])
    for stop in range(points[0] - 3, points[1] + 2):
        grown.filter(frame.iloc[:stop])
    assert fit_cache_info()["misses"] == start + 1 + 2  # the first fit and two refits
