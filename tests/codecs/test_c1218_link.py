"""The C12.18 link state machine: host/device pairs over in-memory pipes, timers via ``now``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import pytest

from amidcc.codecs.c1218 import (
    BAUD_BY_CODE,
    CODE_BY_BAUD,
    ChannelState,
    ChannelTimeout,
    DuplicateDiscarded,
    DuplicatePolicy,
    Event,
    Frame,
    Link,
    MessageDelivered,
    MessageReceived,
    PacketRejected,
    RecvState,
    RejectReason,
    RetransmitCause,
    Retransmitted,
    Role,
    SendFailed,
    SendState,
    baud_code,
    baud_rate,
    decode_frame,
    encode_frame,
)
from amidcc.codecs.c1218 import link as link_mod
from amidcc.codecs.errors import LocalProtocolError, RemoteProtocolError

Filter = Callable[[bytes], bytes]
E = TypeVar("E")


@dataclass
class Pipe:
    """Two links joined back to back. One-shot filters mangle the next chunk in one direction."""

    host: Link
    device: Link
    to_device: list[Filter] = field(default_factory=list)
    to_host: list[Filter] = field(default_factory=list)
    host_events: list[Event] = field(default_factory=list)
    device_events: list[Event] = field(default_factory=list)

    def pump(self, now: float) -> None:
        for _ in range(1000):
            a, b = self.host.data_to_send(), self.device.data_to_send()
            if not a and not b:
                return
            if a:
                a = self.to_device.pop(0)(a) if self.to_device else a
                self.device_events += self.device.receive_data(a, now)
            if b:
                b = self.to_host.pop(0)(b) if self.to_host else b
                self.host_events += self.host.receive_data(b, now)
        raise AssertionError("links never went quiet")

    def run_until(self, end: float, now: float = 0.0) -> float:
        """Tick both links at their deadlines up to ``end``; returns the last time used."""
        self.pump(now)
        while True:
            deadlines = [d for d in (self.host.next_deadline(), self.device.next_deadline()) if d]
            if not deadlines or min(deadlines) > end:
                return now
            now = min(deadlines)
            self.host_events += self.host.tick(now)
            self.device_events += self.device.tick(now)
            self.pump(now)


def pair(**kwargs: object) -> Pipe:
    return Pipe(Link(Role.HOST, **kwargs), Link(Role.DEVICE, **kwargs))  # type: ignore[arg-type]


def of(kind: type[E], events: list[Event]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


def drop(_: bytes) -> bytes:
    return b""


def corrupt_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes((data[-1] ^ 0x55,))


# -- single packets ------------------------------------------------------------------------------


def test_identify_goes_out_as_the_verified_frame() -> None:
    # protocol-facts.md 1.3: Identify request EE 00 00 00 00 01 20 13 10 (S9, termineter, S6, S13).
    host = Link(Role.HOST)
    host.send_message(b"\x20", now=0.0)
    assert host.data_to_send() == bytes.fromhex("EE 00 00 00 00 01 20 13 10")
    assert host.send_state is SendState.WAIT_ACK
    assert host.receive_data(b"\x06", now=0.1) == [MessageDelivered(data=b"\x20", packets=1)]
    # the next new packet flips the toggle: termineter's Terminate with toggle 1
    host.send_message(b"\x21", now=0.2)
    assert host.data_to_send() == bytes.fromhex("EE 00 20 00 00 01 21 0B 61")


def test_request_response_exchange_with_ack_glued_to_response() -> None:
    pipe = pair()
    pipe.host.send_message(b"\x20", 0.0)
    pipe.device.receive_data(pipe.host.data_to_send(), 0.0)
    pipe.device.send_message(bytes.fromhex("00 00 01 00 00"), 0.01)
    wire = pipe.device.data_to_send()
    # ACK then the Identify response (S6 doc transcript), back to back like a real meter.
    assert wire == bytes.fromhex("06 EE 00 00 00 00 05 00 00 01 00 00 C6 B5")
    events = pipe.host.receive_data(wire, 0.02)
    assert events == [
        MessageDelivered(data=b"\x20", packets=1),
        MessageReceived(data=bytes.fromhex("00 00 01 00 00"), packets=1),
    ]
    assert pipe.host.data_to_send() == b"\x06"


def test_many_messages_both_ways() -> None:
    pipe = pair()
    for i in range(6):
        pipe.host.send_message(bytes([0x30, 0, i]), float(i))
        pipe.pump(float(i))
        pipe.device.send_message(bytes([0, i]), float(i))
        pipe.pump(float(i))
    assert [e.data for e in of(MessageReceived, pipe.device_events)] == [
        bytes([0x30, 0, i]) for i in range(6)
    ]
    assert len(of(MessageReceived, pipe.host_events)) == 6
    assert len(of(MessageDelivered, pipe.host_events)) == 6
    assert pipe.host.stats.frames_sent == 6 and pipe.device.stats.acks_sent == 6
    assert pipe.device.stats.duplicates == 0


# -- multi-packet -----------------------------------------------------------------------------


def test_multi_packet_message_segmentation_and_reassembly() -> None:
    pipe = pair(packet_size=64, nbr_packets=8)
    message = bytes(range(256)) + bytes(44)  # 300 bytes, 56 per packet -> 6 packets
    frames: list[Frame] = []

    def spy(data: bytes) -> bytes:
        frames.append(decode_frame(data))
        return data

    pipe.to_device.extend([spy] * 6)
    pipe.host.send_message(message, 0.0)
    pipe.pump(0.0)
    assert [(f.multi_packet, f.first_packet, f.seq_nbr) for f in frames] == [
        (True, True, 5),
        (True, False, 4),
        (True, False, 3),
        (True, False, 2),
        (True, False, 1),
        (True, False, 0),
    ]
    assert [f.toggle for f in frames] == [False, True, False, True, False, True]
    assert b"".join(f.data for f in frames) == message
    assert pipe.device_events == [MessageReceived(data=message, packets=6)]
    assert pipe.host_events == [MessageDelivered(data=message, packets=6)]


def test_message_needing_more_packets_than_negotiated_is_refused() -> None:
    host = Link(Role.HOST, packet_size=64, nbr_packets=2)
    host.send_message(bytes(112), 0.0)  # exactly two packets
    host.receive_data(b"\x06\x06", 0.0)
    with pytest.raises(LocalProtocolError):
        host.send_message(bytes(113), 0.0)
    assert host.send_state is SendState.IDLE


def test_send_misuse_raises_and_leaves_state_alone() -> None:
    host = Link(Role.HOST)
    with pytest.raises(LocalProtocolError):
        host.send_message(b"", 0.0)
    host.send_message(b"\x20", 0.0)
    sent = host.data_to_send()
    with pytest.raises(LocalProtocolError):
        host.send_message(b"\x21", 0.0)
    assert host.send_state is SendState.WAIT_ACK
    assert host.data_to_send() == b""
    assert host.receive_data(b"\x06", 0.0) == [MessageDelivered(data=b"\x20", packets=1)]
    assert sent


# -- errors and retries -------------------------------------------------------------------------


def test_nak_then_retransmission_with_same_toggle() -> None:
    pipe = pair()
    pipe.host.send_message(b"\x30\x00\x00", 0.0)
    first = pipe.host.data_to_send()
    assert first == encode_frame(Frame(data=b"\x30\x00\x00"))
    # the first attempt arrives corrupted
    events = pipe.device.receive_data(corrupt_last_byte(first), 0.0)
    assert events == [
        PacketRejected(reason=RejectReason.CRC_ERROR, raw=corrupt_last_byte(first), nak_sent=True)
    ]
    assert pipe.device.data_to_send() == b"\x15"
    events = pipe.host.receive_data(b"\x15", 0.1)
    assert events == [Retransmitted(cause=RetransmitCause.NAK, attempt=1, packet_index=0)]
    assert pipe.host.data_to_send() == first  # same bytes, same toggle
    pipe.device_events += pipe.device.receive_data(first, 0.1)
    pipe.pump(0.1)
    assert of(MessageReceived, pipe.device_events) == [
        MessageReceived(data=b"\x30\x00\x00", packets=1)
    ]
    assert of(MessageDelivered, pipe.host_events)
    assert pipe.device.stats.crc_errors == 1 and pipe.device.stats.naks_sent == 1
    assert pipe.host.stats.naks_received == 1 and pipe.host.stats.retransmissions == 1


def test_corrupted_packet_in_pipe_is_recovered() -> None:
    pipe = pair(packet_size=64, nbr_packets=4)
    pipe.to_device.extend([lambda d: d, corrupt_last_byte])  # spoil the second packet
    pipe.host.send_message(bytes(range(150)), 0.0)
    pipe.pump(0.0)
    assert of(MessageReceived, pipe.device_events) == [
        MessageReceived(data=bytes(range(150)), packets=3)
    ]
    assert of(MessageDelivered, pipe.host_events)


def test_lost_ack_retransmit_duplicate_discarded() -> None:
    pipe = pair()
    pipe.to_host.append(drop)  # the device's ACK is lost
    pipe.host.send_message(b"\x52", 0.0)
    pipe.pump(0.0)
    assert len(of(MessageReceived, pipe.device_events)) == 1
    assert pipe.host.next_deadline() == 2.0
    pipe.run_until(2.0)
    assert of(Retransmitted, pipe.host_events) == [
        Retransmitted(cause=RetransmitCause.RESPONSE_TIMEOUT, attempt=1, packet_index=0)
    ]
    assert of(DuplicateDiscarded, pipe.device_events) == [
        DuplicateDiscarded(frame=Frame(data=b"\x52"))
    ]
    assert len(of(MessageReceived, pipe.device_events)) == 1  # not delivered twice
    assert of(MessageDelivered, pipe.host_events) == [MessageDelivered(data=b"\x52", packets=1)]
    assert pipe.device.stats.duplicates == 1


def test_lost_ack_in_the_middle_of_a_multi_packet_message() -> None:
    pipe = pair(packet_size=64, nbr_packets=4)
    pipe.to_host.extend([lambda d: d, drop])  # lose the ACK of packet 2
    pipe.host.send_message(bytes(150), 0.0)
    pipe.run_until(10.0)
    assert of(MessageReceived, pipe.device_events) == [MessageReceived(data=bytes(150), packets=3)]
    assert len(of(DuplicateDiscarded, pipe.device_events)) == 1
    assert len(of(MessageDelivered, pipe.host_events)) == 1


def test_retries_exhausted_by_silence() -> None:
    host = Link(Role.HOST)
    host.send_message(b"\x20", 0.0)
    first = host.data_to_send()
    events: list[Event] = []
    for now in (2.0, 4.0, 6.0):
        assert host.next_deadline() == now
        assert host.tick(now - 0.01) == []
        events += host.tick(now)
        assert host.data_to_send() == first
    assert [e.attempt for e in events] == [1, 2, 3]  # type: ignore[union-attr]
    assert host.tick(8.0) == [
        SendFailed(cause=RetransmitCause.RESPONSE_TIMEOUT, data=b"\x20", packet_index=0)
    ]
    assert host.send_state is SendState.IDLE and host.next_deadline() is None
    assert host.stats.frames_sent == 4 and host.stats.send_failures == 1
    host.send_message(b"\x20", 9.0)  # usable again, next toggle
    assert host.data_to_send()[2] == 0x20


def test_retries_exhausted_by_naks() -> None:
    host = Link(Role.HOST, max_retries=2)
    host.send_message(b"\x20", 0.0)
    events = host.receive_data(b"\x15\x15\x15", 0.1)
    assert events == [
        Retransmitted(cause=RetransmitCause.NAK, attempt=1, packet_index=0),
        Retransmitted(cause=RetransmitCause.NAK, attempt=2, packet_index=0),
        SendFailed(cause=RetransmitCause.NAK, data=b"\x20", packet_index=0),
    ]


def test_stray_ack_nak_and_garbage_while_idle() -> None:
    device = Link(Role.DEVICE)
    # S9/S6 send one 06 before the first request; S6 can send 55 to wake the port (facts 1.4).
    events = device.receive_data(
        bytes.fromhex("06 55 55 15") + encode_frame(Frame(data=b"\x20")), 0
    )
    assert events == [MessageReceived(data=b"\x20", packets=1)]
    assert device.stats.garbage_bytes == 2
    assert device.stats.acks_received == 1 and device.stats.naks_received == 1
    assert device.data_to_send() == b"\x06"


# -- timers ----------------------------------------------------------------------------------


def test_inter_character_timeout_discards_partial_frame() -> None:
    device = Link(Role.DEVICE)
    raw = encode_frame(Frame(data=b"\x30\x00\x01"))
    assert device.receive_data(raw[:4], 10.0) == []
    assert device.next_deadline() == 10.5
    events = device.tick(10.5)
    assert events == [
        PacketRejected(reason=RejectReason.INTER_CHARACTER_TIMEOUT, raw=raw[:4], nak_sent=False)
    ]
    assert device.data_to_send() == b""
    assert device.receive_data(raw, 11.0) == [MessageReceived(data=b"\x30\x00\x01", packets=1)]
    assert device.stats.partial_frames_discarded == 1


def test_inter_character_gap_detected_without_tick() -> None:
    device = Link(Role.DEVICE)
    raw = encode_frame(Frame(data=b"\x21"))
    device.receive_data(raw[:5], 0.0)
    device.receive_data(raw[5:], 0.4)  # within 0.5 s of the previous chunk
    assert device.stats.messages_received == 1
    second = encode_frame(Frame(toggle=True, data=b"\x21"))
    device.receive_data(second[:5], 1.0)
    events = device.receive_data(second, 1.6)  # gap too long: the stale start is dropped first
    assert [type(e) for e in events] == [PacketRejected, MessageReceived]


def test_empty_read_does_not_restart_the_inter_character_timer() -> None:
    device = Link(Role.DEVICE)
    device.receive_data(b"\xee\x00", 0.0)
    device.receive_data(b"", 0.3)
    assert device.next_deadline() == 0.5


def test_unknown_role_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        Link("meter")


def test_channel_traffic_timeout_returns_to_base_state() -> None:
    pipe = pair(packet_size=64, nbr_packets=4)
    frames: list[bytes] = []

    def keep(data: bytes) -> bytes:
        frames.append(data)
        return data

    pipe.to_device.extend([keep, drop, drop, drop, drop])
    pipe.host.send_message(bytes(150), 0.0)  # device gets packet 1 of 3, then nothing
    pipe.pump(0.0)
    assert pipe.device.recv_state is RecvState.REASSEMBLING
    assert pipe.device.channel_state is ChannelState.ACTIVE
    assert pipe.device.next_deadline() == 6.0
    assert pipe.device.tick(5.9) == []
    assert pipe.device.tick(6.0) == [ChannelTimeout(last_traffic=0.0)]
    assert pipe.device.recv_state is RecvState.IDLE
    assert pipe.device.channel_state is ChannelState.BASE
    assert pipe.device.next_deadline() is None
    # a continuation now has no message to belong to: NAKed
    cont = encode_frame(Frame(multi_packet=True, toggle=True, seq_nbr=1, data=bytes(56)))
    events = pipe.device.receive_data(cont, 7.0)
    assert events == [
        PacketRejected(reason=RejectReason.UNEXPECTED_CONTINUATION, raw=cont, nak_sent=True)
    ]
    assert pipe.device.data_to_send() == b"\x15"
    # and the last toggle was forgotten: the same first packet again starts a new message
    # (before the timeout it would have been a duplicate)
    assert pipe.device.receive_data(frames[0], 8.0) == []
    assert pipe.device.recv_state is RecvState.REASSEMBLING
    assert pipe.device.stats.duplicates == 0


def test_channel_timeout_waits_for_retries_to_finish() -> None:
    host = Link(Role.HOST)
    host.receive_data(encode_frame(Frame(data=b"\x00")), 0.0)  # channel ACTIVE at t=0
    host.data_to_send()
    host.send_message(b"\x20", 1.0)
    events: list[Event] = []
    now = 1.0
    while (deadline := host.next_deadline()) is not None:
        now = deadline
        events += host.tick(now)
    assert [type(e) for e in events] == [
        Retransmitted,
        Retransmitted,
        Retransmitted,
        SendFailed,
        ChannelTimeout,
    ]
    assert now == 9.0  # retries 3, 5, 7, failure at 9; channel deadline (6) already passed


# -- receiver rules ---------------------------------------------------------------------------


def test_out_of_sequence_continuation_is_naked() -> None:
    device = Link(Role.DEVICE, nbr_packets=4)
    device.receive_data(encode_frame(Frame(multi_packet=True, first_packet=True, seq_nbr=2)), 0)
    bad = encode_frame(Frame(multi_packet=True, toggle=True, seq_nbr=0, data=b"x"))
    assert device.receive_data(bad, 0) == [
        PacketRejected(reason=RejectReason.OUT_OF_SEQUENCE, raw=bad, nak_sent=True)
    ]
    assert device.data_to_send() == b"\x06\x15"
    assert device.recv_state is RecvState.IDLE
    assert device.stats.sequence_errors == 1


def test_first_packet_announcing_too_many_packets_is_naked() -> None:
    device = Link(Role.DEVICE, nbr_packets=2)
    first = encode_frame(Frame(multi_packet=True, first_packet=True, seq_nbr=2, data=b"a"))
    assert device.receive_data(first, 0) == [
        PacketRejected(reason=RejectReason.TOO_MANY_PACKETS, raw=first, nak_sent=True)
    ]
    lenient = Link(Role.DEVICE, nbr_packets=2, enforce_nbr_packets=False)
    assert lenient.receive_data(first, 0) == []
    assert lenient.recv_state is RecvState.REASSEMBLING


def test_new_message_replaces_a_half_received_one() -> None:
    device = Link(Role.DEVICE, nbr_packets=4)
    device.receive_data(encode_frame(Frame(multi_packet=True, first_packet=True, seq_nbr=2)), 0)
    events = device.receive_data(encode_frame(Frame(toggle=True, data=b"\x21")), 0)
    assert events == [MessageReceived(data=b"\x21", packets=1)]
    assert device.recv_state is RecvState.IDLE


def test_duplicate_policies() -> None:
    first = encode_frame(Frame(data=b"\x30\x00\x00"))
    other_same_toggle = encode_frame(Frame(data=b"\x30\x00\x01"))
    strict = Link(Role.DEVICE)  # toggle and CRC (S6)
    strict.receive_data(first, 0)
    assert strict.receive_data(other_same_toggle, 0) == [
        MessageReceived(data=b"\x30\x00\x01", packets=1)
    ]
    loose = Link(Role.DEVICE, duplicate_policy=DuplicatePolicy.TOGGLE)
    loose.receive_data(first, 0)
    events = loose.receive_data(other_same_toggle, 0)
    assert [type(e) for e in events] == [DuplicateDiscarded]
    assert loose.data_to_send() == b"\x06\x06"


def test_identity_is_sent_and_any_identity_accepted() -> None:
    host = Link(Role.HOST, identity=5)
    host.send_message(b"\x20", 0)
    assert host.data_to_send()[1] == 5
    device = Link(Role.DEVICE)
    assert device.receive_data(encode_frame(Frame(identity=9, data=b"\x20")), 0)


# -- negotiation and configuration -------------------------------------------------------------


def test_apply_negotiated_changes_segmentation_and_receive_limit() -> None:
    pipe = pair()
    big = bytes(500)
    with pytest.raises(LocalProtocolError):
        pipe.host.send_message(big, 0)
    for link in (pipe.host, pipe.device):
        link.apply_negotiated(512, 2)  # termineter's Negotiate (512, 2, 9600)
    assert pipe.host.packet_size == 512 and pipe.host.nbr_packets == 2
    pipe.host.send_message(big, 0)
    pipe.pump(0)
    assert pipe.device_events == [MessageReceived(data=big, packets=1)]
    small = Link(Role.DEVICE)
    events = small.receive_data(encode_frame(Frame(data=bytes(57))), 0)
    assert [e.reason for e in events] == [RejectReason.LENGTH_EXCEEDED]  # type: ignore[union-attr]
    assert small.stats.length_errors == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"packet_size": 8},
        {"packet_size": 8193},
        {"nbr_packets": 0},
        {"nbr_packets": 256},
        {"identity": 256},
        {"max_retries": -1},
        {"response_timeout": 0.0},
    ],
)
def test_bad_configuration(kwargs: dict[str, float]) -> None:
    with pytest.raises(LocalProtocolError):
        Link(Role.HOST, **kwargs)  # type: ignore[arg-type]


def test_reset_drops_everything_but_counters_and_toggle() -> None:
    host = Link("host")
    host.send_message(b"\x20", 0)
    host.receive_data(b"\xee\x00", 0)
    host.reset()
    assert host.data_to_send() == b""
    assert host.send_state is SendState.IDLE and host.next_deadline() is None
    assert host.stats.frames_sent == 1
    host.send_message(b"\x20", 1)
    assert host.data_to_send()[2] == 0x20  # toggle carried on


def test_baud_codes_both_ways() -> None:
    # protocol-facts.md 1.5 (S6, S10, termineter).
    assert baud_rate(0x06) == 9600 and baud_code(9600) == 0x06
    assert baud_rate(0x0A) == 57600 and baud_rate(0x0C) == 115200
    assert baud_rate(0x00) is None
    assert all(CODE_BY_BAUD[rate] == code for code, rate in BAUD_BY_CODE.items())
    assert len(BAUD_BY_CODE) == 14
    with pytest.raises(RemoteProtocolError):
        baud_rate(0x0F)
    with pytest.raises(LocalProtocolError):
        baud_code(9601)


# -- the tables ----------------------------------------------------------------------------------


def test_every_peer_input_is_handled_in_every_state() -> None:
    for rstate in link_mod.RecvState:
        for rinput in link_mod.RecvInput:
            action, nxt = link_mod.RECV_TABLE[(rstate, rinput)]
            assert isinstance(action, link_mod.RecvAction) and isinstance(nxt, RecvState)
    peer_inputs = [
        link_mod.SendInput.ACK,
        link_mod.SendInput.ACK_LAST,
        link_mod.SendInput.NAK,
        link_mod.SendInput.NAK_EXHAUSTED,
    ]
    for sstate in SendState:
        for sinput in peer_inputs:
            assert (sstate, sinput) in link_mod.SEND_TABLE


def test_missing_pairs_are_local_errors() -> None:
    missing = {
        (s, i) for s in SendState for i in link_mod.SendInput if (s, i) not in link_mod.SEND_TABLE
    }
    assert missing == {
        (SendState.WAIT_ACK, link_mod.SendInput.SEND),
        (SendState.IDLE, link_mod.SendInput.TIMEOUT),
        (SendState.IDLE, link_mod.SendInput.TIMEOUT_EXHAUSTED),
    }
    for state, inp in missing:
        with pytest.raises(LocalProtocolError):
            link_mod._transition(link_mod.SEND_TABLE, state, inp)
