"""PSEM requests as immutable messages (protocol-facts.md 2.1, 1.5, 3.8).

Each class is one service; the wire code is implied by the class (and, for the index forms and
Negotiate, by the number of indices or baud codes). Fields hold wire values: table ids are the
16-bit table-id word (see :func:`~amidcc.codecs.psem.primitives.table_id`), the user name and the
password are already padded to their fixed widths (see ``pad_user`` / ``pad_password``).
Values are checked when encoding; a value that cannot go on the wire raises LocalProtocolError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from .primitives import UniversalId

__all__ = [
    "Authenticate",
    "DefaultRead",
    "Deregister",
    "Disconnect",
    "FullRead",
    "FullWrite",
    "Identify",
    "Logoff",
    "Logon",
    "Negotiate",
    "PartialReadIndex",
    "PartialReadOffset",
    "PartialWriteIndex",
    "PartialWriteOffset",
    "Register",
    "Request",
    "Resolve",
    "Security",
    "Terminate",
    "TimingSetup",
    "Trace",
    "Wait",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Identify:
    """``20``: ask for the protocol standard, version and features."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Terminate:
    """``21``: end the session; accepted in any state (facts 1.6)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Disconnect:
    """``22`` (C12.22): leave the network. Its parameters are unverified (facts 7.3)."""

    parameters: bytes = b""
    """Whatever follows the code, kept raw; empty in every known sender."""


@dataclass(frozen=True, kw_only=True, slots=True)
class FullRead:
    """``30``: read a whole table."""

    table_id: int
    """Table-id word (bits 0-10 number, bit 11 manufacturer, bit 12 pending)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PartialReadIndex:
    """``31``-``39``: read ``element_count`` elements starting at an index path."""

    table_id: int
    """Table-id word."""
    indices: tuple[int, ...]
    """1 to 9 two-byte indices; their number picks the code (31 + n - 1)."""
    element_count: int
    """Number of elements to read (2 bytes)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DefaultRead:
    """``3E``: "transfer default table" read."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PartialReadOffset:
    """``3F``: read ``octet_count`` bytes of a table from a byte offset."""

    table_id: int
    """Table-id word."""
    offset: int
    """Byte offset into the table (3 bytes, 0..16777215)."""
    octet_count: int
    """Number of bytes to read (2 bytes)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class FullWrite:
    """``40``: write a whole table (also how procedures are started, via ST7)."""

    table_id: int
    """Table-id word."""
    data: bytes
    """The table contents; count and checksum are added when encoding."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PartialWriteIndex:
    """``41``-``49``: write elements starting at an index path."""

    table_id: int
    """Table-id word."""
    indices: tuple[int, ...]
    """1 to 9 two-byte indices; their number picks the code (41 + n - 1)."""
    data: bytes
    """The element bytes; count and checksum are added when encoding."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PartialWriteOffset:
    """``4F``: write bytes into a table at a byte offset."""

    table_id: int
    """Table-id word."""
    offset: int
    """Byte offset into the table (3 bytes)."""
    data: bytes
    """The bytes to write; count and checksum are added when encoding."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Logon:
    """``50``: open a session. 13 bytes in C12.18, 15 with the C12.22 idle timeout."""

    user_id: int
    """User id (2 bytes), logged by the meter in its history."""
    user: bytes
    """User name, exactly 10 bytes (space padded; see ``pad_user``)."""
    session_idle_timeout: int | None = None
    """None: the C12.18 form. An int: the C12.22 form, requested idle timeout in seconds
    (2 bytes, 0 = never)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Security:
    """``51``: present a password. 21 bytes; 23 in the C12.22 sessionless form."""

    password: bytes
    """Password, exactly 20 bytes, already padded (see ``pad_password``)."""
    user_id: int | None = None
    """None: the session form. An int: the C12.22 sessionless form's trailing user id (2 bytes)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Logoff:
    """``52``: close the session but keep the link."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Authenticate:
    """``53`` (C12.21): authentication exchange."""

    data: bytes
    """Authentication bytes (0..255, length-prefixed on the wire)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Negotiate:
    """``60``-``6B``: packet size, packet count and baud rates (facts 1.5)."""

    packet_size: int
    """Proposed maximum packet size in bytes (2 bytes)."""
    nbr_packets: int
    """Proposed maximum number of packets per multi-packet transmission (1 byte)."""
    baud_rates: tuple[int, ...] = ()
    """0 to 11 baud-rate codes (see BAUD_RATES); empty keeps the current rate (code 60)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Wait:
    """``70``: keep the session alive."""

    seconds: int
    """Requested wait in seconds (1 byte)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TimingSetup:
    """``71`` (C12.21): link timing parameters."""

    traffic: int
    """Channel traffic timeout, seconds (1 byte)."""
    inter_char: int
    """Inter-character timeout, seconds (1 byte)."""
    resp_to: int
    """Response (acknowledgement) timeout, seconds (1 byte)."""
    nbr_retries: int
    """Number of retries (1 byte)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Register:
    """``27`` (C12.22): a node registers with its master relay (facts 3.8)."""

    node_type: int
    """Bit set (NodeType): 0 relay, 1 master relay, 2 host, 3 notification host, 4 authentication
    host, 5 end device, 7 my-domain-pattern present (must agree with ``my_domain_pattern``)."""
    connection_type: int
    """Bit set (ConnectionType), one byte."""
    device_class: bytes
    """Device class, exactly 4 bytes (ST0 DEVICE_CLASS)."""
    ap_title: UniversalId
    """The node's AP title."""
    electronic_serial_number: UniversalId
    """The node's electronic serial number, as a universal id."""
    native_address: bytes
    """The node's native (link) address, 0..255 bytes."""
    registration_period: int
    """Requested registration period (3 bytes; seconds [L])."""
    my_domain_pattern: bytes | None = None
    """None, or the my-domain pattern (0..255 bytes) when node_type bit 7 is set."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Deregister:
    """``24`` (C12.22): remove a registration."""

    ap_title: UniversalId
    """AP title to deregister."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Resolve:
    """``25`` (C12.22): ask a relay for the native address of an AP title."""

    ap_title: UniversalId
    """AP title to resolve."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Trace:
    """``26`` (C12.22): ask for the relays on the way to an AP title."""

    ap_title: UniversalId
    """AP title to trace to."""


Request: TypeAlias = (
    Identify
    | Terminate
    | Disconnect
    | FullRead
    | PartialReadIndex
    | DefaultRead
    | PartialReadOffset
    | FullWrite
    | PartialWriteIndex
    | PartialWriteOffset
    | Logon
    | Security
    | Logoff
    | Authenticate
    | Negotiate
    | Wait
    | TimingSetup
    | Register
    | Deregister
    | Resolve
    | Trace
)
