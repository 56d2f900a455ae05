"""Modbus end to end on real loopback sockets: simulated collectors (pymodbus server) and the
gateway's ModbusLink (pymodbus asyncio client) inside the pytest-twisted asyncio reactor.

The collectors run on a frozen clock (``T``), so every value read over Modbus can be compared with
what the same SimMeter computes directly at ``T``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred

from amidcc.codecs import modbus_map as mm
from amidcc.codecs.c1219 import (
    ST7,
    ST8,
    ProcedureInitiate,
    ProcedureResult,
    decode_table,
)
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.psem import (
    FullRead,
    FullWrite,
    Identify,
    IdentifyResponse,
    Logon,
    PartialReadIndex,
    PartialReadOffset,
    ReadResponse,
    decode_response,
    encode_request,
)
from amidcc.gateway.config import ModbusCollector as CollectorConfig
from amidcc.gateway.links.base import LinkDown, LinkKind, MeterAddress, RequestTimeout
from amidcc.gateway.links.modbus import ModbusLink, ModbusProtocolError, ModbusSettings
from amidcc.simulators import FaultKind, LinkFaultKind, MeterIdentity, SimMeter, StdStatus
from amidcc.simulators.config import pad_password
from amidcc.simulators.modbus import (
    CollectorSettings,
    ModbusCollector,
    SilentMode,
)
from amidcc.simulators.tables import context_for

pytestmark = pytest.mark.integration

T = float(int(time.time()) // 900 * 900 + 450)  # frozen collector time, mid-interval
_R = TypeVar("_R")


def aio(coro: Coroutine[Any, Any, _R]) -> Deferred[_R]:
    """Run an asyncio coroutine from a Twisted coroutine (integration-notes.md, "Bridge")."""
    return Deferred.fromFuture(asyncio.ensure_future(coro))


def sleep(seconds: float) -> Deferred[None]:
    return aio(asyncio.sleep(seconds))


def make_meter(n: int) -> SimMeter:
    ident = MeterIdentity(
        manufacturer="AMDC", model="MB-1PH", serial=f"MB{n:06d}", ap_title=(2, 9, n), seed=1000 + n
    )
    return SimMeter(ident, start_time=T - 3600)


@dataclass
class Rig:
    collector: ModbusCollector
    link: ModbusLink
    meters: dict[int, SimMeter]
    reactor: Any

    def address(self, unit: int) -> MeterAddress:
        return MeterAddress(
            meter_id=self.meters[unit].meter_id, ap_title=self.meters[unit].identity.ap_title_text,
            link=LinkKind.MODBUS, route=(self.collector.endpoint,), unit_id=unit,
        )  # fmt: skip

    async def psem(self, unit: int, *requests: Any, timeout: float = 3.0) -> list[bytes]:
        raw = [encode_request(r) for r in requests]
        return await self.link.request(self.address(unit), raw, timeout=timeout)

    async def wait_until(self, condition: Any, limit: float = 5.0) -> None:
        deadline = time.monotonic() + limit
        while not condition():
            assert time.monotonic() < deadline, "condition not reached in time"
            await sleep(0.02)


async def build_rig(
    reactor: Any, *, password: bytes | None, silent: SilentMode = SilentMode.EXCEPTION
) -> Rig:
    meters = {unit: make_meter(unit) for unit in (1, 2, 3)}
    collector = ModbusCollector(meters, settings=CollectorSettings(silent=silent), clock=lambda: T)
    await aio(collector.start())
    settings = ModbusSettings(
        collectors=(CollectorConfig(endpoint=collector.endpoint, unit_ids=(1, 2, 3)),),
        timeout=0.5, password=password, user_id=7, reconnect_base=0.05, reconnect_max=0.2,
    )  # fmt: skip
    link = ModbusLink(settings, clock=reactor)
    link.start()
    rig = Rig(collector, link, meters, reactor)
    await rig.wait_until(lambda: link.is_reachable(rig.address(1)))
    return rig


@pytest_twisted.async_yield_fixture
async def rig(reactor: Any) -> AsyncIterator[Rig]:
    r = await build_rig(reactor, password=pad_password("master"))
    yield r
    await r.link.stop()
    await aio(r.collector.stop())


@pytest_twisted.async_yield_fixture
async def anonymous_rig(reactor: Any) -> AsyncIterator[Rig]:
    r = await build_rig(reactor, password=None, silent=SilentMode.DROP)
    yield r
    await r.link.stop()
    await aio(r.collector.stop())


def direct(meter: SimMeter, request: Any) -> bytes:
    """What the meter itself answers at T, with the reader credential (no Modbus in between)."""
    from amidcc.codecs.psem import Security

    sec = encode_request(Security(password=pad_password("master"), user_id=7))
    return meter.handle_services([sec, encode_request(request)], T, channel="direct")[-1]


# ------------------------------------------------------------------------------ native values


@pytest_twisted.ensureDeferred
async def test_read_identity_and_registers(rig: Rig) -> None:
    meter = rig.meters[2]
    native = await rig.link.read_native(rig.address(2), timeout=3)
    ident = meter.identity
    assert (native.manufacturer, native.model, native.serial) == ("AMDC", "MB-1PH", ident.serial)
    assert (native.hw_version, native.fw_version) == (ident.hw_version, ident.fw_version)
    assert native.device_id == ident.ident
    delivered, received = meter.registers(T)
    assert (native.energy_delivered_wh, native.energy_received_wh) == (delivered, received)
    assert native.max_demand_w == round(meter.max_demand(T)[0])
    assert native.meter_time == int(meter.clock(T))
    assert 2000 < native.voltage_dv < 2600 and 0 < native.power_factor_pm <= 1000
    assert native.std_status == 0 and native.ed_mode & 1  # metering, no faults
    assert native.event_total >= native.event_entries > 0
    assert native.self_test_passed


@pytest_twisted.ensureDeferred
async def test_native_registers_agree_with_st23_through_the_window(rig: Rig) -> None:
    native = await rig.link.read_native(rig.address(1), timeout=3)
    [answer] = await rig.psem(1, FullRead(table_id=23))
    st23 = decode_response(answer, FullRead(table_id=23))
    assert isinstance(st23, ReadResponse)
    regs = decode_table(23, st23.data, context_for(rig.meters[1].config))
    assert regs.tot_data_block.summations[:2] == (
        native.energy_delivered_wh,
        native.energy_received_wh,
    )


# ------------------------------------------------------------------------------ the window


@pytest_twisted.ensureDeferred
async def test_tables_through_the_window_match_the_meter(rig: Rig) -> None:
    meter = rig.meters[3]
    requests = [
        FullRead(table_id=1),
        PartialReadOffset(table_id=1, offset=16, octet_count=16),
        FullRead(table_id=3),
        FullRead(table_id=52),
        FullRead(table_id=76),  # the event log: longer than one Modbus read
    ]
    answers = await rig.psem(3, *requests)
    assert answers == [direct(meter, r) for r in requests]
    assert (
        answers[1] == bytes((0, 0, 16)) + meter.identity.serial.ljust(16).encode() + answers[1][-1:]
    )
    assert len(answers[4]) > 2 * mm.MAX_READ_REGISTERS


@pytest_twisted.ensureDeferred
async def test_identify_works_and_unmappable_services_answer_sns(rig: Rig) -> None:
    identify, index, logon = await rig.psem(
        1,
        Identify(),
        PartialReadIndex(table_id=64, indices=(0,), element_count=1),
        Logon(user_id=1, user=b"operator  "),
    )
    decoded = decode_response(identify, Identify())
    assert isinstance(decoded, IdentifyResponse) and decoded.std == 3
    assert index == logon == bytes((ResponseCode.SNS,))


@pytest_twisted.ensureDeferred
async def test_without_a_password_only_anonymous_tables_read(anonymous_rig: Rig) -> None:
    st1, st23 = await anonymous_rig.psem(1, FullRead(table_id=1), FullRead(table_id=23))
    assert st1[0] == 0
    assert st23 == bytes((ResponseCode.ISC,))


@pytest_twisted.ensureDeferred
async def test_self_test_procedure_through_st7_and_st8(rig: Rig) -> None:
    ctx = context_for(rig.meters[2].config)
    st7 = ST7.build(ProcedureInitiate(number=11, seq_nbr=42), ctx)
    write, st8 = await rig.psem(2, FullWrite(table_id=7, data=st7), FullRead(table_id=8))
    assert write == b"\x00"
    decoded = decode_response(st8, FullRead(table_id=8))
    assert isinstance(decoded, ReadResponse)
    response = ST8.parse(decoded.data, ctx)
    assert (response.number, response.seq_nbr) == (11, 42)
    assert response.result_code == ProcedureResult.COMPLETED
    native = await rig.link.read_native(rig.address(2), timeout=3)
    assert (native.self_test_time, native.self_test_kind) == (int(T), 3)  # 3 = on demand


@pytest_twisted.ensureDeferred
async def test_self_test_coil(rig: Rig) -> None:
    before = await rig.link.read_native(rig.address(1), timeout=3)
    await rig.link.run_coil(rig.address(1), mm.Coil.SELF_TEST, timeout=3)
    after = await rig.link.read_native(rig.address(1), timeout=3)
    assert after.self_test_kind == 3 and after.self_test_time == int(T)
    assert after.event_total >= before.event_total + 2  # summary and procedure-invoked events


# ------------------------------------------------------------------------------ faults


@pytest_twisted.ensureDeferred
async def test_injected_fault_shows_in_status_bits_registers_and_st3(rig: Rig) -> None:
    rig.meters[3].inject(FaultKind.TAMPER, T)
    bits = await rig.link.read_status_bits(rig.address(3), timeout=3)
    native = await rig.link.read_native(rig.address(3), timeout=3)
    assert bits.std_status & StdStatus.TAMPER_DETECT
    assert native.std_status == bits.std_status and native.mfg_status == bits.mfg_status
    [st3] = await rig.psem(3, FullRead(table_id=3))
    assert st3 == direct(rig.meters[3], FullRead(table_id=3))
    other = await rig.link.read_status_bits(rig.address(1), timeout=3)
    assert other.std_status == 0


@pytest_twisted.ensureDeferred
async def test_silent_meter_times_out_and_others_keep_answering(rig: Rig) -> None:
    rig.meters[2].inject(LinkFaultKind.SILENT, T)
    with pytest.raises(RequestTimeout, match="0B"):
        await rig.psem(2, FullRead(table_id=1))
    assert rig.link.is_reachable(rig.address(2))  # the collector is fine, the meter is not
    [st1] = await rig.psem(1, FullRead(table_id=1))
    assert st1[0] == 0


@pytest_twisted.ensureDeferred
async def test_dropped_requests_time_out(anonymous_rig: Rig) -> None:
    anonymous_rig.meters[2].inject(FaultKind.POWER_OUTAGE, T)
    with pytest.raises(RequestTimeout):
        await anonymous_rig.psem(2, FullRead(table_id=1), timeout=2.0)
    [st1] = await anonymous_rig.psem(1, FullRead(table_id=1))
    assert st1[0] == 0


@pytest_twisted.ensureDeferred
async def test_latency_beyond_the_timeout(rig: Rig) -> None:
    rig.meters[3].inject(LinkFaultKind.LATENCY, T, value=0.4)
    with pytest.raises(RequestTimeout):
        await rig.psem(3, FullRead(table_id=1), timeout=0.2)
    # The late answer arrives while the next request waits: it must not be taken for it.
    [st1, st3] = await rig.psem(3, FullRead(table_id=1), FullRead(table_id=3), timeout=3.0)
    assert [st1, st3] == [direct(rig.meters[3], FullRead(table_id=t)) for t in (1, 3)]


@pytest_twisted.ensureDeferred
async def test_garbage_is_caught_by_the_window_checksum(rig: Rig) -> None:
    rig.meters[1].inject(LinkFaultKind.GARBAGE, T, value=1.0)
    with pytest.raises(ModbusProtocolError, match="checksum"):
        await rig.psem(1, FullRead(table_id=1))


@pytest_twisted.ensureDeferred
async def test_meter_behind_a_failed_path_is_unreachable(rig: Rig) -> None:
    rig.meters[2].inject(LinkFaultKind.COLLECTOR_DOWN, T)
    with pytest.raises(LinkDown, match="0A"):
        await rig.psem(2, FullRead(table_id=1))
    assert not rig.link.is_reachable(rig.address(2))
    assert rig.link.is_reachable(rig.address(1))
    rig.meters[2].clear(LinkFaultKind.COLLECTOR_DOWN, T)
    await rig.link.read_native(rig.address(2), timeout=3)
    assert rig.link.is_reachable(rig.address(2))


@pytest_twisted.ensureDeferred
async def test_collector_down_fails_pending_requests_then_reconnects(rig: Rig) -> None:
    rig.meters[1].inject(LinkFaultKind.LATENCY, T, value=2.0)
    pending = rig.psem(1, FullRead(table_id=1), timeout=5.0)
    await sleep(0.1)
    await aio(rig.collector.go_down())
    with pytest.raises(LinkDown):
        await pending
    await rig.wait_until(lambda: not rig.link.is_reachable(rig.address(2)))
    with pytest.raises(LinkDown):
        await rig.psem(2, FullRead(table_id=1))
    rig.meters[1].clear(LinkFaultKind.LATENCY, T)
    await aio(rig.collector.go_up())
    await rig.wait_until(lambda: rig.link.is_reachable(rig.address(2)))
    [st1] = await rig.psem(2, FullRead(table_id=1))
    assert st1 == direct(rig.meters[2], FullRead(table_id=1))


@pytest_twisted.ensureDeferred
async def test_unknown_unit_and_bad_route(rig: Rig) -> None:
    stranger = MeterAddress(meter_id="X", ap_title=".9", link=LinkKind.MODBUS, unit_id=99)
    assert not rig.link.is_reachable(stranger)
    with pytest.raises(LinkDown):
        await rig.link.request(stranger, [encode_request(FullRead(table_id=1))], timeout=1)


@pytest_twisted.ensureDeferred
async def test_start_collectors_spreads_meters_over_unit_ids(reactor: Any) -> None:
    from amidcc.simulators.modbus import start_collectors

    meters = [make_meter(n) for n in range(10, 15)]
    collectors = await aio(start_collectors(meters, per_collector=2, clock=lambda: T))
    try:
        assert len(collectors) == 3 and len({c.port for c in collectors}) == 3
        assert [sorted(c.port_model.meters) for c in collectors] == [[1, 2], [1, 2], [1]]
        last = collectors[-1]
        settings = ModbusSettings(
            collectors=(CollectorConfig(endpoint=last.endpoint, unit_ids=(1,)),), timeout=1.0
        )
        link = ModbusLink(settings, clock=reactor)
        link.start()
        address = MeterAddress(meter_id="m", ap_title=".1", link=LinkKind.MODBUS, unit_id=1)
        rig = Rig(last, link, {1: meters[4]}, reactor)
        await rig.wait_until(lambda: link.is_reachable(address))
        native = await link.read_native(address, timeout=3)
        assert native.serial == meters[4].identity.serial
        await link.stop()
    finally:
        for c in collectors:
            await aio(c.stop())
