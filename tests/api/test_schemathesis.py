"""Schemathesis over the app's OpenAPI schema: no 500s, no undocumented status, no schema
violation, and invalid input refused with a 4xx.

The app runs in-process (ASGI) over real actors with one paced paper session, so half of the
generated session ids and symbols are real ones and the success paths are exercised too.
"""

from __future__ import annotations

import collections
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from raytrader.orchestrator.api.app import create_app
from raytrader.orchestrator.api.common import SESSION_ID_PATTERN, SYMBOL_PATTERN
from raytrader.orchestrator.runtime import start_components
from raytrader.orchestrator.sessions import SessionManager
from raytrader.settings import Settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

FUZZ_SESSION: dict[str, Any] = {
    "name": "fuzz",
    "agents": [{"name": "sma_cross", "params": {"fast": 5, "slow": 20}}],
    "broker": {"commission": {"bps": 10}},
    "portfolio": {"lot_size": 0.001},
    "feed": {
        "data": {"synthetic": {"kind": "single", "n_bars": 50_000, "seed": 1, "freq": "1h"}},
        "speed": 50,
    },
}
KEY = "fuzz-key-0123456789"
# Per operation and mode; RAYTRADER_FUZZ_EXAMPLES=500 RAYTRADER_FUZZ_RANDOM=1 explores further.
EXAMPLES = int(os.environ.get("RAYTRADER_FUZZ_EXAMPLES", "25"))
DERANDOMIZE = os.environ.get("RAYTRADER_FUZZ_RANDOM", "") != "1"
MUST_SUCCEED = (
    "POST /api/execution/submit-order",
    "GET /api/execution/orders",
    "GET /api/execution/portfolio",
    "POST /api/risk/calculate-position-size",
    "POST /api/risk/check-limits",
    "GET /api/risk/portfolio-risk",
    "GET /api/risk/stress-test",
    "POST /api/portfolio/generate-orders",
    "POST /api/portfolio/desired-state",
    "POST /api/portfolio/trigger-rebalance",
    "POST /api/portfolio/update-rebalance-schedule",
    "GET /api/v1/data/stock/{symbol}",
    "POST /api/v1/data/batch",
    "GET /api/v1/strategy/strategy_parameters/{name}",
    "POST /api/v1/strategy/configure_strategy/{name}",
    "POST /api/v1/strategy/generate_signals",
)
# Stopping the one session would turn every later request on it into a 409.
NO_REAL_ID = ("/api/trading/stop-session",)
ORDER_PATHS = ("/api/execution/submit-order",)
ORDER_TYPES = ("market", "limit", "stop", "stop_limit")


@pytest.fixture
def api_schema(ray_runtime: None, tmp_path: Path) -> Iterator[Any]:
    components = start_components(None, str(tmp_path), prefix=f"f{uuid.uuid4().hex[:8]}")
    manager = SessionManager(components)
    app = create_app(
        Settings(data_dir=tmp_path, api_key=KEY), manager=manager, demo_session=FUZZ_SESSION
    )
    # Loading the schema starts the app's lifespan (and the session) in schemathesis's own
    # event loop; the teardown below ends it there.
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers={"X-API-Key": KEY})
    # Every request carries the key (the API-key tests cover its absence).
    schema.config.generation.update(with_security_parameters=False)
    (sid,) = manager.runs

    def real(value: Any, name: str, replacement: str, pattern: str) -> Any:
        # Only values that are valid already: a negative case must stay invalid.
        current = value.get(name) if isinstance(value, dict) else None
        if isinstance(current, str) and re.fullmatch(pattern, current):
            return st.sampled_from([value, {**value, name: replacement}])
        return st.just(value)

    def real_target(value: Any) -> Any:
        # Targets on valid symbols may name the session's symbol instead. Collapsed into one
        # target, a case keeps what made it invalid: the first bad weight (targets' weights lie
        # in [-10, 10]), or whatever else is wrong with it.
        targets = value.get("targets") if isinstance(value, dict) else None
        if not (isinstance(targets, dict) and 1 <= len(targets) <= 500):
            return st.just(value)
        if not all(isinstance(k, str) and re.fullmatch(SYMBOL_PATTERN, k) for k in targets):
            return st.just(value)
        weights = list(targets.values())
        bad = [
            w
            for w in weights
            if isinstance(w, bool) or not isinstance(w, int | float) or not -10 <= w <= 10
        ]
        weight = bad[0] if bad else weights[0]
        return st.sampled_from([value, {**value, "targets": {"SYN": weight}}])

    def price_ok(p: Any) -> bool:
        return p is None or (
            isinstance(p, int | float) and not isinstance(p, bool) and 1e-8 <= p <= 1e9
        )

    def market_order(value: Any) -> Any:
        # An order's prices must fit its type, which the schema cannot say: a valid type and
        # valid prices may be swapped for a market order without prices (what made a negative
        # case invalid lies elsewhere, and stays).
        if not isinstance(value, dict) or value.get("type") not in ORDER_TYPES:
            return st.just(value)
        if not all(price_ok(value.get(k)) for k in ("limit_price", "stop_price")):
            return st.just(value)
        plain = {**value, "type": "market", "limit_price": None, "stop_price": None}
        return st.sampled_from([value, plain])

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> Any:
        path = context.operation.path if context.operation is not None else None
        if path in NO_REAL_ID:
            return st.just(body)
        strategy = (
            real(body, "session_id", sid, SESSION_ID_PATTERN)
            .flatmap(lambda b: real(b, "symbol", "SYN", SYMBOL_PATTERN))
            .flatmap(real_target)
        )
        return strategy.flatmap(market_order) if path in ORDER_PATHS else strategy

    @schema.hook
    def flatmap_query(context: Any, query: Any) -> Any:
        return real(query, "session_id", sid, SESSION_ID_PATTERN)

    @schema.hook
    def flatmap_path_parameters(context: Any, path: Any) -> Any:
        return real(path, "session_id", sid, SESSION_ID_PATTERN)

    yield schema
    asgi.shutdown_lifespans()  # the app's shutdown, in schemathesis's loop
    for handle in components.handles().values():
        ray.kill(handle, no_restart=True)


def exercise(strategy: Any, count: int, statuses: collections.Counter[int]) -> None:
    """Send ``count`` cases drawn from ``strategy``; raise what the checks find."""

    @given(case=strategy)
    @settings(
        max_examples=count,
        deadline=None,
        derandomize=DERANDOMIZE,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        response = case.call_and_validate(checks=CHECKS, headers={"X-API-Key": KEY})
        statuses[response.status_code] += 1

    check()


def test_api_conforms_to_its_schema(api_schema: Any) -> None:
    """The schema's examples, then valid and invalid requests, to every operation; every
    failure is reported at the end."""
    failures: list[str] = []
    seen: dict[str, collections.Counter[int]] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 30
    for operation in operations:
        hooks = api_schema.hooks
        runs = [
            ("examples", strategy, 4)
            for strategy in api_schema.get_strategies_from_examples(operation, hooks=hooks)
        ]
        runs += [
            (mode.value, operation.as_strategy(generation_mode=mode, hooks=hooks), EXAMPLES)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
        for label, strategy, count in runs:
            statuses = seen.setdefault(f"{operation.label} {label}", collections.Counter())
            try:
                exercise(strategy, count, statuses)
            except Unsatisfiable:
                # No parameters and no body: no request to this operation can be invalid.
                if label != GenerationMode.NEGATIVE.value:
                    raise
            except (Exception, BaseExceptionGroup) as exc:
                # A flaky failure's message hides its cause: name the sub-exceptions too.
                causes = exc.exceptions if isinstance(exc, BaseExceptionGroup) else ()
                detail = "".join(f"\n  caused by {c!r}" for c in causes)
                failures.append(f"{operation.label} ({label}):\n{exc}{detail}")
    assert not failures, "\n\n".join(failures)
    # The success paths were reached too, not only the 4xx ones.
    unreached = [
        label
        for label in MUST_SUCCEED
        if not any(
            200 <= code < 300
            for key, statuses in seen.items()
            if key.startswith(f"{label} ")
            for code in statuses
        )
    ]
    assert not unreached, f"no 2xx answer from {unreached}: {seen}"
