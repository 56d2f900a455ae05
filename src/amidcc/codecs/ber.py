"""The few BER (X.690) pieces C12.22 uses: definite lengths, OIDs, relative OIDs, small integers.

C12.22 AP titles come in two forms (protocol-facts.md 3.3): absolute OIDs (universal tag ``06``) and
OIDs relative to a base (tag ``80`` inside ACSE, universal RELATIVE-OID ``0D`` inside C12.19 tables
and EPSEM service bodies). Relative titles are relative to 2.16.124.113620.1.22.0 by default.
"""

from __future__ import annotations

from .errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "DEFAULT_BASE_OID",
    "MAX_LENGTH_OCTETS",
    "decode_arcs",
    "decode_integer",
    "decode_length",
    "decode_oid",
    "encode_arcs",
    "encode_integer",
    "encode_length",
    "encode_oid",
    "format_oid",
    "parse_oid",
]

#: Base of relative AP titles: <application-context>.0 = 2.16.124.113620.1.22.0.
DEFAULT_BASE_OID: tuple[int, ...] = (2, 16, 124, 113620, 1, 22, 0)

#: Long-form length octets accepted (MeteringSDK accepts at most 3; 4 covers 16 MiB APDUs).
MAX_LENGTH_OCTETS = 4


def encode_length(n: int) -> bytes:
    """Definite-form BER length."""
    if n < 0:
        raise LocalProtocolError(f"negative BER length {n}")
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    if len(body) > MAX_LENGTH_OCTETS:
        raise LocalProtocolError(f"BER length {n} needs more than {MAX_LENGTH_OCTETS} octets")
    return bytes((0x80 | len(body),)) + body


def decode_length(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int] | None:
    """Decode a definite BER length at ``buf[pos]``.

    Returns ``(length, position after the length octets)``, or None when ``buf`` ends before the
    length does ("need more"). Raises RemoteProtocolError on the indefinite form or on a length too
    long to be sane.
    """
    if pos >= len(buf):
        return None
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if count == 0:
        raise RemoteProtocolError("indefinite BER length is not allowed in C12.22")
    if count > MAX_LENGTH_OCTETS:
        raise RemoteProtocolError(f"BER length with {count} length octets (at most {MAX_LENGTH_OCTETS})")
    end = pos + 1 + count
    if end > len(buf):
        return None
    return int.from_bytes(bytes(buf[pos + 1 : end]), "big"), end


def encode_arcs(arcs: tuple[int, ...] | list[int]) -> bytes:
    """Base-128 encode each arc (the content octets of a RELATIVE-OID)."""
    out = bytearray()
    for arc in arcs:
        if arc < 0:
            raise LocalProtocolError(f"negative OID arc {arc}")
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


def decode_arcs(content: bytes | bytearray | memoryview) -> tuple[int, ...]:
    """Decode base-128 arcs (RELATIVE-OID content octets)."""
    arcs: list[int] = []
    value = 0
    started = False
    for b in bytes(content):
        if not started and b == 0x80:
            raise RemoteProtocolError("OID arc with a leading 0x80 octet (not minimal)")
        started = True
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
            started = False
    if started:
        raise RemoteProtocolError("OID ends inside an arc")
    return tuple(arcs)


def encode_oid(arcs: tuple[int, ...] | list[int]) -> bytes:
    """Content octets of an absolute OBJECT IDENTIFIER."""
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40):
        raise LocalProtocolError(f"not a valid absolute OID: {arcs!r}")
    return encode_arcs([arcs[0] * 40 + arcs[1], *arcs[2:]])


def decode_oid(content: bytes | bytearray | memoryview) -> tuple[int, ...]:
    """Decode absolute OBJECT IDENTIFIER content octets."""
    if not content:
        raise RemoteProtocolError("empty OBJECT IDENTIFIER")
    raw = decode_arcs(content)
    first = raw[0]
    if first < 40:
        head: tuple[int, ...] = (0, first)
    elif first < 80:
        head = (1, first - 40)
    else:
        head = (2, first - 80)
    return head + raw[1:]


def encode_integer(value: int) -> bytes:
    """Content octets of a BER INTEGER, minimal two's complement."""
    length = max(1, (value.bit_length() + 8) // 8)
    return value.to_bytes(length, "big", signed=True)


def decode_integer(content: bytes | bytearray | memoryview) -> int:
    """Decode BER INTEGER content octets."""
    if not content:
        raise RemoteProtocolError("empty INTEGER")
    return int.from_bytes(bytes(content), "big", signed=True)


def format_oid(arcs: tuple[int, ...], *, relative: bool = False) -> str:
    """Dotted text; relative titles get a leading dot (``.123.4``), as ICSNPP and Wireshark print."""
    text = ".".join(str(a) for a in arcs)
    return "." + text if relative else text


def parse_oid(text: str) -> tuple[tuple[int, ...], bool]:
    """Parse dotted text into ``(arcs, relative)``; a leading dot marks a relative OID."""
    relative = text.startswith(".")
    body = text[1:] if relative else text
    try:
        arcs = tuple(int(part) for part in body.split("."))
    except ValueError:
        raise LocalProtocolError(f"not a dotted OID: {text!r}") from None
    if any(a < 0 for a in arcs) or not arcs:
        raise LocalProtocolError(f"not a dotted OID: {text!r}")
    return arcs, relative
