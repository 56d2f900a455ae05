"""The capture analyser: frames in, C12.22 message records out, and a summary at the end (sans-I/O).

Theory of operation. Each TCP/UDP frame on a C12.22 port (1153 unless told otherwise) belongs to a
conversation: a TCP connection (a new SYN on a used 4-tuple starts a new one) or a UDP endpoint
pair. The originator is the SYN's sender, else the side not on the C12.22 port, else the first
sender. Per direction, TCP payloads go through :class:`~.reassembly.StreamReassembler`
(retransmissions, reordering, lost segments) and then the C12.22 framer
(:class:`~amidcc.codecs.c1222.ApduBuffer`); a UDP datagram is one APDU. Every APDU is decoded with
amidcc's codec (:mod:`.decode`), with the user's keys if any.

Requests are remembered until answered. A response is matched (in this order) to the pending
request of the same conversation whose A8 equals the response's A4 (or its A8 when A4 is absent,
as in the ICSNPP captures); to a request of any conversation with the same AP titles and id (a
meter may answer on another connection); or, when the response has no A4 at all, to the oldest
pending request of the conversation. The response's services are then read against the request's.

Time is an input: frames carry their capture timestamps; the analyser never reads a clock.

Speed. Most frames take the same road, so it is paved: a frame is read as a tuple (no Segment),
each direction of a conversation is found by one dictionary lookup on its 5-tuple, a TCP segment
that continues its stream while nothing is held skips the reassembler's events, and a segment
that is exactly one whole APDU skips the framer (the APDU is the payload, not a copy). Anything
else takes the general road, with the same results.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from amidcc.codecs.ber import DEFAULT_BASE_OID, decode_length
from amidcc.codecs.c1222 import (
    C1222_PORT,
    NEED_MORE,
    ApduBuffer,
    ApduTooLargeError,
    C1222Message,
    Reassembler,
    ResponseControl,
    receive_datagram,
)
from amidcc.codecs.errors import RemoteProtocolError

from .decode import mixed_records, read_apdu, read_responses, request_records
from .packets import TCP_ACK, TCP_SYN, Segment, TruncatedFrame, format_address, frame_fields
from .reassembly import StreamData, StreamEvent, StreamReassembler
from .records import MessageKind, MessageRecord, ServiceRecord, build_record
from .summary import CaptureSummary, SummaryBuilder, request_name

__all__ = ["CaptureAnalyzer", "analyze_file"]

#: The analyser accepts APDUs up to 16 MiB (MeteringSDK's upper bound); a gateway is stricter.
ANALYSIS_MAX_APDU = 16 << 20

_Address = tuple[bytes, int]
_Flow = tuple[str, bytes, int, bytes, int]  # proto, source address and port, destination ...
_APDU_TAG = 0x60


@dataclass(eq=False, slots=True)
class _Pending:
    """A request waiting for its response."""

    index: int
    ts: float
    services: tuple[ServiceRecord, ...]
    expects_response: bool
    titles_key: tuple[str | None, str | None, int]
    conversation: _Conversation


@dataclass(eq=False, slots=True)
class _Direction:
    """Reassembly and framing state of one direction of a TCP connection."""

    stream: StreamReassembler
    framer: ApduBuffer | None
    """None while no APDU is partly framed (a fresh framer would be in the same state)."""


@dataclass(eq=False, slots=True)
class _Conversation:
    number: int
    proto: str
    orig: _Address
    resp: _Address
    orig_h: str
    resp_h: str
    flows: tuple[_Flow, _Flow]
    directions: dict[bool, _Direction] = field(default_factory=dict)
    pending: dict[int, _Pending] = field(default_factory=dict)
    has_data: bool = False


class CaptureAnalyzer:
    """Feed frames (:meth:`feed_frame`) or parsed segments, then :meth:`finish`; read :meth:`summary`.

    ``keys`` (key id -> 16-byte key) verify and decrypt secured messages; ``base_oid`` is the base
    of relative AP titles for the MAC; ``ports`` are the TCP/UDP ports that carry C12.22.
    """

    def __init__(
        self,
        *,
        keys: Mapping[int, bytes] | None = None,
        base_oid: tuple[int, ...] = DEFAULT_BASE_OID,
        ports: Sequence[int] = (C1222_PORT,),
        max_apdu_size: int = ANALYSIS_MAX_APDU,
        max_out_of_order: int = 1 << 20,
        max_pending_requests: int = 4096,
    ) -> None:
        self.keys = dict(keys) if keys else None
        self.base_oid = base_oid
        self.ports = frozenset(ports)
        self.max_apdu_size = max_apdu_size
        self.max_out_of_order = max_out_of_order
        self.max_pending_requests = max_pending_requests
        self._summary = SummaryBuilder()
        self._conversations: dict[tuple[str, _Address, _Address], _Conversation] = {}
        self._flows: dict[_Flow, tuple[_Conversation, bool]] = {}  # 5-tuple -> (conv, is_orig)
        self._closed: list[_Conversation] = []
        self._by_titles: dict[tuple[str | None, str | None, int], _Pending] = {}
        self._segments = Reassembler()
        self._count = 0
        self._messages = 0

    # --- frames and segments ----------------------------------------------------------------------

    def feed_frame(self, ts: float, linktype: int, frame: bytes) -> list[MessageRecord]:
        """One captured frame; returns the messages it completed."""
        self._summary.frame(ts)
        try:
            fields = frame_fields(linktype, frame)
        except TruncatedFrame:
            self._summary.counters["truncated_frames"] += 1
            return []
        if fields is None:
            self._summary.counters["other_frames"] += 1
            return []
        return self._feed(ts, *fields)

    def feed_segment(self, ts: float, segment: Segment) -> list[MessageRecord]:
        """One TCP segment or UDP datagram; returns the messages it completed."""
        return self._feed(
            ts, segment.proto, segment.src, segment.dst, segment.sport, segment.dport,
            segment.payload, segment.seq, segment.ack, segment.flags,
        )  # fmt: skip

    def _feed(
        self, ts: float, proto: str, src: bytes, dst: bytes, sport: int, dport: int,
        payload: bytes, seq: int, ack: int, flags: int,
    ) -> list[MessageRecord]:  # fmt: skip
        flow = self._flows.get((proto, src, sport, dst, dport))
        out: list[MessageRecord] = []
        if flow is None or (flags & (TCP_SYN | TCP_ACK) == TCP_SYN and proto == "tcp"):
            flow = self._conversation(ts, proto, (src, sport), (dst, dport), flags, out)
            if flow is None:
                return out
        else:
            self._summary.counters["c1222_frames"] += 1
        conv, is_orig = flow
        if proto == "udp":
            out += self._datagram(ts, conv, is_orig, payload)
            return out
        if flags & TCP_ACK:
            peer = conv.directions.get(not is_orig)
            if peer is not None:
                events = peer.stream.acknowledged(ack)
                if events:  # the peer got bytes the capture lost
                    out += self._stream(ts, conv, not is_orig, peer, events)
        direction = conv.directions.get(is_orig) or self._direction(conv, is_orig)
        if not flags & TCP_SYN and direction.stream.receive_in_order(seq, payload):
            out += self._stream_data(ts, conv, is_orig, direction, payload)
        else:
            events = direction.stream.receive(seq, payload, syn=bool(flags & TCP_SYN))
            out += self._stream(ts, conv, is_orig, direction, events)
        return out

    def _conversation(
        self,
        ts: float,
        proto: str,
        src: _Address,
        dst: _Address,
        flags: int,
        out: list[MessageRecord],
    ) -> tuple[_Conversation, bool] | None:
        """The conversation of a frame and its direction, found the general way (and remembered
        for the frames that follow); None when the frame is not on a C12.22 port."""
        if src[1] not in self.ports and dst[1] not in self.ports:
            self._summary.counters["other_frames"] += 1
            return None
        self._summary.counters["c1222_frames"] += 1
        key = (proto, min(src, dst), max(src, dst))
        conv = self._conversations.get(key)
        opening = proto == "tcp" and flags & (TCP_SYN | TCP_ACK) == TCP_SYN
        if conv is not None and opening and conv.has_data:
            out += self._close(self._conversations.pop(key), ts)
            conv = None
        if conv is None:
            conv = self._conversations[key] = self._open(proto, flags, src, dst)
        flow = (conv, src == conv.orig)
        self._flows[(proto, *src, *dst)] = flow
        return flow

    def _open(self, proto: str, flags: int, src: _Address, dst: _Address) -> _Conversation:
        if proto == "tcp" and flags & TCP_SYN:
            client_first = not flags & TCP_ACK
        elif (dst[1] in self.ports) != (src[1] in self.ports):
            client_first = dst[1] in self.ports
        else:
            client_first = True
        orig, resp = (src, dst) if client_first else (dst, src)
        self._count += 1
        return _Conversation(
            number=self._count, proto=proto, orig=orig, resp=resp,
            orig_h=format_address(orig[0]), resp_h=format_address(resp[0]),
            flows=((proto, *orig, *resp), (proto, *resp, *orig)),
        )  # fmt: skip

    def _direction(self, conv: _Conversation, is_orig: bool) -> _Direction:
        direction = conv.directions.get(is_orig)
        if direction is None:
            direction = conv.directions[is_orig] = _Direction(
                stream=StreamReassembler(max_pending=self.max_out_of_order), framer=None
            )
        return direction

    def _datagram(
        self, ts: float, conv: _Conversation, is_orig: bool, payload: bytes
    ) -> list[MessageRecord]:
        if not payload:
            return []
        try:
            (apdu,) = receive_datagram(payload, max_apdu_size=self.max_apdu_size)
        except RemoteProtocolError:
            self._summary.malformed["framing"] += 1
            return []
        return self._message(ts, conv, is_orig, apdu)

    def _stream(
        self,
        ts: float,
        conv: _Conversation,
        is_orig: bool,
        direction: _Direction,
        events: list[StreamEvent],
    ) -> list[MessageRecord]:
        out: list[MessageRecord] = []
        for event in events:
            if isinstance(event, StreamData):
                out += self._stream_data(ts, conv, is_orig, direction, event.data)
            else:
                self._summary.malformed["tcp_gap"] += 1
                if direction.framer is not None and direction.framer.has_partial:
                    self._summary.malformed["truncated_apdu"] += 1
                direction.framer = None
        return out

    def _stream_data(
        self, ts: float, conv: _Conversation, is_orig: bool, direction: _Direction, data: bytes
    ) -> list[MessageRecord]:
        """The next bytes of a TCP stream, framed."""
        framer = direction.framer
        if (framer is None or not framer.has_partial) and self._whole_apdu(data):
            # What the framer would return, and it would be left empty (and no longer hunting
            # for a 60 after garbage, since the data starts with one): a fresh framer's state.
            direction.framer = None
            return self._message(ts, conv, is_orig, data)
        if framer is None:
            framer = direction.framer = ApduBuffer(self.max_apdu_size)
        framer.receive_data(data)
        return self._frame_apdus(ts, conv, is_orig, framer)

    def _whole_apdu(self, data: bytes) -> bool:
        """True when ``data`` is exactly one APDU by its ``60 <length>`` (and not too large)."""
        if len(data) < 2 or data[0] != _APDU_TAG:
            return False
        if data[1] < 0x80:
            return data[1] + 2 == len(data)
        try:
            decoded = decode_length(data, 1)
        except RemoteProtocolError:
            return False  # the framer says why
        return (
            decoded is not None
            and decoded[0] + decoded[1] == len(data)
            and len(data) <= self.max_apdu_size
        )

    def _frame_apdus(
        self, ts: float, conv: _Conversation, is_orig: bool, framer: ApduBuffer
    ) -> list[MessageRecord]:
        out: list[MessageRecord] = []
        while True:
            try:
                apdu = framer.next_apdu()
            except ApduTooLargeError:
                self._summary.malformed["oversize"] += 1
                continue
            except RemoteProtocolError:
                self._summary.malformed["framing"] += 1
                continue
            if apdu is NEED_MORE:
                return out
            assert isinstance(apdu, bytes)
            out += self._message(ts, conv, is_orig, apdu)

    # --- messages ---------------------------------------------------------------------------------

    def _message(
        self,
        ts: float,
        conv: _Conversation,
        is_orig: bool,
        apdu: bytes,
        *,
        reassembled: bool = False,
    ) -> list[MessageRecord]:
        conv.has_data = True
        message, security, kind, raws, error = read_apdu(apdu, self.keys, self.base_oid)
        answers, latency, matched_by = None, None, None
        if kind is MessageKind.REQUEST:
            services = request_records(raws)
        elif kind is MessageKind.RESPONSE:
            assert message is not None
            pending, matched_by = self._match(conv, message)
            services = read_responses(raws, None if pending is None else pending.services)
            if pending is not None:
                answers, latency = pending.index, ts - pending.ts
        else:
            services = mixed_records(raws)  # mixed; () for the rest
        record = build_record(
            MessageRecord,
            {
                "index": self._messages, "ts": ts, "conversation": conv.number,
                "proto": conv.proto, "orig_h": conv.orig_h, "orig_p": conv.orig[1],
                "resp_h": conv.resp_h, "resp_p": conv.resp[1], "is_orig": is_orig, "apdu": apdu,
                "message": message, "security": security, "kind": kind, "services": services,
                "error": error, "answers": answers, "latency": latency, "matched_by": matched_by,
                "reassembled": reassembled,
            },
        )  # fmt: skip
        self._messages += 1
        self._summary.message(record)
        if message is None:
            return [record]
        if kind is MessageKind.REQUEST:
            self._remember(conv, record, message)
        elif kind is MessageKind.SEGMENT:
            return [record, *self._segment(ts, conv, is_orig, message)]
        return [record]

    def _segment(
        self, ts: float, conv: _Conversation, is_orig: bool, message: C1222Message
    ) -> list[MessageRecord]:
        try:
            whole = self._segments.receive(message.apdu, ts)
        except RemoteProtocolError:
            self._summary.malformed["segmentation"] += 1
            return []
        return [] if whole is None else self._message(ts, conv, is_orig, whole, reassembled=True)

    # --- request/response matching ----------------------------------------------------------------

    def _remember(self, conv: _Conversation, record: MessageRecord, message: C1222Message) -> None:
        invocation_id = message.apdu.calling_ap_invocation_id
        epsem = message.epsem
        expects = epsem is None or epsem.response_control is ResponseControl.ALWAYS
        calling = message.apdu.calling_ap_title  # record.calling_ap_title and called_ap_title
        titles_key = (
            None if calling is None else str(calling), str(message.apdu.called_ap_title),
            invocation_id,
        )  # fmt: skip
        pending = _Pending(record.index, record.ts, record.services, expects, titles_key, conv)
        old = conv.pending.pop(invocation_id, None)
        if old is not None:
            self._forget(old, answered=False)
        conv.pending[invocation_id] = pending
        self._by_titles[pending.titles_key] = pending
        if len(conv.pending) > self.max_pending_requests:
            self._forget(conv.pending.pop(next(iter(conv.pending))), answered=False)

    def _forget(self, pending: _Pending, *, answered: bool) -> None:
        if self._by_titles.get(pending.titles_key) is pending:
            del self._by_titles[pending.titles_key]
        if not answered and pending.expects_response:
            self._summary.unanswered(tuple(request_name(s) for s in pending.services))

    def _match(
        self, conv: _Conversation, message: C1222Message
    ) -> tuple[_Pending | None, str | None]:
        apdu = message.apdu
        a4 = apdu.called_ap_invocation_id
        invocation_id = apdu.calling_ap_invocation_id if a4 is None else a4
        pending, how = conv.pending.get(invocation_id), "invocation_id"
        if pending is None:
            calling = None if apdu.calling_ap_title is None else str(apdu.calling_ap_title)
            pending, how = (
                self._by_titles.get((str(apdu.called_ap_title), calling, invocation_id)),
                "ap_titles",
            )
        if pending is None and a4 is None and conv.pending:
            pending, how = next(iter(conv.pending.values())), "order"
        if pending is None:
            return None, None
        owner = pending.conversation.pending
        if owner.get(pending.titles_key[2]) is pending:
            del owner[pending.titles_key[2]]
        self._forget(pending, answered=True)
        return pending, how

    # --- the end ----------------------------------------------------------------------------------

    def _close(self, conv: _Conversation, ts: float) -> list[MessageRecord]:
        out: list[MessageRecord] = []
        for is_orig, direction in conv.directions.items():
            out += self._stream(ts, conv, is_orig, direction, direction.stream.close())
            if direction.framer is not None and direction.framer.has_partial:
                self._summary.malformed["truncated_apdu"] += 1
            tcp = self._summary.tcp
            tcp["retransmitted_bytes"] += direction.stream.retransmitted_bytes
            tcp["out_of_order_segments"] += direction.stream.out_of_order_segments
            tcp["gaps"] += direction.stream.gaps
            tcp["gap_bytes"] += direction.stream.gap_bytes
        for flow in conv.flows:
            self._flows.pop(flow, None)
        if conv.pending:
            self._closed.append(conv)
        return out

    def finish(self) -> list[MessageRecord]:
        """End of the capture: flush every stream, count unanswered requests and partial APDUs."""
        ts = self._summary.last_ts or 0.0
        out: list[MessageRecord] = []
        for key in list(self._conversations):
            out += self._close(self._conversations.pop(key), ts)
        for conv in self._closed:
            for pending in conv.pending.values():
                self._forget(pending, answered=False)
            conv.pending.clear()
        self._closed.clear()
        if self._segments.pending:
            self._summary.malformed["incomplete_segmented_apdu"] += self._segments.pending
        return out

    def summary(self) -> CaptureSummary:
        """The summary so far (complete after :meth:`finish`)."""
        return self._summary.build(self._count)


def analyze_file(
    path: str | Path, analyzer: CaptureAnalyzer | None = None
) -> Iterator[MessageRecord]:
    """Every message of the capture at ``path``; ``analyzer.summary()`` is complete afterwards.

    Frames are read with scapy's raw reader (no dissection), see :mod:`.reader`.
    """
    from .reader import read_frame_tuples

    analyzer = analyzer or CaptureAnalyzer()
    feed = analyzer.feed_frame
    for ts, linktype, data in read_frame_tuples(path):
        records = feed(ts, linktype, data)
        if records:
            yield from records
    yield from analyzer.finish()
