"""The small wire pieces every PSEM service body is built from.

- the data checksum (protocol-facts.md 2.4);
- the table-id word (2.5);
- universal-id elements: AP titles inside service bodies (3.3);
- the ``<count> <data> <cksum>`` group of reads and writes, with the count = FFFF chaining (2.3);
- padding helpers for the fixed-width user name and password (2.1);
- the Negotiate baud-rate codes (1.5).

All PSEM multi-byte integers are big-endian whatever ST0 DATA_ORDER says (2, [H]).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .. import ber
from ..c1218.negotiate import BAUD_BY_CODE, EXTERNALLY_DEFINED
from ..errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "BAUD_RATES",
    "CHAIN_COUNT",
    "ConnectionType",
    "NodeType",
    "RegInfo",
    "PASSWORD_LENGTH",
    "RELATIVE_ID_TAG",
    "UNIVERSAL_ID_TAG",
    "USER_LENGTH",
    "TableId",
    "UniversalId",
    "checksum",
    "decode_data_groups",
    "decode_table_id",
    "decode_universal_id",
    "encode_by_type",
    "encode_data_groups",
    "encode_universal_id",
    "format_table_id",
    "pad_password",
    "pad_user",
    "table_id",
]

U16 = struct.Struct(">H")

#: Absolute AP title / OID tag (universal OBJECT IDENTIFIER), the same in ACSE and service bodies.
UNIVERSAL_ID_TAG = 0x06
#: Relative AP title tag inside service bodies and C12.19 tables (universal RELATIVE-OID; facts 3.3,
#: S7). ICSNPP (S8) reads the ACSE context tag ``80`` there instead, so both are accepted on decode;
#: ``0D`` is what we send.
RELATIVE_ID_TAG = 0x0D
_RELATIVE_ID_TAGS = frozenset((RELATIVE_ID_TAG, 0x80))

#: A ``<count>`` of FFFF means another ``<count> <data> <cksum>`` group follows (facts 2.3, [L]).
CHAIN_COUNT = 0xFFFF

#: Width of the Logon user name field (space padded, S5/S6).
USER_LENGTH = 10
#: Width of the Security password field (padding differs between implementations, 2.1).
PASSWORD_LENGTH = 20

#: Negotiate baud-rate code -> bits per second (facts 1.5), with 0 for code 00 ("externally
#: defined"). The table itself is the link's (:data:`amidcc.codecs.c1218.negotiate.BAUD_BY_CODE`);
#: this view adds code 00 for the PSEM codec and is kept for compatibility.
BAUD_RATES: Mapping[int, int] = MappingProxyType({EXTERNALLY_DEFINED: 0, **BAUD_BY_CODE})


def checksum(data: bytes | bytearray | memoryview) -> int:
    """PSEM data checksum: two's complement of the 8-bit sum of ``data`` (facts 2.4).

    ``data`` plus its checksum sums to 0 modulo 256.
    """
    return -sum(data) & 0xFF


def encode_by_type(
    encoders: Mapping[type, Callable[[Any], bytes]], message: object, kind: str
) -> bytes:
    """``message`` encoded by the entry for its type in a codec's table (requests or responses).

    :raises LocalProtocolError: ``message`` is not a PSEM ``kind``, or one of its fields is out of
        range for the wire (what struct, ``int.to_bytes`` and the BER helpers raise).
    """
    try:
        encoder = encoders[type(message)]
    except KeyError:
        raise LocalProtocolError(f"not a PSEM {kind}: {message!r}") from None
    try:
        return encoder(message)
    except (struct.error, OverflowError, ValueError) as exc:
        raise LocalProtocolError(f"{type(message).__name__}: field out of range ({exc})") from None


# --------------------------------------------------------------------------- table-id word

_TABLE_NUMBER_MASK = 0x07FF
_MFG_BIT = 0x0800
_PENDING_BIT = 0x1000


@dataclass(frozen=True, kw_only=True, slots=True)
class TableId:
    """The table-id word taken apart (facts 2.5)."""

    number: int
    """Table number, bits 0-10 (0..2047); manufacturer table n is MT n."""
    mfg: bool
    """Bit 11: a manufacturer table."""
    pending: bool
    """Bit 12: the pending version of the table."""
    high_bits: int
    """Bits 13-15 as a 0..7 value; 0 for ordinary tables. Wireshark calls bit 13 "UDT" [?]."""


def table_id(number: int, mfg: bool = False, pending: bool = False, high_bits: int = 0) -> int:
    """Build the 16-bit table-id word: ``table_id(23)`` is ST23, ``table_id(5, mfg=True)`` MT5."""
    if not 0 <= number <= _TABLE_NUMBER_MASK:
        raise LocalProtocolError(f"table number {number} outside 0..2047")
    if not 0 <= high_bits <= 7:
        raise LocalProtocolError(f"table-id high bits {high_bits} outside 0..7")
    return number | (_MFG_BIT if mfg else 0) | (_PENDING_BIT if pending else 0) | (high_bits << 13)


def decode_table_id(word: int) -> TableId:
    """Take a table-id word apart."""
    if not 0 <= word <= 0xFFFF:
        raise LocalProtocolError(f"table-id word {word} is not 16 bits")
    return TableId(
        number=word & _TABLE_NUMBER_MASK,
        mfg=bool(word & _MFG_BIT),
        pending=bool(word & _PENDING_BIT),
        high_bits=word >> 13,
    )


def format_table_id(word: int) -> str:
    """Log text for a table-id word: ``ST23``, ``MT5``, ``ST23 pending``, ``ST1 bits13-15=1``."""
    view = decode_table_id(word)
    text = f"{'MT' if view.mfg else 'ST'}{view.number}"
    if view.pending:
        text += " pending"
    if view.high_bits:
        text += f" bits13-15={view.high_bits}"
    return text


# --------------------------------------------------------------------------- universal ids


@dataclass(frozen=True, kw_only=True, slots=True)
class UniversalId:
    """An AP title or other OID inside a service body: ``06`` (absolute) or ``0D`` (relative)."""

    arcs: tuple[int, ...]
    """The OID arcs; for a relative id, the arcs below the base (2.16.124.113620.1.22.0 by default)."""
    relative: bool = False
    """True for a relative id (tag ``0D``), False for an absolute OID (tag ``06``)."""

    @classmethod
    def parse(cls, text: str) -> UniversalId:
        """From dotted text; a leading dot marks a relative id (``.123.8437``)."""
        arcs, relative = ber.parse_oid(text)
        return cls(arcs=arcs, relative=relative)

    def __str__(self) -> str:
        return ber.format_oid(self.arcs, relative=self.relative)


def encode_universal_id(uid: UniversalId) -> bytes:
    """Tag, BER length and content octets of a universal-id element."""
    if uid.relative:
        content = ber.encode_arcs(uid.arcs)
        tag = RELATIVE_ID_TAG
    else:
        content = ber.encode_oid(uid.arcs)
        tag = UNIVERSAL_ID_TAG
    return bytes((tag,)) + ber.encode_length(len(content)) + content


def decode_universal_id(buf: bytes, pos: int, what: str) -> tuple[UniversalId, int]:
    """Decode a universal-id element at ``buf[pos]``; returns it and the position after it.

    ``what`` names the field in error messages. The buffer is a whole service body, so running
    out of bytes is a malformed body, not "need more".
    """
    if pos >= len(buf):
        raise RemoteProtocolError(f"{what}: missing universal-id element")
    tag = buf[pos]
    if tag != UNIVERSAL_ID_TAG and tag not in _RELATIVE_ID_TAGS:
        raise RemoteProtocolError(f"{what}: tag {tag:#04x} is not 06 (OID) or 0D (relative OID)")
    decoded = ber.decode_length(buf, pos + 1)
    if decoded is None:
        raise RemoteProtocolError(f"{what}: truncated BER length")
    length, start = decoded
    end = start + length
    if end > len(buf):
        raise RemoteProtocolError(f"{what}: {length}-byte id overruns the body")
    content = buf[start:end]
    if tag == UNIVERSAL_ID_TAG:
        return UniversalId(arcs=ber.decode_oid(content), relative=False), end
    return UniversalId(arcs=ber.decode_arcs(content), relative=True), end


# --------------------------------------------------------------------------- <count> <data> <cksum>


def encode_data_groups(data: bytes) -> bytes:
    """``<count:2> <data> <cksum:1>``; data of 65535 bytes or more is chained (facts 2.3, [L]).

    Chaining follows MeteringSDK: 65535-byte chunks each sent with count FFFF, then a last chunk
    shorter than 65535 bytes, which is empty when the length is an exact multiple.
    """
    n = len(data)
    if n < CHAIN_COUNT:
        return U16.pack(n) + data + bytes((-sum(data) & 0xFF,))
    out = bytearray()
    pos = 0
    while n - pos >= CHAIN_COUNT:
        chunk = data[pos : pos + CHAIN_COUNT]
        out += b"\xff\xff" + chunk + bytes((-sum(chunk) & 0xFF,))
        pos += CHAIN_COUNT
    tail = data[pos:]
    out += U16.pack(len(tail)) + tail + bytes((-sum(tail) & 0xFF,))
    return bytes(out)


def decode_data_groups(buf: bytes, pos: int, what: str, verify: bool) -> tuple[bytes, int]:
    """Decode ``<count> <data> <cksum>`` group(s) at ``buf[pos]``; returns data and end position.

    A count of FFFF chains another group. With ``verify`` each group's checksum must match, or
    RemoteProtocolError(ERR) names the checksum.
    """
    parts: list[bytes] = []
    size = len(buf)
    while True:
        if pos + 2 > size:
            raise RemoteProtocolError(f"{what}: missing data count")
        (count,) = U16.unpack_from(buf, pos)
        end = pos + 2 + count
        if end + 1 > size:
            raise RemoteProtocolError(f"{what}: count {count} overruns the body")
        chunk = buf[pos + 2 : end]
        if verify and (sum(chunk) + buf[end]) & 0xFF:
            raise RemoteProtocolError(
                f"{what}: data checksum mismatch (got {buf[end]:#04x},"
                f" expected {-sum(chunk) & 0xFF:#04x})"
            )
        parts.append(chunk)
        pos = end + 1
        if count != CHAIN_COUNT:
            break
    return (parts[0] if len(parts) == 1 else b"".join(parts)), pos


# --------------------------------------------------------------------------- registration bits
# Bit numbers from ICSNPP (S8) citing IEEE 1703-2012 5.3.2.4.10, bit 0 = LSB (facts 3.8, [M]).


class NodeType(enum.IntFlag):
    """Register ``node_type`` bits."""

    RELAY = 0x01
    MASTER_RELAY = 0x02
    HOST = 0x04
    NOTIFICATION_HOST = 0x08
    AUTHENTICATION_HOST = 0x10
    END_DEVICE = 0x20
    RESERVED = 0x40
    MY_DOMAIN_PATTERN = 0x80


class ConnectionType(enum.IntFlag):
    """Register ``connection_type`` bits."""

    BROADCAST_AND_MULTICAST = 0x01
    MESSAGE_ACCEPTANCE_WINDOW = 0x02
    PLAYBACK_REJECTION = 0x04
    RESERVED = 0x08
    CONNECTIONLESS_MODE = 0x10
    ACCEPT_CONNECTIONLESS = 0x20
    CONNECTION_MODE = 0x40
    ACCEPT_CONNECTIONS = 0x80


class RegInfo(enum.IntFlag):
    """Register response ``reg_info`` bits."""

    DIRECT_MESSAGING_AVAILABLE = 0x01
    MESSAGE_ACCEPTANCE_WINDOW_MODE = 0x02
    PLAYBACK_REJECTION_MODE = 0x04
    RESERVED = 0x08
    CONNECTIONLESS_MODE = 0x10
    ACCEPT_CONNECTIONLESS = 0x20
    CONNECTION_MODE = 0x40
    ACCEPT_CONNECTIONS = 0x80


# --------------------------------------------------------------------------- padding


def _as_bytes(value: bytes | str, what: str) -> bytes:
    if isinstance(value, str):
        try:
            return value.encode("ascii")
        except UnicodeEncodeError:
            raise LocalProtocolError(f"{what} must be ASCII: {value!r}") from None
    return bytes(value)


def _pad(value: bytes | str, width: int, fill: bytes, what: str) -> bytes:
    raw = _as_bytes(value, what)
    if len(fill) != 1:
        raise LocalProtocolError(f"{what} fill must be one byte, not {fill!r}")
    if len(raw) > width:
        raise LocalProtocolError(f"{what} is {len(raw)} bytes, the field holds {width}")
    return raw + fill * (width - len(raw))


def pad_user(user: bytes | str, *, fill: bytes = b" ") -> bytes:
    """The 10-byte Logon user field, space padded as termineter and MeteringSDK do."""
    return _pad(user, USER_LENGTH, fill, "user name")


def pad_password(password: bytes | str, *, fill: bytes) -> bytes:
    """The 20-byte Security password field.

    ``fill`` is required on purpose: termineter pads with ``00``, MeteringSDK with spaces, and a
    meter compares all 20 bytes (facts 2.1), so the caller must know which its meter expects.
    """
    return _pad(password, PASSWORD_LENGTH, fill, "password")
