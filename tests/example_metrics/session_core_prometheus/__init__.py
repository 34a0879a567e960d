"""A session-core extension that counts session store calls and times them, for Prometheus:
``session_core_events_total{kind, store}`` and ``session_core_store_call_seconds{kind, store}``
(a histogram). Expose them as usual, with ``prometheus_client.start_http_server`` or
``make_wsgi_app``."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

import session_core

__all__ = ["EVENTS", "STORE_CALL_SECONDS"]

EVENTS = Counter(
    "session_core_events",
    "Session store calls, by event kind (created, saved, cycled, flushed, revoked, "
    "store_error) and store",
    ["kind", "store"],
)
STORE_CALL_SECONDS = Histogram(
    "session_core_store_call_seconds",
    "How long session store calls took, by event kind and store",
    ["kind", "store"],
    # From an in-process cookie (tens of microseconds) to a slow server round trip.
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)


@session_core.hookimpl
def session_core_session_event(event: session_core.SessionEvent) -> None:
    """Count the store call and record how long it took."""
    EVENTS.labels(event.kind.value, event.store).inc()
    STORE_CALL_SECONDS.labels(event.kind.value, event.store).observe(event.duration)
