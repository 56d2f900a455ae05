"""TCP framing (ApduBuffer) at every chunking, garbage and size limits; UDP datagrams."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.codecs.c1222 import (
    C1222_PORT,
    NEED_MORE,
    ApduBuffer,
    ApduTooLargeError,
    ApTitle,
    build_message,
    datagrams_for,
    encode_apdu,
    receive_datagram,
)
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.errors import LocalProtocolError, RemoteProtocolError

from .test_c1222_acse import ICSNPP_IDENT
from .test_c1222_vectors import EX8_REQUEST, EX8_RESPONSE


def _big(size: int) -> bytes:
    """A cleartext APDU with one service of ``size`` bytes (long-form lengths)."""
    return encode_apdu(
        build_message(
            called=ApTitle.parse(".1.2"),
            calling=ApTitle.parse(".3"),
            invocation_id=9,
            services=[bytes(size)],
        )
    )


APDUS = [EX8_REQUEST, EX8_RESPONSE, ICSNPP_IDENT, _big(200), _big(70000 // 2)]


def drain(buffer: ApduBuffer) -> list[bytes]:
    out = []
    while (apdu := buffer.next_apdu()) is not NEED_MORE:
        assert isinstance(apdu, bytes)
        out.append(apdu)
    return out


def feed(chunks: list[bytes], buffer: ApduBuffer | None = None) -> list[bytes]:
    buffer = buffer or ApduBuffer(max_apdu_size=65536)
    out: list[bytes] = []
    for chunk in chunks:
        buffer.receive_data(chunk)
        out += drain(buffer)
    return out


@pytest.mark.parametrize("apdu", APDUS, ids=["ex8-req", "ex8-resp", "icsnpp", "200", "35000"])
def test_whole_and_byte_by_byte(apdu: bytes) -> None:
    assert feed([apdu]) == [apdu]
    if len(apdu) < 1000:
        assert feed([apdu[i : i + 1] for i in range(len(apdu))]) == [apdu]


def test_trailing_bytes_wait_for_the_next_apdu() -> None:
    buffer = ApduBuffer()
    buffer.receive_data(EX8_REQUEST + EX8_RESPONSE[:5])
    assert drain(buffer) == [EX8_REQUEST]
    assert buffer.buffered == 5 and buffer.has_partial
    buffer.receive_data(EX8_RESPONSE[5:])
    assert drain(buffer) == [EX8_RESPONSE]
    assert not buffer.has_partial


def test_two_apdus_in_one_chunk() -> None:
    assert feed([EX8_REQUEST + EX8_RESPONSE]) == [EX8_REQUEST, EX8_RESPONSE]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(APDUS[:4]), min_size=1, max_size=5), st.data())
def test_any_chunking(apdus: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(apdus)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert feed(chunks) == apdus


def test_garbage_before_an_apdu_raises_once_then_recovers() -> None:
    buffer = ApduBuffer()
    buffer.receive_data(b"\x01\x02\x03" + EX8_REQUEST)
    with pytest.raises(RemoteProtocolError, match="3 bytes of garbage"):
        buffer.next_apdu()
    assert buffer.discarded_bytes == 3
    assert drain(buffer) == [EX8_REQUEST]


def test_garbage_run_across_chunks_raises_once() -> None:
    buffer = ApduBuffer()
    buffer.receive_data(b"\xff\xfe")
    with pytest.raises(RemoteProtocolError):
        buffer.next_apdu()
    buffer.receive_data(b"\xfd\xfc")  # same garbage run: dropped silently while hunting
    assert buffer.next_apdu() is NEED_MORE
    buffer.receive_data(b"\xfb" + EX8_RESPONSE)
    assert drain(buffer) == [EX8_RESPONSE]
    assert buffer.discarded_bytes == 5


def test_garbage_between_apdus() -> None:
    buffer = ApduBuffer()
    buffer.receive_data(EX8_REQUEST + b"\x00" + EX8_RESPONSE)
    assert buffer.next_apdu() == EX8_REQUEST
    with pytest.raises(RemoteProtocolError):
        buffer.next_apdu()
    assert drain(buffer) == [EX8_RESPONSE]


def test_bad_length_is_garbage() -> None:
    buffer = ApduBuffer()
    buffer.receive_data(b"\x60\x80" + EX8_REQUEST)  # indefinite length
    with pytest.raises(RemoteProtocolError, match="bad APDU length"):
        buffer.next_apdu()
    assert drain(buffer) == [EX8_REQUEST]


def test_oversize_apdu_is_rqtl_and_skipped() -> None:
    big = _big(1000)
    buffer = ApduBuffer(max_apdu_size=512)
    buffer.receive_data(big[:10])
    with pytest.raises(ApduTooLargeError) as info:
        buffer.next_apdu()
    assert info.value.response_code is ResponseCode.RQTL
    assert info.value.limit == 512 and info.value.size == len(big)
    buffer.receive_data(big[10:600])
    assert buffer.next_apdu() is NEED_MORE and buffer.buffered == 0  # skipped, not buffered
    buffer.receive_data(big[600:] + EX8_REQUEST)
    assert drain(buffer) == [EX8_REQUEST]
    assert buffer.discarded_bytes == len(big)


def test_default_max_is_32767() -> None:
    buffer = ApduBuffer()
    buffer.receive_data(_big(32767)[:8])
    with pytest.raises(ApduTooLargeError):
        buffer.next_apdu()


def test_max_apdu_size_must_be_sane() -> None:
    with pytest.raises(LocalProtocolError):
        ApduBuffer(max_apdu_size=2)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=6))
def test_random_stream_raises_only_remote_errors(chunks: list[bytes]) -> None:
    buffer = ApduBuffer(max_apdu_size=1024)
    for chunk in chunks:
        buffer.receive_data(chunk)
        for _ in range(len(chunk) + 2):  # each call makes progress or returns NEED_MORE
            try:
                if buffer.next_apdu() is NEED_MORE:
                    break
            except RemoteProtocolError:
                continue
    assert buffer.buffered <= sum(map(len, chunks))


# --- UDP ------------------------------------------------------------------------------------------


def test_port() -> None:
    assert C1222_PORT == 1153


def test_datagram_is_one_apdu() -> None:
    assert receive_datagram(EX8_REQUEST) == [EX8_REQUEST]
    assert datagrams_for([EX8_REQUEST, EX8_RESPONSE]) == [EX8_REQUEST, EX8_RESPONSE]


@pytest.mark.parametrize(
    "datagram",
    [b"", b"\x00" + EX8_REQUEST, EX8_REQUEST[:-1], EX8_REQUEST + b"\x00", EX8_REQUEST[:1]],
)
def test_bad_datagrams(datagram: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        receive_datagram(datagram)


def test_datagram_size_limits() -> None:
    with pytest.raises(ApduTooLargeError):
        receive_datagram(_big(600), max_apdu_size=512)
    with pytest.raises(LocalProtocolError):
        datagrams_for([_big(600)], max_datagram_size=512)
