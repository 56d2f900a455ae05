"""PSEM responses as immutable messages (protocol-facts.md 2.2, 2.3, 1.5, 3.8).

A response does not say which request it answers, so its body is read in the light of the
request (see :func:`~amidcc.codecs.psem.response_codec.decode_response`). Any non-ok code is a
:class:`NokResponse` whatever the request.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeAlias

from ..codes import ResponseCode
from .primitives import UniversalId

__all__ = [
    "DeviceClassFeature",
    "DeviceIdentityFeature",
    "Feature",
    "IdentifyResponse",
    "LogonResponse",
    "NegotiateResponse",
    "NokResponse",
    "OkResponse",
    "RawResponse",
    "ReadResponse",
    "RegisterResponse",
    "ResolveResponse",
    "Response",
    "SecurityMechanismFeature",
    "SessionControlFeature",
    "Standard",
    "TraceResponse",
    "UnknownFeature",
]


class Standard(enum.IntEnum):
    """Identify response ``std`` byte (facts 2.3)."""

    C1218 = 0x00
    RESERVED = 0x01  #: Industry Canada in C12.18-1996
    C1221 = 0x02
    C1222 = 0x03


@dataclass(frozen=True, kw_only=True, slots=True)
class OkResponse:
    """A bare ``00``: the answer to writes, Logoff, Terminate, Wait, Security, Deregister."""


@dataclass(frozen=True, kw_only=True, slots=True)
class NokResponse:
    """Any non-ok response code, whatever the request."""

    code: ResponseCode
    """The response code (never OK)."""
    max_size: int | None = None
    """For ``rqtl`` / ``rstl`` only: the peer's maximum request / response size (4 bytes);
    None when the peer sent the bare code."""
    detail: bytes = b""
    """Bytes after the code (and after the size of rqtl/rstl). Empty in the standard forms; kept
    so that e.g. a partial trace list after a nok is not lost (ICSNPP reads one there)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SecurityMechanismFeature:
    """Identify feature ``04``: a supported security mechanism."""

    mechanism: UniversalId
    """The mechanism's OID."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionControlFeature:
    """Identify feature ``05``: session support."""

    nbr_sessions: int
    """Number of simultaneous sessions supported (bits 0-6)."""
    sessionless: bool
    """Bit 7: sessionless (C12.22) requests supported."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceClassFeature:
    """Identify feature ``06``: the device class."""

    device_class: UniversalId
    """Device class as a universal id."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceIdentityFeature:
    """Identify feature ``07``: ``07 <len> <format> <identity>``, len counting format + identity.

    (The length covers the format byte in ICSNPP's parser and in its capture.)
    """

    format: int
    """Identity format code (1 byte)."""
    identity: bytes
    """Identity bytes, 0..254."""


@dataclass(frozen=True, kw_only=True, slots=True)
class UnknownFeature:
    """A feature tag we cannot size: it and everything up to the list's final ``00``, raw.

    Its length is unknowable, so it can only be the last feature of the list.
    """

    tag: int
    """The feature tag (not 00, 04, 05, 06, 07)."""
    body: bytes
    """Every byte after the tag up to, not including, the end-of-list ``00``."""


Feature: TypeAlias = (
    SecurityMechanismFeature
    | SessionControlFeature
    | DeviceClassFeature
    | DeviceIdentityFeature
    | UnknownFeature
)


@dataclass(frozen=True, kw_only=True, slots=True)
class IdentifyResponse:
    """``00 <std> <ver> <rev> <feature>* 00`` (C12.18-2006, C12.22) or ``00 <std> <ver> <rev> 00``
    (C12.18-1996)."""

    std: int
    """Protocol standard (see Standard): 0 C12.18, 2 C12.21, 3 C12.22."""
    version: int
    """Standard version (1 byte)."""
    revision: int
    """Standard revision (1 byte)."""
    features: tuple[Feature, ...] = ()
    """The feature list of the 2006 form, in wire order."""

    @property
    def form_1996(self) -> bool:
        """True when the response has the 5-byte C12.18-1996 shape.

        The 1996 form's reserved ``00`` and a 2006 response with an empty feature list are the same
        bytes, so this is derived rather than stored: a flag field could not survive a round trip.
        """
        return not self.features


@dataclass(frozen=True, kw_only=True, slots=True)
class ReadResponse:
    """``00 <count:2> <data> <cksum>``: the answer to every read."""

    data: bytes
    """The table bytes read."""


@dataclass(frozen=True, kw_only=True, slots=True)
class LogonResponse:
    """The answer to Logon: ``00`` (C12.18) or ``00 <session_idle_timeout:2>`` (C12.22)."""

    session_idle_timeout: int | None = None
    """None for the bare C12.18 answer, else the granted idle timeout in seconds."""


@dataclass(frozen=True, kw_only=True, slots=True)
class NegotiateResponse:
    """``00 <packet_size:2> <nbr_packets:1> [<baud:1>]`` (facts 1.5)."""

    packet_size: int
    """Packet size both sides now use."""
    nbr_packets: int
    """Number of packets per transmission both sides now use."""
    baud_rate: int | None = None
    """The chosen baud-rate code, or None when the device kept the rate."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RegisterResponse:
    """``00 <ap_title> <reg_delay:2> <reg_period:3> <reg_info:1>`` (facts 3.8)."""

    ap_title: UniversalId
    """The AP title the registrar assigned or confirmed."""
    reg_delay: int
    """Registration delay (2 bytes, seconds)."""
    reg_period: int
    """Registration period (3 bytes, seconds)."""
    reg_info: int
    """Bit set (RegInfo), one byte."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ResolveResponse:
    """``00 <len:1> <local_address>``."""

    local_address: bytes
    """Native address of the resolved AP title (0..255 bytes)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TraceResponse:
    """``00 <ap_title>+``: the relays traversed [L]."""

    ap_titles: tuple[UniversalId, ...]
    """AP titles in wire order."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RawResponse:
    """A response read without knowing the request (captures), or whose body is unverified
    (Authenticate, Timing Setup, Disconnect)."""

    code: int
    """The response code byte."""
    body: bytes
    """Everything after the code."""


Response: TypeAlias = (
    OkResponse
    | NokResponse
    | IdentifyResponse
    | ReadResponse
    | LogonResponse
    | NegotiateResponse
    | RegisterResponse
    | ResolveResponse
    | TraceResponse
    | RawResponse
)
