"""PSEM known-answer vectors, both ways.

Sources (protocol-facts.md):
- 1.3 "Verified frames": real C12.18 frames from termineter (S5), MeteringSDK's doc transcript (S6)
  and a real meter (S13). Each frame's CRC is checked here before its PSEM payload (bytes 6..-2)
  is used, so a transcription slip cannot pass silently.
- 3.5 "Example 8": decrypted EPSEM bodies of the C12.22 standard's example 8 (S3).
- The shared ICSNPP captures (../shared/vectors/icsnpp-c1222), checked against their baseline logs.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from amidcc.codecs import ber
from amidcc.codecs.c1222 import SecurityMode, decode_message
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.errors import RemoteProtocolError
from amidcc.codecs.psem import (
    DefaultRead,
    DeviceClassFeature,
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
    NokResponse,
    OkResponse,
    PartialReadIndex,
    PartialReadOffset,
    RawResponse,
    ReadResponse,
    Register,
    RegisterResponse,
    Request,
    Response,
    Security,
    SecurityMechanismFeature,
    SessionControlFeature,
    Terminate,
    Trace,
    TraceResponse,
    UniversalId,
    Wait,
    checksum,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    pad_password,
    pad_user,
    table_id,
)

from ..icsnpp import capture_apdus


def crc_x25(data: bytes) -> int:
    """CRC-16/X-25 (facts 1.3): reflected 0x8408, init FFFF, xor-out FFFF."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def payload(frame_hex: str) -> bytes:
    """The PSEM bytes of a verified C12.18 frame, after checking its length and CRC."""
    frame = bytes.fromhex(frame_hex)
    assert frame[0] == 0xEE
    assert struct.unpack_from(">H", frame, 4)[0] == len(frame) - 8
    assert crc_x25(frame[:-2]) == struct.unpack_from("<H", frame, len(frame) - 2)[0]
    return frame[6:-2]


def test_crc_check_value() -> None:
    assert crc_x25(b"123456789") == 0x906E


# (request, frame) from facts 1.3.
REQUEST_FRAMES: list[tuple[Request, str]] = [
    (Identify(), "EE 00 00 00 00 01 20 13 10"),  # S9, termineter, S6, S13
    (
        Negotiate(packet_size=1024, nbr_packets=128, baud_rates=(0x06,)),
        "EE 00 20 00 00 05 61 04 00 80 06 C2 29",  # S6 doc
    ),
    (
        Negotiate(packet_size=512, nbr_packets=2, baud_rates=(0x06,)),
        "EE 00 20 00 00 05 61 02 00 02 06 24 DD",  # termineter
    ),
    (
        Logon(user_id=0, user=pad_user("0000")),
        "EE 00 00 00 00 0D 50 00 00 30 30 30 30 20 20 20 20 20 20 76 35",  # termineter
    ),
    (
        Logon(user_id=0x63, user=b"fixeduser "),
        "EE 00 20 00 00 0D 50 00 63 66 69 78 65 64 75 73 65 72 20 8E 11",  # S13 real meter
    ),
    (
        Security(password=pad_password(b"", fill=b"\x00")),
        "EE 00 20 00 00 15 51" + " 00" * 20 + " 27 A2",  # termineter
    ),
    (FullRead(table_id=0), "EE 00 20 00 00 03 30 00 00 5F 7F"),  # termineter, toggle 1
    (FullRead(table_id=0), "EE 00 00 00 00 03 30 00 00 DC 1C"),  # termineter, toggle 0
    (FullRead(table_id=1), "EE 00 00 00 00 03 30 00 01 55 0D"),  # termineter
    (
        PartialReadOffset(table_id=23, offset=0, octet_count=8),
        "EE 00 20 00 00 08 3F 00 17 00 00 00 00 08 03 F2",  # S13
    ),
    (
        FullWrite(table_id=7, data=bytes.fromhex("07 00 03")),  # run SP7, seq 03
        "EE 00 00 00 00 09 40 00 07 00 03 07 00 03 F6 45 AA",  # termineter
    ),
    (
        FullWrite(table_id=7, data=bytes.fromhex("09 00 81 01")),  # SP9 demand reset, seq 81
        "EE 00 00 00 00 0A 40 00 07 00 04 09 00 81 01 75 DF CA",  # termineter
    ),
    (Logoff(), "EE 00 20 00 00 01 52 17 20"),  # S13
    (Terminate(), "EE 00 00 00 00 01 21 9A 01"),  # S13
    (Terminate(), "EE 00 20 00 00 01 21 0B 61"),  # termineter
]

# (response, the request it answers, frame) from facts 1.3.
RESPONSE_FRAMES: list[tuple[Response, Request, str]] = [
    (
        IdentifyResponse(std=0, version=1, revision=0),
        Identify(),
        "EE 00 00 00 00 05 00 00 01 00 00 C6 B5",  # S6 doc transcript
    ),
    (
        NegotiateResponse(packet_size=1024, nbr_packets=128, baud_rate=0x06),
        Negotiate(packet_size=1024, nbr_packets=128, baud_rates=(0x06,)),
        "EE 00 20 00 00 05 00 04 00 80 06 35 83",  # S6 doc
    ),
    (
        ReadResponse(data=bytes.fromhex("FB 13 04 02 4D 89 1A 00")),
        PartialReadOffset(table_id=23, offset=0, octet_count=8),
        "EE 00 20 00 00 0C 00 00 08 FB 13 04 02 4D 89 1A 00 FC 92 F2",  # S13 real meter
    ),
    (OkResponse(), Logoff(), "EE 00 00 00 00 01 00 11 31"),  # S13 real meter
    (OkResponse(), Terminate(), "EE 00 20 00 00 01 00 80 51"),  # S13 real meter
    (LogonResponse(), Logon(user_id=0, user=pad_user("")), "EE 00 00 00 00 01 00 11 31"),
]

# Example 8 (facts 3.5, S3): decrypted EPSEM body
# 17 <Security, 23 bytes> 08 <Partial Read Offset, 8 bytes>, and the response 14 <read response>.
EXAMPLE8_SECURITY = bytes.fromhex("51") + b"PASSWORD" + b" " * 12 + bytes.fromhex("0002")
EXAMPLE8_READ = bytes.fromhex("3f 0001 000010 0010")
EXAMPLE8_RESPONSE = bytes.fromhex("00 0010") + b"MANUFACTURER SN " + bytes.fromhex("92")


@pytest.mark.parametrize(("request_", "frame"), REQUEST_FRAMES)
def test_request_frames_both_ways(request_: Request, frame: str) -> None:
    wire = payload(frame)
    assert encode_request(request_) == wire
    assert decode_request(wire) == request_
    assert decode_request(bytearray(wire)) == request_
    assert decode_request(memoryview(wire)) == request_


@pytest.mark.parametrize(("request_", "frame"), REQUEST_FRAMES)
def test_request_frames_reject_trailing_and_truncated(request_: Request, frame: str) -> None:
    wire = payload(frame)
    with pytest.raises(RemoteProtocolError) as info:
        decode_request(wire + b"\x00")
    assert info.value.response_code == ResponseCode.ERR
    if len(wire) > 1:
        with pytest.raises(RemoteProtocolError) as info:
            decode_request(wire[:-1])
        assert info.value.response_code == ResponseCode.ERR


@pytest.mark.parametrize(("response", "request_", "frame"), RESPONSE_FRAMES)
def test_response_frames_both_ways(response: Response, request_: Request, frame: str) -> None:
    wire = payload(frame)
    assert encode_response(response) == wire
    assert decode_response(wire, request_) == response
    with pytest.raises(RemoteProtocolError):
        decode_response(wire + b"\x00", request_)


def test_identify_response_1996_form() -> None:
    # S6 transcript: 00 std=00 ver=01 rev=00, then 00 (1996 reserved byte == empty 2006 list).
    resp = decode_response(payload("EE 00 00 00 00 05 00 00 01 00 00 C6 B5"), Identify())
    assert isinstance(resp, IdentifyResponse)
    assert resp.form_1996
    assert resp.features == ()


def test_read_response_checksum_is_the_real_meters() -> None:
    # S13 real meter: ST23 data FB 13 04 02 4D 89 1A 00 -> checksum FC (facts 2.4).
    assert checksum(bytes.fromhex("FB 13 04 02 4D 89 1A 00")) == 0xFC


def test_example8_security_sessionless() -> None:
    req = Security(password=pad_password("PASSWORD", fill=b" "), user_id=2)
    assert len(EXAMPLE8_SECURITY) == 0x17
    assert encode_request(req) == EXAMPLE8_SECURITY
    assert decode_request(EXAMPLE8_SECURITY) == req


def test_example8_partial_read_offset() -> None:
    req = PartialReadOffset(table_id=table_id(1), offset=16, octet_count=16)
    assert len(EXAMPLE8_READ) == 0x08
    assert encode_request(req) == EXAMPLE8_READ
    assert decode_request(EXAMPLE8_READ) == req


def test_example8_response() -> None:
    resp = ReadResponse(data=b"MANUFACTURER SN ")
    assert len(EXAMPLE8_RESPONSE) == 0x14
    assert checksum(b"MANUFACTURER SN ") == 0x92
    assert encode_response(resp) == EXAMPLE8_RESPONSE
    assert decode_response(EXAMPLE8_RESPONSE, decode_request(EXAMPLE8_READ)) == resp
    # Without the request a capture still sees an ok with a body.
    raw = decode_response(EXAMPLE8_RESPONSE, None)
    assert raw == RawResponse(code=0, body=EXAMPLE8_RESPONSE[1:])
    assert encode_response(raw) == EXAMPLE8_RESPONSE


# --------------------------------------------------------------------------- ICSNPP captures
# Synthetic (scapy-made) C12.22 captures from the ICSNPP test suite; expected values from the
# baseline logs beside them. The APDUs come from amidcc's pcap reader and C12.22 codec.


def _services(apdu: bytes) -> list[bytes]:
    message = decode_message(apdu)
    assert message.epsem is not None and message.security_mode is SecurityMode.CLEARTEXT
    return list(message.epsem.services)


def _exchange(vectors: Path, name: str) -> tuple[bytes, bytes]:
    apdus = [a for _, a in capture_apdus(vectors / "icsnpp-c1222" / f"c1222_{name}_service_tcp.pcap")]
    assert len(apdus) == 2
    (req,) = _services(apdus[0])
    (resp,) = _services(apdus[1])
    return req, resp


def _baseline(vectors: Path, capture: str, log: str) -> list[list[str]]:
    text = (vectors / "icsnpp-c1222" / "baseline" / capture / log).read_text()
    rows = [line.split("\t")[5:] for line in text.splitlines() if not line.startswith("#")]
    return [[_unescape(cell) for cell in row] for row in rows]


def _unescape(cell: str) -> str:
    return cell.encode("latin-1").decode("unicode_escape")


def _roundtrip(req_bytes: bytes, resp_bytes: bytes) -> tuple[Request, Response]:
    req = decode_request(req_bytes)
    resp = decode_response(resp_bytes, req)
    assert encode_request(req) == req_bytes
    assert encode_response(resp) == resp_bytes
    return req, resp


ELSTER = UniversalId.parse("1.3.6.1.4.1.33507")


def test_icsnpp_identify(shared_vectors: Path) -> None:
    req, resp = _roundtrip(*_exchange(shared_vectors, "ident"))
    row = _baseline(shared_vectors, "ident_service_tcp", "c1222_identification_service.log")[1]
    assert req == Identify()
    assert row[:3] == ["Resp", "ANSI C12.22", "1"]
    assert resp == IdentifyResponse(
        std=3,
        version=1,
        revision=0,
        features=(
            SecurityMechanismFeature(mechanism=UniversalId.parse(row[4])),
            SessionControlFeature(nbr_sessions=8, sessionless=row[6] == "T"),
            DeviceClassFeature(device_class=UniversalId.parse(row[7])),
            DeviceIdentityFeature(format=int(row[8]), identity=row[9].encode("latin-1")),
        ),
    )
    assert not resp.form_1996


def test_icsnpp_logon(shared_vectors: Path) -> None:
    req, resp = _roundtrip(*_exchange(shared_vectors, "logon"))
    row_req, row_resp = _baseline(
        shared_vectors, "logon_service_tcp", "c1222_logon_security_service.log"
    )
    assert req == Logon(
        user_id=int(row_req[2]), user=row_req[4].encode(), session_idle_timeout=int(row_req[5])
    )
    assert resp == LogonResponse(session_idle_timeout=int(row_resp[5]))


def test_icsnpp_security(shared_vectors: Path) -> None:
    req, resp = _roundtrip(*_exchange(shared_vectors, "security"))
    row = _baseline(shared_vectors, "security_service_tcp", "c1222_logon_security_service.log")[0]
    assert req == Security(password=row[3].encode("latin-1"))
    assert resp == OkResponse()


def test_icsnpp_wait(shared_vectors: Path) -> None:
    req, resp = _roundtrip(*_exchange(shared_vectors, "wait"))
    row = _baseline(shared_vectors, "wait_service_tcp", "c1222_wait_service.log")[0]
    assert req == Wait(seconds=int(row[1]))
    assert resp == OkResponse()


def test_icsnpp_partial_read_index_bad_checksum(shared_vectors: Path) -> None:
    req_bytes, resp_bytes = _exchange(shared_vectors, "rw")
    row_req, row_resp = _baseline(shared_vectors, "rw_service_tcp", "c1222_read_write_service.log")
    req = decode_request(req_bytes)
    assert req == PartialReadIndex(
        table_id=int(row_req[2]), indices=(int(row_req[4]),), element_count=int(row_req[5])
    )
    # The synthetic response carries checksum 00 for "testdata" (correct: A6).
    assert row_resp[7:9] == ["testdata", "0"]
    with pytest.raises(RemoteProtocolError, match="checksum"):
        decode_response(resp_bytes, req)
    assert decode_response(resp_bytes, req, verify_checksum=False) == ReadResponse(data=b"testdata")


def test_icsnpp_register(shared_vectors: Path) -> None:
    req, resp = _roundtrip(*_exchange(shared_vectors, "reg"))
    row_req, row_resp = _baseline(shared_vectors, "reg_service_tcp", "c1222_dereg_reg_service.log")
    assert isinstance(req, Register)
    assert req.node_type == 0xFD and req.connection_type == 0xEF
    # ICSNPP prints the 4-byte device class as relative-OID arcs.
    assert str(UniversalId(arcs=ber.decode_arcs(req.device_class), relative=True)) == row_req[4]
    assert str(req.ap_title) == row_req[5]
    assert str(req.electronic_serial_number) == row_req[6]
    assert req.native_address == row_req[7].encode()
    assert req.my_domain_pattern == row_req[8].encode()
    assert req.registration_period == int(row_req[9])
    assert resp == RegisterResponse(
        ap_title=UniversalId.parse(row_resp[5]),
        reg_period=int(row_resp[9]),
        reg_delay=int(row_resp[10]),
        reg_info=0xEF,
    )


def test_icsnpp_trace(shared_vectors: Path) -> None:
    req, resp = _roundtrip(*_exchange(shared_vectors, "trace"))
    row_req, row_resp = _baseline(shared_vectors, "trace_service_tcp", "c1222_trace_service.log")
    assert req == Trace(ap_title=UniversalId.parse(row_req[1]))
    assert resp == TraceResponse(
        ap_titles=tuple(UniversalId.parse(t) for t in row_resp[1].split(","))
    )
    assert req.ap_title == ELSTER


# --------------------------------------------------------------------------- nok, every code


@pytest.mark.parametrize("code", [c for c in ResponseCode if c != ResponseCode.OK])
@pytest.mark.parametrize(
    "request_",
    [Identify(), FullRead(table_id=0), Logon(user_id=0, user=pad_user("")), Trace(ap_title=ELSTER)]
    + [DefaultRead(), Disconnect(), None],
)
def test_every_nok_code_whatever_the_request(code: ResponseCode, request_: Request | None) -> None:
    resp = decode_response(bytes((code,)), request_)
    assert resp == NokResponse(code=code)
    assert encode_response(resp) == bytes((code,))


@pytest.mark.parametrize("code", [ResponseCode.RQTL, ResponseCode.RSTL])
def test_size_limited_nok(code: ResponseCode) -> None:
    wire = bytes((code,)) + bytes.fromhex("00007FFF")
    resp = decode_response(wire, FullRead(table_id=0))
    assert resp == NokResponse(code=code, max_size=32767)
    assert encode_response(resp) == wire
