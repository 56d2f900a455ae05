"""A gateway read cycle over C12.22/TCP (`python -m bench.gateway_read_cycle [--meters N]`).

Issue 5's benchmark. Three processes on loopback, each on Twisted's asyncio reactor:

- the **gateway** (``--role gateway``): the daemon's C12.22 pieces, wired as ``amidcc.gateway.tap``
  wires them (``build_c1222`` with a SQLite :class:`MeterRegistry` at the daemon's durability,
  :class:`MeterClient` with ``RequestThrottle.from_config`` of the default ``[throttle]``: 256
  requests in flight per link, 8 per collector, telling the registry each request's outcome),
  the daemon's garbage-collector setting, logging info and up to a file like the daemon;
- the **fleet** (``bench.fleet --role fleet``): 10,000 simulated meters by default, 50 behind each
  collector and 100 on their own connection;
- this process, which starts them, bounds every phase with a timeout, samples the fleet's CPU from
  ``/proc`` and prints.

Once every meter has registered, the gateway runs read cycles: ST23 of every meter through
``MeterClient.read_table`` (decoded), paced by the throttle, with at most ``--outstanding`` reads
asked for and not yet answered (default: the scheduler's ``max_outstanding``, 512, which is how
the daemon bounds the queue in front of the throttle; 0 asks for every read at once). The
**first** cycle also reads each meter's ST0 and ST21, which the client needs once per meter to
decode ST23 (three round trips per meter), and is each meter's first ST23 (the simulated meter
then computes its maximum demand since the last reset); the ``--steady-cycles`` after it are the
steady state (one round trip per meter), and the best of them is reported (the one least
disturbed by the machine's other work; every cycle's rate is printed too). Printed for the first
and the best steady cycle: reads/s, round trips/s, latency p50/p99 on the wire
(request sent to response, what ``amidcc_request_latency_seconds`` measures) and from asking to
having the decoded table (with the wait in the throttle's queue), the gateway's CPU seconds
(``/proc/self/stat``) and the time its garbage collector took. The gateway's resident set per
registered meter is its growth over the gateway before any meter connected, once the fleet has
registered and again after the cycles (that one keeps the high-water mark of the reads).

Then, in the same run, a bare Twisted loopback echo (``bench.echo_baseline``: two processes, the
same number of connections and the same requests in flight as the best steady cycle, messages the
size of the read cycle's requests, best of ``--echo-rounds`` windows) and the ratio of the best
steady read rate to the best echo rate. Aims (issue 5): at least 0.3 of the echo rate, at most
5 KB per registered meter.

The gateway process tunes its garbage collector as the daemon does
(``amidcc.gateway.tap.tune_garbage_collector``); ``--gc-threshold N`` sets another young-generation
threshold (700 is Python's default) and ``--gc-freeze`` adds a ``gc.freeze()`` once the fleet has
registered. ``AMIDCC_BENCH_PROFILE=DIR`` writes a cProfile of each gateway cycle (and of the other
processes) to DIR.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .echo_baseline import measure_echo, report_echo
from .fleet import (
    Child,
    PhaseTimeout,
    collectors_for,
    emit,
    line,
    percentile,
    proc_stats,
    profiled,
    registration_timeout,
    run_reactor,
    wait_until,
)

PASSWORD = "master"


class BenchGateway:
    """The gateway's C12.22 side as the daemon composes it, in the benchmark's process."""

    def __init__(
        self,
        reactor: Any,
        state_dir: str,
        *,
        per_link: int | None = None,
        synchronous: str = "FULL",
    ) -> None:
        from amidcc.gateway.config import parse_config
        from amidcc.gateway.links.c1222_transport import build_c1222
        from amidcc.gateway.meters import MeterClient
        from amidcc.gateway.metrics import GatewayMetrics
        from amidcc.gateway.registry import MeterRegistry
        from amidcc.gateway.throttle import RequestThrottle

        throttle = {} if per_link is None else {"max_inflight_per_link": per_link}
        self.config = parse_config(
            {
                "c1222": {"listen": "tcp:0:interface=127.0.0.1", "password": PASSWORD},
                "throttle": throttle,
            }
        )
        self.reactor = reactor
        path = Path(state_dir) / "registry.db"
        self.registry = MeterRegistry(path, synchronous=synchronous)  # type: ignore[arg-type]
        self.metrics = GatewayMetrics()
        self.first_registration: float | None = None
        self.last_registration = 0.0
        self.listener = build_c1222(
            self.config,
            reactor,
            registry=self.registry,
            metrics=self.metrics,
            on_register=self._registered,
        )
        self.link = self.listener.tcp
        self.throttle = RequestThrottle.from_config(self.config.throttle)
        self.client = MeterClient(
            [self.link], resolve=self.registry, clock=reactor, requests=self.config.requests,
            throttle=self.throttle, metrics=self.metrics,
            on_seen=self.registry.mark_seen, on_unreachable=self.registry.mark_unreachable,
        )  # fmt: skip
        self.wire: list[float] = []
        """Seconds from each request sent to its response (or failure), in this cycle."""
        self._timed_link()

    def _registered(self, event: Any) -> None:
        now = time.perf_counter()
        if self.first_registration is None:
            self.first_registration = now
        self.last_registration = now

    def _timed_link(self) -> None:
        """Time every request on the wire (the client calls the link's ``request``)."""
        request = self.link.request
        wire = self.wire
        clock = time.perf_counter

        def done(result: object, sent: float) -> object:
            wire.append(clock() - sent)
            return result

        def timed(address: Any, services: Sequence[bytes], *, timeout: float) -> Any:
            sent = clock()  # no closure per request: this runs in the gateway's CPU figures
            return request(address, services, timeout=timeout).addBoth(done, sent)

        self.link.request = timed  # type: ignore[method-assign]

    async def start(self) -> int:
        self.listener.startService()
        port = await self.listener.listening
        return int(port.getHost().port)

    async def stop(self) -> None:
        await self.listener.stopService()
        self.registry.close()

    def traffic(self, direction: str) -> float:
        """Bytes the C12.22/TCP link sent (``tx``) or received (``rx``) so far."""
        labels = {"link": str(self.link.kind), "direction": direction}
        return self.metrics.registry.get_sample_value("amidcc_bytes_total", labels) or 0.0

    async def hammer(
        self,
        addresses: Sequence[Any],
        services: list[bytes],
        inflight: int,
        duration: float,
        *,
        once: bool = False,
    ) -> tuple[int, int, float]:
        """``inflight`` loops sending ``services`` round-robin over ``addresses`` for ``duration``
        seconds (``once``: to each address once), straight to the link: (answered, failed, s)."""
        from twisted.internet.defer import Deferred, DeferredList

        link, count = self.link, len(addresses)
        deadline = time.perf_counter() + duration
        tally = [0, 0]

        async def loop(i: int) -> None:
            while (i < count) if once else (time.perf_counter() < deadline):
                try:
                    await link.request(addresses[i % count], services, timeout=30.0)
                    tally[0] += 1
                except Exception:
                    tally[1] += 1
                i += inflight

        start = time.perf_counter()
        await DeferredList([Deferred.fromCoroutine(loop(i)) for i in range(inflight)])
        return tally[0], tally[1], time.perf_counter() - start

    async def read_cycle(
        self, meter_ids: Sequence[str], table: int, outstanding: int
    ) -> dict[str, Any]:
        """Read ``table`` of every meter through the MeterClient, at most ``outstanding`` reads
        asked for and not yet answered (0: all at once), as the scheduler bounds its queue in
        front of the throttle; the figures."""
        from twisted.internet.defer import Deferred

        self.wire.clear()
        asked: list[float] = []
        errors: list[str] = []
        clock = time.perf_counter
        todo = iter(meter_ids)
        window = outstanding or len(meter_ids)
        state = {"running": 0, "left": len(meter_ids), "pumping": False}
        finished: Deferred[None] = Deferred()

        def ok(_: object, began: float) -> None:
            asked.append(clock() - began)

        def failed(failure: Any) -> None:
            errors.append(failure.getErrorMessage())

        def done(_: object) -> None:
            state["running"] -= 1
            state["left"] -= 1
            if not state["left"]:
                finished.callback(None)
            else:
                pump()

        def pump() -> None:
            if state["pumping"]:
                return  # a read that failed at once: the loop below goes on
            state["pumping"] = True
            while state["running"] < window:
                meter_id = next(todo, None)
                if meter_id is None:
                    break
                state["running"] += 1
                read = self.client.read_table(meter_id, table)
                read.addCallbacks(ok, failed, callbackArgs=(clock(),)).addBoth(done)
            state["pumping"] = False

        pauses = GcPauses()
        cpu0, _ = proc_stats()
        tx0, rx0 = self.traffic("tx"), self.traffic("rx")
        start = clock()
        with pauses:
            pump()
            if state["left"]:
                await finished
        seconds = clock() - start
        cpu1, rss = proc_stats()
        trips = len(self.wire)
        return {
            "reads": len(asked), "errors": len(errors),
            "first_error": errors[0] if errors else None,
            "seconds": seconds, "round_trips": trips, "cpu": cpu1 - cpu0, "rss_kib": rss,
            "wire_p50": percentile(self.wire, 50), "wire_p99": percentile(self.wire, 99),
            "asked_p50": percentile(asked, 50), "asked_p99": percentile(asked, 99),
            "request_bytes": (self.traffic("tx") - tx0) / max(1, trips),
            "response_bytes": (self.traffic("rx") - rx0) / max(1, trips),
            "peak_inflight": self.throttle.link_limit(str(self.link.kind)).peak,
            "mean_inflight": sum(self.wire) / seconds,  # Little's law: requests on the wire
            "gc_seconds": pauses.total, "gc_longest": pauses.longest, "gc_count": pauses.count,
        }  # fmt: skip


class GcPauses:
    """Collector passes while the block runs: how many, their total and longest time."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.longest = 0.0
        self._began = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        took = time.perf_counter() - self._began
        self.count += 1
        self.total += took
        self.longest = max(self.longest, took)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


async def gateway_role(reactor: Any, args: argparse.Namespace) -> None:
    """Listen; once ``args.meters`` meters registered, run the read cycles and report."""
    from amidcc.gateway.tap import tune_garbage_collector

    if args.gc_threshold:
        gc.set_threshold(args.gc_threshold, *gc.get_threshold()[1:])
    else:
        tune_garbage_collector()  # as the daemon's entry point does
    gw = BenchGateway(reactor, args.state_dir)
    port = await gw.start()

    gc.collect()
    cpu0, rss0 = proc_stats()
    emit("listening", port=port, rss_kib=rss0)
    await wait_until(
        reactor,
        lambda: len(gw.link.meters) >= args.meters,
        registration_timeout(args.meters),
        "registrations",
    )
    cpu1, rss1 = proc_stats()
    span = gw.last_registration - (gw.first_registration or gw.last_registration)
    emit("registered", meters=len(gw.link.meters), seconds=span, cpu=cpu1 - cpu0, rss_kib=rss1,
         connections=len(gw.link.channels), objects=len(gc.get_objects()))  # fmt: skip
    meter_ids = [address.meter_id for address in gw.link.meters.values()]
    if args.gc_freeze:
        gc.collect()
        gc.freeze()  # what a daemon can do once its fleet has registered: old objects not rescanned
    for name in cycle_names(args.steady_cycles):
        emit("cycle_start", name=name)
        with profiled(f"gateway-{name.replace(' ', '-')}-cycle"):
            figures = await gw.read_cycle(meter_ids, 23, args.outstanding)
        emit("cycle", name=name, **figures)
    await gw.stop()


# -- the parent ------------------------------------------------------------------------------------


def cycle_names(steady: int) -> list[str]:
    """The read cycles run: the first, then ``steady`` steady ones."""
    return ["first", *(f"steady {i + 1}" for i in range(steady))]


def scheduler_outstanding() -> int:
    """The daemon scheduler's default bound on operations in progress (its ``max_outstanding``)."""
    import inspect

    from amidcc.gateway.scheduler import Scheduler

    default = inspect.signature(Scheduler).parameters["max_outstanding"].default
    return int(default)


def cycle_timeout(meters: int) -> float:
    """Time allowed for one read cycle (at a pessimistic 40 reads/s, plus a minute)."""
    return 60.0 + meters / 40


def report_cycle(c: dict[str, Any], label: str) -> None:
    s = c["seconds"]
    fleet_cpu = c["fleet_cpu"]
    print(
        f"  {label}: {c['reads']:,} reads in {s:.1f} s"
        + (f", {c['errors']} failed ({c['first_error']})" if c["errors"] else "")
    )
    line("    reads/s", c["reads"] / s, "/s")
    line(
        "    round trips/s",
        c["round_trips"] / s,
        "/s",
        f"(in flight: mean {c['mean_inflight']:.0f}, peak {c['peak_inflight']})",
    )
    line(
        "    latency on the wire p50",
        c["wire_p50"] * 1000,
        "ms",
        f"p99 {c['wire_p99'] * 1000:,.1f} ms",
    )
    line(
        "    latency asking to decoded (with throttle queue) p50",
        c["asked_p50"] * 1000,
        "ms",
        f"p99 {c['asked_p99'] * 1000:,.0f} ms",
    )
    line(
        "    gateway CPU",
        c["cpu"] * 1000,
        "ms",
        f"({100 * c['cpu'] / s:.0f} % of a core; fleet {100 * fleet_cpu / s:.0f} %)",
    )
    line("    gateway CPU per read", c["cpu"] / max(1, c["reads"]) * 1e6, "us")
    line(
        "    gateway garbage collection",
        c["gc_seconds"] * 1000,
        "ms",
        f"({c['gc_count']:,} passes, longest {c['gc_longest'] * 1000:,.0f} ms)",
    )


def run(args: argparse.Namespace, state_dir: str) -> None:
    n = args.meters
    tuning = ["--outstanding", str(args.outstanding), "--steady-cycles", str(args.steady_cycles)]
    tuning += (["--gc-freeze"] if args.gc_freeze else []) + (
        ["--gc-threshold", str(args.gc_threshold)] if args.gc_threshold else []
    )
    gateway = Child(
        "bench.gateway_read_cycle",
        "--role",
        "gateway",
        "--meters",
        str(n),
        "--state-dir",
        state_dir,
        *tuning,
    )
    fleet: Child | None = None
    cycles: dict[str, dict[str, Any]] = {}
    try:
        listening = gateway.expect("listening", 30)
        fleet = Child("bench.fleet", "--role", "fleet", "--meters", str(n),
                      "--endpoint", f"tcp:127.0.0.1:{listening['port']}",
                      "--per-collector", str(args.per_collector),
                      "--direct", str(args.direct))  # fmt: skip
        registered = gateway.expect("registered", registration_timeout(n) + 30)
        base = listening["rss_kib"]
        print(f"{n:,} meters over {registered['connections']} connections "
              f"({collectors_for(n, args.per_collector, args.direct)} collectors); reads "
              f"outstanding at most: {args.outstanding or 'all'}")  # fmt: skip
        line(
            "  registration, first to last",
            registered["seconds"] * 1000,
            "ms",
            f"(gateway CPU {registered['cpu']:.1f} s)",
        )
        line(
            "  gateway resident set per registered meter",
            (registered["rss_kib"] - base) * 1024 / n,
            "B",
            "(aim: <= 5 KB)",
        )
        line("  objects tracked by the garbage collector", registered["objects"], "")
        for name in cycle_names(args.steady_cycles):
            gateway.expect("cycle_start", 30)
            f0, _ = fleet.stats()
            c = gateway.expect("cycle", cycle_timeout(n))
            f1, _ = fleet.stats()
            cycles[name] = {**c, "fleet_cpu": f1 - f0}
            if name == "first":
                report_cycle(cycles[name], "first cycle (ST0 + ST21 + ST23 per meter)")
        steady_cycles = [cycles[name] for name in cycle_names(args.steady_cycles)[1:]]
        steady = max(steady_cycles, key=lambda c: c["reads"] / c["seconds"])
        report_cycle(steady, f"steady cycle (ST23, contexts cached), best of {len(steady_cycles)}")
        rates = ", ".join(f"{c['reads'] / c['seconds']:,.0f}" for c in steady_cycles)
        print(f"    every steady cycle: {rates} reads/s")
        reads = sum(c["reads"] for c in steady_cycles) or 1
        line(  # steadier than one cycle's: /proc counts CPU in 10 ms ticks
            "    all steady cycles: gateway CPU per read",
            sum(c["cpu"] for c in steady_cycles) / reads * 1e6,
            "us",
            f"(collector {sum(c['gc_seconds'] for c in steady_cycles) / reads * 1e6:,.0f} us; "
            f"fleet {sum(c['fleet_cpu'] for c in steady_cycles) / reads * 1e6:,.0f} us)",
        )
        line(
            "  gateway resident set per registered meter, after reads",
            (c["rss_kib"] - base) * 1024 / n,
            "B",
            "(aim: <= 5 KB)",
        )
    finally:
        if fleet is not None:
            fleet.stop()
        gateway.stop()
    connections = registered["connections"]
    inflight = max(1, steady["peak_inflight"])
    size = max(1, round(steady["request_bytes"]))
    print(
        f"Bare Twisted echo, {connections} connections, {inflight} in flight, {size}-byte messages"
    )
    echo = measure_echo(
        connections=connections,
        inflight=inflight,
        size=size,
        duration=args.echo_duration,
        rounds=args.echo_rounds,
    )
    report_echo(echo)
    ratio = steady["reads"] / steady["seconds"] / echo["rate"]
    print(f"  ratio, best steady read cycle / best echo round: {ratio:.3f} (aim: >= 0.3)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--meters", type=int, default=10_000, help="meters in the fleet (default 10,000)"
    )
    parser.add_argument(
        "--per-collector", type=int, default=50, help="meters behind each collector (default 50)"
    )
    parser.add_argument(
        "--direct", type=int, default=100, help="meters on their own connection (default 100)"
    )
    parser.add_argument(
        "--steady-cycles",
        type=int,
        default=3,
        help="steady read cycles after the first; the best counts (default 3)",
    )
    parser.add_argument(
        "--echo-duration", type=float, default=1.0, help="seconds of each echo round (default 1)"
    )
    parser.add_argument(
        "--echo-rounds", type=int, default=5, help="echo rounds; the best counts (default 5)"
    )
    parser.add_argument(
        "--outstanding",
        type=int,
        default=scheduler_outstanding(),
        help="reads asked for and not yet answered at most (default: the scheduler's, "
        f"{scheduler_outstanding()}; 0: every read at once)",
    )
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gateway: gc.freeze() once the fleet registered"
    )
    parser.add_argument(
        "--gc-threshold",
        type=int,
        default=0,
        help="gateway: young-generation GC threshold (default: the daemon's; Python's is 700)",
    )
    parser.add_argument("--role", choices=("gateway",), help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "gateway":
        run_reactor(lambda reactor: gateway_role(reactor, args), whole=False)
        return
    print(
        "Gateway read cycle over C12.22/TCP: gateway, fleet and echo in separate processes, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="amidcc-bench-") as state_dir:
            run(args, state_dir)
    except (PhaseTimeout, RuntimeError) as exc:
        print(f"bench.gateway_read_cycle failed: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
