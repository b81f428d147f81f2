"""PromQL expressions built from :class:`~.series.Metric` objects, checked as they are built.

Every builder checks that the labels it filters or groups by exist on the
metric, and records the labels of its result, so a panel's legend can only
name labels its query returns. Rates use Grafana's ``$__rate_interval``
(at least four scrape intervals: right for the 2 s scrapes of the local stack
and the 30 s ones of the cluster alike); :func:`for_prometheus` turns an
expression into one Prometheus evaluates by itself.

Every selector of a metric the release exports (:attr:`.Metric.namespaced`)
matches ``namespace=~"$namespace"``, the dashboards' namespace variable, so
two releases scraped by one Prometheus are told apart. ``namespace`` is a
target label (the Prometheus operator adds it from the scraped pod), not a
metric label: :data:`TARGET_LABELS` may be matched, never grouped by. With
the variable's "All" (``.*``) the matcher also keeps series without the
label, such as the local stack's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .series import Metric

__all__ = [
    "ALL_NAMESPACES",
    "LOCAL_WINDOW",
    "NAMESPACE",
    "NAMESPACE_VARIABLE",
    "RATE_INTERVAL",
    "TARGET_LABELS",
    "Expr",
    "current",
    "for_prometheus",
    "increase",
    "label_values",
    "mean",
    "or_zero",
    "quantile",
    "rate",
    "ratio",
]

#: Grafana's rate window: max(4 x scrape interval, step + scrape interval).
RATE_INTERVAL = "$__rate_interval"
#: The window that replaces it when Prometheus evaluates a panel query by itself.
LOCAL_WINDOW = "1m"
#: The target label naming the scraped pod's namespace, and the dashboards' variable for it.
NAMESPACE = "namespace"
NAMESPACE_VARIABLE = "$namespace"
#: The variable's "All" value (Grafana's allValue), also what replaces it when Prometheus
#: evaluates a panel query by itself: ``=~".*"`` matches series without the label too.
ALL_NAMESPACES = ".*"
#: Labels Prometheus attaches to every series of a target (not exported by the
#: metric): they may be matched, never grouped by (replicas and releases add up).
TARGET_LABELS = frozenset({NAMESPACE})

_DURATION = re.compile(r"([0-9]+(ms|s|m|h|d|w|y))+")
# $name or ${name} (group 1 or 2); any other ${...} (a format) matches with neither.
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))|\$\{[^}]*\}")


@dataclass(frozen=True)
class Expr:
    """A PromQL expression (in Grafana's form) and what its result carries.

    Attributes
    ----------
    text : str
        The expression, ``$__rate_interval`` included.
    labels : frozenset of str
        Labels of the result series (what a legend may name).
    metrics : tuple of Metric
        The metrics it reads.
    """

    text: str
    labels: frozenset[str]
    metrics: tuple[Metric, ...]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _check_labels(
    metric: Metric,
    suffix: str,
    names: Iterable[str],
    what: str,
    target_labels: frozenset[str] = frozenset(),
) -> None:
    known = metric.series_labels(suffix)
    for name in names:
        if name not in known and name not in target_labels:
            also = f" (and the target labels {sorted(target_labels)})" if target_labels else ""
            raise ValueError(
                f"{metric.series(suffix)} has no label {name!r} to {what}; "
                f"it has {sorted(known)}{also}"
            )


def _selector(
    metric: Metric, suffix: str, where: Mapping[str, str], where_not: Mapping[str, str]
) -> str:
    _check_labels(metric, suffix, [*where, *where_not], "match", TARGET_LABELS)
    matchers = [(k, "=", v) for k, v in where.items()]
    matchers += [(k, "!=", v) for k, v in where_not.items()]
    if metric.namespaced:
        if NAMESPACE in (*where, *where_not):
            raise ValueError(
                f"{metric.series(suffix)}: every selector matches "
                f"{NAMESPACE}=~{_quote(NAMESPACE_VARIABLE)} already; do not match {NAMESPACE!r}"
            )
        matchers.append((NAMESPACE, "=~", NAMESPACE_VARIABLE))
    inside = ", ".join(f"{k}{op}{_quote(v)}" for k, op, v in sorted(matchers))
    name = metric.series(suffix)
    return f"{name}{{{inside}}}" if inside else name


def _sum(by: tuple[str, ...], inner: str) -> str:
    return f"sum by ({', '.join(by)}) ({inner})" if by else f"sum({inner})"


def rate(
    metric: Metric,
    *,
    by: Iterable[str] = (),
    where: Mapping[str, str] | None = None,
    where_not: Mapping[str, str] | None = None,
    suffix: str = "",
) -> Expr:
    """Per-second rate of a counter (or of a histogram's ``suffix`` series), summed ``by``.

    >>> from .series import Metric
    >>> tiles = Metric("radiounet_tiles_total", "counter", ("stage",), "radiounet")
    >>> rate(tiles, by=["stage"]).text
    'sum by (stage) (rate(radiounet_tiles_total{namespace=~"$namespace"}[$__rate_interval]))'
    """
    if metric.kind == "gauge":
        raise ValueError(f"{metric.name} is a gauge: take current(), not rate()")
    if metric.kind == "histogram" and not suffix:
        raise ValueError(f"{metric.name} is a histogram: give suffix _bucket, _sum or _count")
    group = tuple(by)
    _check_labels(metric, suffix, group, "group by")
    selector = _selector(metric, suffix, where or {}, where_not or {})
    text = _sum(group, f"rate({selector}[{RATE_INTERVAL}])")
    return Expr(text, frozenset(group), (metric,))


def increase(metric: Metric, window: str, *, by: Iterable[str] = ()) -> Expr:
    """How much a counter grew over the fixed ``window`` (``1h``...), summed ``by``.

    >>> from .series import Metric
    >>> letters = Metric("dead_total", "counter", ("stage",), "radiounet")
    >>> increase(letters, "1h").text
    'sum(increase(dead_total{namespace=~"$namespace"}[1h]))'
    """
    if metric.kind != "counter":
        raise ValueError(f"{metric.name} is a {metric.kind}: increase() takes a counter")
    if not _DURATION.fullmatch(window):
        raise ValueError(f"window must be a Prometheus duration such as 1h, got {window!r}")
    group = tuple(by)
    _check_labels(metric, "", group, "group by")
    text = _sum(group, f"increase({_selector(metric, '', {}, {})}[{window}])")
    return Expr(text, frozenset(group), (metric,))


def current(
    metric: Metric,
    *,
    by: Iterable[str] = (),
    where: Mapping[str, str] | None = None,
    how: str = "sum",
) -> Expr:
    """A gauge's current value, aggregated ``by`` with ``how`` (sum, avg, max, min).

    >>> from .series import Metric
    >>> lag = Metric("lag", "gauge", ("group", "topic"), "radiounet")
    >>> current(lag, by=["group"], how="max").text
    'max by (group) (lag{namespace=~"$namespace"})'
    """
    if metric.kind != "gauge":
        raise ValueError(f"{metric.name} is a {metric.kind}: current() takes a gauge")
    if how not in ("sum", "avg", "max", "min"):
        raise ValueError(f"how must be sum, avg, max or min, got {how!r}")
    group = tuple(by)
    _check_labels(metric, "", group, "group by")
    selector = _selector(metric, "", where or {}, {})
    text = f"{how} by ({', '.join(group)}) ({selector})" if group else f"{how}({selector})"
    return Expr(text, frozenset(group), (metric,))


def quantile(q: float, metric: Metric, *, by: Iterable[str] = (), divide_by: float = 1) -> Expr:
    """The ``q`` quantile of a histogram over the rate window, per ``by`` group.

    >>> from .series import Metric
    >>> seconds = Metric("x_seconds", "histogram", ("stage",), "dcgm")  # DCGM: unfiltered
    >>> quantile(0.95, seconds, by=["stage"]).text
    'histogram_quantile(0.95, sum by (le, stage) (rate(x_seconds_bucket[$__rate_interval])))'
    """
    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q!r}")
    if metric.kind != "histogram":
        raise ValueError(f"{metric.name} is a {metric.kind}: quantile() takes a histogram")
    group = tuple(by)
    if "le" in group:
        raise ValueError(f"by must not hold 'le' (added for the buckets), got {group}")
    buckets = rate(metric, by=("le", *group), suffix="_bucket")
    text = f"histogram_quantile({_number(q)}, {buckets.text})"
    return Expr(_divided(text, divide_by), frozenset(group), (metric,))


def mean(metric: Metric, *, by: Iterable[str] = (), divide_by: float = 1) -> Expr:
    """A histogram's mean observation over the rate window: rate of ``_sum`` / of ``_count``.

    >>> from .series import Metric
    >>> sizes = Metric("size", "histogram", (), "dcgm")  # DCGM: unfiltered
    >>> mean(sizes).text
    'sum(rate(size_sum[$__rate_interval])) / sum(rate(size_count[$__rate_interval]))'
    """
    group = tuple(by)
    total = rate(metric, by=group, suffix="_sum")
    count = rate(metric, by=group, suffix="_count")
    text = f"{total.text} / {count.text}"
    if divide_by != 1:
        text = _divided(f"({text})", divide_by)
    return Expr(text, total.labels, (metric,))


def ratio(numerator: Expr, denominator: Expr) -> Expr:
    """``numerator / denominator``; both must return the same labels."""
    if numerator.labels != denominator.labels:
        raise ValueError(
            f"ratio of results with different labels: {sorted(numerator.labels)} over "
            f"{sorted(denominator.labels)}"
        )
    return Expr(
        f"({numerator.text}) / ({denominator.text})",
        numerator.labels,
        numerator.metrics + denominator.metrics,
    )


def or_zero(expr: Expr) -> Expr:
    """``expr``, or 0 where it has no series (a count of events that did not happen).

    Only for label-less results: ``vector(0)`` carries no labels.
    """
    if expr.labels:
        raise ValueError(f"or_zero() needs a label-less result, got labels {sorted(expr.labels)}")
    return Expr(f"({expr.text}) or vector(0)", expr.labels, expr.metrics)


def _divided(text: str, divide_by: float) -> str:
    if divide_by <= 0:
        raise ValueError(f"divide_by must be > 0, got {divide_by!r}")
    return text if divide_by == 1 else f"{text} / {_number(divide_by)}"


def label_values(metric: Metric, label: str) -> str:
    """Grafana's variable query for the values of ``label`` on ``metric``'s series.

    >>> from .series import Metric
    >>> label_values(Metric("graph_runs", "counter", (), "tf-serving"), "namespace")
    'label_values(graph_runs, namespace)'
    """
    suffix = "_count" if metric.kind == "histogram" else ""
    _check_labels(metric, suffix, [label], "take values of", TARGET_LABELS)
    return f"label_values({metric.series(suffix)}, {label})"


def for_prometheus(text: str, window: str = LOCAL_WINDOW) -> str:
    """A panel query as Prometheus evaluates it alone, with Grafana's variables filled in.

    ``$__rate_interval`` becomes ``window`` and ``$namespace`` (or
    ``${namespace}``) becomes :data:`ALL_NAMESPACES`, every namespace. The one
    place where Grafana's variables are replaced; any other variable left in
    the query is an error (Prometheus would reject it anyway).

    >>> for_prometheus('sum(rate(x_total{namespace=~"$namespace"}[$__rate_interval]))')
    'sum(rate(x_total{namespace=~".*"}[1m]))'
    """
    if not _DURATION.fullmatch(window):
        raise ValueError(f"window must be a Prometheus duration such as 1m or 90s, got {window!r}")
    values = {RATE_INTERVAL[1:]: window, NAMESPACE_VARIABLE[1:]: ALL_NAMESPACES}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise ValueError(
                f"query {text!r} uses {match.group(0)}, which only Grafana can fill in"
            )
        return values[name]

    return _VARIABLE.sub(fill, text)
