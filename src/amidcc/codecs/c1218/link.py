"""The C12.18 data link as a sans-I/O state machine (protocol-facts.md 1.1-1.4).

Theory of operation. Host (client) and device (meter) run the same machine; the role is recorded
for diagnostics and selects nothing. It has three parts, each with its own small state:

* Sender (IDLE, WAIT_ACK). ``send_message`` cuts a PSEM message into packets and transmits the
  first. Each ACK releases the next packet, which carries a flipped toggle bit, until the last is
  ACKed (MessageDelivered). A NAK or the response timeout resends the same bytes (same toggle) up
  to ``max_retries`` times, then gives up (SendFailed). One message outstanding at a time.
* Receiver (IDLE, REASSEMBLING). Every good frame is ACKed and every bad one NAKed. A frame with the
  toggle bit (and, by default, the CRC) of the frame accepted last is a duplicate: ACKed, dropped.
  Packets are reassembled by SEQ_NBR, which counts the packets still to follow (MessageReceived).
* Channel (BASE, ACTIVE). A good frame, ACK or NAK makes it ACTIVE; ``channel_traffic_timeout``
  seconds with none of them while nothing is being sent returns it to BASE (ChannelTimeout), which
  drops a partial message and forgets the last toggle bit.

Time is an input: ``receive_data`` and ``tick`` take ``now``; ``next_deadline`` says when to call
``tick``. Answers (ACK, NAK, retransmissions) pile up in ``data_to_send``.

The sender and receiver are tables from (state, input) to (action, next state). Inputs are
classified before the lookup (an ACK of the last packet is ACK_LAST; a NAK with no retries left is
NAK_EXHAUSTED; a continuation packet with the wrong SEQ_NBR is OUT_OF_SEQUENCE). Every input the
peer can cause has an entry in every state, so nothing received can raise. A pair missing from a
table is our own misuse (``send_message`` while a message is outstanding): LocalProtocolError,
and the state is left unchanged, so the link stays usable.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

from ..errors import LocalProtocolError
from .events import (
    ChannelTimeout,
    DuplicateDiscarded,
    Event,
    MessageDelivered,
    MessageReceived,
    PacketRejected,
    RetransmitCause,
    Retransmitted,
    SendFailed,
)
from .frame import (
    DEFAULT_PACKET_SIZE,
    MAX_PACKET_SIZE,
    MIN_PACKET_SIZE,
    NEED_MORE,
    OVERHEAD,
    BadFrame,
    Control,
    Frame,
    FrameBuffer,
    RejectReason,
    encode_frame,
)

__all__ = [
    "RECV_TABLE",
    "SEND_TABLE",
    "ChannelState",
    "DuplicatePolicy",
    "Link",
    "LinkStats",
    "RecvAction",
    "RecvInput",
    "RecvState",
    "Role",
    "SendAction",
    "SendInput",
    "SendState",
]

#: Most packets one message may span (SEQ_NBR is one byte).
MAX_NBR_PACKETS: Final = 255

_ACK_BYTE: Final = bytes((Control.ACK,))
_NAK_BYTE: Final = bytes((Control.NAK,))


class Role(enum.Enum):
    """Which end of the optical port this link is."""

    HOST = "host"
    DEVICE = "device"


class DuplicatePolicy(enum.Enum):
    """How a retransmission is recognised (protocol-facts.md 1.2)."""

    TOGGLE_AND_CRC = "toggle-and-crc"
    """Same toggle bit and the same frame as the one accepted last (MeteringSDK, S6)."""
    TOGGLE = "toggle"
    """Same toggle bit as the frame accepted last, whatever its content."""


class SendState(enum.Enum):
    """Sender half: nothing outstanding, or a packet waiting for its ACK."""

    IDLE = "idle"
    WAIT_ACK = "wait-ack"


class SendInput(enum.Enum):
    """Sender inputs, classified (see the module docstring)."""

    SEND = "send"
    ACK = "ack"  # ACK, more packets to go
    ACK_LAST = "ack-last"  # ACK of the last packet (or of nothing, when idle)
    NAK = "nak"  # NAK, retries left
    NAK_EXHAUSTED = "nak-exhausted"
    TIMEOUT = "timeout"  # response timeout, retries left
    TIMEOUT_EXHAUSTED = "timeout-exhausted"


class SendAction(enum.Enum):
    """What the sender does on a transition."""

    TRANSMIT_FIRST = "transmit-first"
    TRANSMIT_NEXT = "transmit-next"
    DELIVER = "deliver"
    RETRANSMIT = "retransmit"
    FAIL = "fail"
    IGNORE = "ignore"


class RecvState(enum.Enum):
    """Receiver half: between messages, or part way through a multi-packet one."""

    IDLE = "idle"
    REASSEMBLING = "reassembling"


class RecvInput(enum.Enum):
    """A received frame, classified against the last one accepted and the expected SEQ_NBR."""

    SINGLE = "single"  # a whole message in one packet
    FIRST = "first"  # first of several
    MIDDLE = "middle"  # continuation, more to follow
    LAST = "last"  # continuation, SEQ_NBR 0
    OUT_OF_SEQUENCE = "out-of-sequence"
    TOO_MANY_PACKETS = "too-many-packets"
    DUPLICATE = "duplicate"
    BAD_FRAME = "bad-frame"
    CHANNEL_TIMEOUT = "channel-timeout"


class RecvAction(enum.Enum):
    """What the receiver does: REJECT and NAK_BAD_FRAME send NAK, ABANDON nothing, the rest ACK."""

    DELIVER_SINGLE = "deliver-single"
    START = "start"
    APPEND = "append"
    FINISH = "finish"
    REJECT = "reject"
    DISCARD_DUPLICATE = "discard-duplicate"
    NAK_BAD_FRAME = "nak-bad-frame"
    ABANDON = "abandon"


class ChannelState(enum.Enum):
    """Whether valid traffic has been seen since the last channel timeout or reset."""

    BASE = "base"
    ACTIVE = "active"


_S, _SI, _SA = SendState, SendInput, SendAction

#: Sender: (state, input) -> (action, next state). (WAIT_ACK, SEND) is missing on purpose.
SEND_TABLE: Final[Mapping[tuple[SendState, SendInput], tuple[SendAction, SendState]]] = {
    (_S.IDLE, _SI.SEND): (_SA.TRANSMIT_FIRST, _S.WAIT_ACK),
    (_S.IDLE, _SI.ACK): (_SA.IGNORE, _S.IDLE),
    (_S.IDLE, _SI.ACK_LAST): (_SA.IGNORE, _S.IDLE),
    (_S.IDLE, _SI.NAK): (_SA.IGNORE, _S.IDLE),
    (_S.IDLE, _SI.NAK_EXHAUSTED): (_SA.IGNORE, _S.IDLE),
    (_S.WAIT_ACK, _SI.ACK): (_SA.TRANSMIT_NEXT, _S.WAIT_ACK),
    (_S.WAIT_ACK, _SI.ACK_LAST): (_SA.DELIVER, _S.IDLE),
    (_S.WAIT_ACK, _SI.NAK): (_SA.RETRANSMIT, _S.WAIT_ACK),
    (_S.WAIT_ACK, _SI.NAK_EXHAUSTED): (_SA.FAIL, _S.IDLE),
    (_S.WAIT_ACK, _SI.TIMEOUT): (_SA.RETRANSMIT, _S.WAIT_ACK),
    (_S.WAIT_ACK, _SI.TIMEOUT_EXHAUSTED): (_SA.FAIL, _S.IDLE),
}

_R, _RI, _RA = RecvState, RecvInput, RecvAction

#: Receiver: (state, input) -> (action, next state). Complete: the peer drives every input.
RECV_TABLE: Final[Mapping[tuple[RecvState, RecvInput], tuple[RecvAction, RecvState]]] = {
    (_R.IDLE, _RI.SINGLE): (_RA.DELIVER_SINGLE, _R.IDLE),
    (_R.IDLE, _RI.FIRST): (_RA.START, _R.REASSEMBLING),
    (_R.IDLE, _RI.MIDDLE): (_RA.REJECT, _R.IDLE),
    (_R.IDLE, _RI.LAST): (_RA.REJECT, _R.IDLE),
    (_R.IDLE, _RI.OUT_OF_SEQUENCE): (_RA.REJECT, _R.IDLE),
    (_R.IDLE, _RI.TOO_MANY_PACKETS): (_RA.REJECT, _R.IDLE),
    (_R.IDLE, _RI.DUPLICATE): (_RA.DISCARD_DUPLICATE, _R.IDLE),
    (_R.IDLE, _RI.BAD_FRAME): (_RA.NAK_BAD_FRAME, _R.IDLE),
    (_R.IDLE, _RI.CHANNEL_TIMEOUT): (_RA.ABANDON, _R.IDLE),
    # A new message while one is half received: the sender gave up on the old one.
    (_R.REASSEMBLING, _RI.SINGLE): (_RA.DELIVER_SINGLE, _R.IDLE),
    (_R.REASSEMBLING, _RI.FIRST): (_RA.START, _R.REASSEMBLING),
    (_R.REASSEMBLING, _RI.MIDDLE): (_RA.APPEND, _R.REASSEMBLING),
    (_R.REASSEMBLING, _RI.LAST): (_RA.FINISH, _R.IDLE),
    (_R.REASSEMBLING, _RI.OUT_OF_SEQUENCE): (_RA.REJECT, _R.IDLE),
    (_R.REASSEMBLING, _RI.TOO_MANY_PACKETS): (_RA.REJECT, _R.IDLE),
    (_R.REASSEMBLING, _RI.DUPLICATE): (_RA.DISCARD_DUPLICATE, _R.REASSEMBLING),
    (_R.REASSEMBLING, _RI.BAD_FRAME): (_RA.NAK_BAD_FRAME, _R.REASSEMBLING),
    (_R.REASSEMBLING, _RI.CHANNEL_TIMEOUT): (_RA.ABANDON, _R.IDLE),
}

_REJECT_REASON: Final[Mapping[RecvInput, RejectReason]] = {
    _RI.MIDDLE: RejectReason.UNEXPECTED_CONTINUATION,
    _RI.LAST: RejectReason.UNEXPECTED_CONTINUATION,
    _RI.OUT_OF_SEQUENCE: RejectReason.OUT_OF_SEQUENCE,
    _RI.TOO_MANY_PACKETS: RejectReason.TOO_MANY_PACKETS,
}

_St = TypeVar("_St", SendState, RecvState)
_In = TypeVar("_In", SendInput, RecvInput)
_Ac = TypeVar("_Ac", SendAction, RecvAction)


def _transition(
    table: Mapping[tuple[_St, _In], tuple[_Ac, _St]], state: _St, inp: _In
) -> tuple[_Ac, _St]:
    try:
        return table[(state, inp)]
    except KeyError:
        raise LocalProtocolError(f"link cannot handle {inp.name} in state {state.name}") from None


@dataclass(slots=True)
class LinkStats:
    """Counters for the gateway's metrics (cumulative; :meth:`Link.reset` keeps them)."""

    frames_sent: int = 0
    """Frames transmitted, retransmissions included."""
    frames_received: int = 0
    """Good-CRC frames received, duplicates and rejected ones included."""
    acks_sent: int = 0
    acks_received: int = 0
    naks_sent: int = 0
    naks_received: int = 0
    retransmissions: int = 0
    crc_errors: int = 0
    length_errors: int = 0
    """Frames whose LENGTH exceeded the negotiated packet size."""
    sequence_errors: int = 0
    """Good frames NAKed because they did not fit the multi-packet sequence."""
    duplicates: int = 0
    garbage_bytes: int = 0
    """Bytes skipped while hunting for the EE start byte."""
    partial_frames_discarded: int = 0
    """Partial frames dropped on the inter-character timeout."""
    messages_sent: int = 0
    """Messages whose last packet was ACKed."""
    messages_received: int = 0
    send_failures: int = 0
    channel_timeouts: int = 0


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise LocalProtocolError(f"{name} {value} outside {low}..{high}")


class Link:
    """One end of a C12.18 data link. See the module docstring for how it works."""

    def __init__(
        self,
        role: Role | str,
        *,
        packet_size: int = DEFAULT_PACKET_SIZE,
        nbr_packets: int = 1,
        response_timeout: float = 2.0,
        inter_char_timeout: float = 0.5,
        channel_traffic_timeout: float = 6.0,
        max_retries: int = 3,
        identity: int = 0,
        duplicate_policy: DuplicatePolicy = DuplicatePolicy.TOGGLE_AND_CRC,
        enforce_nbr_packets: bool = True,
    ) -> None:
        """Defaults are the C12.18 ones (S6); C12.21 uses 4 s, 1 s and 30 s for the timers.

        :param identity: byte 1 of every frame sent. Received frames are accepted whatever theirs.
        :param enforce_nbr_packets: NAK a first packet that announces more packets than negotiated.
        :raises LocalProtocolError: a parameter out of range.
        """
        try:
            self.role = Role(role)
        except ValueError:
            raise LocalProtocolError(f"unknown role {role!r}") from None
        for name, value in (
            ("response_timeout", response_timeout),
            ("inter_char_timeout", inter_char_timeout),
            ("channel_traffic_timeout", channel_traffic_timeout),
        ):
            _check_range(name, value, 1e-9, math.inf)
        _check_range("max_retries", max_retries, 0, 1000)
        _check_range("identity", identity, 0, 255)
        self.response_timeout = response_timeout
        self.inter_char_timeout = inter_char_timeout
        self.channel_traffic_timeout = channel_traffic_timeout
        self.max_retries = max_retries
        self.identity = identity
        self.duplicate_policy = duplicate_policy
        self.enforce_nbr_packets = enforce_nbr_packets
        self.stats = LinkStats()
        self._buffer = FrameBuffer()
        self._nbr_packets = 1
        self.apply_negotiated(packet_size, nbr_packets)
        self._out = bytearray()
        self._next_toggle = False  # termineter and S9 start at 0
        self.reset()

    # -- configuration --------------------------------------------------------------------------

    @property
    def packet_size(self) -> int:
        """Largest packet, overhead included, in both directions."""
        return self._buffer.packet_size

    @property
    def nbr_packets(self) -> int:
        """Most packets one message may span."""
        return self._nbr_packets

    def apply_negotiated(self, packet_size: int, nbr_packets: int) -> None:
        """Use the values the device answered to Negotiate, from the next packet on.

        :raises LocalProtocolError: a value out of range (packet size 9..8192, 1..255 packets).
        """
        _check_range("packet_size", packet_size, MIN_PACKET_SIZE, MAX_PACKET_SIZE)
        _check_range("nbr_packets", nbr_packets, 1, MAX_NBR_PACKETS)
        self._buffer.packet_size = packet_size
        self._nbr_packets = nbr_packets

    def reset(self) -> None:
        """Back to the base state: drops buffered input and output, any outstanding message
        (without an event) and any partial one. Counters and the toggle bit carry on."""
        self._buffer.clear()
        self._out.clear()
        self._send_state = SendState.IDLE
        self._message = b""
        self._segments: list[bytes] = []
        self._index = 0
        self._retries = 0
        self._wire = b""
        self._ack_deadline = math.inf
        self._recv_state = RecvState.IDLE
        self._parts: list[bytes] = []
        self._expected_seq = 0
        self._last_good: Frame | None = None
        self._channel_state = ChannelState.BASE
        self._last_traffic = 0.0
        self._partial_since: float | None = None

    # -- observation ----------------------------------------------------------------------------

    @property
    def send_state(self) -> SendState:
        return self._send_state

    @property
    def recv_state(self) -> RecvState:
        return self._recv_state

    @property
    def channel_state(self) -> ChannelState:
        return self._channel_state

    def data_to_send(self) -> bytes:
        """Bytes to write to the line (frames, retransmissions, ACK/NAK); empties the buffer."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`tick` has something to do, or None while no timer runs."""
        deadlines = []
        if self._partial_since is not None:
            deadlines.append(self._partial_since + self.inter_char_timeout)
        if self._send_state is SendState.WAIT_ACK:
            deadlines.append(self._ack_deadline)
        elif self._channel_state is ChannelState.ACTIVE:
            deadlines.append(self._last_traffic + self.channel_traffic_timeout)
        return min(deadlines) if deadlines else None

    # -- inputs ---------------------------------------------------------------------------------

    def send_message(self, data: bytes, now: float) -> None:
        """Start sending one PSEM message; its first packet goes to :meth:`data_to_send`.

        :raises LocalProtocolError: a message is still outstanding, ``data`` is empty, or it needs
            more than ``nbr_packets`` packets.
        """
        action, next_state = _transition(SEND_TABLE, self._send_state, SendInput.SEND)
        self._segments = self._segment(bytes(data))
        self._message = bytes(data)
        self._index = 0
        self._send_state = next_state
        self._perform_send(action, now, [])

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Feed bytes read from the line; returns what happened. Never raises on any input."""
        events: list[Event] = []
        self._expire_partial_frame(now, events)
        self._buffer.receive_data(data)
        while True:
            item = self._buffer.next_item()
            if item is NEED_MORE:
                break
            if isinstance(item, Frame):
                self._on_frame(item, now, events)
            elif isinstance(item, BadFrame):
                self._on_bad_frame(item, events)
            elif item is Control.ACK:
                self._on_ack(now, events)
            else:
                self._on_nak(now, events)
        self.stats.garbage_bytes = self._buffer.skipped_bytes
        if not self._buffer.in_frame:
            self._partial_since = None
        elif data:  # the inter-character timer runs from the last byte received
            self._partial_since = now
        return events

    def tick(self, now: float) -> list[Event]:
        """Run the timers that are due at ``now``."""
        events: list[Event] = []
        self._expire_partial_frame(now, events)
        if self._send_state is SendState.WAIT_ACK and now >= self._ack_deadline:
            exhausted = self._retries >= self.max_retries
            inp = SendInput.TIMEOUT_EXHAUSTED if exhausted else SendInput.TIMEOUT
            self._send_input(inp, RetransmitCause.RESPONSE_TIMEOUT, now, events)
        if (
            self._send_state is SendState.IDLE
            and self._channel_state is ChannelState.ACTIVE
            and now >= self._last_traffic + self.channel_traffic_timeout
        ):
            self._channel_timeout(events)
        return events

    # -- sender ---------------------------------------------------------------------------------

    def _segment(self, data: bytes) -> list[bytes]:
        if not data:
            raise LocalProtocolError("cannot send an empty message")
        size = self.packet_size - OVERHEAD
        segments = [data[i : i + size] for i in range(0, len(data), size)]
        if len(segments) > self._nbr_packets:
            raise LocalProtocolError(
                f"{len(data)}-byte message needs {len(segments)} packets of {self.packet_size},"
                f" {self._nbr_packets} negotiated"
            )
        return segments

    def _send_input(
        self, inp: SendInput, cause: RetransmitCause, now: float, events: list[Event]
    ) -> None:
        action, self._send_state = _transition(SEND_TABLE, self._send_state, inp)
        self._perform_send(action, now, events, cause)

    def _perform_send(
        self,
        action: SendAction,
        now: float,
        events: list[Event],
        cause: RetransmitCause = RetransmitCause.NAK,
    ) -> None:
        if action is SendAction.TRANSMIT_FIRST:
            self._transmit_new(now)
        elif action is SendAction.TRANSMIT_NEXT:
            self._index += 1
            self._transmit_new(now)
        elif action is SendAction.DELIVER:
            self.stats.messages_sent += 1
            events.append(MessageDelivered(data=self._message, packets=len(self._segments)))
            self._clear_outgoing()
        elif action is SendAction.RETRANSMIT:
            self._retries += 1
            self.stats.retransmissions += 1
            self._put_wire(now)
            events.append(
                Retransmitted(cause=cause, attempt=self._retries, packet_index=self._index)
            )
        elif action is SendAction.FAIL:
            self.stats.send_failures += 1
            events.append(SendFailed(cause=cause, data=self._message, packet_index=self._index))
            self._clear_outgoing()
        # SendAction.IGNORE: a stray ACK or NAK while idle.

    def _transmit_new(self, now: float) -> None:
        count = len(self._segments)
        multi = count > 1
        frame = Frame(
            identity=self.identity,
            multi_packet=multi,
            first_packet=multi and self._index == 0,
            toggle=self._next_toggle,
            seq_nbr=count - 1 - self._index,
            data=self._segments[self._index],
        )
        self._next_toggle = not self._next_toggle
        self._wire = encode_frame(frame)
        self._retries = 0
        self._put_wire(now)

    def _put_wire(self, now: float) -> None:
        self._out += self._wire
        self.stats.frames_sent += 1
        self._ack_deadline = now + self.response_timeout

    def _clear_outgoing(self) -> None:
        self._message = b""
        self._segments = []
        self._index = 0
        self._retries = 0
        self._wire = b""
        self._ack_deadline = math.inf

    def _on_ack(self, now: float, events: list[Event]) -> None:
        self.stats.acks_received += 1
        self._traffic(now)
        last = self._index >= len(self._segments) - 1
        inp = SendInput.ACK_LAST if last else SendInput.ACK
        self._send_input(inp, RetransmitCause.NAK, now, events)

    def _on_nak(self, now: float, events: list[Event]) -> None:
        self.stats.naks_received += 1
        self._traffic(now)
        exhausted = self._retries >= self.max_retries
        inp = SendInput.NAK_EXHAUSTED if exhausted else SendInput.NAK
        self._send_input(inp, RetransmitCause.NAK, now, events)

    # -- receiver -------------------------------------------------------------------------------

    def _classify(self, frame: Frame) -> RecvInput:
        last = self._last_good
        if (
            last is not None
            and frame.toggle == last.toggle
            and (self.duplicate_policy is DuplicatePolicy.TOGGLE or frame == last)
        ):
            return RecvInput.DUPLICATE
        if not frame.multi_packet:
            return RecvInput.SINGLE  # a stray first-packet bit without multi-packet is ignored
        if frame.first_packet:
            if frame.seq_nbr == 0:
                return RecvInput.SINGLE
            if self.enforce_nbr_packets and frame.seq_nbr >= self._nbr_packets:
                return RecvInput.TOO_MANY_PACKETS
            return RecvInput.FIRST
        if self._recv_state is RecvState.REASSEMBLING and frame.seq_nbr != self._expected_seq:
            return RecvInput.OUT_OF_SEQUENCE
        return RecvInput.LAST if frame.seq_nbr == 0 else RecvInput.MIDDLE

    def _on_frame(self, frame: Frame, now: float, events: list[Event]) -> None:
        self.stats.frames_received += 1
        self._traffic(now)
        inp = self._classify(frame)
        action, self._recv_state = _transition(RECV_TABLE, self._recv_state, inp)
        if action is RecvAction.REJECT:
            self._nak()
            self.stats.sequence_errors += 1
            self._parts = []
            # Re-encoded: reserved CTRL bits come back as 0.
            raw = encode_frame(frame)
            events.append(PacketRejected(reason=_REJECT_REASON[inp], raw=raw, nak_sent=True))
            return
        self._ack()
        if action is RecvAction.DISCARD_DUPLICATE:
            self.stats.duplicates += 1
            events.append(DuplicateDiscarded(frame=frame))
            return
        self._last_good = frame
        if action is RecvAction.DELIVER_SINGLE:
            self._parts = []
            self._deliver([frame.data], events)
        elif action is RecvAction.START:
            self._parts = [frame.data]
            self._expected_seq = frame.seq_nbr - 1
        elif action is RecvAction.APPEND:
            self._parts.append(frame.data)
            self._expected_seq -= 1
        elif action is RecvAction.FINISH:
            self._parts.append(frame.data)
            parts, self._parts = self._parts, []
            self._deliver(parts, events)

    def _deliver(self, parts: list[bytes], events: list[Event]) -> None:
        self.stats.messages_received += 1
        events.append(MessageReceived(data=b"".join(parts), packets=len(parts)))

    def _on_bad_frame(self, bad: BadFrame, events: list[Event]) -> None:
        action, self._recv_state = _transition(RECV_TABLE, self._recv_state, RecvInput.BAD_FRAME)
        assert action is RecvAction.NAK_BAD_FRAME
        if bad.reason is RejectReason.CRC_ERROR:
            self.stats.crc_errors += 1
        else:
            self.stats.length_errors += 1
        self._nak()
        events.append(PacketRejected(reason=bad.reason, raw=bad.raw, nak_sent=True))

    def _ack(self) -> None:
        self._out += _ACK_BYTE
        self.stats.acks_sent += 1

    def _nak(self) -> None:
        self._out += _NAK_BYTE
        self.stats.naks_sent += 1

    # -- timers ---------------------------------------------------------------------------------

    def _traffic(self, now: float) -> None:
        self._last_traffic = now
        self._channel_state = ChannelState.ACTIVE

    def _expire_partial_frame(self, now: float, events: list[Event]) -> None:
        since = self._partial_since
        if since is None or now < since + self.inter_char_timeout:
            return
        self._partial_since = None
        raw = self._buffer.clear()
        self.stats.partial_frames_discarded += 1
        events.append(
            PacketRejected(reason=RejectReason.INTER_CHARACTER_TIMEOUT, raw=raw, nak_sent=False)
        )

    def _channel_timeout(self, events: list[Event]) -> None:
        action, self._recv_state = _transition(
            RECV_TABLE, self._recv_state, RecvInput.CHANNEL_TIMEOUT
        )
        assert action is RecvAction.ABANDON
        self._parts = []
        self._last_good = None
        self._buffer.clear()
        self._partial_since = None
        self._channel_state = ChannelState.BASE
        self.stats.channel_timeouts += 1
        events.append(ChannelTimeout(last_traffic=self._last_traffic))
