"""C12.22 over TCP and UDP: the gateway's listener, registration, request correlation, alarms.

Theory of operation. Meters and collectors connect to the gateway (TCP port 1153, or send UDP
datagrams to it) and register with the C12.22 Register service. Each TCP connection or UDP peer is a
*channel*: it owns its framer (TCP: :class:`~amidcc.codecs.c1222.ApduBuffer`) and a
:class:`~amidcc.gateway.correlation.Correlator`. :class:`C1222Link` is the
:class:`~amidcc.gateway.links.base.MeterLink`: it routes a request by the meter's AP title to the
channel the meter registered on (a collector carries many meters over one channel), tags it with a
fresh calling invocation id (A8), and fires the Deferred when the response echoing that id in A4
arrives (or fails it on timeout, or with :class:`LinkDown` when the channel drops).

What arrives without an A4 is the node speaking first:

* **Register** (``27``): the meter (or the collector, node type relay) is entered in the
  :class:`~amidcc.gateway.registry.MeterRegistry` and routed to this channel; the reply is a
  Register response (``00 <ap_title> <reg_delay> <reg_period> <reg_info>``).
* **a notification** (A7 NOTIFICATION or URGENT bit, or EPSEM response control other than
  "always"): an alarm, handed to ``on_alarm(address, services, now)``; acknowledged with ``00`` per
  service only when the response control asks for an answer.
* anything else: answered ``SNS`` per service (the gateway serves no tables); a message whose
  called AP title is not the gateway's is answered ``UAT``.

Malformed input is counted (``amidcc_errors_total{kind="malformed"|"bad_mac"}``) and answered with
the response code the codec names when the APDU could be read far enough to know whom to answer
(never a response to a response; an APDU over ``max_apdu_size`` is skipped unread, so it cannot be
answered ``RQTL``). A channel is closed only when it sends nothing but garbage:
more than ``garbage_limit`` discarded bytes, or more than ``malformed_limit`` bad APDUs, since its
last good APDU. Other channels never notice.

The meter id of a registering node is taken from its electronic serial number: amidcc's simulated
meters send their serial as a relative universal id whose arcs are the serial's ASCII codes (so
its content octets *are* the serial); any other ESN is used in dotted form. ``identify_meter``
overrides this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger

from amidcc.codecs.ber import parse_oid
from amidcc.codecs.c1222 import (
    AeQualifier,
    Apdu,
    ApTitle,
    C1222Message,
    ResponseControl,
    SecurityMode,
    build_message,
    decode_apdu,
    encode_apdu,
    iv_from_time,
    message_from_apdu,
    reply_to,
)
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.errors import CodecError, RemoteProtocolError, SecurityError
from amidcc.codecs.psem import (
    Deregister,
    NodeType,
    OkResponse,
    RegInfo,
    Register,
    RegisterResponse,
    Security,
    UniversalId,
    decode_request,
    encode_request,
    encode_response,
    pad_password,
)

from ..config import Config
from ..correlation import Clock
from ..metrics import GatewayMetrics, LinkMetrics
from ..registry import ApTitleInUse, MeterRecord, MeterRegistry, Registration
from .base import LinkDown, LinkKind, MeterAddress

__all__ = [
    "AlarmHook",
    "C1222Link",
    "C1222Settings",
    "Channel",
    "ChannelState",
    "FrameTap",
    "MeterRegistered",
    "Routes",
    "meter_id_from_esn",
]

log = Logger(namespace="amidcc.gateway.c1222")

#: ``on_alarm(address, services, now)``: a meter pushed an unsolicited message.
AlarmHook = Callable[[MeterAddress, Sequence[bytes], float], object]

#: ``tap(direction, channel, ap_title, apdu, now)``: an observer of the link's traffic (capture,
#: tracing). ``direction`` is ``"rx"`` or ``"tx"`` for one whole APDU received or sent on
#: ``channel``, whose ``ap_title`` is the meter's (the calling title of what arrives, the called
#: title of what leaves; None when unknown), or ``"closed"`` (``apdu`` empty) when the channel goes.
#: Taps run on the reactor and must be quick; what they raise is logged, never seen by the link.
FrameTap = Callable[[str, "Channel", "str | None", bytes, float], object]

_NOTIFY = AeQualifier.NOTIFICATION | AeQualifier.URGENT
#: Parsed AP titles kept (then forgotten all at once): a fleet's meters.
_TITLES_KEPT = 65536
_RELAYS = NodeType.RELAY | NodeType.MASTER_RELAY


@dataclass(frozen=True, kw_only=True, slots=True)
class C1222Settings:
    """What the C12.22 link needs to know (``[gateway]`` + ``[c1222]``, plus listener limits)."""

    ap_title: ApTitle
    """The gateway's own AP title (calling title of requests, called title of registrations)."""
    base_oid: tuple[int, ...]
    """Base of relative AP titles."""
    max_apdu_size: int = 32767
    """Largest APDU accepted."""
    security_mode: SecurityMode = SecurityMode.CLEARTEXT
    """Security mode of requests; replies use the higher of this and the node's."""
    keys: Mapping[int, bytes] = field(default_factory=dict)
    """Key table used for every meter unless the link is given ``keys_for``."""
    key_id: int | None = None
    """Key id to send with (None: the lowest id of the meter's key table)."""
    password: bytes | None = None
    """20-byte padded PSEM password sent sessionless before each request's services; None: none."""
    user_id: int = 0
    """User id sent with the password."""
    reg_period: int = 86400
    """Registration period granted in Register responses (seconds)."""
    garbage_limit: int = 4096
    """Discarded bytes since the last good APDU after which a channel is closed."""
    malformed_limit: int = 16
    """Undecodable APDUs in a row after which a channel is closed."""
    trace_frames: bool = False
    """Log every APDU in hex (debug level): the bytes a field engineer asks for first."""
    trace_titles: frozenset[str] = frozenset()
    """Log the APDUs to and from these AP titles only (``[logging] trace_meters``)."""

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> C1222Settings:
        """Settings from a loaded :class:`~amidcc.gateway.config.Config`."""
        c = config.c1222
        base, _ = parse_oid(c.base_oid)
        password = pad_password(c.password, fill=b" ") if c.password else None
        values: dict[str, Any] = {
            "ap_title": ApTitle.parse(config.gateway.ap_title),
            "base_oid": base,
            "max_apdu_size": c.max_apdu_size,
            "security_mode": SecurityMode(c.security_level),
            "keys": dict(c.keys),
            "password": password,
            "user_id": c.user_id,
            "trace_titles": frozenset(config.logging.trace_meters),
            "trace_frames": "*" in config.logging.trace_meters,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def require_security(self) -> bool:
        """Cleartext from meters is refused when requests are secured."""
        return self.security_mode is not SecurityMode.CLEARTEXT


@dataclass(frozen=True, kw_only=True, slots=True)
class MeterRegistered:
    """A node registered on a C12.22 channel (``on_register`` hook)."""

    address: MeterAddress
    """The meter's address (route = its collector's AP title, if any)."""
    request: Register
    """The Register service as received."""
    registration: Registration | None
    """The registry's outcome (new install, replaced meter); None without a registry."""
    relay: bool
    """True for a collector or relay registering itself."""
    time: float
    """When it registered (clock seconds)."""


def meter_id_from_esn(esn: UniversalId) -> str:
    """amidcc's convention: a relative ESN whose arcs are printable ASCII codes is that text."""
    if esn.relative and esn.arcs and all(32 < a < 127 for a in esn.arcs):
        return bytes(esn.arcs).decode("ascii")
    return str(esn)


class Channel(Protocol):
    """One way to a set of meters: a TCP connection, or one UDP peer."""

    peer: str
    """``tcp:HOST:PORT`` or ``udp:HOST:PORT``, for logs."""
    correlator: Any
    """The channel's :class:`~amidcc.gateway.correlation.Correlator`."""
    state: ChannelState
    """Routing and garbage accounting, owned by the link."""

    def write_apdu(self, data: bytes) -> None:
        """Send one whole APDU."""

    def close(self) -> None:
        """Drop the channel (the link's ``channel_closed`` follows)."""


class ChannelState:
    """What the link keeps per channel."""

    __slots__ = ("titles", "collector", "bad_bytes", "bad_count", "closing")

    def __init__(self) -> None:
        self.titles: set[str] = set()
        """AP titles routed through this channel."""
        self.collector: str | None = None
        """AP title of the collector (relay) that registered on this channel, if one did."""
        self.bad_bytes = 0
        """Garbage bytes since the last good APDU."""
        self.bad_count = 0
        """Undecodable APDUs since the last good APDU."""
        self.closing = False
        """Closed for garbage: ignore whatever is still buffered."""


class Routes(dict[str, "Channel"]):
    """AP title -> the channel that reaches it, counting as it changes how many routed titles
    are meters (relays are routes only): the reachable gauge in O(1) per registration, where a
    scan of every route per registration made registering a 10,000-meter fleet quadratic."""

    def __init__(self, meters: Mapping[str, MeterAddress]) -> None:
        super().__init__()
        self.meters = meters
        self.reachable = 0
        """Routed titles that are in ``meters``."""

    def __setitem__(self, title: str, channel: Channel) -> None:
        if title not in self and title in self.meters:
            self.reachable += 1
        super().__setitem__(title, channel)

    def __delitem__(self, title: str) -> None:
        super().__delitem__(title)
        if title in self.meters:
            self.reachable -= 1

    def metered(self, title: str) -> None:
        """``title`` has just become a meter (call before adding it to ``meters``)."""
        if title in self and title not in self.meters:
            self.reachable += 1


@dataclass(frozen=True, slots=True)
class _Sent:
    title: ApTitle
    prefixed: int
    expected: int  # responses owed: one per service asked (after the prefix)


def _same_title(a: ApTitle | None, b: ApTitle, base: tuple[int, ...]) -> bool:
    if a is b:  # decoded titles and the link's parsed ones are shared objects
        return True
    return a is not None and a.absolute(base) == b.absolute(base)


class C1222Link:
    """The C12.22 MeterLink of one transport (TCP or UDP): routes, requests, registrations."""

    def __init__(
        self,
        settings: C1222Settings,
        *,
        clock: Clock,
        kind: LinkKind = LinkKind.C1222_TCP,
        registry: MeterRegistry | None = None,
        metrics: GatewayMetrics | None = None,
        on_alarm: AlarmHook | None = None,
        on_register: Callable[[MeterRegistered], object] | None = None,
        keys_for: Callable[[str], Mapping[int, bytes] | None] | None = None,
        identify_meter: Callable[[Register, str], str] | None = None,
    ) -> None:
        self.kind = kind
        self.settings = settings
        self.clock = clock
        self.registry = registry
        self.metrics = metrics if metrics is not None else GatewayMetrics(process=False)
        self.counters: LinkMetrics = self.metrics.link(str(kind))
        self.on_alarm = on_alarm
        self.on_register = on_register
        self._keys_for = keys_for
        self._identify = identify_meter
        self.meters: dict[str, MeterAddress] = {}
        """AP title -> address, for every meter that registered on this link."""
        self.routes: Routes = Routes(self.meters)
        """AP title -> the channel that reaches it now."""
        self.channels: set[Channel] = set()
        """Open channels."""
        self._last_iv: dict[str, int] = {}
        self._titles: dict[str, ApTitle] = {}  # parsed AP titles of the meters asked
        self._prefix: tuple[C1222Settings | None, list[bytes]] = (None, [])
        self.taps: list[FrameTap] = []
        """Observers of every APDU sent and received, and of channels closing (:data:`FrameTap`)."""

    # -- MeterLink -----------------------------------------------------------------------------

    def is_reachable(self, address: MeterAddress) -> bool:
        """Whether the meter is registered on an open channel now."""
        return address.ap_title in self.routes

    def request(
        self, address: MeterAddress, services: Sequence[bytes], *, timeout: float
    ) -> Deferred[list[bytes]]:
        """Send ``services`` to the meter in one APDU; fire with one response per service."""
        channel = self.routes.get(address.ap_title)
        if channel is None:
            return fail(LinkDown(f"meter {address.meter_id} ({address.ap_title}) is not connected"))
        try:
            title = self._title(address.ap_title)
            prefix = self._security_prefix()
            tag = channel.correlator.new_tag()
            apdu = self._secure_request(title, tag, [*prefix, *services])
            d: Deferred[Any] = channel.correlator.expect(
                tag, timeout, context=_Sent(title, len(prefix), len(services))
            )
        except Exception as exc:  # our own misuse (bad title, no key): fail this request only
            return fail(exc)
        self._send(channel, encode_apdu(apdu), address.ap_title)
        return d

    def _title(self, text: str) -> ApTitle:
        title = self._titles.get(text)
        if title is None:
            title = ApTitle.parse(text)
            if len(self._titles) >= _TITLES_KEPT:
                self._titles.clear()
            self._titles[text] = title
        return title

    def _security_prefix(self) -> list[bytes]:
        """The sessionless Security service sent first (encoded once per settings object)."""
        s = self.settings
        if self._prefix[0] is not s:
            services = []
            if s.password is not None:
                services = [encode_request(Security(password=s.password, user_id=s.user_id))]
            self._prefix = (s, services)
        return self._prefix[1]

    def _keys(self, title: str) -> Mapping[int, bytes] | None:
        if self._keys_for is not None:
            return self._keys_for(title)
        return self.settings.keys or None

    def _key(self, title: str) -> tuple[int, bytes]:
        keys = self._keys(title)
        if not keys:
            raise SecurityError(f"no key for {title}")
        key_id = self.settings.key_id
        if key_id is None or key_id not in keys:
            key_id = min(keys)
        return key_id, keys[key_id]

    def _iv(self, title: str) -> bytes:
        """A fresh IV per destination: the clock's seconds, or one more than the last if that
        would repeat it (MeteringSDK never reuses the previous IV)."""
        now = int(self.clock.seconds()) & 0xFFFFFFFF
        last = self._last_iv.get(title)
        value = now if last is None or now > last else (last + 1) & 0xFFFFFFFF
        self._last_iv[title] = value
        return iv_from_time(value)

    def _secure_request(self, called: ApTitle, tag: int, services: Sequence[bytes]) -> Apdu:
        mode = self.settings.security_mode
        key_id, key, iv = None, None, None
        if mode is not SecurityMode.CLEARTEXT:
            key_id, key = self._key(str(called))
            iv = self._iv(str(called))
        return build_message(
            called=called,
            calling=self.settings.ap_title,
            invocation_id=tag,
            services=services,
            security_mode=mode,
            key_id=key_id,
            key=key,
            iv=iv,
            base_oid=self.settings.base_oid,
        )

    # -- channels ------------------------------------------------------------------------------

    def channel_opened(self, channel: Channel) -> None:
        """A connection was accepted (or a UDP peer was first heard)."""
        self.channels.add(channel)
        log.debug("c1222 channel {peer} open", peer=channel.peer)

    def channel_closed(self, channel: Channel, reason: str = "connection lost") -> None:
        """The channel is gone: unroute its meters, fail its pending requests with LinkDown."""
        if channel not in self.channels and channel.correlator.down:
            return  # already closed (the listener stopped it, then the connection reported)
        self.channels.discard(channel)
        for title in channel.state.titles:
            if self.routes.get(title) is channel:
                del self.routes[title]
        channel.state.titles.clear()
        failed = channel.correlator.fail_all(LinkDown(f"{channel.peer}: {reason}"))
        if self.taps:
            self._tap("closed", channel, None, b"")
        log.info(
            "c1222 channel {peer} closed ({reason}); {failed} pending requests failed",
            peer=channel.peer,
            reason=reason,
            failed=failed,
        )
        self._gauges()

    def _gauges(self) -> None:
        self.metrics.set_meters(str(self.kind), registered=len(self.meters), reachable=self.routes.reachable)

    def _trace(self, direction: str, channel: Channel, title: str | None, data: bytes) -> None:
        s = self.settings
        if s.trace_frames or (title is not None and title in s.trace_titles):
            log.debug(
                "c1222 {direction} {peer} {title} {hex}",
                direction=direction, peer=channel.peer, title=title, hex=data.hex(),
            )  # fmt: skip
        if self.taps:
            self._tap(direction, channel, title, data)

    def _tap(self, direction: str, channel: Channel, title: str | None, data: bytes) -> None:
        now = self.clock.seconds()
        for tap in self.taps:
            try:
                tap(direction, channel, title, data, now)
            except Exception:
                log.failure("c1222 frame tap {tap!r} failed", tap=tap)

    def _send(self, channel: Channel, data: bytes, title: str | None = None) -> None:
        self._trace("tx", channel, title, data)
        self.counters.sent(len(data))
        channel.write_apdu(data)

    def garbage(self, channel: Channel, nbytes: int, error: CodecError | None) -> None:
        """The framer discarded ``nbytes`` (``error`` set when it raised)."""
        state = channel.state
        if error is not None:
            self.counters.error("malformed")
            state.bad_count += 1
            log.info("c1222 {peer}: {error}", peer=channel.peer, error=str(error))
        state.bad_bytes += nbytes
        self._check_garbage(channel)

    def _check_garbage(self, channel: Channel) -> None:
        state, s = channel.state, self.settings
        if state.closing:
            return
        if state.bad_bytes > s.garbage_limit or state.bad_count > s.malformed_limit:
            state.closing = True
            log.warn(
                "c1222 {peer}: closing, {nbytes} garbage bytes and {count} bad APDUs since the "
                "last good one",
                peer=channel.peer,
                nbytes=state.bad_bytes,
                count=state.bad_count,
            )
            channel.close()

    def apdu_received(self, channel: Channel, data: bytes) -> None:
        """One whole APDU from ``channel``."""
        if channel.state.closing:
            return
        self.counters.received(len(data))
        try:
            apdu = decode_apdu(data)
        except RemoteProtocolError as exc:
            self._trace("rx", channel, None, data)
            self.garbage(channel, 0, exc)
            return
        channel.state.bad_bytes = channel.state.bad_count = 0
        sender = str(apdu.calling_ap_title) if apdu.calling_ap_title is not None else None
        self._trace("rx", channel, sender, data)
        try:
            message = self._decode(apdu, sender)
        except RemoteProtocolError as exc:
            self._bad_message(channel, apdu, exc)
            return
        if apdu.called_ap_invocation_id is not None:
            self._response(channel, message)
        else:
            self._incoming(channel, message)

    def _decode(self, apdu: Apdu, sender: str | None) -> C1222Message:
        """Verify and decrypt; anything not readable as plaintext EPSEM raises."""
        keys = self._keys(sender) if sender is not None else None
        base = self.settings.base_oid
        if keys:
            message = message_from_apdu(
                apdu, keys, base, require_security=self.settings.require_security
            )
        elif self.settings.require_security:
            raise SecurityError(f"no key for {sender} and security is required")
        else:
            message = message_from_apdu(apdu, None, base)
        if message.segment:
            raise RemoteProtocolError(
                "segmented APDUs are not supported", response_code=ResponseCode.SGNP
            )
        if message.epsem is None:
            raise SecurityError(f"secured message from {sender} and no key to read it")
        return message

    def _bad_message(self, channel: Channel, apdu: Apdu, exc: RemoteProtocolError) -> None:
        kind = "bad_mac" if isinstance(exc, SecurityError) else "malformed"
        self.counters.error(kind)
        log.info("c1222 {peer}: {kind}: {error}", peer=channel.peer, kind=kind, error=str(exc))
        tag = apdu.called_ap_invocation_id
        if tag is not None:  # a response: the request it answers fails now, not at its timeout
            pending = channel.correlator.get(tag)
            if pending is not None and _same_title(
                apdu.calling_ap_title, pending.context.title, self.settings.base_oid
            ):
                channel.correlator.reject(tag, exc)
            return
        self._reply(channel, apdu, [bytes((int(exc.response_code),))], secure=False)

    def _response(self, channel: Channel, message: C1222Message) -> None:
        apdu = message.apdu
        tag = apdu.called_ap_invocation_id
        assert tag is not None
        pending = channel.correlator.get(tag)
        if pending is None:
            channel.correlator.late += 1
            log.info("c1222 {peer}: late or unknown response {tag}", peer=channel.peer, tag=tag)
            return
        sent: _Sent = pending.context
        if not _same_title(apdu.calling_ap_title, sent.title, self.settings.base_oid):
            self.counters.error("malformed")
            log.warn(
                "c1222 {peer}: response {tag} from {got}, expected {want}",
                peer=channel.peer,
                tag=tag,
                got=str(apdu.calling_ap_title),
                want=str(sent.title),
            )
            return
        epsem = message.epsem  # the MeterClient marks the meter seen (or not) per request
        assert epsem is not None
        services = epsem.services[sent.prefixed :]
        if sent.prefixed and not services and epsem.services[0][:1] != b"\x00":
            error = RemoteProtocolError(
                "Security refused", response_code=ResponseCode(epsem.services[0][0])
            )
            channel.correlator.reject(tag, error)
            return
        if len(services) != sent.expected:
            self.counters.error("malformed")
            error = RemoteProtocolError(f"{len(services)} responses to {sent.expected} services")
            channel.correlator.reject(tag, error)
            return
        channel.correlator.resolve(tag, list(services))  # our services' responses

    def _seen(self, title: str) -> None:
        if self.registry is None:
            return
        address = self.meters.get(title)
        if address is not None and address.meter_id in self.registry:
            self.registry.mark_seen(address.meter_id, now=self.clock.seconds())

    # -- the node speaks first -----------------------------------------------------------------

    def _incoming(self, channel: Channel, message: C1222Message) -> None:
        apdu, epsem = message.apdu, message.epsem
        assert epsem is not None
        if not _same_title(apdu.called_ap_title, self.settings.ap_title, self.settings.base_oid):
            self._reply(channel, apdu, [bytes((ResponseCode.UAT,))], message=message)
            return
        first = epsem.services[0]
        try:
            request = decode_request(first) if first[0] in (0x24, 0x27) else None
        except RemoteProtocolError as exc:
            self.counters.error("malformed")
            self._reply(channel, apdu, [bytes((int(exc.response_code),))], message=message)
            return
        if isinstance(request, Register):
            self._register(channel, message, request)
        elif isinstance(request, Deregister):
            self._deregister(channel, message, request)
        elif (apdu.calling_ae_qualifier is not None and apdu.calling_ae_qualifier & _NOTIFY) or (
            epsem.response_control is not ResponseControl.ALWAYS
        ):
            self._alarm(channel, message)
        else:
            self._reply(channel, apdu, [bytes((ResponseCode.SNS,))] * len(epsem.services), message=message)

    def _reply(
        self,
        channel: Channel,
        request: Apdu,
        services: Sequence[bytes],
        *,
        message: C1222Message | None = None,
        secure: bool = True,
    ) -> None:
        """Answer a node's message; never when its response control says not to."""
        epsem = message.epsem if message is not None else None
        if epsem is not None and epsem.response_control is ResponseControl.NEVER:
            return
        if epsem is not None and epsem.response_control is ResponseControl.ON_EXCEPTION:
            if all(s[:1] == b"\x00" for s in services):
                return
        if request.calling_ap_title is None:
            return  # nobody to answer
        mode = SecurityMode.CLEARTEXT
        if secure:
            got = message.security_mode if message is not None else None
            mode = max(self.settings.security_mode, got or SecurityMode.CLEARTEXT)
        title = str(request.calling_ap_title)
        try:
            key_id, key, iv = None, None, None
            if mode is not SecurityMode.CLEARTEXT:
                key_id, key = self._key(title)
                iv = self._iv(title)
            answer = reply_to(
                request, services, security_mode=SecurityMode(mode), key_id=key_id, key=key,
                iv=iv, base_oid=self.settings.base_oid,
            )  # fmt: skip
        except CodecError as exc:
            log.warn("c1222 {peer}: cannot answer {title}: {error}", peer=channel.peer, title=title, error=str(exc))
            return
        self._send(channel, encode_apdu(answer), title)

    def _meter_id(self, request: Register, title: str) -> str:
        if self._identify is not None:
            return self._identify(request, title)
        return meter_id_from_esn(request.electronic_serial_number)

    def _record(self, meter_id: str, title: str, request: Register, route: tuple[str, ...]) -> MeterRecord:
        maker = request.device_class.decode("ascii", "replace").strip() or None
        old = self.registry.get(meter_id) if self.registry is not None else None
        if old is not None:
            return replace(old, ap_title=title, link=self.kind, route=route, manufacturer=old.manufacturer or maker)
        return MeterRecord(meter_id=meter_id, ap_title=title, link=self.kind, route=route, manufacturer=maker, serial=meter_id)

    def _register(self, channel: Channel, message: C1222Message, request: Register) -> None:
        apdu = message.apdu
        if apdu.calling_ap_title is None:  # nobody to register, nobody to answer
            self.counters.error("malformed")
            log.info("c1222 {peer}: Register without a calling AP title", peer=channel.peer)
            return
        title = str(apdu.calling_ap_title)
        now = self.clock.seconds()
        relay = bool(request.node_type & _RELAYS)
        state = channel.state
        registration = None
        if relay:
            state.collector = title
            address = MeterAddress(meter_id=title, ap_title=title, link=self.kind)
        else:
            meter_id = self._meter_id(request, title)
            route = (state.collector,) if state.collector else ()
            if self.registry is not None:
                try:
                    registration = self.registry.register(self._record(meter_id, title, request, route), now=now)
                except ApTitleInUse as exc:
                    log.warn("c1222 {peer}: {error}", peer=channel.peer, error=str(exc))
                    self._reply(channel, apdu, [bytes((ResponseCode.ONP,))], message=message)
                    return
            address = MeterAddress(meter_id=meter_id, ap_title=title, link=self.kind, route=route)
            self.routes.metered(title)
            self.meters[title] = address
        old = self.routes.get(title)
        if old is not None and old is not channel:
            old.state.titles.discard(title)
        self.routes[title] = channel
        state.titles.add(title)
        self._gauges()
        log.info("c1222 {peer}: {title} registered as {meter}", peer=channel.peer, title=title, meter=address.meter_id)
        answer = RegisterResponse(
            ap_title=request.ap_title,
            reg_delay=0,
            reg_period=self.settings.reg_period,
            reg_info=int(RegInfo.DIRECT_MESSAGING_AVAILABLE | RegInfo.CONNECTION_MODE | RegInfo.ACCEPT_CONNECTIONS),
        )
        self._reply(channel, apdu, [encode_response(answer)], message=message)
        if self.on_register is not None:
            event = MeterRegistered(address=address, request=request, registration=registration, relay=relay, time=now)
            self._call(self.on_register, event)

    def _deregister(self, channel: Channel, message: C1222Message, request: Deregister) -> None:
        title = str(message.apdu.calling_ap_title)
        if self.routes.get(title) is channel:
            del self.routes[title]
        channel.state.titles.discard(title)
        self._gauges()
        self._reply(channel, message.apdu, [encode_response(OkResponse())], message=message)

    def _alarm(self, channel: Channel, message: C1222Message) -> None:
        apdu, epsem = message.apdu, message.epsem
        assert epsem is not None
        title = str(apdu.calling_ap_title)
        address = self.meters.get(title)
        if address is None and self.registry is not None:
            record = self.registry.by_ap_title(title)
            if record is not None:
                address = MeterAddress(meter_id=record.meter_id, ap_title=title, link=self.kind, route=record.route)
        if address is None:
            log.warn("c1222 {peer}: notification from unregistered {title}", peer=channel.peer, title=title)
            self._reply(channel, apdu, [bytes((ResponseCode.UAT,))] * len(epsem.services), message=message)
            return
        self._seen(title)
        self._reply(channel, apdu, [b"\x00"] * len(epsem.services), message=message)
        if self.on_alarm is not None:
            self._call(self.on_alarm, address, epsem.services, self.clock.seconds())

    @staticmethod
    def _call(hook: Callable[..., object], *args: object) -> None:
        """Run a hook; its errors are logged, never allowed to break the channel."""
        try:
            result = hook(*args)
        except Exception:
            log.failure("c1222 hook {hook!r} failed", hook=hook)
            return
        if isinstance(result, Deferred):
            result.addErrback(lambda f: log.failure("c1222 hook {hook!r} failed", f, hook=hook))
