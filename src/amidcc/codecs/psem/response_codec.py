"""Encode and decode PSEM responses (protocol-facts.md 2.2, 2.3, 1.5, 3.8).

The response code comes first; any non-ok code gives :class:`NokResponse` whatever the request.
An ``ok`` body is read as the request dictates (a read's answer differs from an identify's).
With no request (a capture whose request was not seen) the result is OkResponse, NokResponse or
RawResponse. Malformed responses raise RemoteProtocolError (code ERR).

Hand-written ``struct`` code, for the same reason as the request codec.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from ..codes import ResponseCode
from ..errors import LocalProtocolError, RemoteProtocolError
from .primitives import (
    decode_data_groups,
    decode_universal_id,
    encode_by_type,
    encode_data_groups,
    encode_universal_id,
)
from .requests import (
    Authenticate,
    DefaultRead,
    Disconnect,
    FullRead,
    Identify,
    Logon,
    Negotiate,
    PartialReadIndex,
    PartialReadOffset,
    Register,
    Request,
    Resolve,
    TimingSetup,
    Trace,
)
from .responses import (
    DeviceClassFeature,
    DeviceIdentityFeature,
    Feature,
    IdentifyResponse,
    LogonResponse,
    NegotiateResponse,
    NokResponse,
    OkResponse,
    RawResponse,
    ReadResponse,
    RegisterResponse,
    ResolveResponse,
    Response,
    SecurityMechanismFeature,
    SessionControlFeature,
    TraceResponse,
    UnknownFeature,
)

__all__ = ["decode_response", "encode_response"]

_H = struct.Struct(">H")
_L = struct.Struct(">L")
_OK = b"\x00"
_OK_RESPONSE = OkResponse()

# Identify feature tags (facts 2.3, S8).
FEATURE_SECURITY_MECHANISM = 0x04
FEATURE_SESSION_CONTROL = 0x05
FEATURE_DEVICE_CLASS = 0x06
FEATURE_DEVICE_IDENTITY = 0x07
_KNOWN_FEATURE_TAGS = frozenset((0x00, 0x04, 0x05, 0x06, 0x07))

_SIZED_NOK = (ResponseCode.RQTL, ResponseCode.RSTL)
_NOK_CODES: dict[int, ResponseCode] = {c.value: c for c in ResponseCode if c != ResponseCode.OK}


# --------------------------------------------------------------------------- encoding


def _enc_nok(r: NokResponse) -> bytes:
    code = ResponseCode(r.code)
    if code == ResponseCode.OK:
        raise LocalProtocolError("NokResponse with code OK; use OkResponse")
    if code in _SIZED_NOK:
        if r.max_size is None:
            if r.detail:
                raise LocalProtocolError(f"{code.name} detail without max_size cannot be decoded")
            return bytes((code,))
        return bytes((code,)) + _L.pack(r.max_size) + r.detail
    if r.max_size is not None:
        raise LocalProtocolError(f"max_size belongs to rqtl/rstl only, not {code.name}")
    return bytes((code,)) + r.detail


def _enc_feature(f: Feature, last: bool) -> bytes:
    if isinstance(f, SecurityMechanismFeature):
        return b"\x04" + encode_universal_id(f.mechanism)
    if isinstance(f, SessionControlFeature):
        if not 0 <= f.nbr_sessions <= 0x7F:
            raise LocalProtocolError(f"nbr_sessions {f.nbr_sessions} outside 0..127")
        return bytes((FEATURE_SESSION_CONTROL, f.nbr_sessions | (0x80 if f.sessionless else 0)))
    if isinstance(f, DeviceClassFeature):
        return b"\x06" + encode_universal_id(f.device_class)
    if isinstance(f, DeviceIdentityFeature):
        if len(f.identity) > 0xFE:
            raise LocalProtocolError(f"device identity of {len(f.identity)} bytes (max 254)")
        return bytes((FEATURE_DEVICE_IDENTITY, len(f.identity) + 1, f.format)) + f.identity
    if f.tag in _KNOWN_FEATURE_TAGS or not last:
        raise LocalProtocolError(
            f"UnknownFeature tag {f.tag:#04x}: must be an unknown tag and the last feature"
        )
    return bytes((f.tag,)) + f.body


def _enc_identify(r: IdentifyResponse) -> bytes:
    last = len(r.features) - 1
    features = b"".join(_enc_feature(f, i == last) for i, f in enumerate(r.features))
    return bytes((0, r.std, r.version, r.revision)) + features + _OK


def _enc_logon(r: LogonResponse) -> bytes:
    return _OK if r.session_idle_timeout is None else _OK + _H.pack(r.session_idle_timeout)


def _enc_negotiate(r: NegotiateResponse) -> bytes:
    out = _OK + _H.pack(r.packet_size) + bytes((r.nbr_packets,))
    return out if r.baud_rate is None else out + bytes((r.baud_rate,))


def _enc_register(r: RegisterResponse) -> bytes:
    return (
        _OK
        + encode_universal_id(r.ap_title)
        + _H.pack(r.reg_delay)
        + r.reg_period.to_bytes(3, "big")
        + bytes((r.reg_info,))
    )


def _enc_resolve(r: ResolveResponse) -> bytes:
    if len(r.local_address) > 0xFF:
        raise LocalProtocolError(f"local address of {len(r.local_address)} bytes (max 255)")
    return bytes((0, len(r.local_address))) + r.local_address


# Each encoder takes exactly the class it is filed under, hence Any.
_ENCODERS: dict[type, Callable[[Any], bytes]] = {
    OkResponse: lambda r: _OK,
    NokResponse: _enc_nok,
    IdentifyResponse: _enc_identify,
    ReadResponse: lambda r: _OK + encode_data_groups(r.data),
    LogonResponse: _enc_logon,
    NegotiateResponse: _enc_negotiate,
    RegisterResponse: _enc_register,
    ResolveResponse: _enc_resolve,
    TraceResponse: lambda r: _OK + b"".join(encode_universal_id(t) for t in r.ap_titles),
    RawResponse: lambda r: bytes((r.code,)) + r.body,
}


def encode_response(resp: Response) -> bytes:
    """The PSEM bytes of a response: code and body, without any link or EPSEM framing."""
    return encode_by_type(_ENCODERS, resp, "response")


# --------------------------------------------------------------------------- decoding


def _decode_nok(buf: bytes, lenient: bool) -> Response:
    code = _NOK_CODES.get(buf[0])
    if code is None:
        if lenient:
            return RawResponse(code=buf[0], body=buf[1:])
        raise RemoteProtocolError(f"unknown response code {buf[0]:#04x}")
    if len(buf) == 1:
        return NokResponse(code=code)
    if code in _SIZED_NOK:
        if len(buf) < 5:
            raise RemoteProtocolError(f"{code.name}: {len(buf) - 1}-byte size, expected 4")
        return NokResponse(code=code, max_size=_L.unpack_from(buf, 1)[0], detail=buf[5:])
    return NokResponse(code=code, detail=buf[1:])


def _length(buf: bytes, allowed: tuple[int, ...], name: str) -> int:
    size = len(buf)
    if size not in allowed:
        raise RemoteProtocolError(f"{name} response: {size} bytes, expected {allowed}")
    return size


def _end(buf: bytes, pos: int, name: str) -> None:
    if pos != len(buf):
        raise RemoteProtocolError(f"{name} response: {len(buf) - pos} trailing bytes")


def _dec_ok(buf: bytes, verify: bool) -> Response:
    _length(buf, (1,), "ok")
    return _OK_RESPONSE


def _dec_ok_or_raw(buf: bytes, verify: bool) -> Response:
    # Authenticate / Timing Setup / Disconnect ok bodies are unverified: keep them raw.
    return _OK_RESPONSE if len(buf) == 1 else RawResponse(code=0, body=buf[1:])


def _dec_read(buf: bytes, verify: bool) -> Response:
    data, pos = decode_data_groups(buf, 1, "Read response", verify)
    _end(buf, pos, "Read")
    return ReadResponse(data=data)


def _dec_feature(buf: bytes, pos: int, end: int) -> tuple[Feature, int]:
    tag = buf[pos]
    if tag == FEATURE_SECURITY_MECHANISM:
        uid, pos = decode_universal_id(buf, pos + 1, "Identify security mechanism")
        return SecurityMechanismFeature(mechanism=uid), pos
    if tag == FEATURE_DEVICE_CLASS:
        uid, pos = decode_universal_id(buf, pos + 1, "Identify device class")
        return DeviceClassFeature(device_class=uid), pos
    if tag == FEATURE_SESSION_CONTROL:
        if pos + 2 > len(buf):
            raise RemoteProtocolError("Identify session control: missing value")
        value = buf[pos + 1]
        return SessionControlFeature(
            nbr_sessions=value & 0x7F, sessionless=bool(value & 0x80)
        ), pos + 2
    if tag == FEATURE_DEVICE_IDENTITY:
        if pos + 3 > len(buf) or buf[pos + 1] == 0:
            raise RemoteProtocolError("Identify device identity: missing length or format")
        stop = pos + 2 + buf[pos + 1]
        if stop > len(buf):
            raise RemoteProtocolError("Identify device identity: overruns the body")
        return DeviceIdentityFeature(format=buf[pos + 2], identity=buf[pos + 3 : stop]), stop
    return UnknownFeature(tag=tag, body=buf[pos + 1 : end]), end


def _dec_identify(buf: bytes, verify: bool) -> Response:
    if len(buf) < 5:
        raise RemoteProtocolError(f"Identify response: {len(buf)} bytes, at least 5")
    end = len(buf) - 1
    if buf[end]:
        raise RemoteProtocolError("Identify response: feature list not ended by 00")
    features: list[Feature] = []
    pos = 4
    while pos < end:
        if buf[pos] == 0:
            raise RemoteProtocolError(f"Identify response: {end - pos} bytes after the list end")
        feature, pos = _dec_feature(buf, pos, end)
        features.append(feature)
    if pos > end:
        raise RemoteProtocolError("Identify response: a feature swallowed the list end")
    return IdentifyResponse(std=buf[1], version=buf[2], revision=buf[3], features=tuple(features))


def _dec_logon(buf: bytes, verify: bool) -> Response:
    if _length(buf, (1, 3), "Logon") == 1:
        return LogonResponse()
    return LogonResponse(session_idle_timeout=_H.unpack_from(buf, 1)[0])


def _dec_negotiate(buf: bytes, verify: bool) -> Response:
    size = _length(buf, (4, 5), "Negotiate")
    return NegotiateResponse(
        packet_size=_H.unpack_from(buf, 1)[0],
        nbr_packets=buf[3],
        baud_rate=buf[4] if size == 5 else None,
    )


def _dec_register(buf: bytes, verify: bool) -> Response:
    title, pos = decode_universal_id(buf, 1, "Register response ap_title")
    _length(buf[pos:], (6,), "Register (after the ap_title)")
    return RegisterResponse(
        ap_title=title,
        reg_delay=_H.unpack_from(buf, pos)[0],
        reg_period=int.from_bytes(buf[pos + 2 : pos + 5], "big"),
        reg_info=buf[pos + 5],
    )


def _dec_resolve(buf: bytes, verify: bool) -> Response:
    if len(buf) < 2:
        raise RemoteProtocolError("Resolve response: missing address length")
    _length(buf, (2 + buf[1],), "Resolve")
    return ResolveResponse(local_address=buf[2:])


def _dec_trace(buf: bytes, verify: bool) -> Response:
    titles = []
    pos = 1
    while pos < len(buf):
        title, pos = decode_universal_id(buf, pos, "Trace response ap_title")
        titles.append(title)
    return TraceResponse(ap_titles=tuple(titles))


_Decoder = Callable[[bytes, bool], Response]

_DECODERS: dict[type, _Decoder] = {
    Identify: _dec_identify,
    FullRead: _dec_read,
    PartialReadIndex: _dec_read,
    PartialReadOffset: _dec_read,
    DefaultRead: _dec_read,
    Logon: _dec_logon,
    Negotiate: _dec_negotiate,
    Register: _dec_register,
    Resolve: _dec_resolve,
    Trace: _dec_trace,
    Authenticate: _dec_ok_or_raw,
    TimingSetup: _dec_ok_or_raw,
    Disconnect: _dec_ok_or_raw,
}


def decode_response(
    data: bytes | bytearray | memoryview,
    request: Request | None,
    *,
    verify_checksum: bool = True,
) -> Response:
    """Decode one whole PSEM response, reading an ``ok`` body as ``request`` dictates.

    With ``request=None`` (unknown request, e.g. in a capture) the result is OkResponse,
    NokResponse, or RawResponse for an ok with a body or an unknown code. ``verify_checksum=False``
    accepts read data whose checksum is wrong (capture analysis only).
    """
    buf = data if type(data) is bytes else bytes(data)
    if not buf:
        raise RemoteProtocolError("empty response")
    if buf[0]:
        return _decode_nok(buf, request is None)
    if request is None:
        return _OK_RESPONSE if len(buf) == 1 else RawResponse(code=0, body=buf[1:])
    return _DECODERS.get(type(request), _dec_ok)(buf, verify_checksum)
