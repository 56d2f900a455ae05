"""Raw frames out of a pcap or pcapng file (no dissection).

A classic pcap file (libpcap's savefile: a 24-byte header, then a 16-byte header per record) is
read here directly: it is the gateway's capture format and the usual one for bulk captures, and
reading it takes a fifth of the time scapy's reader takes. Anything else (pcapng, gzip) goes
through ``scapy.utils.RawPcapReader``, which reads both formats (it hands pcapng files to
``RawPcapNgReader``) and returns each record's bytes with its metadata. Two details matter:

* its iterator cuts every frame to 1500 bytes (``MTU``), which would break loopback captures with
  64 KiB segments, so frames are read with ``_read_packet(size=...)`` and a large bound;
* pcap timestamps are (seconds, micro- or nanoseconds) and pcapng ones a 64-bit count in the
  interface's resolution; :class:`RawFrame` carries float seconds either way.

Both readers return the same frames: a record longer than :data:`MAX_FRAME` is cut to it (the
rest skipped), a record cut short by the end of the file ends the capture with what it holds.
scapy is imported here, lazily, by module (never ``scapy.all``), and only for those other formats.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MAX_FRAME", "RawFrame", "read_frame_tuples", "read_frames"]

#: Largest frame read whole (pcap's usual snaplen bound).
MAX_FRAME = 262144

# Classic pcap magic numbers as they appear in the file -> (byte order, timestamp divisor).
_PCAP_MAGICS = {
    b"\xa1\xb2\xc3\xd4": (">", 1e6),
    b"\xd4\xc3\xb2\xa1": ("<", 1e6),
    b"\xa1\xb2\x3c\x4d": (">", 1e9),  # nanosecond timestamps
    b"\x4d\x3c\xb2\xa1": ("<", 1e9),
}


@dataclass(frozen=True, kw_only=True, slots=True)
class RawFrame:
    """One captured frame."""

    ts: float
    """Capture time, seconds since the epoch."""
    linktype: int
    """pcap link type of the frame (1 = Ethernet)."""
    data: bytes
    """The captured bytes."""


def _timestamp(reader: Any, meta: Any) -> float:
    if hasattr(meta, "tsresol"):  # pcapng
        ticks: int = (meta.tshigh << 32) | meta.tslow
        return float(ticks / meta.tsresol)
    divisor = 1e9 if getattr(reader, "nano", False) else 1e6
    return float(meta.sec + meta.usec / divisor)


def read_frames(path: str | Path) -> Iterator[RawFrame]:
    """Every frame of the capture at ``path``, in file order.

    Raises OSError for an unreadable file and ValueError for one that is not a capture.
    """
    for ts, linktype, data in read_frame_tuples(path):
        yield RawFrame(ts=ts, linktype=linktype, data=data)


def read_frame_tuples(path: str | Path) -> Iterator[tuple[float, int, bytes]]:
    """:func:`read_frames` as ``(ts, linktype, data)`` tuples (the analyser's hot path)."""
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) == 24 and head[:4] in _PCAP_MAGICS:  # classic pcap, read here
            endian, divisor = _PCAP_MAGICS[head[:4]]
            (linktype,) = struct.unpack(endian + "I", head[20:24])
            record = struct.Struct(endian + "IIII").unpack
            read = f.read
            while True:
                header = read(16)
                if len(header) < 16:
                    return
                sec, usec, caplen, _ = record(header)
                data = read(min(caplen, MAX_FRAME))
                if caplen > MAX_FRAME:
                    f.seek(caplen - MAX_FRAME, 1)
                yield float(sec + usec / divisor), linktype, data
    yield from _read_with_scapy(path)


def _read_with_scapy(path: str | Path) -> Iterator[tuple[float, int, bytes]]:
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapNgReader, RawPcapReader

    try:
        reader = RawPcapReader(str(path))
    except Scapy_Exception as exc:
        raise ValueError(f"{path}: {exc}") from None
    try:
        default_linktype = getattr(reader, "linktype", 1)
        pcapng = isinstance(reader, RawPcapNgReader)  # per-interface link types and resolutions
        divisor = 1e9 if getattr(reader, "nano", False) else 1e6
        read_packet = reader._read_packet
        while True:
            try:
                data, meta = read_packet(size=MAX_FRAME)
            except EOFError:
                return
            if data is None:  # pcapng blocks that carry no packet
                continue
            if pcapng:
                yield _timestamp(reader, meta), getattr(meta, "linktype", default_linktype), data
            else:
                yield float(meta.sec + meta.usec / divisor), default_linktype, data
    finally:
        reader.close()
