"""Every Prometheus metric of the pipeline services, and the /metrics + /healthz endpoint.

Names follow Prometheus conventions (base units, ``_total`` counters); labels
are bounded (stage, topic, reason...), never pointing ids. The dashboards of the
chart are built from these names.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = [
    "BYTES",
    "CONSUMER_LAG",
    "DEAD_LETTERS",
    "DETECTIONS",
    "IN_FLIGHT",
    "MESSAGES_CONSUMED",
    "MESSAGES_PRODUCED",
    "MODEL_REQUEST_SECONDS",
    "PENDING_POINTINGS",
    "POINTING_SECONDS",
    "RETRIES",
    "STAGE_SECONDS",
    "TILES",
    "Health",
    "TelemetryServer",
    "init_stage",
]

# Seconds: from a few ms (a message) to minutes (a pointing through a busy system).
# Fine steps from 10 s up: pointing latencies of a loaded pipeline live there, and a
# p95 interpolated across a 25-60 s bucket was off by tens of seconds.
# fmt: off
_LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
    10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600,
)
# fmt: on

MESSAGES_CONSUMED = Counter(
    "radiounet_messages_consumed_total", "Messages taken off a topic.", ["stage", "topic"]
)
MESSAGES_PRODUCED = Counter(
    "radiounet_messages_produced_total", "Messages published.", ["stage", "topic"]
)
DEAD_LETTERS = Counter(
    "radiounet_dead_letters_total",
    "Messages a stage gave up on, sent to the dead-letter topic, by reason.",
    ["stage", "reason"],
)
RETRIES = Counter(
    "radiounet_retries_total",
    "Transient failures (dependency unavailable) that were retried, by reason.",
    ["stage", "reason"],
)
TILES = Counter("radiounet_tiles_total", "Tiles processed.", ["stage"])
BYTES = Counter(
    "radiounet_object_bytes_total",
    "Bytes read from or written to the object store.",
    ["stage", "direction"],
)
DETECTIONS = Counter(
    "radiounet_detections_total",
    "Classified pointings by outcome (diffuse, none, no_cluster).",
    ["outcome"],
)
STAGE_SECONDS = Histogram(
    "radiounet_stage_duration_seconds",
    "Time a stage spent on one message.",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
)
POINTING_SECONDS = Histogram(
    "radiounet_pointing_latency_seconds",
    "Time from a pointing's submission to the end of this stage's work on it.",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
)
MODEL_REQUEST_SECONDS = Histogram(
    "radiounet_model_request_duration_seconds",
    "Duration of one Predict call to the model server, retries included.",
    ["model"],
    buckets=_LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "radiounet_in_flight_messages", "Messages taken but not yet committed.", ["stage"]
)
PENDING_POINTINGS = Gauge(
    "radiounet_pending_pointings", "Pointings a stage holds partially (reassembler).", ["stage"]
)
CONSUMER_LAG = Gauge(
    "radiounet_consumer_lag_messages",
    "Messages on a topic not yet consumed by a group (sum over partitions).",
    ["group", "topic"],
)


#: Reasons every stage can dead-letter or retry for (the runner's own).
COMMON_DEAD_LETTER_REASONS = ("bad_message", "internal_error")
COMMON_RETRY_REASONS = ("broker", "object_store")


def init_stage(
    stage: str,
    *,
    input_topic: str,
    output_topics: tuple[str, ...] = (),
    dead_letter_reasons: tuple[str, ...] = (),
    retry_reasons: tuple[str, ...] = (),
) -> None:
    """Create a stage's known series at zero.

    A labelled series otherwise appears only with its first event, and
    ``rate()``/``increase()`` cannot see that first event: the first dead letter
    of a pod would never show on a dashboard or fire an alert.
    """
    MESSAGES_CONSUMED.labels(stage, input_topic)
    for topic in (*output_topics, "dead-letters"):
        MESSAGES_PRODUCED.labels(stage, topic)
    for reason in (*COMMON_DEAD_LETTER_REASONS, *dead_letter_reasons):
        DEAD_LETTERS.labels(stage, reason)
    for reason in (*COMMON_RETRY_REASONS, *retry_reasons):
        RETRIES.labels(stage, reason)
    for direction in ("read", "written"):
        BYTES.labels(stage, direction)
    STAGE_SECONDS.labels(stage)
    POINTING_SECONDS.labels(stage)
    IN_FLIGHT.labels(stage)


class Health:
    """Liveness from a heartbeat of the service loop, plus a readiness flag and details."""

    def __init__(self, *, stale_after_s: float = 120.0) -> None:
        self.stale_after_s = stale_after_s
        self._beat = time.monotonic()
        self._ready = False
        self._details: dict[str, Any] = {}
        self._lock = threading.Lock()

    def beat(self) -> None:
        with self._lock:
            self._beat = time.monotonic()

    def set_ready(self, ready: bool, **details: Any) -> None:
        with self._lock:
            self._ready = ready
            self._details.update(details)

    def snapshot(self) -> tuple[bool, bool, dict[str, Any]]:
        """``(alive, ready, details)``."""
        with self._lock:
            age = time.monotonic() - self._beat
            details = dict(self._details, heartbeat_age_s=round(age, 3))
            return age < self.stale_after_s, self._ready, details


class TelemetryServer:
    """Serves ``/metrics`` (Prometheus), ``/healthz`` (liveness) and ``/readyz`` on one port."""

    def __init__(
        self,
        health: Health,
        *,
        host: str = "0.0.0.0",
        port: int = 0,
        registry: CollectorRegistry = REGISTRY,
        before_scrape: Callable[[], None] | None = None,
    ) -> None:
        self.health = health
        handler = _handler(health, registry, before_scrape)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="telemetry", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> TelemetryServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler(
    health: Health, registry: CollectorRegistry, before_scrape: Callable[[], None] | None
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                if before_scrape is not None:
                    before_scrape()
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                alive, ready, details = health.snapshot()
                ok = alive if path == "/healthz" else (alive and ready)
                body = json.dumps({"alive": alive, "ready": ready, **details}, default=str)
                self._send(200 if ok else 503, body.encode(), "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes every few seconds would drown the service's own log

    return Handler
