"""Reading the shared ICSNPP captures in tests: amidcc's pcap reader (scapy's raw reader underneath)
and the codec's TCP framer, one list of APDUs per capture. Shared by the codec tests."""

from __future__ import annotations

import socket
from pathlib import Path

from amidcc.codecs.c1222 import NEED_MORE, ApduBuffer
from amidcc.pcap.packets import parse_frame
from amidcc.pcap.reader import read_frames

Flow = tuple[str, int, str, int]


def capture_apdus(pcap: Path) -> list[tuple[Flow, bytes]]:
    """``(flow, apdu)`` for every C12.22 APDU on TCP, each direction framed by ApduBuffer."""
    buffers: dict[Flow, ApduBuffer] = {}
    out: list[tuple[Flow, bytes]] = []
    for frame in read_frames(pcap):
        seg = parse_frame(frame.linktype, frame.data)
        if seg is None or seg.proto != "tcp" or not seg.payload:
            continue
        flow = (socket.inet_ntoa(seg.src), seg.sport, socket.inet_ntoa(seg.dst), seg.dport)
        buffer = buffers.setdefault(flow, ApduBuffer())
        buffer.receive_data(seg.payload)
        while (apdu := buffer.next_apdu()) is not NEED_MORE:
            assert isinstance(apdu, bytes)
            out.append((flow, apdu))
    assert all(not b.has_partial and b.discarded_bytes == 0 for b in buffers.values())
    return out
