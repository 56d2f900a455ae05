"""The meter's C12.19 tables, built on read with :mod:`amidcc.codecs.c1219` from the meter's state.

Static tables (ST0, ST21, ST22, ST61, ST62, ST71-ST73, ST75) depend only on the shared
:class:`~amidcc.simulators.config.MeterConfig` (and ST0 on the manufacturer) and are cached as bytes.
Everything else is built from the meter's state at ``now``. ST64 (45+ days of 15-minute data) is
built one block at a time, so an offset read of today's block never builds the other days.

Table layout choices (documented in docs/simulators.md):

* ST0: DATA_ORDER from the config, ISO 646 characters, TM_FORMAT from the config, any access method,
  NI_FMAT1 INT64, NI_FMAT2 INT32, C12.19-2008 (version 2).
* ST21: two summations (Wh delivered, Wh received), one demand (maximum 15-minute W, with its time),
  demand-reset counter, no tiers.
* ST61-ST64: one set, one block per UTC day (blocks in a circular list addressed by day number), four
  UINT16 channels (Wh delivered, Wh received, average decivolts, average power factor per mille),
  extended interval status, block end readings (register values at the block's end).
* ST6: UTILITY_INFO_TBL (230 bytes) filled from the identity: service point = premise, customer =
  account, device id, utility serial; writable like ST5 (the head-end's programs).
* ST71-ST76: 4-byte event arguments, ``config.event_capacity`` entries in a circular list where
  the entry with sequence number ``s`` sits at element ``s % capacity``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from amidcc.codecs.c1219 import (
    MT0,
    MT1,
    ST0,
    ST1,
    ST3,
    ST5,
    ST6,
    ST8,
    ST21,
    ST22,
    ST23,
    ST52,
    ST61,
    ST62,
    ST63,
    ST64,
    ST71,
    ST72,
    ST73,
    ST74,
    ST75,
    ST76,
    ActLog,
    ActLp,
    ActRegs,
    ChannelStatus,
    Clock,
    CurrentRegData,
    DataBlock,
    DataOrder,
    DataSelection,
    DayOfWeek,
    DemandRecord,
    DeviceIdent,
    EdMode,
    EdModeStatus,
    EdStdStatus1,
    EventEntry,
    EventLogData,
    EventsId,
    ExtendedIntStatus,
    ExtLogFlag,
    FormatControl,
    GenConfig,
    GeneralMfgId,
    HistoryEntry,
    HistoryLogData,
    IntervalCommonFlag,
    IntervalFormat,
    ListStatus,
    LogCtrl,
    LogFlag,
    LpBlock,
    LpChannelFlag,
    LpCtrl,
    LpData,
    LpEndReading,
    LpFlag,
    LpFormat,
    LpInterval,
    LpSetCtrl,
    LpSetDims,
    LpSetStatus,
    LpSetStatusFlag,
    LpSourceSelect,
    LpStatus,
    NiFormat,
    ProcedureResponse,
    RegFunc1Flag,
    TableContext,
    TimeDateQual,
    TimeFormat,
    UtilityInfo,
    fit_set_dims,
)
from amidcc.codecs.c1219.mfg import (
    HanDevice,
    HanDeviceType,
    HanLinkState,
    HanStatus,
    SelfTestResult,
    SelfTestResults,
    SelfTestStatus,
)
from amidcc.codecs.c1219.registry import MFG_FLAG

from .config import DAY, MeterConfig
from .diagnostics import EventRecord
from .faults import FAULTS, LOGGED_STD_EVENTS, MFG_EVENT_FLAG, Check, Detection, FaultKind, MfgEvent
from .history import unit

if TYPE_CHECKING:
    from .meter import SimMeter

__all__ = [
    "LP_CHANNELS",
    "ST6_SIZE",
    "program_sizes",
    "READABLE",
    "context_for",
    "event_entry",
    "exists",
    "read_full",
    "read_index",
    "read_range",
    "table_bytes",
    "to_datetime",
    "utility_info",
    "writable",
]

MT_0 = MFG_FLAG  # amidcc's MT0 (table-id word with the manufacturer bit)
MT_1 = MFG_FLAG | 1
#: Load-profile channels (ST62 source index = position).
LP_CHANNELS = ("Wh delivered", "Wh received", "voltage (dV)", "power factor (per mille)")
#: Events the meter can log (ST72).
STD_EVENTS = frozenset(int(e) for e in LOGGED_STD_EVENTS)
MFG_EVENTS = frozenset(int(e) for e in MfgEvent)
#: History log capacity (ST74: user-initiated events only).
HISTORY_ENTRIES = 64
#: ST0 MAX_PROC_PARM_LENGTH / MAX_RESP_DATA_LEN.
MAX_PARM = 12
MAX_RESP = 8
#: Standard procedures implemented (SP6-SP11) and amidcc manufacturer procedures (MP0 metrology).
STD_PROCS = frozenset({6, 7, 8, 9, 10, 11})
MFG_PROCS = frozenset({0})
#: The wall-clock epoch of table times (naive UTC).
EPOCH = datetime(1970, 1, 1)


def to_datetime(t: float) -> datetime:
    """Epoch seconds -> the naive UTC wall-clock datetime the table codecs take (whole seconds)."""
    return EPOCH + timedelta(seconds=math.floor(t))


#: ST6 UTILITY_INFO_TBL size (the simulator's characters are ISO 646, identifiers not BCD).
ST6_SIZE = ST6.size(TableContext()) or 0
#: What the simulated meters hold in ST6 PROGRAMMER_NAME until the head-end writes ST6.
FACTORY_PROGRAMMER = "AMIDCC-SIM"


def program_sizes(config: MeterConfig) -> dict[int, int]:
    """Programmable tables and their sizes: ST5, ST6 (modelled) and the opaque configured ones."""
    return {5: 20, **dict(config.program_sizes), 6: ST6_SIZE}


READABLE = frozenset({0, 1, 3, 5, 8, 21, 22, 23, 52, 61, 62, 63, 64, 71, 72, 73, 74, 75, 76, MT_0, MT_1})


# ---------------------------------------------------------------------- configuration tables


@functools.lru_cache(maxsize=64)
def _gen_config(config: MeterConfig, device_class: bytes) -> GenConfig:
    fc = FormatControl(
        data_order=DataOrder.BIG if config.big_endian else DataOrder.LITTLE,
        tm_format=TimeFormat(config.tm_format),
        ni_format1=NiFormat.INT64,
        ni_format2=NiFormat.INT32,
    )
    programs = set(program_sizes(config))
    cfg = GenConfig(
        format_control=fc,
        device_class=device_class,
        nameplate_type=2,
        max_proc_parm_length=MAX_PARM,
        max_resp_data_len=MAX_RESP,
        std_version_no=2,
        std_revision_no=0,
        dim_mfg_status_used=2,
        std_tbls_used=frozenset(t for t in READABLE if t < MT_0) | {7} | programs,
        mfg_tbls_used=frozenset({0, 1}),
        std_proc_used=STD_PROCS,
        mfg_proc_used=MFG_PROCS,
        std_tbls_write=frozenset({7}) | programs,
    )
    return fit_set_dims(cfg)


def _act_regs() -> ActRegs:
    return ActRegs(
        reg_func1_flags=RegFunc1Flag.DATE_TIME_FIELD | RegFunc1Flag.DEMAND_RESET_CTR,
        nbr_summations=2,
        nbr_demands=1,
        nbr_occur=1,
    )


def _act_lp(config: MeterConfig) -> ActLp:
    per_day = int(DAY) // config.interval
    dims = LpSetDims(nbr_blks=config.lp_days, nbr_blk_ints=per_day, nbr_chns=len(LP_CHANNELS), max_int_time=config.interval // 60)
    act = ActLp(
        lp_flags=LpFlag.BLK_END_READ | LpFlag.EXTENDED_INT_STATUS,
        lp_fmats=LpFormat.INV_UINT16,
        sets=(dims, None, None, None),
    )
    return act


def _lp_ctrl() -> LpCtrl:
    sources = tuple(
        LpSourceSelect(chnl_flag=LpChannelFlag.END_RDG if i < 2 else LpChannelFlag(0), lp_source_select=i, end_blk_rdg_source_select=i)
        for i in range(len(LP_CHANNELS))
    )
    return LpCtrl(sets=(LpSetCtrl(sources=sources, int_fmt_cde=IntervalFormat.UINT16), None, None, None))


def _act_log(config: MeterConfig) -> ActLog:
    return ActLog(
        log_flags=LogFlag.HIST_DATE_TIME | LogFlag.HIST_SEQ_NBR,
        nbr_std_events=(max(STD_EVENTS) // 8) + 1,
        nbr_mfg_events=(max(MFG_EVENTS) // 8) + 1,
        hist_data_length=4,
        event_data_length=4,
        nbr_history_entries=HISTORY_ENTRIES,
        nbr_event_entries=config.event_capacity,
        ext_log_flags=ExtLogFlag(0),
        nbr_program_tables=0,
    )


@functools.lru_cache(maxsize=64)
def context_for(config: MeterConfig, device_class: bytes = b"AMDC") -> TableContext:
    """The table context a head-end would build from this meter's ST0, ST21, ST61, ST62, ST71."""
    ctx = TableContext.from_st0(_gen_config(config, device_class))
    ctx = ctx.with_table(21, _act_regs())
    act = _act_lp(config)
    ctx = ctx.with_table(61, act).with_table(62, _lp_ctrl())
    size = ST64.size(ctx)  # LP_MEMORY_LEN: the bytes of the set-1 data table
    ctx = ctx.with_table(61, dataclasses.replace(act, lp_memory_len=size or 0))
    return ctx.with_table(71, _act_log(config))


@functools.lru_cache(maxsize=256)
def _static(config: MeterConfig, device_class: bytes, number: int) -> bytes | None:
    ctx = context_for(config, device_class)
    if number == 0:
        return ST0.build(_gen_config(config, device_class), ctx)
    if number == 21:
        return ST21.build(_act_regs(), ctx)
    if number == 22:
        sel = DataSelection(summation_select=(0, 1), demand_select=(0,), min_or_max_flags=frozenset({0}))
        return ST22.build(sel, ctx)
    if number == 61:
        assert ctx.st61 is not None
        return ST61.build(ctx.st61, ctx)
    if number == 62:
        return ST62.build(_lp_ctrl(), ctx)
    if number == 71:
        return ST71.build(_act_log(config), ctx)
    if number == 72:
        return ST72.build(EventsId(std_events_supported=STD_EVENTS, mfg_events_supported=MFG_EVENTS), ctx)
    if number == 73:
        monitored = LogCtrl(
            std_events_monitored=frozenset({3, 4, 9, 10, 11, 20}),
            std_tbls_monitored=frozenset({7}) | set(program_sizes(config)),
            std_proc_monitored=STD_PROCS,
            mfg_proc_monitored=MFG_PROCS,
        )
        return ST73.build(monitored, ctx)
    if number == 75:
        return ST75.build(LogCtrl(std_events_monitored=STD_EVENTS, mfg_events_monitored=MFG_EVENTS), ctx)
    return None


# ---------------------------------------------------------------------- per-meter tables


def _ctx(meter: SimMeter) -> TableContext:
    return context_for(meter.config, meter.identity.ed_class)


def _uint(value: int, size: int, meter: SimMeter) -> bytes:
    order: Literal["big", "little"] = "big" if meter.config.big_endian else "little"
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, order)


def _st1(meter: SimMeter) -> bytes:
    i = meter.identity
    ident = GeneralMfgId(
        manufacturer=i.manufacturer.ljust(4),
        ed_model=i.model.ljust(8),
        hw_version_number=i.hw_version,
        hw_revision_number=i.hw_revision,
        fw_version_number=i.fw_version,
        fw_revision_number=i.fw_revision,
        mfg_serial_number=i.serial.ljust(16),
    )
    return ST1.build(ident, _ctx(meter))


def _st3(meter: SimMeter, now: float) -> bytes:
    std, mfg = meter.status(now)
    value = EdModeStatus(
        ed_mode=EdMode(meter.mode & 0x0F),
        ed_std_status1=EdStdStatus1(std),
        ed_std_status2=0,
        ed_mfg_status=_uint(mfg, 2, meter),
    )
    return ST3.build(value, _ctx(meter))


def program_bytes(meter: SimMeter, number: int) -> bytes:
    stored = (meter.programs or {}).get(number)
    if stored is not None:
        return stored
    if number == 5:
        return ST5.build(DeviceIdent(identification=meter.identity.ident.ljust(20)), _ctx(meter))
    if number == 6:
        return ST6.build(utility_info(meter), _ctx(meter))
    return b" " * program_sizes(meter.config)[number]


def utility_info(meter: SimMeter) -> UtilityInfo:
    """ST6 as the meter comes to its premise: service point = premise, customer = account (blank
    when the identity has none), device id = ST5's, utility serial = the serial."""
    i = meter.identity
    return UtilityInfo(
        service_point_id=i.premise[:20],
        device_id=i.ident[:20],
        util_ser_nbr=i.serial[:20],
        customer_id=i.account[:20],
        ex1_sw_vendor=i.manufacturer[:4],
        programmer_name=FACTORY_PROGRAMMER,
    )


def _st8(meter: SimMeter) -> bytes:
    if meter.st8 is not None:
        return meter.st8
    return ST8.build(ProcedureResponse(number=0, resp_data=bytes(MAX_RESP)), _ctx(meter))


def _st23(meter: SimMeter, now: float) -> bytes:
    delivered, received = meter.registers(now)
    max_w, at = meter.max_demand(now)
    demand = DemandRecord(event_times=(to_datetime(at - at % 60),), demands=(round(max_w),))  # STIME: minutes
    block = DataBlock(summations=(delivered, received), demands=(demand,))
    value = CurrentRegData(nbr_demand_resets=meter.demand_resets & 0xFF, tot_data_block=block)
    return ST23.build(value, _ctx(meter))


def _st52(meter: SimMeter, now: float) -> bytes:
    t = meter.clock(now)
    dow = DayOfWeek((int(t // DAY) + 4) % 7)  # 1970-01-01 was a Thursday
    qual = TimeDateQual(day_of_week=dow, gmt=True)
    return ST52.build(Clock(clock_calendar=to_datetime(t), time_date_qual=qual), _ctx(meter))


# ---------------------------------------------------------------------- load profile


def _lp_geometry(meter: SimMeter) -> tuple[int, int, int]:
    """(blocks, intervals per block, bytes per block)."""
    cfg = meter.config
    per_day = int(DAY) // cfg.interval
    return cfg.lp_days, per_day, _block_size(cfg, meter.identity.ed_class)


@functools.lru_cache(maxsize=64)
def _block_size(config: MeterConfig, device_class: bytes) -> int:
    size = ST64.size(_one_block_ctx(config, device_class))
    assert size is not None
    return size


@functools.lru_cache(maxsize=64)
def _one_block_ctx(config: MeterConfig, device_class: bytes) -> TableContext:
    """The meter's context with ST61 saying one block: builds one ST64 block on its own."""
    ctx = context_for(config, device_class)
    act = ctx.st61
    assert act is not None and act.sets[0] is not None
    one = dataclasses.replace(act, sets=(dataclasses.replace(act.sets[0], nbr_blks=1), None, None, None))
    return ctx.with_table(61, one)


def _day_now(meter: SimMeter, now: float) -> int:
    return int(now // DAY)


def _st63(meter: SimMeter, now: float) -> bytes:
    blocks, per_day, _ = _lp_geometry(meter)
    day = _day_now(meter, now)
    first_day = int(meter.epoch // DAY)
    valid = min(blocks, day - first_day + 1)
    done = int((now - day * DAY) // meter.config.interval)
    flags = LpSetStatusFlag.LIST_TYPE | LpSetStatusFlag.ACTIVE_MODE
    if day - first_day + 1 > blocks:
        flags |= LpSetStatusFlag.OVERFLOW
    if meter.mode & EdMode.TEST_MODE:
        flags |= LpSetStatusFlag.TEST_MODE
    status = LpSetStatus(
        flags=flags,
        nbr_valid_blocks=valid,
        last_block_element=day % blocks,
        last_block_seq_nbr=day & 0xFFFFFFFF,
        nbr_unread_blocks=valid,
        nbr_valid_int=min(done, per_day),
    )
    return ST63.build(LpStatus(sets=(status, None, None, None)), _ctx(meter))


def _empty_block(per_day: int) -> LpBlock:
    status = ExtendedIntStatus(common=IntervalCommonFlag(0), channels=(int(ChannelStatus.SKIPPED),) * len(LP_CHANNELS))
    zero = LpInterval(values=(0,) * len(LP_CHANNELS), status=status)
    ends = (LpEndReading(block_end_read=0),) * len(LP_CHANNELS)
    return LpBlock(end_time=None, end_readings=ends, intervals=(zero,) * per_day)


def _block(meter: SimMeter, day: int, now: float) -> LpBlock:
    """The block holding UTC day ``day`` (intervals after ``now`` are zero and skipped)."""
    _, per_day, _ = _lp_geometry(meter)
    step = meter.config.interval
    k0 = day * per_day
    done = max(0, min(per_day, int((now - k0 * step) // step)))
    start_k = max(k0, math.ceil(meter.epoch / step))
    skip_head = start_k - k0
    energy = meter.intervals(start_k, max(0, k0 + done - start_k)) if done > skip_head else []
    outages = [(s.start, s.end) for s in meter.spans() if s.scale == 0.0]
    curve, intervals = meter.curve, []
    test = meter.mode & EdMode.TEST_MODE
    for j in range(per_day):
        k = k0 + j
        if j < skip_head or j >= done:
            st = ExtendedIntStatus(channels=(int(ChannelStatus.SKIPPED),) * len(LP_CHANNELS))
            intervals.append(LpInterval(values=(0, 0, 0, 0), status=st))
            continue
        d, r = energy[j - skip_head]
        lo, hi = k * step, (k + 1) * step
        dark = [max(lo, a) < min(hi, b) for a, b in outages]
        full_dark = any(a <= lo and hi <= b for a, b in outages)
        common = IntervalCommonFlag.POWER_FAIL if any(dark) else IntervalCommonFlag(0)
        chan = int(ChannelStatus.TEST_MODE) if test else int(ChannelStatus.PARTIAL) if any(dark) else 0
        volts = 0 if full_dark else meter.curve.voltage_dv(k, meter.config.nominal_voltage)
        pf = 0 if full_dark else curve.power_factor_pm(k)
        st = ExtendedIntStatus(common=common, channels=(chan,) * len(LP_CHANNELS))
        intervals.append(LpInterval(values=(d, r, volts, pf), status=st))
    end = (k0 + per_day) * step
    reg_d, reg_r = meter.registers(min(end, now))
    ends = (LpEndReading(block_end_read=reg_d), LpEndReading(block_end_read=reg_r), LpEndReading(block_end_read=0), LpEndReading(block_end_read=0))
    return LpBlock(end_time=to_datetime(end), end_readings=ends, intervals=tuple(intervals))


def _block_bytes(meter: SimMeter, element: int, now: float) -> bytes:
    """Bytes of ST64 block ``element`` (circular: it holds the day ``d`` with d % blocks == element)."""
    blocks, per_day, _ = _lp_geometry(meter)
    today = _day_now(meter, now)
    day = today - ((today - element) % blocks)
    first_day = int(meter.epoch // DAY)
    block = _empty_block(per_day) if day < first_day else _block(meter, day, now)
    return ST64.build(LpData(blocks=(block,)), _one_block_ctx(meter.config, meter.identity.ed_class))


def _st64_range(meter: SimMeter, offset: int, count: int, now: float) -> bytes:
    blocks, _, size = _lp_geometry(meter)
    first, last = offset // size, (offset + count - 1) // size
    data = b"".join(_block_bytes(meter, e, now) for e in range(first, min(last, blocks - 1) + 1))
    start = offset - first * size
    return data[start : start + count]


# ---------------------------------------------------------------------- logs


def event_entry(meter: SimMeter, rec: EventRecord) -> EventEntry:
    """An :class:`EventRecord` as an ST76 entry."""
    return EventEntry(
        event_time=to_datetime(rec.time),
        event_seq_nbr=rec.seq & 0xFFFF,
        user_id=rec.user_id & 0xFFFF,
        code=rec.code & 0x07FF,
        mfg=bool(rec.code & MFG_EVENT_FLAG),
        argument=_uint(rec.argument, 4, meter),
    )


def _st76(meter: SimMeter, now: float) -> bytes:
    """Header, then ``capacity`` entries with sequence number ``s`` at element ``s % capacity``.

    Only the valid entries go through the codec (built as one run); empty slots are the bytes of an
    empty entry, built once per configuration.
    """
    cap = meter.config.event_capacity
    records = meter.event_records(now)
    last = records[-1].seq if records else 0
    status = ListStatus.LIST_TYPE | (ListStatus.OVERFLOW if last + 1 > cap else ListStatus(0))
    header = EventLogData(
        list_status=status,
        nbr_valid_entries=len(records),
        last_entry_element=last % cap,
        last_entry_seq_nbr=last,
        nbr_unread_entries=len(records),
    )
    ctx = _ctx(meter)
    head = ST76.build(header, _log_ctx(ctx, 0))
    empty = _empty_entry(meter.config, meter.identity.ed_class)
    body = bytearray(empty * cap)
    if records:
        run = dataclasses.replace(header, entries=tuple(event_entry(meter, r) for r in records))
        packed = ST76.build(run, _log_ctx(ctx, len(records)))[len(head) :]
        size = len(empty)
        for i, rec in enumerate(records):
            pos = (rec.seq % cap) * size
            body[pos : pos + size] = packed[i * size : (i + 1) * size]
    return head + bytes(body)


def _log_ctx(ctx: TableContext, entries: int) -> TableContext:
    """``ctx`` with ST71 holding ``entries`` event entries (to build a run of entries)."""
    log = ctx.st71
    assert log is not None
    return ctx.with_table(71, dataclasses.replace(log, nbr_event_entries=entries))


@functools.lru_cache(maxsize=64)
def _empty_entry(config: MeterConfig, device_class: bytes) -> bytes:
    ctx = context_for(config, device_class)
    one = EventLogData(entries=(EventEntry(argument=bytes(4)),))
    return ST76.build(one, _log_ctx(ctx, 1))[len(ST76.build(EventLogData(), _log_ctx(ctx, 0))) :]


def _st74(meter: SimMeter, now: float) -> bytes:
    records = [r for r in meter.event_records(now) if r.user_id != 0][-HISTORY_ENTRIES:]
    slots: list[HistoryEntry] = [HistoryEntry(history_seq_nbr=0, argument=bytes(4))] * HISTORY_ENTRIES
    for i, rec in enumerate(records):
        slots[i] = HistoryEntry(
            history_time=to_datetime(rec.time),
            history_seq_nbr=rec.seq & 0xFFFF,
            user_id=rec.user_id & 0xFFFF,
            code=rec.code & 0x07FF,
            mfg=bool(rec.code & MFG_EVENT_FLAG),
            argument=_uint(rec.argument, 4, meter),
        )
    value = HistoryLogData(
        nbr_valid_entries=len(records),
        last_entry_element=max(0, len(records) - 1),
        last_entry_seq_nbr=records[-1].seq if records else 0,
        nbr_unread_entries=len(records),
        entries=tuple(slots),
    )
    return ST74.build(value, _ctx(meter))


# ---------------------------------------------------------------------- manufacturer tables


def _mt0(meter: SimMeter, now: float) -> bytes:
    """One record per self-test check: its status at its last run, detail = the fault number + 1."""
    t_test, _ = meter.last_self_test(now)
    t_metro = meter.last_metrology(now)
    results = []
    for check in Check:
        t = t_metro if check is Check.METROLOGY else t_test
        status, detail = SelfTestStatus.PASS, 0
        for f in meter.faults:
            spec = FAULTS[f.kind]
            if spec.check is not check or f.detected is None or f.detected > now:
                continue
            seen = f.active(t) or (spec.detection is Detection.IMMEDIATE and f.active(now))
            if seen:
                status, detail = SelfTestStatus.FAIL, list(FaultKind).index(f.kind) + 1
                t = max(t, f.detected) if spec.detection is Detection.IMMEDIATE else t
        if check is Check.METROLOGY:
            detail = meter.metrology_error_pm(t) & 0xFFFF
        results.append(SelfTestResult(check_id=int(check), status=int(status), detail_code=detail, timestamp=to_datetime(t)))
    return MT0.build(SelfTestResults(results=tuple(results)), _ctx(meter))


_HAN_TYPES = (HanDeviceType.IN_HOME_DISPLAY, HanDeviceType.THERMOSTAT, HanDeviceType.LOAD_CONTROL_DEVICE, HanDeviceType.SMART_PLUG, HanDeviceType.EV_CHARGER)


def _mt1(meter: SimMeter, now: float) -> bytes:
    """The HAN devices; device 0 is LOST while a HAN fault is active (its last contact then)."""
    seed, devices = meter.identity.seed, []
    lost_since = next((f.start for f in meter.faults if f.kind is FaultKind.HAN and f.active(now)), None)
    for i in range(meter.config.han_devices):
        eui = bytes((0x00, 0x1D, 0xA5)) + int(unit(seed, 50, i) * 2**40).to_bytes(5, "big")
        kind = _HAN_TYPES[int(unit(seed, 51, i) * len(_HAN_TYPES))]
        state, last = HanLinkState.JOINED, now - 30.0 - 240.0 * unit(seed, 52, int(now // 300) + i)
        if i == 0 and lost_since is not None:
            state, last = HanLinkState.LOST, lost_since
        devices.append(HanDevice(device_id=eui, device_type=int(kind), link_state=int(state), last_contact=to_datetime(last)))
    return MT1.build(HanStatus(devices=tuple(devices)), _ctx(meter))


# ---------------------------------------------------------------------- dispatch


def _key(number: int) -> int:
    return number & 0x0FFF  # drop the pending bit: no pending tables here


def exists(meter: SimMeter, number: int) -> bool:
    """Whether the meter has table ``number`` (a table-id word) at all."""
    key = _key(number)
    return key in READABLE or key in program_sizes(meter.config) or key == 7


def writable(meter: SimMeter, number: int) -> bool:
    """Whether the head-end may write table ``number``: ST7 and the programmable tables."""
    key = _key(number)
    return key == 7 or key in program_sizes(meter.config)


def table_bytes(meter: SimMeter, number: int, now: float) -> bytes | None:
    """The whole table at ``now`` (None: not readable). ST64 is built in full: prefer ranges."""
    key = _key(number)
    static = _static(meter.config, meter.identity.ed_class, key)
    if static is not None:
        return static
    builder = _BUILDERS.get(key)
    if builder is not None:
        return builder(meter, now)
    if key in program_sizes(meter.config):
        return program_bytes(meter, key)
    if key == 64:
        blocks, _, size = _lp_geometry(meter)
        return _st64_range(meter, 0, blocks * size, now)
    return None


def read_full(meter: SimMeter, number: int, now: float) -> bytes | None:
    """A full read."""
    return table_bytes(meter, number, now)


def table_size(meter: SimMeter, number: int, now: float) -> int | None:
    """Size in bytes (ST64 without building it)."""
    if _key(number) == 64:
        blocks, _, size = _lp_geometry(meter)
        return blocks * size
    data = table_bytes(meter, number, now)
    return None if data is None else len(data)


def read_range(meter: SimMeter, number: int, offset: int, count: int, now: float) -> bytes | None:
    """An offset read; None (answered IAR) when it reaches past the table's end."""
    size = table_size(meter, number, now)
    if size is None or offset + count > size or count == 0:
        return None
    if _key(number) == 64:
        return _st64_range(meter, offset, count, now)
    data = table_bytes(meter, number, now)
    assert data is not None
    return data[offset : offset + count]


def _array_geometry(meter: SimMeter, key: int, now: float) -> tuple[int, int, int] | None:
    """(header bytes, element bytes, element count) of the tables readable by index."""
    if key == 64:
        blocks, _, size = _lp_geometry(meter)
        return 0, size, blocks
    if key in (74, 76, MT_0, MT_1):
        total = table_size(meter, key, now)
        assert total is not None
        header = 11 if key in (74, 76) else 1
        count = {74: HISTORY_ENTRIES, 76: meter.config.event_capacity, MT_0: len(Check), MT_1: meter.config.han_devices}[key]
        return (header, (total - header) // count, count) if count else None
    return None


def read_index(meter: SimMeter, number: int, indices: tuple[int, ...], count: int, now: float) -> bytes | None:
    """An index read: ``count`` elements of the table's array from ``indices[0]`` (ST64 also takes
    ``(block, interval)``: ``count`` intervals). None (IAR) for other tables or out of range."""
    key = _key(number)
    geo = _array_geometry(meter, key, now)
    if geo is None or count == 0 or not 1 <= len(indices) <= 2:
        return None
    header, elem, n = geo
    first = indices[0]
    if len(indices) == 2:
        if key != 64:
            return None
        _, per_day, size = _lp_geometry(meter)
        rec = (size - _block_header(meter)) // per_day
        if first >= n or indices[1] + count > per_day:
            return None
        return read_range(meter, key, first * size + _block_header(meter) + indices[1] * rec, count * rec, now)
    if first + count > n:
        return None
    return read_range(meter, key, header + first * elem, count * elem, now)


def _block_header(meter: SimMeter) -> int:
    """Bytes before the first interval of a block (end time, end readings)."""
    _, per_day, size = _lp_geometry(meter)
    record = len(LP_CHANNELS) // 2 + 1 + 2 * len(LP_CHANNELS)  # extended status + UINT16 values
    return size - per_day * record


_BUILDERS: dict[int, Callable[[SimMeter, float], bytes]] = {
    1: lambda m, now: _st1(m),
    3: _st3,
    8: lambda m, now: _st8(m),
    23: _st23,
    52: _st52,
    63: _st63,
    74: _st74,
    76: _st76,
    MT_0: _mt0,
    MT_1: _mt1,
}
