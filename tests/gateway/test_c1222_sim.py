"""The gateway's C12.22 link against the simulated C12.22 nodes (amidcc.simulators.c1222_tcp), on
twisted.test.iosim in-memory connections and one task.Clock: registration of meters and of a
collector carrying several, decoded reads through the MeterClient, trace, pushed alarms, every
link fault (silent, latency, packet loss, garbage), a power outage, and security mode 2."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.test import iosim

from amidcc.codecs.ber import DEFAULT_BASE_OID
from amidcc.codecs.c1219 import GeneralMfgId
from amidcc.codecs.c1219.procedures import ProcedureNumber, ProcedureResponse
from amidcc.codecs.c1222 import ApTitle, SecurityMode
from amidcc.codecs.psem import pad_password as psem_pad
from amidcc.gateway.config import RequestsSection
from amidcc.gateway.links.base import LinkKind, MeterAddress, RequestTimeout
from amidcc.gateway.links.c1222 import C1222Link, C1222Settings
from amidcc.gateway.links.c1222_transport import C1222Factory, C1222Protocol
from amidcc.gateway.meters import MeterClient
from amidcc.gateway.metrics import GatewayMetrics
from amidcc.gateway.registry import MeterRegistry
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
from amidcc.simulators.c1222_tcp import (
    C1222Node,
    NodeSettings,
    SimC1222Protocol,
    esn_for,
    plan_nodes,
)
from amidcc.simulators.c1222_udp import SimC1222Datagram, udp_settings

T0 = 1_700_000_000.0
PASSWORD = "master"
#: The gateway pads with spaces (MeteringSDK); the meters are configured with the same bytes.
METER_CONFIG = MeterConfig(passwords=((pad_password(PASSWORD, pad=b" "), Access.WRITE),))
COLLECTOR_KEY = bytes(range(16))


class Rig:
    """A gateway link + MeterClient, and simulated nodes joined to it by iosim pumps."""

    def __init__(
        self, tmp_path: Path, n: int = 3, *, mode: SecurityMode = SecurityMode.CLEARTEXT,
        kind: LinkKind = LinkKind.C1222_TCP,
    ) -> None:  # fmt: skip
        self.clock = Clock()
        self.clock.advance(T0)
        self.meters = build_fleet(n, 11, start_time=T0 - 3600, config=METER_CONFIG)
        self.registry = MeterRegistry(tmp_path / "gw.db", synchronous="OFF")
        self.metrics = GatewayMetrics(process=False)
        self.alarms: list[tuple[MeterAddress, tuple[bytes, ...], float]] = []
        keys = {str(ApTitle(arcs=m.identity.ap_title, relative=True)): {m.config.key_id: m.key} for m in self.meters}
        self.link = C1222Link(
            C1222Settings(
                ap_title=ApTitle.parse(".2.1"),
                base_oid=DEFAULT_BASE_OID,
                security_mode=mode,
                password=psem_pad(PASSWORD, fill=b" "),
            ),
            clock=self.clock,
            registry=self.registry,
            metrics=self.metrics,
            on_alarm=lambda a, s, now: self.alarms.append((a, tuple(s), now)),
            keys_for=lambda title: keys.get(title, {0: COLLECTOR_KEY}),
            kind=kind,
        )
        self.factory = C1222Factory(self.link)
        self.client = MeterClient(
            [self.link],
            resolve=self.registry,
            clock=self.clock,
            requests=RequestsSection(timeout=5.0, retries=1, backoff_base=1.0, backoff_max=2.0),
            metrics=self.metrics,
        )
        self.settings = NodeSettings(security_mode=mode, collector_key=COLLECTOR_KEY)
        self.pumps: list[iosim.IOPump] = []

    def attach(self, node: C1222Node) -> tuple[SimC1222Protocol, C1222Protocol]:
        sim, gw, pump = iosim.connectedServerAndClient(
            lambda: self.factory.buildProtocol(None),  # type: ignore[arg-type, return-value]
            lambda: SimC1222Protocol(node, self.clock.seconds, self.clock.callLater),
            clock=self.clock,
        )
        self.pumps.append(pump)
        return sim, gw  # type: ignore[return-value]

    def flush(self) -> None:
        for pump in self.pumps:
            pump.flush()

    def wait(self, d: Deferred[object], *, limit: float = 60.0) -> object:
        box: list[object] = []
        d.addBoth(box.append)
        waited = 0.0
        while not box and waited < limit:
            self.flush()
            if box:
                break
            self.clock.advance(0.1)
            waited += 0.1
        assert box, "the Deferred never fired"
        if isinstance(box[0], Failure):
            box[0].raiseException()
        return box[0]

    def errors(self, kind: str) -> float:
        labels = {"link": str(self.link.kind), "kind": kind}
        return self.metrics.registry.get_sample_value("amidcc_errors_total", labels) or 0.0


def nodes(rig: Rig, collectors: int = 0, per: int = 2) -> list[C1222Node]:
    return plan_nodes(rig.meters, rig.settings, collectors=collectors, per_collector=per)


def test_esn_convention_matches_the_gateway() -> None:
    from amidcc.gateway.links.c1222 import meter_id_from_esn

    assert meter_id_from_esn(esn_for("meter-0042")) == "meter-0042"


def test_nodes_register_and_every_meter_is_read(tmp_path: Path) -> None:
    rig = Rig(tmp_path, 3)
    planned = nodes(rig, collectors=1, per=2)
    assert [len(n.meters) for n in planned] == [2, 1] and planned[0].collector == ApTitle.parse(".2.9.1")
    for node in planned:
        rig.attach(node)
    rig.flush()
    assert all(n.registered for n in planned)
    assert planned[0].registered == {".2.9.1", *[str(ApTitle(arcs=m.identity.ap_title, relative=True)) for m in planned[0].meters]}
    assert len(rig.registry) == 3
    for meter in rig.meters:
        record = rig.registry.get(meter.meter_id)
        assert record is not None and record.manufacturer == meter.identity.manufacturer.strip()
        read = rig.wait(rig.client.read_table(meter.meter_id, 1))
        assert isinstance(read.value, GeneralMfgId)  # type: ignore[attr-defined]
        assert read.value.mfg_serial_number.strip() == meter.meter_id  # type: ignore[attr-defined]
    behind = rig.meters[0].meter_id
    assert rig.registry.get(behind).route == (".2.9.1",)  # type: ignore[union-attr]
    assert rig.wait(rig.client.trace(behind)) == (".2.9.1", rig.meters[0].identity.ap_title_text)
    assert rig.wait(rig.client.trace(rig.meters[2].meter_id)) == (rig.meters[2].identity.ap_title_text,)


def test_a_procedure_runs_on_a_meter_behind_the_collector(tmp_path: Path) -> None:
    rig = Rig(tmp_path, 2)
    (node,) = nodes(rig, collectors=1, per=2)
    rig.attach(node)
    rig.flush()
    response = rig.wait(rig.client.run_procedure(rig.meters[1].meter_id, ProcedureNumber.EXECUTE_DIAGNOSTICS))
    assert isinstance(response, ProcedureResponse) and response.result_code == 0


def test_a_critical_fault_is_pushed_as_an_alarm(tmp_path: Path) -> None:
    rig = Rig(tmp_path, 1)
    (node,) = nodes(rig)
    sim, _ = rig.attach(node)
    rig.flush()
    meter = rig.meters[0]
    rig.wait(rig.client.read_table(meter.meter_id, 71))  # the head-end learns the log layout
    meter.inject(FaultKind.TAMPER, rig.clock.seconds())
    sim.send(node.tick(rig.clock.seconds()))
    rig.flush()
    ((address, services, _),) = rig.alarms
    assert address.meter_id == meter.meter_id
    ctx = rig.client.table_context(meter.meter_id)
    assert ctx is not None
    log, status = decode_alarm_services(services, ctx)
    assert log.nbr_valid_entries == 1 and status is not None
    entry = log.entries[0]
    assert (int(entry.code), entry.mfg) == (47, False)  # tamper attempt (protocol-facts 4.10)


def test_a_power_outage_pushes_its_last_gasp_and_answers_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path, 1)
    (node,) = nodes(rig)
    sim, _ = rig.attach(node)
    rig.flush()
    meter = rig.meters[0]
    meter.inject(FaultKind.POWER_OUTAGE, rig.clock.seconds())
    sim.send(node.tick(rig.clock.seconds()))
    rig.flush()
    assert len(rig.alarms) == 1
    with pytest.raises(RequestTimeout):
        rig.wait(rig.client.identify(meter.meter_id))


@pytest.mark.parametrize(
    ("fault", "value"),
    [(LinkFaultKind.SILENT, None), (LinkFaultKind.PACKET_LOSS, 1.0), (LinkFaultKind.GARBAGE, 1.0)],
)
def test_link_faults_make_requests_time_out(tmp_path: Path, fault: LinkFaultKind, value: float | None) -> None:
    rig = Rig(tmp_path, 2)
    planned = nodes(rig)
    for node in planned:
        rig.attach(node)
    rig.flush()
    bad, good = rig.meters
    bad.inject(fault, rig.clock.seconds(), value=value)
    with pytest.raises(RequestTimeout):
        rig.wait(rig.client.identify(bad.meter_id))
    if fault is LinkFaultKind.GARBAGE:
        assert rig.errors("malformed") >= 1  # one garbage run (no good APDU in between)
    assert rig.errors("timeout") == 2
    assert rig.wait(rig.client.identify(good.meter_id)) is not None


def test_latency_delays_the_reply(tmp_path: Path) -> None:
    rig = Rig(tmp_path, 1)
    (node,) = nodes(rig)
    rig.attach(node)
    rig.flush()
    meter = rig.meters[0]
    meter.inject(LinkFaultKind.LATENCY, rig.clock.seconds(), value=2.0)
    rtt = rig.wait(rig.client.ping(meter.meter_id))
    assert isinstance(rtt, float) and 2.0 <= rtt < 2.5


def test_security_mode_2_end_to_end(tmp_path: Path) -> None:
    rig = Rig(tmp_path, 3, mode=SecurityMode.CIPHERTEXT)
    for node in nodes(rig, collectors=1, per=2):
        rig.attach(node)
    rig.flush()
    assert len(rig.registry) == 3
    for meter in rig.meters:
        read = rig.wait(rig.client.read_table(meter.meter_id, 1))
        assert isinstance(read.value, GeneralMfgId)  # type: ignore[attr-defined]
    assert rig.errors("bad_mac") == 0


def test_a_meter_with_the_wrong_key_cannot_register(tmp_path: Path) -> None:
    rig = Rig(tmp_path, 1, mode=SecurityMode.AUTHENTICATED)
    bad = rig.meters[0]
    rig.meters[0] = SimMeter(bad.identity, config=replace(METER_CONFIG, key_secret=b"other"), start_time=T0)
    (node,) = nodes(rig)
    rig.attach(node)
    rig.flush()
    assert not node.registered and len(rig.registry) == 0
    assert rig.errors("bad_mac") == 1


class UdpPair:
    """A simulated UDP node and the gateway's datagram protocol, wired by hand."""

    def __init__(self, rig: Rig, node: C1222Node) -> None:
        from amidcc.gateway.links.c1222_transport import C1222Datagram

        self.gw = C1222Datagram(rig.link)
        self.sim = SimC1222Datagram(node, ("127.0.0.1", 1153), rig.clock.seconds, rig.clock.callLater)
        self.to_gw: list[bytes] = []
        self.to_sim: list[bytes] = []
        self.gw.transport = _Sink(self.to_sim)  # type: ignore[assignment]
        self.sim.transport = _Sink(self.to_gw)  # type: ignore[assignment]

    def flush(self) -> None:
        while self.to_gw or self.to_sim:
            while self.to_gw:
                self.gw.datagramReceived(self.to_gw.pop(0), ("127.0.0.1", 40001))
            while self.to_sim:
                self.sim.datagramReceived(self.to_sim.pop(0), ("127.0.0.1", 1153))


class _Sink:
    def __init__(self, box: list[bytes]) -> None:
        self.box = box

    def write(self, data: bytes, addr: object = None) -> None:
        self.box.append(data)


def test_udp_nodes_register_and_answer(tmp_path: Path) -> None:
    rig = Rig(tmp_path, 2, kind=LinkKind.C1222_UDP)
    (node,) = plan_nodes(rig.meters, udp_settings(rig.settings), collectors=1, per_collector=2)
    pair = UdpPair(rig, node)
    pair.sim.startProtocol()
    pair.flush()
    assert len(node.registered) == 3 and len(rig.registry) == 2
    assert rig.registry.get(rig.meters[0].meter_id).link is LinkKind.C1222_UDP  # type: ignore[union-attr]
    d = rig.client.read_table(rig.meters[1].meter_id, 1)
    pair.flush()
    read = rig.wait(d)
    assert isinstance(read.value, GeneralMfgId)  # type: ignore[attr-defined]
    pair.sim.register()  # a retry sends nothing once everything is accepted
    assert pair.to_gw == []






def test_a_table_too_large_for_one_apdu_is_read_in_chunks(tmp_path: Path) -> None:
    rig = Rig(tmp_path, 1)
    (node,) = nodes(rig)
    rig.attach(node)
    rig.flush()
    meter = rig.meters[0]
    read = rig.wait(rig.client.read_table(meter.meter_id, 64))  # 48 days of 15-minute data
    assert len(read.data) > 32767 and read.value is not None  # type: ignore[attr-defined]
    from amidcc.simulators.tables import table_bytes

    assert read.data == table_bytes(meter, 64, rig.clock.seconds())  # type: ignore[attr-defined]
    assert rig.errors("malformed") == 0
