"""``amidcc demo`` as a subprocess: a small fleet for a few seconds, the JSON summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def test_demo_json_summary() -> None:
    proc = subprocess.run(
        [str(BIN / "amidcc"), "demo", "--meters", "60", "--duration", "10", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    reads = summary["reads"]
    assert reads["total"] > 0 and reads["ok"] > 0
    assert 0.5 <= reads["success_rate"] <= 1.0
    assert reads["total"] == reads["ok"] + reads["failed"]
    links = summary["meters_by_link_and_state"]
    assert {"c1222-tcp", "c1222-udp", "modbus"} <= set(links)
    assert sum(sum(states.values()) for states in links.values()) == 60
    assert summary["latency_seconds"]["p50"] is not None
    assert summary["events_by_class"]["safety"] >= 1  # the injected tamper
    assert summary["trouble_events"]["by_failure"].get("tamper", 0) >= 1
    assert "meters known" in proc.stderr  # progress while it runs


def test_demo_pcap_is_not_available_yet() -> None:
    proc = subprocess.run(
        [str(BIN / "amidcc"), "demo", "--pcap", "x.pcap"], capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2 and "not available yet" in proc.stderr
