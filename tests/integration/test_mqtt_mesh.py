"""The RF mesh over MQTT end to end, on a real broker (amidcc.net.broker): the simulated mesh
(amidcc.simulators.mesh) and the gateway's MQTT link (amidcc.gateway.links.mqtt) with the
MeterClient on top: registration, reads, trace, alarms, relay failure with and without re-routing,
a broker restart mid-run, per-hop latency."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, task

from amidcc.codecs.c1219 import GeneralMfgId
from amidcc.gateway.config import parse_config
from amidcc.gateway.links.base import LinkDown, LinkKind, MeterAddress, RequestTimeout
from amidcc.gateway.links.mqtt import MqttLink, build_mqtt
from amidcc.gateway.meters import MeterClient
from amidcc.gateway.metrics import GatewayMetrics
from amidcc.gateway.registry import MeterRegistry
from amidcc.net import topics
from amidcc.net.broker import BrokerError, BrokerProcess, find_broker
from amidcc.net.mqtt import MqttClient, MqttConfig
from amidcc.simulators import Access, FaultKind, MeterConfig, SimMeter, build_fleet, pad_password
from amidcc.simulators.mesh import HopProfile, RfMesh, start_mesh

pytestmark = pytest.mark.integration

PASSWORD = "master"
METER_CONFIG = MeterConfig(passwords=((pad_password(PASSWORD, pad=b" "), Access.WRITE),))
FAST = {"backoff_min": 0.05, "backoff_max": 0.3, "backoff_jitter": 0.0, "connect_timeout": 1.0}
TEST_TIMEOUT = 10.0


@pytest.fixture
def broker() -> Iterator[BrokerProcess]:
    try:
        find_broker()
    except BrokerError as err:
        pytest.skip(str(err))
    with BrokerProcess.start() as b:
        yield b


class Gateway:
    """The gateway's RF-mesh side in-process: MQTT link, registry, MeterClient."""

    def __init__(self, reactor: Any, tmp_path: Path, url: str, *, timeout: str = "1s", retries: int = 1) -> None:
        self.config = parse_config({
            "mqtt": {"enabled": True, "url": url, "reconnect_min": "50ms", "reconnect_max": "300ms"},
            "c1222": {"password": PASSWORD},
            "requests": {"timeout": timeout, "retries": retries, "backoff_base": "200ms", "backoff_max": "400ms"},
        })
        self.registry = MeterRegistry(tmp_path / "gw.db", synchronous="OFF")
        self.metrics = GatewayMetrics(process=False)
        self.alarms: list[tuple[MeterAddress, tuple[bytes, ...], float]] = []
        self.link: MqttLink = build_mqtt(
            self.config, reactor, registry=self.registry, metrics=self.metrics,
            on_alarm=lambda a, s, now: self.alarms.append((a, tuple(s), now)),
        )
        self.client = MeterClient([self.link], resolve=self.registry, clock=reactor,
                                  requests=self.config.requests, metrics=self.metrics)

    async def stop(self) -> None:
        await self.link.stopService()
        self.registry.close()


async def wait_for(reactor: Any, predicate: Callable[[], bool], timeout: float = 6.0, what: str = "") -> None:
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out waiting for {what or 'condition'}")
        await task.deferLater(reactor, 0.02)


def bounded(fn: Callable[..., Any]) -> Any:
    """Fail a test after TEST_TIMEOUT s instead of hanging the session."""
    import functools

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> None:
        from twisted.internet import reactor

        d = defer.ensureDeferred(fn(*args, **kwargs))
        d.addTimeout(TEST_TIMEOUT, reactor)
        await d

    return pytest_twisted.ensureDeferred(run)


async def setup(reactor: Any, tmp_path: Path, broker: BrokerProcess, n: int = 6, *, timeout: str = "1s",
                retries: int = 1, **mesh: Any) -> tuple[Gateway, RfMesh, list[SimMeter]]:
    meters = build_fleet(n, 11, start_time=reactor.seconds() - 3600, config=METER_CONFIG)
    gw = Gateway(reactor, tmp_path, broker.url, timeout=timeout, retries=retries)
    gw.link.startService()
    await gw.link.connected_once()
    options = {"relays": 3, "chains": 2, "seed": 7, "mqtt": FAST, "tick_interval": 0.05,
               "register_interval": 0.5, **mesh}
    sim = start_mesh(meters, reactor, url=broker.url, **options)
    await sim.ready
    await wait_for(reactor, lambda: len(gw.registry) == n and sim.registered == n + 1, what="registration")
    return gw, sim, meters


# Plan of a cell with relays=3, chains=2: r1 and r2 below the collector c1, r3 below r1; meter i
# hangs below r(i%3 + 1) with the next relay as its alternate parent.


@bounded
async def test_register_read_trace_alarm_status(reactor: Any, tmp_path: Path, broker: BrokerProcess) -> None:
    gw, sim, meters = await setup(reactor, tmp_path, broker, hop=HopProfile(latency=0.02))
    try:
        record = gw.registry.get(meters[0].meter_id)
        assert record is not None and record.link is LinkKind.MQTT and record.route == (".2.9.1",)
        assert gw.link.cell_of(gw.client.address(meters[0].meter_id)) == "cell1"

        reads = await defer.gatherResults([gw.client.read_table(m.meter_id, 1) for m in meters])
        assert [r.value.mfg_serial_number.strip() for r in reads if isinstance(r.value, GeneralMfgId)] == [
            m.meter_id for m in meters
        ]
        assert (await gw.client.read_table(meters[1].meter_id, 23)).value is not None

        # trace: the collector, the relays from the top down, the meter (meter 2 hangs below r3)
        path = await gw.client.trace(meters[2].meter_id)
        assert path == (".2.9.1", ".2.8.1.1", ".2.8.1.3", meters[2].identity.ap_title_text)
        assert sim.path(meters[2].meter_id) == [meters[2].meter_id, "r3", "r1", "c1"]

        # per-hop latency: 3 hops each way below r3, 2 below r2, 20 ms each (lower bounds only)
        deep = await gw.client.ping(meters[2].meter_id)
        shallow = await gw.client.ping(meters[1].meter_id)
        assert deep >= 6 * 0.02 and shallow >= 4 * 0.02
        assert sim.stats().hops > 0

        # a critical fault is pushed up the mesh as an alarm
        meters[3].inject(FaultKind.TAMPER, reactor.seconds())
        await wait_for(reactor, lambda: bool(gw.alarms), what="alarm")
        assert gw.alarms[0][0].meter_id == meters[3].meter_id

        # the retained status of the cell
        seen: list[bytes] = []
        watcher = MqttClient(reactor, MqttConfig(url=broker.url, **FAST))
        watcher.subscribe(topics.status("amidcc", "cell1"), 1, lambda t, p: seen.append(p))
        await watcher.connect()
        await wait_for(reactor, lambda: bool(seen), what="retained status")
        await watcher.disconnect()
        status = json.loads(seen[-1])
        assert status["relays"]["r3"]["parent"] == "r1"
        assert status["meters"][meters[0].meter_id] == {
            "title": meters[0].identity.ap_title_text, "parent": "r1", "alternates": ["r2"],
            "up": True, "reachable": True,
        }
    finally:
        await sim.stopService()
        await gw.stop()


@bounded
async def test_relay_failure_cuts_children_off(reactor: Any, tmp_path: Path, broker: BrokerProcess) -> None:
    gw, sim, meters = await setup(reactor, tmp_path, broker, timeout="300ms", retries=0, reroute=False)
    try:
        sim.fail_relay("cell1", "r1")
        below_r1 = [meters[0], meters[2], meters[3]]  # r1's meters, and r3's (r3 hangs below r1)
        for meter in below_r1:
            with pytest.raises(RequestTimeout):
                await gw.client.read_table(meter.meter_id, 1)
        assert (await gw.client.read_table(meters[1].meter_id, 1)).value is not None  # below r2
        assert sim.stats().dropped >= 3
        sim.restore_relay("cell1", "r1")
        assert (await gw.client.read_table(meters[0].meter_id, 1)).value is not None
    finally:
        await sim.stopService()
        await gw.stop()


@bounded
async def test_children_reroute_via_alternate_parent(reactor: Any, tmp_path: Path, broker: BrokerProcess) -> None:
    gw, sim, meters = await setup(reactor, tmp_path, broker, timeout="300ms", retries=0, reroute=True,
                                  reroute_delay=0.1)
    try:
        sim.fail_relay("cell1", "r1")
        await wait_for(reactor, lambda: sim.path(meters[0].meter_id)[1] == "r2", what="re-route")
        assert (await gw.client.read_table(meters[0].meter_id, 1)).value is not None
        path = await gw.client.trace(meters[0].meter_id)
        assert path == (".2.9.1", ".2.8.1.2", meters[0].identity.ap_title_text)
        with pytest.raises(RequestTimeout):  # r3 has no alternate: its meter stays cut off
            await gw.client.read_table(meters[2].meter_id, 1)
    finally:
        await sim.stopService()
        await gw.stop()


@bounded
async def test_broker_restart_mid_run(reactor: Any, tmp_path: Path, broker: BrokerProcess) -> None:
    gw, sim, meters = await setup(reactor, tmp_path, broker, timeout="2s", retries=3,
                                  register_interval=3.0, hop_by_node={"cell1/r2": HopProfile(latency=0.5)})
    try:
        assert (await gw.client.read_table(meters[0].meter_id, 1)).value is not None
        address = gw.client.address(meters[1].meter_id)  # below r2: 1 s round trip
        pending = gw.link.request(address, [b"\x20"], timeout=5.0)
        await task.deferLater(reactor, 0.1)
        broker.stop()
        with pytest.raises(LinkDown):
            await pending  # the session dropped: failed at once, not at its timeout
        assert not gw.link.is_reachable(address)
        with pytest.raises(LinkDown):
            await gw.link.request(address, [b"\x20"], timeout=1.0)

        meters[4].inject(FaultKind.TAMPER, reactor.seconds())  # pushed while the broker is away
        await task.deferLater(reactor, 0.3)  # its hops wait in the mesh's MQTT session
        assert not gw.alarms
        broker.restart()
        await wait_for(reactor, lambda: gw.link.is_reachable(address), what="session back")
        reads = await defer.gatherResults([gw.client.read_table(m.meter_id, 1) for m in meters])
        assert len(reads) == len(meters)
        await wait_for(reactor, lambda: bool(gw.alarms), what="alarm held across the restart")
        assert gw.alarms[0][0].meter_id == meters[4].meter_id
        assert gw.link.session_losses == 1 and gw.link.client.stats().reconnects == 1
    finally:
        await sim.stopService()
        await gw.stop()


def test_config_and_garbage_without_a_broker(tmp_path: Path) -> None:
    from twisted.internet.task import Clock

    config = parse_config({"gateway": {"name": "east"}, "mqtt": {"url": "mqtt://10.0.0.1:1884", "reconnect_min": "2s"}})
    link = build_mqtt(config, Clock())
    cfg = link.client.config
    assert (cfg.url, cfg.client_id, cfg.clean_session, cfg.backoff_min) == ("mqtt://10.0.0.1:1884", "amidcc-east", False, 2.0)
    assert link.kind is LinkKind.MQTT
    link._on_uplink("amidcc/rf/cellX/up", b"\x61\x02\x00\x00")  # not an APDU: counted, channel kept
    link._on_uplink("elsewhere/rf/cellX/up", b"\x60\x00")  # not our prefix: ignored
    assert set(link.cells) == {"cellX"}
    errors = link.c1222.metrics.registry.get_sample_value("amidcc_errors_total", {"link": "mqtt", "kind": "malformed"})
    assert errors == 1.0
    address = MeterAddress(meter_id="m", ap_title=".2.7.1", link=LinkKind.MQTT)
    assert not link.is_reachable(address)
    failed = link.request(address, [b"\x20"], timeout=1.0)
    assert isinstance(failed.result.value, LinkDown)  # type: ignore[attr-defined]
    failed.addErrback(lambda _: None)


def test_routes_come_back_when_a_cell_speaks_before_the_session_is_seen_up(tmp_path: Path) -> None:
    """After a broker restart a cell's uplink can arrive before the link notices the session is
    back; that uplink opens a fresh channel knowing no meters. The saved routes must still be put
    on it, or every meter of the cell stays "not connected" (a mesh meter never re-registers)."""
    from twisted.internet.task import Clock

    link = build_mqtt(parse_config({"gateway": {"name": "east"}}), Clock())
    link._on_uplink("amidcc/rf/cellX/up", b"\x61\x02\x00\x00")  # opens the cell's channel
    address = MeterAddress(meter_id="m", ap_title=".2.7.1", link=LinkKind.MQTT)
    first = link.cells["cellX"]
    link.c1222.routes[address.ap_title] = first
    first.state.titles.add(address.ap_title)
    assert link.c1222.is_reachable(address)
    link._session_lost()
    assert not link.c1222.is_reachable(address)
    link._on_uplink("amidcc/rf/cellX/up", b"\x61\x02\x00\x00")  # the cell speaks first
    assert link.cells["cellX"] is not first
    link._session_up()
    assert link.c1222.is_reachable(address)
    assert link.c1222.routes[address.ap_title] is link.cells["cellX"]
