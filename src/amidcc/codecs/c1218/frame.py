"""C12.18 packets: the :class:`Frame` value, :func:`encode_frame`, and the incremental
:class:`FrameBuffer` (protocol-facts.md 1.1-1.4).

Wire layout, all [H]::

    EE <identity> <ctrl> <seq_nbr> <length:2 BE> <data:length> <crc:2 LE>

CRC-16/X-25 over STP..end of DATA. CTRL bit 7 multi-packet, bit 6 first packet, bit 5 toggle,
bits 4-2 reserved (sent 0, ignored on receive), bits 1-0 DATA_FORMAT (C12.21; 0 in C12.18).

The framer is hand written over a ``bytearray`` (construct is an order of magnitude too slow for
the link's hot path and has no notion of "need more"). Between frames it also reports the bare ACK
(06) and NAK (15) bytes, which real meters send glued to the next frame (``06 EE ...``); inside a
frame those byte values are data. Any other byte between frames is skipped and counted (a ``55``
optical wake-up, line noise).
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass
from typing import Final, Literal

from ..codes import ACK as _ACK_BYTE
from ..codes import NAK as _NAK_BYTE
from ..errors import LocalProtocolError, RemoteProtocolError
from .crc import GOOD_RESIDUE, crc16

__all__ = [
    "DEFAULT_PACKET_SIZE",
    "MAX_PACKET_SIZE",
    "MIN_PACKET_SIZE",
    "NEED_MORE",
    "OVERHEAD",
    "STP",
    "BadFrame",
    "Control",
    "Frame",
    "FrameBuffer",
    "FrameItem",
    "NeedMore",
    "RejectReason",
    "decode_frame",
    "encode_frame",
]

#: Start of packet.
STP: Final = 0xEE
#: Header (STP, identity, CTRL, SEQ_NBR, LENGTH) plus CRC: ``data <= packet_size - OVERHEAD``.
OVERHEAD: Final = 8
HEADER_SIZE: Final = 6
#: Packet size in force before any Negotiate (S6 default, [M]).
DEFAULT_PACKET_SIZE: Final = 64
#: Largest negotiable packet (S10 BNF: "shall not be greater than 8192", [H]).
MAX_PACKET_SIZE: Final = 8192
#: Smallest packet size this code accepts: room for one data byte.
MIN_PACKET_SIZE: Final = OVERHEAD + 1

CTRL_MULTI: Final = 0x80
CTRL_FIRST: Final = 0x40
CTRL_TOGGLE: Final = 0x20
CTRL_DATA_FORMAT: Final = 0x03

_HEADER = struct.Struct(">BBBBH")
_CRC = struct.Struct("<H")
#: Bytes that end a hunt: STP, ACK, NAK.
_HUNT = re.compile(b"[\xee\x06\x15]")


@dataclass(frozen=True, kw_only=True, slots=True)
class Frame:
    """One C12.18 packet (CRC and LENGTH are implied by ``data``)."""

    identity: int = 0
    """Byte 1: ``00`` in C12.18, the multi-drop identity in C12.21; any value is accepted."""
    multi_packet: bool = False
    """CTRL bit 7: this packet is part of a multi-packet transmission."""
    first_packet: bool = False
    """CTRL bit 6: first packet of a multi-packet transmission (only with ``multi_packet``)."""
    toggle: bool = False
    """CTRL bit 5: flipped by the sender on every new packet, kept on a retransmission."""
    data_format: int = 0
    """CTRL bits 1-0: C12.21 DATA_FORMAT, 0 in C12.18."""
    seq_nbr: int = 0
    """Number of packets still to follow in this transmission (0 on single and last packets)."""
    data: bytes = b""
    """A PSEM message or a fragment of one."""


class RejectReason(enum.StrEnum):
    """Why a packet was refused. The framer produces the first two; the link adds the rest."""

    CRC_ERROR = "crc-error"
    """The CRC does not match."""
    LENGTH_EXCEEDED = "length-exceeded"
    """LENGTH is larger than the negotiated packet size allows."""
    OUT_OF_SEQUENCE = "out-of-sequence"
    """A continuation packet whose SEQ_NBR is not the one expected."""
    UNEXPECTED_CONTINUATION = "unexpected-continuation"
    """A continuation packet with no multi-packet transmission in progress."""
    TOO_MANY_PACKETS = "too-many-packets"
    """A first packet announcing more packets than negotiated."""
    INTER_CHARACTER_TIMEOUT = "inter-character-timeout"
    """A partial frame discarded because the line went quiet in the middle of it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BadFrame:
    """A frame that started with STP but cannot be used; the receiver answers NAK."""

    reason: RejectReason
    """CRC_ERROR or LENGTH_EXCEEDED."""
    raw: bytes
    """The bytes judged: the whole frame on a CRC error, the 6 header bytes on a bad LENGTH."""


class Control(enum.IntEnum):
    """The bare link bytes that arrive between frames."""

    ACK = _ACK_BYTE
    NAK = _NAK_BYTE


class NeedMore(enum.Enum):
    """Type of the :data:`NEED_MORE` sentinel."""

    NEED_MORE = "need-more"


#: :meth:`FrameBuffer.next_item` has nothing complete yet.
NEED_MORE: Final = NeedMore.NEED_MORE

FrameItem = Frame | BadFrame | Control | Literal[NeedMore.NEED_MORE]


def encode_frame(frame: Frame) -> bytes:
    """The wire bytes of ``frame``, CRC included.

    Every frame :class:`FrameBuffer` yields encodes back to its wire bytes, except that reserved
    CTRL bits 4-2 come back as 0.

    :raises LocalProtocolError: a field out of range, or more data than the largest packet carries.
    """
    data = frame.data
    ctrl = frame.data_format
    if not 0 <= ctrl <= CTRL_DATA_FORMAT:
        raise LocalProtocolError(f"data_format {ctrl} is not 0..3")
    if frame.multi_packet:
        ctrl |= CTRL_MULTI
    if frame.first_packet:  # without multi_packet too: simulators inject odd frames on purpose
        ctrl |= CTRL_FIRST
    if frame.toggle:
        ctrl |= CTRL_TOGGLE
    if len(data) > MAX_PACKET_SIZE - OVERHEAD:
        raise LocalProtocolError(f"{len(data)} data bytes exceed the largest packet")
    try:
        body = _HEADER.pack(STP, frame.identity, ctrl, frame.seq_nbr, len(data)) + data
    except struct.error as exc:
        raise LocalProtocolError(f"frame field out of range: {exc}") from None
    return body + _CRC.pack(crc16(body))


def _frame_from_raw(raw: bytes) -> Frame:
    ctrl = raw[2]
    return Frame(
        identity=raw[1],
        multi_packet=bool(ctrl & CTRL_MULTI),
        first_packet=bool(ctrl & CTRL_FIRST),
        toggle=bool(ctrl & CTRL_TOGGLE),
        data_format=ctrl & CTRL_DATA_FORMAT,
        seq_nbr=raw[3],
        data=raw[HEADER_SIZE:-2],
    )


def decode_frame(raw: bytes, *, packet_size: int = MAX_PACKET_SIZE) -> Frame:
    """Parse exactly one whole frame (for captures and tests; the link uses :class:`FrameBuffer`).

    :raises RemoteProtocolError: (``nak=True``) wrong STP, short or trailing bytes, LENGTH over
        ``packet_size - 8``, or a bad CRC.
    """
    raw = bytes(raw)
    if len(raw) < OVERHEAD or raw[0] != STP:
        raise RemoteProtocolError("not a C12.18 frame (short, or no EE start byte)", nak=True)
    length = (raw[4] << 8) | raw[5]
    if length > packet_size - OVERHEAD:
        raise RemoteProtocolError(f"LENGTH {length} exceeds packet size {packet_size}", nak=True)
    if len(raw) != length + OVERHEAD:
        raise RemoteProtocolError(f"LENGTH {length} but {len(raw)} frame bytes", nak=True)
    if crc16(raw) != GOOD_RESIDUE:
        raise RemoteProtocolError("CRC error", nak=True)
    return _frame_from_raw(raw)


class FrameBuffer:
    """Collects received bytes and hands out whole items, one per :meth:`next_item` call.

    After :meth:`next_item` returns :data:`NEED_MORE` the buffer is either empty or holds the start
    of one frame (it begins with ``EE``); :attr:`in_frame` says which.
    """

    __slots__ = ("_buf", "_max_data", "skipped_bytes")

    def __init__(self, packet_size: int = DEFAULT_PACKET_SIZE) -> None:
        self._buf = bytearray()
        self._max_data = 0
        self.packet_size = packet_size
        #: Bytes skipped while hunting for STP (garbage, wake-up bytes); cumulative.
        self.skipped_bytes = 0

    @property
    def packet_size(self) -> int:
        """The negotiated maximum packet size, frame overhead included."""
        return self._max_data + OVERHEAD

    @packet_size.setter
    def packet_size(self, value: int) -> None:
        if not MIN_PACKET_SIZE <= value <= MAX_PACKET_SIZE:
            raise LocalProtocolError(
                f"packet size {value} outside {MIN_PACKET_SIZE}..{MAX_PACKET_SIZE}"
            )
        self._max_data = value - OVERHEAD

    @property
    def in_frame(self) -> bool:
        """Part of a frame is buffered (meaningful after :meth:`next_item` said NEED_MORE)."""
        return bool(self._buf)

    def receive_data(self, data: bytes) -> None:
        """Append received bytes."""
        self._buf += data

    def clear(self) -> bytes:
        """Drop everything buffered (inter-character timeout, reset); returns what was dropped."""
        dropped = bytes(self._buf)
        self._buf.clear()
        return dropped

    def next_item(self) -> FrameItem:
        """The next whole item: a :class:`Frame`, :class:`BadFrame`, :class:`Control` byte, or
        :data:`NEED_MORE`. Never raises on any input."""
        buf = self._buf
        if not buf:
            return NEED_MORE
        first = buf[0]
        if first != STP:
            if first == _ACK_BYTE or first == _NAK_BYTE:
                del buf[0]
                return Control(first)
            return self._hunt()
        if len(buf) < HEADER_SIZE:
            return NEED_MORE
        length = (buf[4] << 8) | buf[5]
        if length > self._max_data:
            raw = bytes(buf[:HEADER_SIZE])
            del buf[0]  # resume the hunt right after this EE
            return BadFrame(reason=RejectReason.LENGTH_EXCEEDED, raw=raw)
        end = length + OVERHEAD
        if len(buf) < end:
            return NEED_MORE
        raw = bytes(buf[:end])
        del buf[:end]
        if crc16(raw) != GOOD_RESIDUE:
            # The LENGTH was plausible, so the whole frame goes; hunting inside its data would turn
            # 06/15/EE data bytes into phantom ACKs, NAKs and frames.
            return BadFrame(reason=RejectReason.CRC_ERROR, raw=raw)
        return _frame_from_raw(raw)

    def _hunt(self) -> FrameItem:
        buf = self._buf
        found = _HUNT.search(buf)
        skip = len(buf) if found is None else found.start()
        self.skipped_bytes += skip
        del buf[:skip]
        return self.next_item()
