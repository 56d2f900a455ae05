"""Draft-format segmentation (protocol-facts.md 3.7, [L]): split, reassemble, errors, timeouts."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.codecs.c1222 import (
    Apdu,
    ApTitle,
    Reassembler,
    SecurityMode,
    SegmentationConfig,
    UserInformation,
    build_message,
    decode_apdu,
    decode_message,
    encode_apdu,
    is_segment,
    split_apdu,
)
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.errors import LocalProtocolError, SegmentationError

from .test_c1222_vectors import KEY, KEY_ID, KEYS


def _message(size: int, invocation_id: int = 7, calling: str = ".123.4") -> Apdu:
    return build_message(
        called=ApTitle.parse(".123.8437"),
        calling=ApTitle.parse(calling),
        invocation_id=invocation_id,
        services=[bytes(i % 251 for i in range(size))],
        security_mode=SecurityMode.CIPHERTEXT,
        key_id=KEY_ID,
        key=KEY,
        iv=bytes.fromhex("48f3d061"),
    )


FULL = _message(1000)


def test_small_apdu_is_not_split() -> None:
    small = _message(10)
    assert split_apdu(small, 512) == [encode_apdu(small)]


@pytest.mark.parametrize("limit", [60, 100, 127, 128, 200, 513])
def test_segments_respect_the_limit_and_carry_the_draft_elements(limit: int) -> None:
    wire = encode_apdu(FULL)
    segments = split_apdu(FULL, limit)
    assert len(segments) > 1
    offset = 0
    for raw in segments:
        assert len(raw) <= limit
        segment = decode_apdu(raw)
        assert is_segment(segment)
        assert segment.called_ae_qualifier == len(wire)
        assert segment.calling_ap_invocation_id == FULL.calling_ap_invocation_id
        assert segment.called_ap_title == FULL.called_ap_title
        assert segment.calling_ap_title == FULL.calling_ap_title
        assert segment.calling_authentication is None and segment.called_ap_invocation_id is None
        assert segment.user_information.indirect_reference == offset
        offset += len(segment.user_information.epsem)
    assert offset == len(wire)
    # Each segment is as large as the limit allows, except the last.
    assert all(len(raw) >= limit - 3 for raw in segments[:-1])


def test_limit_too_small() -> None:
    with pytest.raises(LocalProtocolError):
        split_apdu(FULL, 30)


def test_disabled_split_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        split_apdu(FULL, 100, config=SegmentationConfig(enabled=False))


def _reassemble(segments: list[bytes], reassembler: Reassembler, now: float = 0.0) -> list[bytes]:
    done = []
    for raw in segments:
        result = reassembler.receive(decode_apdu(raw), now)
        if result is not None:
            done.append(result)
    return done


@settings(max_examples=60, deadline=None)
@given(st.integers(60, 400), st.randoms(use_true_random=False), st.integers(0, 3))
def test_reassembly_any_order_with_duplicates(limit: int, rnd: random.Random, dups: int) -> None:
    segments = split_apdu(FULL, limit)
    shuffled = segments + [rnd.choice(segments) for _ in range(dups)]
    rnd.shuffle(shuffled)
    # A duplicate may land after completion, where it would start a new partial: stop at completion.
    reassembler = Reassembler()
    result = None
    for raw in shuffled:
        result = reassembler.receive(decode_apdu(raw), 1.0)
        if result is not None:
            break
    assert result == encode_apdu(FULL)
    assert reassembler.pending == 0
    message = decode_message(result, KEYS)
    assert message.authenticated and message.epsem is not None


def test_duplicates_are_counted() -> None:
    segments = split_apdu(FULL, 200)
    reassembler = Reassembler()
    assert _reassemble([segments[0], segments[0]], reassembler) == []
    assert reassembler.duplicates == 1
    assert _reassemble(segments[1:], reassembler) == [encode_apdu(FULL)]


def test_interleaved_peers_are_kept_apart() -> None:
    other = _message(700, invocation_id=7, calling=".123.5")
    a, b = split_apdu(FULL, 150), split_apdu(other, 150)
    mixed = [s for pair in zip(a, b, strict=False) for s in pair] + a[len(b) :] + b[len(a) :]
    assert sorted(_reassemble(mixed, Reassembler())) == sorted(
        [encode_apdu(FULL), encode_apdu(other)]
    )


def _segment(raw: bytes, **changes: object) -> Apdu:
    apdu = decode_apdu(raw)
    return replace(apdu, wire_elements=(), **changes)  # type: ignore[arg-type]


def test_contradicting_segment_is_an_error_and_forgets() -> None:
    segments = split_apdu(FULL, 200)
    reassembler = Reassembler()
    reassembler.receive(decode_apdu(segments[0]), 0)
    first = decode_apdu(segments[0])
    bad = replace(first, user_information=replace(first.user_information, epsem=b"X" * 10))
    with pytest.raises(SegmentationError) as info:
        reassembler.receive(bad, 0)
    assert info.value.response_code is ResponseCode.SGERR
    assert reassembler.pending == 0


@pytest.mark.parametrize(
    "changes",
    [
        {"called_ae_qualifier": 10},  # total changed / segment beyond total
        {"called_ap_invocation_id": 3},  # A4 forbidden
        {"mechanism_name": b"\x01"},  # 8B forbidden
        {"called_ae_qualifier": 0},
        {"called_ae_qualifier": 1 << 30},  # beyond max_apdu_size
        {"user_information": UserInformation(epsem=b"abc", indirect_reference=-1)},
    ],
)
def test_inconsistent_segments(changes: dict[str, object]) -> None:
    segments = split_apdu(FULL, 200)
    reassembler = Reassembler()
    reassembler.receive(decode_apdu(segments[0]), 0)
    with pytest.raises(SegmentationError):
        reassembler.receive(_segment(segments[1], **changes), 0)


def test_total_size_change_is_an_error() -> None:
    segments = split_apdu(FULL, 200)
    reassembler = Reassembler()
    reassembler.receive(decode_apdu(segments[0]), 0)
    total = decode_apdu(segments[1]).called_ae_qualifier
    assert total is not None
    with pytest.raises(SegmentationError, match="total size changed"):
        reassembler.receive(_segment(segments[1], called_ae_qualifier=total + 1), 0)


def test_not_a_segment() -> None:
    with pytest.raises(SegmentationError):
        Reassembler().receive(FULL, 0)


def test_gap_never_completes_and_times_out() -> None:
    segments = split_apdu(FULL, 200)
    reassembler = Reassembler(SegmentationConfig(timeout=30))
    assert _reassemble(segments[:1] + segments[2:], reassembler, now=100.0) == []
    assert reassembler.pending == 1
    assert reassembler.expire(129.0) == []
    key = (FULL.calling_ap_title, FULL.calling_ap_invocation_id)
    assert reassembler.expire(131.0) == [key]
    assert reassembler.pending == 0
    # The late segment starts a new partial APDU instead of completing the expired one.
    assert _reassemble(segments[1:2], reassembler, now=132.0) == []


def test_max_pending() -> None:
    reassembler = Reassembler(SegmentationConfig(max_pending=1))
    reassembler.receive(decode_apdu(split_apdu(FULL, 200)[0]), 0)
    other = _message(700, invocation_id=8)
    with pytest.raises(SegmentationError, match="pending"):
        reassembler.receive(decode_apdu(split_apdu(other, 200)[0]), 0)


def test_disabled_reassembly_answers_sgnp() -> None:
    reassembler = Reassembler(SegmentationConfig(enabled=False))
    with pytest.raises(SegmentationError) as info:
        reassembler.receive(decode_apdu(split_apdu(FULL, 200)[0]), 0)
    assert info.value.response_code is ResponseCode.SGNP


def test_reassembled_bytes_must_be_one_apdu() -> None:
    template = decode_apdu(split_apdu(FULL, 200)[0])
    fake = replace(
        template,
        called_ae_qualifier=4,
        user_information=UserInformation(epsem=b"\x61\x02\x00\x00", indirect_reference=0),
        wire_elements=(),
    )
    with pytest.raises(SegmentationError, match="not one APDU"):
        Reassembler().receive(fake, 0)


def test_decode_message_flags_segments() -> None:
    message = decode_message(split_apdu(FULL, 200)[0], KEYS, require_security=True)
    assert message.segment and message.epsem is None and message.security_mode is None
