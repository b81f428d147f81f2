"""PromQL expressions built from :class:`~.series.Metric` objects, checked as they are built.

Every builder checks that the labels it filters or groups by exist on the
metric, and records the labels of its result, so a panel's legend can only
name labels its query returns. Rates use Grafana's ``$__rate_interval``
(at least four scrape intervals: right for the 2 s scrapes of the local stack
and the 30 s ones of the cluster alike); :func:`for_prometheus` turns an
expression into one Prometheus evaluates by itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .series import Metric

__all__ = [
    "LOCAL_WINDOW",
    "RATE_INTERVAL",
    "Expr",
    "current",
    "for_prometheus",
    "increase",
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

_DURATION = re.compile(r"([0-9]+(ms|s|m|h|d|w|y))+")
_VARIABLE = re.compile(r"\$(\{[^}]*\}|\w+)")


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


def _check_labels(metric: Metric, suffix: str, names: Iterable[str], what: str) -> None:
    known = metric.series_labels(suffix)
    for name in names:
        if name not in known:
            raise ValueError(
                f"{metric.series(suffix)} has no label {name!r} to {what}; it has {sorted(known)}"
            )


def _selector(
    metric: Metric, suffix: str, where: Mapping[str, str], where_not: Mapping[str, str]
) -> str:
    _check_labels(metric, suffix, [*where, *where_not], "match")
    matchers = [(k, "=", v) for k, v in where.items()]
    matchers += [(k, "!=", v) for k, v in where_not.items()]
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
    'sum by (stage) (rate(radiounet_tiles_total[$__rate_interval]))'
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
    'sum(increase(dead_total[1h]))'
    """
    if metric.kind != "counter":
        raise ValueError(f"{metric.name} is a {metric.kind}: increase() takes a counter")
    if not _DURATION.fullmatch(window):
        raise ValueError(f"window must be a Prometheus duration such as 1h, got {window!r}")
    group = tuple(by)
    _check_labels(metric, "", group, "group by")
    text = _sum(group, f"increase({metric.series()}[{window}])")
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
    'max by (group) (lag)'
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
    >>> seconds = Metric("x_seconds", "histogram", ("stage",), "radiounet")
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
    >>> sizes = Metric("size", "histogram", (), "tf-serving")
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


def for_prometheus(text: str, window: str = LOCAL_WINDOW) -> str:
    """A panel query as Prometheus evaluates it alone: ``$__rate_interval`` -> ``window``.

    The one place where Grafana's variables are replaced; any other variable
    left in the query is an error (Prometheus would reject it anyway).

    >>> for_prometheus("sum(rate(x_total[$__rate_interval]))")
    'sum(rate(x_total[1m]))'
    """
    if not _DURATION.fullmatch(window):
        raise ValueError(f"window must be a Prometheus duration such as 1m or 90s, got {window!r}")
    out = text.replace(RATE_INTERVAL, window)
    left = _VARIABLE.search(out)
    if left:
        raise ValueError(f"query {text!r} uses {left.group(0)}, which only Grafana can fill in")
    return out
