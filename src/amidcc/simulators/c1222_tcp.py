"""Simulated meters and collectors on C12.22 over TCP: they connect to the head-end and register,
answer its requests and push their alarms.

Two layers, as everywhere in amidcc:

* :class:`C1222Node` is sans-I/O: the meters behind one transport endpoint (a lone meter, or a
  collector carrying many over one connection). APDUs in, :class:`Outgoing` APDUs out (each with
  the delay to send it after); time is an argument. It registers every meter (Register ``27``:
  end-device node type, the ED class, the AP title, and the serial as electronic serial number:
  a relative universal id whose arcs are the serial's ASCII codes, which the gateway reads back);
  a collector first registers itself as a relay. A request is routed by its called AP title,
  verified and decrypted with that meter's key, answered by :meth:`SimMeter.handle_services`, and
  the reply echoes the request's A8 in A4 with the titles swapped, in the request's security mode.
  Alarms from :meth:`SimMeter.tick` go out unsolicited: the meter's alarm EPSEM
  (:mod:`~amidcc.simulators.alarms`: ED class, response control "never respond") in an APDU whose
  calling AE qualifier has the NOTIFICATION and URGENT bits, secured like every other message.
* :class:`SimC1222Service` runs nodes on a reactor: one :class:`ClientService` (reconnect with
  backoff, e.g. after the head-end's connection cap refused it) per node, and a timer that ticks
  the meters and pushes their alarms.

Link faults (:class:`~amidcc.simulators.faults.LinkFaults` on each meter) are honoured here:
``silent`` / ``relay_down`` / ``collector_down`` answer nothing (and do not register);
``packet_loss`` drops each request and each reply with that probability; ``latency`` delays the
reply; ``garbage`` replaces the reply with random bytes. The garbage never contains ``60`` (the
APDU tag), so the head-end's framer resynchronises at the next real APDU: a burst of line noise
that happens to contain ``60 <length>`` would swallow more, which the gateway's own tests cover.
An alarm a faulty link cannot carry is logged by the meter as a failed push (FR8).

Trace (``26``), a relay service, is answered here rather than by the meter: the collector's AP
title (if any) followed by the meter's own [L]: the relays traversed, then the destination.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.application.internet import ClientService, TimerService, backoffPolicy
from twisted.application.service import MultiService
from twisted.internet.endpoints import clientFromString
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from amidcc.codecs.ber import DEFAULT_BASE_OID
from amidcc.codecs.c1222 import (
    NEED_MORE,
    AeQualifier,
    Apdu,
    ApduBuffer,
    ApTitle,
    C1222Message,
    SecurityMode,
    UserInformation,
    build_message,
    decode_message,
    encode_apdu,
    iv_from_time,
    protect,
    reply_to,
)
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.errors import CodecError
from amidcc.codecs.psem import (
    ConnectionType,
    NodeType,
    NokResponse,
    Register,
    Trace,
    TraceResponse,
    UniversalId,
    decode_request,
    encode_request,
    encode_response,
)

from .diagnostics import Alarm
from .meter import SimMeter

__all__ = [
    "C1222Node",
    "NodeSettings",
    "Outgoing",
    "SimC1222Protocol",
    "SimC1222Service",
    "deliver",
    "esn_for",
    "plan_nodes",
]

log = Logger(namespace="amidcc.simulators.c1222")

_NOTIFY = AeQualifier.NOTIFICATION | AeQualifier.URGENT
_TRACE = 0x26
_MAX_ID = 0x7FFFFFFF
#: Room kept in a reply APDU for ACSE, EPSEM and MAC around the service responses.
_REPLY_OVERHEAD = 128


@dataclass(frozen=True, kw_only=True, slots=True)
class NodeSettings:
    """How a node talks to the head-end (shared by every node of a fleet)."""

    gateway_title: ApTitle = field(default_factory=lambda: ApTitle.parse(".2.1"))
    """The head-end's AP title: called title of registrations and alarms."""
    base_oid: tuple[int, ...] = DEFAULT_BASE_OID
    """Base of relative AP titles."""
    security_mode: SecurityMode = SecurityMode.CLEARTEXT
    """Security mode of registrations and alarms (replies use the request's mode)."""
    collector_key: bytes | None = None
    """Key of collectors' own messages (their registration) in modes 1 and 2."""
    reg_period: int = 3600
    """Registration period asked for (seconds)."""
    max_apdu_size: int = 32767
    """Largest APDU accepted."""
    connection_type: int = int(ConnectionType.CONNECTION_MODE | ConnectionType.ACCEPT_CONNECTIONS)
    """Register connection_type bits (TCP: connection mode)."""
    garbage_size: int = 24
    """Bytes of garbage sent in place of a reply under the ``garbage`` link fault."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One APDU to send."""

    delay: float
    """Seconds to wait before sending (the ``latency`` link fault)."""
    data: bytes
    """The APDU (or garbage) bytes."""


def deliver(
    outgoing: Iterable[Outgoing], write: Callable[[bytes], object], call_later: Callable[..., object]
) -> None:
    """Hand each APDU to ``write`` now, or after its delay (the latency fault) via ``call_later``."""
    for out in outgoing:
        if out.delay > 0:
            call_later(out.delay, write, out.data)
        else:
            write(out.data)


def esn_for(serial: str) -> UniversalId:
    """amidcc's electronic serial number convention: the serial's ASCII codes as relative arcs."""
    return UniversalId(arcs=tuple(serial.encode("ascii")), relative=True)


def _title(meter: SimMeter) -> ApTitle:
    ident = meter.identity
    return ApTitle(arcs=ident.ap_title, relative=ident.ap_title_relative)


class C1222Node:
    """The meters behind one endpoint, sans-I/O. ``collector`` set: a collector carrying them."""

    def __init__(
        self,
        meters: Sequence[SimMeter],
        settings: NodeSettings | None = None,
        *,
        collector: ApTitle | None = None,
        seed: int = 0,
    ) -> None:
        if not meters:
            raise ValueError("a node carries at least one meter")
        if collector is None and len(meters) > 1:
            raise ValueError("several meters on one endpoint need a collector title")
        self.meters = list(meters)
        self.settings = settings if settings is not None else NodeSettings()
        self.collector = collector
        self.by_title: dict[str, SimMeter] = {str(_title(m)): m for m in self.meters}
        self.registered: set[str] = set()
        """AP titles whose Register the head-end accepted."""
        self.refused: dict[str, int] = {}
        """AP titles whose Register the head-end refused, with the response code."""
        self._rng = random.Random(seed)
        self._next_id = 1
        self._last_iv: dict[str, int] = {}
        self._pending_register: dict[int, str] = {}

    @property
    def name(self) -> str:
        """The collector's title, or the lone meter's."""
        return str(self.collector) if self.collector is not None else str(_title(self.meters[0]))

    # -- building messages -----------------------------------------------------------------------

    def _new_id(self) -> int:
        tag = self._next_id
        self._next_id = 1 if tag >= _MAX_ID else tag + 1
        return tag

    def _iv(self, title: str, now: float) -> bytes:
        last = self._last_iv.get(title)
        value = int(now) & 0xFFFFFFFF
        if last is not None and value <= last:
            value = (last + 1) & 0xFFFFFFFF
        self._last_iv[title] = value
        return iv_from_time(value)

    def _key(self, title: str) -> tuple[int, bytes] | None:
        meter = self.by_title.get(title)
        if meter is not None:
            return meter.config.key_id, meter.key
        if self.settings.collector_key is not None:
            return 0, self.settings.collector_key
        return None

    def _secure(self, apdu: Apdu, title: str, mode: SecurityMode, now: float) -> Apdu:
        if mode is SecurityMode.CLEARTEXT:
            return apdu
        key = self._key(title)
        if key is None:
            raise CodecError(f"{title}: security mode {mode.name} without a key")
        return protect(apdu, key[0], key[1], self._iv(title, now), mode, base_oid=self.settings.base_oid)

    def _register_apdu(self, title: ApTitle, request: Register, now: float) -> bytes:
        text = str(title)
        for old in [t for t, v in self._pending_register.items() if v == text]:
            del self._pending_register[old]  # an earlier attempt nobody answered
        tag = self._new_id()
        self._pending_register[tag] = text
        apdu = build_message(
            called=self.settings.gateway_title,
            calling=title,
            invocation_id=tag,
            services=[encode_request(request)],
            base_oid=self.settings.base_oid,
        )
        return encode_apdu(self._secure(apdu, str(title), self.settings.security_mode, now))

    def registrations(self, now: float, *, skip: Iterable[str] = ()) -> list[bytes]:
        """The Register APDUs to send on (re)connecting: the collector's first, then each meter's
        (titles in ``skip`` left out, e.g. those already accepted)."""
        s = self.settings
        done = set(skip)
        out: list[bytes] = []
        if self.collector is not None and str(self.collector) not in done:
            request = Register(
                node_type=int(NodeType.RELAY),
                connection_type=s.connection_type,
                device_class=b"AMDC",
                ap_title=UniversalId(arcs=self.collector.arcs, relative=self.collector.relative),
                electronic_serial_number=esn_for(f"C{self.collector.arcs[-1]}"),
                native_address=b"",
                registration_period=s.reg_period,
            )
            out.append(self._register_apdu(self.collector, request, now))
        for meter in self.meters:
            title = _title(meter)
            if _unreachable(meter) or str(title) in done:
                continue
            request = Register(
                node_type=int(NodeType.END_DEVICE),
                connection_type=s.connection_type,
                device_class=meter.identity.ed_class,
                ap_title=UniversalId(arcs=title.arcs, relative=title.relative),
                electronic_serial_number=esn_for(meter.meter_id),
                native_address=b"",
                registration_period=s.reg_period,
            )
            out.append(self._register_apdu(title, request, now))
        return out

    # -- receiving ---------------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Outgoing]:
        """One APDU from the head-end; the replies to send."""
        try:
            plain = decode_message(data)  # titles and A4 only; security is checked per meter
        except CodecError as exc:
            log.info("sim {node}: undecodable APDU from the head-end: {error}", node=self.name, error=str(exc))
            return []
        apdu = plain.apdu
        if apdu.called_ap_invocation_id is not None:
            self._response(data, apdu.called_ap_invocation_id)
            return []
        title = str(apdu.called_ap_title)
        meter = self.by_title.get(title)
        if meter is None:
            return [Outgoing(0.0, encode_apdu(reply_to(apdu, [bytes((ResponseCode.UAT,))])))]
        faults = meter.link_faults
        if _unreachable(meter) or self._lost(faults.packet_loss):
            return []
        return self._answer(meter, data, plain, now)

    def _response(self, data: bytes, tag: int) -> None:
        title = self._pending_register.pop(tag, None)
        if title is None:
            return  # e.g. the head-end's acknowledgement of an alarm
        key = self._key(title)
        try:
            message = decode_message(data, {key[0]: key[1]} if key else None, self.settings.base_oid)
        except CodecError as exc:
            log.info("sim {node}: bad Register response: {error}", node=self.name, error=str(exc))
            return
        if message.epsem is None:
            return
        code = message.epsem.services[0][0]
        if code == ResponseCode.OK:
            self.registered.add(title)
            self.refused.pop(title, None)
        else:
            self.refused[title] = code

    def _answer(self, meter: SimMeter, data: bytes, plain: C1222Message, now: float) -> list[Outgoing]:
        """Answer a request; ``plain`` is ``data`` decoded without keys (read as is in cleartext,
        where verifying with the meter's key would decode the same message again)."""
        message = plain
        if plain.security_mode is not SecurityMode.CLEARTEXT:
            try:
                message = decode_message(data, {meter.config.key_id: meter.key}, self.settings.base_oid)
            except CodecError as exc:
                code = getattr(exc, "response_code", ResponseCode.ERR)
                return [Outgoing(0.0, encode_apdu(reply_to(plain.apdu, [bytes((int(code),))])))]
        assert message.epsem is not None
        services = list(message.epsem.services)
        responses = self._serve(meter, services, now)
        if not responses:
            return []  # no power: no answer at all
        mode = message.security_mode or SecurityMode.CLEARTEXT
        secured: dict[str, object] = {}
        if mode is not SecurityMode.CLEARTEXT:
            iv = self._iv(str(_title(meter)), now)
            secured = {"key_id": meter.config.key_id, "key": meter.key, "iv": iv}
        reply = encode_apdu(
            reply_to(
                message.apdu, self._fit(responses), security_mode=mode,
                base_oid=self.settings.base_oid, **secured,  # type: ignore[arg-type]
            )
        )  # fmt: skip
        faults = meter.link_faults
        if self._lost(faults.packet_loss):
            return []
        if faults.garbage and self._rng.random() < faults.garbage:
            reply = self._garbage()
        return [Outgoing(faults.latency, reply)]

    def _fit(self, responses: list[bytes]) -> list[bytes]:
        """Responses too large for one APDU become ``RSTL`` with the maximum size (C12.22)."""
        limit = self.settings.max_apdu_size
        budget = limit - _REPLY_OVERHEAD
        if sum(len(r) + 4 for r in responses) <= budget:
            return responses
        too_large = encode_response(NokResponse(code=ResponseCode.RSTL, max_size=limit))
        return [too_large if len(r) > budget // max(1, len(responses)) else r for r in responses]

    def _serve(self, meter: SimMeter, services: list[bytes], now: float) -> list[bytes]:
        """The meter answers its services; Trace is answered by the link (see the module doc)."""
        traces = [i for i, s in enumerate(services) if s[:1] == bytes((_TRACE,))]
        if not traces:
            return meter.handle_services(services, now)
        others = [s for i, s in enumerate(services) if i not in traces]
        answered = iter(meter.handle_services(others, now) if others else [])
        if not meter.powered(now):
            return []
        return [self._trace(meter, s) if i in traces else next(answered) for i, s in enumerate(services)]

    def _trace(self, meter: SimMeter, service: bytes) -> bytes:
        try:
            request = decode_request(service)
        except CodecError:
            return bytes((ResponseCode.ERR,))
        assert isinstance(request, Trace)
        me = _title(meter)
        if request.ap_title != UniversalId(arcs=me.arcs, relative=me.relative):
            return bytes((ResponseCode.UAT,))
        hops = [] if self.collector is None else [UniversalId(arcs=self.collector.arcs, relative=self.collector.relative)]
        hops.append(request.ap_title)
        return encode_response(TraceResponse(ap_titles=tuple(hops)))

    def _lost(self, probability: float) -> bool:
        return probability > 0.0 and self._rng.random() < probability

    def _garbage(self) -> bytes:
        return bytes(b if b != 0x60 else 0x61 for b in self._rng.randbytes(self.settings.garbage_size))

    # -- pushing -----------------------------------------------------------------------------------

    def tick(self, now: float) -> list[Outgoing]:
        """Advance every meter to ``now``; the alarm APDUs to push."""
        out: list[Outgoing] = []
        for meter in self.meters:
            for alarm in meter.tick(now):
                pushed = self.push(meter, alarm, now)
                if pushed is not None:
                    out.append(pushed)
        return out

    def push(self, meter: SimMeter, alarm: Alarm, now: float) -> Outgoing | None:
        """The APDU carrying ``alarm``, or None when the link cannot carry it (the meter logs it)."""
        faults = meter.link_faults
        if _unreachable(meter) or self._lost(faults.packet_loss):
            meter.note_push_failed(alarm, now)
            return None
        title = _title(meter)
        apdu = Apdu(
            called_ap_title=self.settings.gateway_title,
            calling_ap_title=title,
            calling_ae_qualifier=_NOTIFY,
            calling_ap_invocation_id=self._new_id(),
            user_information=UserInformation(epsem=alarm.body),
        )
        secured = self._secure(apdu, str(title), self.settings.security_mode, now)
        return Outgoing(faults.latency, encode_apdu(secured))


def _unreachable(meter: SimMeter) -> bool:
    f = meter.link_faults
    return f.silent or f.relay_down or f.collector_down


def plan_nodes(
    meters: Sequence[SimMeter],
    settings: NodeSettings | None = None,
    *,
    collectors: int = 0,
    per_collector: int = 10,
    collector_base: tuple[int, ...] = (2, 9),
    seed: int = 0,
) -> list[C1222Node]:
    """Nodes for a fleet: the first ``collectors * per_collector`` meters behind collectors
    (titles ``collector_base + (n,)``), every other meter on its own connection."""
    nodes: list[C1222Node] = []
    rest = list(meters)
    for n in range(collectors):
        batch, rest = rest[:per_collector], rest[per_collector:]
        if batch:
            title = ApTitle(arcs=(*collector_base, n + 1), relative=True)
            nodes.append(C1222Node(batch, settings, collector=title, seed=seed + len(nodes)))
    nodes.extend(C1222Node([m], settings, seed=seed + len(nodes) + i) for i, m in enumerate(rest))
    return nodes


# -- Twisted ---------------------------------------------------------------------------------------


class SimC1222Protocol(Protocol):
    """A node's TCP connection to the head-end."""

    def __init__(self, node: C1222Node, clock: Callable[[], float], call_later: Callable[..., object]) -> None:
        self.node = node
        self.clock = clock
        self.call_later = call_later
        self.buffer = ApduBuffer(node.settings.max_apdu_size)
        self.connected_ = False

    def connectionMade(self) -> None:
        self.connected_ = True
        for apdu in self.node.registrations(self.clock()):
            self._write(apdu)

    def dataReceived(self, data: bytes) -> None:
        self.buffer.receive_data(data)
        while True:
            try:
                apdu = self.buffer.next_apdu()
            except CodecError as exc:
                log.info("sim {node}: {error}", node=self.node.name, error=str(exc))
                continue
            if apdu is NEED_MORE:
                return
            assert isinstance(apdu, bytes)
            self.send(self.node.receive(apdu, self.clock()))

    def send(self, outgoing: Iterable[Outgoing]) -> None:
        """Write now, or after the latency fault's delay."""
        deliver(outgoing, self._write, self.call_later)

    def _write(self, data: bytes) -> None:
        transport: Any = self.transport
        if self.connected_ and transport is not None:
            transport.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected_ = False


class _NodeFactory(Factory):
    def __init__(self, node: C1222Node, reactor: Any, owner: SimC1222Service) -> None:
        self.node = node
        self.reactor = reactor
        self.owner = owner

    def buildProtocol(self, addr: object) -> SimC1222Protocol:  # type: ignore[override]
        r = self.reactor
        proto = SimC1222Protocol(self.node, r.seconds, r.callLater)
        self.owner.protocols[self.node] = proto
        return proto


class SimC1222Service(MultiService):
    """Nodes connected to the head-end over TCP (``endpoint``: a client endpoint string, e.g.
    ``tcp:127.0.0.1:1153``), reconnecting with backoff, with their alarms pushed every
    ``tick_interval`` seconds. ``clock`` gives the simulation's time (default: the reactor's)."""

    def __init__(
        self,
        reactor: Any,
        endpoint: str,
        nodes: Sequence[C1222Node],
        *,
        tick_interval: float = 1.0,
        clock: Callable[[], float] | None = None,
        retry_initial: float = 0.2,
        retry_max: float = 5.0,
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.nodes = list(nodes)
        self.clock = clock if clock is not None else reactor.seconds
        self.protocols: dict[C1222Node, SimC1222Protocol] = {}
        policy = backoffPolicy(initialDelay=retry_initial, maxDelay=retry_max)
        for node in self.nodes:
            factory: Any = _NodeFactory(node, reactor, self)
            ep = clientFromString(reactor, endpoint)
            ClientService(ep, factory, retryPolicy=policy, clock=reactor).setServiceParent(self)
        ticker = TimerService(tick_interval, self.tick)
        ticker.clock = reactor
        ticker.setServiceParent(self)

    def tick(self) -> None:
        """Advance every meter and push its alarms (an unconnected node cannot: logged by the meter)."""
        now = self.clock()
        for node in self.nodes:
            proto = self.protocols.get(node)
            if proto is not None and proto.connected_:
                proto.send(node.tick(now))
                continue
            for meter in node.meters:
                for alarm in meter.tick(now):
                    meter.note_push_failed(alarm, now)

    @property
    def connected(self) -> int:
        """Nodes connected now."""
        return sum(1 for p in self.protocols.values() if p.connected_)

    @property
    def registered(self) -> int:
        """Meters (and collectors) whose registration the head-end accepted."""
        return sum(len(n.registered) for n in self.nodes)
