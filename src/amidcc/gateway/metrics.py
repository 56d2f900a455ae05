"""The metric families the gateway exports, defined once, with the ``amidcc_`` prefix.

:class:`GatewayMetrics` owns its own ``CollectorRegistry``; nothing is registered globally, so a test
(or a process running two gateways) can make as many as it likes. Label names are fixed here and
label values for links are the :class:`~amidcc.gateway.links.base.LinkKind` values.

Hot paths bind their label children once and keep them: ``metrics.link(LinkKind.C1222_TCP)`` returns
a :class:`LinkMetrics` whose ``received(n)``/``sent(n)``/``error(kind)`` cost one pre-bound ``inc``
each, and ``metrics.latency(operation, link)`` a pre-bound histogram child (calling ``.labels()`` per
message doubles the cost: integration-notes.md, "Codec speed").

:class:`MetricsResource` serves the registry in the Prometheus text format (or OpenMetrics when the
scraper asks for it) from the reactor thread; ``prometheus_client.twisted`` is not used because it
imports the global reactor at import time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from twisted.web.resource import Resource
from twisted.web.server import Request

from amidcc import __version__
from amidcc.gateway.links.base import LinkKind

__all__ = [
    "DIRECTIONS",
    "ERROR_KINDS",
    "LATENCY_BUCKETS",
    "GatewayMetrics",
    "InFlight",
    "LinkMetrics",
    "MetricsResource",
]

#: Values of the ``direction`` label.
DIRECTIONS = ("rx", "tx")

#: Values of the ``kind`` label of ``amidcc_errors_total``: bad C12.18 CRC, a NAK (C12.18) or a
#: PSEM error response, an undecodable frame or APDU, no response in time, a failed EAX' MAC.
ERROR_KINDS = ("crc", "nak", "malformed", "timeout", "bad_mac")

#: Request latency buckets in seconds: a LAN round trip to a slow RF mesh and the 300 s default
#: C12.22 response timeout (protocol-facts.md 3.6).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class InFlight(Protocol):
    """What :meth:`GatewayMetrics.watch_in_flight` reads (a throttle's
    :class:`~amidcc.gateway.throttle.InflightLimit`)."""

    @property
    def in_flight(self) -> int: ...

    @property
    def peak(self) -> int: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkMetrics:
    """The pre-bound counters of one link; the per-message calls a link adapter makes."""

    link: str
    """The ``link`` label value."""
    rx_messages: Callable[[float], None]
    """Bound ``amidcc_messages_total{direction="rx"}.inc``."""
    rx_bytes: Callable[[float], None]
    """Bound ``amidcc_bytes_total{direction="rx"}.inc``."""
    tx_messages: Callable[[float], None]
    """Bound ``amidcc_messages_total{direction="tx"}.inc``."""
    tx_bytes: Callable[[float], None]
    """Bound ``amidcc_bytes_total{direction="tx"}.inc``."""
    errors: dict[str, Callable[[float], None]] = field(default_factory=dict)
    """Bound ``amidcc_errors_total{kind=...}.inc`` by error kind."""

    def received(self, nbytes: int) -> None:
        """Count one message of ``nbytes`` bytes received on this link."""
        self.rx_messages(1)
        self.rx_bytes(nbytes)

    def sent(self, nbytes: int) -> None:
        """Count one message of ``nbytes`` bytes sent on this link."""
        self.tx_messages(1)
        self.tx_bytes(nbytes)

    def error(self, kind: str) -> None:
        """Count one error of ``kind`` (one of :data:`ERROR_KINDS`; KeyError otherwise)."""
        self.errors[kind](1)


class GatewayMetrics:
    """Every metric family of the gateway, in one registry of its own."""

    def __init__(self, *, process: bool = True, links: Iterable[str] = tuple(LinkKind)) -> None:
        """``process`` adds the standard process_* and python_info collectors; ``links`` are
        the link label values whose series exist (at zero) from the start."""
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        if process:
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)
        self.build_info = Gauge(
            "amidcc_build_info", "Always 1; the version label.", ["version"], registry=reg
        )
        self.build_info.labels(version=__version__).set(1)
        self.start_time = Gauge(
            "amidcc_start_time_seconds", "When the gateway started (Unix time).", registry=reg
        )
        self.messages = Counter(
            "amidcc_messages",
            "Messages (frames, APDUs, Modbus PDUs) by link and direction.",
            ["link", "direction"],
            registry=reg,
        )
        self.bytes = Counter(
            "amidcc_bytes", "Bytes by link and direction.", ["link", "direction"], registry=reg
        )
        self.errors = Counter(
            "amidcc_errors",
            "Protocol errors by link and kind (crc, nak, malformed, timeout, bad_mac).",
            ["link", "kind"],
            registry=reg,
        )
        self.request_latency = Histogram(
            "amidcc_request_latency_seconds",
            "Time from sending a request to a meter to its response, by operation and link.",
            ["operation", "link"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.meters_registered = Gauge(
            "amidcc_meters_registered", "Meters registered, by link.", ["link"], registry=reg
        )
        self.meters_reachable = Gauge(
            "amidcc_meters_reachable", "Meters reachable now, by link.", ["link"], registry=reg
        )
        self.read_success_ratio = Gauge(
            "amidcc_read_success_ratio",
            "Share of scheduled reads that succeeded over the scheduler's last window, by link.",
            ["link"],
            registry=reg,
        )
        self.events = Counter(
            "amidcc_events", "Meter events logged, by event class.", ["event_class"], registry=reg
        )
        self.job_failures = Counter(
            "amidcc_job_failures",
            "Periodic job steps that raised (the job keeps running).",
            ["job"],
            registry=reg,
        )
        self.requests_in_flight = Gauge(
            "amidcc_requests_in_flight",
            "Requests to meters in flight now, by link (read from the throttle at scrape time).",
            ["link"],
            registry=reg,
        )
        self.requests_in_flight_peak = Gauge(
            "amidcc_requests_in_flight_peak",
            "Most requests to meters in flight at once since the start, by link "
            "([throttle] max_inflight_per_link caps it).",
            ["link"],
            registry=reg,
        )
        self.trouble_events = Counter(
            "amidcc_trouble_events",
            "Trouble events that left the gateway (to the MMS), by failure type.",
            ["failure_type"],
            registry=reg,
        )
        self._links: dict[str, LinkMetrics] = {}
        self._latency: dict[tuple[str, str], Callable[[float], None]] = {}
        self._events: dict[str, Callable[[float], None]] = {}
        for link in links:
            self.link(str(link))

    def link(self, link: str) -> LinkMetrics:
        """The pre-bound counters of ``link`` (made once, then cached)."""
        bound = self._links.get(link)
        if bound is None:
            for gauge in (self.meters_registered, self.meters_reachable):
                gauge.labels(link=link)
            bound = LinkMetrics(
                link=link,
                rx_messages=self.messages.labels(link=link, direction="rx").inc,
                rx_bytes=self.bytes.labels(link=link, direction="rx").inc,
                tx_messages=self.messages.labels(link=link, direction="tx").inc,
                tx_bytes=self.bytes.labels(link=link, direction="tx").inc,
                errors={k: self.errors.labels(link=link, kind=k).inc for k in ERROR_KINDS},
            )
            self._links[link] = bound
        return bound

    def latency(self, operation: str, link: str) -> Callable[[float], None]:
        """A pre-bound ``observe(seconds)`` for request latency of ``operation`` on ``link``."""
        key = (operation, link)
        observe = self._latency.get(key)
        if observe is None:
            observe = self._latency[key] = self.request_latency.labels(
                operation=operation, link=link
            ).observe
        return observe

    def event(self, event_class: str) -> None:
        """Count one logged event of ``event_class``."""
        inc = self._events.get(event_class)
        if inc is None:
            inc = self._events[event_class] = self.events.labels(event_class=event_class).inc
        inc(1)

    def watch_in_flight(self, link: str, limit: InFlight) -> None:
        """Export ``limit``'s requests in flight and their peak as ``link``'s in-flight gauges,
        read when scraped (nothing is done per request)."""
        self.requests_in_flight.labels(link=link).set_function(lambda: limit.in_flight)
        self.requests_in_flight_peak.labels(link=link).set_function(lambda: limit.peak)

    def trouble(self, failure_type: str) -> None:
        """Count one trouble event of ``failure_type`` sent out of the gateway."""
        self.trouble_events.labels(failure_type=failure_type).inc()

    def set_meters(self, link: str, *, registered: int, reachable: int) -> None:
        """Set the registered and reachable meter gauges of ``link``."""
        self.meters_registered.labels(link=link).set(registered)
        self.meters_reachable.labels(link=link).set(reachable)

    def mark_started(self, now: float | None = None) -> None:
        """Set ``amidcc_start_time_seconds`` (to ``now``, or the wall clock)."""
        self.start_time.set(time.time() if now is None else now)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition body and its content type, chosen from an HTTP ``Accept`` header."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


class MetricsResource(Resource):
    """``GET /metrics``: the registry in the Prometheus (or OpenMetrics) text format."""

    isLeaf = True

    def __init__(self, metrics: GatewayMetrics) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.metrics = metrics

    def render_GET(self, request: Request) -> bytes:
        body, content_type = self.metrics.render(request.getHeader("accept") or "")
        request.setHeader(b"content-type", content_type.encode("ascii"))  # type: ignore[no-untyped-call]
        return body
