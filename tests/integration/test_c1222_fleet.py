"""C12.22 over real loopback sockets: a simulated fleet (amidcc.simulators.c1222_tcp / c1222_udp)
connects to the gateway's listener started in-process on the asyncio reactor, registers, and is
read through the MeterClient: every modelled table decoded, a procedure, a pushed alarm, a meter
sending garbage while the others keep being read, throttling, the connection cap, mode 2, UDP."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, task

from amidcc.codecs.c1219 import GeneralMfgId
from amidcc.codecs.c1219.procedures import ProcedureNumber, ProcedureResponse, ProcedureResult
from amidcc.codecs.c1222 import ApTitle, SecurityMode
from amidcc.gateway.config import RequestsSection, parse_config
from amidcc.gateway.links.base import LinkDown, LinkKind, MeterAddress, RequestTimeout
from amidcc.gateway.links.c1222_transport import build_c1222, parse_udp_endpoint
from amidcc.gateway.meters import MeterClient, TableRead
from amidcc.gateway.metrics import GatewayMetrics
from amidcc.gateway.registry import MeterRegistry
from amidcc.gateway.throttle import RequestThrottle
from amidcc.simulators import (
    Access,
    FaultKind,
    LinkFaultKind,
    MeterConfig,
    SimMeter,
    build_fleet,
    decode_alarm_services,
    pad_password,
)
from amidcc.simulators.c1222_tcp import NodeSettings, SimC1222Service, plan_nodes
from amidcc.simulators.c1222_udp import SimC1222UdpService, udp_settings
from amidcc.simulators.tables import READABLE

pytestmark = pytest.mark.integration

PASSWORD = "master"
METER_CONFIG = MeterConfig(passwords=((pad_password(PASSWORD, pad=b" "), Access.WRITE),))
COLLECTOR_KEY = bytes(range(16))
KEY_HEX = "00" * 16  # config needs a key table in secured modes; per-meter keys come from keys_for


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gateway:
    """The C12.22 side of the gateway, in-process: listener, registry, MeterClient, metrics."""

    def __init__(
        self,
        reactor: Any,
        tmp_path: Path,
        meters: Sequence[SimMeter],
        *,
        mode: str = "cleartext",
        throttle: dict[str, object] | None = None,
        udp_port: int | None = None,
        timeout: str = "1s",
    ) -> None:
        c1222: dict[str, object] = {"listen": "tcp:0:interface=127.0.0.1", "password": PASSWORD, "security_mode": mode}
        if mode != "cleartext":
            c1222["keys"] = {"0": KEY_HEX}
        if udp_port is not None:
            c1222["udp_listen"] = f"udp:{udp_port}:interface=127.0.0.1"
        self.config = parse_config(
            {
                "c1222": c1222,
                "throttle": throttle or {},
                "requests": {"timeout": timeout, "retries": 1, "backoff_base": "100ms", "backoff_max": "200ms"},
            }
        )
        self.reactor = reactor
        self.registry = MeterRegistry(tmp_path / "gw.db", synchronous="OFF")
        self.metrics = GatewayMetrics(process=False)
        self.alarms: list[tuple[MeterAddress, tuple[bytes, ...], float]] = []
        keys = {m.identity.ap_title_text: {m.config.key_id: m.key} for m in meters}
        self.listener = build_c1222(
            self.config,
            reactor,
            registry=self.registry,
            metrics=self.metrics,
            on_alarm=lambda a, s, now: self.alarms.append((a, tuple(s), now)),
            keys_for=lambda title: keys.get(title, {0: COLLECTOR_KEY}),
        )
        self.throttle = RequestThrottle.from_config(self.config.throttle)
        links = [self.listener.tcp] + ([self.listener.udp] if self.listener.udp else [])
        self.client = MeterClient(
            links,
            resolve=self.registry,
            clock=reactor,
            requests=self.config.requests,
            throttle=self.throttle,
            metrics=self.metrics,
        )
        self.port = 0

    async def start(self) -> None:
        self.listener.startService()
        port = await self.listener.listening
        self.port = port.getHost().port

    @property
    def endpoint(self) -> str:
        return f"tcp:127.0.0.1:{self.port}"

    async def stop(self) -> None:
        await self.listener.stopService()
        self.registry.close()

    def errors(self, kind: str, link: str = "c1222-tcp") -> float:
        return self.metrics.registry.get_sample_value("amidcc_errors_total", {"link": link, "kind": kind}) or 0.0


async def wait_for(reactor: Any, predicate: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError("condition not met in time")
        await task.deferLater(reactor, 0.02)


def fleet(reactor: Any, n: int, seed: int = 3) -> list[SimMeter]:
    return build_fleet(n, seed, start_time=reactor.seconds() - 3600, config=METER_CONFIG)


@pytest_twisted.ensureDeferred
async def test_a_fleet_of_50_registers_and_is_read(reactor: Any, tmp_path: Path) -> None:
    meters = fleet(reactor, 50)
    garbage = meters[-1]
    gw = Gateway(reactor, tmp_path, meters, throttle={"max_inflight_per_link": 8, "max_inflight_per_collector": 2})
    await gw.start()
    nodes = plan_nodes(meters, NodeSettings(), collectors=1, per_collector=20)
    sims = SimC1222Service(reactor, gw.endpoint, nodes, tick_interval=0.05)
    sims.startService()
    try:
        await wait_for(reactor, lambda: len(gw.registry) == 50 and sims.registered == 51)  # + the collector
        assert len(nodes) == 31
        behind, direct = meters[0].meter_id, meters[30].meter_id
        assert gw.registry.get(behind).route == (".2.9.1",)  # type: ignore[union-attr]

        # a fleet-wide read, throttled: every meter's nameplate and registers, decoded
        reads = await defer.gatherResults(
            [gw.client.read_table(m.meter_id, t) for m in meters[:-1] for t in (1, 23)], consumeErrors=True
        )
        assert all(r.value is not None for r in reads)
        idents = {r.meter_id: r.value for r in reads if isinstance(r.value, GeneralMfgId)}
        assert all(idents[m.meter_id].mfg_serial_number.strip() == m.meter_id for m in meters[:-1])
        assert gw.throttle.link_limit("c1222-tcp").peak == 8
        assert gw.throttle.collector_peak == 2

        # every modelled table, on a meter behind the collector and a direct one
        for meter_id in (behind, direct):
            for table in sorted(READABLE):
                read = await gw.client.read_table(meter_id, table & 0x7FF, mfg=bool(table & 0x800))
                assert isinstance(read, TableRead) and read.value is not None, f"{meter_id} table {table:#x}"

        # a procedure
        result = await gw.client.run_procedure(behind, ProcedureNumber.EXECUTE_DIAGNOSTICS)
        assert isinstance(result, ProcedureResponse) and result.result_code == ProcedureResult.COMPLETED

        # an injected critical fault arrives as a pushed alarm
        meters[5].inject(FaultKind.TAMPER, reactor.seconds())
        await wait_for(reactor, lambda: bool(gw.alarms))
        ((address, services, _),) = gw.alarms
        assert address.meter_id == meters[5].meter_id
        await gw.client.read_table(address.meter_id, 71)
        log, status = decode_alarm_services(services, gw.client.table_context(address.meter_id))  # type: ignore[arg-type]
        assert int(log.entries[-1].code) == 47 and status is not None

        # a meter sending garbage is counted; the others keep being read
        garbage.inject(LinkFaultKind.GARBAGE, reactor.seconds(), value=1.0)
        bad = gw.client.read_table(garbage.meter_id, 1)
        good = await defer.gatherResults([gw.client.read_table(m.meter_id, 1) for m in meters[:20]])
        assert len(good) == 20
        with pytest.raises(RequestTimeout):
            await bad
        assert gw.errors("malformed") >= 1
        assert (await gw.client.identify(meters[1].meter_id)).std == 3
    finally:
        await sims.stopService()
        await gw.stop()


@pytest_twisted.ensureDeferred
async def test_the_connection_cap_spreads_a_reconnect_storm(reactor: Any, tmp_path: Path) -> None:
    meters = fleet(reactor, 12, seed=5)
    gw = Gateway(reactor, tmp_path, meters, throttle={"new_connections_per_window": 4, "window": "250ms"})
    await gw.start()
    sims = SimC1222Service(reactor, gw.endpoint, plan_nodes(meters), retry_initial=0.1, retry_max=0.5)
    sims.startService()
    try:
        await wait_for(reactor, lambda: len(gw.registry) == 12)
        cap = gw.listener.factory.rate_limit
        assert cap is not None and cap.refused > 0 and cap.accepted >= 12
        reads = await defer.gatherResults([gw.client.read_table(m.meter_id, 1) for m in meters])
        assert all(isinstance(r.value, GeneralMfgId) for r in reads)
    finally:
        await sims.stopService()
        await gw.stop()


@pytest_twisted.ensureDeferred
async def test_security_mode_2_end_to_end(reactor: Any, tmp_path: Path) -> None:
    meters = fleet(reactor, 6, seed=9)
    gw = Gateway(reactor, tmp_path, meters, mode="ciphertext")
    await gw.start()
    settings = NodeSettings(security_mode=SecurityMode.CIPHERTEXT, collector_key=COLLECTOR_KEY)
    sims = SimC1222Service(reactor, gw.endpoint, plan_nodes(meters, settings, collectors=1, per_collector=3), tick_interval=0.05)
    sims.startService()
    try:
        await wait_for(reactor, lambda: len(gw.registry) == 6)
        for m in meters:
            read = await gw.client.read_table(m.meter_id, 23)
            assert read.value is not None
        result = await gw.client.run_procedure(meters[4].meter_id, ProcedureNumber.CLEAR_STD_STATUS_FLAGS)
        assert result.result_code == ProcedureResult.COMPLETED
        meters[1].inject(FaultKind.WRONG_SOCKET, reactor.seconds())
        await wait_for(reactor, lambda: bool(gw.alarms))
        assert gw.alarms[0][0].meter_id == meters[1].meter_id
        assert gw.errors("bad_mac") == 0 and gw.errors("malformed") == 0
    finally:
        await sims.stopService()
        await gw.stop()


@pytest_twisted.ensureDeferred
async def test_udp_fleet(reactor: Any, tmp_path: Path) -> None:
    meters = fleet(reactor, 5, seed=13)
    port = free_udp_port()
    gw = Gateway(reactor, tmp_path, meters, udp_port=port)
    await gw.start()
    nodes = plan_nodes(meters, udp_settings(), collectors=1, per_collector=3)
    sims = SimC1222UdpService(reactor, ("127.0.0.1", port), nodes, tick_interval=0.05, register_retry=0.2)
    sims.startService()
    try:
        await wait_for(reactor, lambda: len(gw.registry) == 5)
        assert all(gw.registry.get(m.meter_id).link is LinkKind.C1222_UDP for m in meters)  # type: ignore[union-attr]
        for m in meters:
            read = await gw.client.read_table(m.meter_id, 1)
            assert isinstance(read.value, GeneralMfgId)
        assert await gw.client.trace(meters[0].meter_id) == (".2.9.1", meters[0].identity.ap_title_text)
        # An event log is one datagram of tens of KB: Twisted's default 8 KiB UDP read buffer cut
        # it into garbage, and the gateway dropped the peer (every UDP meter ended unreachable).
        log = await gw.client.read_table(meters[0].meter_id, 76)
        assert len(log.data) > 8192
        assert (await gw.client.read_table(meters[0].meter_id, 3)).value is not None
        meters[3].inject(FaultKind.TAMPER, reactor.seconds())
        await wait_for(reactor, lambda: bool(gw.alarms))
        assert gw.alarms[0][0].link is LinkKind.C1222_UDP
    finally:
        await sims.stopService()
        await gw.stop()


@pytest_twisted.ensureDeferred
async def test_stopping_the_listener_fails_pending_requests_with_link_down(reactor: Any, tmp_path: Path) -> None:
    meters = fleet(reactor, 2, seed=21)
    gw = Gateway(reactor, tmp_path, meters, timeout="30s")
    await gw.start()
    sims = SimC1222Service(reactor, gw.endpoint, plan_nodes(meters), retry_initial=10.0)
    sims.startService()
    try:
        await wait_for(reactor, lambda: len(gw.registry) == 2)
        meters[0].inject(LinkFaultKind.SILENT, reactor.seconds())
        pending = gw.client.identify(meters[0].meter_id)
        await task.deferLater(reactor, 0.05)
        await gw.listener.stopService()
        with pytest.raises(LinkDown):
            await pending
        assert not gw.listener.tcp.routes
    finally:
        await sims.stopService()
        gw.registry.close()


def test_udp_endpoint_strings() -> None:
    assert parse_udp_endpoint("udp:1153") == (1153, "")
    assert parse_udp_endpoint("udp:1153:interface=127.0.0.1") == (1153, "127.0.0.1")
    with pytest.raises(ValueError):
        parse_udp_endpoint("tcp:1153")


def test_titles_used_here_are_the_defaults() -> None:
    assert str(ApTitle.parse(parse_config({}).gateway.ap_title)) == str(NodeSettings().gateway_title)
    assert RequestsSection().retries >= 1
