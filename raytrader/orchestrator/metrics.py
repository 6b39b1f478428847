"""Prometheus metrics of the orchestrator process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

ACTIVE_SESSIONS = Gauge(
    "raytrader_active_sessions", "Sessions starting, running or stopping", registry=REGISTRY
)
ORDERS = Counter("raytrader_orders_total", "Orders sent to a broker", registry=REGISTRY)
REJECTED = Counter("raytrader_orders_rejected_total", "Orders refused by risk", registry=REGISTRY)
FILLS = Counter("raytrader_fills_total", "Fills booked", registry=REGISTRY)
BARS = Counter("raytrader_bars_total", "Bars processed by sessions", registry=REGISTRY)
RECOVERIES = Counter(
    "raytrader_session_recoveries_total",
    "Session reloads after a component failure",
    registry=REGISTRY,
)
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
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
