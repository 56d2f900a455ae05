"""A simulated fleet on a reactor, split over the links: what ``amidcc simulate fleet`` runs and
what ``amidcc demo`` runs beside the gateway.

:class:`FleetPlan` decides who goes where (pure): a share of the meters behind Modbus/TCP
collectors, a share on C12.22/UDP (one peer each), a share in the RF mesh over MQTT (cells of
relays, :mod:`amidcc.simulators.mesh`), the rest on C12.22/TCP, most behind C12.22 collectors (one
connection carrying many meters) and some on their own connection. :class:`FleetRunner` starts them
(Modbus collectors first, because the head-end's config names their endpoints), applies the
fleet's fault timeline every second, and summarises.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.task import LoopingCall

from amidcc.simulators import (
    Access,
    FleetModel,
    Scenario,
    ScheduledFault,
    SimMeter,
    pad_password,
)

__all__ = ["FleetPlan", "FleetRunner", "MeshShape", "Split", "split"]

#: Meters behind one Modbus collector at most (the demo's spread).
PER_MODBUS_COLLECTOR = 32
#: Meters per RF cell when the number of cells is not given.
PER_CELL = 100
#: AP titles of the mesh's collectors (``.2.10.n``): apart from the C12.22/TCP collectors'
#: ``.2.9.n``, since one gateway registry sees both. Relays are ``.2.8.n.k``, meters ``.2.7.x``.
MESH_COLLECTOR_BASE = (2, 10)


@dataclass(frozen=True, kw_only=True)
class Split:
    """How many meters each link gets."""

    modbus: int
    """Behind Modbus/TCP collectors."""
    udp: int
    """On C12.22/UDP."""
    mesh: int
    """In the RF mesh over MQTT."""
    behind: int
    """On C12.22/TCP behind C12.22 collectors."""
    direct: int
    """On C12.22/TCP, each on its own connection."""


def split(
    n: int, *, modbus_collectors: int, udp: bool, per_collector: int, mesh: bool = False
) -> Split:
    """Where ``n`` meters go.

    Modbus gets 10 % (at least one per collector, at most 32 per collector), UDP 5 % (at most
    50), the RF mesh 20 %, TCP the rest: 90 % of it behind C12.22 collectors, at least one and at
    most 100 direct.
    """
    modbus = 0
    if modbus_collectors > 0:
        modbus = min(max(n // 10, modbus_collectors), modbus_collectors * PER_MODBUS_COLLECTOR, n)
    udp_n = min(max(n // 20, 1), 50, n - modbus) if udp else 0
    mesh_n = min(max(n // 5, 1), n - modbus - udp_n) if mesh else 0
    tcp = n - modbus - udp_n - mesh_n
    direct = min(max(tcp - (tcp * 9 // 10) // per_collector * per_collector, min(tcp, 1)), 100)
    direct = min(direct, tcp)
    return Split(modbus=modbus, udp=udp_n, mesh=mesh_n, behind=tcp - direct, direct=direct)


@dataclass(frozen=True, kw_only=True)
class MeshShape:
    """The RF mesh's cells (``amidcc simulate fleet --mqtt URL --cells C --relays R``)."""

    url: str
    """Broker URL."""
    cells: int | None = None
    """Cells; None: one per 100 mesh meters."""
    relays: int = 4
    """Relays per cell (in two chains, each the other's alternate parent)."""
    prefix: str = "amidcc"
    """First level of every topic (the gateway's ``[mqtt] topic_prefix``)."""


@dataclass(frozen=True, kw_only=True)
class FleetPlan:
    """The fleet and where each meter connects."""

    model: FleetModel
    """The meters and their fault timeline."""
    modbus: tuple[SimMeter, ...]
    """Meters behind Modbus collectors."""
    udp: tuple[SimMeter, ...]
    """Meters on C12.22/UDP."""
    mesh: tuple[SimMeter, ...] = ()
    """Meters in the RF mesh over MQTT."""
    tcp: tuple[SimMeter, ...]
    """Meters on C12.22/TCP (the first ``collectors * per_collector`` behind collectors)."""
    collectors: int
    """C12.22 collectors."""
    per_collector: int
    """Meters per C12.22 collector."""
    modbus_collectors: int
    """Modbus/TCP collectors."""
    modbus_port: int = 0
    """First Modbus collector port (0: free ports)."""
    mesh_shape: MeshShape | None = None
    """The RF mesh's broker and cells (None: no mesh share)."""
    seed: int = 1

    @classmethod
    def build(
        cls,
        scenario: Scenario,
        *,
        start: float,
        meters: int | None = None,
        seed: int | None = None,
        faults: Sequence[ScheduledFault] = (),
        password: str | None = None,
        udp: bool = False,
        modbus_collectors: int = 0,
        modbus_port: int = 0,
        per_collector: int = 50,
        mesh: MeshShape | None = None,
    ) -> FleetPlan:
        """Split a scenario's fleet (``meters`` and ``seed`` override it) over the links."""
        fleet = scenario.fleet
        fleet = dataclasses.replace(
            fleet,
            meters=fleet.meters if meters is None else meters,
            seed=fleet.seed if seed is None else seed,
        )
        meter = scenario.meter
        if password is not None:
            meter = dataclasses.replace(
                meter, passwords=((pad_password(password, pad=b" "), Access.WRITE),)
            )
        one = dataclasses.replace(scenario, fleet=fleet, meter=meter)
        model = FleetModel.from_scenario(one, start_time=start, extra_faults=list(faults))
        n = split(
            len(model), modbus_collectors=modbus_collectors, udp=udp, per_collector=per_collector,
            mesh=mesh is not None,
        )  # fmt: skip
        m = model.meters
        # order: Modbus, UDP, mesh, TCP (the demo's faults count from the end: TCP meters)
        ends = (n.modbus, n.modbus + n.udp, n.modbus + n.udp + n.mesh)
        return cls(
            model=model,
            modbus=tuple(m[: ends[0]]),
            udp=tuple(m[ends[0] : ends[1]]),
            mesh=tuple(m[ends[1] : ends[2]]),
            tcp=tuple(m[ends[2] :]),
            collectors=n.behind // per_collector,
            per_collector=per_collector,
            modbus_collectors=modbus_collectors if n.modbus else 0,
            modbus_port=modbus_port,
            mesh_shape=mesh if n.mesh else None,
            seed=fleet.seed,
        )

    @classmethod
    def from_args(
        cls, args: Any, scenario: Scenario, faults: Sequence[ScheduledFault], *, start: float
    ) -> FleetPlan:
        """The plan of ``amidcc simulate fleet``'s arguments."""
        if args.modbus_collectors < 0 or args.per_collector < 1:
            raise ValueError("--modbus-collectors must be >= 0 and --per-collector >= 1")
        if (args.cells is not None and args.cells < 1) or args.relays < 0:
            raise ValueError("--cells must be >= 1 and --relays >= 0")
        mesh = None
        if args.mqtt:
            mesh = MeshShape(
                url=args.mqtt, cells=args.cells, relays=args.relays, prefix=args.topic_prefix
            )
        return cls.build(
            scenario, start=start, meters=args.meters, seed=args.seed, faults=faults,
            password=args.password, udp=bool(args.udp), modbus_collectors=args.modbus_collectors,
            modbus_port=args.modbus_port, per_collector=args.per_collector, mesh=mesh,
        )  # fmt: skip


class FleetRunner:
    """Runs a :class:`FleetPlan` on ``reactor`` (the asyncio reactor when Modbus is used)."""

    def __init__(
        self,
        reactor: Any,
        plan: FleetPlan,
        *,
        tcp: tuple[str, int] | None = None,
        udp: tuple[str, int] | None = None,
        tick_interval: float = 1.0,
    ) -> None:
        self.reactor = reactor
        self.plan = plan
        self.tcp = tcp
        self.udp = udp
        self.tick_interval = tick_interval
        self.collectors: list[Any] = []
        self.services: list[Any] = []
        self.mesh: Any = None
        """The RF mesh (:class:`~amidcc.simulators.mesh.RfMesh`) once started."""
        self.faults: Counter[str] = Counter()
        self._ticker = LoopingCall(self._tick)
        self._ticker.clock = reactor
        self.started_at = reactor.seconds()

    # -- start / stop ------------------------------------------------------------------------------

    def start_modbus(self) -> Deferred[list[str]]:
        """Start the Modbus collectors (inside the running reactor); fire with their endpoints."""
        return Deferred.fromFuture(asyncio.ensure_future(self._start_modbus()))

    async def _start_modbus(self) -> list[str]:
        from amidcc.simulators.modbus import CollectorSettings, ModbusCollector

        plan = self.plan
        k = plan.modbus_collectors
        for n in range(k):
            group = plan.modbus[n::k] if k else ()
            port = plan.modbus_port + n if plan.modbus_port else 0
            settings = CollectorSettings(port=port, seed=plan.seed + n)
            units = {i + 1: m for i, m in enumerate(group)}
            collector = ModbusCollector(
                units, settings=settings, clock=self.reactor.seconds, name=f"modbus-{n}"
            )
            await collector.start()
            self.collectors.append(collector)
        return [c.endpoint for c in self.collectors]

    def modbus_config(self) -> list[dict[str, object]]:
        """The gateway's ``[modbus] collectors`` for the started collectors."""
        return [
            {"endpoint": c.endpoint, "unit_ids": sorted(c.port_model.meters)}
            for c in self.collectors
        ]

    def start_c1222(self) -> None:
        """Connect the C12.22 nodes (TCP to ``tcp``, UDP to ``udp``) and start the fault clock."""
        from amidcc.simulators.c1222_tcp import SimC1222Service, plan_nodes
        from amidcc.simulators.c1222_udp import SimC1222UdpService, udp_settings

        plan = self.plan
        if self.tcp is not None and plan.tcp:
            nodes = plan_nodes(
                plan.tcp, collectors=plan.collectors, per_collector=plan.per_collector,
                seed=plan.seed,
            )  # fmt: skip
            host, port = self.tcp
            self.services.append(SimC1222Service(self.reactor, f"tcp:{host}:{port}", nodes))
        if self.udp is not None and plan.udp:
            nodes = plan_nodes(plan.udp, udp_settings(), seed=plan.seed + 7)
            self.services.append(SimC1222UdpService(self.reactor, self.udp, nodes))
        for service in self.services:
            service.startService()
        self._ticker.start(self.tick_interval, now=True)

    def mesh_cells(self) -> list[Any]:
        """The mesh's :class:`~amidcc.simulators.mesh.CellPlan` s (none without a mesh share)."""
        shape = self.plan.mesh_shape
        if shape is None or not self.plan.mesh:
            return []
        from amidcc.simulators.mesh import plan_cells

        cells = shape.cells or max(1, -(-len(self.plan.mesh) // PER_CELL))
        return plan_cells(
            self.plan.mesh, cells=cells, relays=shape.relays, chains=2,
            collector_base=MESH_COLLECTOR_BASE,
        )  # fmt: skip

    def start_mesh(self) -> Deferred[None]:
        """Put the mesh share on the broker; fires once its connection is up (at once without)."""
        shape, cells = self.plan.mesh_shape, self.mesh_cells()
        if shape is None or not cells:
            return succeed(None)
        from amidcc.simulators.mesh import MeshSettings, RfMesh

        settings = MeshSettings(prefix=shape.prefix)
        self.mesh = RfMesh(self.reactor, cells, url=shape.url, settings=settings,
                           seed=self.plan.seed + 11)  # fmt: skip
        self.mesh.startService()
        ready: Deferred[None] = self.mesh.ready
        return ready

    def stop(self) -> Deferred[None]:
        """Disconnect everything; fire when done."""
        if self._ticker.running:
            self._ticker.stop()
        waits: list[Deferred[Any]] = []
        for service in [*self.services, *([self.mesh] if self.mesh is not None else [])]:
            d = service.stopService()
            if isinstance(d, Deferred):
                waits.append(d)
        for collector in self.collectors:
            waits.append(Deferred.fromFuture(asyncio.ensure_future(collector.stop())))
        done: Deferred[Any] = DeferredList(waits) if waits else succeed(None)
        return done.addCallback(lambda _: None)

    def _tick(self) -> None:
        now = self.reactor.seconds()
        for action in self.plan.model.advance(now):
            self.faults[f"{action.kind.value}{' cleared' if action.clear else ''}"] += 1
        for meter in self.plan.modbus:  # no C12.22 node ticks these
            meter.tick(now)

    # -- progress and summary ----------------------------------------------------------------------

    @property
    def registered(self) -> int:
        """Meters whose C12.22 registration the head-end accepted (collectors not counted)."""
        meters = {m.identity.ap_title_text for m in (*self.plan.tcp, *self.plan.udp)}
        return sum(len(n.registered & meters) for s in self.services for n in s.nodes)

    @property
    def mesh_registered(self) -> int:
        """Mesh meters whose registration the head-end accepted (cell collectors not counted)."""
        if self.mesh is None:
            return 0
        meters = {m.identity.ap_title_text for m in self.plan.mesh}
        return sum(len(c.c1222.registered & meters) for c in self.mesh.cells.values())

    def progress(self) -> str:
        """One line: registrations and collectors up."""
        c1222 = len(self.plan.tcp) + len(self.plan.udp)
        up = sum(1 for c in self.collectors if c.running)
        polled = sum(c.requests for c in self.collectors)
        mesh = ""
        if self.plan.mesh:
            mesh = f"; RF mesh registered {self.mesh_registered}/{len(self.plan.mesh)}"
        return (
            f"C12.22 registered {self.registered}/{c1222}{mesh}; Modbus collectors up "
            f"{up}/{len(self.collectors)} ({len(self.plan.modbus)} meters, {polled} requests)"
        )

    def summary(self) -> dict[str, Any]:
        """What the fleet did, as plain data."""
        plan = self.plan
        return {
            "meters": len(plan.model),
            "by_link": {
                "c1222-tcp": len(plan.tcp),
                "c1222-udp": len(plan.udp),
                "mqtt": len(plan.mesh),
                "modbus": len(plan.modbus),
            },
            "c1222_collectors": plan.collectors,
            "modbus_collectors": len(self.collectors),
            "mesh": self._mesh_summary(),
            "registered": self.registered,
            "modbus_requests": sum(c.requests for c in self.collectors),
            "faults": dict(self.faults),
            "seconds": round(self.reactor.seconds() - self.started_at, 1),
        }

    def _mesh_summary(self) -> dict[str, Any] | None:
        if self.mesh is None:
            return None
        stats = self.mesh.stats()
        relays = sum(
            1 for c in self.mesh.cells.values() for n in c.nodes.values()
            if n.meter is None and n.parent is not None
        )  # fmt: skip
        return {
            "cells": len(self.mesh.cells), "relays": relays, "registered": self.mesh_registered,
            "hops": stats.hops, "lost": stats.lost, "dropped": stats.dropped,
        }  # fmt: skip

    # -- the CLI's loop ----------------------------------------------------------------------------

    def run_until_stopped(self, duration: float | None, *, out: IO[str] = sys.stdout) -> int:
        """Start, show progress every second, stop after ``duration`` or on Ctrl-C, summarise."""
        reactor = self.reactor
        shown = {"last": ""}

        def started(endpoints: list[str]) -> None:
            if endpoints:
                print("Modbus collectors (for the gateway's [modbus] section):", file=out)
                print(f"collectors = {_toml(self.modbus_config())}", file=out, flush=True)
            self.start_c1222()
            self.start_mesh().addErrback(failed)
            progress.start(1.0, now=True)

        def show() -> None:
            line = self.progress()
            if line != shown["last"]:
                print(f"[{time.strftime('%H:%M:%S')}] {line}", file=out, flush=True)
                shown["last"] = line

        def failed(f: Any) -> None:
            print(f"amidcc simulate: cannot start the fleet: {f.value}", file=sys.stderr)
            shown["failed"] = "yes"
            reactor.stop()

        progress = LoopingCall(show)
        progress.clock = reactor
        reactor.callWhenRunning(lambda: self.start_modbus().addCallbacks(started, failed))
        if duration is not None:
            reactor.callLater(duration, reactor.stop)
        reactor.addSystemEventTrigger("before", "shutdown", self._stopping, progress)
        shape = self.plan.mesh_shape
        mesh = f", RF mesh on {_public(shape.url)} ({shape.prefix}/...)" if shape else ""
        print(
            f"fleet: {len(self.plan.model)} meters (seed {self.plan.seed}); "
            f"C12.22/TCP to {self.tcp}{mesh}, Ctrl-C stops",
            file=out,
            flush=True,
        )
        reactor.run()
        _print_summary(self.summary(), out)
        return 1 if "failed" in shown else 0

    def _stopping(self, progress: LoopingCall) -> Deferred[None]:
        if progress.running:
            progress.stop()
        return self.stop()


def _public(url: str) -> str:
    """A broker URL without its user and password."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else url


def _toml(collectors: list[dict[str, object]]) -> str:
    parts = []
    for c in collectors:
        units = ", ".join(str(u) for u in c["unit_ids"])  # type: ignore[attr-defined]
        parts.append(f'{{ endpoint = "{c["endpoint"]}", unit_ids = [{units}] }}')
    return "[" + ", ".join(parts) + "]"


def _print_summary(summary: dict[str, Any], out: IO[str]) -> None:
    links = ", ".join(f"{k} {v}" for k, v in summary["by_link"].items())
    print(f"fleet summary after {summary['seconds']}s:", file=out)
    print(f"  meters: {summary['meters']} ({links})", file=out)
    print(
        f"  C12.22 registered: {summary['registered']}; C12.22 collectors: "
        f"{summary['c1222_collectors']}; Modbus collectors: {summary['modbus_collectors']} "
        f"({summary['modbus_requests']} requests)",
        file=out,
    )
    mesh = summary["mesh"]
    if mesh is not None:
        print(
            f"  RF mesh: {mesh['registered']} registered in {mesh['cells']} cells "
            f"({mesh['relays']} relays); {mesh['hops']} hops ({mesh['lost']} lost, "
            f"{mesh['dropped']} dropped)",
            file=out,
        )
    faults = ", ".join(f"{k} {v}" for k, v in sorted(summary["faults"].items())) or "none"
    print(f"  faults applied: {faults}", file=out, flush=True)
