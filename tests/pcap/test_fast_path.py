"""The analyser's paved road gives what the general road gives.

- Records and service records built without ``__init__`` (``records.build_record``) are the objects
  ``__init__`` builds, field for field and in order.
- A TCP stream cut so that every segment is exactly one APDU (the road without the framer and the
  reassembler's events) gives the same records and summary as the same stream cut anywhere else
  (framer and events), garbage between APDUs included.
- ``packets.frame_fields`` (one unpack for Ethernet/IPv4/TCP) equals ``parse_frame``, truncated and
  odd frames included.

Vectors: C12.22 exchanges built with amidcc's codec (conftest.exchange, the example-8 key, S3).
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.codecs import psem
from amidcc.codecs.c1222 import SecurityMode, build_message, encode_apdu, split_apdu
from amidcc.pcap.analysis import CaptureAnalyzer, analyze_file
from amidcc.pcap.packets import Segment, TruncatedFrame, frame_fields, parse_frame
from amidcc.pcap.records import MessageRecord
from amidcc.pcap.writer import CaptureWriter, Endpoint, tcp_frame

from .conftest import HEAD_END, KEY, KEY_ID, METER, exchange

SETTINGS = settings(max_examples=40, deadline=None)


def _apdus() -> list[bytes]:
    """Exchanges in modes 0/1/2, a nok, an undecodable service, a write, a segmented request."""
    out: list[bytes] = []
    for n, mode in enumerate(SecurityMode):
        out += exchange(n + 1, mode, table=n, data=bytes(range(n * 40)))
    out += [
        encode_apdu(build_message(
            called=METER, calling=HEAD_END, invocation_id=9,
            services=[psem.encode_request(psem.FullWrite(table_id=7, data=b"abc")), b"\x31\x00"],
        )),  # fmt: skip
        bytes.fromhex("600ca2048002010ca803020109be00"),  # an empty BE: malformed APDU
    ]
    big = build_message(
        called=METER, calling=HEAD_END, invocation_id=10,
        services=[psem.encode_request(psem.FullWrite(table_id=8, data=bytes(300)))],
    )  # fmt: skip
    out += split_apdu(big, 120)
    return out


APDUS = _apdus()


def same_as_init(obj: Any) -> None:
    names = [f.name for f in dataclasses.fields(obj)]
    assert list(vars(obj)) == names
    rebuilt = type(obj)(**vars(obj))
    assert rebuilt == obj and repr(rebuilt) == repr(obj)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, names[0], None)


def test_records_are_what_init_builds(tmp_path: Path) -> None:
    path = tmp_path / "zoo.pcap"
    client, meter = Endpoint(host="10.0.0.1", port=40000), Endpoint(host="10.0.0.2", port=1153)
    with path.open("wb") as f:
        writer = CaptureWriter(f)
        for n, apdu in enumerate(APDUS):
            src, dst = (client, meter) if n % 2 == 0 else (meter, client)
            writer.tcp_payload(src, dst, apdu, 1700000000.0 + n)
    records = list(analyze_file(path, CaptureAnalyzer(keys={KEY_ID: KEY})))
    kinds = {r.kind.value for r in records}
    assert {"request", "response", "segment", "unknown"} <= kinds
    assert any(s.error for r in records for s in r.services)  # the undecodable 31 00
    assert any(r.answers is not None for r in records)
    for record in records:
        same_as_init(record)
        for service in record.services:
            same_as_init(service)


def _run(stream: bytes, cuts: list[int], keys: bool) -> tuple[list[str], dict[str, Any]]:
    analyzer = CaptureAnalyzer(keys={KEY_ID: KEY} if keys else None)
    bounds = sorted({0, len(stream), *cuts})
    records: list[MessageRecord] = []
    for i in range(len(bounds) - 1):
        chunk = stream[bounds[i] : bounds[i + 1]]
        segment = Segment(proto="tcp", src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02",
                          sport=40000, dport=1153, payload=chunk, seq=5000 + bounds[i],
                          flags=0x18)  # fmt: skip
        records += analyzer.feed_segment(0.0, segment)
    records += analyzer.finish()
    summary = dataclasses.asdict(analyzer.summary())
    for counter in ("frames", "c1222_frames", "first_ts", "last_ts"):
        summary.pop(counter)
    return [repr(r) for r in records], summary


@SETTINGS
@given(
    order=st.permutations(range(len(APDUS))),
    garbage=st.dictionaries(st.integers(0, len(APDUS)), st.binary(min_size=1, max_size=5)),
    cuts=st.lists(st.integers(1, 2000), max_size=12),
    keys=st.booleans(),
)
def test_whole_apdu_segments_read_as_any_other_cut(
    order: list[int], garbage: dict[int, bytes], cuts: list[int], keys: bool
) -> None:
    pieces: list[bytes] = []
    for n, index in enumerate(order):
        pieces += [garbage.get(n, b""), APDUS[index]]
    pieces.append(garbage.get(len(order), b""))
    stream = b"".join(pieces)
    whole: list[int] = []
    pos = 0
    for piece in pieces:
        pos += len(piece)
        whole.append(pos)
    paved = _run(stream, whole, keys)
    general = _run(stream, [c for c in cuts if c < len(stream)], keys)
    assert paved == general
    if not any(0x60 in g for g in garbage.values()):  # a 60 in garbage starts a (bad) APDU
        assert len(paved[0]) >= len(APDUS)


def _ethernet(ip: bytes) -> bytes:
    return bytes(6) + bytes(5) + b"\x01" + b"\x08\x00" + ip


@SETTINGS
@given(
    payload=st.binary(max_size=40),
    cut=st.integers(0, 120),
    ihl=st.sampled_from([0x45, 0x46, 0x55, 0x44]),
    total_delta=st.integers(-70, 30),
    fragment=st.sampled_from([0, 0x4000, 0x2000, 0x0001]),
    offset=st.sampled_from([0x50, 0x60, 0x40, 0xF0]),
    proto=st.sampled_from([6, 17, 1]),
)
def test_frame_fields_is_parse_frame(
    payload: bytes, cut: int, ihl: int, total_delta: int, fragment: int, offset: int, proto: int
) -> None:
    frame = tcp_frame(
        Endpoint(host="192.0.2.1", port=40000), Endpoint(host="192.0.2.2", port=1153),
        seq=7, ack=9, flags=0x18, payload=payload, ident=1,
    )  # fmt: skip
    ip = bytearray(frame[14:])
    options = bytes(4) if ihl & 0x0F == 6 else b""
    ip[0] = ihl
    struct.pack_into("!H", ip, 2, max(0, len(ip) + len(options) + total_delta))
    struct.pack_into("!H", ip, 6, fragment)
    ip[9] = proto
    ip[32] = offset
    frames = [_ethernet(bytes(ip[:20]) + options + bytes(ip[20:]))]
    frames.append(frames[0][: len(frames[0]) - cut] if cut < len(frames[0]) else b"")
    for raw in frames:
        try:
            expected: Any = parse_frame(1, raw)
        except TruncatedFrame:
            expected = TruncatedFrame
        try:
            got: Any = frame_fields(1, raw)
        except TruncatedFrame:
            got = TruncatedFrame
        if isinstance(expected, Segment):
            expected = tuple(getattr(expected, f.name) for f in dataclasses.fields(Segment))
            assert got == expected
        else:
            assert got is expected
