"""Dashboards, rows, panels and queries, and their Grafana JSON model (schema version 39).

Panels read from one Prometheus data source chosen by the ``datasource``
template variable, so the same JSON works with the local stack's Prometheus
and the cluster's; the ``namespace`` variable (some, or All) picks the
releases shown, as the selectors built by :mod:`.promql` match it. A panel
knows which metrics it reads, hence whether it needs NVIDIA's DCGM exporter
(:attr:`Panel.needs_dcgm`), which the local stack does not run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .promql import ALL_NAMESPACES, NAMESPACE, NAMESPACE_VARIABLE, Expr, label_values
from .series import Metric

__all__ = ["DATASOURCE", "SCHEMA_VERSION", "UNITS", "Dashboard", "Panel", "Row", "Target"]

SCHEMA_VERSION = 39
#: How every panel and query names its data source: the ``datasource`` variable.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: Grafana unit ids the panels use.
UNITS = ("Bps", "none", "ops", "percent", "percentunit", "reqps", "s", "short")
_KINDS = ("stat", "timeseries")
_GRID_WIDTH = 24
_LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DCGM_NOTE = "Needs the NVIDIA DCGM exporter (GPU nodes); empty without it."


@dataclass(frozen=True)
class Target:
    """One query of a panel.

    Attributes
    ----------
    expr : Expr
        The PromQL expression.
    legend : str
        Grafana legend format; ``{{label}}`` may name only labels ``expr`` returns.
    """

    expr: Expr
    legend: str

    def __post_init__(self) -> None:
        for name in _LEGEND_LABEL.findall(self.legend):
            if name not in self.expr.labels:
                raise ValueError(
                    f"legend {self.legend!r} names label {name!r}, but the query returns only "
                    f"{sorted(self.expr.labels)}: {self.expr.text}"
                )


@dataclass(frozen=True)
class Panel:
    """A timeseries or stat panel.

    Attributes
    ----------
    title, description : str
        What it shows, and how to read it.
    targets : tuple of Target
        Its queries (1 to 26).
    unit : str
        Grafana unit id, one of :data:`UNITS`.
    kind : str
        ``timeseries`` or ``stat``.
    width, height : int
        Size in grid units (24 across).
    max_value : float or None
        Upper end of the axis (100 for a percentage); None: automatic.
    """

    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str
    kind: str = "timeseries"
    width: int = 12
    height: int = 8
    max_value: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"{self.title}: kind must be one of {_KINDS}, got {self.kind!r}")
        if self.unit not in UNITS:
            raise ValueError(f"{self.title}: unit must be one of {UNITS}, got {self.unit!r}")
        if not 1 <= self.width <= _GRID_WIDTH or self.height < 1:
            raise ValueError(
                f"{self.title}: need 1 <= width <= 24 and height >= 1, "
                f"got {self.width} x {self.height}"
            )
        if not 1 <= len(self.targets) <= len(_REF_IDS):
            raise ValueError(f"{self.title}: 1 to 26 targets, got {len(self.targets)}")

    @property
    def metrics(self) -> tuple[Metric, ...]:
        """Every metric its queries read."""
        return tuple(m for t in self.targets for m in t.expr.metrics)

    @property
    def needs_dcgm(self) -> bool:
        """True if it reads a metric of the DCGM exporter."""
        return any(m.source == "dcgm" for m in self.metrics)

    def queries(self) -> Iterator[tuple[str, Target]]:
        """``(refId, target)`` pairs: A, B, C..."""
        yield from zip(_REF_IDS, self.targets, strict=False)

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        """The panel's Grafana JSON, placed at grid position ``(x, y)``."""
        description = self.description
        if self.needs_dcgm:
            description = f"{description} {_DCGM_NOTE}"
        defaults: dict[str, Any] = {"unit": self.unit, "min": 0}
        if self.max_value is not None:
            defaults["max"] = self.max_value
        if self.kind == "timeseries":
            defaults["color"] = {"mode": "palette-classic"}
            defaults["custom"] = {"fillOpacity": 10, "lineWidth": 1, "showPoints": "never"}
            options: dict[str, Any] = {
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
        else:
            defaults["color"] = {"mode": "thresholds"}
            defaults["thresholds"] = {
                "mode": "absolute",
                "steps": [{"color": "green", "value": None}],
            }
            options = {
                "colorMode": "value",
                "graphMode": "area",
                "justifyMode": "auto",
                "orientation": "auto",
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "textMode": "auto",
            }
        return {
            "datasource": dict(DATASOURCE),
            "description": description,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "id": panel_id,
            "options": options,
            "targets": [
                {
                    "datasource": dict(DATASOURCE),
                    "editorMode": "code",
                    "expr": target.expr.text,
                    "legendFormat": target.legend,
                    "range": True,
                    "refId": ref_id,
                }
                for ref_id, target in self.queries()
            ],
            "title": self.title,
            "type": self.kind,
        }


@dataclass(frozen=True)
class Row:
    """A titled row of panels, laid out left to right, wrapping at 24 units."""

    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    """A dashboard: uid (also its file name), title, rows.

    Attributes
    ----------
    uid : str
        Grafana uid, ``[a-z0-9-]``, at most 40 characters; the file is ``<uid>.json``.
    title, description : str
    rows : tuple of Row
    tags : tuple of str
        Grafana tags; dashboards sharing the first tag link to each other.
    namespaces_from : Metric
        (Keyword only.) A metric of the release that every running install
        exports, from its start: the ``namespace`` variable lists its namespaces.
    """

    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    tags: tuple[str, ...] = ("radiounet",)
    namespaces_from: Metric = field(kw_only=True)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", self.uid):
            raise ValueError(f"uid must be 1-40 of [a-z0-9-], got {self.uid!r}")
        source = self.namespaces_from
        if not source.namespaced or source not in {m for p in self.panels() for m in p.metrics}:
            raise ValueError(
                f"{self.uid}: namespaces_from must be a metric of the release that a panel "
                f"reads, got {source.name} ({source.source})"
            )
        titles = [p.title for p in self.panels()]
        repeated = sorted({t for t in titles if titles.count(t) > 1})
        if repeated:
            raise ValueError(f"{self.uid}: panel titles must be unique, repeated: {repeated}")

    @property
    def file_name(self) -> str:
        """``<uid>.json``."""
        return f"{self.uid}.json"

    def panels(self) -> Iterator[Panel]:
        """Every panel, row by row."""
        for row in self.rows:
            yield from row.panels

    def to_json(self) -> dict[str, Any]:
        """The dashboard's Grafana JSON model."""
        return {
            "annotations": {
                "list": [
                    {
                        "builtIn": 1,
                        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                        "enable": True,
                        "hide": True,
                        "iconColor": "rgba(0, 211, 255, 1)",
                        "name": "Annotations & Alerts",
                        "type": "dashboard",
                    }
                ]
            },
            "description": self.description,
            "editable": True,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "id": None,
            "links": [
                {
                    "asDropdown": False,
                    "icon": "external link",
                    "includeVars": True,
                    "keepTime": True,
                    "tags": list(self.tags[:1]),
                    "targetBlank": False,
                    "title": "Other dashboards",
                    "type": "dashboards",
                }
            ],
            "panels": _layout(self.rows),
            "refresh": "30s",
            "schemaVersion": SCHEMA_VERSION,
            "tags": list(self.tags),
            "templating": {
                "list": [
                    {
                        "current": {},
                        "hide": 0,
                        "includeAll": False,
                        "label": "Data source",
                        "multi": False,
                        "name": "datasource",
                        "options": [],
                        "query": "prometheus",
                        "refresh": 1,
                        "regex": "",
                        "type": "datasource",
                    },
                    self._namespace_variable(),
                ]
            },
            "time": {"from": "now-1h", "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
        }

    def _namespace_variable(self) -> dict[str, Any]:
        # As kubernetes-mixin's: All by default, whose ".*" also matches series
        # without the label (the local stack's); refreshed with the time range,
        # so releases installed since the dashboard loaded show up.
        query = label_values(self.namespaces_from, NAMESPACE)
        return {
            "allValue": ALL_NAMESPACES,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "datasource": dict(DATASOURCE),
            "definition": query,
            "hide": 0,
            "includeAll": True,
            "label": "Namespace",
            "multi": True,
            "name": NAMESPACE_VARIABLE.removeprefix("$"),
            "options": [],
            "query": query,
            "refresh": 2,
            "regex": "",
            "skipUrlSync": False,
            "sort": 1,
            "type": "query",
        }


def _layout(rows: tuple[Row, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    y = 0
    for row in rows:
        out.append(
            {
                "collapsed": False,
                "gridPos": {"h": 1, "w": _GRID_WIDTH, "x": 0, "y": y},
                "id": len(out) + 1,
                "panels": [],
                "title": row.title,
                "type": "row",
            }
        )
        y += 1
        x, line_height = 0, 0
        for panel in row.panels:
            if x + panel.width > _GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            out.append(panel.to_json(len(out) + 1, x, y))
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return out
