"""45 days of interval data and events, consistency between tables, determinism."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.codecs.c1219 import ST64, CurrentRegData, EventLogData, LpData, LpStatus, decode_table
from amidcc.simulators import FaultKind, MeterConfig, MeterIdentity, MfgEvent, SimMeter
from amidcc.simulators.config import DAY
from amidcc.simulators.faults import MFG_EVENT_FLAG
from amidcc.simulators.tables import EPOCH

from .client import Client

T0 = 1_767_225_600.0
NOW = T0 + 10 * DAY + 5 * 3600.0 + 123.0
ALL_TABLES = (0, 1, 3, 5, 8, 21, 22, 23, 52, 61, 62, 63, 64, 71, 72, 73, 74, 75, 76, 2048, 2049)


def make_meter(seed: int = 9, serial: str = "meter-0009") -> SimMeter:
    ident = MeterIdentity(manufacturer="ITRN", model="SIM3", serial=serial, seed=seed)
    return SimMeter(ident, config=MeterConfig(), start_time=T0)


def test_45_days_of_interval_data() -> None:
    m = make_meter()
    c = Client(m)
    ctx = c.learn(NOW)
    status = c.read(63, NOW)
    assert isinstance(status, LpStatus)
    s1 = status.sets[0]
    assert s1 is not None and s1.nbr_valid_blocks >= 45
    lp = ST64.parse(c.read_raw(64, NOW), ctx)
    assert isinstance(lp, LpData)
    today = int(NOW // DAY)
    by_day = {}
    for element, block in enumerate(lp.blocks):
        assert block.end_time is not None
        day = int((block.end_time - EPOCH).total_seconds() // DAY) - 1
        assert day % m.config.lp_days == element
        by_day[day] = block
    assert set(range(today - 45, today + 1)) <= set(by_day)
    # a complete day: 96 positive intervals; their sum is the register delta over that day
    day = today - 44
    block = by_day[day]
    delivered = [iv.values[0] for iv in block.intervals]
    assert len(delivered) == 96 and all(v > 0 for v in delivered)
    start = m.registers(day * DAY)[0]
    end = m.registers((day + 1) * DAY)[0]
    assert sum(delivered) == end - start == block.end_readings[0].block_end_read - start
    volts = [iv.values[2] for iv in block.intervals]
    assert all(2300 <= v <= 2480 for v in volts)
    # today: only the finished intervals carry data
    done = int((NOW - today * DAY) // 900)
    assert s1.nbr_valid_int == done
    assert all(iv.values == (0, 0, 0, 0) for iv in by_day[today].intervals[done:])


def test_45_days_of_events() -> None:
    m = make_meter()
    c = Client(m)
    c.learn(NOW)
    log = c.read(76, NOW)
    assert isinstance(log, EventLogData)
    stamps = sorted(e.event_time for e in log.entries if e.event_time is not None)
    assert len(stamps) == log.nbr_valid_entries
    assert (stamps[-1] - stamps[0]).total_seconds() >= 45 * DAY
    seqs = sorted(e.event_seq_nbr for e in log.entries if e.event_time is not None)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert log.last_entry_seq_nbr == seqs[-1]
    codes = [e.code | (MFG_EVENT_FLAG if e.mfg else 0) for e in log.entries if e.event_time is not None]
    assert codes.count(MFG_EVENT_FLAG | MfgEvent.SELF_TEST_PASSED) >= 45
    assert codes.count(MFG_EVENT_FLAG | MfgEvent.METROLOGY_PASSED) >= 45


def test_registers_and_demand() -> None:
    m = make_meter()
    c = Client(m)
    c.learn(NOW)
    regs = c.read(23, NOW)
    assert isinstance(regs, CurrentRegData)
    delivered, received = regs.tot_data_block.summations
    assert (delivered, received) == m.registers(NOW)
    demand = regs.tot_data_block.demands[0]
    step = m.config.interval
    month = int((T0) // step)  # the monthly reset was at T0 (2026-01-01)
    values = [v[0] * 3600 // step for v in m.intervals(month, int(NOW // step) - month)]
    assert demand.demands[0] == max(values)
    later = c.read(23, NOW + 3600)
    assert later.tot_data_block.summations[0] > delivered
    c.procedure(9, NOW + 3700, b"\x01")  # SP9 demand reset
    after = c.read(23, NOW + 3700)
    assert after.nbr_demand_resets == regs.nbr_demand_resets + 1 and after.tot_data_block.demands[0].demands[0] == 0


def test_same_seed_same_bytes_different_seed_different() -> None:
    a, b, other = make_meter(), make_meter(), make_meter(seed=10)
    ca, cb, co = Client(a), Client(b), Client(other)
    for table in ALL_TABLES:
        assert ca.read_raw(table, NOW) == cb.read_raw(table, NOW), table
    assert ca.read_raw(23, NOW) != co.read_raw(23, NOW)
    assert ca.read_raw(64, NOW, offset=0, count=2000) != co.read_raw(64, NOW, offset=0, count=2000)


def test_reading_does_not_change_what_is_read() -> None:
    a, b = make_meter(), make_meter()
    ca, cb = Client(a), Client(b)
    for t in (NOW - DAY, NOW - 3600, NOW):
        ca.read_raw(76, t)
        ca.read_raw(23, t)
    for table in (23, 63, 76, 2048):
        assert ca.read_raw(table, NOW) == cb.read_raw(table, NOW)


def test_config_is_shared_not_copied() -> None:
    cfg = MeterConfig()
    m1 = SimMeter(MeterIdentity(manufacturer="A", model="M", serial="s1", seed=1), config=cfg, start_time=T0)
    m2 = SimMeter(MeterIdentity(manufacturer="A", model="M", serial="s2", seed=2), config=cfg, start_time=T0)
    assert m1.config is m2.config
    assert dataclasses.replace(cfg) == cfg


ROBUST_TABLES = (1, 3, 8, 23, 52, 63, 74, 76, 2048, 2049)


@settings(max_examples=12, deadline=None)
@given(
    offset=st.floats(min_value=-2 * DAY, max_value=40 * DAY),
    kinds=st.lists(st.sampled_from([k for k in FaultKind if k is not FaultKind.POWER_OUTAGE]), max_size=4),
    big_endian=st.booleans(),
    tm_format=st.sampled_from([1, 2, 3, 4]),
)
def test_every_table_reads_at_any_time_with_any_faults(offset: float, kinds: list[FaultKind], big_endian: bool, tm_format: int) -> None:
    ident = MeterIdentity(manufacturer="LGYR", model="SIM4", serial="meter-0077", seed=77)
    m = SimMeter(ident, config=MeterConfig(big_endian=big_endian, tm_format=tm_format), start_time=T0)
    c = Client(m)
    now = T0 + offset + 0.37
    for i, kind in enumerate(kinds):
        m.inject(kind, now - 3600.0 * (i + 1))
    m.tick(now)
    ctx = c.learn(now)
    for table in ROBUST_TABLES:
        assert decode_table(table, c.read_raw(table, now), ctx) is not None, table
    today = int(now // DAY) % m.config.lp_days
    assert len(c.read_index(64, (today,), 1, now)) == len(c.read_raw(64, now)) // m.config.lp_days
    c.procedure(11, now)
    c.procedure(0, now, mfg=True)
