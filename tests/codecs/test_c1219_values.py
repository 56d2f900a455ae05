"""C12.19 value codecs: format controls, INT_FORMAT, BCD, NI_FMAT, time fields, SETs, characters."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.codecs.c1219.context import TableContext
from amidcc.codecs.c1219.fields import chars, decode_set, encode_set, ident, set_octets
from amidcc.codecs.c1219.formats import (
    CharFormat,
    DataOrder,
    FormatControl,
    IdForm,
    IntFormat,
    NiFormat,
    TimeFormat,
    format_control_from_bytes,
    format_control_to_bytes,
)
from amidcc.codecs.c1219.numeric import (
    bcd_decode,
    bcd_encode,
    decode_ni,
    decode_signed,
    encode_ni,
    encode_signed,
    ni_size,
)
from amidcc.codecs.c1219.timefmt import (
    DayOfWeek,
    TimeDateQual,
    decode_time,
    decode_time_date_qual,
    encode_time,
    encode_time_date_qual,
    time_size,
)
from amidcc.codecs.errors import LocalProtocolError, RemoteProtocolError

LITTLE, BIG = DataOrder.LITTLE, DataOrder.BIG

# -- format controls (protocol-facts.md 4.2) ---------------------------------------------------


def test_format_control_bits() -> None:
    # FC1 = 0x03: data order MSB first, CHAR_FORMAT 1; FC2 = 0x5A: TM_FORMAT 2, access 3, ID_FORM 0,
    # INT_FORMAT 1; FC3 = 0x8B: NI_FORMAT1 11 (INT64), NI_FORMAT2 8 (INT32).
    fc = format_control_from_bytes(bytes.fromhex("035a8b"))
    assert fc == FormatControl(
        data_order=BIG,
        char_format=CharFormat.ISO_646,
        tm_format=TimeFormat.UINT8,
        data_access_method=3,  # type: ignore[arg-type]
        id_form=IdForm.CHARS,
        int_format=IntFormat.ONES_COMPLEMENT,
        ni_format1=NiFormat.INT64,
        ni_format2=NiFormat.INT32,
    )
    assert format_control_to_bytes(fc) == bytes.fromhex("035a8b")


@given(st.binary(min_size=3, max_size=3))
@settings(max_examples=200, deadline=None)
def test_format_control_bytes_round_trip_or_remote_error(raw: bytes) -> None:
    try:
        fc = format_control_from_bytes(raw)
    except RemoteProtocolError:
        return
    assert format_control_to_bytes(fc) == raw


@pytest.mark.parametrize("raw", ["0e0000", "020700", "02c000", "0200e0", "02000f", "82000e"])
def test_format_control_reserved_values(raw: str) -> None:
    with pytest.raises(RemoteProtocolError):
        format_control_from_bytes(bytes.fromhex(raw))


# -- signed integers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fmt", "value"),
    [
        ("ff", IntFormat.TWOS_COMPLEMENT, -1),
        ("ff", IntFormat.ONES_COMPLEMENT, 0),
        ("fe", IntFormat.ONES_COMPLEMENT, -1),
        ("81", IntFormat.SIGN_MAGNITUDE, -1),
        ("80", IntFormat.SIGN_MAGNITUDE, 0),
        ("7f", IntFormat.SIGN_MAGNITUDE, 127),
        ("80", IntFormat.TWOS_COMPLEMENT, -128),
    ],
)
def test_signed_formats(raw: str, fmt: IntFormat, value: int) -> None:
    assert decode_signed(bytes.fromhex(raw), LITTLE, fmt) == value


@given(
    st.sampled_from(list(IntFormat)), st.sampled_from(list(DataOrder)), st.integers(1, 8), st.data()
)
@settings(max_examples=200, deadline=None)
def test_signed_round_trip(
    fmt: IntFormat, order: DataOrder, size: int, data: st.DataObject
) -> None:
    limit = 1 << (8 * size - 1)
    low = -limit if fmt is IntFormat.TWOS_COMPLEMENT else -(limit - 1)
    value = data.draw(st.integers(low, limit - 1))
    raw = encode_signed(value, size, order, fmt)
    assert len(raw) == size
    assert decode_signed(raw, order, fmt) == value


def test_signed_range_is_checked() -> None:
    with pytest.raises(LocalProtocolError):
        encode_signed(-128, 1, LITTLE, IntFormat.SIGN_MAGNITUDE)
    with pytest.raises(LocalProtocolError):
        encode_signed(128, 1, LITTLE, IntFormat.TWOS_COMPLEMENT)


# -- BCD and NI_FMAT ------------------------------------------------------------------------------


def test_bcd() -> None:
    assert bcd_encode("1234", 3) == b"\x00\x12\x34"
    assert bcd_decode(b"\x00\x12\x34") == "001234"
    with pytest.raises(RemoteProtocolError):
        bcd_decode(b"\x1a")
    with pytest.raises(LocalProtocolError):
        bcd_encode("12a", 2)


def test_ni_sizes() -> None:
    # S10 (n0mcli lputils.c nidata_sz): FIXED_BCD6 = 3 octets, FIXED_BCD4 = 2; INT24..INT64.
    assert ni_size(NiFormat.FIXED_BCD6) == 3
    assert ni_size(NiFormat.FIXED_BCD4) == 2
    assert ni_size(NiFormat.FIXED_BCD8) == 4
    assert ni_size(NiFormat.FIXED_BCD8, bcd_digits=False) == 8
    assert [ni_size(f) for f in (NiFormat.INT24, NiFormat.INT40, NiFormat.INT48)] == [3, 5, 6]
    assert ni_size(NiFormat.FLOAT_CHAR21) == 21


@pytest.mark.parametrize(
    ("fmt", "order", "raw", "value"),
    [
        (NiFormat.INT24, LITTLE, "feffff", -2),
        (NiFormat.INT40, BIG, "0000000100", 256),
        (NiFormat.INT48, LITTLE, "010000000080", -(1 << 47) + 1),
        (NiFormat.INT32_DEC4, LITTLE, "39300000", Decimal("1.2345")),
        (NiFormat.FIXED_BCD6, LITTLE, "123456", Decimal(123456)),
        (NiFormat.FLOAT32, BIG, "3fc00000", 1.5),
        (NiFormat.FLOAT64, LITTLE, "000000000000f83f", 1.5),
        (NiFormat.FLOAT_CHAR6, LITTLE, "2031322e3530", Decimal("12.50")),
    ],
)
def test_ni_known_values(fmt: NiFormat, order: DataOrder, raw: str, value: object) -> None:
    fc = FormatControl(data_order=order)
    data = bytes.fromhex(raw)
    assert decode_ni(data, fmt, fc) == value
    assert encode_ni(decode_ni(data, fmt, fc), fmt, fc, len(data)) == data


def test_ni_rejects_inexact_and_garbage() -> None:
    fc = FormatControl()
    with pytest.raises(LocalProtocolError):
        encode_ni(Decimal("1.00005"), NiFormat.INT32_DEC4, fc, 4)
    with pytest.raises(LocalProtocolError):
        encode_ni(1.5, NiFormat.INT32, fc, 4)
    with pytest.raises(LocalProtocolError):
        encode_ni(-1, NiFormat.FIXED_BCD4, fc, 2)
    with pytest.raises(LocalProtocolError):
        encode_ni(math.inf, NiFormat.INT64, fc, 8)
    with pytest.raises(RemoteProtocolError):
        decode_ni(b"12.x  ", NiFormat.FLOAT_CHAR6, fc)


@given(
    st.sampled_from(list(NiFormat)),
    st.sampled_from(list(DataOrder)),
    st.sampled_from(list(IntFormat)),
    st.data(),
)
@settings(max_examples=300, deadline=None)
def test_ni_bytes_round_trip(
    fmt: NiFormat, order: DataOrder, int_format: IntFormat, data: st.DataObject
) -> None:
    """Whatever decodes re-encodes; garbage raises RemoteProtocolError only."""
    fc = FormatControl(data_order=order, int_format=int_format)
    size = ni_size(fmt)
    raw = data.draw(st.binary(min_size=size, max_size=size))
    try:
        value = decode_ni(raw, fmt, fc)
    except RemoteProtocolError:
        return
    again = encode_ni(value, fmt, fc, size)
    assert decode_ni(again, fmt, fc) == value or (isinstance(value, float) and math.isnan(value))


# -- time fields (protocol-facts.md 4.1) -------------------------------------------------------


@pytest.mark.parametrize(
    ("tm", "order", "raw", "long"),
    [
        (TimeFormat.BCD, LITTLE, "240315123456", True),
        (TimeFormat.UINT8, LITTLE, "18030f0c2238", True),
        (TimeFormat.BCD, LITTLE, "2403151234", False),
        (TimeFormat.UINT8, BIG, "18030f0c22", False),
    ],
)
def test_time_fields_known(tm: TimeFormat, order: DataOrder, raw: str, long: bool) -> None:
    expected = datetime(2024, 3, 15, 12, 34, 56 if long else 0)
    data = bytes.fromhex(raw)
    assert decode_time(data, tm, order, long=long) == expected
    assert encode_time(expected, tm, order, long=long) == data
    assert time_size(tm, long=long) == len(data)


def test_time_counters() -> None:
    when = datetime(2024, 3, 15, 12, 34, 56)
    seconds = int((when - datetime(1970, 1, 1)).total_seconds())
    raw4 = encode_time(when, TimeFormat.UINT32_SECONDS, BIG, long=True)
    assert raw4 == seconds.to_bytes(4, "big")
    raw3 = encode_time(when, TimeFormat.UINT32_MINUTES, LITTLE, long=True)
    assert raw3 == (seconds // 60).to_bytes(4, "little") + bytes((56,))
    assert decode_time(raw3, TimeFormat.UINT32_MINUTES, LITTLE, long=True) == when
    # STIME in TM_FORMAT 3 is minutes only; in TM_FORMAT 4 it keeps the seconds.
    assert (
        len(encode_time(when.replace(second=0), TimeFormat.UINT32_MINUTES, LITTLE, long=False)) == 4
    )
    assert (
        decode_time(
            encode_time(when, TimeFormat.UINT32_SECONDS, LITTLE, long=False),
            TimeFormat.UINT32_SECONDS,
            LITTLE,
            long=False,
        )
        == when
    )


def test_two_digit_year_rule() -> None:
    def year(yy: int, **kw: int) -> int | None:
        when = decode_time(bytes((yy, 1, 1, 0, 0, 0)), TimeFormat.UINT8, LITTLE, long=True, **kw)
        return None if when is None else when.year

    assert year(90) == 1990  # termineter: 90-99 are 19xx
    assert year(89) == 2089
    assert year(89, year_pivot=80) == 1989
    with pytest.raises(LocalProtocolError):
        encode_time(datetime(2090, 1, 1), TimeFormat.UINT8, LITTLE, long=True)


def test_time_none_and_errors() -> None:
    assert decode_time(bytes(6), TimeFormat.BCD, LITTLE, long=True) is None
    assert encode_time(None, TimeFormat.UINT32_MINUTES, LITTLE, long=True) == bytes(5)
    assert encode_time(datetime(2024, 1, 1), TimeFormat.NONE, LITTLE, long=True) == b""
    with pytest.raises(RemoteProtocolError):
        decode_time(bytes((24, 13, 1, 0, 0, 0)), TimeFormat.UINT8, LITTLE, long=True)
    with pytest.raises(RemoteProtocolError):
        decode_time(bytes.fromhex("2a0101000000"), TimeFormat.BCD, LITTLE, long=True)
    with pytest.raises(LocalProtocolError):
        encode_time(datetime(2024, 1, 1, 0, 0, 5), TimeFormat.UINT8, LITTLE, long=False)


@given(st.integers(0, 255))
def test_time_date_qual_round_trip(byte: int) -> None:
    assert encode_time_date_qual(decode_time_date_qual(byte)) == byte


def test_time_date_qual_bits() -> None:
    qual = decode_time_date_qual(0x1B)  # Wednesday, DST, GMT
    assert qual == TimeDateQual(day_of_week=DayOfWeek.WEDNESDAY, dst=True, gmt=True)


# -- SETs (protocol-facts.md 4.1: bit n mod 8 of byte n div 8, all 8 bits) ----------------------


def test_set_semantics_use_all_eight_bits() -> None:
    assert decode_set(b"\x80") == {7}  # termineter's ST0 decoder would miss this one
    assert decode_set(b"\x01\x80") == {0, 15}
    assert encode_set({7, 8, 23}, 3) == b"\x80\x01\x80"
    assert set_octets({7}) == 1 and set_octets({8}) == 2 and set_octets(()) == 0
    with pytest.raises(LocalProtocolError):
        encode_set({16}, 2)


@given(st.binary(max_size=16))
def test_set_round_trip(raw: bytes) -> None:
    members = decode_set(raw)
    assert encode_set(members, len(raw)) == raw
    assert all(raw[n // 8] >> (n % 8) & 1 for n in members)


# -- characters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("char_format", "order", "text", "raw"),
    [
        (CharFormat.ISO_646, LITTLE, "AB", b"AB  "),
        (CharFormat.ISO_8859_1, LITTLE, "\xe9", b"\xe9   "),
        (CharFormat.UTF_8, LITTLE, "\u00e9", b"\xc3\xa9  "),
        (CharFormat.UTF_16, BIG, "A", b"\x00A\x00 "),
        (CharFormat.UTF_16, LITTLE, "A", b"A\x00 \x00"),
    ],
)
def test_chars(char_format: CharFormat, order: DataOrder, text: str, raw: bytes) -> None:
    layout = chars(4, TableContext(format=FormatControl(char_format=char_format, data_order=order)))
    assert layout.build(text) == raw
    assert layout.parse(raw).rstrip(" ") == text


def test_chars_keep_undecodable_bytes_and_refuse_overflow() -> None:
    layout = chars(4, TableContext())
    assert layout.build(layout.parse(b"\xff\x00AB")) == b"\xff\x00AB"
    with pytest.raises(LocalProtocolError):
        layout.build("TOO LONG")


def test_bcd_identifier() -> None:
    layout = ident(16, TableContext(format=FormatControl(id_form=IdForm.BCD)))
    assert layout.build("12345678") == bytes.fromhex("0000000012345678")
    assert layout.parse(bytes.fromhex("0000000012345678")) == "0000000012345678"
