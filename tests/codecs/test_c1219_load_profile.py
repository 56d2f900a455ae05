"""ST61-ST65: load-profile dimensions, control, status and data; extended status; speed."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from amidcc.codecs.c1219 import (
    ST61,
    ST62,
    ST63,
    ST64,
    ST65,
    ActLp,
    ChannelStatus,
    DataOrder,
    ExtendedIntStatus,
    FormatControl,
    GenConfig,
    IntervalCommonFlag,
    IntervalFormat,
    IntFormat,
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
    TableContext,
    TableModel,
    TimeFormat,
    fit_set_dims,
)
from amidcc.codecs.c1219.load_profile import decode_extended_status, encode_extended_status
from amidcc.codecs.errors import LocalProtocolError, RemoteProtocolError

from .c1219_cases import ORDERS, TIME_FORMATS

ALL_FLAGS = (
    LpFlag.BLK_END_READ
    | LpFlag.BLK_END_PULSE
    | LpFlag.SIMPLE_INT_STATUS
    | LpFlag.EXTENDED_INT_STATUS
    | LpFlag.SCALAR_DIVISOR_SET1
)


def round_trip(model: TableModel[Any], value: Any, ctx: TableContext) -> bytes:
    raw = model.build(value, ctx)
    assert model.parse(raw, ctx) == value
    assert model.build(model.parse(raw, ctx), ctx) == raw
    assert model.size(ctx) == len(raw)
    return raw


def act_lp(flags: LpFlag, blocks: int = 2, ints: int = 4, chns: int = 3) -> ActLp:
    dims = LpSetDims(nbr_blks=blocks, nbr_blk_ints=ints, nbr_chns=chns, max_int_time=15)
    return ActLp(
        lp_memory_len=4096,
        lp_flags=flags,
        lp_fmats=LpFormat.INV_UINT16,
        sets=(dims, None, None, None),
    )


def lp_ctrl(fmt: IntervalFormat, chns: int = 3, scalars: bool = True) -> LpCtrl:
    sources = tuple(
        LpSourceSelect(
            chnl_flag=LpChannelFlag.END_RDG, lp_source_select=i, end_blk_rdg_source_select=10 + i
        )
        for i in range(chns)
    )
    ctrl = LpSetCtrl(
        sources=sources,
        int_fmt_cde=fmt,
        scalars=tuple(range(1, chns + 1)) if scalars else None,
        divisors=tuple(range(10, 10 + chns)) if scalars else None,
    )
    return LpCtrl(sets=(ctrl, None, None, None))


# -- ST61, ST62, ST63 ----------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
def test_st61_layout(order: DataOrder) -> None:
    ctx = TableContext(format=FormatControl(data_order=order))
    raw = round_trip(ST61, act_lp(ALL_FLAGS, blocks=45, ints=96, chns=4), ctx)
    assert len(raw) == 7 + 6
    if order is DataOrder.LITTLE:
        assert raw == bytes.fromhex("00100000 700c 02 2d00 6000 04 0f")


def test_lp_sets_follow_st0_tables_used() -> None:
    st0 = fit_set_dims(GenConfig(std_tbls_used=frozenset({61, 62, 63, 64, 65})))
    ctx = TableContext.from_st0(st0)
    assert ctx.lp_sets_present() == {1, 2}
    two = LpSetDims(nbr_blks=1, nbr_blk_ints=2, nbr_chns=1, max_int_time=5)
    value = ActLp(sets=(two, two, None, None))
    assert len(round_trip(ST61, value, ctx)) == 7 + 12
    with pytest.raises(LocalProtocolError):
        ST61.build(act_lp(LpFlag(0)), ctx)  # set 2 missing


@pytest.mark.parametrize("order", ORDERS)
def test_st62_with_and_without_scalars(order: DataOrder) -> None:
    fc = FormatControl(data_order=order)
    ctx = TableContext(format=fc, st61=act_lp(ALL_FLAGS))
    raw = round_trip(ST62, lp_ctrl(IntervalFormat.UINT16), ctx)
    assert len(raw) == 3 * 3 + 1 + 3 * 2 + 3 * 2
    assert raw[9] == 2  # INT_FMT_CDE
    ctx = TableContext(format=fc, st61=act_lp(LpFlag.EXTENDED_INT_STATUS))
    assert len(round_trip(ST62, lp_ctrl(IntervalFormat.INT32, scalars=False), ctx)) == 10
    with pytest.raises(RemoteProtocolError):
        ST62.parse(bytes(9) + b"\x03", ctx)  # INT_FMT_CDE 3 is not one format bit


def test_st63() -> None:
    status = LpSetStatus(
        flags=LpSetStatusFlag.ACTIVE_MODE | LpSetStatusFlag.LIST_TYPE,
        nbr_valid_blocks=45,
        last_block_element=44,
        last_block_seq_nbr=1234,
        nbr_unread_blocks=3,
        nbr_valid_int=17,
    )
    value = LpStatus(sets=(status, None, None, None))
    raw = round_trip(ST63, value, TableContext(format=FormatControl(data_order=DataOrder.BIG)))
    assert raw == bytes.fromhex("24 002d 002c 000004d2 0003 0011")


# -- extended interval status --------------------------------------------------------------------


def test_extended_status_nibbles() -> None:
    # S10 (C12.19 EXTENDED_STATUS_BFLD): byte 0 = common flags in bits 4-7 + channel 1 in bits 0-3;
    # later bytes: even channel in bits 4-7, odd channel in bits 0-3.
    status = ExtendedIntStatus(
        common=IntervalCommonFlag.DST | IntervalCommonFlag.POWER_FAIL,
        channels=(ChannelStatus.OVERFLOW, ChannelStatus.PARTIAL, ChannelStatus.SKIPPED),
    )
    assert encode_extended_status(status, 3) == bytes((0x31, 0x24))
    assert decode_extended_status(bytes((0x31, 0x24)), 3) == status
    four = ExtendedIntStatus(channels=(0, 0, 0, ChannelStatus.TEST_MODE))
    assert encode_extended_status(four, 4) == bytes((0x00, 0x00, 0x50))  # filler nibble 0
    assert decode_extended_status(bytes((0x00, 0x00, 0x5F)), 4) == four  # filler ignored
    assert decode_extended_status(b"\x0f", 1).channels == (15,)  # reserved kept as int


# -- ST64 / ST65 ---------------------------------------------------------------------------------


def make_data(
    act: ActLp, ctrl: LpCtrl, start: datetime, values: Any, status: bool, set_no: int = 1
) -> LpData:
    dims, flags = act.sets[set_no - 1], act.lp_flags
    assert dims is not None
    blocks = []
    for b in range(dims.nbr_blks):
        end = start + timedelta(minutes=dims.max_int_time * dims.nbr_blk_ints * (b + 1))
        readings: tuple[LpEndReading, ...] = ()
        if flags & (LpFlag.BLK_END_READ | LpFlag.BLK_END_PULSE):
            readings = tuple(
                LpEndReading(
                    block_end_read=1000 * b + c if flags & LpFlag.BLK_END_READ else None,
                    block_end_pulse=7 * b + c if flags & LpFlag.BLK_END_PULSE else None,
                )
                for c in range(dims.nbr_chns)
            )
        intervals = tuple(
            LpInterval(
                values=tuple(values(b, i, c) for c in range(dims.nbr_chns)),
                status=ExtendedIntStatus(
                    common=IntervalCommonFlag(i % 16),
                    channels=tuple(ChannelStatus(c % 8) for c in range(dims.nbr_chns)),
                )
                if status
                else None,
            )
            for i in range(dims.nbr_blk_ints)
        )
        simple = (
            frozenset(range(0, dims.nbr_blk_ints, 2)) if flags & LpFlag.SIMPLE_INT_STATUS else None
        )
        blocks.append(
            LpBlock(
                end_time=end, end_readings=readings, simple_int_status=simple, intervals=intervals
            )
        )
    return LpData(blocks=tuple(blocks))


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("tm", TIME_FORMATS)
@pytest.mark.parametrize(
    ("fmt", "values"),
    [
        (IntervalFormat.UINT8, lambda b, i, c: (b + i + c) % 256),
        (IntervalFormat.UINT16, lambda b, i, c: 1000 * b + 10 * i + c),
        (IntervalFormat.UINT32, lambda b, i, c: 70000 * b + i + c),
        (IntervalFormat.INT8, lambda b, i, c: -(b + i + c)),
        (IntervalFormat.INT16, lambda b, i, c: -1000 * b + i - c),
        (IntervalFormat.INT32, lambda b, i, c: -70000 * b + i - c),
        (IntervalFormat.NI_FMAT1, lambda b, i, c: 1 << 40 | b << 8 | i << 4 | c),
        (IntervalFormat.NI_FMAT2, lambda b, i, c: -(b + i + c)),
    ],
)
def test_st64_round_trip(
    order: DataOrder, tm: TimeFormat, fmt: IntervalFormat, values: Any
) -> None:
    act, ctrl = act_lp(ALL_FLAGS), lp_ctrl(fmt)
    ctx = TableContext(format=FormatControl(data_order=order, tm_format=tm), st61=act, st62=ctrl)
    data = make_data(act, ctrl, datetime(2024, 1, 1), values, status=True)
    raw = round_trip(ST64, data, ctx)
    value_size = {1: 1, 2: 2, 4: 4, 8: 1, 16: 2, 32: 4, 64: 8, 128: 4}[fmt]
    stime = {1: 5, 2: 5, 3: 4, 4: 4}[tm]
    block = stime + 3 * (8 + 4) + 1 + 4 * (2 + 3 * value_size)
    assert len(raw) == 2 * block


def test_st64_block_bytes() -> None:
    """One block, byte by byte: end time, end readings, simple status, two intervals."""
    act = ActLp(
        lp_flags=LpFlag.BLK_END_READ | LpFlag.SIMPLE_INT_STATUS | LpFlag.EXTENDED_INT_STATUS,
        sets=(LpSetDims(nbr_blks=1, nbr_blk_ints=2, nbr_chns=1, max_int_time=15), None, None, None),
    )
    ctx = TableContext(
        format=FormatControl(ni_format1=NiFormat.INT32),
        st61=act,
        st62=LpCtrl(
            sets=(
                LpSetCtrl(sources=(LpSourceSelect(),), int_fmt_cde=IntervalFormat.UINT16),
                None,
                None,
                None,
            )
        ),
    )
    raw = bytes.fromhex("1801010c1e" + "e8030000" + "02" + "10" + "0500" + "02" + "0600")
    data = ST64.parse(raw, ctx)
    (block,) = data.blocks
    assert block.end_time == datetime(2024, 1, 1, 12, 30)
    assert block.end_readings == (LpEndReading(block_end_read=1000),)
    assert block.simple_int_status == {1}
    assert block.intervals == (
        LpInterval(
            values=(5,), status=ExtendedIntStatus(common=IntervalCommonFlag.DST, channels=(0,))
        ),
        LpInterval(values=(6,), status=ExtendedIntStatus(channels=(ChannelStatus.PARTIAL,))),
    )
    assert ST64.build(data, ctx) == raw


@pytest.mark.parametrize(
    ("ni_format", "int_format", "value"),
    [
        (NiFormat.INT24, IntFormat.TWOS_COMPLEMENT, -5),
        (NiFormat.INT48, IntFormat.SIGN_MAGNITUDE, -(1 << 40)),
        (NiFormat.FIXED_BCD6, IntFormat.TWOS_COMPLEMENT, Decimal(123456)),
        (NiFormat.INT32_DEC4, IntFormat.ONES_COMPLEMENT, Decimal("-1.5")),
        (NiFormat.FLOAT64, IntFormat.TWOS_COMPLEMENT, 2.5),
    ],
)
def test_st64_slow_path_formats(ni_format: NiFormat, int_format: IntFormat, value: Any) -> None:
    act = act_lp(LpFlag.EXTENDED_INT_STATUS)
    ctx = TableContext(
        format=FormatControl(ni_format2=ni_format, int_format=int_format),
        st61=act,
        st62=lp_ctrl(IntervalFormat.NI_FMAT2, scalars=False),
    )
    round_trip(
        ST64,
        make_data(
            act,
            lp_ctrl(IntervalFormat.NI_FMAT2),
            datetime(2024, 1, 1),
            lambda b, i, c: value,
            status=True,
        ),
        ctx,
    )


def test_st64_ones_complement_int16() -> None:
    act = act_lp(LpFlag(0))
    ctx = TableContext(
        format=FormatControl(int_format=IntFormat.ONES_COMPLEMENT),
        st61=act,
        st62=lp_ctrl(IntervalFormat.INT16),
    )
    data = make_data(
        act, lp_ctrl(IntervalFormat.INT16), datetime(2024, 1, 1), lambda b, i, c: -i, status=False
    )
    raw = round_trip(ST64, data, ctx)
    assert raw[5 + 6 : 5 + 8] == b"\xfe\xff"  # interval 1, channel 0: -1 in one's complement


def test_st65_uses_set_two() -> None:
    dims1 = LpSetDims(nbr_blks=1, nbr_blk_ints=1, nbr_chns=1, max_int_time=60)
    dims2 = LpSetDims(nbr_blks=1, nbr_blk_ints=3, nbr_chns=2, max_int_time=5)
    act = ActLp(sets=(dims1, dims2, None, None))
    ctrl1 = LpSetCtrl(sources=(LpSourceSelect(),), int_fmt_cde=IntervalFormat.UINT8)
    ctrl2 = LpSetCtrl(
        sources=(LpSourceSelect(), LpSourceSelect()), int_fmt_cde=IntervalFormat.UINT32
    )
    ctx = TableContext(
        lp_sets=frozenset({1, 2}), st61=act, st62=LpCtrl(sets=(ctrl1, ctrl2, None, None))
    )
    data = make_data(
        act, LpCtrl(), datetime(2024, 1, 1), lambda b, i, c: i * 10 + c, status=False, set_no=2
    )
    assert len(round_trip(ST65, data, ctx)) == 5 + 3 * 8
    with pytest.raises(LocalProtocolError, match="set 2"):
        ST65.parse(b"", TableContext(st61=act_lp(LpFlag(0)), st62=lp_ctrl(IntervalFormat.UINT8)))


def test_st64_refuses_mismatched_values() -> None:
    act, ctrl = act_lp(LpFlag.EXTENDED_INT_STATUS), lp_ctrl(IntervalFormat.UINT8)
    ctx = TableContext(st61=act, st62=ctrl)
    good = make_data(act, ctrl, datetime(2024, 1, 1), lambda b, i, c: 1, status=True)
    no_status = make_data(act, ctrl, datetime(2024, 1, 1), lambda b, i, c: 1, status=False)
    too_big = make_data(act, ctrl, datetime(2024, 1, 1), lambda b, i, c: 256, status=True)
    ST64.build(good, ctx)
    for bad in (no_status, too_big):
        with pytest.raises(LocalProtocolError):
            ST64.build(bad, ctx)
    with pytest.raises(LocalProtocolError, match="ST62"):
        ST64.build(good, TableContext(st61=act))


def test_st64_45_days_of_15_minute_data() -> None:
    """45 days x 96 intervals x 4 channels with every block option: the struct fast path at scale.

    Speed is measured outside the suite (about 7 ms to decode here), never asserted.
    """
    rng = random.Random(1)
    act = act_lp(ALL_FLAGS, blocks=45, ints=96, chns=4)
    ctrl = lp_ctrl(IntervalFormat.UINT16, chns=4)
    ctx = TableContext(st61=act, st62=ctrl)
    data = make_data(
        act, ctrl, datetime(2024, 1, 1), lambda b, i, c: rng.randrange(65536), status=True
    )
    raw = ST64.build(data, ctx)
    assert len(raw) == 45 * (5 + 4 * 12 + 12 + 96 * (3 + 4 * 2))
    decoded = ST64.parse(raw, ctx)
    assert decoded == data
    assert sum(len(block.intervals) for block in decoded.blocks) == 4320
