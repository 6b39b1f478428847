"""Live broker over ccxt's unified API: orders, balances and spot positions on a real exchange.

The rules it keeps:

* Every order is journaled (``StateStore`` journal, status NEW) before it is sent, and every
  change the exchange reports after that is journaled too. A fill is journaled under a key made
  of the exchange's order id and the cumulative filled quantity, and the store skips a fill key
  it already has, so a fill is booked once however often it is seen (retries, restarts).
* Client order ids are idempotent: the exchange gets a client id derived from ours
  (``newClientOrderId`` on Binance). A create that failed without a clear answer (timeout,
  5xx, 429, malformed body) is looked up by that client id before it is sent again, so a retry
  never makes a second order; an exchange answering "duplicate" is looked up too.
* The market's precision and limits are applied before sending: amount and price rounded with
  ``amount_to_precision`` / ``price_to_precision``, then the minimum and maximum amount, price
  and cost checked (``market_rules``); a refusal rejects the order with the reason, unsent.
* Errors (``exchange_errors``): transient ones are retried with exponential backoff; final ones
  reject the order with the exchange's reason; account-level ones (bad key, no permission)
  pause the broker. Retries running out pause it too, leaving the order NEW in the journal:
  ``reconcile`` settles it from the exchange's answer later. Reasons never hold credentials.
* ``start`` reconciles the journal with the exchange: each order the journal has open is
  fetched by client id (fills made while the orchestrator was down are booked, once), open
  orders the journal does not know are reported, balances are compared with the last snapshot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import ccxt
import ccxt.async_support as ccxt_async
import structlog
from pydantic import BaseModel, ConfigDict, Field

from raytrader.domain import Fill, Order, OrderState, OrderStatus, OrderType, Side, TimeInForce
from raytrader.domain.codec import state_from_dict, state_to_dict, to_dict
from raytrader.execution.exchange_errors import Action, BrokerPaused, classify, is_duplicate, reason
from raytrader.execution.market_rules import MarketLimits, exchange_client_id, limit_refusal
from raytrader.execution.routing import Level
from raytrader.secrets import ExchangeCredentials, redact
from raytrader.state.stores.base import JournalEntry, StateStore

__all__ = [
    "BrokerError",
    "BrokerPaused",
    "CcxtBroker",
    "CcxtBrokerConfig",
    "Reconciliation",
    "make_trading_exchange",
    "public_books",
]

log = structlog.get_logger("raytrader.execution.ccxt_broker")

T = TypeVar("T")

_STATUS = {
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
_QTY_EPS = 1e-9


class BrokerError(RuntimeError):
    """A broker call failed for good; the message is the redacted reason."""


class CcxtBrokerConfig(BaseModel):
    """Retry policy of the live broker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_retries: int = Field(5, ge=0, le=100, description="retries of a transient error")
    retry_base: float = Field(0.5, gt=0, description="first backoff, seconds")
    retry_max: float = Field(30.0, gt=0, description="longest backoff, seconds")


@dataclass
class Reconciliation:
    """What ``reconcile`` found: orders it updated, fills it booked, exchange orders the
    journal does not know (exchange client ids), balance changes since the last snapshot."""

    updated: list[OrderState] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    balance_changes: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class _Live:
    state: OrderState
    xcid: str  # the client id the exchange knows
    exchange_id: str = ""
    fee: float = 0.0  # commission booked so far


def make_trading_exchange(
    exchange_id: str,
    credentials: ExchangeCredentials | None,
    *,
    sandbox: bool = False,
    api_urls: Mapping[str, str] | None = None,
    timeout_ms: int = 10_000,
    options: Mapping[str, Any] | None = None,
    rate_limit: bool = True,
) -> ccxt_async.Exchange:
    """A ``ccxt.async_support`` exchange for trading, with the rate limiter on.

    ``sandbox`` switches to the exchange's test URLs (``set_sandbox_mode``) before
    ``api_urls`` is applied; ``api_urls`` maps an origin (``https://testnet.binance.vision``)
    to another base (a gateway; a local server in tests). An origin that matches none of the
    exchange's URLs is an error, so a test pointing the sandbox origin somewhere proves the
    sandbox URLs are the ones used. ``rate_limit=False`` turns ccxt's rate limiter off (only
    for local servers: it spaces requests by the exchange's weights, a second for the markets).
    """
    if exchange_id not in ccxt_async.exchanges:
        raise ValueError(f"unknown ccxt exchange {exchange_id!r}")
    config: dict[str, Any] = {
        "enableRateLimit": rate_limit,
        "timeout": timeout_ms,
        # Spot only; no currency list (a private endpoint); open orders of every symbol.
        "options": {
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "warnOnFetchOpenOrdersWithoutSymbol": False,
            **(options or {}),
        },
    }
    if credentials is not None:
        config.update(credentials.ccxt_config())
    exchange = getattr(ccxt_async, exchange_id)(config)
    _strict_json(exchange)
    if credentials is not None:
        _LOG_REDACTOR.secrets.update(credentials.values())
    if sandbox:
        exchange.set_sandbox_mode(True)
    if api_urls:
        _point_at(exchange, api_urls)
    return exchange


class _Redactor(logging.Filter):
    """Masks credentials in ccxt's log records: at debug level ccxt logs every request with
    its headers (the API key) and every answer (which may echo it)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            clean = redact(text, sorted(self.secrets))
            if clean != text:
                record.msg, record.args = clean, None
        return True


_LOG_REDACTOR = _Redactor()
# ccxt logs through this logger (its base class); quiet below INFO unless asked otherwise.
_CCXT_LOG = logging.getLogger("ccxt.base.exchange")
_CCXT_LOG.addFilter(_LOG_REDACTOR)
if _CCXT_LOG.level == logging.NOTSET:
    _CCXT_LOG.setLevel(logging.INFO)


def _strict_json(exchange: Any) -> None:
    """Make a malformed JSON answer an error: ccxt parses it to None and carries on with an
    empty book, an empty balance or an order without id, which would read as real data."""
    original = exchange.on_rest_response

    def on_rest_response(code: Any, why: Any, url: str, method: str, *rest: Any) -> Any:
        body = original(code, why, url, method, *rest)
        if 200 <= int(code) < 300 and isinstance(body, str) and body[:1] in ("{", "["):
            try:
                json.loads(body)
            except ValueError:
                where = url.split("?", 1)[0]
                raise ccxt.BadResponse(
                    f"malformed JSON in the answer to {method} {where}"
                ) from None
        return body

    exchange.on_rest_response = on_rest_response


def _point_at(exchange: Any, api_urls: Mapping[str, str]) -> None:
    used: set[str] = set()

    def rewrite(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: rewrite(v) for k, v in value.items()}
        if isinstance(value, str):
            for origin, base in api_urls.items():
                if value.startswith(origin.rstrip("/") + "/"):
                    used.add(origin)
                    return base.rstrip("/") + value[len(origin.rstrip("/")) :]
        return value

    exchange.urls["api"] = rewrite(exchange.urls["api"])
    unused = sorted(set(api_urls) - used)
    if unused:
        raise ValueError(f"api_urls origins match none of {exchange.id}'s API URLs: {unused}")


def _now() -> datetime:
    return datetime.now(UTC)


class CcxtBroker:
    """Orders on one exchange account through a ccxt exchange, journaled in ``store`` under
    the journal id ``account`` (one per exchange account and session)."""

    def __init__(
        self,
        exchange: ccxt_async.Exchange,
        store: StateStore,
        account: str,
        *,
        secrets: Sequence[str] = (),
        config: CcxtBrokerConfig | None = None,
        clock: Callable[[], datetime] = _now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        taker_fee: float | None = None,
    ) -> None:
        self.exchange = exchange
        self.store = store
        self.account = account
        self.config = config if config is not None else CcxtBrokerConfig()
        self.clock = clock
        self.sleep = sleep
        self.paused = ""  # the reason the broker stopped sending orders, "" while it runs
        self.fee = taker_fee  # the account's taker fee; None: the market's, as ccxt has it
        self._secrets = [s for s in secrets if s]
        self._orders: dict[str, _Live] = {}
        self._fills: list[Fill] = []  # fills booked since the last drain_fills
        self._rng = random.Random()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> Reconciliation:
        """Load the markets and the journal, then ``reconcile`` with the exchange."""
        await self._call("load markets", self.exchange.load_markets)
        for entry in await self.store.read_journal(self.account, "order"):
            state = state_from_dict(entry.payload)
            self._orders[entry.key] = _Live(
                state,
                str(entry.payload.get("exchange_client_id") or exchange_client_id(entry.key)),
                str(entry.payload.get("exchange_id") or ""),
                float(entry.payload.get("fee") or 0.0),
            )
        return await self.reconcile()

    async def close(self) -> None:
        await self.exchange.close()

    def resume(self) -> None:
        """Send orders again after a pause (once its cause is fixed)."""
        self.paused = ""

    # -- reads -------------------------------------------------------------------------------

    def order(self, client_order_id: str) -> OrderState:
        """The journal's latest state of an order; ``KeyError`` if unknown."""
        return self._orders[client_order_id].state

    def orders(self) -> list[OrderState]:
        return [o.state for o in self._orders.values()]

    def open_orders(self, symbol: str | None = None) -> list[OrderState]:
        return [
            o.state
            for o in self._orders.values()
            if o.state.is_open and symbol in (None, o.state.order.symbol)
        ]

    def drain_fills(self) -> list[Fill]:
        """Fills booked since the last call (each fill once, across restarts)."""
        out, self._fills = self._fills, []
        return out

    async def balances(self) -> dict[str, tuple[float, float]]:
        """(free, total) of every asset with a non-zero total."""
        raw = await self._call("fetch balance", self.exchange.fetch_balance)
        free, total = raw.get("free") or {}, raw.get("total") or {}
        return {
            str(a): (float(free.get(a) or 0.0), float(t))
            for a, t in total.items()
            if t is not None and float(t) != 0.0
        }

    async def positions(self, symbols: Sequence[str]) -> dict[str, float]:
        """Spot positions: the total balance of each symbol's base asset."""
        bal = await self.balances()
        out = {}
        for symbol in symbols:
            base = self.exchange.market(symbol)["base"]
            out[symbol] = bal.get(base, (0.0, 0.0))[1]
        return out

    async def fetch_open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """The exchange's open orders (ccxt unified dicts)."""
        result: list[dict[str, Any]] = await self._call(
            "fetch open orders", self.exchange.fetch_open_orders, symbol
        )
        return result

    async def order_book(
        self, symbol: str, depth: int = 20
    ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """(bids, asks) of ``symbol``, best first, as (price, size)."""
        book = await self._call("fetch order book", self.exchange.fetch_order_book, symbol, depth)
        return (
            [(float(p), float(s)) for p, s, *_ in book["bids"]],
            [(float(p), float(s)) for p, s, *_ in book["asks"]],
        )

    def taker_fee(self, symbol: str) -> float:
        """The fee rate a taker order pays (routing compares prices after it)."""
        if self.fee is not None:
            return self.fee
        fee = self.exchange.market(symbol).get("taker")
        return float(fee) if fee is not None else 0.0

    # -- commands ----------------------------------------------------------------------------

    async def submit(self, order: Order, reference_price: float | None = None) -> OrderState:
        """Journal ``order``, check it against the market, send it; return its state.

        ``reference_price`` prices a market order for the minimum-cost check (else the top of
        the book is fetched). A duplicate client id is rejected without touching the original.
        Raises ``BrokerPaused`` when paused (nothing is journaled or sent).
        """
        cid = order.client_order_id
        if self.paused:
            raise BrokerPaused(f"broker paused: {self.paused}")
        if cid in self._orders:
            return OrderState(order).to(
                OrderStatus.REJECTED, order.ts, f"duplicate client order id {cid!r}"
            )
        order, refusal = await self._fit_to_market(order, reference_price)
        live = _Live(OrderState(order, updated=order.ts), exchange_client_id(cid))
        self._orders[cid] = live
        if refusal:
            await self._book(live, live.state.to(OrderStatus.REJECTED, self.clock(), refusal))
            log.info("order refused before sending", order=cid, reason=refusal)
            return live.state
        await self._book(live, live.state)  # journaled before it is sent
        return await self._send(live)

    async def cancel(self, client_order_id: str, reason_: str = "") -> OrderState:
        """Cancel an open order at the exchange (its fills so far are booked first)."""
        live = self._orders[client_order_id]
        if not live.state.is_open:
            return live.state
        symbol = live.state.order.symbol
        params = {"origClientOrderId": live.xcid}
        try:
            raw = await self._call(
                "cancel order",
                _readable_call(self.exchange.cancel_order),
                live.exchange_id or None,
                symbol,
                params,
            )
        except ccxt.OrderNotFound:
            return await self.refresh(client_order_id)  # it ended meanwhile (e.g. filled)
        await self._apply(live, raw, reason_ or "cancelled")
        if live.state.is_open:  # ccxt gave no status: ask again
            return await self.refresh(client_order_id)
        return live.state

    async def refresh(self, client_order_id: str) -> OrderState:
        """Fetch the order from the exchange and book what changed."""
        live = self._orders[client_order_id]
        raw = await self._lookup(live)
        if raw is None:
            if live.state.status is OrderStatus.NEW:
                why = "not received by the exchange"
                await self._book(live, live.state.to(OrderStatus.REJECTED, self.clock(), why))
            return live.state
        await self._apply(live, raw)
        return live.state

    async def reconcile(self) -> Reconciliation:
        """Settle every order the journal has open with the exchange; list the exchange's open
        orders the journal does not know; compare balances with the last snapshot."""
        out = Reconciliation()
        before = len(self._fills)
        for cid, live in list(self._orders.items()):
            if live.state.is_open:
                old = live.state
                new = await self.refresh(cid)
                if new != old:
                    out.updated.append(new)
        out.fills = self._fills[before:]
        known = {o.xcid for o in self._orders.values()}
        for raw in await self.fetch_open_orders():
            xcid = str(raw.get("clientOrderId") or raw.get("id"))
            if xcid not in known:
                out.unknown.append(xcid)
        if out.unknown:
            log.warning("exchange has open orders the journal does not know", ids=out.unknown)
        balances = {a: t for a, (_f, t) in (await self.balances()).items()}
        last = await self.store.load_snapshot(self.account, "balances") or {}
        for asset in sorted(set(balances) | set(last)):
            a, b = float(last.get(asset, 0.0)), balances.get(asset, 0.0)
            if not math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12):
                out.balance_changes[asset] = (a, b)
        await self.store.save_snapshot(self.account, "balances", balances)
        return out

    # -- internals ---------------------------------------------------------------------------

    async def _fit_to_market(
        self, order: Order, reference_price: float | None
    ) -> tuple[Order, str]:
        """The order rounded to the market's precision, and why it breaks its limits ("")."""
        ex = self.exchange
        if order.type not in (OrderType.MARKET, OrderType.LIMIT):
            return order, f"order type {order.type} is not supported by the live broker"
        if order.time_in_force is TimeInForce.DAY:
            return order, "time in force 'day' is not supported by the live broker"
        try:
            market = ex.market(order.symbol)
        except ccxt.BadSymbol:
            return order, f"{order.symbol}: no such market on {ex.id}"
        try:
            amount = float(ex.amount_to_precision(order.symbol, order.quantity))
            price = None
            if order.limit_price is not None:
                price = float(ex.price_to_precision(order.symbol, order.limit_price))
        except ccxt.InvalidOrder:
            return order, f"{order.symbol}: amount {order.quantity} rounds to nothing"
        if amount <= 0 or (price is not None and price <= 0):
            return order, f"{order.symbol}: amount {order.quantity} rounds to nothing"
        order = replace(order, quantity=amount, limit_price=price)
        check_price = price if price is not None else reference_price
        if check_price is None:
            bids, asks = await self.order_book(order.symbol, 5)
            side = asks if order.side is Side.BUY else bids
            check_price = side[0][0] if side else None
        return order, limit_refusal(MarketLimits.from_ccxt(market), amount, check_price)

    async def _send(self, live: _Live) -> OrderState:
        order = live.state.order
        params: dict[str, Any] = {"newClientOrderId": live.xcid}
        if order.type is OrderType.LIMIT:
            params["timeInForce"] = order.time_in_force.value.upper()
        attempt = 0
        while True:
            try:
                raw = _readable(
                    await self.exchange.create_order(
                        order.symbol,
                        order.type.value,
                        order.side.value,
                        order.quantity,
                        order.limit_price,
                        params,
                    )
                )
                await self._apply(live, raw)
                return live.state
            except Exception as exc:
                # A duplicate means the first try got through: look it up.
                action = Action.RETRY if is_duplicate(exc) else classify(exc)
                why = reason(exc, self._secrets)
                if action is not Action.RETRY:
                    await self._book(live, live.state.to(OrderStatus.REJECTED, self.clock(), why))
                    if action is Action.PAUSE:
                        self._pause(why)
                    log.warning("order rejected", order=order.client_order_id, reason=why)
                    return live.state
                log.warning("order send failed, retrying", order=order.client_order_id, error=why)
            # The outcome is unknown: look the order up by client id before sending again.
            while True:
                if attempt >= self.config.max_retries:
                    self._pause(f"exchange did not answer after {attempt} retries")
                    return live.state  # NEW in the journal: reconcile settles it
                await self.sleep(self._backoff(attempt))
                attempt += 1
                try:
                    raw = _readable(
                        await self.exchange.fetch_order(
                            None, order.symbol, {"origClientOrderId": live.xcid}
                        )
                    )
                except ccxt.OrderNotFound:
                    break  # not there: send it again, with the same client id
                except Exception as exc:
                    if classify(exc) is not Action.RETRY:
                        why = reason(exc, self._secrets)
                        if classify(exc) is Action.PAUSE:
                            self._pause(why)
                        return live.state
                    continue
                await self._apply(live, raw)
                return live.state

    async def _lookup(self, live: _Live) -> dict[str, Any] | None:
        """The exchange's view of an order by its client id; None if it has none."""
        try:
            raw = await self._call(
                "fetch order",
                _readable_call(self.exchange.fetch_order),
                None,
                live.state.order.symbol,
                {"origClientOrderId": live.xcid},
            )
        except ccxt.OrderNotFound:
            return None
        return raw

    async def _apply(self, live: _Live, raw: Mapping[str, Any], why: str = "") -> None:
        """Book the exchange's view of an order: acceptance, new fills, its end."""
        # Changes are stamped when we learn of them; a fill when the exchange says it traded
        # (its last trade, else the order's time), since a restart may learn of it much later.
        ts = self.clock()
        stamp = raw.get("lastTradeTimestamp") or raw.get("timestamp")
        traded = datetime.fromtimestamp(stamp / 1000, UTC) if isinstance(stamp, int | float) else ts
        state = live.state
        if raw.get("id") is not None:
            live.exchange_id = str(raw["id"])
        if state.status is OrderStatus.NEW:
            state = state.to(OrderStatus.ACCEPTED, ts, f"exchange order {live.exchange_id}")
        fills: list[Fill] = []
        filled = float(raw.get("filled") or 0.0)
        delta = filled - state.filled_quantity
        if delta > _QTY_EPS * state.order.quantity and state.is_open:
            avg = raw.get("average")
            total_cost = float(raw.get("cost") or 0.0)
            avg_now = float(avg) if avg else (total_cost / filled if filled else 0.0)
            price = (avg_now * filled - state.avg_fill_price * state.filled_quantity) / delta
            if not price > 0:
                price = avg_now
            fee_now = _fee(raw)
            fill = Fill(
                client_order_id=state.order.client_order_id,
                symbol=state.order.symbol,
                side=state.order.side,
                quantity=delta,
                price=price,
                commission=max(0.0, fee_now - live.fee),
                ts=traded,
                fill_id=f"{live.exchange_id}:{filled:.12g}",
            )
            live.fee = max(live.fee, fee_now)
            state = state.with_fill(min(delta, state.remaining), price, ts)
            fills.append(fill)
        end = _STATUS.get(str(raw.get("status")))
        if end is not None and state.is_open:
            state = state.to(end, ts, why or f"exchange: {raw.get('status')}")
        if state != live.state or fills:
            await self._book(live, state, fills)

    async def _book(self, live: _Live, state: OrderState, fills: Sequence[Fill] = ()) -> None:
        """Journal a state change and its fills in one append; keep the fills the store had
        not seen (a fill key already journaled is skipped by the store)."""
        live.state = state
        payload = state_to_dict(state)
        payload.update(exchange_client_id=live.xcid, exchange_id=live.exchange_id, fee=live.fee)
        entries = [
            JournalEntry("order", state.order.client_order_id, state.updated or _now(), payload)
        ]
        entries += [JournalEntry("fill", f.fill_id, f.ts, to_dict(f)) for f in fills]
        stored = await self.store.append_journal(self.account, entries)
        new = {e.key for e in stored if e.kind == "fill"}
        self._fills.extend(f for f in fills if f.fill_id in new)

    async def _call(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """A call with retries of transient errors. ``OrderNotFound`` is raised as it is; other
        final errors as a ``BrokerError`` (or ``BrokerPaused``) with the redacted reason."""
        attempt = 0
        while True:
            try:
                return await fn(*args)
            except Exception as exc:
                action = classify(exc)
                if action is Action.PAUSE:
                    why = reason(exc, self._secrets)
                    self._pause(why)
                    raise BrokerPaused(f"{what}: {why}") from None
                if isinstance(exc, ccxt.OrderNotFound):
                    raise
                if action is Action.REJECT or attempt >= self.config.max_retries:
                    raise BrokerError(f"{what}: {reason(exc, self._secrets)}") from None
                log.warning("exchange call failed, retrying", call=what, attempt=attempt + 1)
                await self.sleep(self._backoff(attempt))
                attempt += 1

    def _backoff(self, attempt: int) -> float:
        cap = min(self.config.retry_max, self.config.retry_base * 2.0**attempt)
        return cap * (0.5 + 0.5 * self._rng.random())

    def _pause(self, why: str) -> None:
        if not self.paused:
            log.error("broker paused", reason=why)
        self.paused = why


def public_books(
    exchange: ccxt_async.Exchange,
) -> Callable[[str, int], Awaitable[tuple[list[Level], list[Level]]]]:
    """A reader of a venue's public order books, (bids, asks) best first: what a paper venue
    quotes from (no keys needed, no order ever sent)."""

    async def read(symbol: str, depth: int) -> tuple[list[Level], list[Level]]:
        book = await exchange.fetch_order_book(symbol, depth)
        return (
            [(float(p), float(s)) for p, s, *_ in book["bids"]],
            [(float(p), float(s)) for p, s, *_ in book["asks"]],
        )

    return read


def _readable(raw: Any) -> dict[str, Any]:
    """An order as ccxt parsed it, or ``BadResponse`` when the answer was unreadable (ccxt
    does not raise on a malformed body: it returns an order without id or status)."""
    if not isinstance(raw, dict) or raw.get("id") is None or raw.get("status") is None:
        raise ccxt.BadResponse("unreadable order in the exchange's answer")
    return raw


def _readable_call(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def call(*args: Any) -> dict[str, Any]:
        return _readable(await fn(*args))

    return call


def _fee(raw: Mapping[str, Any]) -> float:
    fee = raw.get("fee")
    if isinstance(fee, Mapping) and fee.get("cost") is not None:
        return float(fee["cost"])
    fees = raw.get("fees") or []
    return math.fsum(float(f.get("cost") or 0.0) for f in fees if isinstance(f, Mapping))
