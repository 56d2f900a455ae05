"""The analyser's output: one :class:`MessageRecord` per C12.22 APDU, with its services.

Records are immutable and carry no behaviour beyond a few derived properties. Conversation
columns follow Zeek (and so the ICSNPP logs): ``orig_*`` is the side that opened the conversation,
whichever side sent this message; ``is_orig`` says which one did.

The analyser makes a record per message and one per service, so it builds them with
:func:`build_record` (the instance dictionary filled in one call) rather than through a frozen
dataclass's ``__init__`` (one ``object.__setattr__`` per field): the same objects, in a third of
the time. That is why these dataclasses have no ``__slots__``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, TypeVar

from amidcc.codecs import psem
from amidcc.codecs.c1222 import C1222Message

__all__ = ["MessageKind", "MessageRecord", "SecurityStatus", "ServiceRecord", "build_record"]

_R = TypeVar("_R", "MessageRecord", "ServiceRecord")


class SecurityStatus(enum.StrEnum):
    """How far the keys at hand let us read a message (see the module docstring)."""

    CLEARTEXT = "cleartext"
    VERIFIED = "verified"
    DECRYPTED = "decrypted"
    UNVERIFIED = "unverified"
    ENCRYPTED = "encrypted"
    BAD_MAC = "bad_mac"


class MessageKind(enum.StrEnum):
    """What a message is, from its services."""

    REQUEST = "request"
    RESPONSE = "response"
    MIXED = "mixed"  #: requests and responses in one EPSEM (unusual, but not malformed)
    SEGMENT = "segment"  #: a draft-format segment (reassembled separately)
    UNKNOWN = "unknown"  #: malformed, or ciphertext without its key


@dataclass(frozen=True, kw_only=True)
class ServiceRecord:
    """One EPSEM service of a message."""

    raw: bytes
    """The service bytes: code then body."""
    is_request: bool
    """Code 20 or above: a request; below: a response."""
    decoded: psem.Request | psem.Response | None = None
    """The decoded service; None if malformed, or for a response not yet read against its request."""
    request: psem.Request | None = None
    """For a response: the request it was read against (None when the request is unknown)."""
    request_code: int | None = None
    """For a response: the code of that request, even when the request itself did not decode."""
    error: str | None = None
    """Why the service could not be decoded."""

    @property
    def code(self) -> int:
        """The request or response code (first byte)."""
        return self.raw[0]


@dataclass(frozen=True, kw_only=True)
class MessageRecord:
    """One C12.22 APDU seen in the capture, decoded as far as possible."""

    index: int
    """Position among the capture's messages (0-based)."""
    ts: float
    """Capture time of the frame that completed the APDU."""
    conversation: int
    """Conversation number (one TCP connection, or one UDP endpoint pair), from 1."""
    proto: str
    """``"tcp"`` or ``"udp"``."""
    orig_h: str
    """Address of the conversation's originator."""
    orig_p: int
    """Port of the conversation's originator."""
    resp_h: str
    """Address of the conversation's responder."""
    resp_p: int
    """Port of the conversation's responder."""
    is_orig: bool
    """True when the originator sent this message."""
    apdu: bytes
    """The APDU bytes as framed (ciphertext still in place)."""
    message: C1222Message | None
    """The decoded message; None when malformed."""
    security: SecurityStatus | None
    """Security status; None for malformed APDUs and segments."""
    kind: MessageKind
    """Request, response, segment..."""
    services: tuple[ServiceRecord, ...] = ()
    """The EPSEM services (responses read against their request when it was matched)."""
    error: str | None = None
    """Why the APDU, its security or its framing failed (the message is then counted malformed)."""
    answers: int | None = None
    """For a response: ``index`` of the request it answers."""
    latency: float | None = None
    """For a response: seconds since that request."""
    matched_by: str | None = None
    """How the request was found: ``"invocation_id"``, ``"ap_titles"`` or ``"order"``."""
    reassembled: bool = False
    """True for an APDU rebuilt from draft-format segments (its segments are records too)."""

    @property
    def calling_ap_title(self) -> str | None:
        """The sender's AP title (A6) as text, if known."""
        if self.message is None or self.message.apdu.calling_ap_title is None:
            return None
        return str(self.message.apdu.calling_ap_title)

    @property
    def called_ap_title(self) -> str | None:
        """The destination AP title (A2) as text, if known."""
        return None if self.message is None else str(self.message.apdu.called_ap_title)

    @property
    def src(self) -> tuple[str, int]:
        """Sender address and port."""
        return (self.orig_h, self.orig_p) if self.is_orig else (self.resp_h, self.resp_p)

    @property
    def dst(self) -> tuple[str, int]:
        """Receiver address and port."""
        return (self.resp_h, self.resp_p) if self.is_orig else (self.orig_h, self.orig_p)


def build_record(cls: type[_R], values: dict[str, Any]) -> _R:
    """``cls(**values)`` without ``__init__``: ``values`` must name every field, in order
    (tests/pcap/test_fast_path.py checks the analyser's records against ``__init__``)."""
    record: _R = object.__new__(cls)
    record.__dict__.update(values)
    return record
