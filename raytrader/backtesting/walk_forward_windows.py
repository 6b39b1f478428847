"""Walk-forward train/test windows over a series of bars (index arithmetic only).

Bars are numbered ``0 .. n_bars - 1``. Window ``i`` fits on ``train`` and is scored on ``test``;
``purge_bars`` bars between the two are used by neither, so a label or indicator that spans the
boundary cannot carry test information into training. The test windows are consecutive, do not
overlap, all have ``test_bars`` bars and end at the last bar.

- ``rolling``: every training window has the same length and slides forward by ``test_bars``.
- ``anchored``: every training window starts at bar 0 and grows by ``test_bars`` each window.

Lengths (``n`` bars, ``k`` windows, ``g`` purge bars):

- ``test_bars`` omitted: the bars left after a first training window of at least ``F`` bars
  and the purge gap are split evenly, ``test_bars = (n - g - F) // k``, where ``F`` is
  ``train_bars`` when given, else the larger of ``min_train_bars`` and ``(n - g) // (k + 1)``
  (so by default a training window starts about as long as a test window, as in scikit-learn's
  ``TimeSeriesSplit``). The remainder of the division goes to the first training window.
- ``train_bars`` omitted (always so in anchored mode): the first training window is every bar
  before the first test window's purge gap. Given (rolling only), bars before the first
  training window are left unused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class WalkForwardSpec(BaseModel):
    """How to cut a bar series into walk-forward windows (lengths in bars)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["rolling", "anchored"] = "rolling"
    n_windows: int = Field(5, ge=1, description="number of train/test windows")
    train_bars: int | None = Field(
        None, ge=1, description="rolling training length; default: all bars before the first test"
    )
    test_bars: int | None = Field(
        None, ge=1, description="bars per test window; default: the tail split evenly"
    )
    purge_bars: int = Field(0, ge=0, description="bars left out between train and test")
    min_train_bars: int = Field(1, ge=1, description="fewest bars a training window may have")

    @model_validator(mode="after")
    def _consistent(self) -> WalkForwardSpec:
        if self.train_bars is not None:
            if self.mode == "anchored":
                raise ValueError(
                    "train_bars: anchored windows train from bar 0 and grow, so their length is "
                    "not set; leave train_bars out (min_train_bars bounds the first window)"
                )
            if self.train_bars < self.min_train_bars:
                raise ValueError(
                    f"train_bars: {self.train_bars} is below min_train_bars={self.min_train_bars}"
                )
        return self


@dataclass(frozen=True)
class Window:
    """One walk-forward window: bar slices ``train`` and ``test`` into the full series."""

    index: int
    train: slice
    test: slice

    def __post_init__(self) -> None:
        for name, part in (("train", self.train), ("test", self.test)):
            if not (
                isinstance(part.start, int)
                and isinstance(part.stop, int)
                and part.step in (None, 1)
            ):
                raise ValueError(f"{name} must be a slice of int bounds with step 1, got {part}")
        if not 0 <= self.train_start <= self.train_end <= self.test_start < self.test_end:
            raise ValueError(
                f"window {self.index}: need 0 <= train_start <= train_end <= test_start < "
                f"test_end, got train {self.train_start}:{self.train_end}, "
                f"test {self.test_start}:{self.test_end}"
            )

    # slice is unhashable before Python 3.12; hash the bounds instead.
    def __hash__(self) -> int:
        return hash((self.index, self.train_start, self.train_end, self.test_start, self.test_end))

    @property
    def train_start(self) -> int:
        return int(self.train.start)

    @property
    def train_end(self) -> int:
        """First bar after the training window (exclusive end)."""
        return int(self.train.stop)

    @property
    def test_start(self) -> int:
        return int(self.test.start)

    @property
    def test_end(self) -> int:
        """First bar after the test window (exclusive end)."""
        return int(self.test.stop)

    @property
    def n_train(self) -> int:
        return self.train_end - self.train_start

    @property
    def n_test(self) -> int:
        return self.test_end - self.test_start


def _lengths(n_bars: int, spec: WalkForwardSpec) -> tuple[int, int]:
    """(test_bars, training length of the first window) for ``n_bars`` bars."""
    k, gap = spec.n_windows, spec.purge_bars
    if spec.test_bars is not None:
        test = spec.test_bars
    else:
        floor = (
            spec.train_bars
            if spec.train_bars is not None
            else max(spec.min_train_bars, (n_bars - gap) // (k + 1))
        )
        test = (n_bars - gap - floor) // k
        if test < 1:
            raise ValueError(
                f"{n_bars} bars are too few for {k} test windows after a {floor}-bar training "
                f"window and a {gap}-bar purge gap: need at least {floor + gap + k} bars"
            )
    before_first_test = n_bars - gap - k * test  # bars available to the first training window
    train = spec.train_bars if spec.train_bars is not None else before_first_test
    need = max(train, spec.min_train_bars) + gap + k * test
    if n_bars < need:
        raise ValueError(
            f"{n_bars} bars are too few: {k} test windows of {test} bars, a {gap}-bar purge gap "
            f"and a training window of at least {max(train, spec.min_train_bars)} bars "
            f"need {need} bars"
        )
    return test, train


def windows(n_bars: int, spec: WalkForwardSpec) -> list[Window]:
    """The ``spec.n_windows`` walk-forward windows over ``n_bars`` bars, oldest first.

    Raises ``ValueError`` naming the numbers when the data is too short for the spec.
    """
    if n_bars < 1:
        raise ValueError(f"n_bars must be at least 1, got {n_bars}")
    test, train = _lengths(n_bars, spec)
    first_test = n_bars - spec.n_windows * test
    out: list[Window] = []
    for i in range(spec.n_windows):
        test_start = first_test + i * test
        train_end = test_start - spec.purge_bars
        train_start = train_end - train if spec.mode == "rolling" else 0
        out.append(Window(i, slice(train_start, train_end), slice(test_start, test_start + test)))
    return out
