"""The HTTP side: Prometheus metrics pages and TF Serving's model-status REST calls.

``GET /monitoring/prometheus/metrics`` (TF Serving's path) and ``GET /metrics``
return the metrics page. ``GET /v1/models/<name>[/versions/<v>|/labels/<l>]``
answers with TF Serving's JSON (``model_version_status``), which readiness
probes written for TF Serving use. TF Serving's other REST calls (predict,
metadata) answer 501: use gRPC.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc

from .manager import VersionStatus
from .status import ServingError

__all__ = ["DEFAULT_METRICS_PATHS", "HttpServer"]

DEFAULT_METRICS_PATHS = ("/monitoring/prometheus/metrics", "/metrics")

_log = logging.getLogger(__name__)
_STATUS_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?/?$")
_HTTP_CODE = {
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.UNAVAILABLE: 503,
}

StatusLookup = Callable[[str, int | None, str], list[VersionStatus]]


def _status_json(statuses: list[VersionStatus]) -> dict[str, Any]:
    return {
        "model_version_status": [
            {
                "version": str(s.version),
                "state": s.state_name,
                "status": {"error_code": s.error_code.name, "error_message": s.error_message},
            }
            for s in statuses
        ]
    }


class HttpServer:
    """Serve the metrics page and model status over HTTP on a background thread.

    Parameters
    ----------
    render : callable
        Returns the Prometheus text page.
    statuses : callable or None
        ``statuses(name, version, label)`` for ``/v1/models/...``; ``None``: 404.
    host, port : str, int
        Where to listen (port 0: any free port, see :attr:`port`).
    metrics_paths : sequence of str
        Paths answering with the metrics page.
    """

    def __init__(
        self,
        render: Callable[[], str],
        statuses: StatusLookup | None = None,
        *,
        host: str = "0.0.0.0",
        port: int = 0,
        metrics_paths: Sequence[str] = DEFAULT_METRICS_PATHS,
    ) -> None:
        paths = frozenset(metrics_paths)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in paths:
                    self._send(200, render().encode(), "text/plain; version=0.0.4; charset=utf-8")
                    return
                match = _STATUS_PATH.match(path)
                if match and statuses is not None:
                    name, version, label = match.groups()
                    try:
                        found = statuses(name, int(version) if version else None, label or "")
                    except ServingError as exc:
                        self._json(_HTTP_CODE.get(exc.code, 500), {"error": exc.message})
                        return
                    self._json(200, _status_json(found))
                    return
                self._not_here(path)

            def do_POST(self) -> None:
                self._not_here(self.path.split("?", 1)[0])

            def _not_here(self, path: str) -> None:
                if path.startswith("/v1/"):
                    message = "this model server stand-in implements only gRPC for inference"
                    self._json(501, {"error": message})
                else:
                    self._json(404, {"error": f"no such path: {path}"})

            def _json(self, code: int, body: dict[str, Any]) -> None:
                self._send(code, json.dumps(body, indent=1).encode(), "application/json")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                _log.debug("http: " + format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="model-server-http", daemon=True
        )

    @property
    def port(self) -> int:
        """The port listened on."""
        return int(self._server.server_address[1])

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
