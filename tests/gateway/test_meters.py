"""amidcc.gateway.meters.MeterClient over an in-memory link to real simulated meters (SimMeter and
its PSEM server), on a task.Clock: decoded tables with their dimension tables read first, writes,
procedures matched on number + sequence (never run twice after a lost response), retries with
backoff on BSY / DNR / timeout, refusals, identify / ping / trace, throttling and metrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from amidcc.codecs.c1219 import GeneralMfgId
from amidcc.codecs.c1219.procedures import ProcedureNumber, ProcedureResponse, ProcedureResult
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.psem import (
    IdentifyResponse,
    Security,
    Standard,
    TraceResponse,
    UniversalId,
    encode_request,
    encode_response,
)
from amidcc.gateway.config import RequestsSection
from amidcc.gateway.links.base import LinkDown, LinkKind, MeterAddress, RequestTimeout
from amidcc.gateway.meters import (
    MeterClient,
    MeterRefused,
    ProcedureMismatch,
    TableRead,
    dimension_tables,
)
from amidcc.gateway.metrics import GatewayMetrics
from amidcc.gateway.registry import UnknownMeter
from amidcc.gateway.throttle import RequestThrottle
from amidcc.simulators import SimMeter, build_fleet, pad_password
from amidcc.simulators.psem_server import handle_services
from amidcc.simulators.tables import READABLE

T0 = 1_700_000_000.0
MASTER = encode_request(Security(password=pad_password("master"), user_id=1))

#: A hook deciding what to do with one request: None = let the meter answer.
Script = Callable[[list[bytes]], "Deferred[list[bytes]] | None"]


class SimLink:
    """A MeterLink that hands the services to SimMeters in memory (sessionless, master password)."""

    kind = LinkKind.C1222_TCP

    def __init__(self, meters: Sequence[SimMeter], clock: Clock) -> None:
        self.meters = {m.meter_id: m for m in meters}
        self.clock = clock
        self.requests: list[list[bytes]] = []
        self.script: list[Script] = []
        self.password = MASTER

    def request(self, address: MeterAddress, services: Sequence[bytes], *, timeout: float) -> Deferred[list[bytes]]:
        self.requests.append(list(services))
        if self.script:
            scripted = self.script.pop(0)(list(services))
            if scripted is not None:
                return scripted
        meter = self.meters[address.meter_id]
        responses = handle_services(meter, [self.password, *services], self.clock.seconds())
        return succeed(responses[1:])

    def is_reachable(self, address: MeterAddress) -> bool:
        return address.meter_id in self.meters


def busy(code: ResponseCode = ResponseCode.BSY) -> Script:
    return lambda services: succeed([bytes((code,))] * len(services))


def timeout() -> Script:
    return lambda services: fail(RequestTimeout("no answer"))


def lost_after(link: SimLink, address: MeterAddress) -> Script:
    """The meter runs the request but its response is lost."""

    def run(services: list[bytes]) -> Deferred[list[bytes]]:
        handle_services(link.meters[address.meter_id], [link.password, *services], link.clock.seconds())
        return fail(RequestTimeout("response lost"))

    return run


class Rig:
    def __init__(self, n: int = 2, **kw: object) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.meters = build_fleet(n, 7, start_time=T0 - 86400)
        self.link = SimLink(self.meters, self.clock)
        self.metrics = GatewayMetrics(process=False)
        self.addresses = {
            m.meter_id: MeterAddress(meter_id=m.meter_id, ap_title=m.identity.ap_title_text, link=LinkKind.C1222_TCP)
            for m in self.meters
        }
        self.client = MeterClient(
            [self.link],
            resolve=self.resolve,
            clock=self.clock,
            requests=RequestsSection(timeout=5.0, retries=2, backoff_base=1.0, backoff_max=30.0),
            metrics=self.metrics,
            **kw,  # type: ignore[arg-type]
        )

    def resolve(self, meter_id: str) -> MeterAddress:
        try:
            return self.addresses[meter_id]
        except KeyError:
            raise UnknownMeter(meter_id) from None

    @property
    def first(self) -> str:
        return self.meters[0].meter_id

    def result(self, d: Deferred[object]) -> object:
        box: list[object] = []
        d.addBoth(box.append)
        for _ in range(100):
            if box:
                break
            self.clock.advance(1.0)
        assert box, "the Deferred never fired"
        if isinstance(box[0], Failure):
            box[0].raiseException()
        return box[0]


def test_dimension_tables() -> None:
    assert dimension_tables(0) == ()
    assert dimension_tables(1) == (0,)
    assert dimension_tables(23) == (0, 21)
    assert dimension_tables(64) == (0, 61, 62)
    assert dimension_tables(63) == (0, 61)
    assert dimension_tables(76) == (0, 71)
    assert dimension_tables(0x0800) == (0,)


def test_a_full_read_is_decoded_after_st0_and_the_context_is_cached() -> None:
    rig = Rig()
    read = rig.result(rig.client.read_table(rig.first, 1))
    assert isinstance(read, TableRead) and isinstance(read.value, GeneralMfgId)
    assert read.value.manufacturer.strip() == rig.meters[0].identity.manufacturer.strip()
    assert [s[0][:3] for s in rig.link.requests] == [b"\x30\x00\x00", b"\x30\x00\x01"]
    rig.link.requests.clear()
    rig.result(rig.client.read_table(rig.first, 23))
    assert [s[0][:3] for s in rig.link.requests] == [b"\x30\x00\x15", b"\x30\x00\x17"]  # ST21, ST23
    rig.link.requests.clear()
    rig.result(rig.client.read_table(rig.first, 23))
    assert len(rig.link.requests) == 1
    ctx = rig.client.table_context(rig.first)
    assert ctx is not None and ctx.st0 is not None and ctx.st21 is not None


@pytest.mark.parametrize("table", sorted(READABLE))
def test_every_modelled_table_reads_and_decodes(table: int) -> None:
    rig = Rig(1)
    read = rig.result(rig.client.read_table(rig.first, table))
    assert isinstance(read, TableRead) and read.data
    assert read.value is not None, f"table {table:#x} did not decode"


def test_a_partial_read_returns_the_bytes_only() -> None:
    rig = Rig()
    read = rig.result(rig.client.read_table(rig.first, 1, offset=4, count=8))
    assert isinstance(read, TableRead) and read.value is None and read.offset == 4
    assert len(read.data) == 8 and len(rig.link.requests) == 1


def test_write_then_read_back_and_a_refused_write() -> None:
    rig = Rig()
    data = bytes(range(10))
    rig.result(rig.client.write_table(rig.first, 53, data))
    read = rig.result(rig.client.read_table(rig.first, 53, decode=False))
    assert isinstance(read, TableRead) and read.data == data
    with pytest.raises(MeterRefused) as refused:
        rig.result(rig.client.write_table(rig.first, 1, b"nope"))
    assert refused.value.code is ResponseCode.IAR


def test_busy_is_retried_with_backoff() -> None:
    rig = Rig()
    rig.result(rig.client.read_table(rig.first, 0))
    rig.link.requests.clear()
    rig.link.script = [busy(), busy(ResponseCode.DNR)]
    d = rig.client.read_table(rig.first, 1)
    assert len(rig.link.requests) == 1
    rig.clock.advance(1.0)  # first backoff: 1 s
    assert len(rig.link.requests) == 2
    rig.clock.advance(1.9)  # second backoff: 2 s
    assert len(rig.link.requests) == 2
    rig.clock.advance(0.1)
    assert len(rig.link.requests) == 3
    assert isinstance(rig.result(d), TableRead)  # type: ignore[arg-type]


def test_timeouts_exhaust_the_retries() -> None:
    rig = Rig()
    rig.link.script = [timeout()] * 3
    with pytest.raises(RequestTimeout):
        rig.result(rig.client.identify(rig.first))
    assert len(rig.link.requests) == 3


def test_other_refusals_are_not_retried() -> None:
    rig = Rig()
    rig.link.password = encode_request(Security(password=pad_password("wrong"), user_id=1))
    with pytest.raises(MeterRefused) as refused:
        rig.result(rig.client.read_table(rig.first, 23, decode=False))
    assert refused.value.code is ResponseCode.ISC and len(rig.link.requests) == 1
    assert rig.metrics.registry.get_sample_value("amidcc_errors_total", {"link": "c1222-tcp", "kind": "nak"}) == 1


def test_a_procedure_runs_and_st8_is_matched() -> None:
    rig = Rig()
    response = rig.result(rig.client.run_procedure(rig.first, ProcedureNumber.EXECUTE_DIAGNOSTICS))
    assert isinstance(response, ProcedureResponse)
    assert response.number == ProcedureNumber.EXECUTE_DIAGNOSTICS and response.seq_nbr == 1
    assert response.result_code == ProcedureResult.COMPLETED
    assert len(rig.link.requests[-1]) == 2  # the ST7 write and the ST8 read in one APDU
    again = rig.result(rig.client.run_procedure(rig.first, ProcedureNumber.EXECUTE_DIAGNOSTICS))
    assert isinstance(again, ProcedureResponse) and again.seq_nbr == 2


def test_a_procedure_whose_response_was_lost_is_not_run_twice() -> None:
    rig = Rig()
    rig.result(rig.client.read_table(rig.first, 0))
    meter = rig.meters[0]
    before = meter.demand_resets
    rig.link.script = [lost_after(rig.link, rig.addresses[rig.first])]
    response = rig.result(rig.client.run_procedure(rig.first, ProcedureNumber.REMOTE_RESET, b"\x01"))
    assert isinstance(response, ProcedureResponse) and response.result_code == ProcedureResult.COMPLETED
    assert meter.demand_resets == before + 1
    assert [len(r) for r in rig.link.requests[1:]] == [2, 1]  # write+read, then only the ST8 read


def test_a_procedure_is_started_again_when_the_write_never_arrived() -> None:
    rig = Rig()
    rig.result(rig.client.read_table(rig.first, 0))
    rig.link.script = [timeout()]
    response = rig.result(rig.client.run_procedure(rig.first, ProcedureNumber.CLEAR_STD_STATUS_FLAGS))
    assert isinstance(response, ProcedureResponse)
    assert [len(r) for r in rig.link.requests[1:]] == [2, 1, 2]  # lost, poll finds another seq, again


def test_an_st8_for_another_procedure_is_a_mismatch() -> None:
    rig = Rig()
    rig.result(rig.client.read_table(rig.first, 0))

    def stale(services: list[bytes]) -> Deferred[list[bytes]]:
        old = bytes.fromhex("0b00" "63" "00")  # SP11, seq 0x63, completed
        return succeed([b"\x00", encode_response_read(old)])

    rig.link.script = [stale]
    with pytest.raises(ProcedureMismatch):
        rig.result(rig.client.run_procedure(rig.first, ProcedureNumber.CLEAR_STD_STATUS_FLAGS))


def encode_response_read(data: bytes) -> bytes:
    from amidcc.codecs.psem import ReadResponse

    return encode_response(ReadResponse(data=data))


def test_identify_ping_and_trace() -> None:
    rig = Rig()
    ident = rig.result(rig.client.identify(rig.first))
    assert isinstance(ident, IdentifyResponse) and ident.std == Standard.C1222

    def slow(services: list[bytes]) -> Deferred[list[bytes]]:
        d: Deferred[list[bytes]] = Deferred()
        rig.clock.callLater(0.25, d.callback, [encode_response(IdentifyResponse(std=3, version=1, revision=0))])
        return d

    rig.link.script = [slow]
    rtt = rig.client.ping(rig.first)
    rig.clock.advance(0.25)
    assert rig.result(rtt) == pytest.approx(0.25)  # type: ignore[arg-type]
    hops = (UniversalId.parse(".2.9"), UniversalId.parse(rig.addresses[rig.first].ap_title))
    rig.link.script = [lambda s: succeed([encode_response(TraceResponse(ap_titles=hops))])]
    assert rig.result(rig.client.trace(rig.first)) == (".2.9", rig.addresses[rig.first].ap_title)
    rig.link.script = [timeout()]
    with pytest.raises(RequestTimeout):  # ping never retries
        rig.result(rig.client.ping(rig.first))


def test_unknown_meters_and_missing_links() -> None:
    rig = Rig()
    with pytest.raises(UnknownMeter):
        rig.result(rig.client.identify("nobody"))
    rig.addresses["mqtt-1"] = MeterAddress(meter_id="mqtt-1", ap_title=".2.8.1", link=LinkKind.MQTT)
    with pytest.raises(LinkDown):
        rig.result(rig.client.identify("mqtt-1"))


def test_the_throttle_caps_requests_in_flight() -> None:
    throttle = RequestThrottle(per_link=3, per_collector=2)
    rig = Rig(10, throttle=throttle)
    for m in rig.meters[5:]:
        a = rig.addresses[m.meter_id]
        rig.addresses[m.meter_id] = MeterAddress(meter_id=a.meter_id, ap_title=a.ap_title, link=a.link, route=(".2.9",))
    held: list[Deferred[list[bytes]]] = []

    def hold(services: list[bytes]) -> Deferred[list[bytes]]:
        d: Deferred[list[bytes]] = Deferred()
        rig.clock.callLater(0.5, d.callback, [encode_response(IdentifyResponse(std=3, version=1, revision=0))])
        held.append(d)
        return d

    rig.link.script = [hold] * 10
    ds = [rig.client.identify(m.meter_id) for m in rig.meters]
    assert throttle.in_flight("c1222-tcp") == 3
    results = [rig.result(d) for d in ds]
    assert all(isinstance(r, IdentifyResponse) for r in results)
    assert throttle.link_limit("c1222-tcp").peak == 3 and throttle.collector_peak == 2


def test_latency_is_observed_by_operation_and_link() -> None:
    rig = Rig()
    rig.result(rig.client.identify(rig.first))
    rig.result(rig.client.read_table(rig.first, 1))
    sample = rig.metrics.registry.get_sample_value
    assert sample("amidcc_request_latency_seconds_count", {"operation": "identify", "link": "c1222-tcp"}) == 1
    assert sample("amidcc_request_latency_seconds_count", {"operation": "read", "link": "c1222-tcp"}) == 2
