"""What :class:`~amidcc.codecs.c1218.link.Link` reports. Plain values with no behaviour.

Every accepted :meth:`Link.send_message` ends in exactly one :class:`MessageDelivered` or
:class:`SendFailed`, unless :meth:`Link.reset` is called first.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .frame import Frame, RejectReason

__all__ = [
    "ChannelTimeout",
    "DuplicateDiscarded",
    "Event",
    "MessageDelivered",
    "MessageReceived",
    "PacketRejected",
    "RetransmitCause",
    "Retransmitted",
    "SendFailed",
]


class RetransmitCause(enum.StrEnum):
    """Why a packet went out again (and, on the last attempt, why sending failed)."""

    NAK = "nak"
    """The peer answered NAK."""
    RESPONSE_TIMEOUT = "response-timeout"
    """No ACK within the response timeout."""


@dataclass(frozen=True, kw_only=True, slots=True)
class MessageReceived:
    """A whole PSEM message arrived (reassembled if it came in several packets); it was ACKed."""

    data: bytes
    """The message."""
    packets: int
    """How many packets carried it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class MessageDelivered:
    """The peer ACKed the last packet of the message we were sending."""

    data: bytes
    """The message, as given to ``send_message``."""
    packets: int
    """How many packets carried it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SendFailed:
    """Retries ran out for one packet; the message is abandoned and the link can send again."""

    cause: RetransmitCause
    """What ended the last attempt: a NAK or the response timeout."""
    data: bytes
    """The message, as given to ``send_message``."""
    packet_index: int
    """Zero-based index of the packet that was never ACKed."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Retransmitted:
    """A packet was sent again with the same toggle bit."""

    cause: RetransmitCause
    """NAK received, or response timeout."""
    attempt: int
    """1 for the first retransmission, up to ``max_retries``."""
    packet_index: int
    """Zero-based index of the packet within its message."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PacketRejected:
    """A received packet was thrown away."""

    reason: RejectReason
    """Why."""
    raw: bytes
    """The refused bytes (the partial frame for an inter-character timeout)."""
    nak_sent: bool
    """True where a NAK went out (every reason except INTER_CHARACTER_TIMEOUT)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DuplicateDiscarded:
    """A retransmission of the packet accepted last (our ACK was lost); ACKed again, dropped."""

    frame: Frame
    """The duplicate."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelTimeout:
    """No valid traffic for the channel-traffic timeout: the link went back to its base state
    (partial message dropped, duplicate detection forgotten)."""

    last_traffic: float
    """``now`` of the last valid frame, ACK or NAK received."""


Event = (
    MessageReceived
    | MessageDelivered
    | SendFailed
    | Retransmitted
    | PacketRejected
    | DuplicateDiscarded
    | ChannelTimeout
)
