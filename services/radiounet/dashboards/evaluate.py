"""Evaluate every panel query against a Prometheus: the stand-in for looking at Grafana.

Each query is turned into plain PromQL by :func:`~.promql.for_prometheus`
and evaluated now with ``/api/v1/query``; :func:`format_table` prints each
panel's current values with its unit.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from radiounet.stream.local.probes import http_request

from .build import dashboards
from .panels import Dashboard, Panel, Target
from .promql import LOCAL_WINDOW, for_prometheus

__all__ = [
    "Evaluated",
    "PrometheusError",
    "Series",
    "evaluate",
    "format_table",
    "format_value",
    "instant_query",
    "legend_text",
]

_LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class PrometheusError(RuntimeError):
    """Prometheus could not be reached, or refused or failed a query."""


@dataclass(frozen=True)
class Series:
    """One series of an instant-query result: its labels and current value."""

    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Evaluated:
    """The result of one panel query.

    Attributes
    ----------
    dashboard : Dashboard
    panel : Panel
    ref_id : str
        The query's refId (A, B...).
    target : Target
    query : str
        The PromQL that was evaluated.
    series : tuple of Series
        What Prometheus returned (empty: no data).
    """

    dashboard: Dashboard
    panel: Panel
    ref_id: str
    target: Target
    query: str
    series: tuple[Series, ...]

    @property
    def finite(self) -> tuple[Series, ...]:
        """The series with a finite value (not NaN, not infinite)."""
        return tuple(s for s in self.series if math.isfinite(s.value))


def instant_query(url: str, query: str, *, timeout: float = 10.0) -> list[Series]:
    """Evaluate ``query`` now on the Prometheus at ``url``.

    Raises
    ------
    PrometheusError
        If Prometheus cannot be reached, rejects the query, or answers with
        something other than a vector or scalar.
    """
    address = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    try:
        answer = http_request(address, timeout=timeout)
    except (OSError, http.client.HTTPException) as exc:
        raise PrometheusError(f"cannot reach Prometheus at {url}: {exc}") from None
    try:
        doc = json.loads(answer.body)
    except json.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or doc.get("status") != "success":
        reason = doc.get("error") if isinstance(doc, dict) else None
        reason = reason or answer.body.decode(errors="replace").strip()[:200]
        raise PrometheusError(
            f"Prometheus at {url} failed query {query!r} ({answer.status}): {reason}"
        )
    data = doc.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list):
        return [Series({}, float(result[1]))]
    if kind == "vector":
        return [Series(dict(s["metric"]), float(s["value"][1])) for s in result or []]
    raise PrometheusError(f"query {query!r}: expected a vector or scalar, got {kind!r}")


def evaluate(
    url: str,
    boards: Iterable[Dashboard] | None = None,
    *,
    window: str = LOCAL_WINDOW,
    timeout: float = 10.0,
) -> list[Evaluated]:
    """Every query of every panel of ``boards`` (default: all), evaluated now.

    Raises
    ------
    PrometheusError
        At the first query Prometheus cannot answer.
    """
    out = []
    for board in dashboards() if boards is None else boards:
        for panel in board.panels():
            for ref_id, target in panel.queries():
                query = for_prometheus(target.expr.text, window)
                series = instant_query(url, query, timeout=timeout)
                out.append(Evaluated(board, panel, ref_id, target, query, tuple(series)))
    return out


def legend_text(target: Target, labels: Mapping[str, str]) -> str:
    """The target's legend with ``{{label}}`` filled from ``labels``.

    >>> from radiounet.dashboards.promql import Expr
    >>> target = Target(Expr("x", frozenset({"stage"}), ()), "{{stage}} p95")
    >>> legend_text(target, {"stage": "tiler"})
    'tiler p95'
    """
    return _LEGEND_LABEL.sub(lambda m: labels.get(m.group(1), ""), target.legend).strip()


def format_value(value: float, unit: str) -> str:
    """A value as the panel's unit shows it.

    >>> format_value(0.0123, "s"), format_value(2.5e6, "Bps"), format_value(0.25, "percentunit")
    ('12.3 ms', '2.5 MB/s', '25%')
    """
    if not math.isfinite(value):
        return str(value)
    if unit == "s":
        return f"{value * 1000:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
    if unit == "Bps":
        for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {prefix}B/s"
        return f"{value:.3g} B/s"
    if unit == "percentunit":
        return f"{value * 100:.3g}%"
    if unit == "percent":
        return f"{value:.3g}%"
    if unit in ("ops", "reqps"):
        return f"{value:.3g}/s"
    return f"{value:.4g}"


def format_table(results: Iterable[Evaluated], *, max_series: int = 12) -> str:
    """Dashboard by dashboard, each panel's series and current values, as text."""
    lines: list[str] = []
    board_uid = None
    panel_title = None
    for result in results:
        if result.dashboard.uid != board_uid:
            board_uid, panel_title = result.dashboard.uid, None
            lines += ["", result.dashboard.title] if lines else [result.dashboard.title]
        rows = sorted(
            (legend_text(result.target, s.labels) or result.ref_id, s.value) for s in result.series
        )
        if not rows:
            why = "needs the DCGM exporter" if result.panel.needs_dcgm else "no series"
            rows_text = [(result.ref_id, f"(no data: {why})")]
        else:
            # Stages create their series at zero: list what moved, count the rest.
            moved = [(name, v) for name, v in rows if v != 0] or rows[:1]
            rows_text = [(name, format_value(v, result.panel.unit)) for name, v in moved]
            if len(rows_text) > max_series:
                rows_text = rows_text[:max_series]
            hidden = len(rows) - len(rows_text)
            if hidden:
                at_zero = len(rows) - len(moved)
                rows_text.append(("...", f"{hidden} more ({at_zero} at 0)"))
        for name, text in rows_text:
            title = result.panel.title if result.panel.title != panel_title else ""
            panel_title = result.panel.title
            lines.append(f"  {title:<54.54} {name:<36.36} {text}".rstrip())
    return "\n".join(lines) + "\n"
