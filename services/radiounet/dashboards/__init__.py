"""Grafana dashboards of radiounet, built in code from the metric objects.

``python -m radiounet.dashboards.generate DIR`` (``make dashboards``) writes
them as JSON for the chart; ``radiounet dashboards show`` evaluates every
panel query against a Prometheus, ``radiounet dashboards export`` adds
Grafana provisioning for a local Grafana.
"""

from .build import dashboards, model_server_dashboard, pipeline_dashboard
from .panels import Dashboard, Panel, Row, Target
from .promql import LOCAL_WINDOW, RATE_INTERVAL, Expr, for_prometheus

__all__ = [
    "LOCAL_WINDOW",
    "RATE_INTERVAL",
    "Dashboard",
    "Expr",
    "Panel",
    "Row",
    "Target",
    "dashboards",
    "for_prometheus",
    "model_server_dashboard",
    "pipeline_dashboard",
]
