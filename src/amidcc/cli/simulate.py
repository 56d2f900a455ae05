"""``amidcc simulate``: run simulated meters on the asyncio reactor until Ctrl-C.

::

    amidcc simulate meter --optical tcp:PORT [--baud B] [--pace] [--local-port POLICY]
                          [--scenario FILE] [--seed S] [--fault SPEC ...]
    amidcc simulate fleet --meters N [--tcp HOST:PORT] [--udp HOST:PORT]
                          [--mqtt URL [--cells C] [--relays R] [--topic-prefix P]]
                          [--modbus-collectors K] [--modbus-port P] [--scenario FILE]
                          [--seed S] [--duration S] [--fault SPEC ...]

One function per subcommand: ``_register_<name>`` adds its parser, ``run_<name>`` runs it. Heavy
imports (Twisted, the simulators) happen inside the runners, and the asyncio reactor is installed
there, before anything imports ``twisted.internet.reactor``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

EXIT_USAGE = 2
EXIT_FAILED = 1

#: Interval of the loop that applies scheduled faults and runs the meter's own schedules.
TICK_SECONDS = 1.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="run simulated meters",
        description="Run simulated meters made of amidcc's own codecs; Ctrl-C stops them.",
    )
    what = parser.add_subparsers(dest="simulate_command", metavar="WHAT", required=True)
    _register_meter(what)
    _register_fleet(what)


# -- simulate meter -----------------------------------------------------------------------------


def _register_meter(what: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = what.add_parser(
        "meter",
        help="one meter with its optical port (C12.18 over TCP)",
        description=(
            "Run one simulated meter whose optical port is a C12.18 link on a TCP port (the probe "
            "connects there), for the field tool and for conformance runs."
        ),
    )
    p.add_argument(
        "--optical",
        required=True,
        metavar="ENDPOINT",
        help="listen endpoint, e.g. tcp:1218 (loopback unless interface= is given; tcp:0 picks a port)",
    )
    p.add_argument(
        "--baud", type=int, default=9600, help="baud rate before Negotiate (default 9600)"
    )
    p.add_argument(
        "--pace", action="store_true", help="send no faster than the negotiated baud rate (8N1)"
    )
    p.add_argument(
        "--local-port",
        choices=("preempt", "share", "exclusive-network"),
        default=None,
        help="FR26 policy (default: from the scenario's meter.port_sharing)",
    )
    p.add_argument(
        "--scenario", metavar="FILE", help="scenario file (TOML, see docs/simulators.md)"
    )
    p.add_argument("--seed", type=int, default=None, help="meter seed (default: the scenario's)")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="fault to inject, e.g. metrology@0+10m or power-outage@0+1m~30s (repeatable)",
    )
    p.set_defaults(handler=run_meter)


def run_meter(args: argparse.Namespace) -> int:
    from amidcc.codecs.c1218 import CODE_BY_BAUD

    if args.baud not in CODE_BY_BAUD:
        rates = ", ".join(str(b) for b in sorted(CODE_BY_BAUD))
        return _usage(f"--baud {args.baud}: not a C12.18 rate (one of {rates})")
    try:
        scenario, faults = _load_meter_scenario(args)
    except ValueError as err:
        return _usage(str(err))
    reactor = _asyncio_reactor()
    try:
        model = _build_model(reactor, scenario, faults, args.seed)
    except ValueError as err:
        return _usage(str(err))
    return _serve_meter(reactor, model, args)


def _usage(message: str) -> int:
    print(f"amidcc simulate: {message}", file=sys.stderr)
    return EXIT_USAGE


def _load_meter_scenario(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    from amidcc.simulators import Scenario, load_scenario, parse_fault_arg

    scenario = load_scenario(args.scenario) if args.scenario else Scenario()
    return scenario, [parse_fault_arg(text) for text in args.fault]


def _asyncio_reactor() -> Any:
    """The asyncio reactor (installed here unless the caller already installed one)."""
    if "twisted.internet.reactor" not in sys.modules:
        from twisted.internet import asyncioreactor

        asyncioreactor.install()  # type: ignore[no-untyped-call]
    from twisted.internet import reactor

    return reactor


def _build_model(reactor: Any, scenario: Any, faults: list[Any], seed: int | None) -> Any:
    """A one-meter fleet: the scenario's first meter, its faults and random-fault rates."""
    from amidcc.simulators import FleetModel

    fleet = dataclasses.replace(
        scenario.fleet, meters=1, seed=scenario.fleet.seed if seed is None else seed
    )
    one = dataclasses.replace(scenario, fleet=fleet)
    return FleetModel.from_scenario(one, start_time=reactor.seconds(), extra_faults=faults)


def _endpoint_text(text: str) -> str:
    """``tcp:PORT`` listens on loopback unless an interface is named."""
    if text.startswith("tcp:") and "interface=" not in text:
        return f"{text}:interface=127.0.0.1"
    return text


def _serve_meter(reactor: Any, model: Any, args: argparse.Namespace) -> int:
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.task import LoopingCall

    from amidcc.simulators.optical import LocalPort, OpticalConfig, OpticalPortFactory

    meter = model.meters[0]
    offset = model.start_time - reactor.seconds()  # a scenario may start at another time
    port = LocalPort(meter, args.local_port)
    config = OpticalConfig(baud=args.baud, pace=args.pace, time_offset=offset)
    factory = OpticalPortFactory(port, reactor, config)
    outcome: dict[str, Any] = {"status": 0}

    def listening(listener: Any) -> None:
        outcome["listener"] = listener
        _print_identity(meter, port, config, listener.getHost())

    def failed(reason: Any) -> None:
        print(f"amidcc simulate: cannot listen on {args.optical}: {reason.value}", file=sys.stderr)
        outcome["status"] = EXIT_FAILED
        reactor.stop()

    def tick() -> None:
        for alarm in model.tick(reactor.seconds() + offset):
            print(f"alarm: {alarm}", flush=True)

    try:
        endpoint = serverFromString(reactor, _endpoint_text(args.optical))  # type: ignore[no-untyped-call]
    except (ValueError, KeyError) as err:
        return _usage(f"--optical {args.optical}: {err}")
    ticker = LoopingCall(tick)
    ticker.clock = reactor
    reactor.callWhenRunning(lambda: endpoint.listen(factory).addCallbacks(listening, failed))
    reactor.callWhenRunning(lambda: ticker.start(TICK_SECONDS, now=True))
    reactor.run()
    if ticker.running:
        ticker.stop()
    _print_summary(factory)
    return int(outcome["status"])


def _print_identity(meter: Any, port: Any, config: Any, host: Any) -> None:
    ident = meter.identity
    pacing = "paced" if config.pace else "unpaced"
    print(
        f"meter {ident.serial}: {ident.manufacturer} {ident.model} "
        f"hw {ident.hw_version}.{ident.hw_revision} fw {ident.fw_version}.{ident.fw_revision} "
        f"lot {ident.lot}, AP title {ident.ap_title_text}, "
        f"account {ident.account}, premise {ident.premise}",
        flush=True,
    )
    print(
        f"optical port: C12.18 on tcp {host.host}:{host.port} at {config.baud} baud ({pacing}), "
        f"local port policy {port.policy.value}; Ctrl-C stops",
        flush=True,
    )


def _print_summary(factory: Any) -> None:
    print(f"stopped after {factory.sessions} optical session(s)", flush=True)


# -- simulate fleet -----------------------------------------------------------------------------


def _register_fleet(what: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = what.add_parser(
        "fleet",
        help="a fleet of meters on C12.22/TCP (and UDP, RF mesh over MQTT, Modbus/TCP)",
        description=(
            "Run N simulated meters against a head-end: C12.22 over TCP to --tcp (meters behind "
            "collectors, some on their own connection), optionally some over UDP, some in an RF "
            "mesh on an MQTT broker (cells of relays; the head-end subscribes to the cells' "
            "uplinks) and some behind Modbus/TCP collectors the head-end polls. Shows progress "
            "while they register and a summary when it stops (after --duration, or on Ctrl-C)."
        ),
    )
    p.add_argument("--meters", type=int, default=None, help="fleet size (default: the scenario's)")
    p.add_argument(
        "--tcp", metavar="HOST:PORT", default="127.0.0.1:1153", help="head-end C12.22 TCP address"
    )
    p.add_argument("--udp", metavar="HOST:PORT", help="also put some meters on C12.22/UDP here")
    p.add_argument(
        "--mqtt", metavar="URL",
        help="put 20%% of the meters in an RF mesh on this broker (mqtt://HOST[:PORT])",
    )  # fmt: skip
    p.add_argument(
        "--cells", type=int, default=None, metavar="C",
        help="RF cells (default: one per 100 mesh meters)",
    )  # fmt: skip
    p.add_argument(
        "--relays", type=int, default=4, metavar="R", help="relays per RF cell (default 4)"
    )
    p.add_argument(
        "--topic-prefix", default="amidcc", metavar="P",
        help="first level of the mesh's topics: the gateway's [mqtt] topic_prefix (default amidcc)",
    )  # fmt: skip
    p.add_argument(
        "--modbus-collectors", type=int, default=0, metavar="K", help="Modbus/TCP collectors"
    )
    p.add_argument(
        "--modbus-port", type=int, default=0, metavar="P",
        help="first collector port (P, P+1, ...; default: free ports, printed)",
    )  # fmt: skip
    p.add_argument(
        "--per-collector", type=int, default=50, help="meters per C12.22 collector (default 50)"
    )
    p.add_argument(
        "--scenario", metavar="FILE", help="scenario file (TOML, see docs/simulators.md)"
    )
    p.add_argument("--seed", type=int, default=None, help="fleet seed (default: the scenario's)")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument(
        "--fault", action="append", default=[], metavar="SPEC",
        help="fault to inject, e.g. tamper@meter-0003+30s (repeatable)",
    )  # fmt: skip
    p.add_argument("--password", default=None, help="meters' PSEM password (write access)")
    p.set_defaults(handler=run_fleet)


def run_fleet(args: argparse.Namespace) -> int:
    try:
        scenario, faults = _load_meter_scenario(args)
        tcp = _host_port(args.tcp, "--tcp")
        udp = _host_port(args.udp, "--udp") if args.udp else None
        if args.mqtt:
            _check_mqtt_url(args.mqtt)
    except ValueError as err:
        return _usage(str(err))
    if args.meters is not None and args.meters < 1:
        return _usage("--meters: at least 1")
    reactor = _asyncio_reactor()
    from amidcc.demo.fleet import FleetPlan, FleetRunner

    try:
        plan = FleetPlan.from_args(args, scenario, faults, start=reactor.seconds())
    except ValueError as err:
        return _usage(str(err))
    runner = FleetRunner(reactor, plan, tcp=tcp, udp=udp)
    return runner.run_until_stopped(args.duration, out=sys.stdout)


def _check_mqtt_url(url: str) -> None:
    from amidcc.net.mqtt_config import parse_mqtt_url

    try:
        parse_mqtt_url(url)
    except ValueError as err:
        raise ValueError(f"--mqtt: {err}") from None


def _host_port(text: str, option: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"{option} {text!r}: expected HOST:PORT")
    return host, int(port)
