"""Prometheus metrics of one process: requests, GraphQL outcomes, events, consumer lag, stores,
rate limits, the cache, AI jobs, and the process's own (memory, open files, CPU, start time,
garbage collection)."""

from __future__ import annotations

import time

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# Each counter's and histogram's creation time, a series apiece: a sixth of the lines, unused.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """A registry of its own per app, so several apps can live in one process (tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._read: set[tuple[str, str]] = set()
        r = self.registry
        for collector in (PROCESS_COLLECTOR, GC_COLLECTOR, PLATFORM_COLLECTOR):
            r.register(collector)
        self.requests = Counter(
            "bloop_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "bloop_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
            registry=r, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                 10, 30, 60),  # uploads, publications to FerretDB, streams
        )
        self.graphql_operations = Counter(
            "bloop_graphql_operations_total", "GraphQL operations run, by outcome (ok: no errors, "
            "partial: data beside errors, failed: no data or every field null by its error)",
            ["outcome"], registry=r,
        )
        self.graphql_errors = Counter(
            "bloop_graphql_errors_total", "Errors in GraphQL answers, by their code",
            ["code"], registry=r,
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
        self.consumer_last_processed = Gauge(
            "bloop_consumer_last_processed_timestamp_seconds",
            "When the group last finished an event here (unix time; until then, when it began"
            " reading here)", ["topic", "group"], registry=r,
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
        self.store_up = Gauge(
            "bloop_store_up", "1 when the store's last check answered, 0 when it failed or gave no"
            " answer within its timeout (the checks /readyz names; run every BLOOP_STORE_WATCH_S"
            " and at each /readyz)", ["store"], registry=r,
        )
        self.store_failures = Counter(
            "bloop_store_failures_total", "Calls of requests (HTTP, or GraphQL fields) a store"
            " failed, each answered 503, by store (as /readyz names it; disk: a file the disk"
            " refused)", ["store"], registry=r,
        )
        self.rate_limited = Counter(
            "bloop_rate_limited_total", "Requests (or GraphQL fields) refused with 429, by limit"
            " (a rate limiter: requests, api_keys, anonymous, token_requests, oidc_sign_ins;"
            " peer: another service's 429 passed on; else the refusal's code) and route template",
            ["limit", "route"], registry=r,
        )
        self.cache_lookups = Counter(
            "bloop_cache_lookups_total", "Reads through the cache, by cache and result (hit, miss)",
            ["cache", "result"], registry=r,
        )
        self.ai_jobs = Gauge(
            "bloop_ai_jobs_unfinished", "AI jobs not finished, by kind and status (queued: waiting"
            " for a worker or for its retry; running: held by a worker), counted in the job store"
            " every BLOOP_AI_SWEEP_INTERVAL_S by each process that runs AI jobs: the store is shared,"
            " so each such process shows the same jobs (aggregate with max, not sum)",
            ["kind", "status"], registry=r,
        )

    def began_reading(self, topic: str, group: str) -> None:
        """Starts the group's last-processed time at now, unless it has one here already: a
        consumer stuck on its first event after a start is as stalled as one stuck later."""
        if (topic, group) not in self._read:
            self.finished(topic, group)

    def finished(self, topic: str, group: str) -> None:
        self._read.add((topic, group))
        self.consumer_last_processed.labels(topic, group).set(time.time())

    def cache_lookup(self, cache: str, hit: bool) -> None:
        self.cache_lookups.labels(cache, "hit" if hit else "miss").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
