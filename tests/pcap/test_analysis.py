"""The capture analyser on synthetic captures written with scapy's PcapWriter: split, reordered,
retransmitted and lost segments, several APDUs per segment, UDP and IPv6, request/response
matching, summaries, malformed input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

pytest.importorskip("scapy")

from scapy.layers.inet import IP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402
from scapy.utils import PcapWriter  # noqa: E402

from amidcc.codecs import psem  # noqa: E402
from amidcc.codecs.c1222 import ApTitle, build_message, encode_apdu, reply_to  # noqa: E402
from amidcc.codecs.codes import ResponseCode  # noqa: E402
from amidcc.pcap.analysis import CaptureAnalyzer, analyze_file  # noqa: E402
from amidcc.pcap.records import MessageKind  # noqa: E402

from .conftest import HEAD_END, exchange  # noqa: E402

A, B = "192.0.2.10", "192.0.2.20"
# Explicit MACs: without them scapy resolves addresses (ARP, routes) for every frame it builds.
ETHER = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
ISN_A, ISN_B = 0xFFFFFF00, 5000  # the client's sequence numbers wrap during the capture


def tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    seq: int,
    flags: str,
    payload: bytes = b"",
    ack: int = 0,
):
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    pkt = (
        ETHER
        / ip
        / TCP(sport=sport, dport=dport, seq=seq & 0xFFFFFFFF, ack=ack & 0xFFFFFFFF, flags=flags)
    )
    return pkt / Raw(payload) if payload else pkt


def write(path: Path, packets: list) -> None:
    writer = PcapWriter(str(path), linktype=1, sync=True)
    for n, pkt in enumerate(packets):
        pkt.time = 1700000000 + n * 0.001
        writer.write(pkt)
    writer.close()


def segments(stream: bytes, rng: random.Random, max_size: int = 40) -> list[tuple[int, bytes]]:
    """Split ``stream`` at random points (so APDUs span segments and segments hold several)."""
    out, pos = [], 0
    while pos < len(stream):
        size = rng.randint(1, max_size)
        out.append((pos, stream[pos : pos + size]))
        pos += size
    return out


def conversation(
    rng: random.Random, count: int, *, lose: int | None = None, src: str = A, dst: str = B
) -> tuple[list, list[tuple[bytes, bytes]]]:
    """One TCP connection carrying ``count`` exchanges; client stream split, shuffled, duplicated."""
    pairs = [exchange(i + 1, table=i % 7, data=bytes([i]) * (i % 50)) for i in range(count)]
    packets = [
        tcp(src, dst, 40000, 1153, ISN_A, "S"),
        tcp(dst, src, 1153, 40000, ISN_B, "SA", ack=ISN_A + 1),
    ]
    requests = b"".join(p[0] for p in pairs)
    responses = b"".join(p[1] for p in pairs)
    client = segments(requests, rng)
    if lose is not None:
        del client[lose]
    window = []
    for offset, chunk in client:  # reorder within a sliding window of 4 segments
        window.append(tcp(src, dst, 40000, 1153, ISN_A + 1 + offset, "PA", chunk))
        if len(window) == 4:
            rng.shuffle(window)
            packets += window
            window = []
    packets += window
    packets += [packets[3], packets[5]]  # retransmissions, late
    acked = ISN_A + 1 + len(requests)  # the meter got every request, even one the capture lost
    for offset, chunk in segments(responses, rng):
        packets.append(tcp(dst, src, 1153, 40000, ISN_B + 1 + offset, "PA", chunk, ack=acked))
    return packets, pairs


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_split_reordered_and_retransmitted_segments_still_decode(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    packets, pairs = conversation(rng, 12)
    path = tmp_path / "reordered.pcap"
    write(path, packets)
    analyzer = CaptureAnalyzer()
    records = list(analyze_file(path, analyzer))
    requests = [r for r in records if r.kind is MessageKind.REQUEST]
    responses = [r for r in records if r.kind is MessageKind.RESPONSE]
    assert [r.apdu for r in requests] == [p[0] for p in pairs]  # every request, in stream order
    assert [r.apdu for r in responses] == [p[1] for p in pairs]
    assert all(r.error is None and r.message is not None for r in records)
    for i, (response, request) in enumerate(zip(responses, requests, strict=True)):
        assert response.answers == request.index and response.matched_by == "invocation_id"
        assert request.services[0].decoded == psem.FullRead(table_id=i % 7)
        assert response.services[0].decoded == psem.ReadResponse(data=bytes([i]) * (i % 50))
    summary = analyzer.summary()
    assert summary.malformed == {} and summary.matched == 12 and summary.unanswered == 0
    assert summary.tcp["retransmitted_bytes"] > 0 and summary.tcp["gaps"] == 0
    assert summary.services[0].name == "Full Read" and summary.services[0].requests == 12
    assert records[0].orig_h == A and records[0].orig_p == 40000 and records[0].resp_p == 1153


def test_a_lost_segment_costs_only_the_messages_it_carried(tmp_path: Path) -> None:
    rng = random.Random(11)
    packets, pairs = conversation(rng, 10, lose=5)
    path = tmp_path / "lost.pcap"
    write(path, packets)
    analyzer = CaptureAnalyzer()
    records = list(analyze_file(path, analyzer))
    got = {r.apdu for r in records if r.kind is MessageKind.REQUEST}
    lost = [p[0] for p in pairs if p[0] not in got]
    assert 1 <= len(lost) <= 3  # the APDUs the missing segment touched
    assert all(r.error is None for r in records)
    summary = analyzer.summary()
    assert summary.malformed.get("tcp_gap") == 1
    assert summary.unmatched_responses == len(lost) and summary.matched == 10 - len(lost)


def test_udp_ipv6_and_a_response_on_another_connection(tmp_path: Path) -> None:
    request, response = exchange(9)
    v6a, v6b = "2001:db8::1", "2001:db8::2"
    packets = [
        ETHER / IP(src=A, dst=B) / UDP(sport=1153, dport=1153) / Raw(request),
        ETHER / IP(src=B, dst=A) / UDP(sport=1153, dport=1153) / Raw(response),
        tcp(v6a, v6b, 50000, 1153, 1, "PA", exchange(10)[0]),
        # the meter answers on a connection of its own
        tcp(v6b, v6a, 50001, 1153, 7, "PA", exchange(10)[1]),
        ETHER / IP(src=A, dst=B) / TCP(sport=1, dport=80) / Raw(b"GET /"),  # not C12.22
    ]
    path = tmp_path / "mixed.pcap"
    write(path, packets)
    analyzer = CaptureAnalyzer()
    records = list(analyze_file(path, analyzer))
    assert [r.proto for r in records] == ["udp", "udp", "tcp", "tcp"]
    assert records[1].answers == 0 and records[1].matched_by == "invocation_id"
    assert records[3].answers == 2 and records[3].matched_by == "ap_titles"
    assert records[2].orig_h == v6a and records[3].conversation != records[2].conversation
    summary = analyzer.summary()
    assert summary.other_frames == 1 and summary.conversations == 3 and summary.matched == 2


def test_malformed_input_is_counted_not_fatal(tmp_path: Path) -> None:
    request, response = exchange(1)
    bad_epsem = bytearray(request)
    bad_epsem[-4] = 0x00  # EPSEM control byte without bit 7, inside a well-framed APDU
    nok = encode_apdu(
        reply_to(_decode(request), [psem.encode_response(psem.NokResponse(code=ResponseCode.ISC))])
    )
    stream = b"\x99\x99" + request + bytes(bad_epsem[:-3]) + b"\x01\x30\x00" + response + nok
    packets = [tcp(A, B, 40000, 1153, 1, "PA", stream)]
    path = tmp_path / "bad.pcap"
    write(path, packets)
    analyzer = CaptureAnalyzer()
    records = list(analyze_file(path, analyzer))
    summary = analyzer.summary()
    assert summary.malformed["framing"] == 1  # the two garbage bytes
    assert [r.kind for r in records].count(MessageKind.UNKNOWN) >= 1
    assert summary.response_codes == {"ok": 1, "isc": 1}
    assert summary.unmatched_responses == 1  # the nok answers request 1, already answered


def test_unanswered_requests_and_response_control(tmp_path: Path) -> None:
    never = encode_apdu(build_message(
        called=ApTitle.parse(".9"), calling=HEAD_END, invocation_id=77,
        services=[psem.encode_request(psem.Wait(seconds=5))],
        response_control=__import__("amidcc.codecs.c1222", fromlist=["ResponseControl"]).ResponseControl.NEVER,
    ))  # fmt: skip
    packets = [tcp(A, B, 40000, 1153, 1, "PA", exchange(1)[0] + never)]
    path = tmp_path / "unanswered.pcap"
    write(path, packets)
    analyzer = CaptureAnalyzer()
    list(analyze_file(path, analyzer))
    summary = analyzer.summary()
    assert summary.unanswered == 1  # the Wait asked for no response
    by_name = {s.name: s for s in summary.services}
    assert by_name["Full Read"].unanswered == 1 and by_name["Wait"].unanswered == 0
    meters = {m.ap_title: m for m in summary.meters}
    assert meters[".123.8437"].requests_received == 1 and meters[".123.4"].sent == 2


def _decode(apdu: bytes):
    from amidcc.codecs.c1222 import decode_apdu

    return decode_apdu(apdu)


# --- garbage in: counted, never raised -----------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from amidcc.codecs.c1222 import SecurityMode  # noqa: E402
from amidcc.pcap.icsnpp import json_record  # noqa: E402
from amidcc.pcap.packets import Segment  # noqa: E402

from .conftest import KEY, KEY_ID  # noqa: E402

_STREAM = b"".join(
    b"".join(exchange(n + 1, mode))
    for n, mode in enumerate(
        (SecurityMode.CLEARTEXT, SecurityMode.AUTHENTICATED, SecurityMode.CIPHERTEXT)
    )
)


@settings(max_examples=60, deadline=None)
@given(
    flips=st.lists(st.tuples(st.integers(0, len(_STREAM) - 1), st.integers(0, 255)), max_size=8),
    cuts=st.lists(st.integers(1, len(_STREAM) - 1), max_size=10),
    keys=st.booleans(),
)
def test_mutated_streams_never_raise(
    flips: list[tuple[int, int]], cuts: list[int], keys: bool
) -> None:
    stream = bytearray(_STREAM)
    for pos, value in flips:
        stream[pos] = value
    analyzer = CaptureAnalyzer(keys={KEY_ID: KEY} if keys else None)
    bounds = sorted({0, len(stream), *cuts})
    records = []
    for i in range(len(bounds) - 1):
        chunk = bytes(stream[bounds[i] : bounds[i + 1]])
        segment = Segment(proto="tcp", src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02", sport=40000,
                          dport=1153, payload=chunk, seq=1000 + bounds[i], flags=0x18)  # fmt: skip
        records += analyzer.feed_segment(float(i), segment)
        datagram = Segment(
            proto="udp",
            src=b"\x0a\x00\x00\x01",
            dst=b"\x0a\x00\x00\x02",
            sport=1153,
            dport=1153,
            payload=chunk,
        )
        records += analyzer.feed_segment(float(i), datagram)
    records += analyzer.finish()
    for record in records:
        json.dumps(json_record(record))
    summary = analyzer.summary()
    assert summary.messages == len(records)
    if not flips:  # mode 2 stays unread without the key, so its pair cannot be matched
        assert summary.malformed.get("apdu", 0) == 0 and summary.matched == (3 if keys else 2)
