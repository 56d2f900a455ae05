"""Link, IP and transport headers of captured frames, parsed by hand (no scapy, sans-I/O).

:func:`parse_frame` turns one captured frame into a :class:`Segment` (TCP or UDP, IPv4 or IPv6),
or None for anything else (ARP, ICMP, non-first IP fragments...). A frame cut short inside a
header raises :class:`TruncatedFrame`. Addresses stay packed bytes on the hot path;
:func:`format_address` makes text of them when a report needs it. :func:`frame_fields` returns the
same content as a plain tuple, and reads the usual Ethernet/IPv4/TCP frame with one ``unpack``
(the capture analyser's hot path).

Link types (the pcap ``LINKTYPE_*`` numbers): 0 and 108 (BSD loopback), 1 (Ethernet, with 802.1Q
tags), 12/14/101 (raw IP), 113 (Linux cooked), 228 (IPv4), 229 (IPv6), 276 (Linux cooked v2).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

__all__ = [
    "LINKTYPES",
    "TCP_ACK",
    "TCP_FIN",
    "TCP_RST",
    "TCP_SYN",
    "Segment",
    "SegmentFields",
    "TruncatedFrame",
    "format_address",
    "frame_fields",
    "parse_frame",
]

TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10

_H = struct.Struct("!H")
_IPV4_HEAD = struct.Struct("!BxHxxHxB")
_TCP_HEAD = struct.Struct("!HHIIBB")
_UDP_HEAD = struct.Struct("!HHH")
# Ethernet (ethertype at 12), IPv4 without options (version/IHL, total length, fragment, protocol,
# addresses), TCP (ports, seq, ack, data offset, flags): the usual frame in one unpack.
_ETH_IPV4_TCP = struct.Struct("!12xHBxHxxHxB2x4s4sHHIIBB")
_VLAN_TYPES = frozenset((0x8100, 0x88A8, 0x9100))
_IPV6_EXTENSIONS = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options


class TruncatedFrame(ValueError):
    """A frame that ends inside a link, IP or transport header."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Segment:
    """The transport-level content of one frame."""

    proto: str
    """``"tcp"`` or ``"udp"``."""
    src: bytes
    """Source address, packed (4 bytes IPv4, 16 bytes IPv6)."""
    dst: bytes
    """Destination address, packed."""
    sport: int
    """Source port."""
    dport: int
    """Destination port."""
    payload: bytes
    """Transport payload (bounded by the IP length, so Ethernet padding is dropped)."""
    seq: int = 0
    """TCP sequence number (0 for UDP)."""
    ack: int = 0
    """TCP acknowledgement number (0 for UDP)."""
    flags: int = 0
    """TCP flags byte (FIN 01, SYN 02, RST 04, PSH 08, ACK 10); 0 for UDP."""


#: A segment as a tuple: proto, src, dst, sport, dport, payload, seq, ack, flags (as in Segment).
SegmentFields = tuple[str, bytes, bytes, int, int, bytes, int, int, int]


def format_address(packed: bytes) -> str:
    """Text form of a packed IPv4 or IPv6 address."""
    return str(ipaddress.ip_address(packed))


def _transport(proto: int, src: bytes, dst: bytes, data: bytes) -> Segment | None:
    if proto == 6:
        if len(data) < 20:
            raise TruncatedFrame("TCP header cut short")
        sport, dport, seq, ack, offset, flags = _TCP_HEAD.unpack_from(data)
        start = (offset >> 4) * 4
        if start < 20 or start > len(data):
            raise TruncatedFrame("TCP header length beyond the frame")
        return Segment(
            proto="tcp", src=src, dst=dst, sport=sport, dport=dport,
            payload=data[start:], seq=seq, ack=ack, flags=flags,
        )  # fmt: skip
    if proto == 17:
        if len(data) < 8:
            raise TruncatedFrame("UDP header cut short")
        sport, dport, length = _UDP_HEAD.unpack_from(data)
        end = length if 8 <= length <= len(data) else len(data)
        return Segment(proto="udp", src=src, dst=dst, sport=sport, dport=dport, payload=data[8:end])
    return None


def _ipv4(data: bytes) -> Segment | None:
    if len(data) < 20:
        raise TruncatedFrame("IPv4 header cut short")
    version_ihl, total, fragment, proto = _IPV4_HEAD.unpack_from(data)
    ihl = (version_ihl & 0x0F) * 4
    if ihl < 20 or len(data) < ihl:
        raise TruncatedFrame("IPv4 header length beyond the frame")
    if fragment & 0x1FFF or fragment & 0x2000:
        return None  # IP fragments are not reassembled (C12.22 stacks do not send them)
    end = total if ihl <= total <= len(data) else len(data)
    return _transport(proto, data[12:16], data[16:20], data[ihl:end])


def _ipv6(data: bytes) -> Segment | None:
    if len(data) < 40:
        raise TruncatedFrame("IPv6 header cut short")
    (length,) = _H.unpack_from(data, 4)
    proto, pos = data[6], 40
    end = min(40 + length, len(data)) if length else len(data)
    while proto in _IPV6_EXTENSIONS:
        if pos + 2 > end:
            raise TruncatedFrame("IPv6 extension header cut short")
        proto, pos = data[pos], pos + (data[pos + 1] + 1) * 8
    if proto == 44:  # fragment header
        return None
    return _transport(proto, data[8:24], data[24:40], data[pos:end])


def _by_ethertype(ethertype: int, data: bytes) -> Segment | None:
    if ethertype == 0x0800:
        return _ipv4(data)
    if ethertype == 0x86DD:
        return _ipv6(data)
    return None


def _by_version(data: bytes) -> Segment | None:
    if not data:
        raise TruncatedFrame("empty IP packet")
    version = data[0] >> 4
    if version == 4:
        return _ipv4(data)
    if version == 6:
        return _ipv6(data)
    return None


def _ethernet(frame: bytes) -> Segment | None:
    pos = 12
    while True:
        if len(frame) < pos + 2:
            raise TruncatedFrame("Ethernet header cut short")
        (ethertype,) = _H.unpack_from(frame, pos)
        if ethertype not in _VLAN_TYPES:
            return _by_ethertype(ethertype, frame[pos + 2 :])
        pos += 4


def _loopback(frame: bytes) -> Segment | None:
    # 4-byte address family in the capturing host's byte order; the IP version says the rest.
    if len(frame) < 4:
        raise TruncatedFrame("loopback header cut short")
    return _by_version(frame[4:])


def _linux_sll(frame: bytes) -> Segment | None:
    if len(frame) < 16:
        raise TruncatedFrame("Linux cooked header cut short")
    return _by_ethertype(_H.unpack_from(frame, 14)[0], frame[16:])


def _linux_sll2(frame: bytes) -> Segment | None:
    if len(frame) < 20:
        raise TruncatedFrame("Linux cooked v2 header cut short")
    return _by_ethertype(_H.unpack_from(frame, 0)[0], frame[20:])


#: Link type -> frame parser.
LINKTYPES = {
    0: _loopback,
    1: _ethernet,
    12: _by_version,
    14: _by_version,
    101: _by_version,
    108: _loopback,
    113: _linux_sll,
    228: _ipv4,
    229: _ipv6,
    276: _linux_sll2,
}


def parse_frame(linktype: int, frame: bytes) -> Segment | None:
    """The TCP or UDP segment in ``frame``; None when it carries neither (or an unknown link)."""
    parser = LINKTYPES.get(linktype)
    return None if parser is None else parser(frame)


def frame_fields(linktype: int, frame: bytes) -> SegmentFields | None:
    """:func:`parse_frame` as a tuple (see :data:`SegmentFields`), with the same None and errors."""
    if linktype == 1 and len(frame) >= 54:
        ethertype, version_ihl, total, fragment, proto, src, dst, sport, dport, seq, ack, offset, flags = (
            _ETH_IPV4_TCP.unpack_from(frame)
        )  # fmt: skip
        if ethertype == 0x0800 and version_ihl == 0x45 and not fragment & 0x3FFF and proto == 6:
            size = len(frame) - 14  # the IP packet: total length unless the frame is shorter
            end = total if 20 <= total <= size else size
            header = (offset >> 4) * 4
            if 20 <= header <= end - 20:
                return ("tcp", src, dst, sport, dport, frame[34 + header : 14 + end], seq, ack, flags)
    segment = parse_frame(linktype, frame)  # everything else, and every error, the general way
    if segment is None:
        return None
    return (
        segment.proto, segment.src, segment.dst, segment.sport, segment.dport, segment.payload,
        segment.seq, segment.ack, segment.flags,
    )  # fmt: skip
