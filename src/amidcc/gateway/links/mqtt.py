"""The RF-mesh link: C12.22 APDUs as MQTT payloads, one broker connection for every cell.

Theory of operation. The link is a :class:`~amidcc.gateway.links.c1222.C1222Link` of kind
``mqtt`` whose *channels* are RF cells: the gateway subscribes to every cell's uplink
(``{prefix}/rf/+/up``, :mod:`amidcc.net.topics`), and the first APDU from a cell opens that cell's
channel. Everything C12.22 is the C12.22 link's: registration into the
:class:`~amidcc.gateway.registry.MeterRegistry` (the collector registers as a relay, then its
meters), correlation by invocation id (:mod:`amidcc.gateway.correlation`, one correlator per cell),
alarms to the same ``on_alarm(address, services, now)`` hook, security, garbage limits. A channel
writes by publishing on the cell's downlink (``{prefix}/rf/{cell}/down``, QoS 1); the collector
routes the APDU down its relays by called AP title.

Broker sessions. One :class:`~amidcc.net.mqtt.MqttClient` reconnects with backoff
(``[mqtt] reconnect_min/max``) and restores its subscriptions. When the session drops, every
pending request fails with :class:`LinkDown` at once and requests made while it is down fail the
same way: requests are **never re-sent by the link**, because a procedure or a write must not run
twice on a guess; the :class:`~amidcc.gateway.meters.MeterClient` retries what is safe to retry
(reads, and procedures after reading ST8 back). The meters' routes survive the outage: when the
session is back, each cell channel is opened anew with the meters it carried (no re-registration
needed), and its tags continue from the old ones, so a late answer to a request of the old session
cannot match a new one. QoS 1 and a persistent session (``clean_session=False`` with the fixed
``[mqtt] client_id``) let a broker that keeps sessions hold uplinks while the gateway is away; a
restarted broker without persistence keeps nothing, which is why the simulated mesh holds its
uplinks until it is connected again (see :mod:`amidcc.simulators.mesh`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from amidcc.codecs.c1222 import receive_datagram
from amidcc.codecs.errors import RemoteProtocolError
from amidcc.net import topics
from amidcc.net.mqtt import MqttClient, MqttConfig, MqttState

from ..config import Config
from ..correlation import Correlator
from ..metrics import GatewayMetrics
from ..registry import MeterRegistry
from .base import LinkDown, LinkKind, MeterAddress
from .c1222 import AlarmHook, C1222Link, C1222Settings, ChannelState, MeterRegistered

__all__ = ["CellChannel", "MqttLink", "build_mqtt", "mqtt_config_from"]

log = Logger(namespace="amidcc.gateway.mqtt")


class CellChannel:
    """One RF cell seen as a C12.22 channel: writes go to the cell's downlink topic."""

    def __init__(self, owner: MqttLink, cell: str, *, first_tag: int = 1) -> None:
        link = owner.c1222
        self.owner = owner
        self.cell = cell
        self.peer = f"mqtt:{cell}"
        self.correlator: Any = Correlator(
            link.clock, first_tag=first_tag, on_timeout=lambda _: link.counters.error("timeout")
        )
        self.state = ChannelState()

    def write_apdu(self, data: bytes) -> None:
        self.owner.publish_down(self.cell, data)

    def close(self) -> None:
        self.state.closing = True
        self.owner.close_cell(self.cell, "closed for garbage")


class MqttLink(Service):
    """The RF-mesh :class:`~amidcc.gateway.links.base.MeterLink`, and the service that runs it."""

    kind = LinkKind.MQTT

    def __init__(
        self,
        reactor: Any,
        c1222: C1222Link,
        *,
        mqtt: MqttConfig,
        prefix: str = topics.DEFAULT_PREFIX,
        watch_interval: float = 0.05,
    ) -> None:
        self.reactor = reactor
        self.c1222 = c1222
        """The C12.22 machinery (registration, correlation, alarms) this link feeds."""
        self.prefix = prefix
        self.client = MqttClient(reactor, mqtt)
        """The one broker connection."""
        self.cells: dict[str, CellChannel] = {}
        """Open cell channels."""
        self._saved: dict[str, tuple[set[str], str | None, int]] = {}
        self._was_up = False
        self._watch = LoopingCall(self._check_session)
        self._watch.clock = reactor
        self._watch_interval = watch_interval
        self.session_losses = 0
        """Broker sessions lost since start."""

    # -- MeterLink ----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the broker session is up."""
        return self.client.state is MqttState.CONNECTED

    def is_reachable(self, address: MeterAddress) -> bool:
        """Registered in a cell, and the broker session is up."""
        return self._session() and self.c1222.is_reachable(address)

    def request(
        self, address: MeterAddress, services: Sequence[bytes], *, timeout: float
    ) -> Deferred[list[bytes]]:
        """Send ``services`` to the meter through its cell; fails with LinkDown while offline."""
        if not self._session():
            return fail(LinkDown(f"MQTT broker {self.client.url} is not connected"))
        return self.c1222.request(address, services, timeout=timeout)

    def _session(self) -> bool:
        """Whether the session is up, noticing a change now rather than at the next watch."""
        if self.connected != self._was_up:
            self._check_session()
        return self._was_up

    def cell_of(self, address: MeterAddress) -> str | None:
        """The cell the meter registered in, or None."""
        channel = self.c1222.routes.get(address.ap_title)
        return channel.cell if isinstance(channel, CellChannel) else None

    # -- service ------------------------------------------------------------------------------

    def startService(self) -> None:  # noqa: N802
        super().startService()  # type: ignore[no-untyped-call]
        self.client.subscribe(topics.uplink_filter(self.prefix), 1, self._on_uplink).addErrback(
            lambda f: log.failure("mqtt uplink subscription failed", f)
        )
        self.client.connect().addErrback(lambda f: log.info("mqtt: {e}", e=f.getErrorMessage()))
        self._watch.start(self._watch_interval, now=False)

    def stopService(self) -> Deferred[Any]:  # noqa: N802
        super().stopService()  # type: ignore[no-untyped-call]
        if self._watch.running:
            self._watch.stop()
        for cell in list(self.cells):
            self.close_cell(cell, "link stopped")
        self._saved.clear()
        self._was_up = False
        d: Deferred[Any] = self.client.disconnect()
        return d

    def connected_once(self) -> Deferred[None]:
        """Fires once the broker session is up (at once if it is)."""
        if self.connected:
            return succeed(None)
        return self.client.connect()

    # -- channels -----------------------------------------------------------------------------

    def publish_down(self, cell: str, data: bytes) -> None:
        """Publish one APDU on the cell's downlink."""
        d = self.client.publish(topics.downlink(self.prefix, cell), data, 1)
        d.addErrback(lambda f: log.info("mqtt downlink {cell}: {e}", cell=cell, e=f.getErrorMessage()))

    def close_cell(self, cell: str, reason: str) -> None:
        """Forget a cell's channel: its meters are unreachable until they register again."""
        channel = self.cells.pop(cell, None)
        if channel is not None:
            self.c1222.channel_closed(channel, reason)

    def _channel(self, cell: str) -> CellChannel:
        channel = self.cells.get(cell)
        if channel is None:
            channel = self.cells[cell] = CellChannel(self, cell)
            self.c1222.channel_opened(channel)
        return channel

    def _on_uplink(self, topic: str, payload: bytes) -> None:
        cell = topics.cell_from_uplink(self.prefix, topic)
        if cell is None:
            return
        channel = self._channel(cell)
        try:
            receive_datagram(payload, max_apdu_size=self.c1222.settings.max_apdu_size)
        except RemoteProtocolError as exc:
            self.c1222.garbage(channel, len(payload), exc)
            return
        self.c1222.apdu_received(channel, payload)

    # -- the broker session -------------------------------------------------------------------

    def _check_session(self) -> None:
        up, was = self.connected, self._was_up
        self._was_up = up  # first: failing pending requests may re-enter request()
        if up and not was:
            self._session_up()
        elif was and not up:
            self._session_lost()

    def _session_lost(self) -> None:
        self.session_losses += 1
        log.warn("mqtt session to {url} lost; pending requests fail", url=self.client.url)
        for cell, channel in list(self.cells.items()):
            titles = set(channel.state.titles)
            self._saved[cell] = (titles, channel.state.collector, channel.correlator.new_tag())
            self.close_cell(cell, "broker session lost")

    def _session_up(self) -> None:
        saved, self._saved = self._saved, {}
        for cell, (titles, collector, next_tag) in saved.items():
            channel = self.cells.get(cell)
            if channel is None:
                channel = self.cells[cell] = CellChannel(self, cell, first_tag=next_tag)
                channel.state.collector = collector
                self.c1222.channel_opened(channel)
            elif channel.state.collector is None:
                channel.state.collector = collector
            # Restore the routes even when the cell spoke first after the reconnect (its uplink
            # opened a fresh channel that knows no meters): skipping it left every meter of the
            # cell "not connected" until it registered again, which a mesh meter never does.
            for title in titles:
                if title not in self.c1222.routes:
                    self.c1222.routes[title] = channel
                    channel.state.titles.add(title)
        self.c1222._gauges()  # same package: the C12.22 link owns the reachable gauge
        log.info("mqtt session to {url} up; {n} cells restored", url=self.client.url, n=len(saved))


def mqtt_config_from(config: Config, **overrides: Any) -> MqttConfig:
    """The broker connection of ``[mqtt]`` (``mqtts://`` is refused by :class:`MqttConfig`)."""
    m = config.mqtt
    values: dict[str, Any] = {
        "url": m.url,
        "client_id": m.client_id or f"amidcc-{config.gateway.name}",
        "clean_session": False,
        "keepalive": max(1, round(m.keepalive)),
        "backoff_min": m.reconnect_min,
        "backoff_max": m.reconnect_max,
    }
    values.update(overrides)
    return MqttConfig(**values)


def build_mqtt(
    config: Config,
    reactor: Any,
    *,
    registry: MeterRegistry | None = None,
    metrics: GatewayMetrics | None = None,
    on_alarm: AlarmHook | None = None,
    on_register: Callable[[MeterRegistered], object] | None = None,
    keys_for: Callable[[str], Mapping[int, bytes] | None] | None = None,
    settings: C1222Settings | None = None,
    mqtt: MqttConfig | None = None,
) -> MqttLink:
    """The RF-mesh link from ``[mqtt]`` (and ``[c1222]`` for the C12.22 settings).

    The result is both the MeterLink (give it to the MeterClient) and a Service (parent it under
    the gateway's ``links``; starting it connects to the broker).
    """
    s = settings if settings is not None else C1222Settings.from_config(config)
    c1222 = C1222Link(
        s, clock=reactor, kind=LinkKind.MQTT, registry=registry, metrics=metrics,
        on_alarm=on_alarm, on_register=on_register, keys_for=keys_for,
    )  # fmt: skip
    return MqttLink(
        reactor, c1222, mqtt=mqtt or mqtt_config_from(config), prefix=config.mqtt.topic_prefix
    )
