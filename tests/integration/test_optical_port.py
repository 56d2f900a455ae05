"""The optical port on a real loopback socket (the asyncio reactor pytest-twisted runs), driven by
the test host built from c1218.Link and psem (tests/simulators/optical_client.py), and the
``amidcc simulate meter`` command in its own process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from amidcc.codecs.c1219 import (
    ST64,
    CurrentRegData,
    EdModeStatus,
    GenConfig,
    GeneralMfgId,
    LpData,
    decode_table,
)
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.psem import FullRead, Identify, Terminate, encode_request
from amidcc.simulators import MeterConfig, MeterIdentity, SimMeter
from amidcc.simulators.optical import LocalPort, LocalPortPolicy, OpticalConfig, OpticalPortFactory
from tests.simulators.optical_client import OpticalClient

pytestmark = pytest.mark.integration

DAY = 86400.0
ROOT = Path(__file__).resolve().parents[2]


def make_port(reactor: Any, policy: LocalPortPolicy | None = None, serial: str = "meter-0100") -> LocalPort:
    ident = MeterIdentity(manufacturer="ELST", model="OPT2", serial=serial, seed=100)
    # installed 60 days ago by default: more than 45 days of history behind "now"
    meter = SimMeter(ident, config=MeterConfig(), start_time=reactor.seconds() - DAY)
    return LocalPort(meter, policy)


@asynccontextmanager
async def optical(
    reactor: Any, port: LocalPort, **opt: Any
) -> AsyncIterator[tuple[OpticalClient, OpticalPortFactory]]:
    """Listen on a loopback port, connect the test host, clean both up."""
    factory = OpticalPortFactory(port, reactor, OpticalConfig(**opt))
    listener = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = OpticalClient(reactor, timeout=8.0)
    try:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", listener.getHost().port)
        await connectProtocol(endpoint, client)
        yield client, factory
    finally:
        if client.transport is not None:
            client.transport.loseConnection()
            await client.lost
        await listener.stopListening()


@pytest_twisted.ensureDeferred
async def test_reads_over_a_socket(reactor: Any) -> None:
    port = make_port(reactor)
    async with optical(reactor, port) as (client, factory):
        await client.open_session(negotiate=(1024, 8, (0x06,)))
        ctx = await client.learn()
        st0 = decode_table(0, await client.read(0), ctx)
        st1 = decode_table(1, await client.read(1), ctx)
        st3 = decode_table(3, await client.read(3), ctx)
        st23 = decode_table(23, await client.read(23), ctx)
        assert isinstance(st0, GenConfig)
        assert isinstance(st1, GeneralMfgId) and st1.mfg_serial_number.strip() == "meter-0100"
        assert isinstance(st3, EdModeStatus)
        assert isinstance(st23, CurrentRegData)
        size = ST64.size(ctx)
        assert size is not None
        lp = ST64.parse(await client.read_chunked(64, size, 8000), ctx)
        assert isinstance(lp, LpData)
        ends = sorted(b.end_time for b in lp.blocks if b.end_time is not None)
        assert (ends[-1] - ends[0]).total_seconds() >= 45 * DAY
        await client.close_session()
        server = factory.current
        assert server is not None and server.link.stats.crc_errors == 0
    assert not port.active


async def timed_read(reactor: Any, pace: bool, count: int) -> float:
    async with optical(reactor, make_port(reactor), pace=pace, baud=9600) as (client, _):
        await client.open_session(negotiate=(1024, 8, ()))
        start = time.monotonic()
        data = await client.read(64, 0, count)
        elapsed = time.monotonic() - start
        assert len(data) == count
        await client.call(Terminate())
    return elapsed


@pytest_twisted.ensureDeferred
async def test_pacing_at_9600_is_slower_than_unpaced(reactor: Any) -> None:
    unpaced = await timed_read(reactor, False, 1000)
    paced = await timed_read(reactor, True, 1000)
    # ~1000 bytes at 960 bytes a second: measured, only the ordering is asserted
    print(f"1000-byte read: unpaced {unpaced * 1000:.1f} ms, paced at 9600 bd {paced * 1000:.1f} ms")
    assert paced > unpaced


@pytest_twisted.ensureDeferred
async def test_preempt_answers_bsy_to_the_network(reactor: Any) -> None:
    port = make_port(reactor, LocalPortPolicy.PREEMPT)
    network = [encode_request(FullRead(table_id=0))]
    now = reactor.seconds()
    assert port.handle_network_services(network, now)[0][:1] == b"\x00"
    async with optical(reactor, port) as (client, _):
        await client.call(Identify())
        busy = port.handle_network_services(network, reactor.seconds())
        assert busy == [bytes((int(ResponseCode.BSY),))]
        await client.call(Terminate())
        assert port.handle_network_services(network, reactor.seconds())[0][:1] == b"\x00"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


async def _wait(reactor: Any, check: Callable[[], bool], timeout: float) -> None:
    from twisted.internet import task

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await task.deferLater(reactor, 0.05)


@pytest_twisted.ensureDeferred
async def test_simulate_meter_command(reactor: Any) -> None:
    cmd = [sys.executable, "-m", "amidcc", "simulate", "meter", "--optical", "tcp:0", "--seed", "7"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        assert proc.stdout is not None
        identity = proc.stdout.readline()  # blocks the reactor briefly: nothing else runs yet
        listening = proc.stdout.readline()
        assert identity.startswith("meter meter-0000:"), identity + (proc.stderr.read() if proc.stderr else "")
        tcp_port = int(listening.split("127.0.0.1:")[1].split()[0])
        client = OpticalClient(reactor, timeout=8.0)
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", tcp_port), client)
        await client.open_session()
        st1 = decode_table(1, await client.read(1), client.ctx)
        assert isinstance(st1, GeneralMfgId) and st1.mfg_serial_number.strip() == "meter-0000"
        await client.call(Terminate())
        client.transport.loseConnection()
        await client.lost
        proc.send_signal(signal.SIGINT)
        await _wait(reactor, lambda: proc.poll() is not None, 10.0)
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        assert "stopped after 1 optical session" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
