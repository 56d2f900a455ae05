"""One real deployment, shared by the tests of this module (issue 5, "Tests"): mosquitto
(BrokerProcess), the daemon (``twistd -n --reactor=asyncio amidcc``, API token set, every
listener on a free loopback port) and ``amidcc simulate fleet`` with 60 meters over C12.22/TCP
(three C12.22 collectors and direct meters), the RF mesh over MQTT and Modbus/TCP. The fleet's
scenario injects garbage from a meter behind a collector, a tamper (a pushed alarm) and a meter
that goes silent. Checked through the operator API and /metrics: scheduled reads on all three
links, on-demand read, self-test and ping on a meter of each link, the alarm in the event log and
as a trouble event, the garbage counted while the other meters keep being read, the silent meter
timing out, the in-flight peak per link within ``[throttle]``, a broker restart (``mqtt`` in
/health goes not-ok then ok, mesh reads resume), and SIGTERM with a clean exit.

A bad config stopping twistd with the dotted key is tests/gateway/test_daemon.py's
``test_bad_config_stops_twistd_with_the_key`` (not repeated here).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from amidcc.net.broker import BrokerError, BrokerProcess

from .conftest import BIN, CLEAN_EXITS, Child, HealthWatch, fetch, free_port, samples, wait_for

pytestmark = pytest.mark.integration

TOKEN = "itest-token"
METERS = 60
#: Where amidcc.demo.fleet.split puts 60 meters with one Modbus collector, the mesh and
#: --per-collector 10: Modbus 10 %, the RF mesh 20 %, C12.22/TCP the rest (30 behind three
#: collectors, 12 direct).
MODBUS = [f"meter-{i:04d}" for i in range(0, 6)]
MESH = [f"meter-{i:04d}" for i in range(6, 18)]
TCP = [f"meter-{i:04d}" for i in range(18, 60)]
LINKS = {"c1222-tcp": TCP, "mqtt": MESH, "modbus": MODBUS}
#: A meter of each link for the on-demand commands (none of them faulty).
ON_DEMAND = {"c1222-tcp": "meter-0050", "mqtt": "meter-0010", "modbus": "meter-0002"}
GARBAGE = "meter-0025"  # behind C12.22 collector 1 (meters 18-27): its replies are noise
SILENT = "meter-0035"  # behind collector 2: answers nothing from FAULT_AT on
TAMPER = "meter-0055"  # direct: pushes a tamper alarm at FAULT_AT
#: Seconds after the fleet starts: every meter has registered by then, even on a loaded box.
FAULT_AT = 12
PER_LINK, PER_COLLECTOR = 4, 2
#: A request that gets no answer fails after 2 x 1.5 s + 0.2 s backoff, within one read interval
#: (a dead meter's task that falls due while its last one runs waits for its next slot).
REQUEST_TIMEOUT = 1.5
READ_INTERVAL = 4.0
#: How long to wait for what the fleet and the scheduler do on their own.
WAIT = 30.0

SCENARIO = f"""
[rates]                     # no random faults: only the three below
install = 0.0
per_year = 0.0

[[fault]]
meter = "{GARBAGE}"
kind = "garbage"

[[fault]]
meter = "{SILENT}"
kind = "silent"
at = "{FAULT_AT}s"

[[fault]]
meter = "{TAMPER}"
kind = "tamper"
at = "{FAULT_AT}s"
"""


def daemon_config(root: Path, broker: BrokerProcess, ports: dict[str, int]) -> str:
    return f"""
[gateway]
name = "deploy-itest"
state_dir = "{root / "state"}"
[c1222]
listen = "tcp:{ports["c1222"]}:interface=127.0.0.1"
password = "master"
[mqtt]
enabled = true
url = "{broker.url}"
reconnect_min = "1s"  # the not-ok window of a broker restart lasts long enough to be seen
reconnect_max = "2s"
[modbus]
enabled = true
collectors = [{{ endpoint = "tcp:127.0.0.1:{ports["modbus"]}", unit_ids = [1, 2, 3, 4, 5, 6] }}]
[requests]
timeout = "{REQUEST_TIMEOUT * 1000:g}ms"
retries = 1
backoff_base = "200ms"
backoff_max = "200ms"
[throttle]
max_inflight_per_link = {PER_LINK}
max_inflight_per_collector = {PER_COLLECTOR}
[schedule]
read_interval = "{READ_INTERVAL:g}s"
read_spread = "1s"
clock_check_interval = "5s"
[api]
listen = "tcp:{ports["api"]}:interface=127.0.0.1"
token = "{TOKEN}"
[metrics]
listen = "tcp:{ports["metrics"]}:interface=127.0.0.1"
[capture]
pcap = "deploy.pcap"
"""


class Deployment:
    """The broker, the daemon and the fleet of this module, and the ways to look at them."""

    def __init__(self, root: Path, broker: BrokerProcess) -> None:
        self.root = root
        self.broker = broker
        self.ports = {name: free_port() for name in ("c1222", "api", "metrics", "modbus")}
        (root / "amidcc.toml").write_text(daemon_config(root, broker, self.ports))
        (root / "scenario.toml").write_text(SCENARIO)
        # the fleet first: its Modbus collector is listening when the daemon first connects;
        # its C12.22 meters retry (0.2 s, doubling) until the daemon listens
        self.fleet = Child.start(
            "fleet",
            [str(BIN / "amidcc"), "simulate", "fleet", "--meters", str(METERS),
             "--tcp", f"127.0.0.1:{self.ports['c1222']}", "--per-collector", "10",
             "--modbus-collectors", "1", "--modbus-port", str(self.ports["modbus"]),
             "--mqtt", broker.url, "--cells", "2", "--relays", "2",
             "--scenario", str(root / "scenario.toml"), "--password", "master", "--seed", "3",
             "--duration", "300"],  # a backstop: the module stops it long before
            root / "fleet.log", cwd=root,
        )  # fmt: skip
        self.daemon = Child.start(
            "daemon",
            [str(BIN / "twistd"), "-n", "--reactor=asyncio", "--pidfile=", "amidcc",
             "--config", str(root / "amidcc.toml")],
            root / "daemon.log", cwd=root,
        )  # fmt: skip

    # -- looking at it ---------------------------------------------------------------------------

    def logs(self) -> str:
        return f"{self.daemon.tail()}\n{self.fleet.tail(2000)}"

    def api(self, path: str, body: object = None, *, timeout: float = 15.0) -> tuple[int, Any]:
        """GET ``path`` on the API, or POST ``body`` with the token."""
        url = f"http://127.0.0.1:{self.ports['api']}{path}"
        if body is None:
            return fetch(url, timeout=timeout)
        return fetch(url, method="POST", body=body, token=TOKEN, timeout=timeout)

    def metric(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        _, text = fetch(f"http://127.0.0.1:{self.ports['metrics']}/metrics")
        return samples(text, name) if isinstance(text, str) else {}

    def value(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``."""
        want = set(labels.items())
        return sum(v for k, v in self.metric(name).items() if want <= set(k))

    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['metrics']}/health"

    def meters(self, link: str | None = None) -> dict[str, dict[str, Any]]:
        """The registered meters (of ``link``) by meter id."""
        query = f"?limit=1000&link={link}" if link else "?limit=1000"
        status, body = self.api(f"/api/meters{query}")
        return {m["meter_id"]: m for m in body["meters"]} if status == 200 else {}

    def wait(self, what: str, probe: Callable[[], Any], timeout: float = WAIT) -> Any:
        def alive_probe() -> Any:
            assert self.daemon.alive, f"the daemon exited\n{self.logs()}"
            return probe()

        return wait_for(what, alive_probe, timeout=timeout, context=self.logs)

    def read_count(self, link: str) -> float:
        return self.value("amidcc_request_latency_seconds_count", operation="read", link=link)

    def seen_after(self, t: float, meter_ids: list[str]) -> list[str]:
        """Those of ``meter_ids`` not heard from since ``t`` (Unix time) yet."""
        meters = self.meters()
        return [m for m in meter_ids if (meters.get(m, {}).get("last_seen") or 0.0) <= t]

    def stop(self) -> tuple[int, int]:
        """SIGTERM the daemon, then the fleet; their exit statuses."""
        return self.daemon.terminate(), self.fleet.terminate()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    try:
        broker = BrokerProcess.start()
    except BrokerError as err:
        pytest.skip(f"the RF mesh needs a broker: {err}")
    with broker:
        deployed = Deployment(tmp_path_factory.mktemp("deployment"), broker)
        try:
            deployed.wait(
                f"all {METERS} meters registered", lambda: len(deployed.meters()) == METERS
            )
            yield deployed
        finally:
            deployed.stop()


def test_scheduled_reads_succeed_on_all_three_links(deployment: Deployment) -> None:
    for link, meter_ids in LINKS.items():
        assert sorted(deployment.meters(link)) == meter_ids, link
    since, modbus_reads = time.time(), deployment.read_count("modbus")
    # every meter answers again (the faulty two aside): the MeterClient stamps last_seen on every
    # link, Modbus included
    healthy = [m for m in TCP + MESH + MODBUS if m not in (GARBAGE, SILENT)]
    deployment.wait(
        "every healthy meter answering again", lambda: not deployment.seen_after(since, healthy)
    )
    deployment.wait(
        "every Modbus meter read again",
        lambda: deployment.read_count("modbus") >= modbus_reads + len(MODBUS),
    )
    for link in LINKS:
        assert deployment.read_count(link) > 0, link

    def ratios_of_every_link() -> dict[tuple[tuple[str, str], ...], float] | None:
        # set once a *scheduled* read on the link ended (the ST6 read that locates a meter when
        # it registers is a read in the latency histogram, but not here)
        found = deployment.metric("amidcc_read_success_ratio")
        return found if {dict(k)["link"] for k in found} >= set(LINKS) else None

    ratios = deployment.wait("a read success ratio for every link", ratios_of_every_link)
    assert all(0.0 <= v <= 1.0 for v in ratios.values())
    for link in LINKS:  # on TCP, 2 of 42 meters are faulty
        assert ratios[(("link", link),)] > 0.5, ratios


@pytest.mark.parametrize("link", sorted(ON_DEMAND))
def test_on_demand_read_self_test_and_ping(deployment: Deployment, link: str) -> None:
    meter = ON_DEMAND[link]
    status, body = deployment.api(f"/api/meters/{meter}/read", {"table": 1})
    assert status == 200, body
    assert body["table"] == 1 and body["decoded"]["mfg_serial_number"].strip() == meter
    status, body = deployment.api(f"/api/meters/{meter}/self-test", {})
    assert status == 200, body
    assert body["result"] == "completed" and body["passed"] is True, body
    status, body = deployment.api(f"/api/meters/{meter}/ping", {})
    assert status == 200, body
    assert 0.0 <= body["round_trip_seconds"] < WAIT  # includes any wait in the throttle's queue
    # commands need the token
    url = f"http://127.0.0.1:{deployment.ports['api']}/api/meters/{meter}/ping"
    assert fetch(url, method="POST", body={}, token="wrong")[0] == 401


def test_the_pushed_tamper_alarm_is_logged_and_raises_a_trouble_event(
    deployment: Deployment,
) -> None:
    def tamper_events() -> list[dict[str, Any]]:
        status, body = deployment.api(f"/api/events?meter={TAMPER}&class=safety")
        found = body["events"] if status == 200 else []
        return [e for e in found if e["failure_type"] == "tamper" and e["source"] == "pushed"]

    (event, *_) = deployment.wait("the pushed tamper alarm in /api/events", tamper_events)
    assert event["critical"] is True and event["event_class"] == "safety"
    assert event["meter_id"] == TAMPER
    deployment.wait(
        "a tamper trouble event",
        lambda: deployment.value("amidcc_trouble_events_total", failure_type="tamper") >= 1,
    )
    assert deployment.value("amidcc_events_total", event_class="safety") >= 1


def test_garbage_is_counted_while_the_other_meters_keep_being_read(
    deployment: Deployment,
) -> None:
    deployment.wait(
        "malformed replies counted on c1222-tcp",
        lambda: deployment.value("amidcc_errors_total", link="c1222-tcp", kind="malformed") > 0,
    )
    since = time.time()
    before = deployment.value("amidcc_errors_total", link="c1222-tcp", kind="malformed")
    # its neighbours behind the same collector connection, and the rest of the link
    others = [m for m in TCP if m not in (GARBAGE, SILENT)]
    deployment.wait(
        "the other TCP meters read again", lambda: not deployment.seen_after(since, others)
    )
    deployment.wait(
        "more garbage counted",
        lambda: (
            deployment.value("amidcc_errors_total", link="c1222-tcp", kind="malformed") > before
        ),
    )
    status, body = deployment.api(f"/api/meters/{GARBAGE}/ping", {})
    assert status in (502, 504), body  # an unusable answer, or none in time
    for link in ("mqtt", "modbus"):  # garbage stays where it was sent
        assert deployment.value("amidcc_errors_total", link=link, kind="malformed") == 0, link


def wait_until_silent(deployment: Deployment) -> tuple[int, Any]:
    """Wait for FAULT_AT: the silent meter's ping times out (504); return that answer."""

    def silent_ping() -> tuple[int, Any] | None:
        status, body = deployment.api(f"/api/meters/{SILENT}/ping", {})
        return (status, body) if status == 504 else None

    answer: tuple[int, Any] = deployment.wait("a timed-out ping of the silent meter", silent_ping)
    return answer


def test_a_silent_meter_times_out_and_its_collector_keeps_serving(
    deployment: Deployment,
) -> None:
    _, body = wait_until_silent(deployment)
    assert "did not answer in time" in body["error"]["message"]
    assert deployment.value("amidcc_errors_total", link="c1222-tcp", kind="timeout") > 0
    since = time.time()
    neighbours = [f"meter-{i:04d}" for i in range(28, 38) if f"meter-{i:04d}" != SILENT]
    deployment.wait(
        "its collector's other meters read again",
        lambda: not deployment.seen_after(since, neighbours),
    )
    assert deployment.seen_after(since, [SILENT]) == [SILENT]
    # no answer after the retries: UNREACHABLE, for the API's state filter and the gauge
    status, body = deployment.wait(
        "the silent meter unreachable",
        lambda: (
            answer
            if (answer := deployment.api("/api/meters?state=unreachable&limit=1000"))[0] == 200
            and SILENT in {m["meter_id"] for m in answer[1]["meters"]}
            else None
        ),
    )
    assert {m["meter_id"] for m in body["meters"]} <= {SILENT, GARBAGE}
    assert all(state == "reachable" for m, state in states(deployment, neighbours))


def states(deployment: Deployment, meter_ids: list[str]) -> list[tuple[str, str]]:
    meters = deployment.meters()
    return [(m, meters[m]["state"]) for m in meter_ids]


def test_requests_in_flight_stay_within_the_throttle(deployment: Deployment) -> None:
    wait_until_silent(deployment)
    tcp = (("link", "c1222-tcp"),)
    in_flight: list[float] = []

    def link_full() -> bool:
        now = deployment.metric("amidcc_requests_in_flight")
        in_flight.append(now.get(tcp, -1.0))
        return now.get(tcp) == PER_LINK

    # Pings that time out, three through each of two collectors (two slots each): together they
    # fill the link's four slots for a while, and the rest wait in the queue, never dropped.
    doomed = [SILENT, GARBAGE] * 3
    with ThreadPoolExecutor(len(doomed)) as pool:
        pings = [pool.submit(deployment.api, f"/api/meters/{m}/ping", {}) for m in doomed]
        deployment.wait(f"{PER_LINK} requests in flight on c1222-tcp", link_full, timeout=10.0)
        status, body = deployment.api(f"/api/meters/{ON_DEMAND['c1222-tcp']}/read", {"table": 1})
        assert status == 200, body  # a healthy meter's read waited for a slot and went through
        answers = [f.result()[0] for f in pings]
    assert answers == [504] * len(doomed), answers  # each timed out; none refused
    assert max(in_flight) == PER_LINK, in_flight
    peaks = deployment.metric("amidcc_requests_in_flight_peak")
    assert {dict(k)["link"] for k in peaks} >= set(LINKS)
    assert all(0 <= v <= PER_LINK for v in peaks.values()), peaks
    assert peaks[tcp] == PER_LINK


def test_a_broker_restart_is_seen_in_health_and_mesh_reads_resume(
    deployment: Deployment,
) -> None:
    with HealthWatch(deployment.health_url(), "mqtt") as watch:
        deployment.wait("the mqtt health check ok", lambda: watch.seen and watch.seen[-1] == "ok")
        deployment.broker.restart()
        deployment.wait(
            "the mqtt health check not ok, then ok again",
            lambda: _down_then_up(watch.seen),
            timeout=20.0,
        )
    # every answer came from the daemon (it kept serving /health) and said why while not ok
    answers = [s for s in watch.seen if s != "down"]
    assert len(answers) >= len(watch.seen) - 2, watch.seen  # a slow answer or two on a busy box
    assert all(s == "ok" or "not connected" in s for s in answers), set(answers)
    since, before = time.time(), deployment.read_count("mqtt")
    deployment.wait("every mesh meter read again", lambda: not deployment.seen_after(since, MESH))
    assert deployment.read_count("mqtt") > before


def _down_then_up(seen: list[str]) -> bool:
    """Whether ``seen`` has a "not connected" answer followed by an "ok" one."""
    down = next((i for i, state in enumerate(seen) if "not connected" in state), None)
    return down is not None and "ok" in seen[down:]


def test_sigterm_stops_everything_cleanly(deployment: Deployment) -> None:
    daemon, fleet = deployment.stop()
    assert daemon in CLEAN_EXITS, deployment.daemon.tail()
    assert fleet == 0, deployment.fleet.tail()
    log = deployment.daemon.log.read_text()
    assert "Received SIGTERM, shutting down." in log
    assert "gateway 'deploy-itest' stopped" in log and "Server Shut Down." in log
    assert "Traceback" not in log and "Unhandled" not in log, deployment.daemon.tail()
    pcap = deployment.root / "state" / "deploy.pcap"
    assert pcap.stat().st_size > 24  # the capture, closed on stop
    summary = deployment.fleet.log.read_text()
    assert "fleet summary" in summary and "RF mesh: 12 registered in 2 cells" in summary
    assert "garbage 1" in summary and "silent 1" in summary and "tamper 1" in summary
