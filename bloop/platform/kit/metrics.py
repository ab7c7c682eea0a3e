"""Prometheus metrics of one process: requests, events, consumer lag."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """A registry of its own per app, so several apps can live in one process (tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "bloop_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "bloop_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
            registry=r, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.events_published = Counter(
            "bloop_events_published_total", "Events published", ["topic", "type"], registry=r
        )
        self.events_consumed = Counter(
            "bloop_events_consumed_total", "Events taken from a topic by a consumer group",
            ["topic", "group", "outcome"], registry=r,
        )
        self.dead_lettered = Counter(
            "bloop_events_dead_lettered_total", "Events sent to a dead-letter topic",
            ["topic", "group", "reason"], registry=r,
        )
        self.consumer_lag = Gauge(
            "bloop_consumer_lag", "Messages behind the end of the partition",
            ["topic", "partition", "group"], registry=r,
        )
        self.consumer_leading = Gauge(
            "bloop_consumer_leading",
            "1 while this process reads the group's topic (embedded bus; 0: another process does)",
            ["topic", "group"], registry=r,
        )
        self.outbox_pending = Gauge(
            "bloop_outbox_pending", "Outbox events waiting to be published", ["outbox"], registry=r
        )
        self.outbox_leading = Gauge(
            "bloop_outbox_leading", "1 while this process's relay publishes the outbox",
            ["outbox"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
