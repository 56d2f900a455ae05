"""The C12.22 ACSE APDU (``60 <len> A1 A2 A3 A4 A6 A7 A8 8B AC BE``), protocol-facts.md 3.2-3.3.

:func:`decode_apdu` takes one whole APDU (the TCP framer or the UDP datagram delimits it) and
returns an :class:`Apdu`; :func:`encode_apdu` is its inverse and always writes the elements in the
order every public sample and MeteringSDK use (A1, A2, A3, A4, A6, A7, A8, 8B, AC, extras, BE).

Decoding policy (decided here, see the module tests):

* elements are accepted in any order (the MAC's canonical order does not depend on the wire order),
  but a duplicated element is malformed;
* A2 (called AP title), A8 (calling AP invocation id) and BE (user information) are required;
  every other element is optional (A6 is needed only to verify or answer, and is checked there);
* an unknown *context-specific* element (another ACSE field, e.g. ``A5`` or ``8A``) is tolerated and
  kept verbatim in :attr:`Apdu.extra_elements` for forward compatibility; it is re-sent before BE
  and is **not** covered by the MAC (nor by Wireshark's). Universal, application or private tags,
  multi-octet tags, bad lengths and trailing bytes raise :class:`RemoteProtocolError`;
* the exact bytes of every received element are kept in :attr:`Apdu.wire_elements`, because the
  EAX' canonical cleartext uses the elements "as encoded" (3.5).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from ..ber import (
    decode_arcs,
    decode_oid,
    encode_arcs,
    encode_integer,
    encode_oid,
    format_oid,
    parse_oid,
)
from ..errors import LocalProtocolError, RemoteProtocolError
from ._tlv import build_frozen, int_tlv, read_int, read_tlv, tlv

__all__ = [
    "APDU_TAG",
    "AeQualifier",
    "ApTitle",
    "Apdu",
    "CallingAuthentication",
    "Element",
    "UserInformation",
    "apdu_elements",
    "decode_apdu",
    "encode_apdu",
    "encode_elements",
]

#: ACSE APDU tag (application 0, constructed).
APDU_TAG = 0x60


class Element(enum.IntEnum):
    """The ACSE element tags C12.22 uses (3.2)."""

    ASO_CONTEXT = 0xA1
    CALLED_AP_TITLE = 0xA2
    CALLED_AE_QUALIFIER = 0xA3
    CALLED_AP_INVOCATION_ID = 0xA4
    CALLING_AP_TITLE = 0xA6
    CALLING_AE_QUALIFIER = 0xA7
    CALLING_AP_INVOCATION_ID = 0xA8
    MECHANISM_NAME = 0x8B
    CALLING_AUTHENTICATION = 0xAC
    USER_INFORMATION = 0xBE


class AeQualifier(enum.IntFlag):
    """Calling AE qualifier bits (A7). Reserved bits 3-7 are kept as received."""

    TEST = 0x01  #: must not change device state; the device echoes it
    URGENT = 0x02
    NOTIFICATION = 0x04


@dataclass(frozen=True, kw_only=True)
class ApTitle:
    """An AP title: absolute OID arcs, or arcs relative to the base OID (3.3)."""

    arcs: tuple[int, ...]
    """The OID arcs (relative titles: only the arcs after the base)."""
    relative: bool = False
    """True for the relative form (ACSE tag ``80``), False for an absolute OID (``06``)."""

    def __post_init__(self) -> None:
        if not self.arcs or any(a < 0 for a in self.arcs):
            raise LocalProtocolError(f"not a valid AP title: {self.arcs!r}")
        if not self.relative:
            encode_oid(self.arcs)  # raises LocalProtocolError on an impossible absolute OID

    def __str__(self) -> str:
        return self._text

    @functools.cached_property
    def _text(self) -> str:
        # Computed once: a title is printed for every message of a capture, log or metric label.
        return format_oid(self.arcs, relative=self.relative)

    @classmethod
    def parse(cls, text: str) -> ApTitle:
        """Dotted text; a leading dot marks a relative title (``.123.8437``)."""
        arcs, relative = parse_oid(text)
        return cls(arcs=arcs, relative=relative)

    def absolute(self, base_oid: tuple[int, ...]) -> tuple[int, ...]:
        """The absolute arcs (relative titles hang below ``base_oid``)."""
        return base_oid + self.arcs if self.relative else self.arcs


@dataclass(frozen=True, kw_only=True)
class CallingAuthentication:
    """The calling authentication value (AC).

    The C12.22 form ``AC A2 [02 <ir>] A0 A1 80 <key_id> 81 <iv>`` is parsed into ``key_id`` and
    ``iv``; any other form (the C12.21 ``A0 [80|81|82]`` form, octet-aligned, ...) is kept in ``raw``.
    """

    key_id: int | None = None
    """C12.22 key id (one byte), selecting the key; None for other forms."""
    iv: bytes | None = None
    """C12.22 initialisation vector (4 bytes on the wire in every sample); None for other forms."""
    indirect_reference: int | None = None
    """The optional EXTERNAL indirect reference (``02 01 00``) of the C12.22 form."""
    raw: bytes | None = None
    """The whole AC content, verbatim, when it is not the C12.22 form (re-sent as is)."""

    def __post_init__(self) -> None:
        c1222 = self.key_id is not None and self.iv is not None
        if c1222 == (self.raw is not None) or (self.key_id is None) != (self.iv is None):
            raise LocalProtocolError("CallingAuthentication needs key_id and iv, or raw, not both")
        if self.key_id is not None and not 0 <= self.key_id <= 0xFF:
            raise LocalProtocolError(f"key id {self.key_id} is not one byte")
        if self.iv is not None and not 1 <= len(self.iv) <= 16:
            raise LocalProtocolError(f"IV of {len(self.iv)} bytes (expected 4)")


@dataclass(frozen=True, kw_only=True)
class UserInformation:
    """User information (``BE 28 [02 <ir>] 81 <epsem>``)."""

    epsem: bytes
    """The octet-aligned content: the EPSEM (with its MAC when secured), or a segment's bytes."""
    indirect_reference: int | None = None
    """EXTERNAL indirect reference: absent or 0 when unsegmented; a segment's offset (3.7, draft)."""


@dataclass(frozen=True, kw_only=True)
class Apdu:
    """One C12.22 ACSE APDU, every element (3.2)."""

    called_ap_title: ApTitle
    """A2: the destination."""
    calling_ap_invocation_id: int
    """A8: the sender's invocation id (a segment's sequence number in the draft segmentation)."""
    user_information: UserInformation
    """BE: the EPSEM envelope."""
    aso_context: tuple[int, ...] | None = None
    """A1: application context OID arcs; None means the default 2.16.124.113620.1.22."""
    called_ae_qualifier: int | None = None
    """A3: present only in segments, where it is the total APDU size (3.7, draft)."""
    called_ap_invocation_id: int | None = None
    """A4: in a response, the request's A8."""
    calling_ap_title: ApTitle | None = None
    """A6: the sender."""
    calling_ae_qualifier: AeQualifier | None = None
    """A7: TEST / URGENT / NOTIFICATION bits."""
    mechanism_name: bytes | None = None
    """8B: mechanism OID content octets, raw (absent means the default C12.22 mechanism)."""
    calling_authentication: CallingAuthentication | None = None
    """AC: key id and IV of a secured message."""
    extra_elements: tuple[bytes, ...] = ()
    """Unknown context-specific elements, whole TLVs as received (not covered by the MAC)."""
    wire_elements: tuple[tuple[int, bytes], ...] = field(default=(), compare=False, repr=False)
    """``(tag, whole TLV)`` in received order; empty for a locally built APDU. It describes the
    received bytes only: drop it (``wire_elements=()``) when deriving a changed APDU."""


# --- encoding -------------------------------------------------------------------------------------


def _integer(value: int) -> bytes:
    return tlv(0x02, encode_integer(value))


#: Encoded AP titles by the title object: a gateway and a fleet send to and from the same titles
#: again and again (the link and the decoder share one object per title). The entry holds the
#: title, so its id is not reused while the entry exists; cleared when full.
_TITLE_CONTENT: dict[int, tuple[ApTitle, bytes]] = {}
_TITLE_CONTENT_SIZE = 16384


def _title_content(title: ApTitle) -> bytes:
    entry = _TITLE_CONTENT.get(id(title))
    if entry is not None and entry[0] is title:
        return entry[1]
    if title.relative:
        content = tlv(0x80, encode_arcs(title.arcs))
    else:
        content = tlv(0x06, encode_oid(title.arcs))
    if len(_TITLE_CONTENT) >= _TITLE_CONTENT_SIZE:
        _TITLE_CONTENT.clear()
    _TITLE_CONTENT[id(title)] = (title, content)
    return content


def _authentication_content(auth: CallingAuthentication) -> bytes:
    if auth.raw is not None:
        return auth.raw
    assert auth.key_id is not None and auth.iv is not None
    c1222 = tlv(0xA1, tlv(0x80, bytes((auth.key_id,))) + tlv(0x81, auth.iv))
    external = b"" if auth.indirect_reference is None else _integer(auth.indirect_reference)
    return tlv(0xA2, external + tlv(0xA0, c1222))


def _user_information_content(info: UserInformation) -> bytes:
    ref = b"" if info.indirect_reference is None else _integer(info.indirect_reference)
    return tlv(0x28, ref + tlv(0x81, info.epsem))


def _ae_qualifier_content(bits: AeQualifier) -> bytes:
    if not 0 <= bits <= 0xFF:
        raise LocalProtocolError(f"calling AE qualifier {int(bits):#x} is not one byte")
    return bytes((0x02, 0x01, int(bits)))


def encode_elements(apdu: Apdu) -> tuple[tuple[int, bytes], ...]:
    """The ``(tag, TLV)`` elements of ``apdu`` in wire order, freshly encoded from its fields."""
    out: list[tuple[int, bytes]] = []
    put = out.append
    if apdu.aso_context is not None:
        put((Element.ASO_CONTEXT, tlv(Element.ASO_CONTEXT, tlv(0x06, encode_oid(apdu.aso_context)))))
    put((Element.CALLED_AP_TITLE, tlv(Element.CALLED_AP_TITLE, _title_content(apdu.called_ap_title))))
    if apdu.called_ae_qualifier is not None:
        put((Element.CALLED_AE_QUALIFIER, int_tlv(0xA3, apdu.called_ae_qualifier)))
    if apdu.called_ap_invocation_id is not None:
        put((Element.CALLED_AP_INVOCATION_ID, int_tlv(0xA4, apdu.called_ap_invocation_id)))
    if apdu.calling_ap_title is not None:
        content = _title_content(apdu.calling_ap_title)
        put((Element.CALLING_AP_TITLE, tlv(Element.CALLING_AP_TITLE, content)))
    if apdu.calling_ae_qualifier is not None:
        content = _ae_qualifier_content(apdu.calling_ae_qualifier)
        put((Element.CALLING_AE_QUALIFIER, tlv(Element.CALLING_AE_QUALIFIER, content)))
    put((Element.CALLING_AP_INVOCATION_ID, int_tlv(0xA8, apdu.calling_ap_invocation_id)))
    if apdu.mechanism_name is not None:
        put((Element.MECHANISM_NAME, tlv(Element.MECHANISM_NAME, apdu.mechanism_name)))
    if apdu.calling_authentication is not None:
        content = _authentication_content(apdu.calling_authentication)
        put((Element.CALLING_AUTHENTICATION, tlv(Element.CALLING_AUTHENTICATION, content)))
    out.extend((raw[0], raw) for raw in apdu.extra_elements)
    content = _user_information_content(apdu.user_information)
    put((Element.USER_INFORMATION, tlv(Element.USER_INFORMATION, content)))
    return tuple(out)


def apdu_elements(apdu: Apdu) -> tuple[tuple[int, bytes], ...]:
    """The elements "as encoded": the received bytes when there are any, else a fresh encoding."""
    return apdu.wire_elements or encode_elements(apdu)


def encode_apdu(apdu: Apdu) -> bytes:
    """The whole APDU (``60 <len> ...``), always freshly encoded from the fields."""
    return tlv(APDU_TAG, b"".join(raw for _, raw in encode_elements(apdu)))


# --- decoding -------------------------------------------------------------------------------------


def _only_child(buf: bytes, start: int, end: int, what: str) -> tuple[int, int, int]:
    tag, c_start, c_end = read_tlv(buf, start, end)
    if c_end != end:
        raise RemoteProtocolError(f"{what}: {end - c_end} unexpected bytes after the value")
    return tag, c_start, c_end


#: Decoded AP titles by their encoding: a capture or a gateway sees the same few titles again and
#: again (ApTitle is immutable, so sharing one is safe). Cleared when full.
_TITLE_CACHE: dict[bytes, ApTitle] = {}
_TITLE_CACHE_SIZE = 65536


def _decode_title(buf: bytes, start: int, end: int) -> ApTitle:
    # A title that decodes has read nothing outside buf[start:end], so those bytes are the key.
    key = buf[start:end]
    title = _TITLE_CACHE.get(key)
    if title is None:
        title = _decode_title_uncached(buf, start, end)
        if len(_TITLE_CACHE) >= _TITLE_CACHE_SIZE:
            _TITLE_CACHE.clear()
        _TITLE_CACHE[key] = title
    return title


def _decode_title_uncached(buf: bytes, start: int, end: int) -> ApTitle:
    tag, c_start, c_end = _only_child(buf, start, end, "AP title")
    if c_start == c_end:
        raise RemoteProtocolError("empty AP title")
    if tag == 0x80:
        return ApTitle(arcs=decode_arcs(buf[c_start:c_end]), relative=True)
    if tag == 0x06:
        return ApTitle(arcs=decode_oid(buf[c_start:c_end]), relative=False)
    raise RemoteProtocolError(f"AP title with tag {tag:#04x} (expected 80 or 06)")


def _decode_context(buf: bytes, start: int, end: int) -> tuple[int, ...]:
    tag, c_start, c_end = _only_child(buf, start, end, "application context")
    if tag != 0x06:
        raise RemoteProtocolError(f"application context with tag {tag:#04x} (expected 06)")
    return decode_oid(buf[c_start:c_end])


def _decode_ae_qualifier(buf: bytes, start: int, end: int) -> AeQualifier:
    tag, c_start, c_end = _only_child(buf, start, end, "calling AE qualifier")
    # Read unsigned: the qualifier is a bit string carried in an INTEGER (02 01 <bits>).
    if tag != 0x02 or not 1 <= c_end - c_start <= 2:
        raise RemoteProtocolError("calling AE qualifier is not a one-byte INTEGER")
    value = int.from_bytes(buf[c_start:c_end], "big")
    if value > 0xFF:
        raise RemoteProtocolError(f"calling AE qualifier {value:#x} is not one byte")
    return AeQualifier(value)


def _decode_c1222_auth(buf: bytes, start: int, end: int) -> tuple[int, bytes]:
    """``A1 { 80 <key_id> 81 <iv> }`` (the content of the A1)."""
    tag, k_start, k_end = read_tlv(buf, start, end)
    if tag != 0x80 or k_end - k_start != 1:
        raise RemoteProtocolError("C12.22 authentication value without a one-byte key id (80 01)")
    tag, i_start, i_end = _only_child(buf, k_end, end, "C12.22 authentication value")
    if tag != 0x81 or not 1 <= i_end - i_start <= 16:
        raise RemoteProtocolError("C12.22 authentication value without an IV (81)")
    return buf[k_start], buf[i_start:i_end]


def _decode_authentication(buf: bytes, start: int, end: int) -> CallingAuthentication:
    raw = CallingAuthentication(raw=buf[start:end])
    tag, e_start, e_end = _only_child(buf, start, end, "calling authentication value")
    if tag != 0xA2:  # not EXTERNAL: some other authentication-value choice
        return raw
    reference = None
    tag, c_start, c_end = read_tlv(buf, e_start, e_end)
    if tag == 0x02:
        reference = read_int(buf, e_start, c_end, "authentication indirect reference")
        tag, c_start, c_end = read_tlv(buf, c_end, e_end)
    if tag != 0xA0 or c_end != e_end:  # octet-aligned or other encodings: keep verbatim
        return raw
    tag, a_start, a_end = _only_child(buf, c_start, c_end, "authentication single-ASN1-type")
    if tag != 0xA1:  # the C12.21 form (A0) and anything else
        return raw
    key_id, iv = _decode_c1222_auth(buf, a_start, a_end)
    return CallingAuthentication(key_id=key_id, iv=iv, indirect_reference=reference)


def _decode_user_information(buf: bytes, start: int, end: int) -> UserInformation:
    size = end - start
    if (
        4 <= size <= 0x81
        and buf[start] == 0x28
        and buf[start + 1] == size - 2
        and buf[start + 2] == 0x81
        and buf[start + 3] == size - 4
    ):  # the usual ``28 <len> 81 <len> <epsem>`` with short lengths, read as below
        return build_frozen(
            UserInformation, {"epsem": buf[start + 4 : end], "indirect_reference": None}
        )
    tag, x_start, x_end = _only_child(buf, start, end, "user information")
    if tag != 0x28:
        raise RemoteProtocolError(f"user information is not EXTERNAL (28), found {tag:#04x}")
    reference = None
    tag, c_start, c_end = read_tlv(buf, x_start, x_end)
    if tag == 0x02:
        reference = read_int(buf, x_start, c_end, "user information indirect reference")
        tag, c_start, c_end = read_tlv(buf, c_end, x_end)
    if tag != 0x81 or c_end != x_end:
        raise RemoteProtocolError("user information without an octet-aligned EPSEM (81)")
    return build_frozen(
        UserInformation, {"epsem": buf[c_start:c_end], "indirect_reference": reference}
    )


def _int_decoder(what: str) -> Callable[[bytes, int, int], int]:
    def decode(buf: bytes, start: int, end: int) -> int:
        size = end - start - 2
        if 0 < size <= 8 and buf[start] == 0x02 and buf[start + 1] == size:  # as read_int, inline
            return int.from_bytes(buf[start + 2 : end], "big", signed=True)
        return read_int(buf, start, end, what)

    return decode


_DECODERS: dict[int, tuple[str, Callable[[bytes, int, int], Any]]] = {
    Element.ASO_CONTEXT: ("aso_context", _decode_context),
    Element.CALLED_AP_TITLE: ("called_ap_title", _decode_title),
    Element.CALLED_AE_QUALIFIER: ("called_ae_qualifier", _int_decoder("called AE qualifier")),
    Element.CALLED_AP_INVOCATION_ID: ("called_ap_invocation_id", _int_decoder("A4")),
    Element.CALLING_AP_TITLE: ("calling_ap_title", _decode_title),
    Element.CALLING_AE_QUALIFIER: ("calling_ae_qualifier", _decode_ae_qualifier),
    Element.CALLING_AP_INVOCATION_ID: ("calling_ap_invocation_id", _int_decoder("A8")),
    Element.MECHANISM_NAME: ("mechanism_name", lambda buf, start, end: buf[start:end]),
    Element.CALLING_AUTHENTICATION: ("calling_authentication", _decode_authentication),
    Element.USER_INFORMATION: ("user_information", _decode_user_information),
}

# Every field of an Apdu in order, with its default (the required ones are always replaced).
_APDU_TEMPLATE: dict[str, Any] = {
    f.name: None if f.default is MISSING else f.default for f in fields(Apdu)
}

_REQUIRED = {
    "called_ap_title": "called AP title (A2)",
    "calling_ap_invocation_id": "calling AP invocation id (A8)",
    "user_information": "user information (BE)",
}


def decode_apdu(data: bytes | bytearray | memoryview) -> Apdu:
    """Decode exactly one whole APDU; malformed input raises :class:`RemoteProtocolError`."""
    buf = bytes(data)
    if not buf or buf[0] != APDU_TAG:
        raise RemoteProtocolError("not a C12.22 ACSE APDU (first byte is not 60)")
    _, pos, end = read_tlv(buf, 0, len(buf))
    if end != len(buf):
        raise RemoteProtocolError(f"{len(buf) - end} bytes after the end of the APDU")
    values: dict[str, Any] = {}
    extras: list[bytes] = []
    wire: list[tuple[int, bytes]] = []
    while pos < end:
        tag = buf[pos]
        if pos + 1 < end and buf[pos + 1] < 0x80 and tag & 0x1F != 0x1F:  # read_tlv's usual case
            c_start = pos + 2
            c_end = c_start + buf[pos + 1]
            if c_end > end:
                tag, c_start, c_end = read_tlv(buf, pos, end)  # raises: overruns the APDU
        else:
            tag, c_start, c_end = read_tlv(buf, pos, end)
        wire.append((tag, buf[pos:c_end]))
        entry = _DECODERS.get(tag)
        if entry is None:
            if tag & 0xC0 != 0x80:
                raise RemoteProtocolError(f"element tag {tag:#04x} is not context-specific")
            extras.append(buf[pos:c_end])
        elif entry[0] in values:
            raise RemoteProtocolError(f"element {tag:#04x} appears twice")
        else:
            values[entry[0]] = entry[1](buf, c_start, c_end)
        pos = c_end
    for name, what in _REQUIRED.items():
        if name not in values:
            raise RemoteProtocolError(f"APDU without a {what}")
    apdu = dict(_APDU_TEMPLATE)
    apdu.update(values)
    apdu["extra_elements"] = tuple(extras)
    apdu["wire_elements"] = tuple(wire)
    return build_frozen(Apdu, apdu)
