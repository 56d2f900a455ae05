"""The gateway's own capture on real loopback sockets (issue 4: "the gateway's own captures analyse
cleanly, and where tshark is installed, tshark decodes them with no malformed packets and, given
the keys, verifies their MACs").

The C12.22 listener runs in-process on the asyncio reactor with security mode 2 and the capture
attached; a simulated fleet (a collector with meters behind it, and direct meters) registers, is
read, and pushes an alarm. Each meter has its own key under its own key id, so one key table
serves the gateway, ``amidcc pcap analyze`` and tshark (whose table maps a key id to one key). The
listener is on a free port, not 1153, so both decoders are told which port carries C12.22.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, task

from amidcc.cli import main as amidcc_main
from amidcc.codecs.c1222 import SecurityMode
from amidcc.gateway.capture import CaptureService, PcapCapture
from amidcc.gateway.config import parse_config
from amidcc.gateway.links.base import MeterAddress
from amidcc.gateway.links.c1222_transport import build_c1222
from amidcc.gateway.meters import MeterClient
from amidcc.gateway.metrics import GatewayMetrics
from amidcc.gateway.registry import MeterRegistry
from amidcc.gateway.tracing import FrameTracer
from amidcc.simulators import Access, FaultKind, MeterConfig, SimMeter, build_fleet, pad_password
from amidcc.simulators.c1222_tcp import NodeSettings, SimC1222Service, plan_nodes

pytestmark = pytest.mark.integration

PASSWORD = "master"
COLLECTOR_KEY_ID, COLLECTOR_KEY = 0, bytes(range(16))
BASE_OID = "2.16.124.113620.1.22.0"  # the config's default base OID (protocol-facts.md 3.3)
TSHARK = shutil.which("tshark") or "/usr/bin/tshark"
PI_WARN = 0x00600000  # Wireshark's expert severity "warning" (epan/proto.h)


def keyed_fleet(reactor: Any, n: int) -> list[SimMeter]:
    """``n`` simulated meters, meter i with key id i + 1 (its own key)."""
    base = MeterConfig(passwords=((pad_password(PASSWORD, pad=b" "), Access.WRITE),))
    start = reactor.seconds() - 3600
    return [
        SimMeter(m.identity, config=dataclasses.replace(base, key_id=i + 1), start_time=start)
        for i, m in enumerate(build_fleet(n, 17, start_time=start, config=base))
    ]


def key_table(meters: list[SimMeter]) -> dict[int, bytes]:
    return {COLLECTOR_KEY_ID: COLLECTOR_KEY} | {m.config.key_id: m.key for m in meters}


async def wait_for(reactor: Any, predicate: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError("condition not met in time")
        await task.deferLater(reactor, 0.02)


async def run_captured_gateway(reactor: Any, tmp_path: Path, meters: list[SimMeter]) -> Path:
    """Gateway + fleet on loopback, mode 2, capture on: register, reads, an alarm; the file."""
    keys = {m.identity.ap_title_text: {m.config.key_id: m.key} for m in meters}
    config = parse_config({
        "c1222": {
            "listen": "tcp:0:interface=127.0.0.1", "password": PASSWORD,
            "security_mode": "ciphertext", "keys": {"0": COLLECTOR_KEY.hex()},
        },
        "requests": {"timeout": "2s", "retries": 1},
    })  # fmt: skip
    registry = MeterRegistry(tmp_path / "gw.db", synchronous="OFF")
    alarms: list[MeterAddress] = []
    listener = build_c1222(
        config, reactor, registry=registry, metrics=GatewayMetrics(process=False),
        on_alarm=lambda address, services, now: alarms.append(address),
        keys_for=lambda title: keys.get(title, {COLLECTOR_KEY_ID: COLLECTOR_KEY}),
    )  # fmt: skip
    client = MeterClient([listener.tcp], resolve=registry, clock=reactor, requests=config.requests)
    path = tmp_path / "gateway.pcap"
    capture = PcapCapture(path, max_size=config.capture.max_size)
    tracer = FrameTracer(
        [meters[0].meter_id], meter_of=lambda t: getattr(registry.by_ap_title(t), "meter_id", None)
    )
    service = CaptureService(reactor, lambda: [listener.tcp], capture=capture, tracer=tracer)
    service.startService()
    listener.startService()
    port = (await listener.listening).getHost().port
    settings = NodeSettings(security_mode=SecurityMode.CIPHERTEXT, collector_key=COLLECTOR_KEY)
    nodes = plan_nodes(meters, settings, collectors=1, per_collector=2)
    sims = SimC1222Service(reactor, f"tcp:127.0.0.1:{port}", nodes, tick_interval=0.05)
    sims.startService()
    try:
        await wait_for(reactor, lambda: len(registry) == len(meters))
        for m in meters:
            for table in (1, 23):
                assert (await client.read_table(m.meter_id, table)).value is not None
        meters[1].inject(FaultKind.TAMPER, reactor.seconds())
        await wait_for(reactor, lambda: bool(alarms))
        assert alarms[0].meter_id == meters[1].meter_id
        assert tracer.traced >= 4  # the traced meter's reads, both ways
    finally:
        await sims.stopService()
        await listener.stopService()
        service.stopService()
        registry.close()
    assert capture.stats.dropped == 0 and capture.stats.write_errors == 0
    assert capture.stats.apdus >= 2 * (len(meters) + 1) + 4 * len(meters)
    return path


@pytest.fixture
def capture_file(reactor: Any, tmp_path: Path) -> tuple[Path, list[SimMeter], int]:
    """One captured run shared by the checks below (the port is read back from the file)."""
    meters = keyed_fleet(reactor, 4)
    run = defer.ensureDeferred(run_captured_gateway(reactor, tmp_path, meters))
    path = pytest_twisted.blockon(run)  # type: ignore[no-untyped-call]
    from amidcc.pcap.packets import parse_frame
    from amidcc.pcap.reader import read_frames

    first = next(iter(read_frames(path)))
    segment = parse_frame(first.linktype, first.data)
    assert segment is not None
    return path, meters, segment.dport  # the first SYN goes to the gateway's listening port


def test_amidcc_pcap_analyze_decodes_the_gateways_capture(
    capture_file: tuple[Path, list[SimMeter], int], tmp_path: Path, capsys: Any
) -> None:
    path, meters, port = capture_file
    argv = ["pcap", "analyze", str(path), "--port", str(port), "--fail-on-malformed"]
    argv += [a for k, v in key_table(meters).items() for a in ("--key", f"{k}:{v.hex()}")]
    summary_path = tmp_path / "summary.json"
    assert amidcc_main([*argv, "--summary-json", str(summary_path)]) == 0, capsys.readouterr().out
    summary = json.loads(summary_path.read_text())
    assert summary["malformed"] == {}
    assert summary["messages"] >= 2 * (len(meters) + 1) + 4 * len(meters)
    # every message was secured, and every one decrypted and verified
    assert summary["security"] == {"decrypted": summary["messages"]}
    assert summary["unanswered"] == 0 and summary["unmatched_responses"] == 0
    assert summary["conversations"] == 1 + 2  # the collector's connection and two direct meters


@pytest.mark.skipif(
    not Path(TSHARK).exists(), reason="tshark not installed (apt-get install tshark; .ci/run does)"
)
def test_tshark_reads_the_gateways_capture_and_verifies_every_mac(
    capture_file: tuple[Path, list[SimMeter], int],
) -> None:
    path, meters, port = capture_file
    options = ["-o", f"c1222.baseoid:{BASE_OID}", "-d", f"tcp.port=={port},c1222"]
    for key_id, key in key_table(meters).items():
        options += ["-o", f'uat:c1222_decryption_table:"{key_id}",{key.hex()}']
    fields = ["frame.number", "_ws.malformed", "_ws.expert.severity", "_ws.expert.message"]
    fields += ["c1222.crypto_good", "c1222.crypto_bad", "c1222.epsem.flags"]
    command = [TSHARK, "-n", "-r", str(path), *options, "-T", "fields", "-E", "separator=|"]
    command += ["-E", "aggregator=^", *(a for f in fields for a in ("-e", f))]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    rows = [line.split("|") for line in done.stdout.splitlines()]
    assert rows, f"tshark printed nothing: {done.stderr}"
    secured = 0
    for number, malformed, severity, message, good, bad, control in rows:
        assert not malformed, f"frame {number}: malformed"
        assert all(int(s) < PI_WARN for s in severity.split("^") if s), f"frame {number}: {message}"
        assert set(bad.split("^")) <= {"", "0"}, f"frame {number}: crypto_bad"
        epsems = [c for c in control.split("^") if c]
        goods = [g for g in good.split("^") if g]
        assert goods == ["1"] * len(epsems), f"frame {number}: MAC not verified ({good!r})"
        secured += len(epsems)
    assert secured >= 2 * (len(meters) + 1) + 4 * len(meters)
