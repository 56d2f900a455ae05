"""A simulated RF mesh over MQTT: cells, relays and hops, each hop a real MQTT message.

Theory of operation. A *cell* is a collector (the root, with the backhaul to the head-end), relays
below it forming a tree, and meters below the relays (:mod:`amidcc.net.topics` names the topics).
Every node has a parent and may have alternate parents. A message crosses the mesh one RF hop at a
time, and each hop is one QoS 1 publish on the receiving node's topic:

* down: the head-end publishes on ``rf/{cell}/down``; the collector looks up the called AP title in
  the table of titles its subtree holds and publishes on ``node/{child}/down``; each relay does the
  same with its own table, until the meter's ``node/{meter}/down``;
* up: a node publishes on ``node/{parent}/up``; each relay forwards to its own parent; the collector
  publishes on ``rf/{cell}/up``.

Each hop is lost with the probability and delayed by the latency of :class:`HopProfile` (one seeded
``random.Random`` per mesh: the same seed, the same losses, as long as the message order is the
same). A failed relay (:meth:`RfMesh.fail_relay`) drops what reaches it; its children re-route to
their first alternate parent whose path is alive after ``reroute_delay`` when the scenario allows
(``MeshSettings.reroute``), otherwise they stay cut off. Alternates stay inside the cell.

The meters' C12.22 side (registration, answers with :meth:`SimMeter.handle_services`, alarms from
:meth:`SimMeter.tick`, keys, link faults) is :class:`~amidcc.simulators.c1222_tcp.C1222Node`, one
per cell, with the collector's AP title; only Trace is answered here, with the path the request
took: collector, the relays from the top down, then the meter [L]. The whole fleet shares one (or
``connections``) :class:`~amidcc.net.mqtt.MqttClient`. While the broker is away, uplink APDUs are
held here and sent ``resume_delay`` after the connection is back (so the head-end has had time to
subscribe again after a broker restart). The cell's topology is published as retained JSON on
``rf/{cell}/status`` at start and after every change.
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from amidcc.codecs.c1222 import ApTitle, decode_apdu
from amidcc.codecs.errors import CodecError
from amidcc.codecs.psem import TraceResponse, UniversalId, encode_response
from amidcc.net import topics
from amidcc.net.mqtt import MqttClient, MqttConfig, MqttState

from .c1222_tcp import C1222Node, NodeSettings, Outgoing, deliver
from .meter import SimMeter

__all__ = [
    "CellPlan",
    "HopProfile",
    "MeshNode",
    "MeshSettings",
    "MeshStats",
    "RelayPlan",
    "RfMesh",
    "build_mesh",
    "plan_cells",
    "start_mesh",
]

log = Logger(namespace="amidcc.simulators.mesh")

_DOWN, _UP = "down", "up"


# -- plans and settings -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class HopProfile:
    """What one RF hop does to a message."""

    loss: float = 0.0
    """Probability that the hop loses the message."""
    latency: float = 0.0
    """Seconds added by the hop."""
    jitter: float = 0.0
    """Up to this many seconds more, uniformly drawn per hop."""


@dataclass(frozen=True, kw_only=True)
class RelayPlan:
    """One relay of a cell."""

    name: str
    """Node id in topics (unique in the cell)."""
    title: ApTitle
    """The relay's AP title (shown in Trace answers)."""
    parent: str
    """Name of the parent: the collector's or another relay's."""
    alternates: tuple[str, ...] = ()
    """Alternate parents, in order of preference."""


@dataclass(frozen=True, kw_only=True)
class CellPlan:
    """One cell: the collector, its relays and where each meter hangs."""

    name: str
    """Cell id in topics."""
    collector: str
    """Collector's node id."""
    collector_title: ApTitle
    """Collector's AP title (it registers as a relay)."""
    relays: tuple[RelayPlan, ...] = ()
    """Relays, parents listed before their children."""
    meters: tuple[tuple[SimMeter, str, tuple[str, ...]], ...] = ()
    """(meter, parent, alternate parents) for each meter of the cell."""


@dataclass(frozen=True, kw_only=True)
class MeshSettings:
    """How the mesh behaves (one object for the whole fleet)."""

    prefix: str = topics.DEFAULT_PREFIX
    """First level of every topic."""
    hop: HopProfile = field(default_factory=HopProfile)
    """Loss and latency of every hop, unless ``hop_by_node`` names the receiving node."""
    hop_by_node: dict[str, HopProfile] = field(default_factory=dict)
    """Per-node override (keyed ``cell/node``) for the hops into that node."""
    reroute: bool = True
    """Children of a failed relay move to an alternate parent (False: they stay cut off)."""
    reroute_delay: float = 0.0
    """Seconds before a cut-off child has found its alternate parent."""
    resume_delay: float = 0.3
    """Seconds after a reconnect before held uplink APDUs are sent."""
    register_interval: float = 5.0
    """Seconds between Register attempts of nodes the head-end has not accepted yet."""
    tick_interval: float = 1.0
    """Seconds between meter ticks (alarms pushed)."""
    watch_interval: float = 0.05
    """Seconds between looks at the broker connection's state."""
    qos: int = 1
    """QoS of every publish."""
    node: NodeSettings = field(default_factory=NodeSettings)
    """The C12.22 side of each cell (gateway title, security, base OID)."""


@dataclass(frozen=True, kw_only=True)
class MeshStats:
    """Counters of one mesh."""

    hops: int
    """Hops published."""
    lost: int
    """Hops lost to the loss probability."""
    dropped: int
    """Messages that reached a failed node, or had no route."""
    uplinks: int
    """APDUs published on a cell's uplink."""
    held: int
    """Uplink APDUs waiting for the broker now."""
    registered: int
    """Nodes whose Register the head-end accepted."""


def plan_cells(
    meters: Sequence[SimMeter],
    *,
    cells: int = 1,
    relays: int = 2,
    chains: int = 1,
    alternates: bool = True,
    collector_base: tuple[int, ...] = (2, 9),
    relay_base: tuple[int, ...] = (2, 8),
) -> list[CellPlan]:
    """Spread ``meters`` over ``cells`` cells of ``relays`` relays each, in ``chains`` chains.

    Relay ``k`` (1-based) hangs below relay ``k - chains`` (the collector for the first
    ``chains``); meters go round-robin to the relays (to the collector when there are none). With
    ``alternates``, each node's alternate parent is the same-depth node of the next chain.
    """
    plans: list[CellPlan] = []
    per_cell = -(-len(meters) // max(1, cells))
    for c in range(cells):
        batch = meters[c * per_cell:(c + 1) * per_cell]
        if not batch and c:
            break
        plans.append(_plan_cell(c + 1, batch, relays, max(1, chains), alternates, collector_base, relay_base))
    return plans


def _plan_cell(
    n: int, meters: Sequence[SimMeter], count: int, chains: int, alternates: bool,
    collector_base: tuple[int, ...], relay_base: tuple[int, ...],
) -> CellPlan:
    collector = f"c{n}"
    names = [f"r{k}" for k in range(1, count + 1)]

    def parent_of(k: int) -> str:  # k is 1-based
        return collector if k <= chains else names[k - chains - 1]

    def alternate_of(k: int) -> tuple[str, ...]:
        if not alternates or chains < 2:
            return ()
        sibling = k + 1 if k % chains else k - chains + 1
        return (parent_of(sibling),) if sibling <= count and parent_of(sibling) != parent_of(k) else ()

    relays = tuple(
        RelayPlan(name=names[k - 1], title=ApTitle(arcs=(*relay_base, n, k), relative=True),
                  parent=parent_of(k), alternates=alternate_of(k))
        for k in range(1, count + 1)
    )
    placed: list[tuple[SimMeter, str, tuple[str, ...]]] = []
    for i, meter in enumerate(meters):
        if not names:
            placed.append((meter, collector, ()))
            continue
        k = i % count
        alt = (names[(k + 1) % count],) if alternates and count > 1 else ()
        placed.append((meter, names[k], alt))
    return CellPlan(name=f"cell{n}", collector=collector,
                    collector_title=ApTitle(arcs=(*collector_base, n), relative=True),
                    relays=relays, meters=tuple(placed))


# -- runtime model --------------------------------------------------------------------------------


class MeshNode:
    """A collector, relay or meter of a cell, as the mesh sees it."""

    __slots__ = ("name", "title", "parent", "alternates", "up", "meter")

    def __init__(self, name: str, title: ApTitle, parent: str | None,
                 alternates: tuple[str, ...] = (), meter: SimMeter | None = None) -> None:
        self.name = name
        """Node id in topics."""
        self.title = title
        """AP title."""
        self.parent = parent
        """Current parent (None for the collector)."""
        self.alternates = alternates
        """Alternate parents."""
        self.up = True
        """False while the node has failed."""
        self.meter = meter
        """The simulated meter, for meter nodes."""


class _CellNode(C1222Node):
    """The cell's C12.22 node; Trace answers with the path through the mesh."""

    def __init__(self, cell: _Cell, meters: Sequence[SimMeter], settings: NodeSettings, seed: int) -> None:
        super().__init__(meters, settings, collector=cell.nodes[cell.collector].title, seed=seed)
        self.cell = cell

    def _trace(self, meter: SimMeter, service: bytes) -> bytes:  # overrides the one-hop answer
        answer = super()._trace(meter, service)
        if answer[:1] != b"\x00":
            return answer
        path = self.cell.path(meter.meter_id)
        hops = tuple(UniversalId(arcs=self.cell.nodes[n].title.arcs, relative=self.cell.nodes[n].title.relative)
                     for n in reversed(path))
        return encode_response(TraceResponse(ap_titles=hops))


class _Cell:
    """One cell's nodes and routing tables."""

    def __init__(self, plan: CellPlan, settings: NodeSettings, seed: int) -> None:
        self.name = plan.name
        self.collector = plan.collector
        self.nodes: dict[str, MeshNode] = {plan.collector: MeshNode(plan.collector, plan.collector_title, None)}
        for relay in plan.relays:
            self.nodes[relay.name] = MeshNode(relay.name, relay.title, relay.parent, relay.alternates)
        for meter, parent, alts in plan.meters:
            title = ApTitle(arcs=meter.identity.ap_title, relative=meter.identity.ap_title_relative)
            self.nodes[meter.meter_id] = MeshNode(meter.meter_id, title, parent, alts, meter)
        for node in self.nodes.values():
            for p in (node.parent, *node.alternates):
                if p is not None and p not in self.nodes:
                    raise ValueError(f"cell {self.name}: {node.name} names unknown parent {p!r}")
        self.by_title = {str(n.title): n.name for n in self.nodes.values()}
        self.c1222 = _CellNode(self, [m for m, _p, _a in plan.meters], settings, seed)
        self.routes: dict[str, dict[str, str]] = {}
        self.rebuild()

    def path(self, name: str) -> list[str]:
        """``name`` then its ancestors up to the collector (stops at a loop)."""
        out = [name]
        parent = self.nodes[name].parent
        while parent is not None and parent not in out:
            out.append(parent)
            parent = self.nodes[parent].parent
        return out

    def alive(self, name: str) -> bool:
        """Whether every node from ``name`` up to the collector works."""
        path = self.path(name)
        return path[-1] == self.collector and all(self.nodes[n].up for n in path)

    def rebuild(self) -> None:
        """Down-routing tables: for each node, AP title of every descendant -> the child toward it."""
        routes: dict[str, dict[str, str]] = {n: {} for n in self.nodes}
        for name, node in self.nodes.items():
            path = self.path(name)
            for child, ancestor in zip(path, path[1:], strict=False):
                routes[ancestor][str(node.title)] = child
        self.routes = routes

    def status(self, now: float) -> dict[str, Any]:
        """The retained status document."""
        def entry(n: MeshNode) -> dict[str, Any]:
            return {"title": str(n.title), "parent": n.parent, "alternates": list(n.alternates),
                    "up": n.up, "reachable": self.alive(n.name)}
        collector = self.nodes[self.collector]
        return {
            "cell": self.name, "time": now,
            "collector": {"name": collector.name, "title": str(collector.title), "up": collector.up},
            "relays": {n.name: entry(n) for n in self.nodes.values() if n.meter is None and n.parent},
            "meters": {n.name: entry(n) for n in self.nodes.values() if n.meter is not None},
        }


# -- the Twisted side -----------------------------------------------------------------------------


class RfMesh(Service):
    """Cells on a broker: hops, relays, registration, answers, alarms and status."""

    def __init__(
        self,
        reactor: Any,
        plans: Sequence[CellPlan],
        *,
        url: str,
        settings: MeshSettings | None = None,
        seed: int = 0,
        connections: int = 1,
        mqtt: dict[str, Any] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.reactor = reactor
        self.settings = settings if settings is not None else MeshSettings()
        self.clock = clock if clock is not None else reactor.seconds
        self.cells: dict[str, _Cell] = {}
        for i, plan in enumerate(plans):
            self.cells[plan.name] = _Cell(plan, self.settings.node, seed + i)
        self._rng = random.Random(seed)
        options = {"url": url, "max_queued": 0, **(mqtt or {})}
        self.clients = [MqttClient(reactor, MqttConfig(**options)) for _ in range(max(1, connections))]
        self._client_of = {name: self.clients[i % len(self.clients)] for i, name in enumerate(self.cells)}
        self._was_up = dict.fromkeys(self.clients, False)
        self._holding: dict[MqttClient, deque[tuple[str, bytes]]] = {c: deque() for c in self.clients}
        self._resuming: set[MqttClient] = set()
        self._counts = dict.fromkeys(("hops", "lost", "dropped", "uplinks"), 0)
        self._loops = [LoopingCall(self._watch), LoopingCall(self._tick), LoopingCall(self._register_all)]
        for loop in self._loops:
            loop.clock = reactor
        self.ready: Deferred[None] = Deferred()
        """Fires once every client has connected and subscribed for the first time."""

    # -- lifecycle --------------------------------------------------------------------------------

    def startService(self) -> None:  # noqa: N802
        super().startService()  # type: ignore[no-untyped-call]
        prefix = self.settings.prefix
        subs: list[Deferred[Any]] = []
        for name, cell in self.cells.items():
            client = self._client_of[name]
            subs.append(client.subscribe(topics.downlink(prefix, name), self.settings.qos, self._on_down))
            node_filter = f"{prefix}/rf/{name}/node/+/+"
            subs.append(client.subscribe(node_filter, self.settings.qos, self._on_node))
            del cell
        subs.extend(c.connect() for c in self.clients)
        done = DeferredList(subs, fireOnOneErrback=True, consumeErrors=True)
        done.addCallbacks(self._started, self._start_failed)
        interval = self.settings
        self._loops[0].start(interval.watch_interval, now=False)
        self._loops[1].start(interval.tick_interval, now=False)

    def _started(self, _: object) -> None:
        for name in self.cells:
            self._publish_status(name)
        self._register_all()
        self._loops[2].start(self.settings.register_interval, now=False)
        if not self.ready.called:
            self.ready.callback(None)

    def _start_failed(self, failure: Any) -> None:
        log.failure("mesh: could not start", failure)
        if not self.ready.called:
            self.ready.errback(failure)

    def stopService(self) -> Deferred[Any]:  # noqa: N802
        super().stopService()  # type: ignore[no-untyped-call]
        for loop in self._loops:
            if loop.running:
                loop.stop()
        return DeferredList([c.disconnect() for c in self.clients], consumeErrors=True)

    # -- faults ------------------------------------------------------------------------------------

    def fail_relay(self, cell: str, name: str) -> None:
        """The relay (or collector) stops; its children re-route if the scenario allows."""
        c = self.cells[cell]
        c.nodes[name].up = False
        self._publish_status(cell)
        if not self.settings.reroute:
            return
        orphans = [n for n in c.nodes.values() if n.parent == name and n.alternates]
        self.reactor.callLater(self.settings.reroute_delay, self._reroute, cell, [n.name for n in orphans])

    def restore_relay(self, cell: str, name: str) -> None:
        """The relay works again (children that moved away stay where they are)."""
        self.cells[cell].nodes[name].up = True
        self._publish_status(cell)

    def _reroute(self, cell: str, names: list[str]) -> None:
        c = self.cells[cell]
        for name in names:
            node = c.nodes[name]
            if node.parent is not None and c.alive(node.parent):
                continue
            for alt in node.alternates:
                old, node.parent = node.parent, alt
                if c.alive(name):
                    node.alternates = tuple(a for a in node.alternates if a != alt) + ((old,) if old else ())
                    log.info("mesh {cell}: {node} re-routed from {old} to {new}", cell=cell, node=name, old=old, new=alt)
                    break
                node.parent = old
        c.rebuild()
        self._publish_status(cell)

    # -- hops --------------------------------------------------------------------------------------

    def _profile(self, cell: str, node: str) -> HopProfile:
        return self.settings.hop_by_node.get(f"{cell}/{node}", self.settings.hop)

    def _hop(self, cell: str, to: str, direction: str, data: bytes) -> None:
        """One RF hop into node ``to``: maybe lost, maybe late, then published on its topic."""
        profile = self._profile(cell, to)
        if profile.loss and self._rng.random() < profile.loss:
            self._counts["lost"] += 1
            return
        delay = profile.latency + (self._rng.uniform(0.0, profile.jitter) if profile.jitter else 0.0)
        prefix = self.settings.prefix
        topic = topics.node_up(prefix, cell, to) if direction == _UP else topics.node_down(prefix, cell, to)
        if delay > 0:
            self.reactor.callLater(delay, self._publish, cell, topic, data)
        else:
            self._publish(cell, topic, data)

    def _publish(self, cell: str, topic: str, data: bytes, *, retain: bool = False) -> None:
        self._counts["hops"] += not retain
        d = self._client_of[cell].publish(topic, data, self.settings.qos, retain=retain)
        d.addErrback(lambda f: log.info("mesh publish on {topic} failed: {e}", topic=topic, e=f.getErrorMessage()))

    def _send_up(self, cell: str, sender: str, data: bytes) -> bool:
        """A node sends ``data`` to its parent; False if its parent is down (nobody hears it)."""
        c = self.cells[cell]
        node = c.nodes[sender]
        if node.parent is None:
            self._uplink(cell, data)
            return True
        if not c.nodes[node.parent].up:
            self._counts["dropped"] += 1
            return False
        self._hop(cell, node.parent, _UP, data)
        return True

    def _uplink(self, cell: str, data: bytes) -> None:
        client = self._client_of[cell]
        topic = topics.uplink(self.settings.prefix, cell)
        if client.state is not MqttState.CONNECTED or client in self._resuming:
            self._holding[client].append((topic, data))
            return
        self._counts["uplinks"] += 1
        self._publish(cell, topic, data)

    def _route_down(self, cell: str, at: str, data: bytes) -> None:
        c = self.cells[cell]
        try:
            called = str(decode_apdu(data).called_ap_title)
        except CodecError:
            self._counts["dropped"] += 1
            return
        child = c.routes[at].get(called)
        if child is None:
            # Not below us: the collector answers for its own title and unknown meters.
            if at == c.collector:
                self._answer(cell, at, data)
            else:
                self._counts["dropped"] += 1
            return
        self._hop(cell, child, _DOWN, data)

    def _answer(self, cell: str, at: str, data: bytes) -> None:
        """``data`` reached its destination node: the cell's C12.22 node answers from there."""
        self._deliver(self.cells[cell].c1222.receive(data, self.clock()), cell, at)

    def _deliver(self, outgoing: Iterable[Outgoing], cell: str, sender: str) -> None:
        """Send each answer up from ``sender`` now, or after the meter's latency fault."""
        deliver(outgoing, partial(self._send_up, cell, sender), self.reactor.callLater)

    # -- MQTT handlers -----------------------------------------------------------------------------

    def _on_down(self, topic: str, payload: bytes) -> None:
        cell = topic.split("/")[-2]
        c = self.cells.get(cell)
        if c is None or not c.nodes[c.collector].up:
            self._counts["dropped"] += 1
            return
        self._route_down(cell, c.collector, payload)

    def _on_node(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        cell, name, direction = parts[-4], parts[-2], parts[-1]
        c = self.cells.get(cell)
        node = c.nodes.get(name) if c is not None else None
        if node is None or not node.up:
            self._counts["dropped"] += 1
            return
        if direction == _UP:
            self._send_up(cell, name, payload)
        elif node.meter is not None:
            self._answer(cell, name, payload)
        else:
            self._route_down(cell, name, payload)

    # -- registration, alarms, status --------------------------------------------------------------

    def _register_all(self) -> None:
        now = self.clock()
        for name, cell in self.cells.items():
            if self._client_of[name].state is not MqttState.CONNECTED:
                continue
            for data in cell.c1222.registrations(now, skip=cell.c1222.registered):
                title = decode_apdu(data).calling_ap_title
                sender = cell.by_title.get(str(title), cell.collector)
                if cell.alive(sender):
                    self._send_up(name, sender, data)

    def _tick(self) -> None:
        now = self.clock()
        for name, cell in self.cells.items():
            for meter in cell.c1222.meters:
                for alarm in meter.tick(now):
                    if not cell.alive(meter.meter_id):
                        meter.note_push_failed(alarm, now)
                        continue
                    out = cell.c1222.push(meter, alarm, now)
                    if out is not None:
                        self._deliver((out,), name, meter.meter_id)

    def _publish_status(self, cell: str) -> None:
        if self._client_of[cell].state is not MqttState.CONNECTED:
            return  # published again once connected
        body = json.dumps(self.cells[cell].status(self.clock()), sort_keys=True).encode()
        self._publish(cell, topics.status(self.settings.prefix, cell), body, retain=True)

    def _watch(self) -> None:
        for client in self.clients:
            up = client.state is MqttState.CONNECTED
            if up and not self._was_up[client] and self.ready.called:
                self._resuming.add(client)
                self.reactor.callLater(self.settings.resume_delay, self._resume, client)
            self._was_up[client] = up

    def _resume(self, client: MqttClient) -> None:
        self._resuming.discard(client)
        held = self._holding[client]
        while held and client.state is MqttState.CONNECTED:
            topic, data = held.popleft()
            self._counts["uplinks"] += 1
            client.publish(topic, data, self.settings.qos).addErrback(lambda f: None)
        for name, owner in self._client_of.items():
            if owner is client:
                self._publish_status(name)

    # -- views -------------------------------------------------------------------------------------

    def stats(self) -> MeshStats:
        """A snapshot of the counters."""
        return MeshStats(
            held=sum(len(q) for q in self._holding.values()),
            registered=sum(len(c.c1222.registered) for c in self.cells.values()),
            **self._counts,
        )

    def cell_of(self, meter_id: str) -> str:
        """The cell holding a meter."""
        for name, cell in self.cells.items():
            if meter_id in cell.nodes:
                return name
        raise KeyError(meter_id)

    def path(self, meter_id: str) -> list[str]:
        """Node ids from the meter up to its collector, as routed now."""
        return self.cells[self.cell_of(meter_id)].path(meter_id)

    @property
    def registered(self) -> int:
        """Nodes (collectors and meters) whose registration the head-end accepted."""
        return self.stats().registered


def build_mesh(
    meters: Sequence[SimMeter],
    reactor: Any,
    *,
    url: str,
    prefix: str = topics.DEFAULT_PREFIX,
    seed: int = 0,
    cells: int = 1,
    relays: int = 2,
    chains: int = 2,
    hop: HopProfile | None = None,
    reroute: bool = True,
    node: NodeSettings | None = None,
    connections: int = 1,
    mqtt: dict[str, Any] | None = None,
    **settings: Any,
) -> RfMesh:
    """An RF mesh service carrying ``meters`` (not started: add it to a MultiService or start it)."""
    plans = plan_cells(meters, cells=cells, relays=relays, chains=chains)
    mesh_settings = MeshSettings(
        prefix=prefix, hop=hop or HopProfile(), reroute=reroute,
        node=node or NodeSettings(), **settings,
    )
    return RfMesh(reactor, plans, url=url, settings=mesh_settings, seed=seed,
                  connections=connections, mqtt=mqtt)


def start_mesh(meters: Sequence[SimMeter], reactor: Any, *, url: str, **kwargs: Any) -> RfMesh:
    """:func:`build_mesh`, started; wait on ``mesh.ready`` for the broker connection."""
    mesh = build_mesh(meters, reactor, url=url, **kwargs)
    mesh.startService()
    return mesh
