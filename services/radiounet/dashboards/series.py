"""The metrics the dashboards read: PromQL names and label names, from the metric objects.

The pipeline's names come from the ``prometheus_client`` objects of
:mod:`radiounet.stream.telemetry` and TF Serving's from the stand-in's
:class:`~radiounet.stream.model_server.metrics.ServingMetrics`, so a renamed
metric or label changes the dashboards (and fails their check) instead of
silently emptying a panel. Only the DCGM exporter's metric, which no code of
this project exports, is named here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from radiounet.stream.model_server.metrics import ServingMetrics, prometheus_name

__all__ = [
    "DCGM_GPU_UTIL",
    "KINDS",
    "RELEASE_SOURCES",
    "SOURCES",
    "Metric",
    "from_client",
    "from_serving",
    "serving_metrics",
]

#: Metric kinds the builders know.
KINDS = ("counter", "gauge", "histogram")
#: Who exports a metric: the pipeline services, the model server, NVIDIA's DCGM exporter.
SOURCES = ("radiounet", "tf-serving", "dcgm")
#: Sources running in the release's own pods: the chart's ServiceMonitors scrape them
#: there, so their ``namespace`` target label is the release's namespace.
RELEASE_SOURCES = ("radiounet", "tf-serving")


@dataclass(frozen=True)
class Metric:
    """One metric family as PromQL sees it.

    Attributes
    ----------
    name : str
        The series name of a counter or gauge (a counter's ``_total`` included
        where the exporter writes one); a histogram's base name.
    kind : str
        One of :data:`KINDS`.
    labels : tuple of str
        Label names of its series (a histogram's ``le`` not included).
    source : str
        One of :data:`SOURCES`; ``dcgm`` panels need the DCGM exporter.
    """

    name: str
    kind: str
    labels: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")

    @property
    def namespaced(self) -> bool:
        """True if its series' ``namespace`` label is the namespace of the release exporting it.

        Not so for the DCGM exporter, which runs in its own namespace.
        """
        return self.source in RELEASE_SOURCES

    def series(self, suffix: str = "") -> str:
        """The series name, with ``_bucket``, ``_sum`` or ``_count`` for a histogram.

        >>> Metric("x_seconds", "histogram", ("stage",), "radiounet").series("_bucket")
        'x_seconds_bucket'
        """
        if self.kind == "histogram":
            if suffix not in ("_bucket", "_sum", "_count"):
                raise ValueError(
                    f"{self.name} is a histogram: suffix must be _bucket, _sum or _count, "
                    f"got {suffix!r}"
                )
        elif suffix:
            raise ValueError(f"{self.name} is a {self.kind}: no suffix, got {suffix!r}")
        return self.name + suffix

    def series_labels(self, suffix: str = "") -> frozenset[str]:
        """Label names of :meth:`series` (``le`` on buckets)."""
        return frozenset(self.labels) | ({"le"} if suffix == "_bucket" else set())


def from_client(metric: Any) -> Metric:
    """The :class:`Metric` of a ``prometheus_client`` Counter, Gauge or Histogram.

    prometheus_client keeps a counter's name without ``_total`` and adds it on
    exposition; so does PromQL's view.

    >>> from radiounet.stream.telemetry import TILES
    >>> from_client(TILES)
    Metric(name='radiounet_tiles_total', kind='counter', labels=('stage',), source='radiounet')
    """
    kind = getattr(metric, "_type", None)
    if kind not in KINDS:
        raise ValueError(f"not a prometheus_client counter, gauge or histogram: {metric!r}")
    name = str(metric._name) + ("_total" if kind == "counter" else "")
    return Metric(name, kind, tuple(metric._labelnames), "radiounet")


def from_serving(metric: Any) -> Metric:
    """The :class:`Metric` of a TF Serving stand-in Counter or Sampler.

    TF Serving writes counters without ``_total``.

    >>> from_serving(serving_metrics().request_count)
    Metric(name=':tensorflow:serving:request_count', kind='counter', \
labels=('model_name', 'status'), source='tf-serving')
    """
    kind = getattr(metric, "kind", None)
    if kind not in ("counter", "histogram"):
        raise ValueError(f"not a model-server Counter or Sampler: {metric!r}")
    return Metric(prometheus_name(metric.name), kind, tuple(metric.labels), "tf-serving")


@functools.cache
def serving_metrics() -> ServingMetrics:
    """One (never served) :class:`ServingMetrics`: the model server's metric definitions."""
    return ServingMetrics()


#: GPU utilisation, percent, from NVIDIA's DCGM exporter (a DaemonSet on GPU nodes).
#: Its labels: ``gpu`` (index), ``UUID``, ``device``, ``modelName``, ``Hostname``. The
#: scrape's ``namespace`` is the exporter's own; the GPU's pod's namespace is a metric
#: label only in the exporter's Kubernetes mode, and then often renamed ``exported_namespace``.
DCGM_GPU_UTIL = Metric(
    "DCGM_FI_DEV_GPU_UTIL",
    "gauge",
    ("gpu", "UUID", "device", "modelName", "Hostname"),
    "dcgm",
)
