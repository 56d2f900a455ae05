"""scapy fields for C12.22: BER lengths, universal ids (AP titles in service bodies), and a few
value holders. Conversions go through amidcc's codec (``amidcc.codecs.ber`` / ``psem``)."""

# mypy: disable-error-code="misc"
# (scapy has no type stubs: its classes are Any, and subclassing Any is what a layer does.)

from __future__ import annotations

from typing import Any

from scapy.fields import Field

from amidcc.codecs.ber import decode_length, encode_length
from amidcc.codecs.errors import CodecError
from amidcc.codecs.psem import UniversalId, decode_universal_id, encode_universal_id

__all__ = ["BERLenField", "OptionalShortField", "UniversalIdField", "ValueField"]


class BERLenField(Field):  # type: ignore[type-arg]
    """A definite BER length; None on build means "the length of what follows" (see post_build).

    It writes nothing when None, so the owning layer's ``post_build`` can insert the right length.
    """

    def __init__(self, name: str, default: int | None = None) -> None:
        super().__init__(name, default, fmt="B")

    def addfield(self, pkt: Any, s: bytes, val: int | None) -> bytes:
        return s if val is None else s + encode_length(val)

    def getfield(self, pkt: Any, s: bytes) -> tuple[bytes, int]:
        decoded = decode_length(s, 0)
        if decoded is None:
            raise CodecError("BER length cut short")
        length, end = decoded
        return s[end:], length

    def i2len(self, pkt: Any, x: int | None) -> int:
        return 0 if x is None else len(encode_length(x))


class UniversalIdField(Field):  # type: ignore[type-arg]
    """A universal-id element (``06`` OID or ``0D`` relative OID) held as dotted text.

    A leading dot marks a relative id (``.123.4``), as in amidcc's AP titles.
    """

    def __init__(self, name: str, default: str | None) -> None:
        super().__init__(name, default, fmt="B")

    def addfield(self, pkt: Any, s: bytes, val: str | None) -> bytes:
        if val is None:
            return s
        return s + encode_universal_id(UniversalId.parse(val))

    def getfield(self, pkt: Any, s: bytes) -> tuple[bytes, str]:
        uid, end = decode_universal_id(s, 0, self.name)
        return s[end:], str(uid)

    def i2repr(self, pkt: Any, x: str | None) -> str:
        return repr(x)


class OptionalShortField(Field):  # type: ignore[type-arg]
    """A trailing 2-byte field that may be absent (C12.22 Logon timeout, sessionless user id).

    Dissection reads it when two bytes remain; building writes it unless it is None.
    """

    def __init__(self, name: str, default: int | None = None) -> None:
        super().__init__(name, default, fmt="!H")

    def addfield(self, pkt: Any, s: bytes, val: int | None) -> bytes:
        return s if val is None else s + int(val).to_bytes(2, "big")

    def getfield(self, pkt: Any, s: bytes) -> tuple[bytes, int | None]:
        if len(s) < 2:
            return s, None
        return s[2:], int.from_bytes(s[:2], "big")


class ValueField(Field):  # type: ignore[type-arg]
    """A field whose value the layer itself encodes and decodes (via amidcc's codec).

    It writes and reads nothing; the owning layer's ``post_build`` / ``do_dissect`` do the work.
    Values are plain Python: dotted OID text, ints, bytes, or None for an absent element.
    """

    def __init__(self, name: str, default: Any = None) -> None:
        super().__init__(name, default, fmt="B")

    def addfield(self, pkt: Any, s: bytes, val: Any) -> bytes:
        return s

    def getfield(self, pkt: Any, s: bytes) -> tuple[bytes, Any]:
        return s, self.default

    def any2i(self, pkt: Any, x: Any) -> Any:
        return x

    def i2repr(self, pkt: Any, x: Any) -> str:
        return repr(x)
