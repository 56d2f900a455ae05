"""C12.18 CRC and framing: verified vectors both ways, at every chunking, plus fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.codecs.c1218 import (
    CHECK_VALUE,
    NEED_MORE,
    BadFrame,
    Control,
    Frame,
    FrameBuffer,
    FrameItem,
    RejectReason,
    crc16,
    crc16_reference,
    decode_frame,
    encode_frame,
)
from amidcc.codecs.errors import LocalProtocolError, RemoteProtocolError


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# protocol-facts.md 1.3, "Verified frames" (CRCs recomputed there); source of each in the comment.
VECTORS: list[tuple[str, Frame]] = [
    # Identify request: S9 unit test, termineter, S6 doc, S13
    ("EE 00 00 00 00 01 20 13 10", Frame(data=h("20"))),
    # Identify response: S6 doc transcript
    ("EE 00 00 00 00 05 00 00 01 00 00 C6 B5", Frame(data=h("00 00 01 00 00"))),
    # Negotiate 1024 x 128, baud 06, toggle 1: S6 doc
    ("EE 00 20 00 00 05 61 04 00 80 06 C2 29", Frame(toggle=True, data=h("61 04 00 80 06"))),
    # Negotiate response: S6 doc
    ("EE 00 20 00 00 05 00 04 00 80 06 35 83", Frame(toggle=True, data=h("00 04 00 80 06"))),
    # Negotiate 512 x 2, 9600: termineter
    ("EE 00 20 00 00 05 61 02 00 02 06 24 DD", Frame(toggle=True, data=h("61 02 00 02 06"))),
    # Logon user id 0, "0000" space padded: termineter
    (
        "EE 00 00 00 00 0D 50 00 00 30 30 30 30 20 20 20 20 20 20 76 35",
        Frame(data=b"\x50\x00\x00" + b"0000      "),
    ),
    # Logon user id 0x0063 "fixeduser ": S13 real meter
    (
        "EE 00 20 00 00 0D 50 00 63 66 69 78 65 64 75 73 65 72 20 8E 11",
        Frame(toggle=True, data=b"\x50\x00\x63" + b"fixeduser "),
    ),
    # Security, 20 NUL password: termineter
    ("EE 00 20 00 00 15 51" + " 00" * 20 + " 27 A2", Frame(toggle=True, data=b"\x51" + bytes(20))),
    # Full read ST0, toggle 1 and toggle 0: termineter
    ("EE 00 20 00 00 03 30 00 00 5F 7F", Frame(toggle=True, data=h("30 00 00"))),
    ("EE 00 00 00 00 03 30 00 00 DC 1C", Frame(data=h("30 00 00"))),
    # Full read ST1: termineter
    ("EE 00 00 00 00 03 30 00 01 55 0D", Frame(data=h("30 00 01"))),
    # Partial read ST23 offset 0, 8 bytes: S13
    (
        "EE 00 20 00 00 08 3F 00 17 00 00 00 00 08 03 F2",
        Frame(toggle=True, data=h("3F 00 17 00 00 00 00 08")),
    ),
    # Read response ok, count 8, data, checksum FC: S13 real meter
    (
        "EE 00 20 00 00 0C 00 00 08 FB 13 04 02 4D 89 1A 00 FC 92 F2",
        Frame(toggle=True, data=h("00 00 08 FB 13 04 02 4D 89 1A 00 FC")),
    ),
    # Full write ST7 = run SP7, seq 03: termineter
    (
        "EE 00 00 00 00 09 40 00 07 00 03 07 00 03 F6 45 AA",
        Frame(data=h("40 00 07 00 03 07 00 03 F6")),
    ),
    # Write ST7 = SP9 demand reset, seq 81, param 01: termineter
    (
        "EE 00 00 00 00 0A 40 00 07 00 04 09 00 81 01 75 DF CA",
        Frame(data=h("40 00 07 00 04 09 00 81 01 75")),
    ),
    # Logoff: S13
    ("EE 00 20 00 00 01 52 17 20", Frame(toggle=True, data=h("52"))),
    # Terminate, toggle 0 (S13) and toggle 1 (termineter)
    ("EE 00 00 00 00 01 21 9A 01", Frame(data=h("21"))),
    ("EE 00 20 00 00 01 21 0B 61", Frame(toggle=True, data=h("21"))),
    # Bare ok response, toggle 0 and 1: S13 real meter
    ("EE 00 00 00 00 01 00 11 31", Frame(data=h("00"))),
    ("EE 00 20 00 00 01 00 80 51", Frame(toggle=True, data=h("00"))),
]

IDS = [f"{i:02d}-{text[:20]}" for i, (text, _) in enumerate(VECTORS)]
#: Start of the next frame, left in the buffer after the vector (h11 tr() style).
TRAILER = h("EE 00 20")


def drain(buffer: FrameBuffer) -> list[FrameItem]:
    items: list[FrameItem] = []
    while (item := buffer.next_item()) is not NEED_MORE:
        items.append(item)
    return items


def test_crc_check_value() -> None:
    # CRC-16/X-25 catalogue check value (protocol-facts.md 1.3).
    assert crc16(b"123456789") == CHECK_VALUE == 0x906E
    assert crc16_reference(b"123456789") == 0x906E


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fast_crc_matches_table_loop(data: bytes) -> None:
    assert crc16(data) == crc16_reference(data)
    assert crc16(bytearray(data)) == crc16_reference(data)


@pytest.mark.parametrize(("text", "frame"), VECTORS, ids=IDS)
def test_vector_encode(text: str, frame: Frame) -> None:
    assert encode_frame(frame) == h(text)


@pytest.mark.parametrize(("text", "frame"), VECTORS, ids=IDS)
def test_vector_decode_whole(text: str, frame: Frame) -> None:
    assert decode_frame(h(text)) == frame
    buffer = FrameBuffer(packet_size=64)
    buffer.receive_data(h(text))
    assert drain(buffer) == [frame]
    assert not buffer.in_frame


@pytest.mark.parametrize(("text", "frame"), VECTORS, ids=IDS)
def test_vector_decode_byte_by_byte(text: str, frame: Frame) -> None:
    buffer = FrameBuffer()
    raw = h(text)
    for i, byte in enumerate(raw):
        buffer.receive_data(bytes((byte,)))
        item = buffer.next_item()
        if i < len(raw) - 1:
            assert item is NEED_MORE
            assert buffer.in_frame
        else:
            assert item == frame
    assert buffer.next_item() is NEED_MORE


@pytest.mark.parametrize(("text", "frame"), VECTORS, ids=IDS)
def test_vector_decode_with_trailing_bytes(text: str, frame: Frame) -> None:
    buffer = FrameBuffer()
    buffer.receive_data(h(text) + TRAILER)
    assert buffer.next_item() == frame
    assert buffer.next_item() is NEED_MORE
    assert buffer.in_frame  # the trailer waits for the rest of its frame
    assert buffer.clear() == TRAILER


def test_multi_packet_ctrl_bits() -> None:
    # CTRL C0 on the first packet, 80 on the rest; SEQ_NBR counts packets to follow (facts 1.1-1.2).
    first = Frame(multi_packet=True, first_packet=True, seq_nbr=2, data=b"ab")
    raw = encode_frame(first)
    assert raw[:6] == h("EE 00 C0 02 00 02")
    rest = Frame(multi_packet=True, toggle=True, seq_nbr=1, data=b"c")
    assert encode_frame(rest)[:6] == h("EE 00 A0 01 00 01")
    assert decode_frame(raw) == first


def test_identity_and_data_format_round_trip() -> None:
    # S9 sends identity 05; receivers accept it (facts 1.1). DATA_FORMAT is CTRL bits 1-0.
    frame = Frame(identity=5, data_format=3, data=b"\x20")
    raw = encode_frame(frame)
    assert raw[1] == 5 and raw[2] == 0x03
    assert decode_frame(raw) == frame


def test_reserved_ctrl_bits_ignored_on_receive() -> None:
    body = h("EE 00 1C 00 00 01 20")  # reserved bits 4-2 set
    raw = body + crc16(body).to_bytes(2, "little")
    assert decode_frame(raw) == Frame(data=b"\x20")


def test_garbage_before_start_byte_is_skipped_and_counted() -> None:
    buffer = FrameBuffer()
    frame_raw = h(VECTORS[0][0])
    buffer.receive_data(h("55 55 00 FF 13") + frame_raw)
    assert drain(buffer) == [VECTORS[0][1]]
    assert buffer.skipped_bytes == 5


def test_garbage_only_leaves_buffer_empty() -> None:
    buffer = FrameBuffer()
    buffer.receive_data(b"\x55" * 1000)
    assert buffer.next_item() is NEED_MORE
    assert not buffer.in_frame
    assert buffer.skipped_bytes == 1000


def test_ack_glued_to_frame() -> None:
    # Real meters send ACK and the response back to back: 06 EE ... (facts 1.4, S6 doc, S13).
    buffer = FrameBuffer()
    buffer.receive_data(h("06") + h(VECTORS[-1][0]) + h("15 06"))
    assert drain(buffer) == [Control.ACK, VECTORS[-1][1], Control.NAK, Control.ACK]


def test_control_byte_values_inside_a_frame_are_data() -> None:
    frame = Frame(data=h("06 15 EE 06"))
    buffer = FrameBuffer()
    for byte in encode_frame(frame):
        buffer.receive_data(bytes((byte,)))
    assert drain(buffer) == [frame]


def test_oversized_length_is_bad_and_hunt_resumes_after_the_ee() -> None:
    buffer = FrameBuffer(packet_size=64)
    good = h(VECTORS[0][0])
    header = h("EE 00 00 00 00 39")  # LENGTH 57 > 64 - 8
    buffer.receive_data(header + good)
    items = drain(buffer)
    assert items[0] == BadFrame(reason=RejectReason.LENGTH_EXCEEDED, raw=header)
    assert items[-1] == VECTORS[0][1]
    assert buffer.skipped_bytes == 5  # the rest of the bad header


def test_length_at_the_limit_is_accepted() -> None:
    frame = Frame(data=bytes(56))
    buffer = FrameBuffer(packet_size=64)
    buffer.receive_data(encode_frame(frame))
    assert buffer.next_item() == frame


def test_bad_crc_is_a_bad_frame_and_the_next_frame_parses() -> None:
    raw = bytearray(h(VECTORS[2][0]))
    raw[-1] ^= 0x01
    buffer = FrameBuffer()
    buffer.receive_data(bytes(raw) + h(VECTORS[0][0]))
    assert drain(buffer) == [
        BadFrame(reason=RejectReason.CRC_ERROR, raw=bytes(raw)),
        VECTORS[0][1],
    ]


def test_packet_size_limits() -> None:
    with pytest.raises(LocalProtocolError):
        FrameBuffer(packet_size=8)
    with pytest.raises(LocalProtocolError):
        FrameBuffer(packet_size=8193)
    assert FrameBuffer(packet_size=8192).packet_size == 8192


@pytest.mark.parametrize(
    "frame",
    [
        Frame(data_format=4),
        Frame(seq_nbr=256),
        Frame(seq_nbr=-1),
        Frame(identity=256),
        Frame(data=bytes(8185)),
    ],
)
def test_encode_rejects_impossible_frames(frame: Frame) -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame(frame)


@pytest.mark.parametrize(
    "raw",
    [
        h(""),
        h("EE 00 00 00 00 01 20 13"),  # short
        h("EF 00 00 00 00 01 20 13 10"),  # no STP
        h("EE 00 00 00 00 01 20 13 11"),  # bad CRC
        h("EE 00 00 00 00 01 20 13 10 00"),  # trailing byte
    ],
)
def test_decode_frame_raises_remote_error_with_nak(raw: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame(raw)
    assert info.value.nak


def test_decode_frame_enforces_packet_size() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_frame(encode_frame(Frame(data=bytes(57))), packet_size=64)


frames = st.builds(
    lambda multi, first, toggle, fmt, seq, ident, data: Frame(
        identity=ident,
        multi_packet=multi,
        first_packet=multi and first,
        toggle=toggle,
        data_format=fmt,
        seq_nbr=seq,
        data=data,
    ),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.integers(0, 3),
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=120),
)


@settings(max_examples=150, deadline=None)
@given(frames, st.data())
def test_round_trip_any_frame_any_chunking(frame: Frame, data: st.DataObject) -> None:
    raw = encode_frame(frame)
    assert decode_frame(raw) == frame
    buffer = FrameBuffer(packet_size=128)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=5)))
    items: list[FrameItem] = []
    for start, end in zip([0, *cuts], [*cuts, len(raw)], strict=True):
        buffer.receive_data(raw[start:end])
        items += drain(buffer)
    assert items == [frame]


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    raw = bytearray(encode_frame(draw(frames)))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(len(raw) - 1, 0)))
        if kind == "flip" and raw:
            raw[pos] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete" and raw:
            del raw[pos]
        elif kind == "truncate":
            del raw[pos:]
    return bytes(raw)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(mutated_frames(), st.binary(max_size=40)), max_size=6), st.data())
def test_fuzz_frame_buffer_never_raises(chunks: list[bytes], data: st.DataObject) -> None:
    packet_size = data.draw(st.integers(9, 200))
    buffer = FrameBuffer(packet_size=packet_size)
    stream = b"".join(chunks)
    fed = 0
    while fed < len(stream):
        step = data.draw(st.integers(1, 64))
        buffer.receive_data(stream[fed : fed + step])
        fed += step
        for item in drain(buffer):
            if isinstance(item, Frame):
                assert len(item.data) <= packet_size - 8
                assert decode_frame(encode_frame(item)) == item
            elif isinstance(item, BadFrame):
                assert item.reason in (RejectReason.CRC_ERROR, RejectReason.LENGTH_EXCEEDED)
                assert item.raw[0] == 0xEE
            else:
                assert item in (Control.ACK, Control.NAK)
    # Whatever is left is the start of one frame, never more than a packet.
    leftover = buffer.clear()
    assert not leftover or (leftover[0] == 0xEE and len(leftover) < packet_size)


@settings(max_examples=300, deadline=None)
@given(mutated_frames())
def test_fuzz_decode_frame_raises_only_remote_error(raw: bytes) -> None:
    try:
        frame = decode_frame(raw, packet_size=128)
    except RemoteProtocolError as exc:
        assert exc.nak
    else:
        again = encode_frame(frame)
        if raw[2] & 0x1C:  # reserved CTRL bits are not kept, so the CRC differs too
            assert again[:2] + again[3:-2] == raw[:2] + raw[3:-2]
        else:
            assert again == raw
