"""ST6 UTILITY_INFO_TBL: the layout byte by byte, both ID forms, the layout switches, bad input,
and Hypothesis round trips.

The expected bytes are assembled here field by field from the layout the public sources give (S11's
``MakeST6`` and a firmware header's ``_std_table_06_t``; see ``codecs/c1219/utility_info.py``), not
by the codec under test.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.codecs.c1219 import (
    ST6,
    CharFormat,
    FormatControl,
    IdForm,
    TableContext,
    UtilityInfo,
    decode_table,
    encode_table,
    id_text,
    table_model,
)
from amidcc.codecs.errors import LocalProtocolError, RemoteProtocolError

CHARS = TableContext()
BCD = TableContext(format=FormatControl(id_form=IdForm.BCD))
#: The other firmware's layout: UTILITY_DIV of 16 and a 3-byte firmware-load date after MISC_ID.
SHORT_DIV = TableContext(st6_utility_div_octets=16, st6_mfg_octets=3)


def pad(text: str, size: int) -> bytes:
    return text.encode("ascii").ljust(size, b" ")


VALUE = UtilityInfo(
    owner_name="NORTH POWER".ljust(20),
    utility_div="METRO EAST".ljust(20),
    service_point_id="PR00001234".ljust(20),
    elec_addr="FDR12-XF0331".ljust(20),
    device_id="UTIL-000123".ljust(20),
    util_ser_nbr="U998877".ljust(20),
    customer_id="AC000000042".ljust(20),
    coordinate_1=b"+45.50170\x00",
    coordinate_2=b"-73.56730\x00",
    coordinate_3=bytes(10),
    tariff_id="RES-TOU1",
    ex1_sw_vendor="AMDC",
    ex1_sw_version_number=3,
    ex1_sw_revision_number=7,
    ex2_sw_vendor="    ",
    ex2_sw_version_number=0,
    ex2_sw_revision_number=0,
    programmer_name="FIELD-T07 ",
    misc_id="ORDER 77123".ljust(30),
)

#: OWNER_NAME(20) UTILITY_DIV(20) SERVICE_POINT_ID ELEC_ADDR DEVICE_ID UTIL_SER_NBR CUSTOMER_ID
#: (20 each) COORDINATE_1..3 (10 each) TARIFF_ID(8) EX1 vendor(4) ver rev EX2 vendor(4) ver rev
#: PROGRAMMER_NAME(10) MISC_ID(30): S11 and the firmware header agree (230 bytes).
WIRE = b"".join(
    (
        pad("NORTH POWER", 20),
        pad("METRO EAST", 20),
        pad("PR00001234", 20),
        pad("FDR12-XF0331", 20),
        pad("UTIL-000123", 20),
        pad("U998877", 20),
        pad("AC000000042", 20),
        b"+45.50170\x00",
        b"-73.56730\x00",
        bytes(10),
        b"RES-TOU1",
        b"AMDC\x03\x07",
        b"    \x00\x00",
        b"FIELD-T07 ",
        pad("ORDER 77123", 30),
    )
)


def test_layout_byte_by_byte() -> None:
    assert len(WIRE) == 230 and ST6.size(CHARS) == 230
    assert ST6.build(VALUE, CHARS) == WIRE
    assert ST6.parse(WIRE, CHARS) == VALUE
    # the offsets a head-end reads by partial read: service point 40, customer 120
    assert WIRE[40:60].rstrip() == b"PR00001234" and WIRE[120:140].rstrip() == b"AC000000042"


def test_registry_knows_st6() -> None:
    assert table_model(6) is ST6 and ST6.name == "UTILITY_INFO_TBL" and ST6.label == "ST6"
    assert decode_table(6, WIRE) == VALUE and encode_table(6, VALUE) == WIRE
    assert decode_table(6 | 0x1000, WIRE) == VALUE  # the pending ST6 has the same layout


def test_bcd_identifiers_take_ten_bytes_each() -> None:
    value = UtilityInfo(service_point_id="00000000000012345678", customer_id="42".rjust(20, "0"))
    raw = ST6.build(value, BCD)
    assert ST6.size(BCD) == len(raw) == 230 - 5 * 10
    # SERVICE_POINT_ID right after OWNER_NAME and UTILITY_DIV; CUSTOMER_ID the fifth identifier
    assert raw[40:50] == bytes.fromhex("00000000000012345678")
    assert raw[80:90] == bytes.fromhex("00000000000000000042")
    back = ST6.parse(raw, BCD)
    assert id_text(back.service_point_id) == "00000000000012345678"
    assert id_text(back.elec_addr) == ""  # all zeros: never programmed
    with pytest.raises(LocalProtocolError):
        ST6.build(UtilityInfo(service_point_id="PR9"), BCD)  # not digits


def test_the_other_firmware_layout_is_a_switch() -> None:
    value = UtilityInfo(utility_div="DIV-16".ljust(16), service_point_id="PR1".ljust(20),
                        mfg_extension=b"\x18\x05\x1f")  # fmt: skip
    raw = ST6.build(value, SHORT_DIV)
    assert ST6.size(SHORT_DIV) == len(raw) == 230 - 4 + 3
    assert raw[20:36] == pad("DIV-16", 16) and raw[36:56] == pad("PR1", 20)
    back = ST6.parse(raw, SHORT_DIV)
    assert raw[-3:] == back.mfg_extension == b"\x18\x05\x1f"
    assert id_text(back.utility_div) == "DIV-16" and id_text(back.service_point_id) == "PR1"
    assert ST6.build(back, SHORT_DIV) == raw
    with pytest.raises(RemoteProtocolError):
        ST6.parse(raw, CHARS)  # 229 bytes are not the standard layout
    with pytest.raises(LocalProtocolError):
        ST6.build(value, CHARS)  # the standard layout has no room for the extension


def test_wrong_sizes_and_values_raise_the_codec_errors() -> None:
    for data in (WIRE[:-1], WIRE + b"\x00", b""):
        with pytest.raises(RemoteProtocolError):
            ST6.parse(data, CHARS)
    for bad in (
        UtilityInfo(service_point_id="X" * 21),
        UtilityInfo(tariff_id="TOO-LONG-ID"),
        UtilityInfo(ex1_sw_version_number=256),
        UtilityInfo(coordinate_1=b"short"),
    ):
        with pytest.raises(LocalProtocolError):
            ST6.build(bad, CHARS)


def test_id_text_strips_padding_and_sees_blank_fields() -> None:
    assert id_text("PR9".ljust(20)) == "PR9"
    assert id_text("PR9".ljust(20, "\0")) == "PR9"
    assert id_text(" " * 20) == "" and id_text("\0" * 20) == ""
    erased = ST6.parse(b"\xff" * 230, CHARS)  # erased EEPROM, ISO 646 with surrogate escapes
    assert id_text(erased.service_point_id) == "" and id_text(erased.customer_id) == ""
    latin = TableContext(format=FormatControl(char_format=CharFormat.ISO_8859_1))
    assert id_text(ST6.parse(b"\xff" * 230, latin).service_point_id) == ""
    assert id_text("0" * 20) == "" and id_text("0042".rjust(20, "0")) == "0042".rjust(20, "0")


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=230, max_size=230), fmt=st.sampled_from(list(CharFormat)[:3]))
def test_any_230_bytes_decode_and_build_back(data: bytes, fmt: Any) -> None:
    ctx = TableContext(format=FormatControl(char_format=fmt))
    try:
        value = ST6.parse(data, ctx)
    except RemoteProtocolError:
        return  # e.g. invalid UTF-8: the codec's own remote error, nothing else
    assert ST6.build(value, ctx) == data


@settings(max_examples=60, deadline=None)
@given(
    ids=st.lists(st.text(alphabet="ABCXYZ0123456789-", max_size=20), min_size=5, max_size=5),
    version=st.integers(0, 255),
)
def test_values_round_trip(ids: list[str], version: int) -> None:
    names = ("service_point_id", "elec_addr", "device_id", "util_ser_nbr", "customer_id")
    fields: dict[str, Any] = {n: v.ljust(20) for n, v in zip(names, ids, strict=True)}
    value = UtilityInfo(**fields, ex2_sw_version_number=version)
    back = ST6.parse(ST6.build(value, CHARS), CHARS)
    assert [id_text(getattr(back, n)) for n in names] == [v.strip() for v in ids]
    assert back.ex2_sw_version_number == version
