"""The struct fast paths of ST3, ST23 and ST52 (codecs/c1219/structs.py) agree with construct.

Both decoders read the same bytes to the same values, both encoders write the same bytes, and
whatever the struct codec cannot handle is decided by construct (same errors as before). Vectors:
protocol-facts.md 4.4 (ST3 bit masks), 4.7 with S13's real-meter ST23 bytes, 4.8 (ST52 in
TM_FORMAT 2 is YY MM DD hh mm ss + qual), and the simulated meter's own tables; then Hypothesis
over byte orders, time formats, NI formats and ST21 dimensions.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.codecs.c1219 import (
    ST3,
    ST23,
    ST52,
    ActRegs,
    Clock,
    CurrentRegData,
    DataBlock,
    DataOrder,
    DemandRecord,
    EdMode,
    EdModeStatus,
    EdStdStatus1,
    FormatControl,
    GenConfig,
    IntFormat,
    NiFormat,
    RegFunc1Flag,
    TableContext,
    TableModel,
    TimeFormat,
)
from amidcc.codecs.errors import LocalProtocolError, RemoteProtocolError

STRUCT_NI = [NiFormat.INT32, NiFormat.INT64, NiFormat.FLOAT32, NiFormat.FLOAT64]
ORDERS = list(DataOrder)


def agree(model: TableModel[Any], raw: bytes, ctx: TableContext) -> Any:
    """Both decoders give the same value for ``raw``, both encoders give ``raw`` back from it."""
    codec = model.struct_codec(ctx)
    assert codec is not None
    layout = model.layout(ctx)
    slow = layout.parse(raw)
    fast = codec.parse(raw)
    assert repr(fast) == repr(slow)  # repr: NaN-safe, and shows the types (1 vs 1.0, enums)
    assert fast == slow or repr(fast).count("nan")
    assert model.parse(raw, ctx) == fast or "nan" in repr(fast)
    assert codec.build(slow) == bytes(layout.build(slow))
    return fast


def regs_ctx(
    order: DataOrder = DataOrder.LITTLE, tm: TimeFormat = TimeFormat.UINT8, **kw: Any
) -> TableContext:
    regs = ActRegs(
        reg_func1_flags=RegFunc1Flag.DATE_TIME_FIELD | RegFunc1Flag.DEMAND_RESET_CTR,
        nbr_summations=2,
        nbr_demands=1,
        nbr_occur=1,
    )
    return TableContext(format=FormatControl(data_order=order, tm_format=tm, **kw), st21=regs)


# -- vectors ---------------------------------------------------------------------------------------


def test_st23_real_meter_bytes_under_both_layouts() -> None:
    # S13 real meter: partial read of ST23, offset 0, 8 bytes -> FB 13 04 02 4D 89 1A 00
    # (protocol-facts.md 4.7); read as two INT32 summations and as one INT64.
    data = bytes.fromhex("FB1304024D891A00")
    two = TableContext(
        format=FormatControl(ni_format1=NiFormat.INT32), st21=ActRegs(nbr_summations=2)
    )
    assert agree(ST23, data, two).tot_data_block.summations == (0x020413FB, 0x001A894D)
    one = TableContext(st21=ActRegs(nbr_summations=1))
    assert agree(ST23, data, one).tot_data_block.summations == (0x001A894D020413FB,)


def test_st3_fact_sheet_masks() -> None:
    # protocol-facts.md 4.4: ED_MODE bit1 TEST_MODE, ED_STD_STATUS1 0x1000 TAMPER_DETECT and
    # 0x0100 LOW_BATTERY (2 bytes in DATA_ORDER), ED_STD_STATUS2, DIM_MFG_STATUS_USED bytes.
    ctx = TableContext(
        format=FormatControl(data_order=DataOrder.BIG), st0=GenConfig(dim_mfg_status_used=2)
    )
    value = agree(ST3, bytes.fromhex("03 1100 00 0102"), ctx)
    assert value == EdModeStatus(
        ed_mode=EdMode.METERING | EdMode.TEST_MODE,
        ed_std_status1=EdStdStatus1.TAMPER_DETECT | EdStdStatus1.LOW_BATTERY,
        ed_mfg_status=b"\x01\x02",
    )


def test_st52_tm_format_2() -> None:
    # protocol-facts.md 4.8: TM_FORMAT 2 is YY MM DD hh mm ss + TIME_DATE_QUAL (here Friday, DST).
    ctx = TableContext(format=FormatControl(tm_format=TimeFormat.UINT8))
    clock = agree(ST52, bytes((24, 3, 15, 12, 34, 56, 0x0D)), ctx)
    assert clock.clock_calendar == datetime(2024, 3, 15, 12, 34, 56)


@pytest.mark.parametrize("number", [3, 23, 52])
def test_the_simulated_meters_tables(number: int) -> None:
    from amidcc.simulators import build_fleet
    from amidcc.simulators.tables import context_for, table_bytes

    now = time.time()
    meter = build_fleet(1, 7, start_time=now - 3600)[0]
    ctx = context_for(meter.config, meter.identity.ed_class)
    raw = table_bytes(meter, number, now)
    assert raw is not None
    agree({3: ST3, 23: ST23, 52: ST52}[number], raw, ctx)


# -- what the struct codecs leave to construct -------------------------------------------------------


@pytest.mark.parametrize(
    "ctx",
    [
        TableContext(
            st21=ActRegs(nbr_summations=1), format=FormatControl(ni_format1=NiFormat.FIXED_BCD6)
        ),
        TableContext(
            st21=ActRegs(nbr_summations=1), format=FormatControl(ni_format1=NiFormat.INT24)
        ),
        TableContext(
            st21=ActRegs(nbr_summations=1),
            format=FormatControl(int_format=IntFormat.SIGN_MAGNITUDE),
        ),
    ],
    ids=["bcd", "int24", "sign-magnitude"],
)
def test_st23_formats_struct_does_not_read_stay_with_construct(ctx: TableContext) -> None:
    assert ST23.struct_codec(ctx) is None


def test_st3_without_st0_stays_with_construct() -> None:
    assert ST3.struct_codec(TableContext()) is None


def test_wrong_sizes_and_values_get_constructs_errors() -> None:
    ctx = regs_ctx()
    raw = ST23.build(_st23_value(ctx, 7, datetime(2024, 1, 2, 3, 4)), ctx)
    for bad in (raw[:-1], raw + b"\x00"):
        with pytest.raises(RemoteProtocolError):
            ST23.parse(bad, ctx)
    with pytest.raises(RemoteProtocolError, match="not a valid date"):
        ST23.parse(raw[:17] + bytes((24, 13, 1, 0, 0)) + raw[22:], ctx)
    too_few = CurrentRegData(nbr_demand_resets=1, tot_data_block=DataBlock(summations=(1,)))
    with pytest.raises(LocalProtocolError):
        ST23.build(too_few, ctx)
    extra = CurrentRegData(
        nbr_demand_resets=1,
        tot_data_block=DataBlock(
            summations=(1, 2),
            demands=(DemandRecord(event_times=(None,), cum_demand=3, demands=(4,)),),
        ),
    )
    with pytest.raises(LocalProtocolError, match="no room"):
        ST23.build(extra, ctx)
    st0 = TableContext(st0=GenConfig(dim_mfg_status_used=2))
    with pytest.raises(LocalProtocolError):
        ST3.build(EdModeStatus(ed_mfg_status=b"\x01"), st0)  # struct's "2s" would pad it


def test_contexts_found_by_identity_and_by_value() -> None:
    a, b = regs_ctx(), regs_ctx()
    assert a is not b and a == b
    assert ST23.struct_codec(a) is ST23.struct_codec(b)  # equal contexts share one codec
    with pytest.raises(LocalProtocolError, match="ST21"):
        ST23.parse(b"", TableContext())
    with pytest.raises(LocalProtocolError, match="ST21"):
        ST23.parse(b"", TableContext())  # a failed lookup is not remembered


# -- Hypothesis ------------------------------------------------------------------------------------


def _times(tm: TimeFormat) -> st.SearchStrategy[datetime | None]:
    if tm is TimeFormat.NONE:
        return st.none()
    if tm in (TimeFormat.BCD, TimeFormat.UINT8):
        low, high = datetime(1990, 1, 1), datetime(2089, 12, 31, 23, 59)
    else:
        low, high = datetime(1970, 1, 1, 0, 1), datetime(2100, 12, 31)
    whole = st.datetimes(low, high).map(lambda d: d.replace(second=0, microsecond=0))
    return st.none() | whole


def _ni(fmt: NiFormat) -> st.SearchStrategy[Any]:
    if fmt is NiFormat.INT32:
        return st.integers(-(2**31), 2**31 - 1)
    if fmt is NiFormat.INT64:
        return st.integers(-(2**63), 2**63 - 1)
    width = 32 if fmt is NiFormat.FLOAT32 else 64
    return st.floats(width=width, allow_nan=False)


def _st23_value(ctx: TableContext, n: int, when: datetime | None) -> CurrentRegData:
    regs = ctx.st21
    assert regs is not None
    demand = DemandRecord(event_times=(when,) * regs.nbr_occur, demands=(n,) * regs.nbr_occur)
    block = DataBlock(summations=(n,) * regs.nbr_summations, demands=(demand,) * regs.nbr_demands)
    return CurrentRegData(nbr_demand_resets=n % 256, tot_data_block=block)


@st.composite
def st23_cases(draw: st.DrawFn) -> tuple[TableContext, CurrentRegData]:
    flags = RegFunc1Flag(draw(st.integers(0, 0x7F)))
    regs = ActRegs(
        reg_func1_flags=flags,
        nbr_summations=draw(st.integers(0, 3)),
        nbr_demands=draw(st.integers(0, 2)),
        nbr_coin_values=draw(st.integers(0, 2)),
        nbr_occur=draw(st.integers(0, 2)),
        nbr_tiers=draw(st.integers(0, 2)),
    )
    ni1, ni2 = draw(st.sampled_from(STRUCT_NI)), draw(st.sampled_from(STRUCT_NI))
    tm = draw(st.sampled_from(list(TimeFormat)))
    order = draw(st.sampled_from(ORDERS))
    ctx = TableContext(
        format=FormatControl(data_order=order, tm_format=tm, ni_format1=ni1, ni_format2=ni2),
        st21=regs,
    )
    occur = regs.nbr_occur

    def block() -> DataBlock:
        def demand() -> DemandRecord:
            times = tuple(draw(_times(tm)) for _ in range(occur))
            return DemandRecord(
                event_times=times if flags & RegFunc1Flag.DATE_TIME_FIELD else None,
                cum_demand=draw(_ni(ni1)) if flags & RegFunc1Flag.CUM_DEMAND else None,
                cont_cum_demand=draw(_ni(ni1)) if flags & RegFunc1Flag.CONT_CUM_DEMAND else None,
                demands=tuple(draw(_ni(ni2)) for _ in range(occur)),
            )

        return DataBlock(
            summations=tuple(draw(_ni(ni1)) for _ in range(regs.nbr_summations)),
            demands=tuple(demand() for _ in range(regs.nbr_demands)),
            coincidents=tuple(
                tuple(draw(_ni(ni2)) for _ in range(occur)) for _ in range(regs.nbr_coin_values)
            ),
        )

    resets = draw(st.integers(0, 255)) if flags & RegFunc1Flag.DEMAND_RESET_CTR else None
    tiers = tuple(block() for _ in range(regs.nbr_tiers))
    return ctx, CurrentRegData(
        nbr_demand_resets=resets, tot_data_block=block(), tier_data_blocks=tiers
    )


@given(st23_cases())
@settings(max_examples=150, deadline=None)
def test_st23_values_agree(case: tuple[TableContext, CurrentRegData]) -> None:
    ctx, value = case
    codec = ST23.struct_codec(ctx)
    assert codec is not None
    raw = codec.build(value)
    assert raw == bytes(ST23.layout(ctx).build(value))
    assert agree(ST23, raw, ctx) == value


@given(st23_cases(), st.data())
@settings(max_examples=100, deadline=None)
def test_st23_any_bytes_agree(
    case: tuple[TableContext, CurrentRegData], data: st.DataObject
) -> None:
    ctx, _ = case
    size = ST23.size(ctx)
    assert size is not None
    raw = data.draw(st.binary(min_size=size, max_size=size))
    try:
        ST23.layout(ctx).parse(raw)
    except Exception:
        with pytest.raises(RemoteProtocolError):
            ST23.parse(raw, ctx)  # construct's verdict, through the model
        return
    agree(ST23, raw, ctx)


@given(st.sampled_from(ORDERS), st.integers(0, 4), st.data())
@settings(max_examples=100, deadline=None)
def test_st3_any_bytes_agree(order: DataOrder, mfg: int, data: st.DataObject) -> None:
    ctx = TableContext(
        format=FormatControl(data_order=order), st0=GenConfig(dim_mfg_status_used=mfg)
    )
    agree(ST3, data.draw(st.binary(min_size=4 + mfg, max_size=4 + mfg)), ctx)


@given(st.sampled_from(ORDERS), st.sampled_from(list(TimeFormat)), st.data())
@settings(max_examples=150, deadline=None)
def test_st52_any_bytes_agree(order: DataOrder, tm: TimeFormat, data: st.DataObject) -> None:
    ctx = TableContext(format=FormatControl(data_order=order, tm_format=tm))
    size = ST52.size(ctx)
    assert size is not None
    raw = data.draw(st.binary(min_size=size, max_size=size))
    try:
        ST52.layout(ctx).parse(raw)
    except Exception:
        with pytest.raises(RemoteProtocolError):
            ST52.parse(raw, ctx)
        return
    agree(ST52, raw, ctx)


@given(st.sampled_from(ORDERS), st.sampled_from(list(TimeFormat)), st.data(), st.integers(0, 255))
@settings(max_examples=100, deadline=None)
def test_st52_values_agree(
    order: DataOrder, tm: TimeFormat, data: st.DataObject, qual: int
) -> None:
    from amidcc.codecs.c1219.timefmt import decode_time_date_qual

    ctx = TableContext(format=FormatControl(data_order=order, tm_format=tm))
    when = data.draw(_times(tm))
    clock = Clock(clock_calendar=when, time_date_qual=decode_time_date_qual(qual))
    codec = ST52.struct_codec(ctx)
    assert codec is not None
    raw = codec.build(clock)
    assert raw == bytes(ST52.layout(ctx).build(clock))
    assert agree(ST52, raw, ctx) == clock
