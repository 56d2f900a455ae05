"""Whole-buffer BER tag-length-value helpers for the C12.22 decoders (single-octet tags only).

Inside a whole APDU a short buffer is malformed, not "need more": the TCP framer has already
delimited the message, so every helper here raises :class:`RemoteProtocolError`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from ..ber import decode_integer, decode_length, encode_integer, encode_length
from ..errors import RemoteProtocolError

__all__ = ["build_frozen", "int_tlv", "read_int", "read_tlv", "tlv"]

_T = TypeVar("_T")


def tlv(tag: int, content: bytes) -> bytes:
    """Encode one element with a definite length."""
    size = len(content)
    if size < 0x80:  # the short form, as encode_length writes it, in one allocation less
        return bytes((tag, size)) + content
    return bytes((tag,)) + encode_length(size) + content


def int_tlv(tag: int, value: int) -> bytes:
    """``tag`` wrapping a universal INTEGER (``02 <len> <int>``)."""
    content = encode_integer(value)
    size = len(content)
    if size < 0x7E:  # both lengths short: the two headers at once
        return bytes((tag, size + 2, 0x02, size)) + content
    return tlv(tag, tlv(0x02, content))


def read_tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read the element at ``buf[pos]`` that must end by ``end``: ``(tag, content start, content end)``."""
    if pos + 1 < end:  # the usual case first: a one-octet tag, a short length, all in the container
        tag, length = buf[pos], buf[pos + 1]
        if length < 0x80 and tag & 0x1F != 0x1F and pos + 2 + length <= end:
            return tag, pos + 2, pos + 2 + length
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
    size = end - start - 2
    if 0 < size <= 8 and buf[start] == 0x02 and buf[start + 1] == size:  # the usual ``02 0n <int>``
        return int.from_bytes(buf[start + 2 : end], "big", signed=True)
    tag, c_start, c_end = read_tlv(buf, start, end)
    if tag != 0x02 or c_end != end:
        raise RemoteProtocolError(f"{what}: expected one INTEGER (02), found tag {tag:#04x}")
    if c_end - c_start > 8:
        raise RemoteProtocolError(f"{what}: INTEGER of {c_end - c_start} octets is too long")
    return decode_integer(buf[c_start:c_end])


def build_frozen(cls: type[_T], values: dict[str, Any]) -> _T:
    """An instance of the frozen dataclass ``cls`` holding ``values``, built without ``__init__``.

    A frozen dataclass's ``__init__`` stores each field through ``object.__setattr__``; decoding a
    message builds an Apdu, a UserInformation, an Epsem and a C1222Message, and filling each
    instance dictionary in one call takes a fifth of the time. The result is the object
    ``cls(**values)`` would be. Only for dataclasses without ``__slots__`` or ``__post_init__``,
    with ``values`` naming every field in order (tests/codecs/test_c1222_build_frozen.py).
    """
    obj: _T = object.__new__(cls)
    obj.__dict__.update(values)
    return obj
