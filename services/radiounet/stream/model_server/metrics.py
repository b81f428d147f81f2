"""TF Serving's Prometheus metrics: the same names, labels, buckets and text format.

TF Serving (``--monitoring_config_file`` with ``prometheus_config { enable:
true }``) turns TensorFlow's metric names into Prometheus ones by replacing
``/`` with ``:`` and prints counters without a ``_total`` suffix and without
``# HELP`` lines; latency histograms are in microseconds, with TensorFlow's
exponential buckets (a value equal to a bound counts in the next bucket up).
This module reproduces that format, so dashboards and alerts written for TF
Serving read this stand-in unchanged. prometheus_client is not used: it would
rename the counters to ``*_total``.

Implemented (label names in braces):

- ``:tensorflow:serving:request_count{model_name,status}``: Predict requests by
  outcome (``OK``, ``INVALID_ARGUMENT``, ``NOT_FOUND``...).
- ``:tensorflow:serving:request_latency{model_name,API,entrypoint}``: wall time
  of successful requests (``API="Predict"``, ``entrypoint="GRPC"``), µs.
- ``:tensorflow:serving:runtime_latency{model_name,API,runtime}``: time a
  request spent in the model runtime, batch queue included, µs
  (``runtime="TF1"``, the label TF Serving's SavedModel runtime reports).
- ``:tensorflow:serving:batching_session:queuing_latency{thread_pool_name}``:
  time requests waited in the batch queue, µs.
- ``:tensorflow:serving:batching_session:wrapped_run_count``: batched model runs.
- ``:tensorflow:serving:batching_session:processed_batch_size`` (no labels):
  examples in each batch the batching session ran; buckets 1, 2, 4 ... 8192.
  TF Serving records it in ``batching_util.h`` (``RecordProcessedBatchSize``,
  a ``Sampler<0>`` with ``Buckets::Exponential(1, 2, 14)``) once per merged
  batch, and, like every TensorFlow metric, it is process-wide: one
  :data:`PROCESSED_BATCH_SIZE` shared by every server of the process.
- ``:tensorflow:core:graph_runs`` and ``:tensorflow:core:graph_run_time_usecs``:
  model executions and their total time, µs.
- ``:tensorflow:cc:saved_model:load_attempt_count{model_path,status}`` and
  ``:tensorflow:cc:saved_model:load_latency{model_path}`` (µs): model loads.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Sequence
from typing import TypeVar

__all__ = [
    "PROCESSED_BATCH_SIZE",
    "Counter",
    "MetricRegistry",
    "Sampler",
    "ServingMetrics",
    "exponential_buckets",
    "prometheus_name",
]


def prometheus_name(name: str) -> str:
    """TF Serving's mapping of a TensorFlow metric name to a Prometheus one.

    >>> prometheus_name("/tensorflow/serving/request_count")
    ':tensorflow:serving:request_count'
    """
    out = re.sub(r"[^a-zA-Z0-9_]", ":", name)
    return "_" + out if out[:1].isdigit() else out


def _label_name(name: str) -> str:
    out = re.sub(r"[^a-zA-Z0-9]", "_", name)
    return "_" + out if out[:1].isdigit() else out


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _number(value: float) -> str:
    # absl::StrCat(double): six significant digits.
    return f"{value:.6g}"


def exponential_buckets(scale: float, growth: float, count: int) -> tuple[float, ...]:
    """TensorFlow's ``Buckets::Exponential``: ``scale * growth**i`` for ``i < count``."""
    return tuple(scale * growth**i for i in range(count))


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, description: str, labels: Sequence[str]) -> None:
        self.name = name
        self.description = description
        self.labels = tuple(labels)
        self._lock = threading.Lock()

    def _key(self, values: Sequence[str]) -> tuple[str, ...]:
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {tuple(values)}")
        return tuple(str(v) for v in values)

    def _label_text(self, values: tuple[str, ...]) -> list[str]:
        return [
            f'{_label_name(n)}="{_label_value(v)}"'
            for n, v in zip(self.labels, values, strict=True)
        ]

    def render(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    """A cumulative integer count per label combination (TensorFlow's ``monitoring::Counter``)."""

    kind = "counter"

    def __init__(self, name: str, description: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, description, labels)
        self._values: dict[tuple[str, ...], int] = {}
        if not self.labels:  # a label-less counter always has its one cell
            self._values[()] = 0

    def inc(self, *label_values: str, by: int = 1) -> None:
        """Add ``by`` to the cell of ``label_values``."""
        key = self._key(label_values)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + int(by)

    def value(self, *label_values: str) -> int:
        """The current count of one cell (0 if never incremented)."""
        with self._lock:
            return self._values.get(self._key(label_values), 0)

    def render(self) -> list[str]:
        lines = [f"# TYPE {prometheus_name(self.name)} counter"]
        with self._lock:
            cells = sorted(self._values.items())
        for key, value in cells:
            labels = ",".join(self._label_text(key))
            lines.append(f"{prometheus_name(self.name)}{{{labels}}} {value}")
        return lines


class Sampler(_Metric):
    """A histogram per label combination (TensorFlow's ``monitoring::Sampler``)."""

    kind = "histogram"

    def __init__(
        self, name: str, description: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> None:
        super().__init__(name, description, labels)
        self.bounds = tuple(float(b) for b in buckets)
        # One count per bound, plus the overflow bucket (TensorFlow's DBL_MAX, "+Inf").
        self._cells: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def add(self, value: float, *label_values: str) -> None:
        """Record one observation ``value`` in the cell of ``label_values``."""
        key = self._key(label_values)
        # upper_bound, as TensorFlow's histogram: a value equal to a bound goes one up.
        index = bisect.bisect_right(self.bounds, value)
        with self._lock:
            counts, total = self._cells.setdefault(key, ([0] * (len(self.bounds) + 1), [0.0]))
            counts[index] += 1
            total[0] += float(value)

    def count(self, *label_values: str) -> int:
        """Observations recorded in one cell."""
        with self._lock:
            cell = self._cells.get(self._key(label_values))
            return sum(cell[0]) if cell else 0

    def total(self, *label_values: str) -> float:
        """Sum of the observations of one cell."""
        with self._lock:
            cell = self._cells.get(self._key(label_values))
            return cell[1][0] if cell else 0.0

    def render(self) -> list[str]:
        name = prometheus_name(self.name)
        lines = [f"# TYPE {name} histogram"]
        with self._lock:
            cells = sorted((k, (list(c), t[0])) for k, (c, t) in self._cells.items())
        for key, (counts, total) in cells:
            labels = self._label_text(key)
            prefix = ",".join(labels) + ("," if labels else "")
            cumulative = 0
            for i, count in enumerate(counts):
                cumulative += count
                bound = _number(self.bounds[i]) if i < len(self.bounds) else "+Inf"
                lines.append(f'{name}_bucket{{{prefix}le="{bound}"}} {cumulative}')
            lines.append(f"{name}_sum{{{','.join(labels)}}} {_number(total)}")
            lines.append(f"{name}_count{{{','.join(labels)}}} {cumulative}")
        return lines


_M = TypeVar("_M", bound=_Metric)


class MetricRegistry:
    """A set of metrics rendered as one Prometheus text page, sorted by TensorFlow name."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()

    def register(self, metric: _M) -> _M:
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name} is registered twice")
            self._metrics[metric.name] = metric
        return metric

    def render(self) -> str:
        """The Prometheus text exposition page (version 0.0.4)."""
        with self._lock:
            metrics = [self._metrics[n] for n in sorted(self._metrics)]
        lines = [line for metric in metrics for line in metric.render()]
        return "\n".join(lines) + "\n"


# Microseconds: scale 10, growth 1.8, 33 buckets (to ~20 minutes), TF Serving's request buckets.
_REQUEST_BUCKETS = exponential_buckets(10, 1.8, 33)
# TF Serving's batching_session queuing buckets: scale 100 µs, growth 1.2, 52 (~1 s).
_QUEUE_BUCKETS = exponential_buckets(100, 1.2, 52)
# TF Serving's batch-size buckets (batching_util.h): 1, 2, 4 ... 8192, then +Inf.
_BATCH_SIZE_BUCKETS = exponential_buckets(1, 2, 14)

#: Examples per batch run by a batching session. Process-wide, as TF Serving's static
#: cell: :class:`~.batching.Batcher` records here, every :class:`ServingMetrics` exports it.
PROCESSED_BATCH_SIZE = Sampler(
    "/tensorflow/serving/batching_session/processed_batch_size",
    "Tracks the batch size distribution on processing.",
    (),
    _BATCH_SIZE_BUCKETS,
)


class ServingMetrics:
    """The metrics one model server exports.

    One registry per server, so tests stay apart; the exception is
    :data:`PROCESSED_BATCH_SIZE`, process-wide in TF Serving too (the batching
    session has no model name to label it with).
    """

    def __init__(self) -> None:
        r = self.registry = MetricRegistry()
        self.request_count = r.register(
            Counter(
                "/tensorflow/serving/request_count",
                "The total number of requests.",
                ("model_name", "status"),
            )
        )
        self.request_latency = r.register(
            Sampler(
                "/tensorflow/serving/request_latency",
                "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
                ("model_name", "API", "entrypoint"),
                _REQUEST_BUCKETS,
            )
        )
        self.runtime_latency = r.register(
            Sampler(
                "/tensorflow/serving/runtime_latency",
                "Distribution of wall time (in microseconds) for Tensorflow runtime.",
                ("model_name", "API", "runtime"),
                _REQUEST_BUCKETS,
            )
        )
        self.queuing_latency = r.register(
            Sampler(
                "/tensorflow/serving/batching_session/queuing_latency",
                "Distribution of wall time spent (in microseconds) in queuing",
                ("thread_pool_name",),
                _QUEUE_BUCKETS,
            )
        )
        self.processed_batch_size = r.register(PROCESSED_BATCH_SIZE)
        self.wrapped_run_count = r.register(
            Counter(
                "/tensorflow/serving/batching_session/wrapped_run_count",
                "Total count of run calls on the wrapped session",
            )
        )
        self.graph_runs = r.register(
            Counter("/tensorflow/core/graph_runs", "The number of graph executions used.")
        )
        self.graph_run_time_usecs = r.register(
            Counter(
                "/tensorflow/core/graph_run_time_usecs",
                "The total time spent on executing graphs in microseconds.",
            )
        )
        self.load_attempt_count = r.register(
            Counter(
                "/tensorflow/cc/saved_model/load_attempt_count",
                "The number of times a SavedModel was successfully loaded.",
                ("model_path", "status"),
            )
        )
        self.load_latency = r.register(
            Counter(
                "/tensorflow/cc/saved_model/load_latency",
                "Latency in microseconds for SavedModels that were successfully loaded.",
                ("model_path",),
            )
        )

    def render(self) -> str:
        """The Prometheus text page."""
        return self.registry.render()
