"""Prometheus metrics of the orchestrator process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

ACTIVE_SESSIONS = Gauge(
    "raytrader_active_sessions",
    "Sessions starting, running, halted or stopping",
    registry=REGISTRY,
)
ORDERS = Counter("raytrader_orders_total", "Orders sent to a broker", registry=REGISTRY)
REJECTED = Counter("raytrader_orders_rejected_total", "Orders refused by risk", registry=REGISTRY)
FILLS = Counter("raytrader_fills_total", "Fills booked", registry=REGISTRY)
BARS = Counter("raytrader_bars_total", "Bars processed by sessions", registry=REGISTRY)
HALTS = Counter(
    "raytrader_session_halts_total", "Sessions halted by their kill switch", registry=REGISTRY
)
RECOVERIES = Counter(
    "raytrader_session_recoveries_total",
    "Session reloads after a component failure",
    registry=REGISTRY,
)
# Fine buckets so p50/p99 can be read back with useful precision (benchmarks do).
_BUCKETS = (
    0.0005,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.004,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    2.0,
    5.0,
)
BAR_TO_ORDER = Histogram(
    "raytrader_bar_to_order_seconds",
    "From a bar's arrival to its orders reaching the broker",
    buckets=_BUCKETS,
    registry=REGISTRY,
)
BAR_TO_FILL = Histogram(
    "raytrader_bar_to_fill_seconds",
    "From a bar's arrival to its fills being booked",
    buckets=_BUCKETS,
    registry=REGISTRY,
)
