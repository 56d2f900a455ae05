"""amidcc.pcap.writer: the pcap format, checksums and TCP sequence numbers, checked with scapy,
and read back through the analyser."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from amidcc.codecs.c1222 import SecurityMode
from amidcc.pcap.analysis import CaptureAnalyzer, analyze_file
from amidcc.pcap.records import MessageKind, SecurityStatus
from amidcc.pcap.writer import CaptureWriter, Endpoint, internet_checksum, synthetic_address

from .conftest import KEY, KEY_ID, exchange

CLIENT = Endpoint(host="10.0.0.1", port=40001)
METER = Endpoint(host="10.0.0.2", port=1153)


def test_internet_checksum_rfc1071_example() -> None:
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2; the checksum is its complement.
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2
    assert internet_checksum(b"\x01") == 0xFFFF - 0x0100  # odd length: padded with 00


def test_file_and_record_headers(tmp_path: Path) -> None:
    out = io.BytesIO()
    writer = CaptureWriter(out)
    writer.udp_payload(CLIENT, METER, b"\x60\x00", 1700000000.25)
    data = out.getvalue()
    magic, major, minor, _, _, snaplen, linktype = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, 1)
    sec, usec, caplen, wirelen = struct.unpack_from("<IIII", data, 24)
    assert (sec, usec) == (1700000000, 250000) and caplen == wirelen == len(data) - 40
    assert writer.bytes_written == len(data) and writer.frames_written == 1


def test_scapy_reads_valid_checksums_and_sequence_numbers(tmp_path: Path) -> None:
    pytest.importorskip("scapy")
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.utils import rdpcap

    request, response = exchange(1)
    path = tmp_path / "w.pcap"
    with path.open("wb") as f:
        writer = CaptureWriter(f, mss=16)
        writer.tcp_payload(CLIENT, METER, request, 1.0)
        writer.tcp_payload(METER, CLIENT, response, 1.1)
        writer.tcp_close(CLIENT, METER, 2.0)
        writer.udp_payload(CLIENT, METER, request, 3.0)
        v6a, v6b = Endpoint(host="fd00::1", port=40002), Endpoint(host="fd00::2")
        writer.tcp_payload(v6a, v6b, request, 4.0)
    packets = rdpcap(str(path))
    for pkt in packets:
        layer = pkt[IP] if IP in pkt else pkt[IPv6]
        rebuilt = layer.__class__(bytes(layer))
        for proto in (IP, TCP, UDP):
            if proto in pkt and proto is not IPv6:
                copy = rebuilt[proto].copy()
                del copy.chksum
                assert copy.__class__(bytes(copy)).chksum == rebuilt[proto].chksum, proto.__name__
    tcp = [p for p in packets if TCP in p and IP in p]
    flags = [str(p[TCP].flags) for p in tcp[:3]]
    assert flags == ["S", "SA", "A"]
    # Each direction's sequence numbers advance by exactly the bytes sent.
    for side in (CLIENT.port, METER.port):
        data = [p[TCP] for p in tcp if p[TCP].sport == side and len(p[TCP].payload)]
        for a, b in zip(data, data[1:], strict=False):
            assert b.seq == (a.seq + len(a.payload)) % (1 << 32)
    client_data = b"".join(bytes(p[TCP].payload) for p in tcp if p[TCP].sport == CLIENT.port)
    assert client_data == request
    assert all(len(p[TCP].payload) <= 16 for p in tcp)


def test_capture_reads_back_through_the_analyser(tmp_path: Path) -> None:
    path = tmp_path / "secured.pcap"
    with path.open("wb") as f:
        writer = CaptureWriter(f, mss=50)
        for n, mode in enumerate(
            (SecurityMode.CLEARTEXT, SecurityMode.AUTHENTICATED, SecurityMode.CIPHERTEXT)
        ):
            request, response = exchange(n + 1, mode)
            writer.tcp_payload(CLIENT, METER, request, 10.0 + n)
            writer.tcp_payload(METER, CLIENT, response, 10.5 + n)
    analyzer = CaptureAnalyzer(keys={KEY_ID: KEY})
    records = list(analyze_file(path, analyzer))
    assert [r.kind for r in records] == [MessageKind.REQUEST, MessageKind.RESPONSE] * 3
    assert [r.security for r in records] == [
        SecurityStatus.CLEARTEXT, SecurityStatus.CLEARTEXT, SecurityStatus.VERIFIED,
        SecurityStatus.VERIFIED, SecurityStatus.DECRYPTED, SecurityStatus.DECRYPTED,
    ]  # fmt: skip
    responses = records[1::2]
    assert [r.answers for r in responses] == [0, 2, 4]
    assert all(r.latency == pytest.approx(0.5) for r in responses)
    assert all(
        r.services[0].decoded is not None and r.services[0].decoded.data == b"hello world"
        for r in responses
    )
    summary = analyzer.summary()
    assert summary.matched == 3 and summary.malformed == {} and summary.unanswered == 0
    # Without the key the ciphertext stays unread and mode 1 is unverified, but nothing is malformed.
    plain = CaptureAnalyzer()
    again = list(analyze_file(path, plain))
    assert again[4].security is SecurityStatus.ENCRYPTED and again[4].services == ()
    assert again[2].security is SecurityStatus.UNVERIFIED
    assert plain.summary().malformed == {}


def test_synthetic_addresses_are_stable_and_private() -> None:
    a, b = synthetic_address(".123.8437"), synthetic_address(".123.8437")
    assert a == b and a.startswith("10.") and synthetic_address(".123.8438") != a
    assert synthetic_address("x", ipv6=True).startswith("fd")


def test_the_writer_and_the_analyser_do_not_import_scapy() -> None:
    # The gateway's capture option uses the writer; scapy is an optional extra.
    import subprocess
    import sys

    code = (
        "import sys, amidcc.pcap.writer, amidcc.pcap.analysis, amidcc.pcap.icsnpp; "
        "print(any(m == 'scapy' or m.startswith('scapy.') for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
