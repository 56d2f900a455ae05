"""The gateway's small HTTP root: ``/metrics`` for Prometheus and ``/health`` for probes.

The operator JSON API is added later as another child of the same root
(``gateway.web_root.putChild(b"api", ...)``); the root is served on ``metrics.listen``.

``/health`` answers ``200`` with a JSON body when every check passes and ``503`` with the same body
otherwise, so load balancers and ``curl --fail`` can use the status alone::

    {"status": "ok", "name": "amidcc", "version": "0.1.0", "uptime_seconds": 12.5,
     "checks": {"links": "ok", "jobs": "ok"}}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

from twisted.logger import Logger
from twisted.web.http import Request as HTTPRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from amidcc.gateway.metrics import GatewayMetrics, MetricsResource

__all__ = ["HealthReport", "HealthResource", "build_root", "build_site"]


@dataclass(frozen=True, kw_only=True, slots=True)
class HealthReport:
    """What ``/health`` says."""

    name: str
    """The gateway's name (``gateway.name``)."""
    version: str
    """amidcc's version."""
    uptime_seconds: float
    """Seconds since the gateway service started (0 before it has)."""
    checks: Mapping[str, str]
    """Each check's result: ``"ok"`` or what is wrong."""

    @property
    def ok(self) -> bool:
        """True when every check says ``"ok"``."""
        return all(result == "ok" for result in self.checks.values())

    def to_json(self) -> bytes:
        """The JSON body of ``/health``."""
        body = {
            "status": "ok" if self.ok else "failing",
            "name": self.name,
            "version": self.version,
            "uptime_seconds": round(self.uptime_seconds, 3),
            "checks": dict(self.checks),
        }
        return json.dumps(body, sort_keys=True).encode() + b"\n"


class HealthResource(Resource):
    """``GET /health``: 200 when healthy, 503 when not; JSON either way."""

    isLeaf = True

    def __init__(self, report: Callable[[], HealthReport]) -> None:
        super().__init__()
        self._report = report

    def render_GET(self, request: Request) -> bytes:
        report = self._report()
        request.setResponseCode(200 if report.ok else 503)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return report.to_json()


class _Index(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"amidcc gateway\n/metrics  Prometheus metrics\n/health   health check (JSON)\n"


def build_root(metrics: GatewayMetrics, health: Callable[[], HealthReport]) -> Resource:
    """The root resource: ``/``, ``/metrics`` and ``/health``; add more with ``putChild``."""
    root = Resource()
    root.putChild(b"", cast(IResource, _Index()))
    root.putChild(b"metrics", cast(IResource, MetricsResource(metrics)))
    root.putChild(b"health", cast(IResource, HealthResource(health)))
    return root


class GatewaySite(Site):
    """A Site whose access log goes to the Twisted logger at debug level.

    Prometheus scrapes every few seconds; at the default info level those lines would drown the log.
    """

    noisy = False
    _log = Logger()

    def log(self, request: HTTPRequest) -> None:
        self._log.debug(
            "{method} {uri} {code} {peer}",
            method=request.method.decode("ascii", "replace"),
            uri=request.uri.decode("ascii", "replace"),
            code=request.code,
            peer=getattr(request.getClientAddress(), "host", "-"),
        )


def build_site(root: Resource) -> Site:
    """A Site serving ``root``, with access lines at debug level and without factory chatter."""
    return GatewaySite(root)
