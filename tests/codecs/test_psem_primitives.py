"""PSEM wire pieces, the error contract, and service names."""

from __future__ import annotations

import pytest

from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.errors import LocalProtocolError, RemoteProtocolError
from amidcc.codecs.psem import (
    BAUD_RATES,
    REQUEST_NAMES,
    Authenticate,
    DefaultRead,
    DeviceIdentityFeature,
    Disconnect,
    FullRead,
    FullWrite,
    Identify,
    IdentifyResponse,
    Logoff,
    Logon,
    LogonResponse,
    Negotiate,
    NegotiateResponse,
    NodeType,
    NokResponse,
    OkResponse,
    PartialReadIndex,
    PartialReadOffset,
    PartialWriteIndex,
    PartialWriteOffset,
    RawResponse,
    ReadResponse,
    Register,
    Resolve,
    ResolveResponse,
    Security,
    TableId,
    TimingSetup,
    Trace,
    UniversalId,
    UnknownFeature,
    Wait,
    checksum,
    decode_request,
    decode_response,
    decode_table_id,
    decode_universal_id,
    encode_request,
    encode_response,
    encode_universal_id,
    format_table_id,
    pad_password,
    pad_user,
    request_code,
    service_name,
    table_id,
)

# --------------------------------------------------------------------------- checksum


def test_checksum_known_answers() -> None:
    # facts 2.4: C12.22 example 8 and the S13 real meter.
    assert checksum(b"MANUFACTURER SN ") == 0x92
    assert checksum(bytes.fromhex("FB 13 04 02 4D 89 1A 00")) == 0xFC
    assert checksum(b"") == 0
    assert checksum(b"\x01") == 0xFF


# --------------------------------------------------------------------------- table ids


def test_table_id_word() -> None:
    assert table_id(23) == 0x0017
    assert table_id(5, mfg=True) == 0x0805
    assert table_id(23, pending=True) == 0x1017
    assert table_id(2047, mfg=True, pending=True, high_bits=1) == 0x3FFF
    assert decode_table_id(0x1805) == TableId(number=5, mfg=True, pending=True, high_bits=0)
    assert decode_table_id(0x2001) == TableId(number=1, mfg=False, pending=False, high_bits=1)
    assert format_table_id(0x0017) == "ST23"
    assert format_table_id(0x0805) == "MT5"
    assert format_table_id(0x1017) == "ST23 pending"
    assert format_table_id(0x2001) == "ST1 bits13-15=1"


@pytest.mark.parametrize("word", [0, 1, 0x07FF, 0x0800, 0x1000, 0xFFFF, 0x3ABC])
def test_table_id_both_ways(word: int) -> None:
    view = decode_table_id(word)
    assert table_id(view.number, view.mfg, view.pending, view.high_bits) == word


@pytest.mark.parametrize(
    "kwargs", [{"number": 2048}, {"number": -1}, {"number": 1, "high_bits": 8}]
)
def test_table_id_out_of_range(kwargs: dict[str, int]) -> None:
    with pytest.raises(LocalProtocolError):
        table_id(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        decode_table_id(0x10000)


# --------------------------------------------------------------------------- universal ids


def test_universal_id_forms() -> None:
    # facts 3.3: relative .123.8437 is 7B C1 75; absolute Elster arc from the same section.
    rel = UniversalId.parse(".123.8437")
    assert rel == UniversalId(arcs=(123, 8437), relative=True)
    assert encode_universal_id(rel) == bytes.fromhex("0D 03 7B C1 75")
    absolute = UniversalId.parse("1.3.6.1.4.1.33507.1919.22906.0")
    wire = bytes.fromhex("06 0E 2B 06 01 04 01 82 85 63 8E 7F 81 B2 7A 00")
    assert encode_universal_id(absolute) == wire
    assert decode_universal_id(wire, 0, "t") == (absolute, len(wire))
    assert str(absolute) == "1.3.6.1.4.1.33507.1919.22906.0"
    assert str(rel) == ".123.8437"


def test_universal_id_accepts_acse_relative_tag() -> None:
    # ICSNPP reads relative titles in bodies with the ACSE tag 80; accepted, re-sent as 0D.
    uid, end = decode_universal_id(bytes.fromhex("80 03 7B C1 75"), 0, "t")
    assert uid == UniversalId(arcs=(123, 8437), relative=True)
    assert end == 5


@pytest.mark.parametrize(
    "wire",
    ["", "02 01 00", "06", "06 81", "06 05 2B 06", "0D 01 81", "06 00", "0D 02 80 01"],
)
def test_universal_id_malformed(wire: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_universal_id(bytes.fromhex(wire), 0, "t")


# --------------------------------------------------------------------------- padding


def test_padding() -> None:
    assert pad_user("0000") == b"0000      "
    assert pad_user(b"fixeduser") == b"fixeduser "
    assert pad_password("PASSWORD", fill=b" ") == b"PASSWORD" + b" " * 12
    assert pad_password(b"", fill=b"\x00") == bytes(20)
    with pytest.raises(LocalProtocolError):
        pad_user("elevenchars")
    with pytest.raises(LocalProtocolError):
        pad_password("x" * 21, fill=b" ")
    with pytest.raises(LocalProtocolError):
        pad_password("x", fill=b"  ")
    with pytest.raises(LocalProtocolError):
        pad_user("café")


def test_baud_codes() -> None:
    assert BAUD_RATES[0x06] == 9600
    assert BAUD_RATES[0x0A] == 57600
    assert len(BAUD_RATES) == 15


# --------------------------------------------------------------------------- data chaining


def test_chained_write_exact_multiple() -> None:
    # MeteringSDK: 65535-byte chunks with count FFFF, plus an empty chunk on an exact multiple.
    data = bytes(range(256)) * 255 + bytes(range(255))  # 65535 bytes
    wire = encode_request(FullWrite(table_id=64, data=data))
    assert wire[:5] == bytes.fromhex("40 0040 FFFF")
    assert wire[5 + 65535] == checksum(data)
    assert wire[-3:] == bytes.fromhex("0000 00")
    assert decode_request(wire) == FullWrite(table_id=64, data=data)


def test_chained_read_response() -> None:
    data = b"\x5a" * 70000
    wire = encode_response(ReadResponse(data=data))
    assert len(wire) == 1 + (2 + 65535 + 1) + (2 + 4465 + 1)
    assert decode_response(wire, FullRead(table_id=64)) == ReadResponse(data=data)
    with pytest.raises(RemoteProtocolError, match="count"):
        decode_response(wire[:-10], FullRead(table_id=64))


# --------------------------------------------------------------------------- request errors


@pytest.mark.parametrize(
    "code", [0x00, 0x06, 0x23, 0x28, 0x3A, 0x3D, 0x4A, 0x4E, 0x54, 0x6C, 0x72, 0xFF]
)
def test_unknown_request_code_is_sns(code: int) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_request(bytes((code, 0, 0)))
    assert info.value.response_code == ResponseCode.SNS


@pytest.mark.parametrize(
    "wire",
    [
        "",
        "20 00",
        "30 00",
        "31 0001 0002",  # index form missing its element count
        "39 0001" + " 0000" * 8 + " 0001",  # 9-index code with 8 indices
        "3F 0017 000000",
        "40 0007 0003 07 00",  # count overruns
        "40 00",
        "41 0001",
        "4F 0001 0000",
        "50 0000 3030",
        "50" + " 00" * 13,
        "51" + " 00" * 21,
        "53",
        "53 03 01 02",
        "60 0400",
        "62 0400 80 06",
        "70",
        "71 01 02 03",
        "24",
        "25 06 01",
        "26 06 01 2B 00",
        "27 01 00 00000000",
        "27 80 00 00000000 0D 00 0D 00 00 000000",  # pattern flag without a pattern
        "27 00 00 00000000 0D 00 0D 00 02 01 000000",  # native address overruns
        "27 00 00 00000000 0D 00 0D 00 00 0000",
        "27 00 00 00000000 0D 00 0D 00 00 000000 00",  # trailing byte
    ],
)
def test_malformed_request_is_err(wire: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_request(bytes.fromhex(wire))
    assert info.value.response_code == ResponseCode.ERR


@pytest.mark.parametrize(
    "wire", ["40 0007 0003 070003 F5", "41 0001 0002 0001 AA 00", "4F 0001 000010 0002 0102 00"]
)
def test_write_checksum_mismatch(wire: str) -> None:
    data = bytes.fromhex(wire)
    with pytest.raises(RemoteProtocolError, match="checksum") as info:
        decode_request(data)
    assert info.value.response_code == ResponseCode.ERR
    lenient = decode_request(data, verify_checksum=False)
    assert isinstance(lenient, (FullWrite, PartialWriteIndex, PartialWriteOffset))


def test_disconnect_keeps_unverified_parameters() -> None:
    assert decode_request(b"\x22") == Disconnect()
    assert decode_request(b"\x22\x01\x02") == Disconnect(parameters=b"\x01\x02")


def test_register_minimal_and_pattern() -> None:
    wire = bytes.fromhex("27 A0 00 01020304 0D 01 05 06 01 2A 01 7F 00012C 02 AB CD")
    req = decode_request(wire)
    assert req == Register(
        node_type=NodeType.END_DEVICE | NodeType.MY_DOMAIN_PATTERN,
        connection_type=0,
        device_class=bytes.fromhex("01020304"),
        ap_title=UniversalId(arcs=(5,), relative=True),
        electronic_serial_number=UniversalId(arcs=(1, 2)),
        native_address=b"\x7f",
        registration_period=300,
        my_domain_pattern=b"\xab\xcd",
    )
    assert encode_request(req) == wire


# --------------------------------------------------------------------------- encode misuse

_TITLE = UniversalId(arcs=(1,), relative=True)
_REGISTER = Register(
    node_type=NodeType.END_DEVICE,
    connection_type=0,
    device_class=bytes(4),
    ap_title=_TITLE,
    electronic_serial_number=_TITLE,
    native_address=b"",
    registration_period=0,
)


@pytest.mark.parametrize(
    "req",
    [
        FullRead(table_id=0x10000),
        FullRead(table_id=-1),
        PartialReadIndex(table_id=1, indices=(), element_count=1),
        PartialReadIndex(table_id=1, indices=(0,) * 10, element_count=1),
        PartialReadIndex(table_id=1, indices=(0x10000,), element_count=1),
        PartialReadOffset(table_id=1, offset=0x1000000, octet_count=1),
        PartialWriteIndex(table_id=1, indices=(), data=b""),
        PartialWriteOffset(table_id=1, offset=-1, data=b""),
        Logon(user_id=0, user=b"short"),
        Logon(user_id=0, user=pad_user(""), session_idle_timeout=70000),
        Security(password=b"short"),
        Security(password=bytes(20), user_id=-1),
        Authenticate(data=bytes(256)),
        Negotiate(packet_size=64, nbr_packets=1, baud_rates=(6,) * 12),
        Negotiate(packet_size=64, nbr_packets=256),
        Negotiate(packet_size=64, nbr_packets=1, baud_rates=(256,)),
        Wait(seconds=256),
        TimingSetup(traffic=1, inter_char=1, resp_to=1, nbr_retries=300),
        Register(
            node_type=0x80,
            connection_type=0,
            device_class=bytes(4),
            ap_title=_TITLE,
            electronic_serial_number=_TITLE,
            native_address=b"",
            registration_period=0,
        ),
        Register(
            node_type=0,
            connection_type=0,
            device_class=bytes(3),
            ap_title=_TITLE,
            electronic_serial_number=_TITLE,
            native_address=b"",
            registration_period=0,
        ),
        Trace(ap_title=UniversalId(arcs=(3, 1))),
        Resolve(ap_title=UniversalId(arcs=(-1,), relative=True)),
    ],
)
def test_encode_request_misuse_is_local(req: object) -> None:
    with pytest.raises(LocalProtocolError):
        encode_request(req)  # type: ignore[arg-type]


def test_encode_not_a_message() -> None:
    with pytest.raises(LocalProtocolError):
        encode_request(OkResponse())  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        encode_response(Identify())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "resp",
    [
        NokResponse(code=ResponseCode.OK),
        NokResponse(code=ResponseCode.ERR, max_size=5),
        NokResponse(code=ResponseCode.RQTL, detail=b"\x01"),
        NokResponse(code=ResponseCode.RSTL, max_size=1 << 32),
        IdentifyResponse(std=0, version=1, revision=0, features=(UnknownFeature(tag=4, body=b""),)),
        IdentifyResponse(
            std=0,
            version=1,
            revision=0,
            features=(UnknownFeature(tag=9, body=b""), UnknownFeature(tag=9, body=b"")),
        ),
        IdentifyResponse(
            std=0,
            version=1,
            revision=0,
            features=(DeviceIdentityFeature(format=1, identity=bytes(255)),),
        ),
        IdentifyResponse(std=256, version=1, revision=0),
        LogonResponse(session_idle_timeout=-1),
        NegotiateResponse(packet_size=64, nbr_packets=1, baud_rate=256),
        ResolveResponse(local_address=bytes(256)),
        RawResponse(code=256, body=b""),
    ],
)
def test_encode_response_misuse_is_local(resp: object) -> None:
    with pytest.raises(LocalProtocolError):
        encode_response(resp)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- response errors


@pytest.mark.parametrize(
    ("wire", "request_"),
    [
        ("", FullRead(table_id=0)),
        ("", None),
        ("00 00", Logoff()),
        ("00 0003 010203", FullRead(table_id=0)),  # checksum missing
        ("00 0003 010203 00", FullRead(table_id=0)),  # checksum wrong
        ("00 00", DefaultRead()),
        ("00 00 01 00", Identify()),  # shorter than 5 bytes
        ("00 03 01 00 05", Identify()),  # list not ended by 00
        ("00 03 01 00 05 00", Identify()),  # session control swallows the end
        ("00 03 01 00 00 00", Identify()),  # bytes after the list end
        ("00 03 01 00 07 00 00", Identify()),  # identity length 0
        ("00 03 01 00 07 05 01 00", Identify()),  # identity overruns
        ("00 03 01 00 04 06 01 00", Identify()),  # mechanism overruns
        ("00 00", Logon(user_id=0, user=bytes(10))),
        ("00 0400", Negotiate(packet_size=1024, nbr_packets=1)),
        ("00 0400 01 06 06", Negotiate(packet_size=1024, nbr_packets=1)),
        ("00 0D 01 05 0000 000000", _REGISTER),
        ("00 02 01", Resolve(ap_title=_TITLE)),
        ("00", Resolve(ap_title=_TITLE)),
        ("00 0D 01", Trace(ap_title=_TITLE)),
        ("0F 00 01", FullRead(table_id=0)),  # rqtl with a truncated size
        ("13", FullRead(table_id=0)),  # unknown response code
    ],
)
def test_malformed_response(wire: str, request_: object) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_response(bytes.fromhex(wire), request_)  # type: ignore[arg-type]


def test_response_without_request() -> None:
    assert decode_response(b"\x00", None) == OkResponse()
    assert decode_response(b"\x05", None) == NokResponse(code=ResponseCode.IAR)
    assert decode_response(b"\x13\x01", None) == RawResponse(code=0x13, body=b"\x01")
    assert decode_response(b"\x00\x01", None) == RawResponse(code=0, body=b"\x01")


def test_unverified_ok_bodies_stay_raw() -> None:
    for req in (
        Authenticate(data=b"x"),
        TimingSetup(traffic=6, inter_char=1, resp_to=2, nbr_retries=3),
    ):
        assert decode_response(b"\x00", req) == OkResponse()
        assert decode_response(b"\x00\x01\x02", req) == RawResponse(code=0, body=b"\x01\x02")


def test_nok_detail_kept() -> None:
    wire = bytes.fromhex("0E 06 01 2B")
    resp = decode_response(wire, Trace(ap_title=_TITLE))
    assert resp == NokResponse(code=ResponseCode.NETR, detail=bytes.fromhex("06 01 2B"))
    assert encode_response(resp) == wire


# --------------------------------------------------------------------------- names


def test_request_names_cover_every_code() -> None:
    assert REQUEST_NAMES[0x30] == "Full Read"
    assert REQUEST_NAMES[0x3F] == "Partial Read Offset"
    assert REQUEST_NAMES[0x35] == "Partial Read Index"
    assert REQUEST_NAMES[0x4F] == "Partial Write Offset"
    assert REQUEST_NAMES[0x6B] == "Negotiate"
    assert REQUEST_NAMES[0x50] == "Logon"
    assert len(REQUEST_NAMES) == 18 + 9 + 9 + 12


@pytest.mark.parametrize(
    ("message", "name", "code"),
    [
        (Identify(), "Identify", 0x20),
        (FullRead(table_id=1), "Full Read", 0x30),
        (
            PartialReadIndex(table_id=1, indices=(1, 2, 3), element_count=1),
            "Partial Read Index",
            0x33,
        ),
        (PartialReadOffset(table_id=1, offset=0, octet_count=1), "Partial Read Offset", 0x3F),
        (PartialWriteIndex(table_id=1, indices=(1,), data=b""), "Partial Write Index", 0x41),
        (Logon(user_id=1, user=pad_user("x")), "Logon", 0x50),
        (Negotiate(packet_size=64, nbr_packets=1), "Negotiate", 0x60),
        (Negotiate(packet_size=64, nbr_packets=1, baud_rates=(6, 8)), "Negotiate", 0x62),
        (TimingSetup(traffic=1, inter_char=1, resp_to=1, nbr_retries=1), "Timing Setup", 0x71),
    ],
)
def test_service_name_and_code(message: object, name: str, code: int) -> None:
    assert service_name(message) == name  # type: ignore[arg-type]
    assert request_code(message) == code  # type: ignore[arg-type]
    assert REQUEST_NAMES[code] == name
    assert encode_request(message)[0] == code  # type: ignore[arg-type]


def test_service_name_of_responses() -> None:
    assert service_name(OkResponse()) == "ok"
    assert service_name(NokResponse(code=ResponseCode.ISC)) == "nok isc"
    assert service_name(ReadResponse(data=b"")) == "Read Response"
