"""StreamReassembler: in order, split, reordered, retransmitted, overlapping, lost, wrapped."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.pcap.reassembly import StreamData, StreamGap, StreamReassembler

ISN = 1000


def joined(events: list) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, StreamData))


def test_syn_then_in_order() -> None:
    r = StreamReassembler()
    assert r.receive(ISN, b"", syn=True) == []
    assert joined(r.receive(ISN + 1, b"abc")) == b"abc"
    assert joined(r.receive(ISN + 4, b"def")) == b"def"


def test_out_of_order_is_held_until_the_hole_fills() -> None:
    r = StreamReassembler()
    r.receive(ISN, b"", syn=True)
    assert r.receive(ISN + 4, b"def") == []
    assert r.pending_bytes == 3 and r.out_of_order_segments == 1
    assert joined(r.receive(ISN + 1, b"abc")) == b"abcdef"
    assert r.pending_bytes == 0


def test_retransmission_and_overlap_are_trimmed() -> None:
    r = StreamReassembler()
    r.receive(ISN, b"", syn=True)
    r.receive(ISN + 1, b"abcd")
    assert r.receive(ISN + 1, b"abcd") == []  # whole retransmission
    assert joined(r.receive(ISN + 3, b"cdefg")) == b"efg"  # overlapping, re-segmented
    assert r.retransmitted_bytes == 4 + 2


def test_a_lost_segment_becomes_a_gap() -> None:
    r = StreamReassembler(max_pending=4)
    r.receive(ISN, b"", syn=True)
    r.receive(ISN + 1, b"ab")
    assert r.receive(ISN + 5, b"efg") == []
    events = r.receive(ISN + 8, b"hi")  # more than max_pending held: give up on bytes 3..4
    assert events == [StreamGap(size=2), StreamData(data=b"efg"), StreamData(data=b"hi")]
    assert r.gaps == 1 and r.gap_bytes == 2
    r2 = StreamReassembler()
    r2.receive(ISN, b"ab")
    r2.receive(ISN + 4, b"ef")
    assert r2.close() == [StreamGap(size=2), StreamData(data=b"ef")]


def test_an_ack_beyond_a_hole_declares_it_lost() -> None:
    r = StreamReassembler()
    r.receive(ISN, b"", syn=True)
    r.receive(ISN + 1, b"ab")
    assert r.acknowledged(ISN + 10) == []  # nothing held: an early ACK proves nothing
    r.receive(ISN + 5, b"ef")
    assert r.acknowledged(ISN + 4) == []  # the ACK does not reach the held bytes
    assert r.acknowledged(ISN + 7) == [StreamGap(size=2), StreamData(data=b"ef")]


def test_sequence_numbers_wrap() -> None:
    r = StreamReassembler()
    r.receive(0xFFFFFFFE, b"", syn=True)
    assert joined(r.receive(0xFFFFFFFF, b"ab")) == b"ab"
    assert joined(r.receive(1, b"cd")) == b"cd"  # 0xFFFFFFFF + 2 wraps to 1
    assert r.receive(0xFFFFFFFF, b"ab") == []  # old data, before the wrap


def test_mid_stream_start_without_syn() -> None:
    r = StreamReassembler()
    assert joined(r.receive(123456, b"xy")) == b"xy"
    assert joined(r.receive(123458, b"z")) == b"z"


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=300),
    cuts=st.lists(st.integers(min_value=1, max_value=299), max_size=12),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    isn=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_any_split_order_and_duplication_rebuilds_the_stream(
    data: bytes, cuts: list[int], seed: int, isn: int
) -> None:
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    segments = [(bounds[i], data[bounds[i] : bounds[i + 1]]) for i in range(len(bounds) - 1)]
    rng = random.Random(seed)
    shuffled = segments + rng.sample(segments, k=min(3, len(segments)))  # some retransmitted
    rng.shuffle(shuffled)
    r = StreamReassembler()
    out = r.receive(isn, b"", syn=True)
    for offset, chunk in shuffled:
        out += r.receive((isn + 1 + offset) & 0xFFFFFFFF, chunk)
    out += r.close()
    assert joined(out) == data
    assert not any(isinstance(e, StreamGap) for e in out)


@pytest.mark.parametrize("max_pending", [0, 1, 10])
def test_gaps_never_lose_what_arrives_after_them(max_pending: int) -> None:
    r = StreamReassembler(max_pending=max_pending)
    r.receive(ISN, b"", syn=True)
    out = r.receive(ISN + 1 + 5, b"later")  # bytes 0..4 never arrive
    out += r.close()
    assert joined(out) == b"later"
    assert [e for e in out if isinstance(e, StreamGap)] == [StreamGap(size=5)]
