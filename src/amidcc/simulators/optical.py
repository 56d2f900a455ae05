"""The meter's optical port: C12.18 over TCP, standing in for the optical probe (issue 3, FR26).

Theory of operation. One TCP connection is one probe on the meter's optical eye. The protocol owns a
sans-I/O :class:`~amidcc.codecs.c1218.Link` in the DEVICE role and stays thin:

* ``dataReceived`` feeds the link. Each :class:`MessageReceived` goes to the meter through its
  :class:`LocalPort` (which applies FR26) and the answer goes back with ``send_message``. The link
  carries one message at a time, so answers wait in a queue while one is still unacknowledged.
* The link's timers (ACK timeout, inter-character and channel-traffic timeouts) run on
  ``reactor.callLater`` at ``link.next_deadline()``; ``now`` is always ``reactor.seconds()``.
* A Negotiate answer is applied (packet size, number of packets, baud rate) once the host has ACKed
  it, so the answer itself travels with the old settings. Terminate, a channel-traffic timeout and
  a lost connection return the link to its defaults and the meter's optical session to base state.
* Optional pacing writes bytes no faster than a UART at the current baud rate (8N1: 10 bits a
  byte). The link starts its ACK timer when it hands a frame over, while a real meter starts it once
  the last bit has left, so a paced port lengthens the response timeout by one full packet's time.

A meter with no power hears nothing: bytes that arrive while it is powered down are dropped before
the link sees them, so there is neither ACK nor answer. The meter's link faults (silent, packet loss,
garbage) model its radio or modem and do not apply to the optical eye.

:class:`LocalPort` is the FR26 switch, one per meter, sans-I/O, for every transport to ask: with
PREEMPT an open optical session (Identify answered until Terminate, channel timeout or hang-up) makes
network requests answer BSY; SHARE serves both; EXCLUSIVE_NETWORK refuses the optical port. It sits
beside :class:`SimMeter`; the meter's own ``MeterConfig.port_sharing`` rule (logged-on sessions,
every channel) still applies underneath it.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, connectionDone
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from amidcc.codecs.c1218 import (
    DEFAULT_BAUD,
    DEFAULT_NBR_PACKETS,
    DEFAULT_PACKET_SIZE,
    OVERHEAD,
    ChannelTimeout,
    Event,
    Link,
    MessageDelivered,
    MessageReceived,
    PacketRejected,
    Role,
    SendFailed,
    SendState,
    baud_rate,
)
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.errors import CodecError
from amidcc.codecs.psem import (
    Identify,
    Negotiate,
    NegotiateResponse,
    Terminate,
    decode_request,
    decode_response,
    encode_request,
    request_code,
)

from .config import PortSharing
from .psem_server import LOCAL_CHANNEL, NETWORK_CHANNEL

if TYPE_CHECKING:
    from .meter import SimMeter

__all__ = [
    "BITS_PER_BYTE",
    "Clock",
    "LocalPort",
    "LocalPortPolicy",
    "OpticalConfig",
    "OpticalPortFactory",
    "OpticalPortProtocol",
    "Pacer",
]

#: A UART at 8N1 sends a start bit, 8 data bits and a stop bit per byte.
BITS_PER_BYTE = 10

_IDENTIFY = request_code(Identify())
_TERMINATE = request_code(Terminate())
_TERMINATE_BYTES = encode_request(Terminate())
_OK = int(ResponseCode.OK)


class _Call(Protocol):
    """The part of ``_Call`` used here."""

    def active(self) -> bool: ...

    def cancel(self) -> None: ...


class Clock(Protocol):
    """The part of ``Clock`` used here (a reactor, ``task.Clock``). Structural, because
    zope interfaces are not types mypy can check calls against."""

    def seconds(self) -> float:
        """Now, in seconds."""
        ...

    def callLater(self, delay: float, f: Callable[..., object], /, *args: Any, **kw: Any) -> Any:
        """Call ``f(*args, **kw)`` in ``delay`` seconds; returns an ``_Call``."""
        ...


#: A change of link settings that waits until the answer carrying it is delivered.
_Effect = Callable[[], None] | None


class LocalPortPolicy(enum.StrEnum):
    """FR26: how the optical port and the network share one meter."""

    PREEMPT = "preempt"
    """While an optical session is open, the meter's network requests get BSY."""
    SHARE = "share"
    """Both are served at once."""
    EXCLUSIVE_NETWORK = "exclusive-network"
    """The optical port refuses every request (answered with the port's refusal code)."""

    @classmethod
    def from_port_sharing(cls, sharing: PortSharing) -> LocalPortPolicy:
        """The policy matching a fleet-wide ``MeterConfig.port_sharing``."""
        return cls.PREEMPT if sharing is PortSharing.LOCAL_PREEMPTS else cls.SHARE


class LocalPort:
    """FR26 for one meter: the optical session's state and who may use the meter meanwhile.

    Sans-I/O (``now`` is the meter's time). Network transports that want the optical port to
    pre-empt them call :meth:`handle_network_services` (or ask :meth:`network_busy`) instead of
    ``meter.handle_services``.
    """

    __slots__ = ("meter", "policy", "refusal", "_active")

    def __init__(
        self,
        meter: SimMeter,
        policy: LocalPortPolicy | str | None = None,
        *,
        refusal: ResponseCode = ResponseCode.ONP,
    ) -> None:
        """:param policy: default from ``meter.config.port_sharing``.
        :param refusal: the code every optical request gets under EXCLUSIVE_NETWORK (no public
            source says what a meter with a disabled port answers; ONP is our choice).
        """
        self.meter = meter
        if policy is None:
            policy = LocalPortPolicy.from_port_sharing(meter.config.port_sharing)
        self.policy = LocalPortPolicy(policy)
        self.refusal = refusal
        self._active = False

    @property
    def active(self) -> bool:
        """True while an optical session is open (Identify answered ok, no Terminate since)."""
        return self._active

    def network_busy(self) -> bool:
        """True when a network request must be answered BSY right now."""
        return self._active and self.policy is LocalPortPolicy.PREEMPT

    def handle_network_services(
        self, services: list[bytes], now: float, *, channel: str = NETWORK_CHANNEL
    ) -> list[bytes]:
        """``meter.handle_services`` behind the FR26 gate: one BSY per service while pre-empted."""
        if self.network_busy():
            return [bytes((int(ResponseCode.BSY),))] * len(services)
        return self.meter.handle_services(services, now, channel=channel)

    def handle_optical_request(self, request: bytes, now: float) -> bytes:
        """One PSEM request from the probe; ``b""`` means no answer (the meter has no power)."""
        if self.policy is LocalPortPolicy.EXCLUSIVE_NETWORK:
            return bytes((int(self.refusal),)) if self.meter.powered(now) else b""
        response = self.meter.handle_request(request, now, channel=LOCAL_CHANNEL)
        if request and response[:1] == bytes((_OK,)):
            if request[0] == _IDENTIFY:
                self._active = True
            elif request[0] == _TERMINATE:
                self._active = False
        return response

    def end_session(self, now: float) -> None:
        """The probe went away or went quiet: Terminate the meter's optical session (accepted in
        any state, facts 1.6) so it is back in base state."""
        self._active = False
        if self.policy is not LocalPortPolicy.EXCLUSIVE_NETWORK:
            self.meter.handle_request(_TERMINATE_BYTES, now, channel=LOCAL_CHANNEL)


@dataclass(frozen=True, kw_only=True, slots=True)
class OpticalConfig:
    """How one meter's optical port behaves (durations in seconds)."""

    baud: int = DEFAULT_BAUD
    """Baud rate before Negotiate (and after Terminate); 9600 in C12.18 (facts 1.4)."""
    pace: bool = False
    """Write bytes no faster than a UART at the current baud rate would."""
    response_timeout: float = 2.0
    """ACK timeout (C12.18 default, facts 1.4); lengthened by one packet's time when pacing."""
    inter_char_timeout: float = 0.5
    """Inter-character timeout (facts 1.4)."""
    channel_traffic_timeout: float = 6.0
    """Silence after which the session returns to base state (facts 1.4)."""
    max_retries: int = 3
    """Retransmissions of one packet before giving up (facts 1.4)."""
    oversize_code: ResponseCode = ResponseCode.ONP
    """Answer sent instead of a response too big for the negotiated packets. C12.18 names no code
    for this (rstl is C12.22's); ONP is our choice."""
    time_offset: float = 0.0
    """Meter time minus reactor time (a simulated start that is not the wall clock)."""

    def __post_init__(self) -> None:
        if self.baud <= 0:
            raise ValueError(f"baud: must be positive, got {self.baud}")


class Pacer:
    """Writes bytes no faster than a UART at ``baud`` 8N1, in small chunks on ``callLater``.

    With ``baud`` None it writes straight through.
    """

    #: Seconds of line time per chunk.
    CHUNK_TIME = 0.02

    def __init__(self, reactor: Clock, write: Callable[[bytes], None], baud: int | None) -> None:
        self._reactor = reactor
        self._write = write
        self.baud = baud
        self._buffer = bytearray()
        self._call: _Call | None = None

    @property
    def pending(self) -> int:
        """Bytes not yet written."""
        return len(self._buffer)

    @property
    def busy(self) -> bool:
        """True while bytes are queued or the last chunk is still on the line."""
        return self._call is not None

    def write(self, data: bytes) -> None:
        """Queue ``data``; the first chunk goes out now when the line is free."""
        if not data:
            return
        if self.baud is None:
            self._write(data)
            return
        self._buffer += data
        if self._call is None:
            self._next_chunk()

    def stop(self) -> None:
        """Drop whatever is queued (the connection is gone)."""
        self._buffer.clear()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _next_chunk(self) -> None:
        self._call = None
        if not self._buffer or self.baud is None:
            if self._buffer:  # pacing was switched off meanwhile
                self._write(bytes(self._buffer))
                self._buffer.clear()
            return
        rate = self.baud / BITS_PER_BYTE  # bytes per second
        size = max(1, int(rate * self.CHUNK_TIME))
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._write(chunk)
        # The line stays busy while the chunk is clocked out, even when nothing else is queued.
        self._call = self._reactor.callLater(len(chunk) / rate, self._next_chunk)


class OpticalPortProtocol(TwistedProtocol):
    """One probe session on a meter's optical port. See the module docstring."""

    log = Logger()

    def __init__(
        self,
        port: LocalPort,
        reactor: Clock,
        config: OpticalConfig,
        on_close: Callable[[OpticalPortProtocol], None] | None = None,
    ) -> None:
        self.port = port
        self.config = config
        self._reactor = reactor
        self._on_close = on_close
        self.link = Link(
            Role.DEVICE,
            response_timeout=config.response_timeout,
            inter_char_timeout=config.inter_char_timeout,
            channel_traffic_timeout=config.channel_traffic_timeout,
            max_retries=config.max_retries,
        )
        self.baud = config.baud
        self.pacer = Pacer(reactor, self._write, config.baud if config.pace else None)
        self._queue: deque[tuple[bytes, _Effect]] = deque()
        self._in_flight: _Effect = None
        self._timer: _Call | None = None
        self._timer_at = math.inf
        self._apply_timing()

    # -- Twisted callbacks ----------------------------------------------------------------------

    def connectionMade(self) -> None:
        transport: Any = self.transport
        self.log.info("optical probe connected from {peer}", peer=str(transport.getPeer()))

    def dataReceived(self, data: bytes) -> None:
        now = self._reactor.seconds()
        if not self.port.meter.powered(self.meter_time(now)):
            self.log.debug("optical: {n} bytes dropped, meter has no power", n=len(data))
            self._power_lost(now)
            return
        self.log.debug("optical rx {hex}", hex=data.hex(" "))
        self._process(self.link.receive_data(data, now), now)
        self._flush(now)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_timer()
        self.pacer.stop()
        self._queue.clear()
        self.port.end_session(self.meter_time(self._reactor.seconds()))
        self.log.info("optical probe disconnected; link stats {stats}", stats=self.link.stats)
        if self._on_close is not None:
            self._on_close(self)

    # -- helpers --------------------------------------------------------------------------------

    def meter_time(self, now: float) -> float:
        """The meter's ``now`` for reactor time ``now``."""
        return now + self.config.time_offset

    def _write(self, data: bytes) -> None:
        self.log.debug("optical tx {hex}", hex=data.hex(" "))
        transport: Any = self.transport
        if transport is not None:
            transport.write(data)

    def _flush(self, now: float) -> None:
        self.pacer.write(self.link.data_to_send())
        self._schedule(now)

    def _process(self, events: list[Event], now: float) -> None:
        for event in events:
            if isinstance(event, MessageReceived):
                self._on_request(event.data, now)
            elif isinstance(event, MessageDelivered):
                self._on_done(now, delivered=True)
            elif isinstance(event, SendFailed):
                self.log.warn(
                    "optical: response abandoned after retries ({cause})", cause=event.cause
                )
                self._on_done(now, delivered=False)
            elif isinstance(event, ChannelTimeout):
                self._on_channel_timeout(now)
            elif isinstance(event, PacketRejected):
                self.log.debug("optical: packet rejected ({reason})", reason=event.reason)

    def _on_request(self, request: bytes, now: float) -> None:
        response = self.port.handle_optical_request(request, self.meter_time(now))
        if not response:
            return
        self._queue.append((response, self._effect_of(request, response)))
        self._send_next(now)

    def _effect_of(self, request: bytes, response: bytes) -> _Effect:
        """What an ok Negotiate or Terminate answer changes once the host has ACKed it."""
        if not request or response[0] != _OK:
            return None
        if request[0] == _TERMINATE:
            return self._restore_defaults
        try:
            req = decode_request(request)
            resp = decode_response(response, req) if isinstance(req, Negotiate) else None
        except CodecError:
            return None  # the meter already answered it; nothing to apply
        if isinstance(resp, NegotiateResponse):
            return partial(self._apply_negotiated, resp)
        return None

    def _send_next(self, now: float) -> None:
        if not self._queue or self.link.send_state is not SendState.IDLE:
            return
        response, effect = self._queue.popleft()
        room = (self.link.packet_size - OVERHEAD) * self.link.nbr_packets
        if len(response) > room:
            self.log.info(
                "optical: {n}-byte response does not fit {room} bytes", n=len(response), room=room
            )
            response, effect = bytes((int(self.config.oversize_code),)), None
        self._in_flight = effect
        self.link.send_message(response, now)

    def _on_done(self, now: float, *, delivered: bool) -> None:
        effect, self._in_flight = self._in_flight, None
        if delivered and effect is not None:
            effect()
        self._send_next(now)

    def _on_channel_timeout(self, now: float) -> None:
        self.log.info("optical: channel traffic timeout, back to base state")
        self._queue.clear()
        self._in_flight = None
        self.port.end_session(self.meter_time(now))
        self._restore_defaults()

    # -- settings -------------------------------------------------------------------------------

    def _apply_negotiated(self, resp: NegotiateResponse) -> None:
        self.link.apply_negotiated(resp.packet_size, resp.nbr_packets)
        if resp.baud_rate is not None:
            rate = baud_rate(resp.baud_rate)
            if rate is not None:  # 00: set outside the protocol, keep ours
                self.baud = rate
        self._apply_timing()
        self.log.info(
            "optical: negotiated {size}-byte packets x{count} at {baud} baud",
            size=resp.packet_size,
            count=resp.nbr_packets,
            baud=self.baud,
        )

    def _restore_defaults(self) -> None:
        self.link.apply_negotiated(DEFAULT_PACKET_SIZE, DEFAULT_NBR_PACKETS)
        self.baud = self.config.baud
        self._apply_timing()

    def _apply_timing(self) -> None:
        base = self.config.response_timeout
        if self.config.pace:
            self.pacer.baud = self.baud
            # one full packet (and the ACK before it) still to clock out when the timer starts
            base += (self.link.packet_size + 1) * BITS_PER_BYTE / self.baud
        self.link.response_timeout = base

    # -- timers ---------------------------------------------------------------------------------

    def _schedule(self, now: float) -> None:
        deadline = self.link.next_deadline()
        if deadline is None:
            self._cancel_timer()
            return
        if self._timer is not None and deadline == self._timer_at:
            return
        self._cancel_timer()
        self._timer_at = deadline
        self._timer = self._reactor.callLater(max(0.0, deadline - now), self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._timer_at = math.inf

    def _on_timer(self) -> None:
        # The deadline is due even if float rounding put the call a hair before it.
        now = max(self._reactor.seconds(), self._timer_at)
        self._timer = None
        self._timer_at = math.inf
        if not self.port.meter.powered(self.meter_time(now)):
            self._power_lost(now)
            return
        self._process(self.link.tick(now), now)
        self._flush(now)

    def _power_lost(self, now: float) -> None:
        """A meter without power forgets its link: no retransmissions, base state at power-up."""
        self._cancel_timer()
        self.pacer.stop()
        self._queue.clear()
        self._in_flight = None
        self.link.reset()
        self._restore_defaults()
        self.port.end_session(self.meter_time(now))


class OpticalPortFactory(Factory):
    """A meter's optical port: one probe at a time (a second connection is closed at once)."""

    def __init__(
        self, port: LocalPort, reactor: Clock, config: OpticalConfig | None = None
    ) -> None:
        self.port = port
        self.reactor = reactor
        self.config = config if config is not None else OpticalConfig()
        self.current: OpticalPortProtocol | None = None
        self.sessions = 0
        """Probe connections accepted so far."""

    def buildProtocol(self, addr: IAddress | None) -> OpticalPortProtocol | None:
        if self.current is not None:
            return None  # the eye is taken
        proto = OpticalPortProtocol(self.port, self.reactor, self.config, self._closed)
        proto.factory = self
        self.current = proto
        self.sessions += 1
        return proto

    def _closed(self, proto: OpticalPortProtocol) -> None:
        if self.current is proto:
            self.current = None
