"""Probes of loopback endpoints: is a TCP port open, does an HTTP URL answer 2xx.

HTTP calls ignore ``http_proxy`` and friends: a proxy set for the outside world
must never see (or break) calls to our own loopback services.
"""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass

__all__ = ["LOOPBACK", "HttpResponse", "http_ok", "http_request", "tcp_open"]

#: The only address the local stack listens on.
LOOPBACK = "127.0.0.1"

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class HttpResponse:
    """Status code and body of an HTTP call.

    Attributes
    ----------
    status : int
        HTTP status code (also for 4xx/5xx answers).
    body : bytes
        The whole response body.
    """

    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_request(
    url: str, *, method: str = "GET", data: bytes | None = None, timeout: float = 5.0
) -> HttpResponse:
    """Make one HTTP call without proxies; error statuses are returned, not raised.

    Raises
    ------
    OSError
        If the server cannot be reached (refused, reset, timed out).
    http.client.HTTPException
        If what answers does not speak HTTP.
    """
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return HttpResponse(response.status, response.read())
    except urllib.error.HTTPError as err:
        # An HTTPError holds the open response; close it or it leaks a socket.
        with err:
            return HttpResponse(err.code, err.read())


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True if a GET of ``url`` answers with a 2xx status (e.g. ``/healthz``, ``/-/ready``)."""
    try:
        return http_request(url, timeout=timeout).ok
    except (OSError, http.client.HTTPException):
        return False
