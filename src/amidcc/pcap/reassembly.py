"""TCP stream reassembly for one direction of one connection (sans-I/O).

Theory of operation: the reassembler keeps the absolute stream position it expects next
(``_next``, a 64-bit count unwrapped from the 32-bit sequence numbers). A segment at that position
is delivered; one wholly before it is a retransmission (dropped, counted); one overlapping it is
trimmed; one after it is held until the hole is filled. Held bytes beyond ``max_pending`` mean the
hole will not be filled (the capture lost a segment), and so does an acknowledgement from the peer
that covers held bytes (the peer got what the capture missed): the hole is reported as a
:class:`StreamGap`, so the consumer can resynchronise its framer, and delivery resumes after it.
:meth:`StreamReassembler.close` reports what is still held at the end of the capture the same way.

A SYN fixes the initial sequence number; without one (a capture started mid-connection) the first
segment seen starts the stream. Output is a list of :class:`StreamData` and :class:`StreamGap`
events, in stream order.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StreamData", "StreamEvent", "StreamGap", "StreamReassembler"]

_MASK = 0xFFFFFFFF
_HALF = 1 << 31


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamData:
    """In-order stream bytes."""

    data: bytes
    """The next bytes of the stream."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamGap:
    """Bytes the capture never saw: whatever was being framed across the gap is lost."""

    size: int
    """Number of missing bytes."""


StreamEvent = StreamData | StreamGap


class StreamReassembler:
    """One direction of a TCP connection: ``receive(seq, payload, ...)`` -> ordered events."""

    def __init__(self, *, max_pending: int = 1 << 20) -> None:
        self.max_pending = max_pending
        """Bytes held out of order before the missing segment is declared lost."""
        self.retransmitted_bytes = 0
        """Bytes received again after they had been delivered (retransmissions, overlaps)."""
        self.out_of_order_segments = 0
        """Segments that arrived ahead of a hole and were held."""
        self.gaps = 0
        """Holes declared lost."""
        self.gap_bytes = 0
        """Bytes in those holes."""
        self._next: int | None = None  # absolute position expected next
        self._pending: dict[int, bytes] = {}
        self._pending_bytes = 0

    def _absolute(self, seq: int) -> int:
        """Unwrap a 32-bit sequence number to the absolute position nearest ``_next``."""
        assert self._next is not None
        delta = ((seq - self._next + _HALF) & _MASK) - _HALF
        return self._next + delta

    def receive(self, seq: int, payload: bytes, *, syn: bool = False) -> list[StreamEvent]:
        """Take one segment: its sequence number, its payload, and whether it carries SYN."""
        if syn:
            if self._next is None:
                self._next = seq + 1  # the SYN consumes one sequence number
            seq = (seq + 1) & _MASK
        if not payload:
            return []
        if self._next is None:
            self._next = seq
        start = self._absolute(seq)
        out: list[StreamEvent] = []
        self._accept(start, payload, out)
        self._drain(out)
        if self._pending_bytes > self.max_pending:
            self._skip_gap(out)
        return out

    def receive_in_order(self, seq: int, payload: bytes) -> bool:
        """The usual case, without events: a segment (no SYN, some payload) that starts exactly
        where the stream is while nothing is held. Returns True when it was taken, its payload
        being the next stream bytes (as :meth:`receive` would have delivered it); False, with
        nothing done, for any other segment (give it to :meth:`receive`)."""
        if self._pending or self._next is None or seq != self._next & _MASK or not payload:
            return False
        self._next += len(payload)
        return True

    def _accept(self, start: int, payload: bytes, out: list[StreamEvent]) -> None:
        assert self._next is not None
        end = start + len(payload)
        if end <= self._next:
            self.retransmitted_bytes += len(payload)
            return
        if start > self._next:
            held = self._pending.get(start)
            if held is None or len(held) < len(payload):
                self._pending_bytes += len(payload) - (len(held) if held else 0)
                self._pending[start] = payload
                self.out_of_order_segments += held is None
            return
        if start < self._next:
            self.retransmitted_bytes += self._next - start
            payload = payload[self._next - start :]
        out.append(StreamData(data=payload))
        self._next = end

    def _drain(self, out: list[StreamEvent]) -> None:
        """Deliver held segments that the stream has now reached."""
        while self._pending:
            assert self._next is not None
            first = min(self._pending)
            if first > self._next:
                return
            payload = self._pending.pop(first)
            self._pending_bytes -= len(payload)
            self._accept(first, payload, out)

    def _skip_gap(self, out: list[StreamEvent]) -> None:
        assert self._next is not None
        first = min(self._pending)
        self.gaps += 1
        self.gap_bytes += first - self._next
        out.append(StreamGap(size=first - self._next))
        self._next = first
        self._drain(out)

    def acknowledged(self, ack: int) -> list[StreamEvent]:
        """The peer acknowledged up to ``ack``: a hole it covers was lost by the capture, not the
        network, so stop waiting for it (only when data is held behind it: with nothing held, an
        early ACK is no evidence of loss)."""
        if self._next is None or not self._pending:
            return []
        out: list[StreamEvent] = []
        acked = self._absolute(ack)
        while self._pending and min(self._pending) <= acked:
            self._skip_gap(out)
        return out

    def close(self) -> list[StreamEvent]:
        """End of capture (or of the connection): report held bytes behind their holes."""
        out: list[StreamEvent] = []
        while self._pending:
            self._skip_gap(out)
        return out

    @property
    def pending_bytes(self) -> int:
        """Bytes held out of order."""
        return self._pending_bytes
