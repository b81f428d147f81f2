"""The radiounet dashboards: the pipeline, and the model server (TF Serving).

Every query is built from the metric objects (:mod:`.series`), grouped by the
pipeline's own bounded labels (``stage``, ``reason``, ``group``...), never by
``job``, ``instance`` or ``namespace``: those name scrape targets differently
in the local stack (one job per service) and in the cluster (one per pod
monitor), while the metric labels are the same in both. Replicas of a stage
add up. Releases do not: each dashboard's ``namespace`` variable (default All)
selects the releases shown, matched by every selector (``namespace=~"$namespace"``,
added by :mod:`.promql`) but the GPU panel's, and those selected add up too.
"""

from __future__ import annotations

from radiounet.stream import telemetry as tm
from radiounet.stream.topics import POINTINGS

from .panels import Dashboard, Panel, Row, Target
from .promql import current, increase, mean, or_zero, quantile, rate, ratio
from .series import DCGM_GPU_UTIL, Metric, from_client, from_serving, serving_metrics

__all__ = ["dashboards", "model_server_dashboard", "pipeline_dashboard"]

#: Microseconds per second: TF Serving's latencies are in µs.
_US = 1e6


def _quantiles(
    metric: Metric, by: tuple[str, ...], prefix: str, divide_by: float = 1
) -> tuple[Target, ...]:
    return tuple(
        Target(quantile(q, metric, by=by, divide_by=divide_by), f"{prefix}{name}".strip())
        for q, name in ((0.5, "p50"), (0.95, "p95"))
    )


def pipeline_dashboard() -> Dashboard:
    """The "radiounet pipeline" dashboard: throughput, latency, errors, backlog, storage."""
    consumed = from_client(tm.MESSAGES_CONSUMED)
    produced = from_client(tm.MESSAGES_PRODUCED)
    tiles = from_client(tm.TILES)
    detections = from_client(tm.DETECTIONS)
    stage_seconds = from_client(tm.STAGE_SECONDS)
    pointing_seconds = from_client(tm.POINTING_SECONDS)
    model_seconds = from_client(tm.MODEL_REQUEST_SECONDS)
    dead_letters = from_client(tm.DEAD_LETTERS)
    retries = from_client(tm.RETRIES)
    lag = from_client(tm.CONSUMER_LAG)
    in_flight = from_client(tm.IN_FLIGHT)
    pending = from_client(tm.PENDING_POINTINGS)
    object_bytes = from_client(tm.BYTES)
    stage = ("stage",)
    throughput = Row(
        "Throughput",
        (
            Panel(
                "Pointings per second",
                "Pointings the fetcher takes off the pointings topic, and pointings the "
                "classifier finishes (one detection each).",
                (
                    Target(rate(consumed, where={"topic": POINTINGS}), "taken by the fetcher"),
                    Target(rate(detections), "classified"),
                ),
                "ops",
                width=8,
            ),
            Panel(
                "Tiles per second by stage",
                "Tiles the tiler sent through the model, and tiles the reassembler stitched.",
                (Target(rate(tiles, by=stage), "{{stage}}"),),
                "ops",
                width=8,
            ),
            Panel(
                "Detections per second by outcome",
                "Classified pointings: diffuse emission found, none, or no cluster given.",
                (Target(rate(detections, by=("outcome",)), "{{outcome}}"),),
                "ops",
                width=8,
            ),
            Panel(
                "Messages per second by stage and topic",
                "Messages each stage consumes (<-) and publishes (->), all replicas together.",
                (
                    Target(rate(consumed, by=("stage", "topic")), "{{stage}} <- {{topic}}"),
                    Target(rate(produced, by=("stage", "topic")), "{{stage}} -> {{topic}}"),
                ),
                "ops",
                width=24,
            ),
        ),
    )
    latency = Row(
        "Latency",
        (
            Panel(
                "Time per message by stage (p50, p95)",
                "How long a stage works on one message, retries included.",
                _quantiles(stage_seconds, stage, "{{stage}} "),
                "s",
                width=8,
            ),
            Panel(
                "Pointing latency since submission by stage (p50, p95)",
                "Time from a pointing's submission to the end of each stage's work on it: "
                "the classifier's line is the end-to-end latency.",
                _quantiles(pointing_seconds, stage, "{{stage}} "),
                "s",
                width=8,
            ),
            Panel(
                "Model requests seen by the tiler (p50, p95)",
                "Duration of one Predict call from the tiler, client-side retries included.",
                _quantiles(model_seconds, ("model",), "{{model}} "),
                "s",
                width=8,
            ),
        ),
    )
    errors = Row(
        "Errors",
        (
            Panel(
                "Dead letters per second by stage and reason",
                "Messages a stage gave up on and sent to the dead-letter topic; the reason "
                "is the stable error code (outside_footprint, invalid_cutout...).",
                (Target(rate(dead_letters, by=("stage", "reason")), "{{stage}}: {{reason}}"),),
                "ops",
                width=10,
            ),
            Panel(
                "Retries per second by stage and reason",
                "Transient failures (broker, object store or model server unavailable) "
                "that a stage backed off from and retried.",
                (Target(rate(retries, by=("stage", "reason")), "{{stage}}: {{reason}}"),),
                "ops",
                width=10,
            ),
            Panel(
                "Dead letters, last hour",
                "Messages dead-lettered over the last hour, all stages (0: none counted).",
                (Target(or_zero(increase(dead_letters, "1h")), "dead letters"),),
                "short",
                kind="stat",
                width=4,
            ),
        ),
    )
    backlog = Row(
        "Backlog",
        (
            Panel(
                "Consumer lag by group",
                "Messages on a topic not yet consumed by a consumer group (each replica "
                "reports its own partitions; summed): a lag that keeps growing means the "
                "stage needs replicas.",
                (Target(current(lag, by=("group", "topic")), "{{group}} ({{topic}})"),),
                "short",
                width=12,
            ),
            Panel(
                "Messages in flight by stage",
                "Messages taken but not yet committed.",
                (Target(current(in_flight, by=stage), "{{stage}}"),),
                "short",
                width=6,
            ),
            Panel(
                "Pointings held by the reassembler",
                "Pointings with some but not all of their tile chunks.",
                (Target(current(pending, by=stage), "{{stage}}"),),
                "short",
                width=6,
            ),
        ),
    )
    storage = Row(
        "Object store",
        (
            Panel(
                "Object-store traffic by stage and direction",
                "Bytes per second each stage reads from and writes to the object store.",
                (Target(rate(object_bytes, by=("stage", "direction")), "{{stage}} {{direction}}"),),
                "Bps",
                width=24,
            ),
        ),
    )
    return Dashboard(
        "radiounet-pipeline",
        "radiounet pipeline",
        "Throughput, latency, errors and backlog of the radiounet streaming services "
        "(fetcher, tiler, reassembler, classifier).",
        (throughput, latency, errors, backlog, storage),
        # Every stage creates its in-flight gauge at start (telemetry.init_stage).
        namespaces_from=in_flight,
    )


def model_server_dashboard() -> Dashboard:
    """The "radiounet model server" dashboard: requests, latency, batching, the GPU."""
    serving = serving_metrics()
    requests = from_serving(serving.request_count)
    request_latency = from_serving(serving.request_latency)
    runtime_latency = from_serving(serving.runtime_latency)
    batch_size = from_serving(serving.processed_batch_size)
    queuing = from_serving(serving.queuing_latency)
    batched_runs = from_serving(serving.wrapped_run_count)
    graph_runs = from_serving(serving.graph_runs)
    model = ("model_name",)
    request_row = Row(
        "Requests",
        (
            Panel(
                "Requests per second by status",
                "Predict requests by model and outcome (OK, INVALID_ARGUMENT, NOT_FOUND...).",
                (Target(rate(requests, by=("model_name", "status")), "{{model_name}} {{status}}"),),
                "reqps",
                width=9,
            ),
            Panel(
                "Failed requests",
                "Share of requests that did not end OK over the rate window.",
                (
                    Target(
                        ratio(or_zero(rate(requests, where_not={"status": "OK"})), rate(requests)),
                        "failed",
                    ),
                ),
                "percentunit",
                kind="stat",
                width=3,
            ),
            Panel(
                "Request latency (p50, p95)",
                "Wall time of successful requests in the server (TF Serving's histogram, µs, "
                "shown in seconds).",
                _quantiles(request_latency, model, "{{model_name}} ", _US),
                "s",
                width=6,
            ),
            Panel(
                "Runtime latency (p50, p95)",
                "Time requests spent in the model runtime, batch queue included.",
                _quantiles(runtime_latency, model, "{{model_name}} ", _US),
                "s",
                width=6,
            ),
        ),
    )
    batching_row = Row(
        "Batching",
        (
            Panel(
                "Batch size (mean, p95)",
                "Examples (tiles) per batch the batching session ran. TensorFlow counts a "
                "size equal to a bucket bound in the next bucket up, so the p95 reads high "
                "by up to one power of two; the mean is exact.",
                (
                    Target(mean(batch_size), "mean"),
                    Target(quantile(0.95, batch_size), "p95"),
                ),
                "short",
                width=8,
            ),
            Panel(
                "Batch queueing latency (p50, p95)",
                "Time requests waited in the batch queue before their batch ran.",
                _quantiles(queuing, (), "", _US),
                "s",
                width=8,
            ),
            Panel(
                "Model runs per second",
                "Batched runs of the model, and graph executions (one per run).",
                (
                    Target(rate(batched_runs), "batched runs"),
                    Target(rate(graph_runs), "graph runs"),
                ),
                "ops",
                width=8,
            ),
        ),
    )
    # Not filtered by namespace (the builders add no matcher to DCGM metrics): the
    # exporter's series carry its own namespace, the model server's only in its
    # Kubernetes mode, and then often as exported_namespace.
    gpu_row = Row(
        "GPU",
        (
            Panel(
                "GPU utilisation",
                "Share of time the GPU was busy, per node and GPU, whatever runs on it: "
                "the namespace variable does not apply here.",
                (
                    Target(
                        current(DCGM_GPU_UTIL, by=("Hostname", "gpu"), how="avg"),
                        "{{Hostname}} GPU {{gpu}}",
                    ),
                ),
                "percent",
                width=24,
                max_value=100,
            ),
        ),
    )
    return Dashboard(
        "radiounet-model-server",
        "radiounet model server",
        "TensorFlow Serving (or the local stand-in): requests, latency, batching and GPU.",
        (request_row, batching_row, gpu_row),
        # A label-less counter: TF Serving exports it (at 0) from its start.
        namespaces_from=graph_runs,
    )


def dashboards() -> tuple[Dashboard, ...]:
    """Every dashboard, in file-name order."""
    return tuple(
        sorted((pipeline_dashboard(), model_server_dashboard()), key=lambda d: d.file_name)
    )
