"""``amidcc demo``: the gateway and a simulated fleet in one process, then a summary.

Both run on the same asyncio reactor, in-process: the demo reads its summary straight from the
gateway's stores (registry, scheduler, event log, trouble sink) and metrics, nothing has to be
scraped or parsed, and one Ctrl-C stops everything. The fleet is the same :class:`FleetRunner`
``amidcc simulate fleet`` runs, and the gateway is the one twistd runs (:func:`build_service`);
the integration test of the separate-process set-up is ``tests/integration/test_daemon_fleet.py``.
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
from amidcc.simulators import Scenario, parse_fault_arg

from .fleet import FleetPlan, FleetRunner

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


def demo_config(state_dir: Path, duration: float, modbus: list[dict[str, object]]) -> Config:
    """The embedded demo configuration: loopback on free ports, reads several times a run."""
    cycle = f"{max(2.0, duration / 4):.1f}s"
    loop = "interface=127.0.0.1"
    return parse_config(
        {
            "gateway": {"name": "demo", "state_dir": str(state_dir)},
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
    ) -> None:
        self.reactor = reactor
        self.meters = meters
        self.duration = duration
        self.seed = seed
        self.out = out
        self.state_dir = Path(tempfile.mkdtemp(prefix="amidcc-demo-"))
        self.gateway: GatewayService | None = None
        self.fleet: FleetRunner | None = None
        self.started = 0.0

    def say(self, text: str) -> None:
        if self.out is not None:
            print(text, file=self.out, flush=True)

    async def run(self) -> dict[str, Any]:
        """Start the fleet's collectors, the gateway, the C12.22 meters; wait; summarise; stop."""
        r = self.reactor
        faults = [
            parse_fault_arg(spec.format(self.meters - k))
            for spec, k in DEMO_FAULTS
            if self.meters - k >= 0
        ]
        plan = FleetPlan.build(
            Scenario(), start=r.seconds(), meters=self.meters, seed=self.seed, faults=faults,
            password=PASSWORD, udp=True, modbus_collectors=max(1, self.meters // 250),
        )  # fmt: skip
        fleet = self.fleet = FleetRunner(r, plan)
        self.say(f"demo: {self.meters} meters for {self.duration:g}s (state in {self.state_dir})")
        await fleet.start_modbus()
        config = demo_config(self.state_dir, self.duration, fleet.modbus_config())
        gateway = self.gateway = build_service(config, r, metrics=GatewayMetrics(process=False))
        gateway.startService()
        port = await gateway.stores["c1222"].listening  # type: ignore[attr-defined]
        assert config.c1222.udp_listen is not None
        fleet.tcp = ("127.0.0.1", port.getHost().port)
        fleet.udp = ("127.0.0.1", int(config.c1222.udp_listen.split(":")[1]))
        fleet.start_c1222()
        self.started = r.seconds()
        progress = LoopingCall(lambda: self.say(self.progress()))
        progress.clock = r
        progress.start(2.0, now=False)
        try:
            await deferLater(r, self.duration, lambda: None)
        finally:
            progress.stop()
            summary = self.summary()
            await fleet.stop()
            await gateway.stopService()
            shutil.rmtree(self.state_dir, ignore_errors=True)
        return summary

    def progress(self) -> str:
        gw = self.gateway
        assert gw is not None
        registry: Any = gw.stores["registry"]
        sched: Any = gw.stores["scheduler"]
        eventlog: Any = gw.stores["eventlog"]
        sink: Any = gw.stores["trouble_sink"]
        c = sched.counts
        return (
            f"[{time.strftime('%H:%M:%S')}] meters known {len(registry)}/{self.meters}, "
            f"reads {c.reads_ok} ok / {c.reads_failed} failed, self-tests {c.self_tests}, "
            f"events {len(eventlog)}, trouble {len(sink.events)}"
        )

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
            "fleet": fleet.summary(),
        }


def render(summary: dict[str, Any]) -> str:
    """The summary for a person."""
    reads = summary["reads"]
    rate = reads["success_rate"]
    lat = summary["latency_seconds"]
    lines = [f"amidcc demo: {summary['meters']} meters, {summary['seconds']}s", "meters by link:"]
    for link, states in sorted(summary["meters_by_link_and_state"].items()):
        lines.append(f"  {link:10} " + ", ".join(f"{s} {n}" for s, n in sorted(states.items())))
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
    return "\n".join(lines)


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:g} ms"


def to_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, sort_keys=True)


def run_demo(reactor: Any, **kwargs: Any) -> Deferred[dict[str, Any]]:
    """:meth:`Demo.run` as a Deferred."""
    return Deferred.fromCoroutine(Demo(reactor, **kwargs).run())
