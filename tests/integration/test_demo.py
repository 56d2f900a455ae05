"""``amidcc demo`` as a subprocess: a small fleet for a few seconds on all three links (C12.22
over TCP and UDP, the RF mesh over MQTT on a broker the demo starts, Modbus), the JSON summary and
the ``--pcap`` capture (read back with ``amidcc pcap analyze``); and the demo without a broker
(the mesh share left out, the summary says why)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from amidcc.net.broker import BrokerError, find_broker

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "amidcc"), "demo", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_demo_json_summary_and_capture(tmp_path: Path) -> None:
    try:
        broker = find_broker()
    except BrokerError as err:
        pytest.skip(f"the RF mesh needs a broker: {err}")
    pcap = tmp_path / "demo.pcap"
    proc = demo("--meters", "60", "--duration", "10", "--json", "--pcap", str(pcap))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    reads = summary["reads"]
    assert reads["total"] > 0 and reads["ok"] > 0
    assert 0.5 <= reads["success_rate"] <= 1.0
    assert reads["total"] == reads["ok"] + reads["failed"]
    links = summary["meters_by_link_and_state"]
    assert {"c1222-tcp", "c1222-udp", "mqtt", "modbus"} <= set(links)
    assert sum(sum(states.values()) for states in links.values()) == 60
    # the RF mesh: 20 % of the fleet, registered through the broker the demo started
    mesh = summary["links"]["mqtt"]
    assert mesh["broker"] == broker and mesh["session"] == "ok"
    assert mesh["meters"] == 12 and mesh["registered"] == 12 and mesh["hops"] > 0
    assert sum(links["mqtt"].values()) == 12
    assert summary["latency_seconds"]["p50"] is not None
    assert summary["events_by_class"]["safety"] >= 1  # the injected tamper
    assert summary["trouble_events"]["by_failure"].get("tamper", 0) >= 1
    assert "meters known" in proc.stderr  # progress while it runs
    assert f"MQTT broker {broker}" in proc.stderr
    # the capture: every C12.22 APDU of the gateway, the mesh's cells on 1153, all decodable
    capture = summary["capture"]
    assert capture["files"] == [str(pcap)] and capture["apdus"] > 0 and capture["dropped"] == 0
    assert 1153 in capture["ports"]
    report = tmp_path / "analysis.json"
    ports = [arg for port in capture["ports"] for arg in ("--port", str(port))]
    analysed = subprocess.run(
        [str(BIN / "amidcc"), "pcap", "analyze", str(pcap), *ports, "--fail-on-malformed",
         "--summary-json", str(report)], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert analysed.returncode == 0, analysed.stdout[-2000:] + analysed.stderr[-2000:]
    assert "malformed: none" in analysed.stdout
    assert json.loads(report.read_text())["messages"] == capture["apdus"]


@pytest.mark.skipif(importlib.util.find_spec("amqtt") is not None, reason="amqtt is installed")
def test_demo_without_a_broker_runs_without_the_mesh() -> None:
    # AMIDCC_MQTT_BROKER=amqtt forces the fallback, which is not installed here
    proc = demo("--meters", "40", "--duration", "4", env={"AMIDCC_MQTT_BROKER": "amqtt"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "amqtt is not installed" in proc.stderr
    mqtt_row = next(line for line in proc.stdout.splitlines() if line.strip().startswith("mqtt"))
    assert " 0 -> none" in mqtt_row and "RF mesh not run: amqtt is not installed" in mqtt_row
    assert "modbus" in proc.stdout and "c1222-tcp" in proc.stdout


def test_demo_pcap_in_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    proc = demo("--pcap", str(tmp_path / "nowhere" / "x.pcap"))
    assert proc.returncode == 2 and "no such directory" in proc.stderr
