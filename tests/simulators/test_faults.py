"""Each injected fault shows where a head-end looks: ST3, the event log, MT0, and an alarm."""

from __future__ import annotations

import dataclasses

import pytest

from amidcc.codecs.c1219 import EdModeStatus, EventLogData, LpData
from amidcc.codecs.c1219.mfg import SelfTestResults, SelfTestStatus
from amidcc.codecs.psem import FullRead, encode_request
from amidcc.simulators import (
    FAULTS,
    Check,
    FaultKind,
    LinkFaultKind,
    MeterConfig,
    MeterIdentity,
    MfgEvent,
    SimMeter,
    StdEvent,
    alarm_services,
    decode_alarm_services,
)
from amidcc.simulators.config import DAY
from amidcc.simulators.faults import MFG_EVENT_FLAG, Detection

from .client import Client

T0 = 1_767_225_600.0
NOW = T0 + 6 * 3600.0


def make_meter(**cfg: object) -> SimMeter:
    ident = MeterIdentity(manufacturer="ELST", model="SIM2", serial="meter-0042", seed=42)
    return SimMeter(ident, config=MeterConfig(**cfg), start_time=T0)  # type: ignore[arg-type]


def _codes(log: EventLogData) -> list[int]:
    return [e.code | (MFG_EVENT_FLAG if e.mfg else 0) for e in log.entries if e.event_time is not None]


@pytest.mark.parametrize("kind", [k for k in FaultKind if k is not FaultKind.POWER_OUTAGE])
def test_fault_shows_where_a_head_end_looks(kind: FaultKind) -> None:
    spec = FAULTS[kind]
    m = make_meter()
    c = Client(m)
    ctx = c.learn(NOW)
    assert m.tick(NOW) == []
    m.inject(kind, NOW)
    later = NOW + DAY + 60.0  # past the next self-test and metrology check (both daily)
    alarms = m.tick(later)
    # ST3: standard and manufacturer bits
    st3 = c.read(3, later)
    assert isinstance(st3, EdModeStatus)
    assert int(st3.ed_std_status1) & int(spec.std_status) == int(spec.std_status)
    mfg = int.from_bytes(st3.ed_mfg_status, "little")
    assert mfg & int(spec.mfg_status) == int(spec.mfg_status)
    assert int(st3.ed_std_status1) or mfg
    # event log: the fault's event, at detection time
    log = c.read(76, later)
    assert spec.event_code in _codes(log)
    rec = next(f for f in m.faults if f.kind is kind)
    assert rec.detected is not None and NOW <= rec.detected <= later
    if spec.detection is Detection.IMMEDIATE:
        assert rec.detected == NOW
    # MT0 detail
    if spec.check is not None:
        mt0 = c.read(2048, later)
        assert isinstance(mt0, SelfTestResults)
        row = next(r for r in mt0.results if int(r.check_id) == int(spec.check))
        assert int(row.status) == SelfTestStatus.FAIL
    # alarm for the critical ones, carrying the event in table-76 format
    if kind in m.config.push_kinds:
        assert len(alarms) == 1
        alarm = alarms[0]
        assert alarm.kind is kind and alarm.event_code == spec.event_code and alarm.time == rec.detected
        entries, status = decode_alarm_services(alarm_services(alarm), ctx)
        assert [e.code | (MFG_EVENT_FLAG if e.mfg else 0) for e in entries.entries] == [spec.event_code]
        assert status is not None and int(status.ed_std_status1) == alarm.std_status
        assert alarm.body[0] & 0x13 == 0x12  # ED class included, never respond
    else:
        assert alarms == []


def test_self_test_detects_only_at_its_run() -> None:
    m = make_meter(selftest_period=DAY)
    m.inject(FaultKind.RAM, NOW)
    rec = m.faults[0]
    assert rec.detected is None and m.status(NOW) == (0, 0)
    phase_run = m.epoch + m.selftest_phase
    next_run = phase_run + ((NOW - phase_run) // DAY + 1) * DAY
    assert m.tick(next_run - 1) == []
    alarms = m.tick(next_run + 1)
    assert rec.detected == next_run and [a.kind for a in alarms] == [FaultKind.RAM]


def test_on_demand_self_test_and_sp7() -> None:
    m = make_meter()
    c = Client(m)
    c.learn(NOW)
    m.inject(FaultKind.ROM, NOW)
    resp = c.procedure(11, NOW + 5)  # SP11 execute diagnostics
    assert resp.result_code == 0 and resp.seq_nbr == c.seq
    bitmap = int.from_bytes(resp.resp_data[:4], "little")
    assert bitmap == 1 << int(Check.ROM)
    assert [a.kind for a in m.tick(NOW + 6)] == [FaultKind.ROM]
    assert m.status(NOW + 6)[0] & 0x10
    m.clear(FaultKind.ROM, NOW + 10)
    assert m.status(NOW + 11)[0] & 0x10  # latched
    c.procedure(7, NOW + 12)  # SP7 clear standard status
    assert m.status(NOW + 13)[0] & 0x10 == 0
    codes = [r.code for r in m.event_records(NOW + 13)]
    assert MFG_EVENT_FLAG | MfgEvent.SELF_TEST_FAILED in codes and MFG_EVENT_FLAG | MfgEvent.FAULT_CLEARED in codes


def test_metrology_check_on_demand_and_registration() -> None:
    m = make_meter()
    c = Client(m)
    c.learn(NOW)
    ok = c.procedure(0, NOW, mfg=True)
    assert ok.resp_data[2] == 0 and abs(int.from_bytes(ok.resp_data[:2], "little", signed=True)) <= 2
    before = m.registers(NOW + 3600)[0] - m.registers(NOW)[0]
    m.inject(FaultKind.METROLOGY, NOW + 7200)
    bad = c.procedure(0, NOW + 7201, mfg=True)
    assert bad.resp_data[2] == 2 and int.from_bytes(bad.resp_data[:2], "little", signed=True) == -400
    during = m.registers(NOW + 7200 + 3600)[0] - m.registers(NOW + 7200)[0]
    assert during < before  # under-registers (different hours, but 40 % less dominates)
    assert [a.kind for a in m.tick(NOW + 7202)] == [FaultKind.METROLOGY]


def test_power_outage_last_gasp_and_restoration() -> None:
    m = make_meter()
    c = Client(m)
    ctx = c.learn(NOW)
    size = len(c.read_raw(64, NOW - 1)) // m.config.lp_days
    m.inject(FaultKind.POWER_OUTAGE, NOW)
    gasp = m.tick(NOW)
    assert [a.event_code for a in gasp] == [StdEvent.PRIMARY_POWER_DOWN]
    assert not m.powered(NOW + 60)
    assert m.handle_request(encode_request(FullRead(table_id=0)), NOW + 60) == b""
    assert m.handle_services([encode_request(FullRead(table_id=0))], NOW + 60) == []
    m.clear(FaultKind.POWER_OUTAGE, NOW + 3600)
    back = m.tick(NOW + 3601)
    assert [a.event_code for a in back] == [StdEvent.PRIMARY_POWER_UP] and back[0].kind is None
    st3 = c.read(3, NOW + 3601)
    assert int(st3.ed_std_status1) & 0x0800  # POWER_FAILURE latched
    codes = _codes(c.read(76, NOW + 3601))
    assert StdEvent.PRIMARY_POWER_DOWN in codes and StdEvent.PRIMARY_POWER_UP in codes
    # the hour without power registers nothing, and the intervals say so
    day = int(NOW // DAY)
    lp = c.read_raw(64, NOW + 3601, offset=(day % m.config.lp_days) * size, count=size)
    block = _parse_block(lp, ctx)
    k = int((NOW - day * DAY) // 900)
    assert [iv.values[0] for iv in block.intervals[k : k + 4]] == [0, 0, 0, 0]
    assert all(int(iv.status.common) & 0x2 for iv in block.intervals[k : k + 4])  # POWER_FAIL


def _parse_block(data: bytes, ctx: object) -> object:
    from amidcc.codecs.c1219 import ST64

    act = ctx.st61  # type: ignore[attr-defined]
    one = dataclasses.replace(act, sets=(dataclasses.replace(act.sets[0], nbr_blks=1), None, None, None))
    lp = ST64.parse(data, ctx.with_table(61, one))  # type: ignore[attr-defined]
    assert isinstance(lp, LpData)
    return lp.blocks[0]


def test_reverse_rotation_moves_energy_to_received() -> None:
    m = make_meter()
    d0, r0 = m.registers(NOW)
    m.inject(FaultKind.REVERSE_ROTATION, NOW)
    d1, r1 = m.registers(NOW + 7200)
    assert d1 == d0 and r1 > r0 == 0


def test_push_failure_logs_instead_of_pushing() -> None:
    m = make_meter()
    m.inject(FaultKind.PUSH_FAILURE, NOW)
    m.inject(FaultKind.TAMPER, NOW + 10)
    assert m.tick(NOW + 20) == []
    codes = [r.code for r in m.event_records(NOW + 20)]
    assert codes.count(MFG_EVENT_FLAG | MfgEvent.PUSH_FAILURE) == 2  # the fault itself, then the lost tamper alarm
    assert StdEvent.TAMPER_ATTEMPT in codes


def test_time_sync_failure_drifts_and_refuses_sp10() -> None:
    from amidcc.codecs.c1219.timefmt import encode_time

    m = make_meter()
    c = Client(m)
    ctx = c.learn(NOW)
    target = NOW + 100.0
    stamp = encode_time(_dt(target), ctx.format.tm_format, ctx.format.data_order, long=True)
    assert c.procedure(10, NOW, b"\x03" + stamp + b"\x10").result_code == 0
    assert abs(m.clock(NOW) - target) < 1.0
    m.inject(FaultKind.TIME_SYNC, NOW + 10)
    assert c.procedure(10, NOW + 20, b"\x03" + stamp + b"\x10").result_code == 4
    assert m.clock(NOW + DAY) - (NOW + DAY + 100.0) > 100.0  # drifts about 3 minutes a day
    alarms = m.tick(NOW + DAY + 60)
    assert [a.kind for a in alarms] == [FaultKind.TIME_SYNC]


def _dt(t: float) -> object:
    from amidcc.simulators.tables import to_datetime

    return to_datetime(t)


def test_han_failure_in_mt1() -> None:
    from amidcc.codecs.c1219.mfg import HanLinkState

    m = make_meter()
    c = Client(m)
    c.learn(NOW)
    assert all(d.link_state == HanLinkState.JOINED for d in c.read(2049, NOW).devices)
    m.inject(FaultKind.HAN, NOW)
    devices = c.read(2049, NOW + 60).devices
    assert devices[0].link_state == HanLinkState.LOST and devices[1].link_state == HanLinkState.JOINED


def test_data_inconsistency_breaks_register_vs_intervals() -> None:
    m = make_meter()
    step = m.config.interval
    k0 = int(NOW // step)
    def delta() -> int:
        return m.registers((k0 + 8) * step)[0] - m.registers(k0 * step)[0]
    assert delta() == sum(v[0] for v in m.intervals(k0, 8))
    m.inject(FaultKind.DATA_INCONSISTENCY, (k0 + 4) * step)
    assert delta() != sum(v[0] for v in m.intervals(k0, 8))


def test_reprogramming_clears_checksum_fault() -> None:
    from amidcc.codecs.psem import FullWrite

    m = make_meter()
    c = Client(m)
    m.inject(FaultKind.CHECKSUM, NOW)
    m.tick(NOW + DAY + 60)
    assert m.fault_active(FaultKind.CHECKSUM, NOW + DAY + 61)
    c.one(FullWrite(table_id=6, data=b"P" * 230), NOW + DAY + 70)  # ST6 is 230 bytes
    assert not m.fault_active(FaultKind.CHECKSUM, NOW + DAY + 71)
    assert StdEvent.END_DEVICE_PROGRAMMED in [r.code for r in m.event_records(NOW + DAY + 71)]


def test_link_faults_are_data_for_transports() -> None:
    m = make_meter()
    assert not m.link_faults.any
    m.inject(LinkFaultKind.PACKET_LOSS, NOW, value=0.25)
    m.inject("latency", NOW, value=1.5)
    m.inject("silent", NOW)
    lf = m.link_faults
    assert (lf.packet_loss, lf.latency, lf.silent, lf.garbage) == (0.25, 1.5, True, 0.0)
    m.clear(LinkFaultKind.SILENT, NOW)
    assert not m.link_faults.silent and m.link_faults.any
    with pytest.raises(ValueError):
        m.inject(LinkFaultKind.PACKET_LOSS, NOW, value=2.0)


def test_last_self_test_and_metrology_times() -> None:
    from amidcc.simulators import RunKind

    m = make_meter()
    assert m.last_self_test(T0) == (T0, RunKind.POWER_UP)
    phase_run = m.epoch + m.selftest_phase
    periodic = phase_run + ((NOW - phase_run) // DAY) * DAY
    if periodic > T0:
        assert m.last_self_test(NOW) == (periodic, RunKind.PERIODIC)
    m.run_self_test(NOW + 5)
    assert m.last_self_test(NOW + 10) == (float(int(NOW + 5)), RunKind.ON_DEMAND)
    m.run_metrology_check(NOW + 20)
    assert m.last_metrology(NOW + 30) == float(int(NOW + 20))
    metro_run = m.epoch + m.metrology_phase
    assert m.last_metrology(NOW + 3 * DAY) == metro_run + ((NOW + 3 * DAY - metro_run) // DAY) * DAY
