"""A bare Twisted loopback echo (`python -m bench.echo_baseline`): round trips per second.

The yardstick of ``bench.gateway_read_cycle``: what Twisted on the asyncio reactor does with no
protocol work at all, in the same shape as the read cycle. Two processes: a server whose protocol
writes back whatever it receives, and a client with ``--connections`` connections keeping
``--inflight`` fixed-size messages in flight in all (spread evenly over the connections); each
message that comes back is counted and sent again, one ``write`` each, as a gateway sends one
request per response. After a short warm-up the rate is counted over ``--rounds`` windows of
``--duration`` seconds each and the best window counts (the least disturbed by the machine's
other work, as ``bench.gateway_read_cycle`` takes its best steady cycle); each process's CPU
share comes from ``/proc``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from .fleet import Child, PhaseTimeout, emit, line, proc_stats, run_reactor, sleep

WARMUP = 0.5


async def server_role(reactor: Any) -> None:
    from twisted.internet.defer import Deferred
    from twisted.internet.endpoints import TCP4ServerEndpoint
    from twisted.internet.protocol import Factory, Protocol

    class Echo(Protocol):
        def dataReceived(self, data: bytes) -> None:
            transport: Any = self.transport
            transport.write(data)

    port = await TCP4ServerEndpoint(reactor, 0, backlog=1024, interface="127.0.0.1").listen(
        Factory.forProtocol(Echo)
    )
    emit("listening", port=port.getHost().port)
    await Deferred()  # until terminated


async def client_role(reactor: Any, args: argparse.Namespace) -> None:
    from twisted.internet.defer import gatherResults
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
    from twisted.internet.protocol import Protocol

    message = bytes(range(256)) * (args.size // 256 + 1)
    message = message[: args.size]
    state = {"count": 0, "running": True}

    class Client(Protocol):
        def __init__(self) -> None:
            self.held = 0

        def send(self, k: int) -> None:
            transport: Any = self.transport
            for _ in range(k):
                transport.write(message)

        def dataReceived(self, data: bytes) -> None:
            self.held += len(data)
            k, self.held = divmod(self.held, args.size)
            state["count"] += k
            if state["running"]:
                self.send(k)

    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", args.port)
    protocols: list[Client] = await gatherResults(
        [connectProtocol(endpoint, Client()) for _ in range(args.connections)]
    )
    for i, proto in enumerate(protocols):
        proto.send(
            args.inflight // args.connections + (1 if i < args.inflight % args.connections else 0)
        )
    await sleep(reactor, WARMUP)
    for _ in range(args.rounds):
        count0, (cpu0, _), start = state["count"], proc_stats(), time.perf_counter()
        emit("measure_start")
        await sleep(reactor, args.duration)
        count1, (cpu1, _), seconds = state["count"], proc_stats(), time.perf_counter() - start
        emit("measured", rate=(count1 - count0) / seconds, cpu=(cpu1 - cpu0) / seconds,
             seconds=seconds)  # fmt: skip
    state["running"] = False
    for proto in protocols:
        transport: Any = proto.transport
        transport.loseConnection()


def measure_echo(
    *, connections: int, inflight: int, size: int, duration: float, rounds: int = 5
) -> dict[str, Any]:
    """Run the server and the client in two processes: the best round's rate and both CPU shares
    in it, and every round's rate (``rates``, in order)."""
    server = Child("bench.echo_baseline", "--role", "server")
    client: Child | None = None
    try:
        port = server.expect("listening", 30)["port"]
        client = Child("bench.echo_baseline", "--role", "client", "--port", str(port),
                       "--connections", str(connections), "--inflight", str(inflight),
                       "--size", str(size), "--duration", str(duration),
                       "--rounds", str(rounds))  # fmt: skip
        best: dict[str, Any] = {"rate": 0.0}
        rates: list[float] = []
        for _ in range(rounds):
            client.expect("measure_start", 60)
            s0, _ = server.stats()
            measured = client.expect("measured", duration + 30)
            s1, _ = server.stats()
            rates.append(measured["rate"])
            if measured["rate"] >= best["rate"]:
                best = {
                    "rate": measured["rate"],
                    "client_cpu": measured["cpu"],
                    "server_cpu": (s1 - s0) / measured["seconds"],
                }
        return {**best, "rates": rates}
    finally:
        if client is not None:
            client.stop()
        server.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--connections", type=int, default=300, help="client connections (default 300)"
    )
    parser.add_argument(
        "--inflight", type=int, default=256, help="messages in flight in all (default 256)"
    )
    parser.add_argument("--size", type=int, default=64, help="message size in bytes (default 64)")
    parser.add_argument(
        "--duration", type=float, default=1.0, help="seconds of each round (default 1)"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds measured; the best counts (default 5)"
    )
    parser.add_argument("--role", choices=("server", "client"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "server":
        run_reactor(server_role)
        return
    if args.role == "client":
        run_reactor(lambda reactor: client_role(reactor, args))
        return
    print(
        f"Bare Twisted echo, {args.connections} connections, {args.inflight} in flight, "
        f"{args.size}-byte messages"
    )
    try:
        echo = measure_echo(
            connections=args.connections,
            inflight=args.inflight,
            size=args.size,
            duration=args.duration,
            rounds=args.rounds,
        )
    except (PhaseTimeout, RuntimeError) as exc:
        print(f"bench.echo_baseline failed: {exc}", file=sys.stderr)
        sys.exit(1)
    report_echo(echo)


def report_echo(echo: dict[str, Any]) -> None:
    """Print the best round's rate and CPU shares, and the spread over the rounds."""
    rates = sorted(echo["rates"])
    line(
        f"  echo round trips/s, best of {len(rates)} rounds",
        echo["rate"],
        "/s",
        f"(client CPU {100 * echo['client_cpu']:.0f} %, server {100 * echo['server_cpu']:.0f} %)",
    )
    print(f"    every round: {', '.join(f'{r:,.0f}' for r in echo['rates'])} /s")


if __name__ == "__main__":
    main()
