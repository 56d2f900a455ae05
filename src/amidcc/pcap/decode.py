"""One captured APDU -> what it says: the C12.22 message, its security status, its PSEM services.

The capture analyser calls :func:`decode_apdu_bytes` for every APDU it frames, then
:func:`decode_responses` once it knows which request a response answers (a PSEM response body is
read in the light of its request). Nothing here raises for the peer's garbage: a malformed APDU or
service becomes an ``error`` string on the record, because an analyser counts bad frames and goes
on.

Security, with the keys the user supplied (protocol-facts.md 3.5):

* ``cleartext``: mode 0;
* ``verified`` / ``decrypted``: mode 1 with a good MAC / mode 2 decrypted with a good MAC;
* ``unverified``: mode 1 without the key (the services are readable, the MAC unchecked);
* ``encrypted``: mode 2 without the key (services unknown);
* ``bad_mac``: the key is known and the MAC does not match (the APDU is then read as if no key
  were known, so its headers still show).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from amidcc.codecs import psem
from amidcc.codecs.ber import DEFAULT_BASE_OID
from amidcc.codecs.c1222 import C1222Message, SecurityMode, decode_message, unprotect
from amidcc.codecs.errors import CodecError, SecurityError

from .records import MessageKind, SecurityStatus, ServiceRecord, build_record

__all__ = [
    "DecodedApdu",
    "ReadApdu",
    "decode_apdu_bytes",
    "decode_responses",
    "mixed_records",
    "read_apdu",
    "read_responses",
    "request_records",
]

_S = TypeVar("_S", ServiceRecord, bytes)


@dataclass(frozen=True, kw_only=True, slots=True)
class DecodedApdu:
    """An APDU decoded as far as possible."""

    message: C1222Message | None
    """The decoded message; None when the APDU is malformed."""
    security: SecurityStatus | None
    """Security status; None when malformed or a segment."""
    kind: MessageKind
    """Request, response, ... (from the services)."""
    services: tuple[ServiceRecord, ...] = ()
    """The services, requests decoded, responses still raw (see :func:`decode_responses`)."""
    error: str | None = None
    """Why the APDU (or its security) failed; set for malformed APDUs and bad MACs."""


def _decode(
    apdu: bytes, keys: Mapping[int, bytes] | None, base_oid: tuple[int, ...]
) -> tuple[C1222Message, SecurityStatus, str | None]:
    """decode_message with the analyser's policy on keys (see the module docstring)."""
    plain = decode_message(apdu, None, base_oid)
    mode = plain.security_mode
    if mode is None or mode is SecurityMode.CLEARTEXT:
        return plain, SecurityStatus.CLEARTEXT, None
    return _secured(apdu, plain, keys, base_oid)


def _secured(
    apdu: bytes, plain: C1222Message, keys: Mapping[int, bytes] | None, base_oid: tuple[int, ...]
) -> tuple[C1222Message, SecurityStatus, str | None]:
    """A secured message (``plain``: decoded without keys), verified when its key is known."""
    mode = plain.security_mode
    if keys is None or plain.key_id is None or plain.key_id not in keys:
        status = SecurityStatus.ENCRYPTED if plain.epsem is None else SecurityStatus.UNVERIFIED
        return plain, status, None
    try:  # decode_message(apdu, keys, base_oid), without decoding the APDU again
        _, epsem = unprotect(plain.apdu, keys, base_oid)
    except SecurityError as exc:
        return plain, SecurityStatus.BAD_MAC, str(exc)
    message = replace(plain, epsem=epsem, authenticated=True)
    status = (
        SecurityStatus.DECRYPTED if mode is SecurityMode.CIPHERTEXT else SecurityStatus.VERIFIED
    )
    return message, status, None


#: Request services already decoded, by their bytes: a head-end sends the same few requests to
#: every meter (a ServiceRecord is immutable, so sharing one is safe). Cleared when full.
_REQUESTS: dict[bytes, ServiceRecord] = {}
_REQUESTS_SIZE = 4096
_REQUEST_CACHE_MAX_LENGTH = 64  # writes carry data and seldom repeat: not worth keeping


def _request_record(raw: bytes) -> ServiceRecord:
    record = _REQUESTS.get(raw)
    if record is not None:
        return record
    try:
        decoded: psem.Request | None = psem.decode_request(raw, verify_checksum=False)
        error = None
    except CodecError as exc:
        decoded, error = None, str(exc)
    record = _service_record(raw, True, decoded, None, None, error)
    if len(raw) <= _REQUEST_CACHE_MAX_LENGTH:
        if len(_REQUESTS) >= _REQUESTS_SIZE:
            _REQUESTS.clear()
        _REQUESTS[raw] = record
    return record


def _kind(raws: tuple[bytes, ...]) -> MessageKind:
    if not raws:
        return MessageKind.UNKNOWN
    requests = 0
    for raw in raws:
        requests += raw[0] >= 0x20
    if requests == len(raws):
        return MessageKind.REQUEST
    return MessageKind.RESPONSE if requests == 0 else MessageKind.MIXED


#: What :func:`read_apdu` returns: message, security, kind, raw services, error.
ReadApdu = tuple[
    C1222Message | None, SecurityStatus | None, MessageKind, tuple[bytes, ...], str | None
]


def read_apdu(apdu: bytes, keys: Mapping[int, bytes] | None, base_oid: tuple[int, ...]) -> ReadApdu:
    """:func:`decode_apdu_bytes` as a tuple, services left as bytes (the analyser's hot path: it
    makes each service's record once, a response's after matching it with its request)."""
    try:  # _decode, inline
        message = decode_message(apdu, None, base_oid)
        if message.security_mode is None or message.security_mode is SecurityMode.CLEARTEXT:
            security, error = SecurityStatus.CLEARTEXT, None
        else:
            message, security, error = _secured(apdu, message, keys, base_oid)
    except CodecError as exc:
        return None, None, MessageKind.UNKNOWN, (), str(exc)
    if message.segment:
        return message, None, MessageKind.SEGMENT, (), None
    raws = () if message.epsem is None else message.epsem.services
    return message, security, _kind(raws), raws, error


def request_records(raws: tuple[bytes, ...]) -> tuple[ServiceRecord, ...]:
    """Records of a request message's services (decoded)."""
    if len(raws) == 1:
        return (_request_record(raws[0]),)
    return tuple(_request_record(raw) for raw in raws)


def decode_apdu_bytes(
    apdu: bytes,
    keys: Mapping[int, bytes] | None = None,
    base_oid: tuple[int, ...] = DEFAULT_BASE_OID,
) -> DecodedApdu:
    """Decode one whole APDU; requests are decoded, responses kept raw for :func:`decode_responses`."""
    message, security, kind, raws, error = read_apdu(apdu, keys, base_oid)
    services = tuple(
        _request_record(raw) if raw[0] >= 0x20 else ServiceRecord(raw=raw, is_request=False)
        for raw in raws
    )
    return DecodedApdu(
        message=message, security=security, kind=kind, services=services, error=error
    )


def _read(service: ServiceRecord, req: ServiceRecord | None) -> ServiceRecord:
    """One response service read against one request service (or on its own)."""
    if service.is_request:
        return service
    return _read_raw(service.raw, req, service.decoded, service.error)


def _read_raw(
    raw: bytes,
    req: ServiceRecord | None,
    decoded: psem.Request | psem.Response | None = None,
    error: str | None = None,
) -> ServiceRecord:
    """A response's bytes read against one request service (``decoded`` and ``error`` are kept
    when reading fails or succeeds, as ``dataclasses.replace`` would)."""
    request = req.decoded if req is not None and isinstance(req.decoded, psem.Request) else None
    try:
        decoded = psem.decode_response(raw, request, verify_checksum=False)
    except CodecError as exc:
        error = str(exc)
    return _service_record(raw, False, decoded, request, None if req is None else req.raw[0], error)


def _service_record(
    raw: bytes,
    is_request: bool,
    decoded: psem.Request | psem.Response | None,
    request: psem.Request | None,
    request_code: int | None,
    error: str | None,
) -> ServiceRecord:
    return build_record(
        ServiceRecord,
        {
            "raw": raw, "is_request": is_request, "decoded": decoded, "request": request,
            "request_code": request_code, "error": error,
        },
    )  # fmt: skip


def _aligned(
    read: Callable[[_S, ServiceRecord | None], ServiceRecord],
    services: tuple[_S, ...],
    requests: tuple[ServiceRecord, ...] | None,
) -> tuple[ServiceRecord, ...]:
    """See :func:`decode_responses`."""
    if requests is None:
        return tuple(read(s, None) for s in services)
    if len(services) == 1 and len(requests) == 1:  # the usual exchange, without the generators
        return (read(services[0], requests[0]),)
    first = tuple(
        read(s, requests[i] if i < len(requests) else None) for i, s in enumerate(services)
    )
    skip = len(requests) - len(services)
    if skip <= 0 or all(s.error is None for s in first):
        return first
    last = tuple(read(s, requests[skip + i]) for i, s in enumerate(services))
    return last if all(s.error is None for s in last) else first


def decode_responses(
    services: tuple[ServiceRecord, ...], requests: tuple[ServiceRecord, ...] | None
) -> tuple[ServiceRecord, ...]:
    """Read each response service against its request service.

    EPSEM responses come back in the order of the requests (protocol-facts.md 3.4), but not always
    one for one: in the standard's example 8 a sessionless request carries Security and a read, and
    the response carries only the read's answer. So with fewer responses than requests, the
    responses are aligned with the *last* requests when that reads every response cleanly, and
    with the first ones otherwise. Without a request (``None``) a response is read on its own: ok,
    nok, or raw body.
    """
    return _aligned(_read, services, requests)


def read_responses(
    raws: tuple[bytes, ...], requests: tuple[ServiceRecord, ...] | None
) -> tuple[ServiceRecord, ...]:
    """:func:`decode_responses` on the bytes of a response message's services."""
    if requests is not None and len(raws) == 1 and len(requests) == 1:  # as _aligned, one call less
        return (_read_raw(raws[0], requests[0]),)
    return _aligned(_read_raw, raws, requests)


def mixed_records(raws: tuple[bytes, ...]) -> tuple[ServiceRecord, ...]:
    """Records of a message with requests and responses (responses read on their own)."""
    return tuple(_request_record(raw) if raw[0] >= 0x20 else _read_raw(raw, None) for raw in raws)
