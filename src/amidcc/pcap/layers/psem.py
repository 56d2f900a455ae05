"""scapy layers for the PSEM services (protocol-facts.md 2 and 3.8): one class per request, with
its fields, and one class for responses.

A response does not say which request it answers, so a dissected response is a
:class:`PSEMResponse` (code and raw body); :meth:`PSEMResponse.decode` reads the body with
amidcc's codec once the request is known. :func:`psem_class` picks the class of a service from its
first byte; C12.18 packets and C12.22 EPSEM services both use it.
"""

# mypy: disable-error-code="misc"

from __future__ import annotations

from typing import Any

from scapy.fields import (
    ByteEnumField,
    ByteField,
    ConditionalField,
    FieldLenField,
    FieldListField,
    FlagsField,
    ShortField,
    StrField,
    StrFixedLenField,
    StrLenField,
    ThreeBytesField,
    XByteField,
    XShortField,
)
from scapy.packet import Packet

from amidcc.codecs import psem
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.psem import checksum

from .fields import OptionalShortField, UniversalIdField

__all__ = [
    "PSEM_REQUEST_CLASSES",
    "PSEMAuthenticate",
    "PSEMDeregister",
    "PSEMDisconnect",
    "PSEMIdentify",
    "PSEMLogoff",
    "PSEMLogon",
    "PSEMNegotiate",
    "PSEMReadDefault",
    "PSEMReadFull",
    "PSEMReadIndex",
    "PSEMReadOffset",
    "PSEMRegister",
    "PSEMResolve",
    "PSEMResponse",
    "PSEMSecurity",
    "PSEMTerminate",
    "PSEMTimingSetup",
    "PSEMTrace",
    "PSEMUnknown",
    "PSEMWait",
    "PSEMWriteFull",
    "PSEMWriteIndex",
    "PSEMWriteOffset",
    "psem_class",
]

#: Code -> name, for the ``code`` field of every service.
CODES: dict[int, str] = {
    **{c.value: c.name.lower() for c in ResponseCode},
    **{code: name.lower().replace(" ", "_") for code, name in psem.REQUEST_NAMES.items()},
}

#: Register flag names, lowest bit first, from the codec's flags.
_NODE_TYPE = [str(m.name).lower() for m in psem.NodeType]
_CONNECTION_TYPE = [str(m.name).lower() for m in psem.ConnectionType]


class _PSEM(Packet):
    """Base of the service layers: the code byte, and nothing after the service."""

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        return p + pay


def _code(default: int | None) -> Any:
    """The service code; None (the index forms, Negotiate) is filled in when building."""
    return ByteEnumField("code", default, CODES)


class PSEMIdentify(_PSEM):
    name = "PSEM Identify"
    fields_desc = [_code(0x20)]


class PSEMTerminate(_PSEM):
    name = "PSEM Terminate"
    fields_desc = [_code(0x21)]


class PSEMDisconnect(_PSEM):
    name = "PSEM Disconnect"
    fields_desc = [_code(0x22), StrField("parameters", b"")]


class PSEMLogoff(_PSEM):
    name = "PSEM Logoff"
    fields_desc = [_code(0x52)]


class PSEMReadDefault(_PSEM):
    name = "PSEM Default Read"
    fields_desc = [_code(0x3E)]


class PSEMReadFull(_PSEM):
    name = "PSEM Full Read"
    fields_desc = [_code(0x30), XShortField("table_id", 0)]


class _Indexed(_PSEM):
    """Index reads and writes: the code says how many indices follow (``base + n``)."""

    base = 0x30

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        if self.code is None:
            p = bytes((self.base + len(self.indices),)) + p[1:]
        return p + pay


class PSEMReadIndex(_Indexed):
    name = "PSEM Partial Read Index"
    fields_desc = [
        _code(None),
        XShortField("table_id", 0),
        FieldListField("indices", [0], ShortField("", 0), count_from=lambda p: p.code - 0x30),  # type: ignore[list-item]
        ShortField("element_count", 1),
    ]


class PSEMReadOffset(_PSEM):
    name = "PSEM Partial Read Offset"
    fields_desc = [_code(0x3F), XShortField("table_id", 0), ThreeBytesField("offset", 0),
                   ShortField("octet_count", 0)]  # fmt: skip


class _Write(_PSEM):
    """Writes end with ``<count> <data> <cksum>``: count and checksum are computed when None."""

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        if self.cksum is None:
            p = p[:-1] + bytes((checksum(self.data),))
        return p + pay


def _write_tail() -> list[Any]:
    return [
        FieldLenField("count", None, length_of="data", fmt="!H"),
        StrLenField("data", b"", length_from=lambda p: p.count),
        XByteField("cksum", None),
    ]


class PSEMWriteFull(_Write):
    name = "PSEM Full Write"
    fields_desc = [_code(0x40), XShortField("table_id", 0), *_write_tail()]


class PSEMWriteIndex(_Write, _Indexed):
    name = "PSEM Partial Write Index"
    base = 0x40
    fields_desc = [
        _code(None),
        XShortField("table_id", 0),
        FieldListField("indices", [0], ShortField("", 0), count_from=lambda p: p.code - 0x40),  # type: ignore[list-item]
        *_write_tail(),
    ]

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        return _Indexed.post_build(self, _Write.post_build(self, p, b""), pay)


class PSEMWriteOffset(_Write):
    name = "PSEM Partial Write Offset"
    fields_desc = [
        _code(0x4F),
        XShortField("table_id", 0),
        ThreeBytesField("offset", 0),
        *_write_tail(),
    ]


class PSEMLogon(_PSEM):
    name = "PSEM Logon"
    fields_desc = [
        _code(0x50),
        ShortField("user_id", 0),
        StrFixedLenField("user", b" " * 10, 10),
        OptionalShortField("session_idle_timeout", None),  # C12.22 only
    ]


class PSEMSecurity(_PSEM):
    name = "PSEM Security"
    fields_desc = [
        _code(0x51),
        StrFixedLenField("password", b" " * 20, 20),
        OptionalShortField("user_id", None),  # C12.22 sessionless form only
    ]


class PSEMAuthenticate(_PSEM):
    name = "PSEM Authenticate"
    fields_desc = [
        _code(0x53),
        FieldLenField("length", None, length_of="data", fmt="B"),
        StrLenField("data", b"", length_from=lambda p: p.length),
    ]


class PSEMNegotiate(_Indexed):
    name = "PSEM Negotiate"
    base = 0x60
    fields_desc = [
        _code(None),
        ShortField("packet_size", 64),
        ByteField("nbr_packets", 1),
        FieldListField("baud_rates", [], ByteField("", 6), count_from=lambda p: p.code - 0x60),
    ]

    @property
    def indices(self) -> list[int]:  # _Indexed counts these
        return list(self.baud_rates)


class PSEMWait(_PSEM):
    name = "PSEM Wait"
    fields_desc = [_code(0x70), ByteField("seconds", 0)]


class PSEMTimingSetup(_PSEM):
    name = "PSEM Timing Setup"
    fields_desc = [_code(0x71), ByteField("traffic", 0), ByteField("inter_char", 0),
                   ByteField("resp_to", 0), ByteField("nbr_retries", 0)]  # fmt: skip


class PSEMRegister(_PSEM):
    name = "PSEM Register"
    fields_desc = [
        _code(0x27),
        FlagsField("node_type", 0x20, 8, _NODE_TYPE),
        FlagsField("connection_type", 0, 8, _CONNECTION_TYPE),
        StrFixedLenField("device_class", b"\x00" * 4, 4),
        UniversalIdField("ap_title", ".1"),
        UniversalIdField("electronic_serial_number", ".1"),
        FieldLenField("native_address_length", None, length_of="native_address", fmt="B"),
        StrLenField("native_address", b"", length_from=lambda p: p.native_address_length),
        ThreeBytesField("registration_period", 0),
        ConditionalField(
            FieldLenField("my_domain_pattern_length", None, length_of="my_domain_pattern", fmt="B"),
            lambda p: p.node_type & 0x80,
        ),
        ConditionalField(
            StrLenField("my_domain_pattern", b"", length_from=lambda p: p.my_domain_pattern_length),
            lambda p: p.node_type & 0x80,
        ),
    ]


class PSEMDeregister(_PSEM):
    name = "PSEM Deregister"
    fields_desc = [_code(0x24), UniversalIdField("ap_title", ".1")]


class PSEMResolve(_PSEM):
    name = "PSEM Resolve"
    fields_desc = [_code(0x25), UniversalIdField("ap_title", ".1")]


class PSEMTrace(_PSEM):
    name = "PSEM Trace"
    fields_desc = [_code(0x26), UniversalIdField("ap_title", ".1")]


class PSEMUnknown(_PSEM):
    name = "PSEM unknown service"
    fields_desc = [_code(0xFF), StrField("body", b"")]


class PSEMResponse(_PSEM):
    """Any response: the code and the raw body (its layout depends on the request)."""

    name = "PSEM Response"
    fields_desc = [_code(0x00), StrField("body", b"")]

    def decode(self, request: Packet | psem.Request | None = None) -> psem.Response:
        """The response read by amidcc's codec against ``request`` (a PSEM layer or a request)."""
        if isinstance(request, Packet):
            request = psem.decode_request(bytes(request), verify_checksum=False)
        return psem.decode_response(bytes(self), request, verify_checksum=False)


#: Request code -> layer class.
PSEM_REQUEST_CLASSES: dict[int, type[Packet]] = {
    0x20: PSEMIdentify, 0x21: PSEMTerminate, 0x22: PSEMDisconnect, 0x24: PSEMDeregister,
    0x25: PSEMResolve, 0x26: PSEMTrace, 0x27: PSEMRegister, 0x30: PSEMReadFull,
    0x3E: PSEMReadDefault, 0x3F: PSEMReadOffset, 0x40: PSEMWriteFull, 0x4F: PSEMWriteOffset,
    0x50: PSEMLogon, 0x51: PSEMSecurity, 0x52: PSEMLogoff, 0x53: PSEMAuthenticate,
    0x70: PSEMWait, 0x71: PSEMTimingSetup,
    **{0x30 + n: PSEMReadIndex for n in range(1, 10)},
    **{0x40 + n: PSEMWriteIndex for n in range(1, 10)},
    **{0x60 + n: PSEMNegotiate for n in range(12)},
}  # fmt: skip


def psem_class(data: bytes) -> type[Packet]:
    """The layer class of the service starting ``data``: a request class, or PSEMResponse."""
    if not data:
        return PSEMUnknown
    if data[0] < 0x20:
        return PSEMResponse
    return PSEM_REQUEST_CLASSES.get(data[0], PSEMUnknown)
