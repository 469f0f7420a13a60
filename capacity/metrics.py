"""Prometheus metrics (prometheus-client): counters the services bump, gauges read at scrape.

Labels carry kinds and outcomes only — never an id of a facility, a hold or a household.

Several API processes: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory shared by the
processes of one host (cleared at start, as prometheus-client documents); ``/metrics`` then
sums every process's counters. Without it each process reports its own.
"""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUEST_SECONDS = Histogram(
    "abri_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
SEARCHES = Counter(
    "abri_searches_total",
    "Placement searches by requester kind and outcome (found, unmet)",
    ["requester_kind", "outcome"],
)
HOLD_ATTEMPTS = Counter(
    "abri_hold_attempts_total",
    "Hold requests by outcome (granted, replayed, already_held, no_longer_free, not_admitting,"
    " not_eligible)",
    ["outcome"],
)
HOLD_TRANSITIONS = Counter(
    "abri_hold_transitions_total",
    "Hold state changes by new state (arrived, released, declined, no_show, expired, departed)",
    ["state"],
)
JOB_RUNS = Counter(
    "abri_job_runs_total", "Scheduled job runs by job and outcome", ["job", "outcome"]
)
# Set by the process that ran the job (the worker, or `abri serve` with its jobs): a job that
# hangs or keeps failing shows as this time falling behind, which a counter alone does not say.
JOB_LAST_SUCCESS = Gauge(
    "abri_job_last_success_timestamp_seconds",
    "When each scheduled job last finished without error (Unix time)",
    ["job"],
    multiprocess_mode="max",
)
# Read from the database at scrape time, by whichever process the scrape reached: with several
# processes the latest scrape's figures count ("livemostrecent"), NaN during an outage included
# (as "livemax" another process's last figures from before the outage could win over it).
READ_AT_SCRAPE: Final = "livemostrecent"
POOLS_STALE = Gauge(
    "abri_pools_stale",
    "Pools whose data is older than their threshold",
    multiprocess_mode=READ_AT_SCRAPE,
)
POOLS_TOTAL = Gauge("abri_pools", "Pools known", multiprocess_mode=READ_AT_SCRAPE)
HOLDS_ACTIVE = Gauge("abri_holds_active", "Holds currently held", multiprocess_mode=READ_AT_SCRAPE)
FEEDS = Gauge(
    "abri_feeds",
    "Enabled availability feeds by health (healthy, failing, circuit_open)",
    ["health"],
    multiprocess_mode=READ_AT_SCRAPE,
)
FEEDS_ALERTING = Gauge(
    "abri_feeds_alerting",
    "Enabled feeds needing an admin: more than half of their polls of the last 15 minutes "
    "failed (at least two), or their circuit is open",
    multiprocess_mode=READ_AT_SCRAPE,
)
STANDING_WAITING = Gauge(
    "abri_standing_requests_waiting", "Standing requests waiting", multiprocess_mode=READ_AT_SCRAPE
)


#: What ``abri worker`` serves (ABRI_WORKER_METRICS): the counters its jobs bump. The gauges
#: above are read from the database by the API's /metrics.
WORKER_SAMPLES = [
    f"{name}{suffix}"
    for name in ("abri_job_runs", "abri_hold_transitions")
    for suffix in ("_total", "_created")
] + ["abri_job_last_success_timestamp_seconds"]


def serve_worker_metrics(listen: str) -> tuple[str, int]:
    """Serve the worker's counters at ``http://HOST:PORT/metrics`` (``listen``: ``HOST:PORT``
    or ``PORT``, which listens on 127.0.0.1) in a background thread; returns where."""
    from prometheus_client import REGISTRY, start_http_server

    host, _, port = listen.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise SystemExit(f"ABRI_WORKER_METRICS must be HOST:PORT or PORT, got {listen!r}") from None
    host = host.strip("[]") or "127.0.0.1"
    try:
        start_http_server(number, addr=host, registry=REGISTRY.restricted_registry(WORKER_SAMPLES))
    except OSError as exc:
        raise SystemExit(
            f"ABRI_WORKER_METRICS={listen}: cannot listen on {host}:{number} "
            f"({exc.strerror or exc}); each abri worker on a host needs its own port"
        ) from None
    return host, number


def render() -> bytes:
    """The exposition text for this process, or for all processes of the host."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
