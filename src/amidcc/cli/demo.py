"""``amidcc demo``: the gateway and a simulated fleet on embedded defaults, then a summary.

::

    amidcc demo [--meters N] [--duration S] [--seed S] [--json] [--pcap FILE]

Progress goes to stderr, the summary to stdout (``--json``: the same summary as JSON).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_FAILED = 1
EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the gateway against a simulated fleet and summarise",
        description=(
            "Start an MQTT broker (mosquitto, else amqtt), the gateway on embedded defaults (a "
            "temporary state directory, free loopback ports) and a simulated fleet spread over "
            "C12.22/TCP, C12.22/UDP, the RF mesh over MQTT and Modbus/TCP, with a few faults "
            "injected; show progress, then a summary: meters by link and state, reads and their "
            "success rate, latency, events by class, trouble events. Without a broker the mesh "
            "share is left out (the summary says so)."
        ),
    )
    p.add_argument("--meters", type=int, default=1000, help="fleet size (default 1000)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds to run (default 30)")
    p.add_argument("--seed", type=int, default=1, help="fleet seed (default 1)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--pcap", metavar="FILE", type=Path,
        help="record the gateway's C12.22 traffic (TCP, UDP and the RF mesh's MQTT payloads) "
        "to a pcap file that Wireshark's C12.22 dissector and `amidcc pcap analyze` read",
    )  # fmt: skip
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.pcap is not None and not args.pcap.parent.resolve().is_dir():
        print(f"amidcc demo: --pcap {args.pcap}: no such directory", file=sys.stderr)
        return EXIT_USAGE
    if args.meters < 1 or args.duration <= 0:
        print("amidcc demo: --meters must be >= 1 and --duration > 0", file=sys.stderr)
        return EXIT_USAGE
    from amidcc.cli.simulate import _asyncio_reactor

    reactor = _asyncio_reactor()
    from amidcc.demo.run import render, run_demo, to_json

    outcome: dict[str, Any] = {}

    def finished(summary: dict[str, Any]) -> None:
        outcome["summary"] = summary
        reactor.stop()

    def failed(failure: Any) -> None:
        outcome["error"] = failure.getTraceback()
        reactor.stop()

    def start() -> None:
        d = run_demo(reactor, meters=args.meters, duration=args.duration, seed=args.seed,
                     out=sys.stderr, pcap=args.pcap)  # fmt: skip
        d.addCallbacks(finished, failed)

    reactor.callWhenRunning(start)
    reactor.run()
    if "summary" not in outcome:
        print(f"amidcc demo failed:\n{outcome.get('error', 'interrupted')}", file=sys.stderr)
        return EXIT_FAILED
    print(to_json(outcome["summary"]) if args.json else render(outcome["summary"]), flush=True)
    return 0
