"""C12.22 security modes 1 and 2 on whole APDUs: canonical cleartext, protect, unprotect, keys.

The canonical cleartext N (protocol-facts.md 3.5, the order of Wireshark and MeteringSDK):
A1, A2 (absolute form), A4, A7, A8, 8B (configurable: Wireshark includes it, MeteringSDK does not;
unverified, default Wireshark), AC, the BE/28/[indirect reference]/81 headers with the on-wire
lengths and the EPSEM control byte, A6 (absolute form), key id, IV. Elements are taken "as
encoded": a decoded APDU contributes its received bytes (:attr:`Apdu.wire_elements`).

A wrong MAC, an unknown key id or a secured EPSEM without key id and IV raise
:class:`SecurityError` naming the cause; nothing secured is ever returned unverified.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import replace

from ..ber import DEFAULT_BASE_OID, encode_length, encode_oid
from ..errors import LocalProtocolError, RemoteProtocolError, SecurityError
from ._tlv import read_tlv
from .acse import Apdu, CallingAuthentication, Element, apdu_elements
from .eax import MAC_SIZE, eax_decrypt, eax_encrypt, mac_matches, mode1_mac
from .epsem import Epsem, SecurityMode, decode_epsem, security_mode_of

__all__ = [
    "IV_SIZE",
    "KeyStore",
    "canonical_cleartext",
    "iv_from_time",
    "protect",
    "unprotect",
]

#: IV size sent (3.5; every sample carries 81 04).
IV_SIZE = 4

#: The elements copied "as encoded", in canonical order, before the BE header.
_AS_ENCODED = (
    Element.CALLED_AP_INVOCATION_ID,
    Element.CALLING_AE_QUALIFIER,
    Element.CALLING_AP_INVOCATION_ID,
)


class KeyStore(Mapping[int, bytes]):
    """Key id (one byte) -> 16-byte AES-128 key. Its repr shows the ids, never the keys."""

    def __init__(self, keys: Mapping[int, bytes] | None = None) -> None:
        self._keys: dict[int, bytes] = {}
        for key_id, key in (keys or {}).items():
            self.add(key_id, key)

    def add(self, key_id: int, key: bytes) -> None:
        """Add or replace the key for ``key_id``."""
        if not 0 <= key_id <= 0xFF:
            raise LocalProtocolError(f"key id {key_id} is not one byte")
        if len(key) != 16:
            raise LocalProtocolError(f"key {key_id} is {len(key)} bytes (AES-128 needs 16)")
        self._keys[key_id] = bytes(key)

    def remove(self, key_id: int) -> None:
        """Forget ``key_id`` (no error if unknown)."""
        self._keys.pop(key_id, None)

    def __getitem__(self, key_id: int) -> bytes:
        return self._keys[key_id]

    def __iter__(self) -> Iterator[int]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyStore(key_ids={sorted(self._keys)})"


def iv_from_time(now: float) -> bytes:
    """MeteringSDK's IV: UTC seconds since 1970, big-endian, 4 bytes (callers must not reuse one)."""
    return (int(now) & 0xFFFFFFFF).to_bytes(4, "big")


@functools.lru_cache(maxsize=16)
def _base_bytes(base_oid: tuple[int, ...]) -> bytes:
    return encode_oid(base_oid)


def _absolute_title(raw: bytes, base: bytes) -> bytes:
    """Rewrite a title element ``A2|A6 (80 rel | 06 abs)`` to ``A2|A6 <len> 06 <len> <abs>``."""
    tag, start, end = read_tlv(raw, 0, len(raw))
    inner, c_start, c_end = read_tlv(raw, start, end)
    if inner != 0x80:
        return raw
    oid = base + raw[c_start:c_end]
    content = b"\x06" + encode_length(len(oid)) + oid
    return bytes((tag,)) + encode_length(len(content)) + content


def _user_information_header(raw: bytes) -> bytes:
    """``BE <len> 28 <len> [indirect reference] 81 <len> <control>``, all as encoded."""
    _, start, end = read_tlv(raw, 0, len(raw))
    _, x_start, x_end = read_tlv(raw, start, end)
    pos = x_start
    while True:
        tag, c_start, c_end = read_tlv(raw, pos, x_end)
        if tag == 0x81:
            break
        pos = c_end
    if c_start == c_end:
        raise SecurityError("secured APDU with an empty EPSEM")
    return raw[: c_start + 1]


def canonical_cleartext(
    apdu: Apdu,
    *,
    base_oid: tuple[int, ...] = DEFAULT_BASE_OID,
    include_mechanism_name: bool = True,
) -> bytes:
    """The EAX' cleartext N of ``apdu`` (3.5); needs A6 and a C12.22-form AC."""
    auth = apdu.calling_authentication
    if auth is None or auth.key_id is None or auth.iv is None:
        raise SecurityError("secured APDU without a C12.22 key id and IV (AC)")
    elements = dict(apdu_elements(apdu))
    if Element.CALLING_AP_TITLE not in elements:
        raise SecurityError("secured APDU without a calling AP title (A6)")
    base = _base_bytes(base_oid)
    out = [elements.get(Element.ASO_CONTEXT, b"")]
    out.append(_absolute_title(elements[Element.CALLED_AP_TITLE], base))
    out.extend(elements.get(tag, b"") for tag in _AS_ENCODED)
    if include_mechanism_name:
        out.append(elements.get(Element.MECHANISM_NAME, b""))
    out.append(elements[Element.CALLING_AUTHENTICATION])
    out.append(_user_information_header(elements[Element.USER_INFORMATION]))
    out.append(_absolute_title(elements[Element.CALLING_AP_TITLE], base))
    out.append(bytes((auth.key_id,)) + auth.iv)
    return b"".join(out)


def protect(
    apdu: Apdu,
    key_id: int,
    key: bytes,
    iv: bytes,
    mode: SecurityMode,
    *,
    base_oid: tuple[int, ...] = DEFAULT_BASE_OID,
    include_mechanism_name: bool = True,
) -> Apdu:
    """Secure ``apdu``, whose user information holds a plaintext EPSEM without a MAC.

    Sets the control byte's security mode, puts key id and IV in AC, then appends the MAC (mode 1)
    or encrypts the body (ED class and services) and appends the MAC (mode 2).
    """
    if mode not in (SecurityMode.AUTHENTICATED, SecurityMode.CIPHERTEXT):
        raise LocalProtocolError(f"protect() applies security mode 1 or 2, not {mode!r}")
    if len(iv) != IV_SIZE:
        raise LocalProtocolError(f"IV of {len(iv)} bytes (C12.22 sends {IV_SIZE})")
    info = apdu.user_information
    if not info.epsem or not info.epsem[0] & 0x80:
        raise LocalProtocolError("protect() needs a plaintext EPSEM (control byte with bit 7)")
    control = bytes(((info.epsem[0] & ~0x0C) | (int(mode) << 2),))
    body = info.epsem[1:]
    draft = replace(
        apdu,
        calling_authentication=CallingAuthentication(key_id=key_id, iv=iv),
        user_information=replace(info, epsem=control + body + bytes(MAC_SIZE)),
        wire_elements=(),
    )
    cleartext = canonical_cleartext(
        draft, base_oid=base_oid, include_mechanism_name=include_mechanism_name
    )
    if mode is SecurityMode.AUTHENTICATED:
        epsem = control + body + mode1_mac(key, cleartext, body)
    else:
        ciphertext, mac = eax_encrypt(key, cleartext, body)
        epsem = control + ciphertext + mac
    return replace(draft, user_information=replace(info, epsem=epsem))


def _key_for(apdu: Apdu, keys: Mapping[int, bytes]) -> bytes:
    auth = apdu.calling_authentication
    if auth is None or auth.key_id is None:
        raise SecurityError("secured EPSEM without a C12.22 key id and IV (AC)")
    key = keys.get(auth.key_id)
    if key is None:
        raise SecurityError(f"unknown key id {auth.key_id}")
    return key


def unprotect(
    apdu: Apdu,
    keys: Mapping[int, bytes],
    base_oid: tuple[int, ...] = DEFAULT_BASE_OID,
    *,
    include_mechanism_name: bool = True,
    require_security: bool = False,
) -> tuple[Apdu, Epsem]:
    """Verify (and in mode 2 decrypt) a received APDU.

    Returns the APDU with its plaintext EPSEM (control byte, plaintext body, verified MAC; its
    ``wire_elements`` cleared, as it no longer matches the wire) and the decoded :class:`Epsem`.
    A cleartext (mode 0) APDU is returned as is, unless ``require_security`` (then it raises
    :class:`SecurityError`, which also catches a control byte downgraded to mode 0).
    """
    epsem = apdu.user_information.epsem
    if not epsem:
        raise RemoteProtocolError("empty EPSEM")
    mode = security_mode_of(epsem[0])
    if mode is SecurityMode.CLEARTEXT:
        if require_security:
            raise SecurityError("cleartext EPSEM where security is required")
        return apdu, decode_epsem(epsem)
    key = _key_for(apdu, keys)
    if len(epsem) < 1 + MAC_SIZE:
        raise SecurityError("secured EPSEM without its MAC")
    cleartext = canonical_cleartext(
        apdu, base_oid=base_oid, include_mechanism_name=include_mechanism_name
    )
    body, mac = epsem[1:-MAC_SIZE], epsem[-MAC_SIZE:]
    key_id = apdu.calling_authentication.key_id if apdu.calling_authentication else None
    if mode is SecurityMode.AUTHENTICATED:
        if not mac_matches(mode1_mac(key, cleartext, body), mac):
            raise SecurityError(f"MAC mismatch (mode 1, key id {key_id})")
        plain = epsem
    else:
        decrypted = eax_decrypt(key, cleartext, body, mac)
        if decrypted is None:
            raise SecurityError(f"MAC mismatch (mode 2, key id {key_id})")
        plain = epsem[:1] + decrypted + mac
    info = replace(apdu.user_information, epsem=plain)
    return replace(apdu, user_information=info, wire_elements=()), decode_epsem(plain)
