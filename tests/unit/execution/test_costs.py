"""Commission and slippage models."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from raytrader.domain import Side
from raytrader.execution import CommissionModel, SlippageModel


def test_commission_is_bps_of_notional_with_a_minimum() -> None:
    model = CommissionModel(bps=10.0, minimum=5.0)
    assert model.commission(10_000.0) == pytest.approx(10.0)  # 10 bps of 10k
    assert model.commission(1_000.0) == 5.0  # 1.0 from bps, raised to the minimum
    assert model.commission(0.0) == 0.0


def test_default_commission_is_free() -> None:
    assert CommissionModel().commission(1_000_000.0) == 0.0


def test_max_quantity_respects_both_the_rate_and_the_minimum() -> None:
    model = CommissionModel(bps=10.0, minimum=2.0)
    # min((1000 - 2) / 100, 1000 / (100 * 1.001)) = min(9.98, 9.99000999) = 9.98
    q = model.max_quantity(100.0, 1_000.0)
    assert q == pytest.approx(9.98)
    assert q * 100.0 + model.commission(q * 100.0) <= 1_000.0
    # A big budget: the bps term dominates, 1e6 / (100 * 1.001)
    big = model.max_quantity(100.0, 1_000_000.0)
    assert big == pytest.approx(1e6 / 100.1)
    assert big * 100.0 + model.commission(big * 100.0) <= 1_000_000.0
    assert model.max_quantity(100.0, 1.5) == 0.0  # cannot even pay the minimum
    assert model.max_quantity(100.0, -5.0) == 0.0


def test_slippage_is_adverse() -> None:
    model = SlippageModel(bps=25.0)
    assert model.adjust(100.0, Side.BUY) == pytest.approx(100.25)
    assert model.adjust(100.0, Side.SELL) == pytest.approx(99.75)
    assert SlippageModel().adjust(100.0, Side.BUY) == 100.0


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (CommissionModel, {"bps": -1.0}),
        (CommissionModel, {"minimum": -0.5}),
        (CommissionModel, {"bps": float("nan")}),
        (CommissionModel, {"fee": 1.0}),
        (SlippageModel, {"bps": -1.0}),
        (SlippageModel, {"bps": 10_000.0}),
    ],
)
def test_invalid_models_are_refused(
    cls: type[CommissionModel | SlippageModel], kwargs: dict[str, float]
) -> None:
    with pytest.raises(ValidationError):
        cls(**kwargs)


def test_models_are_frozen() -> None:
    model = CommissionModel(bps=1.0)
    with pytest.raises(ValidationError):
        model.bps = 2.0
