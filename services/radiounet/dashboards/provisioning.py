"""Grafana provisioning for the dashboards: a Prometheus data source and a file provider.

:func:`export` writes the dashboards' JSON files into a folder, plus
``provisioning/datasources/radiounet.yaml`` and
``provisioning/dashboards/radiounet.yaml``, so a Grafana started with
``GF_PATHS_PROVISIONING=<folder>/provisioning`` shows them against the given
Prometheus. The files are JSON, which is YAML: no YAML writer needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .generate import write

__all__ = ["DATASOURCE_UID", "dashboard_provider", "datasource", "export"]

#: uid of the provisioned data source (the dashboards pick it as their default).
DATASOURCE_UID = "radiounet-prometheus"
_DURATION = re.compile(r"[0-9]+(ms|s|m|h)")


def datasource(url: str, *, scrape_interval: str = "2s") -> dict[str, Any]:
    """The data-source provisioning document for the Prometheus at ``url``.

    ``scrape_interval`` becomes the data source's ``timeInterval``, from which
    Grafana derives ``$__rate_interval`` (2 s: the local stack's Prometheus).

    >>> datasource("http://127.0.0.1:9090")["datasources"][0]["jsonData"]
    {'httpMethod': 'POST', 'timeInterval': '2s'}
    """
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        raise ValueError(f"Prometheus URL must be http(s)://host[:port][/path], got {url!r}")
    if not _DURATION.fullmatch(scrape_interval):
        raise ValueError(
            f"scrape interval must be a duration such as 2s or 30s, got {scrape_interval!r}"
        )
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "access": "proxy",
                "editable": True,
                "isDefault": True,
                "jsonData": {"httpMethod": "POST", "timeInterval": scrape_interval},
                "name": "radiounet Prometheus",
                "type": "prometheus",
                "uid": DATASOURCE_UID,
                "url": url.rstrip("/"),
            }
        ],
    }


def dashboard_provider(folder: Path | str) -> dict[str, Any]:
    """The dashboard-provider provisioning document reading the JSON files in ``folder``."""
    return {
        "apiVersion": 1,
        "providers": [
            {
                "allowUiUpdates": True,
                "disableDeletion": False,
                "folder": "radiounet",
                "name": "radiounet",
                "options": {"path": str(Path(folder).resolve())},
                "type": "file",
                "updateIntervalSeconds": 30,
            }
        ],
    }


def export(folder: Path | str, prometheus_url: str, *, scrape_interval: str = "2s") -> list[Path]:
    """Write the dashboards and both provisioning files into ``folder``; return the paths."""
    source = datasource(prometheus_url, scrape_interval=scrape_interval)  # checks first
    paths = write(folder)
    root = Path(folder) / "provisioning"
    for kind, doc in (("datasources", source), ("dashboards", dashboard_provider(folder))):
        path = root / kind / "radiounet.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        paths.append(path)
    return paths
