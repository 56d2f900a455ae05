"""scapy layers for C12.22 (protocol-facts.md 3): the ACSE APDU, the EPSEM, its services.

* :class:`C1222` is one ACSE APDU. Its fields are the ACSE elements (None = absent); they are
  encoded and decoded by amidcc's codec (``amidcc.codecs.c1222.acse``), so lengths are always
  right. A dissected APDU rebuilds to its exact wire bytes while its fields are unchanged. Its
  payload is the :class:`EPSEM`; a further APDU in the same TCP segment follows as the EPSEM's
  payload.
* :class:`EPSEM` has the control bits, the ED class, the services (a list of
  :class:`EPSEMService`, each a BER length and a PSEM layer) or, in mode 2, the ciphertext, and
  the MAC.
* :meth:`C1222.decrypt` / :meth:`C1222.verify` use the keys the user supplies;
  :func:`set_keys` makes dissection decrypt mode-2 APDUs on its own (the plaintext then shows as
  an :class:`EPSEMPlaintext` layer and ``crypto`` is ``"good"`` or ``"bad"``).

Bound to TCP and UDP port 1153 when :mod:`amidcc.pcap.layers` is imported.
"""

# mypy: disable-error-code="misc"

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scapy.config import conf
from scapy.fields import (
    BitEnumField,
    BitField,
    ConditionalField,
    PacketListField,
    StrFixedLenField,
    StrLenField,
)
from scapy.packet import NoPayload, Packet, Raw

from amidcc.codecs.ber import DEFAULT_BASE_OID, decode_length, decode_oid, encode_length, encode_oid
from amidcc.codecs.c1222 import (
    AeQualifier,
    Apdu,
    ApTitle,
    CallingAuthentication,
    KeyStore,
    UserInformation,
    decode_apdu,
    encode_apdu,
    unprotect,
)
from amidcc.codecs.errors import CodecError, SecurityError

from .fields import BERLenField, ValueField
from .psem import psem_class

__all__ = ["C1222", "EPSEM", "EPSEMPlaintext", "EPSEMService", "set_keys"]


class _Dissection:
    """What dissection decrypts with (see :func:`set_keys`)."""

    keys = KeyStore()
    base_oid: tuple[int, ...] = DEFAULT_BASE_OID


def set_keys(keys: Mapping[int, bytes], base_oid: str | tuple[int, ...] | None = None) -> None:
    """Keys (key id -> 16 bytes) that dissection uses to decrypt mode-2 APDUs; ``{}`` turns it off."""
    _Dissection.keys = KeyStore(keys)
    if base_oid is not None:
        _Dissection.base_oid = _oid(base_oid)


def _oid(text: str | tuple[int, ...]) -> tuple[int, ...]:
    return text if isinstance(text, tuple) else tuple(int(a) for a in text.strip(".").split("."))


class EPSEMService(Packet):
    """One EPSEM service: its BER length, then the PSEM request or response (the payload)."""

    name = "EPSEM service"
    fields_desc = [BERLenField("length", None)]

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        if self.length is None:
            p = encode_length(len(pay))
        return p + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return s[: self.length], s[self.length :]

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        return psem_class(payload)


def _services_length(pkt: Any) -> int:
    size: int = pkt._epsem_size - 1
    if pkt.ed_class_included and (pkt.security_mode != 2 or pkt.plaintext_view):
        size -= 4
    if pkt.security_mode in (1, 2):
        size -= 4
    return size


class EPSEM(Packet):
    """The EPSEM inside ``BE/28/81``: control byte, [ED class], services or ciphertext, [MAC]."""

    name = "EPSEM"
    plaintext_view = False
    fields_desc = [
        BitField("reserved", 1, 1),
        BitField("recovery", 0, 1),
        BitField("proxy", 0, 1),
        BitField("ed_class_included", 0, 1),
        BitEnumField("security_mode", 0, 2, {0: "cleartext", 1: "authenticated", 2: "ciphertext"}),
        BitEnumField("response_control", 0, 2, {0: "always", 1: "on_exception", 2: "never"}),
        ConditionalField(
            StrFixedLenField("ed_class", b"    ", 4),
            lambda p: p.ed_class_included and (p.security_mode != 2 or p.plaintext_view),
        ),
        ConditionalField(
            StrLenField("ciphertext", b"", length_from=_services_length),
            lambda p: p.security_mode == 2 and not p.plaintext_view,
        ),
        ConditionalField(
            PacketListField("services", [], EPSEMService, length_from=_services_length),
            lambda p: p.security_mode != 2 or p.plaintext_view,
        ),
        ConditionalField(
            StrFixedLenField("mac", b"\x00" * 4, 4), lambda p: p.security_mode in (1, 2)
        ),
    ]

    def pre_dissect(self, s: bytes) -> bytes:
        self._epsem_size = len(s)
        return s

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        return C1222 if payload[:1] == b"\x60" else Raw


class EPSEMPlaintext(EPSEM):
    """The decrypted view of a mode-2 EPSEM: the layout of mode 1 (services, then the MAC)."""

    name = "EPSEM (decrypted)"
    plaintext_view = True


_ELEMENT_FIELDS = (
    "aso_context", "called_ap_title", "called_ae_qualifier", "called_ap_invocation_id",
    "calling_ap_title", "calling_ae_qualifier", "calling_ap_invocation_id", "mechanism_name",
    "key_id", "iv", "auth_indirect_reference", "auth_raw", "user_info_indirect_reference",
)  # fmt: skip


def _fields_of(apdu: Apdu) -> dict[str, Any]:
    auth = apdu.calling_authentication or CallingAuthentication(raw=b"")
    calling = apdu.calling_ap_title
    qualifier = apdu.calling_ae_qualifier
    return {
        "aso_context": None if apdu.aso_context is None else ".".join(map(str, apdu.aso_context)),
        "called_ap_title": str(apdu.called_ap_title),
        "called_ae_qualifier": apdu.called_ae_qualifier,
        "called_ap_invocation_id": apdu.called_ap_invocation_id,
        "calling_ap_title": None if calling is None else str(calling),
        "calling_ae_qualifier": None if qualifier is None else int(qualifier),
        "calling_ap_invocation_id": apdu.calling_ap_invocation_id,
        "mechanism_name": None if apdu.mechanism_name is None else
        ".".join(map(str, decode_oid(apdu.mechanism_name))),
        "key_id": auth.key_id,
        "iv": auth.iv,
        "auth_indirect_reference": auth.indirect_reference,
        "auth_raw": auth.raw if apdu.calling_authentication is not None and auth.raw else None,
        "user_info_indirect_reference": apdu.user_information.indirect_reference,
    }  # fmt: skip


class C1222(Packet):
    """One C12.22 ACSE APDU; the ACSE elements are its fields (None = element absent).

    AP titles are dotted text, a leading dot marking a relative title (``".123.8437"``).
    ``calling_ae_qualifier`` is the A7 bit set (1 TEST, 2 URGENT, 4 NOTIFICATION); ``key_id`` and
    ``iv`` make the C12.22 calling authentication value (AC); ``auth_raw`` holds any other AC form.
    """

    name = "C12.22 ACSE APDU"
    fields_desc = [
        ValueField("aso_context", None),
        ValueField("called_ap_title", ".1"),
        ValueField("called_ae_qualifier", None),
        ValueField("called_ap_invocation_id", None),
        ValueField("calling_ap_title", None),
        ValueField("calling_ae_qualifier", None),
        ValueField("calling_ap_invocation_id", 0),
        ValueField("mechanism_name", None),
        ValueField("key_id", None),
        ValueField("iv", None),
        ValueField("auth_indirect_reference", None),
        ValueField("auth_raw", None),
        ValueField("user_info_indirect_reference", None),
    ]
    crypto: str | None = None  # "good" / "bad" after dissection with keys (see set_keys)
    _wire: tuple[dict[str, Any], bytes, int] | None = None  # fields, APDU bytes, EPSEM size

    # --- dissection ---

    def do_dissect(self, s: bytes) -> bytes:
        decoded = decode_length(s, 1) if s[:1] == b"\x60" else None
        if decoded is None or decoded[0] + decoded[1] > len(s):
            raise CodecError("not a whole C12.22 APDU")
        total = decoded[0] + decoded[1]
        apdu = decode_apdu(s[:total])
        self.fields.update(_fields_of(apdu))
        self._wire = (dict(self.fields), s[:total], len(apdu.user_information.epsem))
        self._apdu = apdu
        self.explicit = 1
        return apdu.user_information.epsem + s[total:]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        size = len(self._apdu.user_information.epsem)
        return s[:size], s[size:]

    def dissect(self, s: bytes) -> None:
        s = self.pre_dissect(s)
        s = self.do_dissect(s)
        s = self.post_dissect(s)
        epsem, rest = self.extract_padding(s)
        self._dissect_epsem(epsem)
        if rest:
            self.add_payload(C1222(rest) if rest[:1] == b"\x60" else conf.raw_layer(rest))

    def _dissect_epsem(self, epsem: bytes) -> None:
        if _Dissection.keys and epsem and (epsem[0] >> 2) & 3 == 2:
            try:
                plain, _ = unprotect(self._apdu, _Dissection.keys, _Dissection.base_oid)
            except SecurityError:
                self.crypto = "bad"
            else:
                self.crypto = "good"
                self.add_payload(EPSEMPlaintext(plain.user_information.epsem, _underlayer=self))
                return
        self.do_dissect_payload(epsem)

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        return EPSEM

    # --- building ---

    def to_apdu(self, epsem: bytes) -> Apdu:
        """The amidcc :class:`~amidcc.codecs.c1222.Apdu` of these fields around ``epsem``."""
        f = self.getfieldval
        auth = None
        if f("key_id") is not None or f("iv") is not None:
            auth = CallingAuthentication(
                key_id=f("key_id"), iv=f("iv"), indirect_reference=f("auth_indirect_reference")
            )
        elif f("auth_raw") is not None:
            auth = CallingAuthentication(raw=f("auth_raw"))
        calling, qualifier, mechanism = (
            f("calling_ap_title"),
            f("calling_ae_qualifier"),
            f("mechanism_name"),
        )
        return Apdu(
            aso_context=None if f("aso_context") is None else _oid(f("aso_context")),
            called_ap_title=ApTitle.parse(f("called_ap_title")),
            called_ae_qualifier=f("called_ae_qualifier"),
            called_ap_invocation_id=f("called_ap_invocation_id"),
            calling_ap_title=None if calling is None else ApTitle.parse(calling),
            calling_ae_qualifier=None if qualifier is None else AeQualifier(qualifier),
            calling_ap_invocation_id=f("calling_ap_invocation_id"),
            mechanism_name=None if mechanism is None else encode_oid(_oid(mechanism)),
            calling_authentication=auth,
            user_information=UserInformation(
                epsem=epsem, indirect_reference=f("user_info_indirect_reference")
            ),
        )  # fmt: skip

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        payload = self.payload
        rest = b""
        if isinstance(payload, EPSEM) and not isinstance(payload.payload, NoPayload):
            rest = bytes(payload.payload)
        epsem = pay[: len(pay) - len(rest)]
        wire = self._wire
        if wire is not None and wire[0] == self.fields and wire[2] == len(epsem):
            header = wire[1][: len(wire[1]) - wire[2]]  # the received header, lengths as sent
            return header + epsem + rest
        return encode_apdu(self.to_apdu(epsem)) + rest

    # --- security ---

    def _own_bytes(self) -> bytes:
        data: bytes = bytes(self)
        decoded = decode_length(data, 1)
        assert decoded is not None
        return data[: decoded[0] + decoded[1]]

    def verify(
        self, keys: Mapping[int, bytes], base_oid: str | tuple[int, ...] = DEFAULT_BASE_OID
    ) -> bool:
        """True when the MAC (mode 1 or 2) is right for ``keys``; False when wrong or key unknown."""
        try:
            unprotect(decode_apdu(self._own_bytes()), keys, _oid(base_oid), require_security=True)
        except SecurityError:
            return False
        return True

    def decrypt(
        self, keys: Mapping[int, bytes], base_oid: str | tuple[int, ...] = DEFAULT_BASE_OID
    ) -> C1222:
        """A copy whose EPSEM is the verified plaintext (:class:`EPSEMPlaintext`).

        Raises :class:`~amidcc.codecs.errors.SecurityError` on a bad MAC or an unknown key id. The
        copy is a view for reading: building it gives the plaintext, not a valid wire APDU.
        """
        apdu = decode_apdu(self._own_bytes())
        plain, _ = unprotect(apdu, keys, _oid(base_oid))
        out = C1222()
        out.fields.update(_fields_of(apdu))
        out.crypto = "good"
        out.add_payload(EPSEMPlaintext(plain.user_information.epsem))
        return out

    def copy(self) -> C1222:
        clone: C1222 = super().copy()
        clone._wire = self._wire
        clone.crypto = self.crypto
        return clone
