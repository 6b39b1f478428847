"""What the live broker does about an exchange error: retry, reject the order, or pause.

ccxt's exception classes decide (Binance's codes are mapped to them by ccxt):

* ``RETRY``: transient (``NetworkError``: timeouts, 429 rate limits, 5xx, dropped connections;
  and answers ccxt could not parse). A create that failed this way may have reached the
  exchange, so the broker looks the order up by its client id before sending it again.
* ``REJECT``: final for this order (``InsufficientFunds``, ``InvalidOrder``, ``BadSymbol``, other
  ``ExchangeError``): the order is rejected with the exchange's reason.
* ``PAUSE``: final for the account (``AuthenticationError``, ``PermissionDenied``,
  ``AccountSuspended``): the broker stops sending orders until it is resumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import aiohttp
import ccxt

from raytrader.secrets import redact


class Action(StrEnum):
    RETRY = "retry"
    REJECT = "reject"
    PAUSE = "pause"


class BrokerPaused(RuntimeError):
    """The broker stopped sending orders (an account-level error); the reason says why."""


def classify(exc: BaseException) -> Action:
    """The action for an error raised by a ccxt call."""
    if isinstance(exc, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        return Action.PAUSE
    if isinstance(exc, ccxt.OperationFailed | ccxt.BadResponse | ccxt.NullResponse):
        return Action.RETRY
    if type(exc) is ccxt.ExchangeError and isinstance(exc.__cause__, aiohttp.ClientError):
        return Action.RETRY  # a transport failure ccxt did not class as a network error
    if isinstance(exc, ccxt.BaseError):
        return Action.REJECT
    # Not a ccxt error: ccxt failed to parse an answer (e.g. malformed JSON); the outcome of
    # the request is unknown, so it is looked up and retried like a network error.
    return Action.RETRY


def is_duplicate(exc: BaseException) -> bool:
    """Binance's answer to a create whose client id is already in use (the first try got
    through): the order exists and must be looked up, not rejected."""
    return isinstance(exc, ccxt.InvalidOrder) and "Duplicate order sent" in str(exc)


def reason(exc: BaseException, secrets: Sequence[str], limit: int = 300) -> str:
    """A short reason fit for logs, journals and API answers: the error's class and message
    with every credential removed (an exchange may echo the key back)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return redact(text, secrets)[:limit]
