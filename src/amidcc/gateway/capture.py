"""The gateway's own capture: every C12.22 APDU it sends or receives, written to a pcap file.

Theory of operation. :class:`PcapCapture` is a frame tap
(:data:`~amidcc.gateway.links.c1222.FrameTap`) on the C12.22 links. Each channel is one
conversation in the file, framed by :class:`~amidcc.pcap.writer.CaptureWriter` so that Wireshark's
C12.22 dissector (and ``amidcc pcap analyze``) reads it:

* a TCP connection keeps its real addresses and ports, one synthetic TCP flow per connection
  (handshake when first seen, with the meter as the client; FIN when it closes);
* a UDP peer's datagrams are UDP datagrams between its real address and the listener's;
* an MQTT cell (RF mesh) has no address: its payloads are written as TCP on port 1153 between the
  head-end (``head_end_host``) and a stable synthetic address per cell
  (:func:`~amidcc.pcap.writer.synthetic_address`), one flow per broker session.

Disk writes never reach the link. Records are collected in memory and written in one
``write`` when ``buffer_size`` bytes are pending, on :meth:`PcapCapture.flush` (the service flushes
every ``flush_interval``) and on close; nothing calls fsync. When a write fails (disk full, I/O
error) the file is cut back to its last complete record and closed, the failure is counted and
logged, the pending records are dropped (counted), and a new file is tried after ``retry_after``
seconds. The file rotates at ``max_size``: ``file.pcap`` becomes ``file.pcap.1`` (older ones shift,
``keep`` rotated files are kept) and a new ``file.pcap`` starts, its flows opened anew, so every
file stands alone. An existing file at start is rotated away, never overwritten.

:class:`CaptureService` attaches the capture (and the :class:`~amidcc.gateway.tracing.FrameTracer`)
to the links when it starts and detaches, flushes and closes on stop; :func:`attach_capture` adds
it to a :class:`~amidcc.gateway.tap.GatewayService`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from prometheus_client import Counter
from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from amidcc.pcap.writer import C1222_PORT, CaptureWriter, Endpoint, synthetic_address

from .config import Config
from .links.c1222 import C1222Link
from .metrics import GatewayMetrics
from .tracing import FrameTracer

__all__ = [
    "CaptureMetrics",
    "CaptureService",
    "CaptureStats",
    "Flow",
    "PcapCapture",
    "attach_capture",
    "flow_of",
    "gateway_links",
]

log = Logger(namespace="amidcc.gateway.capture")

#: Where the head-end sits in flows that have no real address (MQTT cells).
DEFAULT_HEAD_END_HOST = synthetic_address("amidcc head-end")
#: Per-record overhead over the payload: pcap record header, Ethernet, IPv6, TCP (for rotation).
_RECORD_OVERHEAD = 16 + 14 + 40 + 20
#: A new TCP flow costs its three handshake records.
_HANDSHAKE = 3 * _RECORD_OVERHEAD


@dataclass(frozen=True, kw_only=True, slots=True)
class Flow:
    """Where one channel's APDUs appear in the capture."""

    proto: str
    """``tcp`` or ``udp``."""
    meter: Endpoint
    """The far side: the meter, collector or RF cell (the TCP client)."""
    head_end: Endpoint
    """The gateway's side."""


@dataclass(slots=True)
class CaptureStats:
    """What the capture has done (also exported as ``amidcc_capture_*`` metrics)."""

    apdus: int = 0
    """APDUs written to disk."""
    dropped: int = 0
    """APDUs not written (a write failed, or no file while waiting to retry)."""
    write_errors: int = 0
    """Failed writes or opens."""
    rotations: int = 0
    """Files rotated."""
    files: list[Path] = field(default_factory=list)
    """Every file started, in order (paths as named when started)."""


class CaptureMetrics:
    """The capture's metric families, defined once per :class:`GatewayMetrics` registry."""

    _made: weakref.WeakKeyDictionary[GatewayMetrics, CaptureMetrics] = weakref.WeakKeyDictionary()

    def __init__(self, metrics: GatewayMetrics) -> None:
        reg = metrics.registry
        self.apdus = Counter(
            "amidcc_capture_apdus", "C12.22 APDUs written to the capture.", registry=reg
        )
        self.dropped = Counter(
            "amidcc_capture_dropped", "C12.22 APDUs the capture could not write.", registry=reg
        )
        self.write_errors = Counter(
            "amidcc_capture_write_errors", "Failed writes to the capture file.", registry=reg
        )
        self.rotations = Counter(
            "amidcc_capture_rotations", "Capture files rotated at max_size.", registry=reg
        )

    @classmethod
    def of(cls, metrics: GatewayMetrics) -> CaptureMetrics:
        """The capture metrics of ``metrics`` (made on first use)."""
        made = cls._made.get(metrics)
        if made is None:
            made = cls._made[metrics] = cls(metrics)
        return made


# -- channels to flows --------------------------------------------------------------------------


def _endpoint(address: Any, fallback: str) -> Endpoint:
    host = getattr(address, "host", None) or fallback
    port = getattr(address, "port", None)
    return Endpoint(host=str(host), port=int(port) if isinstance(port, int) else C1222_PORT)


def _usable(host: str, like: str | None = None) -> bool:
    """A real, specified address (of the same family as ``like`` when given)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if ip.is_unspecified:
        return False
    return like is None or ip.version == ipaddress.ip_address(like).version


def _ephemeral(label: str) -> int:
    """A stable port in 49152-65535 for a label."""
    return 49152 + int.from_bytes(hashlib.sha256(label.encode()).digest()[:2], "big") % 16384


def _pair(meter: Endpoint, head_end: Endpoint) -> tuple[Endpoint, Endpoint]:
    """Replace unusable or mismatched addresses with synthetic ones of a common family."""
    if not _usable(meter.host):
        meter = replace(meter, host=synthetic_address(f"peer {meter.host}:{meter.port}"))
    if not _usable(head_end.host, meter.host):
        v6 = ipaddress.ip_address(meter.host).version == 6
        head_end = replace(head_end, host=synthetic_address("amidcc head-end", ipv6=v6))
    return meter, head_end


def flow_of(channel: Any, *, head_end_host: str = DEFAULT_HEAD_END_HOST, session: int = 0) -> Flow:
    """The flow of a channel: a TCP connection, a UDP peer, or an MQTT cell (``session`` counts
    the cell's broker sessions, so each gets a port of its own)."""
    cell = getattr(channel, "cell", None)
    if isinstance(cell, str):
        meter = Endpoint(
            host=synthetic_address(f"cell {cell}"), port=_ephemeral(f"{cell}#{session}")
        )
        return Flow(proto="tcp", meter=meter, head_end=Endpoint(host=head_end_host))
    address = getattr(channel, "address", None)
    if isinstance(address, tuple):  # a UDP peer: (host, port), and its listener's transport
        transport = getattr(getattr(channel, "owner", None), "transport", None)
        local = transport.getHost() if transport is not None else None
        meter = Endpoint(host=str(address[0]), port=int(address[1]))
        return Flow(proto="udp", **_flow_pair(meter, _endpoint(local, head_end_host)))
    transport = getattr(channel, "transport", None)
    if transport is not None:
        meter = _endpoint(transport.getPeer(), "")
        return Flow(proto="tcp", **_flow_pair(meter, _endpoint(transport.getHost(), head_end_host)))
    peer = str(getattr(channel, "peer", repr(channel)))
    meter = Endpoint(host=synthetic_address(peer), port=_ephemeral(peer))
    return Flow(proto="tcp", meter=meter, head_end=Endpoint(host=head_end_host))


def _flow_pair(meter: Endpoint, head_end: Endpoint) -> dict[str, Endpoint]:
    meter, head_end = _pair(meter, head_end)
    return {"meter": meter, "head_end": head_end}


# -- the capture --------------------------------------------------------------------------------


class _Spool:
    """The writer's stream: records collect here until the capture writes them to disk."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.apdus = 0  # APDUs whose records are in ``data``

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def flush(self) -> None:
        """Nothing: :class:`PcapCapture` decides when bytes reach the disk."""

    def take(self) -> tuple[bytes, int]:
        data, apdus = bytes(self.data), self.apdus
        self.data.clear()
        self.apdus = 0
        return data, apdus


def _open_file(path: Path) -> BinaryIO:
    return open(path, "wb", buffering=0)  # noqa: SIM115 - closed by PcapCapture


class PcapCapture:
    """Writes the links' APDUs to ``path`` (see the module docstring). Time is an input."""

    def __init__(
        self,
        path: Path,
        *,
        max_size: int = 100 << 20,
        keep: int = 9,
        mss: int = 1460,
        buffer_size: int = 64 << 10,
        retry_after: float = 30.0,
        head_end_host: str = DEFAULT_HEAD_END_HOST,
        metrics: CaptureMetrics | None = None,
        opener: Callable[[Path], BinaryIO] = _open_file,
    ) -> None:
        if max_size < 4096:
            raise ValueError(f"max_size {max_size} is too small for a capture file")
        self.path = path
        self.max_size = max_size
        self.keep = keep
        self.mss = mss
        self.buffer_size = buffer_size
        self.retry_after = retry_after
        self.head_end_host = head_end_host
        self.stats = CaptureStats()
        """Counters (APDUs, drops, errors, rotations) and the files started."""
        self._metrics = metrics
        self._opener = opener
        self._file: BinaryIO | None = None
        self._writer: CaptureWriter | None = None
        self._spool = _Spool()
        self._good = 0  # bytes of the file known to be on disk, whole records only
        self._retry_at: float | None = None
        self._flows: dict[Any, Flow] = {}  # channel -> its flow (while the channel is open)
        self._started: set[Any] = set()  # channels whose TCP flow is open in this file
        self._sessions: dict[str, int] = {}  # MQTT cell -> channels seen (one per session)

    @property
    def open(self) -> bool:
        """Whether a file is being written now."""
        return self._writer is not None

    def start(self, now: float) -> None:
        """Start the first file (an existing one is rotated away first)."""
        self._new_file(now)

    # -- the tap ------------------------------------------------------------------------------

    def __call__(
        self, direction: str, channel: Any, ap_title: str | None, apdu: bytes, now: float
    ) -> None:
        """The frame tap: one APDU sent (``tx``) or received (``rx``), or a channel ``closed``."""
        if direction == "closed":
            self._closed(channel, now)
            return
        writer = self._ready(len(apdu), channel, now)
        if writer is None:
            self._drop(1)
            return
        flow = self._flow(channel)
        src, dst = (flow.meter, flow.head_end) if direction == "rx" else (flow.head_end, flow.meter)
        if flow.proto == "udp":
            writer.udp_payload(src, dst, apdu, now)
        else:
            if channel not in self._started:
                writer.tcp_payload(flow.meter, flow.head_end, b"", now)  # the meter connected
                self._started.add(channel)
            writer.tcp_payload(src, dst, apdu, now)
        self._spool.apdus += 1
        if len(self._spool.data) >= self.buffer_size:
            self.flush(now)

    def _flow(self, channel: Any) -> Flow:
        flow = self._flows.get(channel)
        if flow is None:
            cell = getattr(channel, "cell", None)
            session = 0
            if isinstance(cell, str):
                session = self._sessions[cell] = self._sessions.get(cell, -1) + 1
            flow = flow_of(channel, head_end_host=self.head_end_host, session=session)
            self._flows[channel] = flow
        return flow

    def _closed(self, channel: Any, now: float) -> None:
        flow = self._flows.pop(channel, None)
        if channel in self._started and flow is not None and self._writer is not None:
            self._writer.tcp_close(flow.meter, flow.head_end, now)
        self._started.discard(channel)

    def _ready(self, size: int, channel: Any, now: float) -> CaptureWriter | None:
        """The writer for the next APDU: rotated first when it would pass max_size; None while
        waiting to retry after a failure."""
        writer = self._writer
        if writer is None:
            if self._retry_at is None or now < self._retry_at:
                return None
            return self._new_file(now)
        cost = size + _RECORD_OVERHEAD * (size // writer.mss + 1)
        if channel not in self._started:
            cost += _HANDSHAKE
        if writer.frames_written and writer.bytes_written + cost > self.max_size:
            self.stats.rotations += 1
            if self._metrics is not None:
                self._metrics.rotations.inc()
            self._finish(now)
            return None if self._retry_at is not None else self._new_file(now)
        return writer

    # -- files --------------------------------------------------------------------------------

    def _rotated(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def _rotate(self) -> None:
        """file.pcap -> file.pcap.1 -> ... -> file.pcap.<keep>; the oldest is removed."""
        if not self.path.exists():
            return
        if self.keep < 1:
            self.path.unlink()
            return
        self._rotated(self.keep).unlink(missing_ok=True)
        for n in range(self.keep - 1, 0, -1):
            if self._rotated(n).exists():
                self._rotated(n).rename(self._rotated(n + 1))
        self.path.rename(self._rotated(1))

    def _new_file(self, now: float) -> CaptureWriter | None:
        self._retry_at = None
        self._started.clear()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._rotate()
            self._file = self._opener(self.path)
        except OSError as exc:
            self._failed(exc, now, "cannot start")
            return None
        self._good = 0
        self._writer = CaptureWriter(self._spool, mss=self.mss)  # type: ignore[arg-type]
        self.stats.files.append(self.path)
        log.info("capture: writing {path}", path=str(self.path))
        self.flush(now)  # the file header, so even an idle capture is a valid pcap
        return self._writer

    def flush(self, now: float) -> None:
        """Write the pending records to the file (one write; no fsync)."""
        if self._file is None or not self._spool.data:
            return
        data, apdus = self._spool.take()
        try:
            view = memoryview(data)
            while view:
                written = self._file.write(view)
                if not written:
                    raise OSError("short write")
                view = view[written:]
        except OSError as exc:
            self._drop(apdus)
            self._failed(exc, now, "write failed")
            return
        self._good += len(data)
        self.stats.apdus += apdus
        if self._metrics is not None:
            self._metrics.apdus.inc(apdus)

    def _failed(self, exc: OSError, now: float, what: str) -> None:
        """Count, log, cut the file back to whole records, close it, and retry later."""
        self.stats.write_errors += 1
        if self._metrics is not None:
            self._metrics.write_errors.inc()
        log.warn(
            "capture: {what} on {path}: {error}; APDUs are dropped until a new file is tried "
            "in {retry}s",
            what=what, path=str(self.path), error=str(exc), retry=self.retry_after,
        )  # fmt: skip
        if self._file is not None:
            try:
                os.ftruncate(self._file.fileno(), self._good)
            except (OSError, ValueError, AttributeError):
                pass  # a stream without a descriptor (tests) or a file already gone
            self._close_file()
        self._writer = None
        self._drop(self._spool.take()[1])
        self._retry_at = now + self.retry_after

    def _drop(self, apdus: int) -> None:
        self.stats.dropped += apdus
        if self._metrics is not None:
            self._metrics.dropped.inc(apdus)

    def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                log.warn("capture: closing {path}: {error}", path=str(self.path), error=str(exc))

    def _finish(self, now: float) -> None:
        """End the current file: flush what is pending and close it."""
        self.flush(now)
        self._close_file()
        self._writer = None

    def close(self, now: float) -> None:
        """Flush and close (open TCP flows are left as they are: the capture just ends)."""
        self._finish(now)
        self._retry_at = None
        self._flows.clear()
        self._started.clear()


# -- the service --------------------------------------------------------------------------------


def gateway_links(stores: Iterable[object]) -> list[C1222Link]:
    """Every C12.22 link among ``stores``: a link itself, a listener's ``tcp``/``udp`` links, or
    an MQTT link's ``c1222``."""
    found: list[C1222Link] = []
    for value in stores:
        for candidate in (value, *(getattr(value, a, None) for a in ("tcp", "udp", "c1222"))):
            if isinstance(candidate, C1222Link) and candidate not in found:
                found.append(candidate)
    return found


class CaptureService(Service):
    """Attaches the capture and the tracer to the links on start; detaches, flushes, closes on
    stop. ``links()`` is called at start (the gateway's links exist only once it runs)."""

    def __init__(
        self,
        reactor: Any,
        links: Callable[[], Iterable[C1222Link]],
        *,
        capture: PcapCapture | None = None,
        tracer: FrameTracer | None = None,
        flush_interval: float = 1.0,
    ) -> None:
        self.reactor = reactor
        self.capture = capture
        """The pcap writer, or None when ``[capture] pcap`` is not set."""
        self.tracer = tracer
        """The frame tracer, or None."""
        self._links = links
        self._attached: list[tuple[C1222Link, Any]] = []
        self._saved: dict[C1222Link, Any] = {}
        self._flusher = LoopingCall(self._flush)
        self._flusher.clock = reactor
        self._flush_interval = flush_interval

    def startService(self) -> None:  # noqa: N802
        super().startService()  # type: ignore[no-untyped-call]
        now = self.reactor.seconds()
        if self.capture is not None:
            self.capture.start(now)
        for link in self._links():
            self._attach(link)
        if self.capture is not None:
            self._flusher.start(self._flush_interval, now=False)

    def _attach(self, link: C1222Link) -> None:
        for tap in (self.tracer, self.capture):
            if tap is not None:
                link.taps.append(tap)
                self._attached.append((link, tap))
        if self.tracer is not None and link not in self._saved:
            # the tracer replaces the link's own trace lines (no line twice)
            self._saved[link] = link.settings
            link.settings = replace(link.settings, trace_frames=False, trace_titles=frozenset())

    def stopService(self) -> None:  # noqa: N802
        super().stopService()  # type: ignore[no-untyped-call]
        for link, tap in self._attached:
            if tap in link.taps:
                link.taps.remove(tap)
        self._attached.clear()
        for link, settings in self._saved.items():
            link.settings = settings
        self._saved.clear()
        if self._flusher.running:
            self._flusher.stop()
        if self.capture is not None:
            self.capture.close(self.reactor.seconds())

    def _flush(self) -> None:
        if self.capture is not None:
            self.capture.flush(self.reactor.seconds())


def attach_capture(gateway: Any, config: Config | None = None) -> CaptureService:
    """Add capture and tracing to a :class:`~amidcc.gateway.tap.GatewayService`, under ``links``.

    Call it while building the gateway: the service then starts once the stores have wired the
    links (it finds them in ``gateway.stores`` at start) and stops after the listeners added at
    start, so it records their channels closing.

    ``[capture] pcap`` (relative to ``gateway.state_dir``) and ``max_size`` set the file;
    ``[logging] trace_meters`` the traced meters. The service is ``stores["capture"]`` and its
    tracer ``stores["tracer"]`` (:func:`~amidcc.gateway.tracing.set_trace_meters` switches it).
    """
    config = config if config is not None else gateway.config
    stores: dict[str, object] = gateway.stores

    def meter_of(ap_title: str) -> str | None:
        registry: Any = stores.get("registry")
        record = registry.by_ap_title(ap_title) if registry is not None else None
        return record.meter_id if record is not None else None

    capture = None
    if config.capture.pcap is not None:
        capture = PcapCapture(
            config.resolve(config.capture.pcap),
            max_size=config.capture.max_size,
            metrics=CaptureMetrics.of(gateway.metrics),
        )
    tracer = FrameTracer(config.logging.trace_meters, meter_of=meter_of)
    service = CaptureService(
        gateway.reactor, lambda: gateway_links(stores.values()), capture=capture, tracer=tracer
    )
    service.setName("capture")  # type: ignore[no-untyped-call]
    service.setServiceParent(gateway.links)  # type: ignore[no-untyped-call]
    stores.update(capture=service, tracer=tracer)
    return service
