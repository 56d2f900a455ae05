"""``amidcc demo``: the gateway and a simulated fleet in one process, then a summary.

Both run on the same asyncio reactor, in-process: the demo reads its summary straight from the
gateway's stores (registry, scheduler, event log, trouble sink) and metrics, nothing has to be
scraped or parsed, and one Ctrl-C stops everything. The fleet is the same :class:`FleetRunner`
``amidcc simulate fleet`` runs, and the gateway is the one twistd runs (:func:`build_service`);
the integration test of the separate-process set-up is ``tests/integration/test_daemon_fleet.py``.

The RF mesh needs a real MQTT broker: the demo starts one as a child process
(:class:`~amidcc.net.broker.BrokerProcess`: mosquitto where installed, otherwise amqtt) and stops
it at the end. Without either, the demo says so and runs without the mesh share.
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall, deferLater

from amidcc.gateway.config import Config, parse_config
from amidcc.gateway.metrics import GatewayMetrics
from amidcc.gateway.tap import GatewayService, build_service
from amidcc.net.broker import BrokerError, BrokerProcess
from amidcc.pcap.writer import C1222_PORT
from amidcc.simulators import Scenario, parse_fault_arg

from .fleet import FleetPlan, FleetRunner, MeshShape

__all__ = ["DEMO_FAULTS", "Demo", "demo_config", "latency_quantiles"]

PASSWORD = "demo"

#: A few faults on top of the random NFR2 ones: a tamper and a metrology failure pushed as alarms,
#: a silent meter and a garbage-sending link.
#: Each is (spec, position from the end of the fleet): the C12.22/TCP meters are last (the Modbus
#: ones come first, and alarms are pushed over C12.22 only).
DEMO_FAULTS = (
    ("tamper@{}+3s", 4),
    ("metrology@{}+2s", 6),
    ("silent@{}+1s", 8),
    ("garbage=0.5@{}+1s", 12),
    ("ram@{}+2s", 14),
)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_config(
    state_dir: Path,
    duration: float,
    modbus: list[dict[str, object]],
    *,
    mqtt: str | None = None,
    pcap: Path | None = None,
) -> Config:
    """The embedded demo configuration: loopback on free ports, reads several times a run; the
    RF-mesh link on the broker at ``mqtt`` and the capture to ``pcap`` when given."""
    cycle = f"{max(2.0, duration / 4):.1f}s"
    loop = "interface=127.0.0.1"
    mqtt_section: dict[str, object] = {"enabled": False}
    if mqtt is not None:
        mqtt_section = {"enabled": True, "url": mqtt, "reconnect_min": "100ms",
                        "reconnect_max": "2s"}  # fmt: skip
    return parse_config(
        {
            "gateway": {"name": "demo", "state_dir": str(state_dir)},
            "mqtt": mqtt_section,
            "c1222": {
                "listen": f"tcp:{free_port()}:{loop}",
                "udp_listen": f"udp:{free_port(socket.SOCK_DGRAM)}:{loop}",
                "password": PASSWORD,
            },
            "modbus": {"enabled": bool(modbus), "collectors": modbus},
            "requests": {"timeout": "3s", "retries": 1, "backoff_base": "200ms",
                         "backoff_max": "500ms"},
            "throttle": {"new_connections_per_window": 1000},
            "schedule": {"read_interval": cycle, "read_spread": cycle,
                         "clock_check_interval": cycle},
            "api": {"listen": f"tcp:{free_port()}:{loop}"},
            "metrics": {"listen": f"tcp:{free_port()}:{loop}"},
            "capture": {"pcap": str(pcap)} if pcap is not None else {},
        },
        source="<demo>",
    )  # fmt: skip


def latency_quantiles(metrics: GatewayMetrics, operation: str = "read") -> dict[str, float | None]:
    """p50 and p99 of ``operation`` across links, as the histogram bucket bound that holds them."""
    buckets: Counter[float] = Counter()
    for family in metrics.request_latency.collect():
        for s in family.samples:
            if s.name.endswith("_bucket") and s.labels.get("operation") == operation:
                buckets[float(s.labels["le"])] += int(s.value)
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0
    out: dict[str, float | None] = {}
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        out[name] = next((b for b in bounds if total and buckets[b] >= q * total), None)
    return out


class Demo:
    """One demo run on ``reactor``; :meth:`run` returns the summary."""

    def __init__(
        self,
        reactor: Any,
        *,
        meters: int = 1000,
        duration: float = 30.0,
        seed: int = 1,
        out: IO[str] | None = None,
        pcap: Path | None = None,
    ) -> None:
        self.reactor = reactor
        self.meters = meters
        self.duration = duration
        self.seed = seed
        self.out = out
        self.pcap = pcap.resolve() if pcap is not None else None
        """Where the gateway's C12.22 traffic goes (``--pcap``), or None."""
        self.state_dir = Path(tempfile.mkdtemp(prefix="amidcc-demo-"))
        self.gateway: GatewayService | None = None
        self.fleet: FleetRunner | None = None
        self.broker: BrokerProcess | None = None
        self.broker_note = ""
        """Why the RF mesh did not run, when it did not."""
        self.started = 0.0

    def say(self, text: str) -> None:
        if self.out is not None:
            print(text, file=self.out, flush=True)

    def start_broker(self) -> BrokerProcess | None:
        """A broker child process for the mesh, or None (and :attr:`broker_note`) without one."""
        try:
            self.broker = BrokerProcess.start()
        except BrokerError as err:
            self.broker_note = f"not run: {err}"
            self.say(f"demo: no RF mesh ({err})")
            return None
        self.say(f"demo: MQTT broker {self.broker.kind} on {self.broker.url}")
        return self.broker

    async def run(self) -> dict[str, Any]:
        """Start the broker, the fleet's collectors, the gateway, the meters; wait; summarise;
        stop them all."""
        try:
            return await self._run()
        finally:
            if self.broker is not None:
                self.broker.stop()
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def plan(self, mesh: MeshShape | None) -> FleetPlan:
        """The demo's fleet: every link, a few faults on C12.22/TCP meters."""
        faults = [
            parse_fault_arg(spec.format(self.meters - k))
            for spec, k in DEMO_FAULTS
            if self.meters - k >= 0
        ]
        return FleetPlan.build(
            Scenario(), start=self.reactor.seconds(), meters=self.meters, seed=self.seed,
            faults=faults, password=PASSWORD, udp=True,
            modbus_collectors=max(1, self.meters // 250), mesh=mesh,
        )  # fmt: skip

    async def _run(self) -> dict[str, Any]:
        r = self.reactor
        self.say(f"demo: {self.meters} meters for {self.duration:g}s (state in {self.state_dir})")
        broker = self.start_broker()
        fleet = self.fleet = FleetRunner(
            r, self.plan(MeshShape(url=broker.url) if broker is not None else None)
        )
        await fleet.start_modbus()
        config = demo_config(
            self.state_dir, self.duration, fleet.modbus_config(),
            mqtt=broker.url if broker is not None else None, pcap=self.pcap,
        )  # fmt: skip
        gateway = self.gateway = build_service(
            config, r, metrics=GatewayMetrics(process=False), capture=True
        )
        gateway.startService()
        try:
            await self._start_fleet(config)
            self.started = r.seconds()
            progress = LoopingCall(lambda: self.say(self.progress()))
            progress.clock = r
            progress.start(2.0, now=False)
            try:
                await deferLater(r, self.duration, lambda: None)
            finally:
                progress.stop()
                summary = self.summary()
        finally:
            await self._quiesce()
            await fleet.stop()
            await gateway.stopService()
        summary["capture"] = self.capture_summary()  # once the gateway has closed the file
        return summary

    def capture_summary(self) -> dict[str, Any] | None:
        """The pcap file(s) written and how to read them, or None without ``--pcap``."""
        assert self.gateway is not None
        service: Any = self.gateway.stores.get("capture")
        if self.pcap is None or service is None or service.capture is None:
            return None
        stats, config = service.capture.stats, self.gateway.config
        # the listeners' ports, and 1153 where the capture puts the RF cells' flows
        listens = [config.c1222.listen, config.c1222.udp_listen or ""]
        ports = [int(text.split(":")[1]) for text in listens if text]
        ports += [C1222_PORT] if config.mqtt.enabled else []
        return {
            "files": [str(f) for f in stats.files], "apdus": stats.apdus,
            "dropped": stats.dropped, "ports": ports,
        }  # fmt: skip

    async def _quiesce(self, limit: float = 10.0) -> None:
        """Stop scheduling and let the operations in progress end (at most ``limit`` s) before
        the meters go: a link dropping a deep queue of requests fails them all at once."""
        gateway = self.gateway
        assert gateway is not None
        await gateway.jobs.stopService()  # type: ignore[no-untyped-call]
        scheduler: Any = gateway.stores.get("scheduler")
        deadline = self.reactor.seconds() + limit
        while scheduler is not None and scheduler.outstanding and self.reactor.seconds() < deadline:
            await deferLater(self.reactor, 0.1, lambda: None)

    async def _start_fleet(self, config: Config) -> None:
        """Connect the C12.22 meters and the mesh once the gateway listens (and is subscribed)."""
        gateway, fleet = self.gateway, self.fleet
        assert gateway is not None and fleet is not None
        port = await gateway.stores["c1222"].listening  # type: ignore[attr-defined]
        assert config.c1222.udp_listen is not None
        fleet.tcp = ("127.0.0.1", port.getHost().port)
        fleet.udp = ("127.0.0.1", int(config.c1222.udp_listen.split(":")[1]))
        fleet.start_c1222()
        if fleet.plan.mesh:
            await gateway.stores["mqtt"].connected_once()  # type: ignore[attr-defined]
            await fleet.start_mesh()

    def progress(self) -> str:
        gw = self.gateway
        assert gw is not None
        registry: Any = gw.stores["registry"]
        sched: Any = gw.stores["scheduler"]
        eventlog: Any = gw.stores["eventlog"]
        sink: Any = gw.stores["trouble_sink"]
        c = sched.counts
        return (
            f"[{time.strftime('%H:%M:%S')}] meters known {len(registry)}/{self.meters} "
            f"({self._known_by_link()}), "
            f"reads {c.reads_ok} ok / {c.reads_failed} failed, self-tests {c.self_tests}, "
            f"events {len(eventlog)}, trouble {len(sink.events)}"
        )

    def _known_by_link(self) -> str:
        assert self.gateway is not None
        counts = Counter(str(r.link) for r in self.gateway.stores["registry"])  # type: ignore[attr-defined]
        return " ".join(f"{link} {n}" for link, n in sorted(counts.items())) or "none yet"

    def links(self) -> dict[str, Any]:
        """How each link ran: the RF mesh's broker, cells and hops, or why it did not run."""
        assert self.gateway is not None and self.fleet is not None
        fleet = self.fleet.summary()
        if self.broker is None:
            mqtt: dict[str, Any] = {"broker": None, "note": self.broker_note}
        else:
            health = self.gateway.health().checks.get("mqtt", "not wired")
            mqtt = {"broker": self.broker.kind, "url": self.broker.url, "session": health,
                    **(fleet["mesh"] or {})}  # fmt: skip
        return {
            "c1222-tcp": {"meters": fleet["by_link"]["c1222-tcp"],
                          "collectors": fleet["c1222_collectors"]},
            "c1222-udp": {"meters": fleet["by_link"]["c1222-udp"]},
            "mqtt": {"meters": fleet["by_link"]["mqtt"], **mqtt},
            "modbus": {"meters": fleet["by_link"]["modbus"],
                       "collectors": fleet["modbus_collectors"],
                       "requests": fleet["modbus_requests"]},
        }  # fmt: skip

    def summary(self) -> dict[str, Any]:
        """The run as plain data (what ``--json`` prints)."""
        gw, fleet = self.gateway, self.fleet
        assert gw is not None and fleet is not None
        registry: Any = gw.stores["registry"]
        sched: Any = gw.stores["scheduler"]
        eventlog: Any = gw.stores["eventlog"]
        sink: Any = gw.stores["trouble_sink"]
        by_link: dict[str, dict[str, int]] = {}
        for record in registry:
            states = by_link.setdefault(str(record.link), {})
            states[str(record.state)] = states.get(str(record.state), 0) + 1
        c = sched.counts
        reads = c.reads_ok + c.reads_failed
        trouble = Counter(str(t.failure_type) for t in sink.events)
        return {
            "meters": self.meters,
            "seconds": round(self.reactor.seconds() - self.started, 1),
            "meters_by_link_and_state": by_link,
            "reads": {
                "total": reads,
                "ok": c.reads_ok,
                "failed": c.reads_failed,
                "success_rate": round(c.reads_ok / reads, 4) if reads else None,
            },
            "latency_seconds": latency_quantiles(gw.metrics),
            "self_tests": {"run": c.self_tests, "failed": c.self_tests_failed},
            "clock_checks": c.clock_checks,
            "time_syncs": c.time_syncs,
            "metrology_checks": c.metrology,
            "events_by_class": {
                cls.name.lower(): n for cls, n in eventlog.counts_by_class().items()
            },
            "trouble_events": {"total": len(sink.events), "by_failure": dict(trouble)},
            "links": self.links(),
            "fleet": fleet.summary(),
        }


def render(summary: dict[str, Any]) -> str:
    """The summary for a person."""
    reads = summary["reads"]
    rate = reads["success_rate"]
    lat = summary["latency_seconds"]
    lines = [f"amidcc demo: {summary['meters']} meters, {summary['seconds']}s",
             "meters by link (simulated -> known to the gateway, by state):"]  # fmt: skip
    known = summary["meters_by_link_and_state"]
    for link, info in summary["links"].items():
        states = known.get(link, {})
        shown = ", ".join(f"{s} {n}" for s, n in sorted(states.items())) or "none"
        lines.append(f"  {link:10} {info['meters']:5} -> {shown}{_link_note(link, info)}")
    lines += [
        f"reads: {reads['total']} ({reads['ok']} ok, {reads['failed']} failed), success rate "
        + (f"{rate:.1%}" if rate is not None else "n/a"),
        f"read latency: p50 <= {_secs(lat['p50'])}, p99 <= {_secs(lat['p99'])}",
        f"self-tests: {summary['self_tests']['run']} ({summary['self_tests']['failed']} failed); "
        f"clock checks {summary['clock_checks']} (time syncs {summary['time_syncs']}); "
        f"metrology checks {summary['metrology_checks']}",
        "events by class: " + ", ".join(f"{k} {v}" for k, v in summary["events_by_class"].items()),
        f"trouble events raised: {summary['trouble_events']['total']} "
        + (
            "("
            + ", ".join(
                f"{k} {v}" for k, v in sorted(summary["trouble_events"]["by_failure"].items())
            )
            + ")"
            if summary["trouble_events"]["total"]
            else ""
        ),
        "faults applied: "
        + (", ".join(f"{k} {v}" for k, v in sorted(summary["fleet"]["faults"].items())) or "none"),
    ]
    capture = summary.get("capture")
    if capture:
        first = capture["files"][0] if capture["files"] else "(no file)"
        ports = " ".join(f"--port {port}" for port in capture["ports"])
        lines.append(
            f"capture: {capture['apdus']} C12.22 APDUs in {', '.join(capture['files'])} "
            f"({capture['dropped']} dropped); read it with: amidcc pcap analyze {first} {ports}"
        )
    return "\n".join(lines)


def _link_note(link: str, info: dict[str, Any]) -> str:
    if link == "mqtt":
        if info.get("broker") is None:
            return f"  (RF mesh {info.get('note') or 'not run'})"
        return (
            f"  ({info.get('cells', 0)} cells, {info.get('relays', 0)} relays, "
            f"{info.get('hops', 0)} hops via {info['broker']}; session {info.get('session')})"
        )
    if link == "modbus":
        return f"  ({info['collectors']} collectors, {info['requests']} Modbus requests)"
    if link == "c1222-tcp":
        return f"  ({info['collectors']} C12.22 collectors)"
    return ""


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:g} ms"


def to_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, sort_keys=True)


def run_demo(reactor: Any, **kwargs: Any) -> Deferred[dict[str, Any]]:
    """:meth:`Demo.run` as a Deferred."""
    return Deferred.fromCoroutine(Demo(reactor, **kwargs).run())
