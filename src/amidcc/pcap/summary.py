"""Capture summaries: per service, per meter (AP title), response codes, malformed frames.

:class:`SummaryBuilder` is the analyser's mutable accumulator; :meth:`SummaryBuilder.build` returns
an immutable :class:`CaptureSummary`. Latencies are kept as samples (8 bytes each, in an
``array``) so that the median and 95th percentile are exact.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from amidcc.codecs import psem
from amidcc.codecs.codes import ResponseCode

from .records import MessageKind, MessageRecord, ServiceRecord

__all__ = [
    "CaptureSummary",
    "LatencySummary",
    "MeterSummary",
    "ServiceSummary",
    "SummaryBuilder",
    "request_name",
    "response_code_name",
]


def _code_name(code: int) -> str:
    try:
        return ResponseCode(code).name.lower()
    except ValueError:
        return f"{code:#04x}"


_CODE_NAMES = tuple(_code_name(code) for code in range(256))


def response_code_name(code: int) -> str:
    """``ok``, ``isc``, ... for known response codes; ``0x13`` for others."""
    return _CODE_NAMES[code] if 0 <= code < 256 else _code_name(code)


@dataclass(frozen=True, kw_only=True, slots=True)
class LatencySummary:
    """Request-to-response latencies, in seconds."""

    count: int = 0
    """Number of matched request/response pairs."""
    mean: float | None = None
    """Mean latency (None without samples)."""
    minimum: float | None = None
    """Smallest latency."""
    median: float | None = None
    """Median latency."""
    p95: float | None = None
    """95th percentile (nearest rank)."""
    maximum: float | None = None
    """Largest latency."""


def _latency_summary(samples: array[float]) -> LatencySummary:
    if not samples:
        return LatencySummary()
    ordered = sorted(samples)
    n = len(ordered)
    return LatencySummary(
        count=n,
        mean=math.fsum(ordered) / n,
        minimum=ordered[0],
        median=ordered[(n - 1) // 2],
        p95=ordered[max(0, math.ceil(0.95 * n) - 1)],
        maximum=ordered[-1],
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ServiceSummary:
    """One PSEM request service (``Full Read``, ``Logon``...)."""

    name: str
    """Service name (see ``amidcc.codecs.psem.service_name``)."""
    requests: int
    """Requests seen."""
    responses: int
    """Responses matched to those requests."""
    response_codes: Mapping[str, int]
    """Matched responses by code name (``ok``, ``isc``...)."""
    unanswered: int
    """Requests that expected a response and got none in the capture."""
    latency: LatencySummary
    """Latency of the matched responses."""


@dataclass(frozen=True, kw_only=True, slots=True)
class MeterSummary:
    """One AP title seen in the capture: a meter, a relay or the head-end."""

    ap_title: str
    """The AP title (a leading dot marks a relative title)."""
    addresses: tuple[str, ...]
    """IP addresses it sent from."""
    sent: int
    """Messages it sent (as calling AP title)."""
    received: int
    """Messages sent to it (as called AP title)."""
    requests_received: int
    """Requests sent to it."""
    responses_sent: int
    """Responses it sent."""
    response_codes: Mapping[str, int]
    """Response services it sent, by code name."""
    malformed_services: int
    """Services it sent that did not decode."""
    latency: LatencySummary
    """How fast it answered (latency of the responses it sent)."""
    first_seen: float
    """Time of its first message."""
    last_seen: float
    """Time of its last message."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CaptureSummary:
    """Everything counted over one capture."""

    frames: int
    """Frames read."""
    c1222_frames: int
    """TCP/UDP frames on a C12.22 port."""
    other_frames: int
    """Frames of anything else (other ports, other protocols)."""
    truncated_frames: int
    """Frames cut short inside a header."""
    conversations: int
    """TCP connections and UDP endpoint pairs carrying C12.22."""
    messages: int
    """APDUs framed (segments included)."""
    kinds: Mapping[str, int]
    """Messages by kind (request, response, segment...)."""
    matched: int
    """Responses matched to a request."""
    unmatched_responses: int
    """Responses whose request is not in the capture."""
    unanswered: int
    """Requests expecting a response that got none."""
    latency: LatencySummary
    """Latency over all matched pairs."""
    response_codes: Mapping[str, int]
    """Every response service, by code name."""
    malformed: Mapping[str, int]
    """Malformed input by cause: framing, apdu, service, security, truncated..."""
    security: Mapping[str, int]
    """Messages by security status."""
    tcp: Mapping[str, int]
    """TCP reassembly counters: retransmitted bytes, out-of-order segments, gaps."""
    services: tuple[ServiceSummary, ...]
    """Per request service, by name."""
    meters: tuple[MeterSummary, ...]
    """Per AP title, by title."""
    first_ts: float | None
    """Time of the first frame."""
    last_ts: float | None
    """Time of the last frame."""


@dataclass
class _ServiceAcc:
    requests: int = 0
    responses: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    unanswered: int = 0
    latency: array[float] = field(default_factory=lambda: array("d"))


@dataclass
class _MeterAcc:
    first_seen: float
    last_seen: float
    addresses: set[str] = field(default_factory=set)
    sent: int = 0
    received: int = 0
    requests_received: int = 0
    responses_sent: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    malformed_services: int = 0
    latency: array[float] = field(default_factory=lambda: array("d"))


class SummaryBuilder:
    """Accumulates counts as records come; ``build()`` makes the summary."""

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        """Frame-level counters (frames, c1222_frames, ...), kept by the analyser."""
        self.malformed: Counter[str] = Counter()
        """Malformed input by cause, kept by the analyser and by :meth:`message`."""
        self.tcp: Counter[str] = Counter()
        """TCP reassembly counters."""
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self._kinds: Counter[str] = Counter()
        self._security: Counter[str] = Counter()
        self._codes: Counter[str] = Counter()
        self._latency: array[float] = array("d")
        self._services: dict[str, _ServiceAcc] = {}
        self._meters: dict[str, _MeterAcc] = {}
        self._matched = 0
        self._unmatched = 0
        self._unanswered = 0

    def frame(self, ts: float) -> None:
        """Count one frame read at ``ts``."""
        self.counters["frames"] += 1
        if self.first_ts is None:
            self.first_ts = ts
        self.last_ts = ts

    def _meter(self, title: str, ts: float) -> _MeterAcc:
        acc = self._meters.get(title)
        if acc is None:
            acc = self._meters[title] = _MeterAcc(first_seen=ts, last_seen=ts)
        acc.last_seen = ts
        return acc

    def message(self, record: MessageRecord) -> None:
        """Count one message (a matched response counts for the request services it answers)."""
        kind = record.kind
        self._kinds[kind] += 1  # keyed by the StrEnum members (equal to their values) until build
        if record.security is not None:
            self._security[record.security] += 1
        sender = None
        message = record.message
        if message is None:
            self.malformed["apdu"] += 1
        else:
            if record.error is not None:
                self.malformed["security"] += 1
            ts, meters, apdu = record.ts, self._meters, message.apdu
            if apdu.calling_ap_title is not None:
                sender = meters.get(str(apdu.calling_ap_title)) or self._meter(
                    str(apdu.calling_ap_title), ts
                )
                sender.last_seen = ts
                sender.sent += 1
                sender.addresses.add(record.orig_h if record.is_orig else record.resp_h)
            acc = meters.get(str(apdu.called_ap_title)) or self._meter(str(apdu.called_ap_title), ts)
            acc.last_seen = ts
            acc.received += 1
            acc.requests_received += kind is MessageKind.REQUEST
        for service in record.services:
            if service.error is not None:
                self.malformed["service"] += 1
                if sender is not None:
                    sender.malformed_services += 1
            if service.is_request:
                self._service_acc(request_name(service)).requests += 1
                continue
            code = _CODE_NAMES[service.raw[0]]
            self._codes[code] += 1
            if sender is not None:
                sender.codes[code] += 1
        if kind is MessageKind.RESPONSE:
            self._response(record, sender)

    def _service_acc(self, name: str) -> _ServiceAcc:
        acc = self._services.get(name)
        if acc is None:
            acc = self._services[name] = _ServiceAcc()
        return acc

    def _response(self, record: MessageRecord, sender: _MeterAcc | None) -> None:
        if record.answers is None:
            self._unmatched += 1
            return
        self._matched += 1
        latency = record.latency if record.latency is not None else 0.0
        self._latency.append(latency)
        if sender is not None:
            sender.responses_sent += 1
            sender.latency.append(latency)
        for service in record.services:
            name = answered_name(service)
            if name is None:
                continue
            acc = self._service_acc(name)
            acc.responses += 1
            acc.codes[_CODE_NAMES[service.raw[0]]] += 1
            acc.latency.append(latency)

    def unanswered(self, request_names: tuple[str, ...]) -> None:
        """Count one request that expected a response and got none."""
        self._unanswered += 1
        for name in request_names:
            self._service_acc(name).unanswered += 1

    def build(self, conversations: int) -> CaptureSummary:
        """The summary so far."""
        services = tuple(
            ServiceSummary(
                name=name, requests=acc.requests, responses=acc.responses,
                response_codes=dict(acc.codes), unanswered=acc.unanswered,
                latency=_latency_summary(acc.latency),
            )
            for name, acc in sorted(self._services.items())
        )  # fmt: skip
        meters = tuple(
            MeterSummary(
                ap_title=title, addresses=tuple(sorted(acc.addresses)), sent=acc.sent,
                received=acc.received, requests_received=acc.requests_received,
                responses_sent=acc.responses_sent, response_codes=dict(acc.codes),
                malformed_services=acc.malformed_services, latency=_latency_summary(acc.latency),
                first_seen=acc.first_seen, last_seen=acc.last_seen,
            )
            for title, acc in sorted(self._meters.items())
        )  # fmt: skip
        return CaptureSummary(
            frames=self.counters["frames"],
            c1222_frames=self.counters["c1222_frames"],
            other_frames=self.counters["other_frames"],
            truncated_frames=self.counters["truncated_frames"],
            conversations=conversations,
            messages=sum(self._kinds.values()),
            kinds={str(kind): n for kind, n in self._kinds.items()},
            matched=self._matched,
            unmatched_responses=self._unmatched,
            unanswered=self._unanswered,
            latency=_latency_summary(self._latency),
            response_codes=dict(self._codes),
            malformed=dict(self.malformed),
            security={str(status): n for status, n in self._security.items()},
            tcp=dict(self.tcp),
            services=services,
            meters=meters,
            first_ts=self.first_ts,
            last_ts=self.last_ts,
        )


def answered_name(service: ServiceRecord) -> str | None:
    """For a response service: the name of the request service it answers (None if unknown)."""
    if service.request is not None:
        return _request_type_name(type(service.request), service.request)
    if service.request_code is None:
        return None
    return _code_request_name(service.request_code)


def request_name(service: ServiceRecord) -> str:
    """Summary name of a request service (psem's short name, or the code for unknown ones)."""
    if isinstance(service.decoded, psem.Request):
        return _request_type_name(type(service.decoded), service.decoded)
    return _code_request_name(service.raw[0])


# A request's name depends on its type only (psem.service_name), an undecoded one's on its code.
_TYPE_NAMES: dict[type, str] = {}


def _request_type_name(cls: type, request: psem.Request) -> str:
    name = _TYPE_NAMES.get(cls)
    if name is None:
        name = _TYPE_NAMES[cls] = psem.service_name(request)
    return name


def _code_request_name(code: int) -> str:
    return psem.REQUEST_NAMES.get(code) or f"code {code:#04x}"
