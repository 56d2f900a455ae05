"""Decade 6: load profile. ST61 ACT_LP_TBL, ST62 LP_CTRL_TBL, ST63 LP_STATUS_TBL, ST64-ST67 data.

protocol-facts.md 4.9 [M], checked against the C12.19 type definitions quoted in S10's header:

* ST61-ST63 hold one record per load-profile set present; a set n is present when ST0 lists its data
  table (63 + n) as used (:meth:`TableContext.lp_sets_present`).
* ST64 (set 1; ST65-ST67 for sets 2-4) is NBR_BLKS blocks of: BLK_END_TIME (STIME_DATE),
  END_READINGS (per channel: [BLOCK_END_READ NI_FMAT1] [BLOCK_END_PULSE UINT32]), [SIMPLE_INT_STATUS
  SET], then NBR_BLK_INTS interval records of [EXTENDED_INT_STATUS] + one value per channel in
  ST62's INT_FMT_CDE.
* EXTENDED_INT_STATUS is (NBR_CHNS / 2) + 1 bytes of nibbles, high nibble first: nibble 0 (the high
  nibble of byte 0) holds the common flags, nibble k the status of channel k. S10's header and a
  C12.19-2008 firmware (both found by search) agree; the filler nibble of an even channel count is
  written 0 and ignored on read.

Interval records are decoded with :mod:`struct` (``iter_unpack``) rather than per-field construct
objects: a 45-day, 15-minute profile is 4320 records, and construct's per-field cost (compiled or
not, since the records become dataclasses) would be tens of milliseconds.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from construct import Construct, ExprAdapter, Struct, stream_read, stream_write

from ..errors import LocalProtocolError, RemoteProtocolError
from .context import TableContext
from .fields import Layout, array, flags, ni, record, set_field, stime, u8, uint
from .formats import DataOrder, IntFormat, NiFormat
from .model import TableModel
from .numeric import NiValue, decode_ni, decode_signed, encode_ni, encode_signed, ni_size

__all__ = [
    "ST61",
    "ST62",
    "ST63",
    "ST64",
    "ST65",
    "ST66",
    "ST67",
    "ActLp",
    "ChannelStatus",
    "ExtendedIntStatus",
    "IntervalCommonFlag",
    "IntervalFormat",
    "LpBlock",
    "LpChannelFlag",
    "LpCtrl",
    "LpData",
    "LpEndReading",
    "LpFlag",
    "LpFormat",
    "LpInterval",
    "LpSetCtrl",
    "LpSetDims",
    "LpSetStatus",
    "LpSetStatusFlag",
    "LpSourceSelect",
    "LpStatus",
    "decode_extended_status",
    "encode_extended_status",
]

_NO_SETS: tuple[None, None, None, None] = (None, None, None, None)


class LpFlag(enum.IntFlag):
    """ST61 LP_FLAGS (2 bytes)."""

    SET1_INHIBIT_OVF = 1 << 0
    SET2_INHIBIT_OVF = 1 << 1
    SET3_INHIBIT_OVF = 1 << 2
    SET4_INHIBIT_OVF = 1 << 3
    BLK_END_READ = 1 << 4  #: blocks carry BLOCK_END_READ per channel
    BLK_END_PULSE = 1 << 5  #: blocks carry BLOCK_END_PULSE per channel
    SCALAR_DIVISOR_SET1 = 1 << 6  #: ST62 set 1 carries scalars and divisors
    SCALAR_DIVISOR_SET2 = 1 << 7
    SCALAR_DIVISOR_SET3 = 1 << 8
    SCALAR_DIVISOR_SET4 = 1 << 9
    EXTENDED_INT_STATUS = 1 << 10  #: intervals carry EXTENDED_INT_STATUS
    SIMPLE_INT_STATUS = 1 << 11  #: blocks carry SIMPLE_INT_STATUS
    BLK_END_RD_INDICATOR = 1 << 12


class LpFormat(enum.IntFlag):
    """ST61 LP_FMATS: interval formats the device can use."""

    INV_UINT8 = 0x01
    INV_UINT16 = 0x02
    INV_UINT32 = 0x04
    INV_INT8 = 0x08
    INV_INT16 = 0x10
    INV_INT32 = 0x20
    INV_NI_FMAT1 = 0x40
    INV_NI_FMAT2 = 0x80


class IntervalFormat(enum.IntEnum):
    """ST62 INT_FMT_CDE: the format of every interval value of a set."""

    UINT8 = 1
    UINT16 = 2
    UINT32 = 4
    INT8 = 8
    INT16 = 16
    INT32 = 32
    NI_FMAT1 = 64
    NI_FMAT2 = 128


class LpChannelFlag(enum.IntFlag):
    """ST62 CHNL_FLAG."""

    END_RDG = 0x01  #: the channel has an associated end reading


class LpSetStatusFlag(enum.IntFlag):
    """ST63 LP_SET_STATUS_FLAGS."""

    ORDER = 0x01  #: blocks are transported newest first
    OVERFLOW = 0x02
    LIST_TYPE = 0x04  #: circular list (else FIFO)
    BLOCK_INHIBIT_OVERFLOW = 0x08
    INTERVAL_ORDER = 0x10  #: intervals within a block newest first
    ACTIVE_MODE = 0x20  #: the set is collecting data
    TEST_MODE = 0x40  #: the set is collecting test-mode data


class IntervalCommonFlag(enum.IntFlag):
    """EXTENDED_INT_STATUS common nibble."""

    DST = 0x1
    POWER_FAIL = 0x2  #: power failed during the interval
    CLOCK_SET_FORWARD = 0x4
    CLOCK_SET_BACKWARD = 0x8


class ChannelStatus(enum.IntEnum):
    """EXTENDED_INT_STATUS channel nibble (8-15 reserved; kept as plain ints)."""

    NONE = 0
    OVERFLOW = 1
    PARTIAL = 2  #: partial interval due to a common state
    LONG = 3  #: long interval due to a common state
    SKIPPED = 4  #: skipped interval; INT_DATA is 0
    TEST_MODE = 5  #: test-mode data
    CONFIG_CHANGED = 6  #: configuration changed during the interval (2008)
    RECORDING_STOPPED = 7  #: load-profile recording stopped (2008)


# -- ST61 -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LpSetDims:
    """Dimensions of one load-profile set (part of ST61)."""

    nbr_blks: int
    """NBR_BLKS_SETn: blocks in the data table."""
    nbr_blk_ints: int
    """NBR_BLK_INTS_SETn: intervals per block."""
    nbr_chns: int
    """NBR_CHNS_SETn: channels."""
    max_int_time: int
    """MAX_INT_TIME_SETn: interval length in minutes."""


@dataclass(frozen=True, kw_only=True)
class ActLp:
    """ST61 ACT_LP_TBL (same layout as ST60)."""

    lp_memory_len: int = 0
    """LP_MEMORY_LEN: octets of load-profile storage."""
    lp_flags: LpFlag = LpFlag(0)
    """LP_FLAGS."""
    lp_fmats: LpFormat = LpFormat(0)
    """LP_FMATS."""
    sets: tuple[LpSetDims | None, LpSetDims | None, LpSetDims | None, LpSetDims | None] = _NO_SETS
    """Dimensions of sets 1-4; None for a set that is not present."""


def _sets(ctx: TableContext, table: str, sub: Callable[[int], Layout]) -> Layout:
    """One record per present load-profile set, as a 4-tuple with None for absent sets."""
    present = sorted(ctx.lp_sets_present())
    struct_ = Struct(*(f"set{n}" / sub(n) for n in present))

    def decode(obj: dict[str, Any], _: object) -> tuple[Any, ...]:
        return tuple(obj.get(f"set{n}") for n in range(1, 5))

    def encode(obj: tuple[Any, ...], _: object) -> dict[str, Any]:
        if len(obj) != 4:
            raise LocalProtocolError(f"{table} sets must be a 4-tuple")
        for n in range(1, 5):
            if (obj[n - 1] is None) == (n in present):
                state = "missing" if n in present else "not in ST0's tables used"
                raise LocalProtocolError(f"{table} set {n} is {state}")
        return {f"set{n}": obj[n - 1] for n in present}

    return ExprAdapter(struct_, decode, encode)


def _st61_layout(ctx: TableContext) -> Layout:
    dims = record(
        LpSetDims,
        ("nbr_blks", uint(2, ctx)),
        ("nbr_blk_ints", uint(2, ctx)),
        ("nbr_chns", u8()),
        ("max_int_time", u8()),
    )
    return record(
        ActLp,
        ("lp_memory_len", uint(4, ctx)),
        ("lp_flags", flags(LpFlag, uint(2, ctx))),
        ("lp_fmats", flags(LpFormat, u8())),
        ("sets", _sets(ctx, "ST61", lambda n: dims)),
    )


ST61: TableModel[ActLp] = TableModel(61, "ACT_LP_TBL", _st61_layout, ActLp)


def _set_dims(ctx: TableContext, n: int, table: str) -> tuple[ActLp, LpSetDims]:
    act = ctx.require(ctx.st61, "ST61", table)
    dims = act.sets[n - 1]
    if dims is None:
        raise LocalProtocolError(f"{table} needs load-profile set {n}, which ST61 does not define")
    return act, dims


# -- ST62 -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LpSourceSelect:
    """LP_SOURCE_SEL_RCD: where one channel's data comes from."""

    chnl_flag: LpChannelFlag = LpChannelFlag(0)
    """CHNL_FLAG."""
    lp_source_select: int = 0
    """LP_SOURCE_SELECT: ST16 index of the interval data."""
    end_blk_rdg_source_select: int = 0
    """END_BLK_RDG_SOURCE_SELECT: ST16 index of the block-end reading."""


@dataclass(frozen=True, kw_only=True)
class LpSetCtrl:
    """One set's part of ST62."""

    sources: tuple[LpSourceSelect, ...] = ()
    """LP_SEL_SETn, one per channel."""
    int_fmt_cde: IntervalFormat = IntervalFormat.UINT16
    """INT_FMT_CDEn: format of the interval values."""
    scalars: tuple[int, ...] | None = None
    """SCALARS_SETn (UINT16 per channel), present with SCALAR_DIVISOR_FLAG_SETn."""
    divisors: tuple[int, ...] | None = None
    """DIVISOR_SETn (UINT16 per channel), present with SCALAR_DIVISOR_FLAG_SETn."""


@dataclass(frozen=True, kw_only=True)
class LpCtrl:
    """ST62 LP_CTRL_TBL."""

    sets: tuple[LpSetCtrl | None, LpSetCtrl | None, LpSetCtrl | None, LpSetCtrl | None] = _NO_SETS
    """Control of sets 1-4; None for a set that is not present."""


def _interval_format_field() -> Layout:
    def decode(obj: int, _: object) -> IntervalFormat:
        try:
            return IntervalFormat(obj)
        except ValueError:
            raise RemoteProtocolError(f"INT_FMT_CDE {obj} is not a single format bit") from None

    return ExprAdapter(u8(), decode, lambda obj, _: int(obj))


def _st62_set(ctx: TableContext, n: int) -> Layout:
    act, dims = _set_dims(ctx, n, "ST62")
    source = record(
        LpSourceSelect,
        ("chnl_flag", flags(LpChannelFlag, u8())),
        ("lp_source_select", u8()),
        ("end_blk_rdg_source_select", u8()),
    )
    fields: list[tuple[str, Layout]] = [
        ("sources", array(dims.nbr_chns, source)),
        ("int_fmt_cde", _interval_format_field()),
    ]
    if act.lp_flags & (LpFlag.SCALAR_DIVISOR_SET1 << (n - 1)):
        fields.append(("scalars", array(dims.nbr_chns, uint(2, ctx))))
        fields.append(("divisors", array(dims.nbr_chns, uint(2, ctx))))
    return record(LpSetCtrl, *fields)


def _st62_layout(ctx: TableContext) -> Layout:
    return record(LpCtrl, ("sets", _sets(ctx, "ST62", lambda n: _st62_set(ctx, n))))


ST62: TableModel[LpCtrl] = TableModel(62, "LP_CTRL_TBL", _st62_layout, LpCtrl)


# -- ST63 -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LpSetStatus:
    """LP_SET_STATUS_RCD: one set's part of ST63 (13 bytes)."""

    flags: LpSetStatusFlag = LpSetStatusFlag(0)
    """LP_SET_STATUS_FLAGS."""
    nbr_valid_blocks: int = 0
    """NBR_VALID_BLOCKS."""
    last_block_element: int = 0
    """LAST_BLOCK_ELEMENT: array index of the newest valid block."""
    last_block_seq_nbr: int = 0
    """LAST_BLOCK_SEQ_NBR."""
    nbr_unread_blocks: int = 0
    """NBR_UNREAD_BLOCKS."""
    nbr_valid_int: int = 0
    """NBR_VALID_INT: valid intervals in the newest block."""


@dataclass(frozen=True, kw_only=True)
class LpStatus:
    """ST63 LP_STATUS_TBL."""

    sets: tuple[LpSetStatus | None, LpSetStatus | None, LpSetStatus | None, LpSetStatus | None] = (
        _NO_SETS
    )
    """Status of sets 1-4; None for a set that is not present."""


def _st63_layout(ctx: TableContext) -> Layout:
    status = record(
        LpSetStatus,
        ("flags", flags(LpSetStatusFlag, u8())),
        ("nbr_valid_blocks", uint(2, ctx)),
        ("last_block_element", uint(2, ctx)),
        ("last_block_seq_nbr", uint(4, ctx)),
        ("nbr_unread_blocks", uint(2, ctx)),
        ("nbr_valid_int", uint(2, ctx)),
    )
    return record(LpStatus, ("sets", _sets(ctx, "ST63", lambda n: status)))


ST63: TableModel[LpStatus] = TableModel(63, "LP_STATUS_TBL", _st63_layout, LpStatus)


# -- ST64-ST67: extended interval status ------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ExtendedIntStatus:
    """EXTENDED_INT_STATUS of one interval."""

    common: IntervalCommonFlag = IntervalCommonFlag(0)
    """Common flags (DST, power fail, clock set forward/backward)."""
    channels: tuple[int, ...] = ()
    """Per-channel status: :class:`ChannelStatus` members, reserved values as ints."""


def _channel_status(nibble: int) -> int:
    return ChannelStatus(nibble) if nibble < 8 else nibble


def decode_extended_status(raw: bytes, nbr_chns: int) -> ExtendedIntStatus:
    """Decode (NBR_CHNS / 2) + 1 bytes of EXTENDED_INT_STATUS."""
    nibbles = [b >> s & 0x0F for b in raw for s in (4, 0)]
    return ExtendedIntStatus(
        common=IntervalCommonFlag(nibbles[0]),
        channels=tuple(_channel_status(x) for x in nibbles[1 : nbr_chns + 1]),
    )


def encode_extended_status(status: ExtendedIntStatus, nbr_chns: int) -> bytes:
    """Encode EXTENDED_INT_STATUS for ``nbr_chns`` channels (filler nibble 0)."""
    if len(status.channels) != nbr_chns:
        raise LocalProtocolError(
            f"extended status needs {nbr_chns} channels, got {len(status.channels)}"
        )
    nibbles = [int(status.common), *(int(c) for c in status.channels)]
    if any(not 0 <= x <= 0x0F for x in nibbles):
        raise LocalProtocolError("extended status nibbles must be 0-15")
    nibbles += [0] * (2 * (nbr_chns // 2 + 1) - len(nibbles))
    return bytes(hi << 4 | lo for hi, lo in zip(nibbles[::2], nibbles[1::2], strict=True))


# -- ST64-ST67: data --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LpInterval:
    """INT_SETn_RCD: one interval."""

    values: tuple[NiValue, ...]
    """INT_DATA, one value per channel."""
    status: ExtendedIntStatus | None = None
    """EXTENDED_INT_STATUS, present with LP_FLAGS.EXTENDED_INT_STATUS."""


@dataclass(frozen=True, kw_only=True)
class LpEndReading:
    """READINGS_RCD: one channel's block-end reading."""

    block_end_read: NiValue | None = None
    """BLOCK_END_READ (NI_FMAT1), present with BLK_END_READ."""
    block_end_pulse: int | None = None
    """BLOCK_END_PULSE (UINT32), present with BLK_END_PULSE."""


@dataclass(frozen=True, kw_only=True)
class LpBlock:
    """LP_BLKn_DAT_RCD: one block of intervals."""

    end_time: datetime | None
    """BLK_END_TIME (STIME_DATE)."""
    end_readings: tuple[LpEndReading, ...] = ()
    """END_READINGS, one per channel; empty when neither BLK_END_READ nor BLK_END_PULSE is set."""
    simple_int_status: frozenset[int] | None = None
    """SIMPLE_INT_STATUS: indexes of valid intervals, present with SIMPLE_INT_STATUS."""
    intervals: tuple[LpInterval, ...] = ()
    """LP_INT, NBR_BLK_INTS intervals."""


@dataclass(frozen=True, kw_only=True)
class LpData:
    """ST64-ST67 LP_DATA_SETn_TBL."""

    blocks: tuple[LpBlock, ...] = ()
    """LP_DATA_SETn: NBR_BLKS blocks (valid or not; ST63 says which)."""


@dataclass(frozen=True)
class _ValueCodec:
    """How to read one interval value: a struct code, or a per-value fallback."""

    size: int
    code: str | None
    decode: Callable[[bytes], NiValue]
    encode: Callable[[NiValue], bytes]


_INT_CODES = {
    IntervalFormat.UINT8: (1, "B", False),
    IntervalFormat.UINT16: (2, "H", False),
    IntervalFormat.UINT32: (4, "I", False),
    IntervalFormat.INT8: (1, "b", True),
    IntervalFormat.INT16: (2, "h", True),
    IntervalFormat.INT32: (4, "i", True),
}
_NI_CODES = {NiFormat.FLOAT64: "d", NiFormat.FLOAT32: "f", NiFormat.INT32: "i", NiFormat.INT64: "q"}


def _value_codec(fmt: IntervalFormat, ctx: TableContext) -> _ValueCodec:
    fc = ctx.format
    order, twos = fc.data_order, fc.int_format is IntFormat.TWOS_COMPLEMENT
    if fmt in _INT_CODES:
        size, code, signed = _INT_CODES[fmt]
        if signed and not twos:
            return _ValueCodec(
                size,
                None,
                lambda raw: decode_signed(raw, order, fc.int_format),
                lambda v: encode_signed(int(v), size, order, fc.int_format),
            )
        return _ValueCodec(size, code, _never_decode, _never_encode)
    ni_fmt = fc.ni_format1 if fmt is IntervalFormat.NI_FMAT1 else fc.ni_format2
    size = ni_size(ni_fmt, bcd_digits=ctx.fixed_bcd_digits)
    fast = _NI_CODES.get(ni_fmt)
    if fast is not None and (twos or fast in "df"):
        return _ValueCodec(size, fast, _never_decode, _never_encode)
    return _ValueCodec(
        size,
        None,
        lambda raw: decode_ni(raw, ni_fmt, fc),
        lambda v: encode_ni(v, ni_fmt, fc, size),
    )


def _never_decode(raw: bytes) -> NiValue:  # pragma: no cover - struct path only
    raise AssertionError("struct-coded values are not decoded one by one")


def _never_encode(value: NiValue) -> bytes:  # pragma: no cover - struct path only
    raise AssertionError("struct-coded values are not encoded one by one")


class _Intervals(Construct):  # type: ignore[misc]
    """NBR_BLK_INTS interval records, decoded in bulk with :mod:`struct`."""

    def __init__(
        self, count: int, nbr_chns: int, status_len: int, codec: _ValueCodec, order: DataOrder
    ) -> None:
        super().__init__()
        self.count, self.nbr_chns, self.status_len, self.codec = count, nbr_chns, status_len, codec
        self.record_size = status_len + nbr_chns * codec.size
        prefix = "<" if order is DataOrder.LITTLE else ">"
        head = f"{status_len}s" if status_len else ""
        body = f"{nbr_chns}{codec.code}" if codec.code else f"{nbr_chns * codec.size}s"
        self.row = struct.Struct(prefix + head + body)

    def _parse(self, stream: Any, context: Any, path: Any) -> tuple[LpInterval, ...]:
        raw = stream_read(stream, self.count * self.record_size, path)
        rows = self.row.iter_unpack(raw)
        if self.codec.code is None:
            rows = (self._split(row) for row in rows)
        if not self.status_len:
            return tuple(LpInterval(values=row) for row in rows)
        cache: dict[bytes, ExtendedIntStatus] = {}
        intervals = []
        for row in rows:
            status = cache.get(row[0])
            if status is None:
                status = cache[row[0]] = decode_extended_status(row[0], self.nbr_chns)
            intervals.append(LpInterval(values=row[1:], status=status))
        return tuple(intervals)

    def _split(self, row: tuple[bytes, ...]) -> tuple[Any, ...]:
        blob, size, decode = row[-1], self.codec.size, self.codec.decode
        values = tuple(decode(blob[i : i + size]) for i in range(0, len(blob), size))
        return (*row[:-1], *values)

    def _build(self, obj: tuple[LpInterval, ...], stream: Any, context: Any, path: Any) -> Any:
        if len(obj) != self.count:
            raise LocalProtocolError(f"a block needs {self.count} intervals, got {len(obj)}")
        out = bytearray()
        statuses: dict[ExtendedIntStatus, bytes] = {}
        for interval in obj:
            out += self._pack(interval, statuses)
        stream_write(stream, bytes(out), len(out), path)
        return obj

    def _pack(self, interval: LpInterval, statuses: dict[ExtendedIntStatus, bytes]) -> bytes:
        if len(interval.values) != self.nbr_chns:
            raise LocalProtocolError(
                f"an interval needs {self.nbr_chns} values, got {len(interval.values)}"
            )
        if (interval.status is None) == bool(self.status_len):
            raise LocalProtocolError(
                "interval status must be given exactly when LP_FLAGS asks for it"
            )
        head: tuple[bytes, ...] = ()
        if interval.status is not None:
            raw = statuses.get(interval.status)
            if raw is None:
                raw = statuses[interval.status] = encode_extended_status(
                    interval.status, self.nbr_chns
                )
            head = (raw,)
        if self.codec.code is None:
            return self.row.pack(*head, b"".join(self.codec.encode(v) for v in interval.values))
        return self.row.pack(*head, *interval.values)

    def _sizeof(self, context: Any, path: Any) -> int:
        return self.count * self.record_size


def _lp_data_layout(ctx: TableContext, n: int) -> Layout:
    table = f"ST{63 + n}"
    act, dims = _set_dims(ctx, n, table)
    ctrl = ctx.require(ctx.st62, "ST62", table).sets[n - 1]
    if ctrl is None:
        raise LocalProtocolError(f"{table} needs load-profile set {n} in ST62")
    lp_flags = act.lp_flags
    fields: list[tuple[str, Layout]] = [("end_time", stime(ctx))]
    end_fields: list[tuple[str, Layout]] = []
    if lp_flags & LpFlag.BLK_END_READ:
        end_fields.append(("block_end_read", ni(1, ctx)))
    if lp_flags & LpFlag.BLK_END_PULSE:
        end_fields.append(("block_end_pulse", uint(4, ctx)))
    if end_fields:
        fields.append(("end_readings", array(dims.nbr_chns, record(LpEndReading, *end_fields))))
    if lp_flags & LpFlag.SIMPLE_INT_STATUS:
        fields.append(("simple_int_status", set_field((dims.nbr_blk_ints + 7) // 8)))
    status_len = dims.nbr_chns // 2 + 1 if lp_flags & LpFlag.EXTENDED_INT_STATUS else 0
    codec = _value_codec(ctrl.int_fmt_cde, ctx)
    intervals = _Intervals(
        dims.nbr_blk_ints, dims.nbr_chns, status_len, codec, ctx.format.data_order
    )
    fields.append(("intervals", intervals))
    return record(LpData, ("blocks", array(dims.nbr_blks, record(LpBlock, *fields))))


def _lp_data_model(n: int) -> TableModel[LpData]:
    return TableModel(63 + n, f"LP_DATA_SET{n}_TBL", lambda ctx: _lp_data_layout(ctx, n), LpData)


ST64 = _lp_data_model(1)
ST65 = _lp_data_model(2)
ST66 = _lp_data_model(3)
ST67 = _lp_data_model(4)
