"""The high-level C12.22 message view: APDU + EPSEM + security, and builders for the common cases.

``decode_message`` decodes a whole APDU, verifies and decrypts it when keys are given, and parses
the EPSEM. Without keys a mode-1 message is parsed but reported unauthenticated, and a mode-2
message keeps its ciphertext (``epsem`` is None). With keys, a bad MAC or unknown key id raises
:class:`SecurityError`. Accepting cleartext or unauthenticated messages is the caller's policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..ber import DEFAULT_BASE_OID
from ..codes import ResponseCode
from ..errors import LocalProtocolError, RemoteProtocolError
from ._tlv import build_frozen
from .acse import AeQualifier, Apdu, ApTitle, UserInformation, decode_apdu
from .epsem import (
    Epsem,
    ResponseControl,
    SecurityMode,
    decode_epsem,
    encode_epsem,
    security_mode_of,
)
from .security import protect, unprotect
from .segmentation import is_segment

__all__ = ["C1222Message", "build_message", "decode_message", "message_from_apdu", "reply_to"]


@dataclass(frozen=True, kw_only=True)
class C1222Message:
    """One received C12.22 message, decoded as far as the keys allow."""

    apdu: Apdu
    """The APDU as received (ciphertext still in place, ``wire_elements`` set)."""
    epsem: Epsem | None
    """The plaintext EPSEM; None for a segment, or for ciphertext decoded without keys."""
    security_mode: SecurityMode | None
    """Security mode of the EPSEM control byte; None for a segment."""
    authenticated: bool
    """True when the MAC was verified (mode 1 or 2 with the key at hand)."""
    key_id: int | None
    """Key id from AC (C12.22 form), if any."""
    iv: bytes | None
    """IV from AC (C12.22 form), if any."""
    segment: bool = False
    """True for a draft-format segment: feed ``apdu`` to a Reassembler, then decode the result."""

    @property
    def encrypted(self) -> bool:
        """Ciphertext on the wire (mode 2)."""
        return self.security_mode is SecurityMode.CIPHERTEXT


def decode_message(
    data: bytes | bytearray | memoryview,
    keys: Mapping[int, bytes] | None = None,
    base_oid: tuple[int, ...] = DEFAULT_BASE_OID,
    *,
    include_mechanism_name: bool = True,
    require_security: bool = False,
) -> C1222Message:
    """Decode one whole APDU; verify and decrypt it when ``keys`` are given.

    ``require_security`` (with keys) rejects a cleartext EPSEM with :class:`SecurityError`.
    """
    if require_security and keys is None:
        raise LocalProtocolError("require_security needs keys to verify with")
    return message_from_apdu(
        decode_apdu(data),
        keys,
        base_oid,
        include_mechanism_name=include_mechanism_name,
        require_security=require_security,
    )


def message_from_apdu(
    apdu: Apdu,
    keys: Mapping[int, bytes] | None = None,
    base_oid: tuple[int, ...] = DEFAULT_BASE_OID,
    *,
    include_mechanism_name: bool = True,
    require_security: bool = False,
) -> C1222Message:
    """:func:`decode_message` of an APDU already decoded with ``decode_apdu`` (as received: its
    ``wire_elements`` are what security modes 1 and 2 verify); for a reader that looked at the
    APDU's titles and invocation ids first and should not decode it twice."""
    if require_security and keys is None:
        raise LocalProtocolError("require_security needs keys to verify with")
    auth = apdu.calling_authentication
    key_id, iv = (auth.key_id, auth.iv) if auth is not None else (None, None)
    if is_segment(apdu):
        return _message(apdu, None, None, False, key_id, iv, True)
    raw = apdu.user_information.epsem
    mode = security_mode_of(raw[0]) if raw else None
    if mode is None:
        raise RemoteProtocolError("empty EPSEM")
    epsem: Epsem | None = None
    if keys is not None:
        _, epsem = unprotect(
            apdu,
            keys,
            base_oid,
            include_mechanism_name=include_mechanism_name,
            require_security=require_security,
        )
    elif mode is not SecurityMode.CIPHERTEXT:
        epsem = decode_epsem(raw)
    authenticated = keys is not None and mode is not SecurityMode.CLEARTEXT
    return _message(apdu, epsem, mode, authenticated, key_id, iv, False)


def _message(
    apdu: Apdu,
    epsem: Epsem | None,
    mode: SecurityMode | None,
    authenticated: bool,
    key_id: int | None,
    iv: bytes | None,
    segment: bool,
) -> C1222Message:
    """``C1222Message(...)`` for the decoder (see ``build_frozen``)."""
    return build_frozen(
        C1222Message,
        {
            "apdu": apdu, "epsem": epsem, "security_mode": mode, "authenticated": authenticated,
            "key_id": key_id, "iv": iv, "segment": segment,
        },
    )  # fmt: skip


def _secure(
    apdu: Apdu,
    mode: SecurityMode,
    key_id: int | None,
    key: bytes | None,
    iv: bytes | None,
    base_oid: tuple[int, ...],
) -> Apdu:
    if mode is SecurityMode.CLEARTEXT:
        return apdu
    if key_id is None or key is None or iv is None:
        raise LocalProtocolError(f"security mode {mode.name} needs key_id, key and iv")
    return protect(apdu, key_id, key, iv, mode, base_oid=base_oid)


def build_message(
    *,
    called: ApTitle,
    calling: ApTitle,
    invocation_id: int,
    services: Sequence[bytes],
    security_mode: SecurityMode = SecurityMode.CLEARTEXT,
    key_id: int | None = None,
    key: bytes | None = None,
    iv: bytes | None = None,
    response_control: ResponseControl = ResponseControl.ALWAYS,
    ed_class: bytes | None = None,
    ae_qualifier: AeQualifier | None = None,
    aso_context: tuple[int, ...] | None = None,
    called_invocation_id: int | None = None,
    base_oid: tuple[int, ...] = DEFAULT_BASE_OID,
) -> Apdu:
    """A request APDU (head-end to meter), secured when ``security_mode`` is 1 or 2.

    ``iv`` must be fresh for every secured message (see ``iv_from_time``).
    """
    # build_frozen: every field, in order (tests/codecs/test_c1222_build_frozen_messages.py)
    epsem = build_frozen(
        Epsem,
        {
            "services": tuple(services), "security_mode": SecurityMode.CLEARTEXT,
            "response_control": response_control, "recovery": False, "proxy": False,
            "ed_class": ed_class, "mac": None,
        },
    )  # fmt: skip
    info = build_frozen(UserInformation, {"epsem": encode_epsem(epsem), "indirect_reference": None})
    apdu = build_frozen(
        Apdu,
        {
            "called_ap_title": called, "calling_ap_invocation_id": invocation_id,
            "user_information": info, "aso_context": aso_context, "called_ae_qualifier": None,
            "called_ap_invocation_id": called_invocation_id, "calling_ap_title": calling,
            "calling_ae_qualifier": ae_qualifier, "mechanism_name": None,
            "calling_authentication": None, "extra_elements": (), "wire_elements": (),
        },
    )  # fmt: skip
    return _secure(apdu, security_mode, key_id, key, iv, base_oid)


def reply_to(
    request: Apdu,
    services: Sequence[bytes],
    *,
    invocation_id: int | None = None,
    security_mode: SecurityMode = SecurityMode.CLEARTEXT,
    key_id: int | None = None,
    key: bytes | None = None,
    iv: bytes | None = None,
    ed_class: bytes | None = None,
    base_oid: tuple[int, ...] = DEFAULT_BASE_OID,
) -> Apdu:
    """The response APDU to ``request``: titles swapped, the request's A8 echoed in A4.

    Its own A8 is ``invocation_id`` (default: the request's, as in the standard's example 8); the
    TEST bit of A7 is echoed; A1 is copied. A request without a calling AP title cannot be
    answered (:class:`RemoteProtocolError`, UAT).
    """
    if request.calling_ap_title is None:
        raise RemoteProtocolError(
            "request has no calling AP title (A6) to reply to", response_code=ResponseCode.UAT
        )
    test = request.calling_ae_qualifier
    return build_message(
        called=request.calling_ap_title,
        calling=request.called_ap_title,
        invocation_id=request.calling_ap_invocation_id if invocation_id is None else invocation_id,
        called_invocation_id=request.calling_ap_invocation_id,
        services=services,
        security_mode=security_mode,
        key_id=key_id,
        key=key,
        iv=iv,
        ed_class=ed_class,
        ae_qualifier=AeQualifier.TEST if test is not None and test & AeQualifier.TEST else None,
        aso_context=request.aso_context,
        base_oid=base_oid,
    )
