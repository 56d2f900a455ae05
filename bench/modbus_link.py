"""The Modbus link (`python -m bench.modbus_link`): requests per second through real sockets.

Simulated collectors run in a child process (pymodbus servers over SimMeters on a frozen clock);
this process runs the gateway's ModbusLink (pymodbus asyncio clients) on Twisted's asyncio reactor.
Printed, for one collector and for four (one client each, requests spread over their units):

- native block reads (one FC04 of 72 registers);
- PSEM full reads of ST1 through the window (one FC23 each, credential cached);
- PSEM full reads of ST23 with Security every time (credential_ttl 0: two FC23s each).

integration-notes.md measured ~4-5k plain reads/s per connection and 12-15k/s aggregate on this
kind of machine; the window adds the map's encode/decode and the meter's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from typing import Any

T0 = 1_767_225_600.0
UNITS = 16
DURATION = 2.0


def serve(collectors: int, units: int) -> None:
    """Child process: start the collectors, print their endpoints, run until killed."""
    from amidcc.simulators import MeterConfig, build_fleet
    from amidcc.simulators.modbus import start_collectors

    async def main() -> None:
        meters = build_fleet(collectors * units, 3, start_time=T0, config=MeterConfig())
        started = await start_collectors(meters, per_collector=units, clock=lambda: T0 + 3600)
        print(json.dumps([c.endpoint for c in started]), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


async def measure(link: Any, addresses: list[Any], operation: Any) -> float:
    """Requests/s with one back-to-back loop per address for DURATION seconds."""
    from twisted.internet.defer import DeferredList, ensureDeferred

    deadline = time.perf_counter() + DURATION
    done = [0]

    async def loop(address: Any) -> None:
        while time.perf_counter() < deadline:
            await operation(link, address)
            done[0] += 1

    start = time.perf_counter()
    await DeferredList([ensureDeferred(loop(a)) for a in addresses], fireOnOneErrback=True)
    return done[0] / (time.perf_counter() - start)


def _native(link: Any, address: Any) -> Any:
    return link.read_native(address, timeout=10)


def _read(table: int) -> Any:
    from amidcc.codecs.psem import FullRead, encode_request

    services = [encode_request(FullRead(table_id=table))]
    return lambda link, address: link.request(address, services, timeout=10)


async def scenario(reactor: Any, endpoints: list[str], ttl: float) -> None:
    """One link over ``endpoints``; the reads of the module docstring."""
    from twisted.internet.task import deferLater

    from amidcc.gateway.config import ModbusCollector
    from amidcc.gateway.links.base import LinkKind, MeterAddress
    from amidcc.gateway.links.modbus import ModbusLink, ModbusSettings
    from amidcc.simulators.config import pad_password

    from ._timing import report

    units = tuple(range(1, UNITS + 1))
    collectors = tuple(ModbusCollector(endpoint=e, unit_ids=units) for e in endpoints)
    settings = ModbusSettings(
        collectors=collectors, password=pad_password("master"), credential_ttl=ttl
    )
    link = ModbusLink(settings, clock=reactor)
    link.start()
    addresses = [
        MeterAddress(
            meter_id=f"{e}/{u}", ap_title=".1", link=LinkKind.MODBUS, route=(e,), unit_id=u
        )
        for e in endpoints
        for u in units
    ]
    while not all(link.is_reachable(a) for a in addresses):
        await deferLater(reactor, 0.01, lambda: None)
    name = f"{len(endpoints)} coll. x {UNITS} units"
    if ttl:
        report(f"{name}: native block reads", await measure(link, addresses, _native), "req/s")
        rate = await measure(link, addresses, _read(1))
        report(f"{name}: ST1 via window, cached credential", rate, "req/s")
    else:
        rate = await measure(link, addresses, _read(23))
        report(f"{name}: ST23 via window, Security every time", rate, "req/s")
    await link.stop()


async def run(reactor: Any, endpoints: list[str]) -> None:
    for count in (1, len(endpoints)):
        for ttl in (30.0, 0.0):
            await scenario(reactor, endpoints[:count], ttl)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", type=int, metavar="COLLECTORS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, UNITS)
        return
    from twisted.internet import asyncioreactor

    asyncioreactor.install()
    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import react

    child = subprocess.Popen(
        [sys.executable, "-m", "bench.modbus_link", "--serve", "4"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        endpoints = json.loads(child.stdout.readline())
        print(
            f"Modbus link, collectors in a child process, {UNITS} units each, {DURATION:.0f} s runs"
        )
        react(lambda r: ensureDeferred(run(r, endpoints)))
    finally:
        child.terminate()
        child.wait()


if __name__ == "__main__":
    main()
