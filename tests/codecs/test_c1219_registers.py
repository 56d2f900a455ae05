"""ST21, ST22 and ST23: dimensions from ST21, both byte orders, all time formats, known bytes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from amidcc.codecs.c1219 import (
    ST21,
    ST22,
    ST23,
    ActRegs,
    CurrentRegData,
    DataBlock,
    DataOrder,
    DataSelection,
    DemandRecord,
    FormatControl,
    NiFormat,
    RegFunc1Flag,
    RegFunc2Flag,
    TableContext,
    TableModel,
    TimeFormat,
)
from amidcc.codecs.errors import LocalProtocolError, RemoteProtocolError

from .c1219_cases import ORDERS, TIME_FORMATS

REGS = ActRegs(
    reg_func1_flags=RegFunc1Flag.DATE_TIME_FIELD
    | RegFunc1Flag.DEMAND_RESET_CTR
    | RegFunc1Flag.CUM_DEMAND
    | RegFunc1Flag.CONT_CUM_DEMAND,
    reg_func2_flags=RegFunc2Flag.DAILY_SELF_READ | RegFunc2Flag.SELF_READ_DEMAND_RESET_HI,
    nbr_self_reads=2,
    nbr_summations=3,
    nbr_demands=2,
    nbr_coin_values=1,
    nbr_occur=2,
    nbr_tiers=2,
    nbr_present_demands=1,
    nbr_present_values=4,
)


def round_trip(model: TableModel[Any], value: Any, ctx: TableContext) -> bytes:
    raw = model.build(value, ctx)
    assert model.parse(raw, ctx) == value
    assert model.build(model.parse(raw, ctx), ctx) == raw
    assert model.size(ctx) == len(raw)
    return raw


def test_st21_ten_bytes() -> None:
    raw = round_trip(ST21, REGS, TableContext())
    assert raw == bytes((0x36, 0x24, 2, 3, 2, 1, 2, 2, 1, 4))


@pytest.mark.parametrize("order", ORDERS)
def test_st22(order: DataOrder) -> None:
    ctx = TableContext(format=FormatControl(data_order=order), st21=REGS)
    selection = DataSelection(
        summation_select=(1, 2, 3),
        demand_select=(10, 11),
        min_or_max_flags=frozenset({0}),
        coincident_select=(20,),
        coin_demand_assoc=(1,),
    )
    assert round_trip(ST22, selection, ctx) == bytes((1, 2, 3, 10, 11, 0x01, 20, 1))


def _block(base: int, when: datetime | None) -> DataBlock:
    demand = DemandRecord(
        event_times=(when, None),
        cum_demand=base + 1,
        cont_cum_demand=base + 2,
        demands=(base + 3, -(base + 4)),
    )
    return DataBlock(
        summations=(base, base * 10, -base),
        demands=(demand, demand),
        coincidents=((base + 5, base + 6),),
    )


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("tm", TIME_FORMATS)
def test_st23_full_layout(order: DataOrder, tm: TimeFormat) -> None:
    ctx = TableContext(format=FormatControl(data_order=order, tm_format=tm), st21=REGS)
    when = datetime(2024, 5, 1, 7, 15)
    value = CurrentRegData(
        nbr_demand_resets=17,
        tot_data_block=_block(1000, when),
        tier_data_blocks=(_block(100, None), _block(200, when)),
    )
    raw = round_trip(ST23, value, ctx)
    stime = {1: 5, 2: 5, 3: 4, 4: 4}[tm]
    # summations 3x8 (INT64) + demands 2x(2 STIME + 2x8 cum + 2x4 demand) + coincident 2x4
    block = 3 * 8 + 2 * (2 * stime + 16 + 8) + 8
    assert len(raw) == 1 + 3 * block
    assert raw[0] == 17


def test_st23_optional_fields_follow_st21_flags() -> None:
    regs = ActRegs(nbr_summations=1, nbr_demands=1, nbr_occur=1)
    ctx = TableContext(st21=regs)
    value = CurrentRegData(
        tot_data_block=DataBlock(summations=(5,), demands=(DemandRecord(demands=(6,)),))
    )
    assert round_trip(ST23, value, ctx) == (5).to_bytes(8, "little") + (6).to_bytes(4, "little")
    with pytest.raises(LocalProtocolError):
        ST23.build(
            CurrentRegData(
                tot_data_block=DataBlock(
                    summations=(5,), demands=(DemandRecord(cum_demand=1, demands=(6,)),)
                )
            ),
            ctx,
        )


def test_st23_real_meter_partial_bytes() -> None:
    # S13 real meter: partial read of ST23, offset 0, 8 bytes -> FB 13 04 02 4D 89 1A 00.
    # Only raw bytes: the meter's ST21/ST0 are unknown, so read them under two plausible layouts.
    data = bytes.fromhex("FB1304024D891A00")
    two_int32 = TableContext(
        format=FormatControl(ni_format1=NiFormat.INT32), st21=ActRegs(nbr_summations=2)
    )
    assert ST23.parse(data, two_int32).tot_data_block.summations == (0x020413FB, 0x001A894D)
    one_int64 = TableContext(st21=ActRegs(nbr_summations=1))
    assert ST23.parse(data, one_int64).tot_data_block.summations == (0x001A894D020413FB,)
    assert ST23.build(ST23.parse(data, one_int64), one_int64) == data
    dec4 = TableContext(
        format=FormatControl(ni_format1=NiFormat.INT32_DEC4), st21=ActRegs(nbr_summations=2)
    )
    assert ST23.parse(data, dec4).tot_data_block.summations[0] == Decimal("3382.1691")


def test_st23_needs_st21_and_exact_length() -> None:
    with pytest.raises(LocalProtocolError, match="ST21"):
        ST23.parse(b"", TableContext())
    ctx = TableContext(st21=ActRegs(nbr_summations=1))
    with pytest.raises(RemoteProtocolError):
        ST23.parse(bytes(7), ctx)
    with pytest.raises(RemoteProtocolError):
        ST23.parse(bytes(9), ctx)


def test_st23_float_formats() -> None:
    ctx = TableContext(
        format=FormatControl(
            data_order=DataOrder.BIG, ni_format1=NiFormat.FLOAT64, ni_format2=NiFormat.FLOAT32
        ),
        st21=ActRegs(nbr_summations=1, nbr_demands=1, nbr_occur=1),
    )
    value = CurrentRegData(
        tot_data_block=DataBlock(summations=(1.5,), demands=(DemandRecord(demands=(0.25,)),))
    )
    raw = round_trip(ST23, value, ctx)
    assert raw == bytes.fromhex("3ff8000000000000") + bytes.fromhex("3e800000")
