"""Prometheus metrics (prometheus-client).

Per process by default; set PROMETHEUS_MULTIPROC_DIR (an empty folder, shared by the
workers) to add up every uvicorn worker in one scrape, as prometheus-client documents.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from app.db.connection import db

REQUESTS = Counter("http_requests_total", "HTTP requests by route and status",
                   ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request latency by route", ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
TRANSACTIONS = Counter("invoice_transactions_total", "Payments and refunds recorded",
                       ["kind", "currency", "source"])
TRANSACTION_AMOUNT = Counter("invoice_transaction_amount_minor_units_total",
                             "Sum of payments and refunds recorded, in minor units",
                             ["kind", "currency", "source"])
WEBHOOK_EVENTS = Counter("webhook_events_total", "Provider events by type and outcome",
                         ["type", "outcome"])
DELIVERIES = Counter("webhook_deliveries_total",
                     "Delivery attempts to merchant endpoints by outcome", ["outcome"])
DELIVERY_QUEUE = Gauge("webhook_deliveries_pending", "Deliveries waiting to be sent",
                       multiprocess_mode="max")
DELIVERY_AGE = Gauge("webhook_deliveries_oldest_pending_seconds",
                     "Age of the oldest delivery that is due and not yet delivered",
                     multiprocess_mode="max")
POOL_IN_USE = Gauge("db_pool_connections_in_use", "Database connections checked out",
                    multiprocess_mode="livesum")
POOL_SIZE = Gauge("db_pool_connections_open", "Database connections open in the pool",
                  multiprocess_mode="livesum")


_request_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    # The labelled children, looked up once per (method, route, status): `labels()` on
    # every request was a measurable share of a cheap one (docs/PERFORMANCE.md).
    key = (method, route, status)
    series = _request_series.get(key)
    if series is None:
        series = _request_series[key] = (REQUESTS.labels(method, route, str(status)),
                                         LATENCY.labels(method, route))
    series[0].inc()
    series[1].observe(seconds)


def record_transaction(kind: str, currency: str, source: str, amount_minor: int) -> None:
    """Counted once the transaction is committed (at once when there is no transaction)."""

    def count() -> None:
        TRANSACTIONS.labels(kind, currency, source).inc()
        TRANSACTION_AMOUNT.labels(kind, currency, source).inc(amount_minor)

    db.after_commit(count)


CREDIT = Counter("credit_minor_units_total",
                 "Customer credit granted (grants, overpayments, refunds returned to credit) "
                 "and applied to invoices, in minor units", ["direction", "currency"])


def record_credit(direction: str, currency: str, amount_minor: int) -> None:
    CREDIT.labels(direction, currency).inc(amount_minor)


def record_webhook(event_type: str, outcome: str) -> None:
    WEBHOOK_EVENTS.labels(event_type, outcome).inc()


def _sample_pool() -> None:
    size, in_use = db.pool_usage()
    POOL_SIZE.set(size)
    POOL_IN_USE.set(in_use)


def render() -> tuple[bytes, str]:
    _sample_pool()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
