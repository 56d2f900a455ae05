"""ST71-ST76: log dimensions, event ids, control sets, history and event log data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.codecs.c1219 import (
    ST71,
    ST72,
    ST73,
    ST74,
    ST75,
    ST76,
    ActLog,
    DataOrder,
    EventEntry,
    EventLogData,
    EventsId,
    ExtLogFlag,
    FormatControl,
    GenConfig,
    HistoryEntry,
    HistoryLogData,
    ListStatus,
    LogCtrl,
    LogCtrlLayout,
    LogFlag,
    StdEvent,
    TableContext,
    TableModel,
    TimeFormat,
    fit_set_dims,
)
from amidcc.codecs.errors import LocalProtocolError, RemoteProtocolError

from .c1219_cases import ORDERS, TIME_FORMATS

LOG = ActLog(
    log_flags=LogFlag.EVENT_NUMBER | LogFlag.HIST_DATE_TIME | LogFlag.HIST_SEQ_NBR,
    nbr_std_events=10,
    nbr_mfg_events=2,
    hist_data_length=2,
    event_data_length=3,
    nbr_history_entries=3,
    nbr_event_entries=4,
)
ST0_V1 = fit_set_dims(
    GenConfig(
        std_version_no=1,
        std_tbls_used=frozenset({0, 1, 71, 72, 73, 74, 75, 76}),
        std_proc_used=frozenset({4, 5}),
        mfg_tbls_used=frozenset({0}),
    )
)


def ctx_for(order: DataOrder, tm: TimeFormat = TimeFormat.UINT8, **kw: Any) -> TableContext:
    base = dict(st0=ST0_V1, st71=LOG)
    base.update(kw)
    return TableContext(format=FormatControl(data_order=order, tm_format=tm), **base)  # type: ignore[arg-type]


def round_trip(model: TableModel[Any], value: Any, ctx: TableContext) -> bytes:
    raw = model.build(value, ctx)
    assert model.parse(raw, ctx) == value
    assert model.build(model.parse(raw, ctx), ctx) == raw
    assert model.size(ctx) == len(raw)
    return raw


@pytest.mark.parametrize("order", ORDERS)
def test_st71_one_byte_flags(order: DataOrder) -> None:
    raw = round_trip(ST71, LOG, ctx_for(order))
    tail = bytes.fromhex("00030004") if order is DataOrder.BIG else bytes.fromhex("03000400")
    assert raw == bytes((0x07, 10, 2, 2, 3)) + tail


def test_st71_switches() -> None:
    two = round_trip(ST71, LOG, ctx_for(DataOrder.LITTLE, log_flags_octets=2))
    assert two[:2] == b"\x07\x00" and len(two) == 10  # S11's reading
    v2 = GenConfig(std_version_no=2)
    extended = ActLog(
        log_flags=LogFlag(0), ext_log_flags=ExtLogFlag.PROGRAM_SIG, nbr_program_tables=5
    )
    raw = round_trip(ST71, extended, TableContext(st0=v2))
    assert raw[-3:] == b"\x02\x05\x00"
    with pytest.raises(LocalProtocolError):  # the 1997 layout has no room for the 2008 fields
        ST71.build(extended, TableContext(st0=ST0_V1))
    assert len(ST71.build(LOG, TableContext(st71_extended=False))) == 9


def test_st72_and_st73_sets() -> None:
    ctx = ctx_for(DataOrder.LITTLE)
    ids = EventsId(
        std_events_supported=frozenset(
            {StdEvent.PRIMARY_POWER_DOWN, StdEvent.PRIMARY_POWER_UP, 47, 79}
        ),
        mfg_events_supported=frozenset({0, 15}),
    )
    raw = round_trip(ST72, ids, ctx)
    assert raw[0] == 0x06 and raw[5] == 0x80 and raw[9] == 0x80 and raw[10:] == b"\x01\x80"
    ctrl = LogCtrl(
        std_events_monitored=frozenset({1, 2}),
        std_tbls_monitored=frozenset({7, 71}),
        std_proc_monitored=frozenset({4}),
        mfg_tbls_monitored=frozenset({0}),
    )
    raw = round_trip(ST73, ctrl, ctx)
    assert len(raw) == 10 + 2 + 10 + 1 + 1 + 0
    assert round_trip(ST75, ctrl, ctx) == raw


def test_st75_events_only_switch() -> None:
    ctx = ctx_for(DataOrder.LITTLE, st75_layout=LogCtrlLayout.EVENTS_ONLY)
    ctrl = LogCtrl(std_events_monitored=frozenset({20}))
    assert len(round_trip(ST75, ctrl, ctx)) == 12
    with pytest.raises(LocalProtocolError):
        ST75.build(LogCtrl(std_tbls_monitored=frozenset({1})), ctx)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("tm", TIME_FORMATS)
def test_st74_history(order: DataOrder, tm: TimeFormat) -> None:
    when = datetime(2024, 2, 29, 23, 59, 1)
    entries = (
        HistoryEntry(
            history_time=when,
            event_number=1,
            history_seq_nbr=100,
            user_id=0,
            code=StdEvent.PRIMARY_POWER_DOWN,
            argument=b"\x00\x00",
        ),
        HistoryEntry(
            history_time=when,
            event_number=2,
            history_seq_nbr=101,
            user_id=1,
            code=9,
            mfg=True,
            argument=b"ab",
        ),
        HistoryEntry(event_number=0, history_seq_nbr=0, argument=b"\x00\x00"),
    )
    value = HistoryLogData(
        list_status=ListStatus.LIST_TYPE,
        nbr_valid_entries=2,
        last_entry_element=1,
        last_entry_seq_nbr=101,
        nbr_unread_entries=2,
        entries=entries,
    )
    raw = round_trip(ST74, value, ctx_for(order, tm))
    ltime = {1: 6, 2: 6, 3: 5, 4: 4}[tm]
    assert len(raw) == 11 + 3 * (ltime + 2 + 2 + 2 + 2 + 2)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("tm", [*TIME_FORMATS, TimeFormat.NONE])
def test_st76_events(order: DataOrder, tm: TimeFormat) -> None:
    when = None if tm is TimeFormat.NONE else datetime(2030, 7, 4, 1, 2, 3)
    entries = tuple(
        EventEntry(
            event_time=when,
            event_number=n,
            event_seq_nbr=1000 + n,
            user_id=n % 2,
            code=code,
            argument=bytes((n, n, n)),
        )
        for n, code in enumerate(
            (
                StdEvent.PRIMARY_POWER_DOWN,
                StdEvent.PRIMARY_POWER_UP,
                StdEvent.TAMPER_ATTEMPT,
                StdEvent.NO_EVENT,
            )
        )
    )
    value = EventLogData(
        nbr_valid_entries=3, last_entry_element=2, last_entry_seq_nbr=1002, entries=entries
    )
    raw = round_trip(ST76, value, ctx_for(order, tm))
    ltime = {0: 0, 1: 6, 2: 6, 3: 5, 4: 4}[tm]
    assert len(raw) == 11 + 4 * (ltime + 2 + 2 + 2 + 2 + 3)


def test_st76_entry_bytes() -> None:
    """One entry byte by byte (TM_FORMAT 2, little-endian, EVENT_NUMBER flag off)."""
    log = ActLog(event_data_length=1, nbr_event_entries=1)
    ctx = TableContext(st71=log)
    raw = bytes.fromhex(
        "02 0100 0000 05000000 0100" + "180315080000" + "3412" + "0000" + "2f00" + "aa"
    )
    data = ST76.parse(raw, ctx)
    assert data.list_status == ListStatus.OVERFLOW
    (entry,) = data.entries
    assert entry == EventEntry(
        event_time=datetime(2024, 3, 21, 8, 0, 0),
        event_seq_nbr=0x1234,
        code=StdEvent.TAMPER_ATTEMPT,
        argument=b"\xaa",
    )
    assert entry.code is StdEvent.TAMPER_ATTEMPT
    assert ST76.build(data, ctx) == raw
    mfg = ST76.parse(raw[:-3] + bytes.fromhex("2f98aa"), ctx).entries[0]
    assert (mfg.code, mfg.mfg, mfg.selector) == (0x2F, True, 9)


def test_logs_need_st71() -> None:
    for model in (ST72, ST73, ST74, ST75, ST76):
        with pytest.raises(LocalProtocolError, match="ST71"):
            model.parse(b"", TableContext())
    with pytest.raises(LocalProtocolError, match="ST0"):
        ST73.parse(b"", TableContext(st71=LOG))


def test_st76_short_data() -> None:
    ctx = ctx_for(DataOrder.LITTLE)
    raw = ST76.build(
        EventLogData(entries=(EventEntry(event_number=0, argument=bytes(3)),) * 4), ctx
    )
    for cut in (0, 5, 11, len(raw) - 1):
        with pytest.raises(RemoteProtocolError):
            ST76.parse(raw[:cut], ctx)


def _times(tm: TimeFormat) -> st.SearchStrategy[datetime | None]:
    if tm in (TimeFormat.BCD, TimeFormat.UINT8):
        low, high = datetime(1990, 1, 1), datetime(2089, 12, 31, 23, 59, 59)
    else:
        low, high = datetime(1970, 1, 1, 0, 0, 1), datetime(2105, 12, 31)
    return st.none() | st.datetimes(low, high).map(lambda d: d.replace(microsecond=0))


@st.composite
def event_logs(draw: st.DrawFn) -> tuple[TableContext, EventLogData]:
    order = draw(st.sampled_from(ORDERS))
    tm = draw(st.sampled_from(TIME_FORMATS))
    numbered = draw(st.booleans())
    arg_len = draw(st.integers(0, 4))
    count = draw(st.integers(0, 5))
    log = ActLog(
        log_flags=LogFlag.EVENT_NUMBER if numbered else LogFlag(0),
        event_data_length=arg_len,
        nbr_event_entries=count,
    )
    u16 = st.integers(0, 0xFFFF)
    entry = st.builds(
        EventEntry,
        event_time=_times(tm),
        event_number=u16 if numbered else st.none(),
        event_seq_nbr=u16,
        user_id=u16,
        code=st.integers(0, 0x7FF),
        mfg=st.booleans(),
        selector=st.integers(0, 15),
        argument=st.binary(min_size=arg_len, max_size=arg_len),
    )
    value = EventLogData(
        list_status=ListStatus(draw(st.integers(0, 255))),
        nbr_valid_entries=draw(u16),
        last_entry_element=draw(u16),
        last_entry_seq_nbr=draw(st.integers(0, 0xFFFFFFFF)),
        nbr_unread_entries=draw(u16),
        entries=tuple(draw(st.lists(entry, min_size=count, max_size=count))),
    )
    ctx = TableContext(format=FormatControl(data_order=order, tm_format=tm), st71=log)
    return ctx, value


@given(event_logs())
@settings(max_examples=150, deadline=None)
def test_st76_hypothesis_round_trip(case: tuple[TableContext, EventLogData]) -> None:
    ctx, value = case
    raw = ST76.build(value, ctx)
    parsed = ST76.parse(raw, ctx)
    assert parsed == value
    assert ST76.build(parsed, ctx) == raw
    assert all(not e.mfg or not isinstance(e.code, StdEvent) for e in parsed.entries)
