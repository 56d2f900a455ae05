"""ANSI C12.22 (IEEE 1703) on the wire, sans-I/O: ACSE APDUs, EPSEM, EAX' security, framing.

Modules (protocol-facts.md section 3):

- ``acse``: the ACSE APDU and its elements; ``decode_apdu`` / ``encode_apdu``.
- ``epsem``: the EPSEM envelope (control byte, ED class, raw services, MAC).
- ``eax``: the EAX' primitives (AES-128, little-endian dbl), per-key cache.
- ``security``: canonical cleartext, ``protect`` / ``unprotect``, ``KeyStore``.
- ``stream``: TCP framing (``ApduBuffer``); ``datagram``: UDP (one datagram, one APDU).
- ``segmentation``: the *draft* segment format (unconfirmed), split and ``Reassembler``.
- ``message``: ``C1222Message``, ``decode_message``, ``message_from_apdu``, ``build_message``,
  ``reply_to``.

EPSEM services stay raw bytes here; ``amidcc.codecs.psem`` parses them.
"""

from __future__ import annotations

from .acse import (
    AeQualifier,
    Apdu,
    ApTitle,
    CallingAuthentication,
    Element,
    UserInformation,
    decode_apdu,
    encode_apdu,
)
from .datagram import C1222_PORT, datagrams_for, receive_datagram
from .epsem import Epsem, ResponseControl, SecurityMode, decode_epsem, encode_epsem
from .message import C1222Message, build_message, decode_message, message_from_apdu, reply_to
from .security import KeyStore, canonical_cleartext, iv_from_time, protect, unprotect
from .segmentation import Reassembler, SegmentationConfig, is_segment, split_apdu
from .stream import DEFAULT_MAX_APDU_SIZE, NEED_MORE, ApduBuffer, ApduTooLargeError

__all__ = [
    "C1222_PORT",
    "DEFAULT_MAX_APDU_SIZE",
    "NEED_MORE",
    "AeQualifier",
    "ApTitle",
    "Apdu",
    "ApduBuffer",
    "ApduTooLargeError",
    "C1222Message",
    "CallingAuthentication",
    "Element",
    "Epsem",
    "KeyStore",
    "Reassembler",
    "ResponseControl",
    "SecurityMode",
    "SegmentationConfig",
    "UserInformation",
    "build_message",
    "canonical_cleartext",
    "datagrams_for",
    "decode_apdu",
    "decode_epsem",
    "decode_message",
    "encode_apdu",
    "encode_epsem",
    "is_segment",
    "iv_from_time",
    "message_from_apdu",
    "protect",
    "receive_datagram",
    "reply_to",
    "split_apdu",
    "unprotect",
]
