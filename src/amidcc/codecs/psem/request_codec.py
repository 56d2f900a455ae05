"""Encode and decode PSEM requests (protocol-facts.md 2.1, 1.5, 3.8).

Hand-written ``struct`` code: these bodies are a few fixed fields, and a dict dispatch on the first
byte plus one ``unpack_from`` beats an interpreted parser by an order of magnitude.

The input to :func:`decode_request` is one whole service (the C12.18 packet DATA after
reassembly, or one EPSEM service after its BER length), so running short is a malformed request.
Errors, all RemoteProtocolError with the code a device should answer with:

- unknown or unsupported request code: ``SNS``;
- body too short, too long, or inconsistent (wrong length for the code, a count overrunning
  the body, trailing bytes): ``ERR``. ``IAR`` is left to the device model, for well-formed
  requests it will not carry out (no such table, offset past the end);
- write data checksum mismatch: ``ERR``, the message naming the checksum.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from ..codes import ResponseCode
from ..errors import LocalProtocolError, RemoteProtocolError
from .primitives import (
    PASSWORD_LENGTH,
    USER_LENGTH,
    decode_data_groups,
    decode_universal_id,
    encode_by_type,
    encode_data_groups,
    encode_universal_id,
)
from .requests import (
    Authenticate,
    DefaultRead,
    Deregister,
    Disconnect,
    FullRead,
    FullWrite,
    Identify,
    Logoff,
    Logon,
    Negotiate,
    PartialReadIndex,
    PartialReadOffset,
    PartialWriteIndex,
    PartialWriteOffset,
    Register,
    Request,
    Resolve,
    Security,
    Terminate,
    TimingSetup,
    Trace,
    Wait,
)

__all__ = ["decode_request", "encode_request", "request_code"]

_BH = struct.Struct(">BH")
_BHB = struct.Struct(">BHB")
_H = struct.Struct(">H")
_HH = struct.Struct(">HH")
_BB = struct.Struct(">BB")
_BBB = struct.Struct(">BBB")
_B4 = struct.Struct(">BBBBB")

# Request codes (facts 2.1).
IDENTIFY = 0x20
TERMINATE = 0x21
DISCONNECT = 0x22
DEREGISTER = 0x24
RESOLVE = 0x25
TRACE = 0x26
REGISTER = 0x27
FULL_READ = 0x30
PREAD_INDEX = 0x30  # + number of indices (1..9)
DEFAULT_READ = 0x3E
PREAD_OFFSET = 0x3F
FULL_WRITE = 0x40
PWRITE_INDEX = 0x40  # + number of indices (1..9)
PWRITE_OFFSET = 0x4F
LOGON = 0x50
SECURITY = 0x51
LOGOFF = 0x52
AUTHENTICATE = 0x53
NEGOTIATE = 0x60  # + number of baud-rate codes (0..11)
WAIT = 0x70
TIMING_SETUP = 0x71

MAX_INDICES = 9
MAX_BAUD_RATES = 11


# --------------------------------------------------------------------------- encoding


def _indices(indices: tuple[int, ...]) -> bytes:
    if not 1 <= len(indices) <= MAX_INDICES:
        raise LocalProtocolError(f"{len(indices)} indices; the index forms carry 1 to 9")
    return b"".join(_H.pack(i) for i in indices)


def _fixed(value: bytes, width: int, what: str) -> bytes:
    if len(value) != width:
        raise LocalProtocolError(f"{what} must be exactly {width} bytes, got {len(value)}")
    return value


def _short(value: bytes, what: str) -> bytes:
    if len(value) > 0xFF:
        raise LocalProtocolError(f"{what} is {len(value)} bytes; its length prefix is one byte")
    return bytes((len(value),)) + value


def _enc_pread_index(r: PartialReadIndex) -> bytes:
    return (
        _BH.pack(PREAD_INDEX + len(r.indices), r.table_id)
        + _indices(r.indices)
        + _H.pack(r.element_count)
    )


def _enc_pread_offset(r: PartialReadOffset) -> bytes:
    return _BH.pack(PREAD_OFFSET, r.table_id) + r.offset.to_bytes(3, "big") + _H.pack(r.octet_count)


def _enc_pwrite_index(r: PartialWriteIndex) -> bytes:
    head = _BH.pack(PWRITE_INDEX + len(r.indices), r.table_id) + _indices(r.indices)
    return head + encode_data_groups(r.data)


def _enc_pwrite_offset(r: PartialWriteOffset) -> bytes:
    head = _BH.pack(PWRITE_OFFSET, r.table_id) + r.offset.to_bytes(3, "big")
    return head + encode_data_groups(r.data)


def _enc_logon(r: Logon) -> bytes:
    body = _BH.pack(LOGON, r.user_id) + _fixed(r.user, USER_LENGTH, "Logon user")
    if r.session_idle_timeout is None:
        return body
    return body + _H.pack(r.session_idle_timeout)


def _enc_security(r: Security) -> bytes:
    body = bytes((SECURITY,)) + _fixed(r.password, PASSWORD_LENGTH, "Security password")
    return body if r.user_id is None else body + _H.pack(r.user_id)


def _enc_negotiate(r: Negotiate) -> bytes:
    if len(r.baud_rates) > MAX_BAUD_RATES:
        raise LocalProtocolError(f"{len(r.baud_rates)} baud rates; Negotiate carries 0 to 11")
    return _BHB.pack(NEGOTIATE + len(r.baud_rates), r.packet_size, r.nbr_packets) + bytes(
        r.baud_rates
    )


def _enc_register(r: Register) -> bytes:
    has_pattern = bool(r.node_type & 0x80)
    if has_pattern != (r.my_domain_pattern is not None):
        raise LocalProtocolError(
            "Register: node_type bit 7 (my-domain pattern present) must be set exactly when"
            " my_domain_pattern is given"
        )
    out = (
        _BBB.pack(REGISTER, r.node_type, r.connection_type)
        + _fixed(r.device_class, 4, "Register device_class")
        + encode_universal_id(r.ap_title)
        + encode_universal_id(r.electronic_serial_number)
        + _short(r.native_address, "Register native_address")
        + r.registration_period.to_bytes(3, "big")
    )
    if r.my_domain_pattern is not None:
        out += _short(r.my_domain_pattern, "Register my_domain_pattern")
    return out


def _enc_full_write(r: FullWrite) -> bytes:
    return _BH.pack(FULL_WRITE, r.table_id) + encode_data_groups(r.data)


def _enc_timing_setup(r: TimingSetup) -> bytes:
    return _B4.pack(TIMING_SETUP, r.traffic, r.inter_char, r.resp_to, r.nbr_retries)


# Each encoder takes exactly the class it is filed under, hence Any.
_ENCODERS: dict[type, Callable[[Any], bytes]] = {
    Identify: lambda r: b"\x20",
    Terminate: lambda r: b"\x21",
    Disconnect: lambda r: b"\x22" + r.parameters,
    FullRead: lambda r: _BH.pack(FULL_READ, r.table_id),
    PartialReadIndex: _enc_pread_index,
    DefaultRead: lambda r: b"\x3e",
    PartialReadOffset: _enc_pread_offset,
    FullWrite: _enc_full_write,
    PartialWriteIndex: _enc_pwrite_index,
    PartialWriteOffset: _enc_pwrite_offset,
    Logon: _enc_logon,
    Security: _enc_security,
    Logoff: lambda r: b"\x52",
    Authenticate: lambda r: b"\x53" + _short(r.data, "Authenticate data"),
    Negotiate: _enc_negotiate,
    Wait: lambda r: _BB.pack(WAIT, r.seconds),
    TimingSetup: _enc_timing_setup,
    Register: _enc_register,
    Deregister: lambda r: b"\x24" + encode_universal_id(r.ap_title),
    Resolve: lambda r: b"\x25" + encode_universal_id(r.ap_title),
    Trace: lambda r: b"\x26" + encode_universal_id(r.ap_title),
}


def encode_request(req: Request) -> bytes:
    """The PSEM bytes of a request: code and body, without any link or EPSEM framing."""
    return encode_by_type(_ENCODERS, req, "request")


def request_code(req: Request) -> int:
    """The request code byte ``req`` is sent with (for logs and correlation)."""
    if isinstance(req, PartialReadIndex):
        return PREAD_INDEX + len(req.indices)
    if isinstance(req, PartialWriteIndex):
        return PWRITE_INDEX + len(req.indices)
    if isinstance(req, Negotiate):
        return NEGOTIATE + len(req.baud_rates)
    return _CODES[type(req)]


_CODES: dict[type, int] = {
    Identify: IDENTIFY,
    Terminate: TERMINATE,
    Disconnect: DISCONNECT,
    FullRead: FULL_READ,
    DefaultRead: DEFAULT_READ,
    PartialReadOffset: PREAD_OFFSET,
    FullWrite: FULL_WRITE,
    PartialWriteOffset: PWRITE_OFFSET,
    Logon: LOGON,
    Security: SECURITY,
    Logoff: LOGOFF,
    Authenticate: AUTHENTICATE,
    Wait: WAIT,
    TimingSetup: TIMING_SETUP,
    Register: REGISTER,
    Deregister: DEREGISTER,
    Resolve: RESOLVE,
    Trace: TRACE,
}


# --------------------------------------------------------------------------- decoding


def _bad(msg: str) -> RemoteProtocolError:
    return RemoteProtocolError(msg, response_code=ResponseCode.ERR)


def _length(buf: bytes, expected: int, name: str) -> None:
    if len(buf) != expected:
        raise _bad(f"{name}: {len(buf)} bytes, expected {expected}")


def _end(buf: bytes, pos: int, name: str) -> None:
    if pos != len(buf):
        raise _bad(f"{name}: {len(buf) - pos} trailing bytes")


def _dec_bare(cls: type[Identify | Terminate | DefaultRead | Logoff], name: str) -> _Decoder:
    instance = cls()

    def decode(buf: bytes, verify: bool) -> Request:
        _length(buf, 1, name)
        return instance

    return decode


def _dec_full_read(buf: bytes, verify: bool) -> Request:
    _length(buf, 3, "Full Read")
    return FullRead(table_id=_H.unpack_from(buf, 1)[0])


def _dec_pread_index(buf: bytes, verify: bool) -> Request:
    n = buf[0] - PREAD_INDEX
    _length(buf, 5 + 2 * n, "Partial Read Index")
    values = struct.unpack_from(f">{n + 2}H", buf, 1)
    return PartialReadIndex(table_id=values[0], indices=values[1:-1], element_count=values[-1])


def _dec_pread_offset(buf: bytes, verify: bool) -> Request:
    _length(buf, 8, "Partial Read Offset")
    return PartialReadOffset(
        table_id=_H.unpack_from(buf, 1)[0],
        offset=int.from_bytes(buf[3:6], "big"),
        octet_count=_H.unpack_from(buf, 6)[0],
    )


def _dec_full_write(buf: bytes, verify: bool) -> Request:
    if len(buf) < 3:
        raise _bad("Full Write: missing table id")
    data, pos = decode_data_groups(buf, 3, "Full Write", verify)
    _end(buf, pos, "Full Write")
    return FullWrite(table_id=_H.unpack_from(buf, 1)[0], data=data)


def _dec_pwrite_index(buf: bytes, verify: bool) -> Request:
    n = buf[0] - PWRITE_INDEX
    head = 3 + 2 * n
    if len(buf) < head:
        raise _bad("Partial Write Index: missing table id or indices")
    values = struct.unpack_from(f">{n + 1}H", buf, 1)
    data, pos = decode_data_groups(buf, head, "Partial Write Index", verify)
    _end(buf, pos, "Partial Write Index")
    return PartialWriteIndex(table_id=values[0], indices=values[1:], data=data)


def _dec_pwrite_offset(buf: bytes, verify: bool) -> Request:
    if len(buf) < 6:
        raise _bad("Partial Write Offset: missing table id or offset")
    data, pos = decode_data_groups(buf, 6, "Partial Write Offset", verify)
    _end(buf, pos, "Partial Write Offset")
    return PartialWriteOffset(
        table_id=_H.unpack_from(buf, 1)[0], offset=int.from_bytes(buf[3:6], "big"), data=data
    )


def _dec_logon(buf: bytes, verify: bool) -> Request:
    # 13 bytes: C12.18. 15 bytes: C12.22 with the requested session idle timeout.
    size = len(buf)
    if size not in (13, 15):
        raise _bad(f"Logon: {size} bytes, expected 13 (C12.18) or 15 (C12.22)")
    return Logon(
        user_id=_H.unpack_from(buf, 1)[0],
        user=buf[3:13],
        session_idle_timeout=_H.unpack_from(buf, 13)[0] if size == 15 else None,
    )


def _dec_security(buf: bytes, verify: bool) -> Request:
    # 21 bytes: session form. 23 bytes: C12.22 sessionless form with a trailing user id.
    size = len(buf)
    if size not in (21, 23):
        raise _bad(f"Security: {size} bytes, expected 21 or 23 (C12.22 sessionless)")
    return Security(password=buf[1:21], user_id=_H.unpack_from(buf, 21)[0] if size == 23 else None)


def _dec_authenticate(buf: bytes, verify: bool) -> Request:
    if len(buf) < 2:
        raise _bad("Authenticate: missing length")
    _length(buf, 2 + buf[1], "Authenticate")
    return Authenticate(data=buf[2:])


def _dec_negotiate(buf: bytes, verify: bool) -> Request:
    n = buf[0] - NEGOTIATE
    _length(buf, 4 + n, "Negotiate")
    packet_size, nbr_packets = _BHB.unpack_from(buf, 0)[1:]
    return Negotiate(packet_size=packet_size, nbr_packets=nbr_packets, baud_rates=tuple(buf[4:]))


def _dec_wait(buf: bytes, verify: bool) -> Request:
    _length(buf, 2, "Wait")
    return Wait(seconds=buf[1])


def _dec_timing_setup(buf: bytes, verify: bool) -> Request:
    _length(buf, 5, "Timing Setup")
    return TimingSetup(traffic=buf[1], inter_char=buf[2], resp_to=buf[3], nbr_retries=buf[4])


def _short_field(buf: bytes, pos: int, what: str) -> tuple[bytes, int]:
    if pos >= len(buf):
        raise _bad(f"{what}: missing length")
    end = pos + 1 + buf[pos]
    if end > len(buf):
        raise _bad(f"{what}: {buf[pos]} bytes overrun the body")
    return buf[pos + 1 : end], end


def _dec_register(buf: bytes, verify: bool) -> Request:
    if len(buf) < 7:
        raise _bad("Register: shorter than its fixed header")
    node_type = buf[1]
    ap_title, pos = decode_universal_id(buf, 7, "Register ap_title")
    esn, pos = decode_universal_id(buf, pos, "Register electronic_serial_number")
    native, pos = _short_field(buf, pos, "Register native_address")
    if pos + 3 > len(buf):
        raise _bad("Register: missing registration_period")
    period = int.from_bytes(buf[pos : pos + 3], "big")
    pos += 3
    pattern: bytes | None = None
    if node_type & 0x80:
        pattern, pos = _short_field(buf, pos, "Register my_domain_pattern")
    _end(buf, pos, "Register")
    return Register(
        node_type=node_type,
        connection_type=buf[2],
        device_class=buf[3:7],
        ap_title=ap_title,
        electronic_serial_number=esn,
        native_address=native,
        registration_period=period,
        my_domain_pattern=pattern,
    )


def _dec_title(cls: type[Deregister | Resolve | Trace], name: str) -> _Decoder:
    def decode(buf: bytes, verify: bool) -> Request:
        title, pos = decode_universal_id(buf, 1, f"{name} ap_title")
        _end(buf, pos, name)
        return cls(ap_title=title)

    return decode


_Decoder = Callable[[bytes, bool], Request]

_DECODERS: dict[int, _Decoder] = {
    IDENTIFY: _dec_bare(Identify, "Identify"),
    TERMINATE: _dec_bare(Terminate, "Terminate"),
    DISCONNECT: lambda buf, verify: Disconnect(parameters=buf[1:]),
    DEREGISTER: _dec_title(Deregister, "Deregister"),
    RESOLVE: _dec_title(Resolve, "Resolve"),
    TRACE: _dec_title(Trace, "Trace"),
    REGISTER: _dec_register,
    FULL_READ: _dec_full_read,
    DEFAULT_READ: _dec_bare(DefaultRead, "Default Read"),
    PREAD_OFFSET: _dec_pread_offset,
    FULL_WRITE: _dec_full_write,
    PWRITE_OFFSET: _dec_pwrite_offset,
    LOGON: _dec_logon,
    SECURITY: _dec_security,
    LOGOFF: _dec_bare(Logoff, "Logoff"),
    AUTHENTICATE: _dec_authenticate,
    WAIT: _dec_wait,
    TIMING_SETUP: _dec_timing_setup,
}
for _n in range(1, MAX_INDICES + 1):
    _DECODERS[PREAD_INDEX + _n] = _dec_pread_index
    _DECODERS[PWRITE_INDEX + _n] = _dec_pwrite_index
for _n in range(MAX_BAUD_RATES + 1):
    _DECODERS[NEGOTIATE + _n] = _dec_negotiate


def decode_request(
    data: bytes | bytearray | memoryview, *, verify_checksum: bool = True
) -> Request:
    """Decode one whole PSEM request (code and body).

    ``verify_checksum=False`` accepts write data whose checksum is wrong (capture analysis);
    a device should leave it on.
    """
    buf = data if type(data) is bytes else bytes(data)
    if not buf:
        raise _bad("empty request")
    decoder = _DECODERS.get(buf[0])
    if decoder is None:
        raise RemoteProtocolError(
            f"unknown request code {buf[0]:#04x}", response_code=ResponseCode.SNS
        )
    return decoder(buf, verify_checksum)
