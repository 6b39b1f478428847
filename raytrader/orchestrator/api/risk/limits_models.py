"""Request and response models of POST /api/risk/check-limits."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    Field,
    ValidationInfo,
    field_validator,
)

from raytrader.domain import Side
from raytrader.orchestrator.api.common import (
    ClientOrderId,
    LimitsIn,
    Money,
    Price,
    SessionId,
    SignedQuantity,
    Strict,
    Symbol,
    examples,
)
from raytrader.orchestrator.api.execution import OrderFields
from raytrader.risk.limits import RiskLimits


class ProposedOrder(OrderFields):
    client_order_id: ClientOrderId | None = None


class AccountIn(Strict):
    cash: Money
    positions: dict[Symbol, SignedQuantity] = Field(default_factory=dict, max_length=1000)


class CheckLimitsRequest(Strict):
    model_config = examples(
        {
            "account": {"cash": 10000, "positions": {"A": 10}},
            "prices": {"A": 100, "B": 50},
            "limits": {"max_position_weight": 0.5},
            "orders": [
                {"symbol": "A", "side": "buy", "quantity": 40},
                {"symbol": "B", "side": "buy", "quantity": 200},
            ],
        },
        {
            "session_id": "s-0123456789ab",
            "orders": [{"symbol": "SYN", "side": "buy", "quantity": 10}],
        },
    )

    session_id: SessionId | None = Field(None, description="use this session's account, limits")
    account: AccountIn | None = Field(
        None, validate_default=True, description="required without session_id"
    )
    orders: list[ProposedOrder] = Field(min_length=1, max_length=500)
    prices: dict[Symbol, Price] = Field(
        default_factory=dict, max_length=1000, description="a session's last closes by default"
    )
    limits: LimitsIn | None = Field(None, description="the session's or the default limits")

    @field_validator("account")
    @classmethod
    def _account_or_session(cls, v: AccountIn | None, info: ValidationInfo) -> AccountIn | None:
        if v is None and "session_id" in info.data and info.data["session_id"] is None:
            raise ValueError("give an account, or a session_id to use its account")
        return v


class CheckedOrder(BaseModel):
    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    passed: bool
    reason: str | None


class LimitsCheck(BaseModel):
    limits: RiskLimits
    equity: float
    gross_exposure: float
    passed: int
    refused: int
    orders: list[CheckedOrder]
