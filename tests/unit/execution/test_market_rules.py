"""Market limits checked before an order is sent, and exchange client ids (pure)."""

from __future__ import annotations

import pytest

from raytrader.execution.market_rules import MarketLimits, exchange_client_id, limit_refusal
from raytrader.secrets import redact

MARKET = {
    "symbol": "BTC/USDT",
    "limits": {
        "amount": {"min": 0.001, "max": 9000.0},
        "price": {"min": 0.01, "max": 1_000_000.0},
        "cost": {"min": 10.0, "max": None},
    },
}
LIMITS = MarketLimits.from_ccxt(MARKET)


def test_limits_from_a_ccxt_market() -> None:
    assert MarketLimits("BTC/USDT", 0.001, 9000.0, 0.01, 1_000_000.0, 10.0, None) == LIMITS
    assert MarketLimits.from_ccxt({"symbol": "X/Y"}) == MarketLimits("X/Y")


@pytest.mark.parametrize(
    ("amount", "price", "reason"),
    [
        (0.5, 100.0, ""),
        (0.5, None, ""),  # no price: only the amount is checked
        (0.0, 100.0, "rounds to nothing"),
        (0.0005, 100.0, "below the market's minimum amount 0.001"),
        (9001.0, 1.0, "above the market's maximum amount 9000"),
        (0.05, 100.0, "order value 5 is below the market's minimum cost 10"),
        (1.0, 0.001, "below the market's minimum price 0.01"),
        (1.0, 2_000_000.0, "above the market's maximum price"),
    ],
)
def test_limit_refusal(amount: float, price: float | None, reason: str) -> None:
    got = limit_refusal(LIMITS, amount, price)
    assert (got == "") if not reason else (reason in got and got.startswith("BTC/USDT: "))


def test_client_ids_are_kept_or_digested_stably() -> None:
    assert exchange_client_id("sess-1:o_42") == "sess-1:o_42"
    long_id = "x" * 40
    digest = exchange_client_id(long_id)
    assert digest.startswith("rt-") and len(digest) == 36
    assert exchange_client_id(long_id) == digest  # a retry sends the same id
    assert exchange_client_id("has space") != exchange_client_id("has_space")
    assert exchange_client_id("x" * 39) != digest


def test_redact_masks_every_secret() -> None:
    text = "key abcd1234 and secret s3cr3t-value, again abcd1234"
    assert redact(text, ["abcd1234", "s3cr3t-value"]) == "key *** and secret ***, again ***"
    assert redact("short ab", ["ab"]) == "short ab"  # too short to mask safely
