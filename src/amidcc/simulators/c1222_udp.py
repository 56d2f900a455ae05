"""Simulated meters and collectors on C12.22 over UDP: one datagram per APDU.

The same :class:`~amidcc.simulators.c1222_tcp.C1222Node` s as over TCP; only the transport
differs. Each node binds its own UDP socket (so the head-end sees one peer per node, as it sees one
connection per node over TCP), sends its registrations when it starts and re-sends those the
head-end has not accepted every ``register_retry`` seconds (datagrams get lost), answers the
datagrams it receives, and pushes alarms to the head-end's address.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from twisted.application.internet import TimerService
from twisted.application.service import MultiService, Service
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from amidcc.codecs.c1222 import receive_datagram
from amidcc.codecs.c1222.datagram import MAX_UDP_PAYLOAD
from amidcc.codecs.errors import CodecError
from amidcc.codecs.psem import ConnectionType

from .c1222_tcp import C1222Node, NodeSettings, Outgoing, deliver

__all__ = ["SimC1222Datagram", "SimC1222UdpService", "UDP_CONNECTION_TYPE", "udp_settings"]

log = Logger(namespace="amidcc.simulators.c1222")

#: Register connection_type bits of a UDP node (connectionless).
UDP_CONNECTION_TYPE = int(ConnectionType.CONNECTIONLESS_MODE | ConnectionType.ACCEPT_CONNECTIONLESS)


def udp_settings(settings: NodeSettings | None = None) -> NodeSettings:
    """``settings`` with the connectionless Register bits."""
    return replace(settings or NodeSettings(), connection_type=UDP_CONNECTION_TYPE)


class SimC1222Datagram(DatagramProtocol):
    """One node's UDP socket; everything goes to the head-end at ``gateway``."""

    def __init__(
        self, node: C1222Node, gateway: tuple[str, int], clock: Callable[[], float], call_later: Callable[..., object]
    ) -> None:
        self.node = node
        self.gateway = gateway
        self.clock = clock
        self.call_later = call_later

    def startProtocol(self) -> None:
        self.register()

    def register(self) -> None:
        """Send the Register APDUs the head-end has not accepted yet."""
        for apdu in self.node.registrations(self.clock(), skip=self.node.registered):
            self._write(apdu)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        try:
            (apdu,) = receive_datagram(datagram, max_apdu_size=self.node.settings.max_apdu_size)
        except CodecError as exc:
            log.info("sim {node}: bad datagram: {error}", node=self.node.name, error=str(exc))
            return
        self.send(self.node.receive(apdu, self.clock()))

    def send(self, outgoing: Iterable[Outgoing]) -> None:
        """Send now, or after the latency fault's delay."""
        deliver(outgoing, self._write, self.call_later)

    def _write(self, data: bytes) -> None:
        transport: Any = self.transport
        if transport is not None:
            transport.write(data, self.gateway)


class _Port(Service):
    def __init__(self, reactor: Any, proto: SimC1222Datagram, interface: str) -> None:
        self.reactor = reactor
        self.proto = proto
        self.interface = interface
        self.port: Any = None

    def startService(self) -> None:
        super().startService()
        self.port = self.reactor.listenUDP(
            0, self.proto, interface=self.interface, maxPacketSize=MAX_UDP_PAYLOAD
        )

    def stopService(self) -> Any:
        super().stopService()
        if self.port is not None:
            return self.port.stopListening()
        return None


class SimC1222UdpService(MultiService):
    """Nodes talking to the head-end at ``gateway`` (host, port) over UDP."""

    def __init__(
        self,
        reactor: Any,
        gateway: tuple[str, int],
        nodes: Sequence[C1222Node],
        *,
        tick_interval: float = 1.0,
        register_retry: float = 2.0,
        clock: Callable[[], float] | None = None,
        interface: str = "127.0.0.1",
    ) -> None:
        super().__init__()
        self.nodes = list(nodes)
        self.clock = clock if clock is not None else reactor.seconds
        self.protocols = [SimC1222Datagram(n, gateway, self.clock, reactor.callLater) for n in self.nodes]
        for proto in self.protocols:
            _Port(reactor, proto, interface).setServiceParent(self)
        for interval, step in ((tick_interval, self.tick), (register_retry, self.retry)):
            timer = TimerService(interval, step)
            timer.clock = reactor
            timer.setServiceParent(self)

    def tick(self) -> None:
        """Advance every meter and push its alarms."""
        now = self.clock()
        for proto in self.protocols:
            proto.send(proto.node.tick(now))

    def retry(self) -> None:
        """Re-send the registrations not accepted yet."""
        for proto in self.protocols:
            if proto.transport is not None:
                proto.register()

    @property
    def registered(self) -> int:
        """Meters (and collectors) whose registration the head-end accepted."""
        return sum(len(n.registered) for n in self.nodes)
