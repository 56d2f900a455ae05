"""The link's tables pair by pair, and Hypothesis over random inputs and lossy pipes."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from amidcc.codecs.c1218 import (
    NEED_MORE,
    BadFrame,
    ChannelState,
    Control,
    DuplicatePolicy,
    Event,
    Frame,
    FrameBuffer,
    Link,
    MessageDelivered,
    MessageReceived,
    RecvState,
    Role,
    SendFailed,
    SendState,
    encode_frame,
)
from amidcc.codecs.c1218 import link as link_mod
from amidcc.codecs.errors import LocalProtocolError

RI, SI = link_mod.RecvInput, link_mod.SendInput

Pair = tuple[Any, Any]


@contextmanager
def recording() -> Iterator[list[Pair]]:
    """Record every (state, input) the link looks up."""
    seen: list[Pair] = []
    original = link_mod._transition

    def spy(table: Any, state: Any, inp: Any) -> Any:
        seen.append((state, inp))
        return original(table, state, inp)

    link_mod._transition = spy
    try:
        yield seen
    finally:
        link_mod._transition = original


def fr(**kw: Any) -> bytes:
    return encode_frame(Frame(**kw))


FIRST3 = fr(multi_packet=True, first_packet=True, seq_nbr=2, data=b"a")  # of a 3-packet message
FIRST2 = fr(multi_packet=True, first_packet=True, seq_nbr=1, data=b"a")  # of a 2-packet message
BAD = fr(data=b"\x20")[:-1] + b"\x00"


def device(**kw: Any) -> Link:
    return Link(Role.DEVICE, nbr_packets=4, **kw)


def feed(*chunks: bytes, **kw: Any) -> Callable[[], Link]:
    def run() -> Link:
        link = device(**kw)
        for chunk in chunks:
            link.receive_data(chunk, 0.0)
        return link

    return run


def timed_out(*chunks: bytes) -> Callable[[], Link]:
    def run() -> Link:
        link = feed(*chunks)()
        link.tick(100.0)
        return link

    return run


def sending(
    size: int, *then: bytes, max_retries: int = 3, tick: float | None = None
) -> Callable[[], Link]:
    def run() -> Link:
        link = device(max_retries=max_retries)
        link.send_message(bytes(size), 0.0)
        for chunk in then:
            link.receive_data(chunk, 0.0)
        if tick is not None:
            link.tick(tick)
        return link

    return run


R_IDLE, R_RE = RecvState.IDLE, RecvState.REASSEMBLING
S_IDLE, S_WAIT = SendState.IDLE, SendState.WAIT_ACK

#: One scenario per reachable pair: the last lookup it makes is that pair.
SCENARIOS: list[tuple[Pair, Callable[[], Link]]] = [
    ((R_IDLE, RI.SINGLE), feed(fr(data=b"x"))),
    ((R_IDLE, RI.FIRST), feed(FIRST3)),
    ((R_IDLE, RI.MIDDLE), feed(fr(multi_packet=True, seq_nbr=1, data=b"b"))),
    ((R_IDLE, RI.LAST), feed(fr(multi_packet=True, seq_nbr=0, data=b"b"))),
    ((R_IDLE, RI.TOO_MANY_PACKETS), feed(fr(multi_packet=True, first_packet=True, seq_nbr=4))),
    ((R_IDLE, RI.DUPLICATE), feed(fr(data=b"x"), fr(data=b"x"))),
    ((R_IDLE, RI.BAD_FRAME), feed(BAD)),
    ((R_IDLE, RI.CHANNEL_TIMEOUT), timed_out(fr(data=b"x"))),
    ((R_RE, RI.SINGLE), feed(FIRST3, fr(toggle=True, data=b"x"))),
    (
        (R_RE, RI.FIRST),
        feed(FIRST3, fr(multi_packet=True, first_packet=True, toggle=True, seq_nbr=1)),
    ),
    ((R_RE, RI.MIDDLE), feed(FIRST3, fr(multi_packet=True, toggle=True, seq_nbr=1))),
    ((R_RE, RI.LAST), feed(FIRST2, fr(multi_packet=True, toggle=True, seq_nbr=0))),
    ((R_RE, RI.OUT_OF_SEQUENCE), feed(FIRST3, fr(multi_packet=True, toggle=True, seq_nbr=0))),
    (
        (R_RE, RI.TOO_MANY_PACKETS),
        feed(FIRST3, fr(multi_packet=True, first_packet=True, toggle=True, seq_nbr=9)),
    ),
    ((R_RE, RI.DUPLICATE), feed(FIRST3, FIRST3)),
    ((R_RE, RI.BAD_FRAME), feed(FIRST3, BAD)),
    ((R_RE, RI.CHANNEL_TIMEOUT), timed_out(FIRST3)),
    ((S_IDLE, SI.SEND), sending(1)),
    ((S_IDLE, SI.ACK_LAST), feed(b"\x06")),
    ((S_IDLE, SI.NAK), feed(b"\x15")),
    ((S_IDLE, SI.NAK_EXHAUSTED), feed(b"\x15", max_retries=0)),
    ((S_WAIT, SI.ACK), sending(100, b"\x06")),
    ((S_WAIT, SI.ACK_LAST), sending(1, b"\x06")),
    ((S_WAIT, SI.NAK), sending(1, b"\x15")),
    ((S_WAIT, SI.NAK_EXHAUSTED), sending(1, b"\x15", max_retries=0)),
    ((S_WAIT, SI.TIMEOUT), sending(1, tick=2.0)),
    ((S_WAIT, SI.TIMEOUT_EXHAUSTED), sending(1, tick=2.0, max_retries=0)),
]

#: Pairs the classifier cannot produce (still in the tables, so the peer cannot make them raise).
UNREACHABLE = {(R_IDLE, RI.OUT_OF_SEQUENCE), (S_IDLE, SI.ACK)}


@pytest.mark.parametrize(
    ("pair", "scenario"), SCENARIOS, ids=[f"{s.name}-{i.name}" for (s, i), _ in SCENARIOS]
)
def test_each_pair_moves_to_the_table_state(pair: Pair, scenario: Callable[[], Link]) -> None:
    with recording() as seen:
        link = scenario()
    assert seen[-1] == pair
    table: Any = link_mod.RECV_TABLE if isinstance(pair[1], RI) else link_mod.SEND_TABLE
    _, expected = table[pair]
    actual = link.recv_state if isinstance(pair[1], RI) else link.send_state
    assert actual is expected


def test_scenarios_cover_every_reachable_pair() -> None:
    covered = {pair for pair, _ in SCENARIOS}
    assert covered | UNREACHABLE == set(link_mod.RECV_TABLE) | set(link_mod.SEND_TABLE)


def test_send_while_waiting_is_the_documented_error() -> None:
    link = sending(1)()
    with recording() as seen, pytest.raises(LocalProtocolError):
        link.send_message(b"x", 0.0)
    assert seen == [(S_WAIT, SI.SEND)]
    assert link.send_state is S_WAIT


# -- Hypothesis: one link, any input -------------------------------------------------------------

frames = st.builds(
    lambda multi, first, toggle, seq, data: Frame(
        multi_packet=multi, first_packet=first, toggle=toggle, seq_nbr=seq, data=data
    ),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.integers(0, 5),
    st.binary(max_size=70),
)


def parse_output(data: bytes) -> None:
    """What a link writes is always whole frames and bare ACK/NAK bytes."""
    buffer = FrameBuffer(packet_size=8192)
    buffer.receive_data(data)
    while (item := buffer.next_item()) is not NEED_MORE:
        assert isinstance(item, Frame | Control), item
        assert not isinstance(item, BadFrame)
    assert not buffer.in_frame and buffer.skipped_bytes == 0


class LinkMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.link = Link(Role.DEVICE, nbr_packets=3, max_retries=2)
        self.now = 0.0
        self.outstanding = False
        self.finished = 0
        self.accepted = 0

    def _events(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, MessageDelivered | SendFailed):
                assert self.outstanding
                self.outstanding = False
                self.finished += 1
        parse_output(self.link.data_to_send())

    @rule(size=st.integers(0, 200))
    def send(self, size: int) -> None:
        max_data = self.link.packet_size - 8
        packets = -(-size // max_data)
        should_fail = self.outstanding or size == 0 or packets > self.link.nbr_packets
        try:
            self.link.send_message(bytes(size), self.now)
        except LocalProtocolError:
            assert should_fail
        else:
            assert not should_fail
            self.outstanding = True
            self.accepted += 1
        self._events([])

    @rule(chunk=st.binary(max_size=30))
    def garbage(self, chunk: bytes) -> None:
        self._events(self.link.receive_data(chunk, self.now))

    @rule(byte=st.sampled_from([b"\x06", b"\x15", b"\x06\x06", b"\x55"]))
    def control(self, byte: bytes) -> None:
        self._events(self.link.receive_data(byte, self.now))

    @rule(frame=frames, cut=st.integers(0, 90), flip=st.integers(-1, 90))
    def frame(self, frame: Frame, cut: int, flip: int) -> None:
        raw = bytearray(encode_frame(frame))
        if 0 <= flip < len(raw):
            raw[flip] ^= 0xA5
        self._events(self.link.receive_data(bytes(raw[:cut] if cut < 8 else raw), self.now))

    @rule(dt=st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.0, 6.0, 30.0]))
    def advance(self, dt: float) -> None:
        self.now += dt
        self._events(self.link.tick(self.now))

    @rule()
    def to_next_deadline(self) -> None:
        deadline = self.link.next_deadline()
        if deadline is not None:
            self.now = max(self.now, deadline)
            self._events(self.link.tick(self.now))

    @rule(size=st.integers(9, 300), count=st.integers(1, 4))
    def negotiate(self, size: int, count: int) -> None:
        self.link.apply_negotiated(size, count)

    @precondition(lambda self: self.now > 0)
    @rule()
    def reset(self) -> None:
        self.link.reset()
        if self.outstanding:
            self.outstanding = False
            self.finished += 1  # dropped on purpose, without an event

    @invariant()
    def states_are_valid(self) -> None:
        assert self.link.send_state in SendState
        assert self.link.recv_state in RecvState
        assert self.link.channel_state in ChannelState
        assert (self.link.send_state is SendState.WAIT_ACK) == self.outstanding
        assert self.accepted == self.finished + self.outstanding
        deadline = self.link.next_deadline()
        assert deadline is None or math.isfinite(deadline)
        if self.outstanding:
            assert deadline is not None
        assert all(value >= 0 for value in vars_of(self.link.stats))


def vars_of(stats: Any) -> list[int]:
    return [getattr(stats, name) for name in stats.__slots__]


LinkMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLinkMachine = LinkMachine.TestCase


# -- Hypothesis: a host/device pair over a lossy line --------------------------------------------


def exchange(
    sizes: list[int], line: Callable[[bytes], bytes], **kw: Any
) -> tuple[list[bytes], list[MessageDelivered | SendFailed], list[bytes]]:
    """Host sends one message per size through ``line``; returns (messages, host outcomes,
    messages the device received)."""
    kw = {"packet_size": 64, "nbr_packets": 4, "channel_traffic_timeout": 1000.0, **kw}
    host, dev = Link(Role.HOST, **kw), Link(Role.DEVICE, **kw)
    # distinct contents, made of bytes that are never 06, 15 or EE
    messages = [bytes([n]) + bytes([n, 1]) * (size // 2) for n, size in enumerate(sizes)]
    host_events: list[Event] = []
    dev_events: list[Event] = []
    now = 0.0
    for message in messages:
        host.send_message(message, now)
        for _ in range(500):
            for _ in range(50):
                a, b = host.data_to_send(), dev.data_to_send()
                if not a and not b:
                    break
                if a:
                    dev_events += dev.receive_data(line(a), now)
                if b:
                    host_events += host.receive_data(line(b), now)
            if host.send_state is SendState.IDLE:
                break
            deadlines = [d for d in (host.next_deadline(), dev.next_deadline()) if d is not None]
            now = max(now, min(deadlines))
            host_events += host.tick(now)
            dev_events += dev.tick(now)
        else:
            raise AssertionError("link never settled")
    outcomes = [e for e in host_events if isinstance(e, MessageDelivered | SendFailed)]
    received = [e.data for e in dev_events if isinstance(e, MessageReceived)]
    return messages, outcomes, received


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 200), min_size=1, max_size=6),
    faults=st.lists(
        st.tuples(st.sampled_from(["pass", "drop", "flip"]), st.integers(0, 999)), max_size=40
    ),
    policy=st.sampled_from(DuplicatePolicy),
)
def test_lossy_line_never_duplicates_or_reorders(
    sizes: list[int], faults: list[tuple[str, int]], policy: DuplicatePolicy
) -> None:
    plan = list(faults)

    def line(data: bytes) -> bytes:
        if not plan:
            return data
        kind, pos = plan.pop(0)
        if kind == "drop":
            return b""
        if kind == "flip":
            i = pos % len(data)
            return data[:i] + bytes((data[i] ^ 0x5A,)) + data[i + 1 :]
        return data

    messages, outcomes, received = exchange(sizes, line, duplicate_policy=policy)
    assert [e.data for e in outcomes] == messages
    failed = any(isinstance(e, SendFailed) for e in outcomes)
    if policy is DuplicatePolicy.TOGGLE and failed:
        # Toggle-only detection cannot tell a new packet from a retransmission once a packet the
        # peer never saw was abandoned: the next message may be ACKed and dropped. Known hazard.
        return
    positions = [messages.index(r) for r in received]
    assert positions == sorted(set(positions))  # in order, each at most once, nothing invented
    for event in outcomes:
        if isinstance(event, MessageDelivered):
            assert event.data in received
    drops = sum(kind == "drop" for kind, _ in faults)
    if all(kind != "flip" for kind, _ in faults) and drops <= 3:
        # each drop costs one attempt of one packet, and there are 4 attempts per packet
        assert received == messages
        assert all(isinstance(e, MessageDelivered) for e in outcomes)
