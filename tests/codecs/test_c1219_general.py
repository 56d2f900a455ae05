"""ST0, ST1, ST3, ST5, ST7, ST8 and ST52: round trips at both byte orders, known bytes, Hypothesis."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.codecs.c1219 import (
    ST0,
    ST1,
    ST3,
    ST5,
    ST7,
    ST8,
    ST52,
    Clock,
    DataOrder,
    DayOfWeek,
    DeviceIdent,
    EdMode,
    EdModeStatus,
    EdStdStatus1,
    FormatControl,
    GenConfig,
    GeneralMfgId,
    IdForm,
    ProcedureInitiate,
    ProcedureNumber,
    ProcedureResponse,
    ProcedureResult,
    RemoteResetAction,
    TableContext,
    TableModel,
    TimeDateQual,
    TimeFormat,
    fit_set_dims,
)
from amidcc.codecs.errors import LocalProtocolError, RemoteProtocolError

ORDERS = list(DataOrder)
CLOCK_FORMATS = [
    TimeFormat.BCD,
    TimeFormat.UINT8,
    TimeFormat.UINT32_MINUTES,
    TimeFormat.UINT32_SECONDS,
]


def ctx_for(order: DataOrder, tm: TimeFormat = TimeFormat.UINT8, **kw: Any) -> TableContext:
    return TableContext(format=FormatControl(data_order=order, tm_format=tm, **kw))


def round_trip(model: TableModel[Any], value: Any, ctx: TableContext) -> bytes:
    """build -> parse -> build, and size agrees with the bytes (construct's declarative test)."""
    raw = model.build(value, ctx)
    assert model.parse(raw, ctx) == value
    assert model.build(model.parse(raw, ctx), ctx) == raw
    size = model.size(ctx)
    assert size is None or size == len(raw)
    return raw


# -- ST0 ----------------------------------------------------------------------------------------

GEN_CONFIG = fit_set_dims(
    GenConfig(
        format_control=FormatControl(data_order=DataOrder.BIG, tm_format=TimeFormat.BCD),
        device_class=b"EE  ",
        max_proc_parm_length=10,
        max_resp_data_len=12,
        dim_mfg_status_used=2,
        std_tbls_used=frozenset({0, 1, 3, 5, 7, 8, 21, 23, 52, 61, 62, 63, 64, 71, 76}),
        std_tbls_write=frozenset({7}),
        std_proc_used=frozenset({6, 7, 9, 10}),
        mfg_tbls_used=frozenset({0, 1}),
    )
)


def test_st0_round_trip_and_layout() -> None:
    raw = round_trip(ST0, GEN_CONFIG, TableContext())
    assert raw[:3] == bytes.fromhex(
        "03198b"
    )  # big-endian, ISO 646; TM_FORMAT 1, access 3; INT64/INT32
    assert raw[3:7] == b"EE  "
    assert raw[13:19] == bytes((10, 1, 2, 0, 2, 0))  # DIM_* fields
    sets = raw[19:]
    assert sets[0] == 0b10101011  # tables 0, 1, 3, 5, 7 (bit 7 of byte 0 counts)
    assert sets[8] == 0x81  # tables 64 and 71
    assert len(raw) == 19 + 10 + 1 + 2 + 0 + 10 + 1


def test_st0_sets_use_bit_seven() -> None:
    """SET member n is bit n mod 8 of byte n div 8, all 8 bits (not termineter's 7)."""
    cfg = fit_set_dims(GenConfig(std_tbls_used=frozenset({7, 15}), std_proc_used=frozenset({7})))
    raw = ST0.build(cfg)
    assert raw[19:21] == b"\x80\x80"
    assert ST0.parse(raw).std_tbls_used == {7, 15}


def test_st0_dims_are_checked_on_build() -> None:
    with pytest.raises(LocalProtocolError):
        ST0.build(GenConfig(std_tbls_used=frozenset({9})))  # DIM_STD_TBLS_USED still 0


def test_context_from_st0() -> None:
    ctx = TableContext().with_table(0, ST0.parse(ST0.build(GEN_CONFIG)))
    assert ctx.format.data_order is DataOrder.BIG
    assert ctx.st0 == GEN_CONFIG
    assert ctx.lp_sets_present() == {1}
    assert ctx.with_table(52, object()) is ctx


# -- ST1 (protocol-facts.md 4.3; C12.22 example 8 reads ST1 offset 16 count 16) -----------------


@pytest.mark.parametrize("order", ORDERS)
def test_st1_serial_at_offset_16(order: DataOrder) -> None:
    ident = GeneralMfgId(
        manufacturer="EE  ",
        ed_model="A3RAL   ",
        hw_version_number=1,
        hw_revision_number=2,
        fw_version_number=3,
        fw_revision_number=4,
        mfg_serial_number="MANUFACTURER SN ",
    )
    raw = round_trip(ST1, ident, ctx_for(order))
    assert len(raw) == 32
    # Example 8's read response (S3) carries exactly these 16 bytes.
    assert raw[16:32] == b"MANUFACTURER SN "
    assert raw[:16] == b"EE  A3RAL   \x01\x02\x03\x04"


def test_st1_bcd_serial() -> None:
    ctx = TableContext(format=FormatControl(id_form=IdForm.BCD))
    ident = GeneralMfgId(
        manufacturer="EE  ", ed_model="A3      ", mfg_serial_number="0000001234567890"
    )
    raw = round_trip(ST1, ident, ctx)
    assert len(raw) == 24
    assert raw[16:] == bytes.fromhex("0000001234567890")


def test_st5() -> None:
    raw = round_trip(ST5, DeviceIdent(identification="METER-0001".ljust(20)), TableContext())
    assert raw == b"METER-0001" + b" " * 10
    ctx = TableContext(format=FormatControl(id_form=IdForm.BCD))
    assert len(round_trip(ST5, DeviceIdent(identification="1" * 20), ctx)) == 10


# -- ST3 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
def test_st3_status_word_order(order: DataOrder) -> None:
    status = EdModeStatus(
        ed_mode=EdMode.METERING | EdMode.TEST_MODE,
        ed_std_status1=EdStdStatus1.TAMPER_DETECT | EdStdStatus1.LOW_BATTERY,
        ed_mfg_status=b"\x01\x02",
    )
    ctx = TableContext(format=FormatControl(data_order=order), st0=GEN_CONFIG)
    raw = round_trip(ST3, status, ctx)
    word = b"\x11\x00" if order is DataOrder.BIG else b"\x00\x11"  # 0x1100
    assert raw == b"\x03" + word + b"\x00\x01\x02"


def test_st3_without_st0_takes_the_rest() -> None:
    status = ST3.parse(bytes.fromhex("01 4100 00 aabbcc"))
    assert status.ed_std_status1 == EdStdStatus1.UNPROGRAMMED | EdStdStatus1.CLOCK_ERROR
    assert status.ed_mfg_status == b"\xaa\xbb\xcc"
    assert ST3.size(TableContext()) is None


@given(
    order=st.sampled_from(ORDERS),
    mode=st.integers(0, 255),
    status1=st.integers(0, 0xFFFF),
    status2=st.integers(0, 255),
    mfg=st.binary(max_size=6),
)
@settings(max_examples=150, deadline=None)
def test_st3_hypothesis_round_trip(
    order: DataOrder, mode: int, status1: int, status2: int, mfg: bytes
) -> None:
    value = EdModeStatus(
        ed_mode=EdMode(mode),
        ed_std_status1=EdStdStatus1(status1),
        ed_std_status2=status2,
        ed_mfg_status=mfg,
    )
    st0 = GenConfig(dim_mfg_status_used=len(mfg))
    round_trip(ST3, value, TableContext(format=FormatControl(data_order=order), st0=st0))


# -- ST7 / ST8 (protocol-facts.md 1.3 frames, termineter) --------------------------------------


def test_st7_termineter_vectors() -> None:
    # "EE 00 00 00 00 09 40 00 07 00 03 07 00 03 F6 45 AA": full write ST7 = run SP7, seq 03
    sp7 = ST7.parse(bytes.fromhex("070003"))
    assert sp7 == ProcedureInitiate(number=ProcedureNumber.CLEAR_STD_STATUS_FLAGS, seq_nbr=3)
    # "... 40 00 07 00 04 09 00 81 01 75 DF CA": SP9 demand reset, seq 81, param 01
    sp9 = ST7.parse(bytes.fromhex("09008101"))
    assert sp9.number is ProcedureNumber.REMOTE_RESET
    assert (sp9.seq_nbr, sp9.params) == (0x81, bytes((RemoteResetAction.DEMAND_RESET,)))
    assert ST7.build(sp9) == bytes.fromhex("09008101")


@pytest.mark.parametrize("order", ORDERS)
def test_st7_st8_round_trip(order: DataOrder) -> None:
    ctx = ctx_for(order)
    call = ProcedureInitiate(number=5, mfg=True, selector=3, seq_nbr=9, params=b"\x01\x02")
    raw = round_trip(ST7, call, ctx)
    assert raw[:2] == (b"\x38\x05" if order is DataOrder.BIG else b"\x05\x38")
    answer = ProcedureResponse(
        number=ProcedureNumber.SET_DATE_TIME,
        seq_nbr=9,
        result_code=ProcedureResult.TIMING_CONSTRAINT,
        resp_data=b"\xff",
    )
    raw = round_trip(ST8, answer, ctx)
    assert raw[2:] == b"\x09\x04\xff"
    assert ST8.parse(b"\x0a\x00\x09\x63").result_code == 0x63  # unknown codes are kept


def test_st7_st8_lengths_bounded_by_st0() -> None:
    ctx = TableContext(st0=GenConfig(max_proc_parm_length=1, max_resp_data_len=0))
    assert ST7.build(ProcedureInitiate(number=9, params=b"\x01"), ctx) == b"\x09\x00\x00\x01"
    with pytest.raises(LocalProtocolError, match="PARM"):
        ST7.build(ProcedureInitiate(number=9, params=b"\x01\x02"), ctx)
    with pytest.raises(RemoteProtocolError, match="PARM"):
        ST7.parse(b"\x09\x00\x00\x01\x02", ctx)
    with pytest.raises(RemoteProtocolError, match="RESP_DATA"):
        ST8.parse(b"\x09\x00\x00\x00\xff", ctx)


def test_st7_word_limits() -> None:
    with pytest.raises(LocalProtocolError):
        ST7.build(ProcedureInitiate(number=2048))
    with pytest.raises(LocalProtocolError):
        ST7.build(ProcedureInitiate(number=1, selector=16))


# -- ST52 (protocol-facts.md 4.8) -----------------------------------------------------------------


def test_st52_tm_format_2_is_seven_bytes() -> None:
    clock = Clock(
        clock_calendar=datetime(2024, 3, 15, 12, 34, 56),
        time_date_qual=TimeDateQual(day_of_week=DayOfWeek.FRIDAY, dst=True),
    )
    raw = round_trip(ST52, clock, ctx_for(DataOrder.LITTLE, TimeFormat.UINT8))
    assert raw == bytes((24, 3, 15, 12, 34, 56, 0x0D))


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("tm", CLOCK_FORMATS)
def test_st52_every_time_format(order: DataOrder, tm: TimeFormat) -> None:
    clock = Clock(clock_calendar=datetime(2031, 12, 31, 23, 59, 58), time_date_qual=TimeDateQual())
    raw = round_trip(ST52, clock, ctx_for(order, tm))
    assert len(raw) == {1: 7, 2: 7, 3: 6, 4: 5}[tm]


def test_st52_no_clock() -> None:
    ctx = ctx_for(DataOrder.LITTLE, TimeFormat.NONE)
    assert round_trip(ST52, Clock(clock_calendar=None), ctx) == b"\x07"


def clock_times(tm: TimeFormat) -> st.SearchStrategy[datetime | None]:
    if tm in (TimeFormat.BCD, TimeFormat.UINT8):
        low, high = datetime(1990, 1, 1), datetime(2089, 12, 31, 23, 59, 59)
    else:
        low, high = datetime(1970, 1, 1, 0, 0, 1), datetime(2105, 12, 31)
    whole = st.datetimes(low, high).map(lambda d: d.replace(microsecond=0))
    return st.none() | whole


@given(
    order=st.sampled_from(ORDERS),
    tm=st.sampled_from(CLOCK_FORMATS),
    data=st.data(),
    qual=st.integers(0, 255),
)
@settings(max_examples=200, deadline=None)
def test_st52_hypothesis_round_trip(
    order: DataOrder, tm: TimeFormat, data: st.DataObject, qual: int
) -> None:
    from amidcc.codecs.c1219.timefmt import decode_time_date_qual

    when = data.draw(clock_times(tm))
    clock = Clock(clock_calendar=when, time_date_qual=decode_time_date_qual(qual))
    round_trip(ST52, clock, ctx_for(order, tm))


def test_st52_pivot_switch() -> None:
    raw = bytes((85, 1, 1, 0, 0, 0, 7))
    assert ST52.parse(raw, TableContext()).clock_calendar == datetime(2085, 1, 1)
    assert ST52.parse(raw, TableContext(year_pivot=80)).clock_calendar == datetime(1985, 1, 1)


def test_st52_garbage() -> None:
    for raw in (bytes((24, 2, 30, 0, 0, 0, 0)), b"\x18\x01", bytes(8)):
        with pytest.raises(RemoteProtocolError):
            ST52.parse(raw, TableContext())


def test_tm3_far_future_is_remote_error() -> None:
    ctx = ctx_for(DataOrder.LITTLE, TimeFormat.UINT32_MINUTES)
    with pytest.raises(RemoteProtocolError):
        ST52.parse(b"\xff\xff\xff\xff\x00\x00", ctx)
    assert ST52.parse(b"\x01\x00\x00\x00\x00\x00", ctx).clock_calendar == datetime(
        1970, 1, 1
    ) + timedelta(minutes=1)
