"""The real daemon (twistd on the asyncio reactor) against ``amidcc simulate fleet``, both as
subprocesses on loopback, with a real MQTT broker between them for the RF mesh: the fleet's
C12.22 and mesh meters register, the Modbus meters are enrolled, and the scheduler reads them on
all three links (checked through the operator API, /health and /metrics); ``[capture] pcap``
records the traffic. Both children stop on SIGTERM and must exit cleanly (see conftest)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from amidcc.net.broker import BrokerProcess

from .conftest import BIN, CLEAN_EXITS, Child, fetch, free_port, samples

pytestmark = pytest.mark.integration

TIMEOUT = 25.0
METERS = 40


#: The fleet's split of METERS (amidcc.demo.fleet.split): Modbus 10 %, RF mesh 20 %, TCP the rest.
MODBUS, MESH = 4, 8


def test_daemon_reads_a_simulated_fleet(
    tmp_path: Path, broker_or_none: BrokerProcess | None
) -> None:
    broker = broker_or_none
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
    fleet = Child.start(
        "fleet",
        [str(BIN / "amidcc"), "simulate", "fleet", "--meters", str(METERS),
         "--tcp", f"127.0.0.1:{c1222}", "--modbus-collectors", "1",
         "--modbus-port", str(modbus), "--password", "master", "--seed", "5",
         "--duration", "60", *mqtt_args],
        tmp_path / "fleet.log", cwd=tmp_path,
    )  # fmt: skip
    daemon = Child.start(
        "daemon",
        [str(BIN / "twistd"), "-n", "--reactor=asyncio", "--pidfile=", "amidcc",
         "--config", str(config)],
        tmp_path / "daemon.log", cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + TIMEOUT
        meters: dict[str, object] = {}
        ratio: dict[tuple[tuple[str, str], ...], float] = {}
        text = ""
        # Wait for what is asserted: the success ratio of a link exists once a *scheduled* read
        # on it ended. A read latency sample is not enough: the ST6 read that locates a meter
        # when it registers (or is enrolled) counts as a read too, up to read_spread earlier.
        while time.monotonic() < deadline:
            assert daemon.alive, daemon.tail()
            status, body = fetch(f"http://127.0.0.1:{api}/api/meters?limit=1")
            meters = body if status == 200 else {}
            _, text = fetch(f"http://127.0.0.1:{metrics}/metrics")
            ratio = samples(text, "amidcc_read_success_ratio") if text else {}
            if meters.get("total") == METERS and links <= {dict(k)["link"] for k in ratio}:
                break
            time.sleep(0.5)
        else:
            pytest.fail(
                f"meters {meters.get('total')}, read success {ratio}\n{daemon.tail()}\n"
                f"{fleet.tail(2000)}"
            )
        assert all(0.0 <= v <= 1.0 for v in ratio.values()), ratio
        reads = samples(text, "amidcc_request_latency_seconds_count")
        for link in links:
            assert reads[(("link", link), ("operation", "read"))] > 0, (link, reads)
        counts = {"modbus": MODBUS, "mqtt": mesh, "c1222-tcp": METERS - MODBUS - mesh}
        for link, count in counts.items():
            status, body = fetch(f"http://127.0.0.1:{api}/api/meters?link={link}&limit=1")
            assert status == 200 and body["total"] == count, (link, body)
        assert set(samples(text, "amidcc_meters_registered")) >= {
            (("link", name),) for name in links
        }
        status, body = fetch(f"http://127.0.0.1:{metrics}/health")
        assert status == 200 and body["checks"].get("mqtt", "absent") == (
            "ok" if broker is not None else "absent"
        )
    finally:
        stopped = daemon.terminate(), fleet.terminate()
    assert stopped[0] in CLEAN_EXITS, daemon.tail()
    assert stopped[1] == 0, fleet.tail()
    # [capture] pcap (under state_dir): the daemon recorded its C12.22 traffic, closed on stop
    pcap = tmp_path / "state" / "fleet.pcap"
    assert pcap.exists() and pcap.stat().st_size > 24, daemon.tail()
    summary = fleet.log.read_text()
    assert "fleet summary" in summary
    if broker is not None:
        assert f"RF mesh: {MESH} registered in 2 cells" in summary
