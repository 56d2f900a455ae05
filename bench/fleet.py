"""A simulated fleet on C12.22/TCP (`python -m bench.fleet`): start-up, memory/meter, requests/s.

Issue 3's benchmark. For 1,000 and 10,000 meters (``--meters`` picks others), three processes on
loopback, each on Twisted's asyncio reactor:

- the **fleet** (``--role fleet``): builds the meters (:func:`build_fleet`), puts them on
  C12.22/TCP (:func:`plan_nodes`: 50 behind each collector, on one connection per collector, and
  100 on their own connection) and runs them (:class:`SimC1222Service`, ticked every second);
- a **head-end** (``--role headend``): the gateway's C12.22 listener and link, which the fleet
  registers with; then it sends reads (a sessionless Security first, as the gateway does)
  straight through :meth:`C1222Link.request`, no MeterClient and no throttle, ``--inflight`` at
  once: ST3 from every meter round-robin for ``--duration`` seconds, then ST23 from the first
  ``--sample`` meters, once each (a meter's first ST23 computes its maximum demand since the last
  demand reset) and then round-robin for ``--duration`` seconds;
- this process, which starts both, bounds every phase with a timeout, samples the fleet's CPU
  time and resident set from ``/proc/PID`` and prints the figures.

Printed: the time to build the fleet and until every meter is registered; the fleet's
resident-set growth per meter (over the process just before building, so imports do not count)
once built, once registered and after the reads; the requests answered per second, with the
fleet's CPU time per request answered and the CPU share each process used meanwhile. (The two
processes tend to take turns: Twisted writes what a burst of responses asked for in one go when
the burst is done, so each side often waits for the other's whole batch; the fleet's CPU time
per request is the figure that says how many it could answer with a core to itself.)
The aim (issue 3) is 10,000 meters in one process under 20 KB per meter.

The process helpers below (``Child``, ``proc_stats``, ``emit``, ``run_reactor``...) are shared
with ``bench.gateway_read_cycle`` and ``bench.echo_baseline``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

#: Simulated time when the meters were installed: an hour before the run starts.
HISTORY = 3600.0
SEED = 7
PASSWORD = "master"

# -- process helpers (shared by the benchmarks that run several processes) -------------------------

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


class PhaseTimeout(Exception):
    """A child did not report in time."""


def proc_stats(pid: int | str = "self") -> tuple[float, int]:
    """(CPU seconds used, user + system; resident set in KiB) of a process, from ``/proc``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * _PAGE_KIB
    return cpu, rss


def emit(event: str, **fields: object) -> None:
    """A child's report to its parent: one JSON line on stdout."""
    print(json.dumps({"event": event, **fields}), flush=True)


class Child:
    """A benchmark role in its own process (``python -m MODULE --role ...``), read line by line."""

    def __init__(self, module: str, *args: str) -> None:
        self.name = f"{module} {' '.join(args)}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        self.pid = self.proc.pid
        self._buffer = b""

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """The next report named ``event`` (others skipped); PhaseTimeout after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        out = self.proc.stdout
        assert out is not None
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                message: dict[str, Any] = json.loads(line)
                if message.get("event") == "error":
                    raise RuntimeError(f"{self.name}: {message.get('error')}")
                if message.get("event") == event:
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise PhaseTimeout(f"{self.name}: no {event!r} within {timeout:.0f} s")
            ready, _, _ = select.select([out], [], [], left)
            if ready:
                chunk = os.read(out.fileno(), 65536)
                if not chunk:
                    code = self.proc.wait()
                    raise RuntimeError(f"{self.name} exited ({code}) before {event!r}")
                self._buffer += chunk

    def stats(self) -> tuple[float, int]:
        """The child's (CPU seconds, resident KiB) now."""
        return proc_stats(self.pid)

    def stop(self) -> None:
        """Terminate (then kill) the child."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


PROFILE_ENV = "AMIDCC_BENCH_PROFILE"


def run_reactor(main: Callable[[Any], Any], *, whole: bool = True) -> None:
    """Install the asyncio reactor, run the coroutine ``main(reactor)`` and exit with its outcome.

    The reactor and the logger are set up here so that each role logs like the daemon does (to a
    file, info and up) instead of Twisted's in-memory buffer of the first 65,536 events. With
    ``AMIDCC_BENCH_PROFILE=DIR`` in the environment the role runs under cProfile and writes
    ``DIR/ROLE-PID.prof`` when it ends or is terminated (``whole=False``: the role profiles the
    phases it chooses itself, see :func:`profiled`).
    """
    from twisted.internet import asyncioreactor

    asyncioreactor.install()
    import tempfile

    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import react
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    handle = tempfile.NamedTemporaryFile("w", prefix="amidcc-bench-", suffix=".log")
    level: Any = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
    text: Any = textFileLogObserver(handle)
    observer: Any = FilteringLogObserver(text, [level])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)

    async def guarded(reactor: Any) -> None:
        try:
            await main(reactor)
        except Exception as exc:
            emit("error", error=f"{type(exc).__name__}: {exc}")
            raise

    profile_dir = os.environ.get(PROFILE_ENV)
    if not profile_dir or not whole:
        react(lambda reactor: ensureDeferred(guarded(reactor)))
        return
    import cProfile
    import signal

    profiler = cProfile.Profile()

    def dump(*_: object) -> None:
        profiler.disable()
        role = sys.argv[sys.argv.index("--role") + 1] if "--role" in sys.argv else "main"
        profiler.dump_stats(os.path.join(profile_dir, f"{role}-{os.getpid()}.prof"))
        os._exit(0)

    signal.signal(signal.SIGTERM, dump)
    profiler.enable()
    try:
        react(lambda reactor: ensureDeferred(guarded(reactor)))
    finally:
        dump()


@contextlib.contextmanager
def profiled(name: str) -> Iterator[None]:
    """Profile the block into ``$AMIDCC_BENCH_PROFILE/NAME.prof`` when that variable is set."""
    directory = os.environ.get(PROFILE_ENV)
    if not directory:
        yield
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(os.path.join(directory, f"{name}.prof"))


async def sleep(reactor: Any, seconds: float) -> None:
    from twisted.internet.task import deferLater

    await deferLater(reactor, seconds, lambda: None)


async def wait_until(
    reactor: Any, predicate: Callable[[], bool], timeout: float, what: str
) -> None:
    """Poll ``predicate`` every 20 ms; PhaseTimeout after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise PhaseTimeout(f"{what}: not done within {timeout:.0f} s")
        await sleep(reactor, 0.02)


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def registration_timeout(meters: int) -> float:
    """Time allowed for a fleet to build, connect and register (generous: a loaded CI machine)."""
    return 60.0 + meters / 100


# -- the fleet -------------------------------------------------------------------------------------


def collectors_for(meters: int, per_collector: int, direct: int) -> int:
    """Collectors needed to carry every meter but ``direct`` of them, ``per_collector`` each."""
    return -(-max(0, meters - direct) // per_collector)


async def fleet_role(reactor: Any, args: argparse.Namespace) -> None:
    """Build ``args.meters`` meters, connect them to ``args.endpoint``, report, run until killed."""
    from amidcc.simulators import Access, MeterConfig, build_fleet, pad_password
    from amidcc.simulators.c1222_tcp import NodeSettings, SimC1222Service, plan_nodes

    gc.collect()
    cpu0, rss0 = proc_stats()
    config = MeterConfig(passwords=((pad_password(PASSWORD), Access.WRITE),))
    start = time.perf_counter()
    meters = build_fleet(args.meters, SEED, start_time=reactor.seconds() - HISTORY, config=config)
    collectors = collectors_for(args.meters, args.per_collector, args.direct)
    nodes = plan_nodes(
        meters, NodeSettings(), collectors=collectors, per_collector=args.per_collector, seed=SEED
    )
    built = time.perf_counter() - start
    _, rss_built = proc_stats()
    emit(
        "built",
        seconds=built,
        rss_kib=rss_built,
        rss0_kib=rss0,
        nodes=len(nodes),
        collectors=collectors,
    )
    service = SimC1222Service(
        reactor, args.endpoint, nodes, tick_interval=1.0, retry_initial=0.2, retry_max=2.0
    )
    service.startService()
    target = args.meters + collectors
    await wait_until(
        reactor,
        lambda: service.registered >= target,
        registration_timeout(args.meters),
        "fleet registration",
    )
    cpu, rss = proc_stats()
    emit("ready", seconds=time.perf_counter() - start, rss_kib=rss, rss0_kib=rss0, cpu=cpu - cpu0)
    await reactor_forever(reactor)


async def reactor_forever(reactor: Any) -> None:
    from twisted.internet.defer import Deferred

    await Deferred()  # until the parent terminates this process


# -- the head-end that loads it --------------------------------------------------------------------


async def headend_role(reactor: Any, args: argparse.Namespace) -> None:
    """Listen, wait for ``args.meters`` registrations, then load the fleet with reads (see the
    module docstring). The registry does not sync to disk here (``synchronous=OFF``): the daemon's
    durable first-seen write per meter would measure the head-end's disk, not the fleet."""
    from amidcc.codecs.psem import FullRead, encode_request

    from .gateway_read_cycle import BenchGateway

    gw = BenchGateway(reactor, args.state_dir, per_link=args.inflight, synchronous="OFF")
    port = await gw.start()
    emit("listening", port=port)
    await wait_until(
        reactor,
        lambda: len(gw.link.meters) >= args.meters,
        registration_timeout(args.meters),
        "registrations",
    )
    emit("registered", meters=len(gw.link.meters))
    addresses = list(gw.link.meters.values())
    sample = addresses[: args.sample]
    phases = (
        ("ST3", 3, addresses, args.duration),
        ("ST23 first", 23, sample, 0.0),  # each meter of the sample once
        ("ST23", 23, sample, args.duration),
    )
    for name, table, targets, duration in phases:
        services = [encode_request(FullRead(table_id=table))]
        emit("load_start", name=name)
        cpu0, _ = proc_stats()
        inflight = min(args.inflight, len(targets))
        done, errors, seconds = await gw.hammer(
            targets, services, inflight, duration, once=not duration
        )
        cpu1, _ = proc_stats()
        emit(
            "load_end",
            name=name,
            meters=len(targets),
            answered=done,
            errors=errors,
            seconds=seconds,
            cpu=cpu1 - cpu0,
        )
    await gw.stop()


# -- the parent ------------------------------------------------------------------------------------


def line(name: str, value: float, unit: str, note: str = "") -> None:
    print(f"{name:<58} {value:>12,.0f} {unit:<6} {note}".rstrip())


def run_one(n: int, args: argparse.Namespace, state_dir: str) -> None:
    """One fleet of ``n`` meters against one head-end: print its figures."""
    common = ["--meters", str(n)]
    headend = Child("bench.fleet", "--role", "headend", *common, "--state-dir", state_dir,
                    "--inflight", str(args.inflight), "--duration", str(args.duration),
                    "--sample", str(args.sample))  # fmt: skip
    fleet: Child | None = None
    try:
        port = headend.expect("listening", 30)["port"]
        fleet = Child("bench.fleet", "--role", "fleet", *common, "--endpoint",
                      f"tcp:127.0.0.1:{port}", "--per-collector", str(args.per_collector),
                      "--direct", str(args.direct))  # fmt: skip
        built = fleet.expect("built", 60 + n / 200)
        ready = fleet.expect("ready", registration_timeout(n))
        headend.expect("registered", 30)
        base = built["rss0_kib"]
        print(
            f"{n:,} meters: {built['collectors']} collectors + "
            f"{built['nodes'] - built['collectors']} direct connections"
        )
        line(f"  build {n:,} meters and their nodes", built["seconds"] * 1000, "ms")
        line("  start-up: build, connect and register every meter", ready["seconds"] * 1000, "ms")
        line("  resident set per meter, built", (built["rss_kib"] - base) * 1024 / n, "B")
        line("  resident set per meter, registered", (ready["rss_kib"] - base) * 1024 / n, "B",
             "(aim: < 20 KB)")  # fmt: skip
        for _ in range(3):
            headend.expect("load_start", 30)
            cpu0, _ = fleet.stats()
            end = headend.expect("load_end", args.duration + 60 + args.sample / 20)
            cpu1, rss = fleet.stats()
            rate = end["answered"] / end["seconds"]
            fleet_share, headend_share = (cpu1 - cpu0) / end["seconds"], end["cpu"] / end["seconds"]
            per_request = (cpu1 - cpu0) / max(1, end["answered"]) * 1e6
            busy = (
                f"(fleet {per_request:,.0f} us/req, CPU {100 * fleet_share:.0f} %; "
                f"head-end {100 * headend_share:.0f} %"
            )
            errors = f", {end['errors']} errors)" if end["errors"] else ")"
            label = {
                "ST3": "ST3, every meter round-robin",
                "ST23 first": f"ST23, first read of {end['meters']:,} meters",
                "ST23": f"ST23, {end['meters']:,} meters round-robin",
            }[end["name"]]
            line(f"  answered: Security + {label}", rate, "req/s", busy + errors)
        line("  resident set per meter, after the reads", (rss - base) * 1024 / n, "B")
    finally:
        if fleet is not None:
            fleet.stop()
        headend.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--meters",
        type=int,
        action="append",
        help="fleet size (repeatable; default 1,000 and 10,000)",
    )
    parser.add_argument(
        "--per-collector", type=int, default=50, help="meters behind each collector (default 50)"
    )
    parser.add_argument(
        "--direct", type=int, default=100, help="meters on their own connection (default 100)"
    )
    parser.add_argument(
        "--inflight", type=int, default=256, help="head-end requests in flight (default 256)"
    )
    parser.add_argument(
        "--duration", type=float, default=3.0, help="seconds of each read load (default 3)"
    )
    parser.add_argument(
        "--sample", type=int, default=1000, help="meters read for ST23 (default 1,000)"
    )
    parser.add_argument("--role", choices=("fleet", "headend"), help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "fleet":
        args.meters = args.meters[0]
        run_reactor(lambda reactor: fleet_role(reactor, args))
        return
    if args.role == "headend":
        args.meters = args.meters[0]
        run_reactor(lambda reactor: headend_role(reactor, args))
        return
    import tempfile

    print(f"C12.22/TCP fleet and head-end in two processes on loopback, {os.cpu_count()} cores; "
          f"reads {args.duration:.0f} s each, {args.inflight} in flight")  # fmt: skip
    try:
        for n in args.meters or (1_000, 10_000):
            with tempfile.TemporaryDirectory(prefix="amidcc-bench-") as state_dir:
                run_one(n, args, state_dir)
    except (PhaseTimeout, RuntimeError) as exc:
        print(f"bench.fleet failed: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
