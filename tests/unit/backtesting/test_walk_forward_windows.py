"""Walk-forward windows: hand-computed layouts, invariants over many specs, and errors."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from raytrader.backtesting.walk_forward_windows import WalkForwardSpec, Window, windows


def bounds(ws: list[Window]) -> list[tuple[int, int, int, int]]:
    return [(w.train_start, w.train_end, w.test_start, w.test_end) for w in ws]


def test_default_rolling_splits_into_n_windows_plus_one_chunks() -> None:
    # 120 bars, 5 windows: test = 120 // 6 = 20, the first 20 bars train the first window.
    ws = windows(120, WalkForwardSpec())
    assert bounds(ws) == [
        (0, 20, 20, 40),
        (20, 40, 40, 60),
        (40, 60, 60, 80),
        (60, 80, 80, 100),
        (80, 100, 100, 120),
    ]
    assert [w.index for w in ws] == [0, 1, 2, 3, 4]


def test_default_anchored_grows_from_bar_zero() -> None:
    ws = windows(120, WalkForwardSpec(mode="anchored"))
    assert bounds(ws) == [
        (0, 20, 20, 40),
        (0, 40, 40, 60),
        (0, 60, 60, 80),
        (0, 80, 80, 100),
        (0, 100, 100, 120),
    ]


def test_remainder_goes_to_the_first_training_window() -> None:
    # 103 bars: floor 103 // 6 = 17, test (103 - 17) // 5 = 17, first train 103 - 85 = 18.
    ws = windows(103, WalkForwardSpec())
    assert [w.n_test for w in ws] == [17] * 5
    assert [w.n_train for w in ws] == [18] * 5
    assert ws[0].train == slice(0, 18)
    assert ws[-1].test == slice(86, 103)


def test_purge_gap_separates_train_and_test() -> None:
    spec = WalkForwardSpec(n_windows=3, test_bars=10, purge_bars=2)
    # 100 - 2 - 30 = 68 bars train the first window; its test starts 2 bars later, at 70.
    assert bounds(windows(100, spec)) == [(0, 68, 70, 80), (10, 78, 80, 90), (20, 88, 90, 100)]
    anchored = spec.model_copy(update={"mode": "anchored"})
    assert bounds(windows(100, anchored)) == [(0, 68, 70, 80), (0, 78, 80, 90), (0, 88, 90, 100)]


def test_explicit_train_bars_leave_the_oldest_bars_unused() -> None:
    spec = WalkForwardSpec(n_windows=3, train_bars=30, test_bars=10)
    assert bounds(windows(100, spec)) == [(40, 70, 70, 80), (50, 80, 80, 90), (60, 90, 90, 100)]


def test_train_bars_without_test_bars_split_the_rest_evenly() -> None:
    # (100 - 1 - 40) // 4 = 14 test bars; the 3 left over lengthen nothing in rolling mode.
    spec = WalkForwardSpec(n_windows=4, train_bars=40, purge_bars=1)
    ws = windows(100, spec)
    assert [w.n_test for w in ws] == [14] * 4
    assert [w.n_train for w in ws] == [40] * 4
    assert ws[0].train == slice(3, 43)
    assert ws[0].test_start == 44


def test_min_train_bars_raises_the_default_floor() -> None:
    # Without a floor, 100 // 5 = 20 bars would train the first window; the floor makes it 40.
    spec = WalkForwardSpec(n_windows=4, min_train_bars=40)
    ws = windows(100, spec)
    assert [w.n_test for w in ws] == [15] * 4
    assert ws[0].train == slice(0, 40)


def test_window_slices_index_a_series() -> None:
    bars = list(range(50))
    w = windows(50, WalkForwardSpec(n_windows=2, test_bars=10, purge_bars=3))[1]
    assert bars[w.train] == list(range(10, 37))
    assert bars[w.test] == list(range(40, 50))


@pytest.mark.parametrize(
    ("n_bars", "spec", "numbers"),
    [
        (10, WalkForwardSpec(n_windows=3, test_bars=5), ["10 bars", "3 test windows of 5", "16"]),
        (5, WalkForwardSpec(), ["5 bars", "5 test windows", "at least 6"]),
        (
            100,
            WalkForwardSpec(n_windows=4, test_bars=20, min_train_bars=30),
            ["100 bars", "at least 30", "need 110"],
        ),
        (
            50,
            WalkForwardSpec(n_windows=2, train_bars=30, test_bars=10, purge_bars=5),
            ["50 bars", "at least 30", "need 55"],
        ),
    ],
)
def test_too_short_data_names_the_numbers(
    n_bars: int, spec: WalkForwardSpec, numbers: list[str]
) -> None:
    with pytest.raises(ValueError, match="too few") as info:
        windows(n_bars, spec)
    for number in numbers:
        assert number in str(info.value)


def test_exactly_enough_bars_fit() -> None:
    spec = WalkForwardSpec(n_windows=2, train_bars=30, test_bars=10, purge_bars=5)
    assert bounds(windows(55, spec)) == [(0, 30, 35, 45), (10, 40, 45, 55)]
    with pytest.raises(ValueError, match="need 55"):
        windows(54, spec)


def test_n_bars_must_be_positive() -> None:
    with pytest.raises(ValueError, match="n_bars"):
        windows(0, WalkForwardSpec())


@pytest.mark.parametrize(
    ("kwargs", "field", "problem"),
    [
        ({"mode": "anchored", "train_bars": 50}, "train_bars", "anchored"),
        ({"train_bars": 10, "min_train_bars": 20}, "train_bars", "below min_train_bars=20"),
        ({"n_windows": 0}, "n_windows", "greater than or equal to 1"),
        ({"test_bars": 0}, "test_bars", "greater than or equal to 1"),
        ({"purge_bars": -1}, "purge_bars", "greater than or equal to 0"),
        ({"min_train_bars": 0}, "min_train_bars", "greater than or equal to 1"),
        ({"mode": "expanding"}, "mode", "'rolling' or 'anchored'"),
        ({"train_fraction": 0.7}, "train_fraction", "Extra inputs are not permitted"),
    ],
)
def test_spec_validation_names_the_field_and_the_problem(
    kwargs: dict[str, object], field: str, problem: str
) -> None:
    with pytest.raises(ValidationError) as info:
        WalkForwardSpec.model_validate(kwargs)
    text = str(info.value)
    assert field in text
    assert problem in text


def test_spec_is_frozen() -> None:
    spec = WalkForwardSpec()
    with pytest.raises(ValidationError):
        spec.n_windows = 3  # type: ignore[misc]


def test_window_checks_its_bounds_and_hashes_by_value() -> None:
    a = Window(0, slice(0, 10), slice(12, 20))
    b = Window(0, slice(0, 10), slice(12, 20))
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b, Window(1, slice(0, 10), slice(12, 20))}) == 2
    with pytest.raises(ValueError, match="train_end <= test_start"):
        Window(0, slice(0, 10), slice(5, 20))
    with pytest.raises(ValueError, match="step 1"):
        Window(0, slice(0, 10, 2), slice(10, 20))
    with pytest.raises(ValueError, match="int bounds"):
        Window(0, slice(None, 10), slice(10, 20))


@given(
    n_bars=st.integers(1, 400),
    mode=st.sampled_from(["rolling", "anchored"]),
    n_windows=st.integers(1, 8),
    train_bars=st.one_of(st.none(), st.integers(1, 120)),
    test_bars=st.one_of(st.none(), st.integers(1, 60)),
    purge_bars=st.integers(0, 10),
    min_train_bars=st.integers(1, 40),
)
def test_windows_invariants(
    n_bars: int,
    mode: str,
    n_windows: int,
    train_bars: int | None,
    test_bars: int | None,
    purge_bars: int,
    min_train_bars: int,
) -> None:
    try:
        spec = WalkForwardSpec.model_validate(
            {
                "mode": mode,
                "n_windows": n_windows,
                "train_bars": train_bars if mode == "rolling" else None,
                "test_bars": test_bars,
                "purge_bars": purge_bars,
                "min_train_bars": min_train_bars,
            }
        )
    except ValidationError:
        assert train_bars is not None and train_bars < min_train_bars
        return
    try:
        ws = windows(n_bars, spec)
    except ValueError as exc:
        assert str(n_bars) in str(exc)
        return
    assert len(ws) == n_windows
    assert ws[-1].test_end == n_bars
    n_test = ws[0].n_test
    if test_bars is not None:
        assert n_test == test_bars
    for prev, w in itertools.pairwise(ws):
        assert w.test_start == prev.test_end  # consecutive, non-overlapping
    for w in ws:
        assert w.n_test == n_test
        assert w.test_start == w.train_end + purge_bars
        assert w.train_start >= 0
        assert w.n_train >= min_train_bars
        if mode == "anchored":
            assert w.train_start == 0
        else:
            assert w.n_train == ws[0].n_train
            if train_bars is not None:
                assert w.n_train == train_bars
    if mode == "anchored" or train_bars is None:
        assert ws[0].train_start == 0  # no bar goes unused
