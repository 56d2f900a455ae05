"""The real daemon (twistd on the asyncio reactor) against ``amidcc simulate fleet``, both as
subprocesses on loopback, with a real MQTT broker between them for the RF mesh: the fleet's
C12.22 and mesh meters register, the Modbus meters are enrolled, and the scheduler reads them on
all three links (checked through the operator API, /health and /metrics); ``[capture] pcap``
records the traffic."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from amidcc.net.broker import BrokerError, BrokerProcess

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
TIMEOUT = 25.0
METERS = 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def broker() -> Iterator[BrokerProcess | None]:
    """A broker for the mesh share; None (the test runs without it) where none is installed."""
    try:
        started = BrokerProcess.start()
    except BrokerError:
        yield None
        return
    with started:
        yield started


#: The fleet's split of METERS (amidcc.demo.fleet.split): Modbus 10 %, RF mesh 20 %, TCP the rest.
MODBUS, MESH = 4, 8


def test_daemon_reads_a_simulated_fleet(tmp_path: Path, broker: BrokerProcess | None) -> None:
    c1222, api, metrics, modbus = free_port(), free_port(), free_port(), free_port()
    mesh = MESH if broker is not None else 0
    mqtt_section = (
        f"""[mqtt]
enabled = true
url = "{broker.url}"
reconnect_min = "100ms"
reconnect_max = "1s"
"""
        if broker is not None
        else ""
    )
    mqtt_args = ["--mqtt", broker.url, "--cells", "2", "--relays", "2"] if broker else []
    links = {"c1222-tcp", "modbus"} | ({"mqtt"} if broker is not None else set())
    config = tmp_path / "amidcc.toml"
    config.write_text(f"""
[gateway]
name = "fleet-itest"
state_dir = "{tmp_path / "state"}"
[c1222]
listen = "tcp:{c1222}:interface=127.0.0.1"
password = "master"
[modbus]
enabled = true
collectors = [{{ endpoint = "tcp:127.0.0.1:{modbus}", unit_ids = [1, 2, 3, 4] }}]
[requests]
timeout = "3s"
retries = 1
backoff_base = "200ms"
backoff_max = "200ms"
[schedule]
read_interval = "2s"
read_spread = "2s"
clock_check_interval = "5s"
[api]
listen = "tcp:{api}:interface=127.0.0.1"
[metrics]
listen = "tcp:{metrics}:interface=127.0.0.1"
[capture]
pcap = "fleet.pcap"
{mqtt_section}""")
    daemon_log, fleet_log = tmp_path / "daemon.log", tmp_path / "fleet.log"
    with daemon_log.open("wb") as dlog, fleet_log.open("wb") as flog:
        fleet = subprocess.Popen(
            [str(BIN / "amidcc"), "simulate", "fleet", "--meters", str(METERS),
             "--tcp", f"127.0.0.1:{c1222}", "--modbus-collectors", "1",
             "--modbus-port", str(modbus), "--password", "master", "--seed", "5",
             "--duration", "40", *mqtt_args],
            stdout=flog, stderr=subprocess.STDOUT,
        )  # fmt: skip
        daemon = subprocess.Popen(
            [str(BIN / "twistd"), "-n", "--reactor=asyncio", "--pidfile=", "amidcc",
             "--config", str(config)],
            stdout=dlog, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + TIMEOUT
            meters: dict[str, object] = {}
            reads: dict[tuple[tuple[str, str], ...], float] = {}
            while time.monotonic() < deadline:
                assert daemon.poll() is None, daemon_log.read_text()
                status, body = fetch(f"http://127.0.0.1:{api}/api/meters?limit=1")
                meters = json.loads(body) if status == 200 else {}
                _, text = fetch(f"http://127.0.0.1:{metrics}/metrics")
                reads = samples(text, "amidcc_request_latency_seconds_count") if text else {}
                read_links = {dict(k)["link"] for k, v in reads.items()
                              if dict(k)["operation"] == "read" and v > 0}  # fmt: skip
                if meters.get("total") == METERS and links <= read_links:
                    break
                time.sleep(0.5)
            else:
                pytest.fail(
                    f"meters {meters.get('total')}, reads {reads}\n--- daemon\n"
                    f"{daemon_log.read_text()[-4000:]}\n--- fleet\n{fleet_log.read_text()[-2000:]}"
                )
            ratio = samples(text, "amidcc_read_success_ratio")
            assert ratio and all(0.0 <= v <= 1.0 for v in ratio.values())
            counts = {"modbus": MODBUS, "mqtt": mesh, "c1222-tcp": METERS - MODBUS - mesh}
            for link, count in counts.items():
                status, body = fetch(f"http://127.0.0.1:{api}/api/meters?link={link}&limit=1")
                assert status == 200 and json.loads(body)["total"] == count, (link, body)
            assert set(samples(text, "amidcc_meters_registered")) >= {
                (("link", name),) for name in links
            }
            status, body = fetch(f"http://127.0.0.1:{metrics}/health")
            checks = json.loads(body)["checks"]
            assert status == 200 and checks.get("mqtt", "absent") == (
                "ok" if broker is not None else "absent"
            )
        finally:
            stop(daemon)
            stop(fleet)
    # [capture] pcap (under state_dir): the daemon recorded its C12.22 traffic, closed on stop
    pcap = tmp_path / "state" / "fleet.pcap"
    assert pcap.exists() and pcap.stat().st_size > 24, daemon_log.read_text()[-2000:]
    summary = fleet_log.read_text()
    assert "fleet summary" in summary
    if broker is not None:
        assert f"RF mesh: {MESH} registered in 2 cells" in summary
