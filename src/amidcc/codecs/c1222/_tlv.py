"""Whole-buffer BER tag-length-value helpers for the C12.22 decoders (single-octet tags only).

Inside a whole APDU a short buffer is malformed, not "need more": the TCP framer has already
delimited the message, so every helper here raises :class:`RemoteProtocolError`.
"""

from __future__ import annotations

from ..ber import decode_integer, decode_length, encode_integer, encode_length
from ..errors import RemoteProtocolError

__all__ = ["int_tlv", "read_int", "read_tlv", "tlv"]


def tlv(tag: int, content: bytes) -> bytes:
    """Encode one element with a definite length."""
    return bytes((tag,)) + encode_length(len(content)) + content


def int_tlv(tag: int, value: int) -> bytes:
    """``tag`` wrapping a universal INTEGER (``02 <len> <int>``)."""
    return tlv(tag, tlv(0x02, encode_integer(value)))


def read_tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read the element at ``buf[pos]`` that must end by ``end``: ``(tag, content start, content end)``."""
    if pos >= end:
        raise RemoteProtocolError("BER element expected, found the end of its container")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise RemoteProtocolError(f"multi-octet BER tag {tag:#04x} is not used by C12.22")
    decoded = decode_length(buf, pos + 1)
    if decoded is None:
        raise RemoteProtocolError(f"BER element {tag:#04x} truncated in its length")
    length, start = decoded
    if start + length > end:
        raise RemoteProtocolError(
            f"BER element {tag:#04x} of length {length} overruns its container by {start + length - end}"
        )
    return tag, start, start + length


def read_int(buf: bytes, start: int, end: int, what: str) -> int:
    """The universal INTEGER that must fill ``buf[start:end]`` exactly."""
    tag, c_start, c_end = read_tlv(buf, start, end)
    if tag != 0x02 or c_end != end:
        raise RemoteProtocolError(f"{what}: expected one INTEGER (02), found tag {tag:#04x}")
    if c_end - c_start > 8:
        raise RemoteProtocolError(f"{what}: INTEGER of {c_end - c_start} octets is too long")
    return decode_integer(buf[c_start:c_end])
