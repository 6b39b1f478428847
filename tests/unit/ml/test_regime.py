"""Regimes: rules by hand, the mixture recovers known regimes, everything causal."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score  # type: ignore[import-untyped]

from raytrader.data.synthetic import Regime, gbm_regimes
from raytrader.ml.regime import (
    GaussianRegimeModel,
    RegimeModelConfig,
    RegimeResult,
    RuleRegimeClassifier,
    RuleRegimeConfig,
    RuleRegimes,
    align_to_bars,
    on_timeframe,
    on_timeframes,
)
from tests.unit.ml.test_features import _perturb_after

N_BARS, N_FIT = 3000, 1500


def _frame_from_returns(ret: np.ndarray, freq: str = "1h") -> pd.DataFrame:
    close = 100 * np.exp(np.cumsum(ret))
    open_ = np.r_[100.0, close[:-1]]
    index = pd.date_range("2022-01-03", periods=len(ret), freq=freq, tz="UTC")
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close),
            "low": np.minimum(open_, close),
            "close": close,
            "volume": np.full(len(ret), 1000.0),
        },
        index=index,
    )


def _codes(result: RegimeResult, states: tuple[str, ...]) -> np.ndarray:
    return np.array([states.index(s) if isinstance(s, str) else -1 for s in result.label])


def test_rule_trend_states_on_a_hand_built_series() -> None:
    # Sideways (returns alternate +-0.1%), then +1% a bar, then -1% a bar.
    wiggle = 0.001 * np.where(np.arange(360) % 2 == 0, 1.0, -1.0)
    drift = np.r_[np.zeros(200), np.full(80, 0.01), np.full(80, -0.01)]
    frame = _frame_from_returns(wiggle + drift)
    cfg = RuleRegimeConfig(trend_window=20, vol_window=10, vol_rank_window=30)
    rules = RuleRegimeClassifier(cfg).classify(frame)
    label = rules.trend.label
    assert label.iloc[: cfg.trend_window].isna().all()
    assert (label.iloc[cfg.trend_window : 200] == "sideways").all()
    assert (label.iloc[220:280] == "up").all()
    assert (label.iloc[300:] == "down").all()
    # Over 20 alternating bars the move is 0: margins (-1, 1, -1) in units of the scale.
    sideways = rules.trend.proba.iloc[150]
    assert sideways["sideways"] == pytest.approx(math.e**2 / (math.e**2 + 2))
    assert sideways["up"] == pytest.approx(sideways["down"])
    assert rules.trend.proba.iloc[250]["up"] > 0.999
    np.testing.assert_allclose(rules.trend.proba.iloc[cfg.trend_window :].sum(axis=1), 1.0)
    moves = rules.trend.transitions()
    # The reversal passes through sideways while the window holds both legs.
    assert list(zip(moves["from"], moves["to"], strict=True)) == [
        ("sideways", "up"),
        ("up", "sideways"),
        ("sideways", "down"),
    ]
    assert (moves["bar"].diff().dropna() > 0).all()
    assert moves["confidence"].between(1 / 3, 1).all()


def test_rule_volatility_states_on_a_hand_built_series() -> None:
    rng = np.random.default_rng(0)
    scale = np.r_[np.full(200, 0.002), np.full(60, 0.02), np.full(140, 0.002)]
    frame = _frame_from_returns(scale * rng.standard_normal(400))
    cfg = RuleRegimeConfig(vol_window=10, vol_rank_window=100)
    vol = RuleRegimeClassifier(cfg).classify(frame).volatility
    label = vol.label
    assert label.iloc[: cfg.vol_window + cfg.vol_rank_window - 1].isna().all()
    # Through most of the burst its volatility ranks above the calm history before it ...
    assert (label.iloc[200:250] == "high").all()
    # ... and once the window is calm again, below the burst's values still on record.
    assert (label.iloc[280:300] == "low").all()
    assert vol.proba.iloc[240]["high"] > 0.9


def test_joint_states_multiply_and_agree_with_their_parts() -> None:
    frame = gbm_regimes(800, seed=1).frame
    rules = RuleRegimeClassifier(RuleRegimeConfig(vol_rank_window=100)).classify(frame)
    joint = rules.joint
    assert len(joint.states) == 9
    ok = joint.label.notna()
    expected = rules.trend.label[ok] + "/" + rules.volatility.label[ok]
    assert (joint.label[ok] == expected).all()
    np.testing.assert_allclose(joint.proba[ok].sum(axis=1), 1.0)


def _recovery(seed: int) -> tuple[float, float]:
    series = gbm_regimes(N_BARS, seed=seed)
    model = GaussianRegimeModel().fit(series.frame.iloc[:N_FIT])
    filtered = model.filter(series.frame)
    # States are ordered by volatility: low_vol <-> calm_bull (0), high_vol <-> volatile_bear.
    model_acc = balanced_accuracy_score(
        series.regimes[N_FIT:], _codes(filtered, model.states)[N_FIT:]
    )
    vol = RuleRegimeClassifier().classify(series.frame).volatility.label.iloc[N_FIT:]
    rule_acc = balanced_accuracy_score(series.regimes[N_FIT:], (vol == "high").astype(int))
    return float(model_acc), float(rule_acc)


@pytest.mark.parametrize("seed", [3, 11])
def test_mixture_recovers_the_true_regimes_out_of_sample(seed: int) -> None:
    model_acc, rule_acc = _recovery(seed)
    # Two regimes: chance is 0.5 balanced accuracy.
    assert model_acc > 0.8, f"mixture balanced accuracy out of sample {model_acc:.3f}"
    assert rule_acc > 0.65, f"rule 'high volatility' balanced accuracy {rule_acc:.3f}"
    print(f"seed {seed}: mixture {model_acc:.3f}, rules {rule_acc:.3f}")


THREE_REGIMES = (Regime("calm", 0.2, 0.10), Regime("normal", 0.0, 0.25), Regime("crash", -0.5, 0.6))
THREE_TRANSITION = ((0.99, 0.007, 0.003), (0.007, 0.99, 0.003), (0.01, 0.01, 0.98))


@pytest.mark.parametrize("seed", [1, 3])
def test_three_state_mixture_recovers_three_regimes(seed: int) -> None:
    series = gbm_regimes(4000, seed=seed, regimes=THREE_REGIMES, transition=THREE_TRANSITION)
    model = GaussianRegimeModel(RegimeModelConfig(n_states=3)).fit(series.frame.iloc[:2000])
    codes = _codes(model.filter(series.frame), model.states)
    # The generator's regimes rise in volatility like the model's states: no matching needed.
    acc = float(balanced_accuracy_score(series.regimes[2000:], codes[2000:]))
    assert acc > 0.55, f"three-state balanced accuracy out of sample {acc:.3f} (chance 0.333)"
    print(f"seed {seed}: three states {acc:.3f}")


def test_states_are_ordered_by_volatility_and_refits_are_identical() -> None:
    frame = gbm_regimes(N_BARS, seed=5).frame
    cfg = RegimeModelConfig(n_states=3)
    a = GaussianRegimeModel(cfg).fit(frame.iloc[:N_FIT])
    b = GaussianRegimeModel(cfg).fit(frame.iloc[:N_FIT])
    later = GaussianRegimeModel(cfg).fit(frame.iloc[N_FIT:])
    assert a.states == ("low_vol", "mid_vol", "high_vol")
    for m in (a, later):
        assert m.state_means()["volatility"].is_monotonic_increasing
    pd.testing.assert_frame_equal(a.filter(frame).proba, b.filter(frame).proba)
    assert a.transition is not None
    np.testing.assert_allclose(a.transition.sum(axis=1), 1.0)


@pytest.mark.parametrize("t", [1600, 2222, N_BARS - 2])
def test_regimes_at_t_ignore_bars_after_t(t: int) -> None:
    frame = gbm_regimes(N_BARS, seed=2, freq="1h").frame
    changed = _perturb_after(frame, t, seed=t)
    model = GaussianRegimeModel().fit(frame.iloc[:N_FIT])
    rules = RuleRegimeClassifier()

    def coarse_model(f: pd.DataFrame) -> RegimeResult:
        return GaussianRegimeModel(RegimeModelConfig(window=5)).fit(f.iloc[:40]).filter(f)

    for compute in (
        lambda f: model.filter(f).proba,
        lambda f: rules.classify(f).joint.proba,
        lambda f: _proba(on_timeframe(f, "4h", rules.classify)),
        lambda f: _proba(on_timeframe(f, "8h", coarse_model)),
    ):
        before, after = compute(frame), compute(changed)
        pd.testing.assert_frame_equal(before.iloc[: t + 1], after.iloc[: t + 1])
        assert not before.iloc[t + 1 :].equals(after.iloc[t + 1 :])


def _proba(result: RegimeResult | RuleRegimes) -> pd.DataFrame:
    return result.joint.proba if isinstance(result, RuleRegimes) else result.proba


def test_a_coarse_bar_counts_once_its_last_bar_has_closed() -> None:
    coarse_index = pd.date_range("2024-01-01", periods=3, freq="4h", tz="UTC")
    coarse = RegimeResult(
        pd.DataFrame({"a": [1.0, 0.0, 1.0], "b": [0.0, 1.0, 0.0]}, index=coarse_index)
    )
    hourly = pd.date_range("2024-01-01", periods=12, freq="1h", tz="UTC")
    aligned = align_to_bars(coarse, "4h", hourly)
    # Bars 00:00-02:00 precede the close of the first 4h bar; 03:00 closes it at 04:00.
    assert aligned.label.iloc[:3].isna().all()
    assert list(aligned.label.iloc[3:12]) == ["a"] * 4 + ["b"] * 4 + ["a"]


def test_transitions_match_the_labels() -> None:
    series = gbm_regimes(N_BARS, seed=3)
    filtered = GaussianRegimeModel().fit(series.frame.iloc[:N_FIT]).filter(series.frame)
    moves = filtered.transitions()
    label = filtered.label.dropna()
    assert len(moves) == int((label != label.shift()).sum()) - 1 > 5
    for row in moves.to_dict("records"):
        assert filtered.label.iloc[row["bar"]] == row["to"] != row["from"]
        assert row["confidence"] == pytest.approx(filtered.proba.iloc[row["bar"]].max())


def test_several_timeframes_answer_on_the_native_bars() -> None:
    frame = gbm_regimes(2000, seed=4, freq="1h").frame
    rules = RuleRegimeClassifier(RuleRegimeConfig(trend_window=10, vol_rank_window=40))
    results = on_timeframes(frame, [None, "4h", "12h"], rules.classify)
    assert list(results) == ["native", "4h", "12h"]
    warmups = []
    for result in results.values():
        assert isinstance(result, RuleRegimes)
        joint = result.joint
        assert joint.proba.index.equals(frame.index)
        warmups.append(int(joint.label.isna().sum()))
    # A coarser timeframe needs more native bars before its first state.
    assert warmups[0] < warmups[1] < warmups[2]
    # Its states change less often.
    moves = [len(r.joint.transitions()) for r in results.values() if isinstance(r, RuleRegimes)]
    assert moves[0] > moves[1] > moves[2] > 0
