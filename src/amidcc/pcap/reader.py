"""Raw frames out of a pcap or pcapng file, through scapy's raw readers (no dissection).

``scapy.utils.RawPcapReader`` reads both formats (it hands pcapng files to ``RawPcapNgReader``)
and gzip-compressed files, and returns each record's bytes with its metadata. Two details matter:

* its iterator cuts every frame to 1500 bytes (``MTU``), which would break loopback captures with
  64 KiB segments, so frames are read with ``_read_packet(size=...)`` and a large bound;
* pcap timestamps are (seconds, micro- or nanoseconds) and pcapng ones a 64-bit count in the
  interface's resolution; :class:`RawFrame` carries float seconds either way.

scapy is imported here, lazily, by module (never ``scapy.all``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MAX_FRAME", "RawFrame", "read_frame_tuples", "read_frames"]

#: Largest frame read whole (pcap's usual snaplen bound).
MAX_FRAME = 262144


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
