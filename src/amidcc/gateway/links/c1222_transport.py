"""The Twisted side of the C12.22 link: TCP connections, UDP peers, and the listener service.

Each protocol here is thin (style.md, "The Twisted layer is thin"): it owns the framer, feeds whole
APDUs to :class:`~amidcc.gateway.links.c1222.C1222Link`, and writes what the link sends. The link
does the rest (routing, correlation, registration, alarms, garbage accounting).

:class:`C1222Listener` listens on the config's endpoint strings (``[c1222] listen`` for TCP,
``udp_listen`` for UDP), applies the connection-rate cap of ``[throttle]`` to TCP, and on stop
closes every channel so every pending request fails with ``LinkDown``. :func:`build_c1222` makes
the links and the listener from a :class:`~amidcc.gateway.config.Config`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import DatagramProtocol, ServerFactory, connectionDone
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from amidcc.codecs.c1222 import NEED_MORE, ApduBuffer, ApduTooLargeError, receive_datagram
from amidcc.codecs.c1222.datagram import MAX_UDP_PAYLOAD
from amidcc.codecs.errors import RemoteProtocolError

from ..config import Config
from ..correlation import Correlator
from ..metrics import GatewayMetrics
from ..registry import MeterRegistry
from ..throttle import ConnectionRateLimit
from .base import LinkKind
from .c1222 import AlarmHook, C1222Link, C1222Settings, ChannelState, MeterRegistered

__all__ = [
    "C1222Datagram",
    "C1222Factory",
    "C1222Listener",
    "C1222Protocol",
    "build_c1222",
    "parse_udp_endpoint",
]

log = Logger(namespace="amidcc.gateway.c1222")


# -- TCP ---------------------------------------------------------------------------------------


def _peer_text(scheme: str, address: IAddress) -> str:
    host = getattr(address, "host", "?")
    port = getattr(address, "port", "?")
    return f"{scheme}:{host}:{port}"


class C1222Protocol(TwistedProtocol):
    """One TCP connection from a meter or a collector: ``dataReceived`` feeds the framer."""

    def __init__(self, link: C1222Link) -> None:
        self.link = link
        self.buffer = ApduBuffer(link.settings.max_apdu_size)
        self.correlator: Any = Correlator(link.clock, on_timeout=lambda _: link.counters.error("timeout"))
        self.state = ChannelState()
        self.peer = "tcp:?"
        self.factory: ServerFactory | None = None
        self._excused = 0  # bytes of an oversize APDU being skipped: not garbage

    def connectionMade(self) -> None:
        if isinstance(self.factory, C1222Factory):
            self.factory.protocols.add(self)
        transport: Any = self.transport
        self.peer = _peer_text("tcp", transport.getPeer())
        self.link.channel_opened(self)

    def dataReceived(self, data: bytes) -> None:
        buffer = self.buffer
        buffer.receive_data(data)
        while not self.state.closing:
            before = buffer.discarded_bytes
            error: RemoteProtocolError | None = None
            apdu: bytes | None = None
            try:
                found = buffer.next_apdu()
                if found is not NEED_MORE:
                    apdu = found
            except ApduTooLargeError as exc:
                error = exc
                self._excused += exc.size
            except RemoteProtocolError as exc:
                error = exc
            dropped = buffer.discarded_bytes - before
            excused = min(dropped, self._excused)
            self._excused -= excused
            if error is not None or dropped > excused:
                self.link.garbage(self, dropped - excused, error)
            if apdu is not None:
                self.link.apdu_received(self, apdu)
            elif error is None:
                return

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        why = "closed for garbage" if self.state.closing else reason.getErrorMessage()
        if isinstance(self.factory, C1222Factory):
            self.factory.protocols.discard(self)
        self.link.channel_closed(self, why)

    def write_apdu(self, data: bytes) -> None:
        transport: Any = self.transport
        if transport is not None:
            transport.write(data)

    def close(self) -> None:
        self.state.closing = True
        transport: Any = self.transport
        if transport is not None:
            transport.loseConnection()


class C1222Factory(ServerFactory):
    """The TCP listener's factory; refuses connections past the rate cap (closes them at once)."""

    def __init__(self, link: C1222Link, *, rate_limit: ConnectionRateLimit | None = None) -> None:
        self.link = link
        self.rate_limit = rate_limit
        """The new-connection cap, or None."""
        self.protocols: set[C1222Protocol] = set()
        """Open connections."""

    def buildProtocol(self, addr: IAddress) -> C1222Protocol | None:  # type: ignore[override]
        limit = self.rate_limit
        if limit is not None and not limit.allow(self.link.clock.seconds()):
            log.info("c1222 refused {peer}: new-connection cap", peer=_peer_text("tcp", addr))
            return None
        proto = C1222Protocol(self.link)
        proto.factory = self
        return proto


# -- UDP ---------------------------------------------------------------------------------------


class _UdpPeer:
    """One UDP peer seen as a channel."""

    def __init__(self, owner: C1222Datagram, address: tuple[str, int]) -> None:
        link = owner.link
        self.owner = owner
        self.address = address
        self.peer = f"udp:{address[0]}:{address[1]}"
        self.correlator: Any = Correlator(link.clock, on_timeout=lambda _: link.counters.error("timeout"))
        self.state = ChannelState()

    def write_apdu(self, data: bytes) -> None:
        transport: Any = self.owner.transport
        if transport is not None:
            transport.write(data, self.address)

    def close(self) -> None:
        self.owner.forget(self.address, "closed for garbage")


class C1222Datagram(DatagramProtocol):
    """C12.22 over UDP: one datagram, one APDU; each sender address is a channel."""

    def __init__(self, link: C1222Link) -> None:
        self.link = link
        self.peers: dict[tuple[str, int], _UdpPeer] = {}

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        peer = self.peers.get(addr)
        if peer is None:
            peer = self.peers[addr] = _UdpPeer(self, addr)
            self.link.channel_opened(peer)
        try:
            receive_datagram(datagram, max_apdu_size=self.link.settings.max_apdu_size)
        except RemoteProtocolError as exc:
            self.link.garbage(peer, len(datagram), exc)
            return
        self.link.apdu_received(peer, datagram)

    def forget(self, addr: tuple[str, int], reason: str) -> None:
        """Drop a peer's state (its meters become unreachable until it registers again)."""
        peer = self.peers.pop(addr, None)
        if peer is not None:
            self.link.channel_closed(peer, reason)

    def stopProtocol(self) -> None:
        for addr in list(self.peers):
            self.forget(addr, "listener stopped")


# -- the listener ------------------------------------------------------------------------------

_UDP = re.compile(r"udp:(\d+)(?::interface=(.+))?")


def parse_udp_endpoint(text: str) -> tuple[int, str]:
    """``udp:PORT[:interface=ADDRESS]`` -> (port, interface); the config has checked it."""
    match = _UDP.fullmatch(text)
    if match is None:
        raise ValueError(f"not a UDP endpoint: {text!r}")
    return int(match.group(1)), (match.group(2) or "").replace("\\:", ":")


class C1222Listener(Service):
    """Listens for C12.22 over TCP (and UDP when configured) on ``reactor``."""

    def __init__(
        self,
        reactor: Any,
        tcp: C1222Link,
        endpoint: str,
        *,
        udp: C1222Link | None = None,
        udp_endpoint: str | None = None,
        rate_limit: ConnectionRateLimit | None = None,
    ) -> None:
        self.reactor = reactor
        self.tcp = tcp
        self.endpoint = endpoint
        self.udp = udp
        self.udp_endpoint = udp_endpoint
        self.factory = C1222Factory(tcp, rate_limit=rate_limit)
        self.datagram = C1222Datagram(udp) if udp is not None else None
        self.tcp_port: Any = None
        self.udp_port: Any = None
        self.listening: Deferred[Any] = Deferred()
        """Fires with the TCP listening port once it listens (tests read its port number)."""

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        if self.datagram is not None and self.udp_endpoint is not None:
            port, interface = parse_udp_endpoint(self.udp_endpoint)
            # Twisted reads datagrams into an 8 KiB buffer by default, which truncates a larger
            # C12.22 APDU into garbage; take any UDP payload (the APDU size limit applies after).
            self.udp_port = self.reactor.listenUDP(
                port, self.datagram, interface=interface, maxPacketSize=MAX_UDP_PAYLOAD
            )
        d = serverFromString(self.reactor, self.endpoint).listen(self.factory)  # type: ignore[no-untyped-call]

        def listening(port: Any) -> Any:
            self.tcp_port = port
            log.info("c1222 listening on {endpoint}", endpoint=self.endpoint)
            self.listening.callback(port)
            return port

        def failed(failure: Failure) -> None:
            log.failure("c1222 cannot listen on {endpoint}", failure, endpoint=self.endpoint)
            self.listening.errback(failure)

        d.addCallbacks(listening, failed)

    def stopService(self) -> Deferred[Any]:
        super().stopService()  # type: ignore[no-untyped-call]
        waits: list[Deferred[Any]] = []
        if self.tcp_port is not None:
            waits.append(self.tcp_port.stopListening())
        if self.udp_port is not None:
            waits.append(self.udp_port.stopListening())  # stopProtocol forgets every peer
        for proto in list(self.factory.protocols):
            transport: Any = proto.transport
            if transport is not None:
                transport.abortConnection()
            self.tcp.channel_closed(proto, "listener stopped")  # now, not when the abort lands
        pending = [d for d in waits if isinstance(d, Deferred)]
        done: Deferred[Any] = DeferredList(pending) if pending else succeed(None)
        return done


def build_c1222(
    config: Config,
    reactor: Any,
    *,
    registry: MeterRegistry | None = None,
    metrics: GatewayMetrics | None = None,
    on_alarm: AlarmHook | None = None,
    on_register: Callable[[MeterRegistered], object] | None = None,
    keys_for: Callable[[str], Mapping[int, bytes] | None] | None = None,
    settings: C1222Settings | None = None,
) -> C1222Listener:
    """The C12.22 links (TCP, and UDP when ``c1222.udp_listen`` is set) and their listener.

    The links are ``listener.tcp`` and ``listener.udp``; give them to the MeterClient.
    """
    s = settings if settings is not None else C1222Settings.from_config(config)
    common: dict[str, Any] = {
        "clock": reactor, "registry": registry, "metrics": metrics, "on_alarm": on_alarm,
        "on_register": on_register, "keys_for": keys_for,
    }  # fmt: skip
    tcp = C1222Link(s, kind=LinkKind.C1222_TCP, **common)
    udp = C1222Link(s, kind=LinkKind.C1222_UDP, **common) if config.c1222.udp_listen else None
    return C1222Listener(
        reactor,
        tcp,
        config.c1222.listen,
        udp=udp,
        udp_endpoint=config.c1222.udp_listen,
        rate_limit=ConnectionRateLimit.from_config(config.throttle),
    )
