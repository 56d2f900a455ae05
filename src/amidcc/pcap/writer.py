"""Write C12.22 payloads to a pcap file, framed so that Wireshark and tshark reassemble them.

No scapy here: the gateway's capture option uses this module, and the pcap format is a 24-byte file
header followed by a 16-byte record header per frame (libpcap's "savefile" format, magic
``A1B2C3D4``, link type 1 = Ethernet). Every frame gets synthetic Ethernet, IPv4 or IPv6, and TCP or
UDP headers with correct lengths and checksums.

TCP flows are real enough for a dissector: the first payload between two endpoints opens the
connection with a three-way handshake (the first sender is the client), each direction keeps its
own sequence number, payloads larger than ``mss`` are split into several segments, and every
segment acknowledges everything the peer has sent. :meth:`CaptureWriter.tcp_close` ends a
connection with FIN/ACK in both directions; the next payload opens a new one.

Time is an input (``now``, seconds since the epoch); the writer never reads a clock.
:class:`PcapEncoder` is the sans-I/O core (bytes out); :class:`CaptureWriter` adds flows and a
binary stream.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
from dataclasses import dataclass
from typing import BinaryIO

__all__ = [
    "C1222_PORT",
    "LINKTYPE_ETHERNET",
    "CaptureWriter",
    "Endpoint",
    "PcapEncoder",
    "internet_checksum",
    "synthetic_address",
]

#: C12.22 over TCP and UDP (IANA "c1222-acse").
C1222_PORT = 1153
#: pcap link type of the frames written (DLT_EN10MB).
LINKTYPE_ETHERNET = 1

_PCAP_MAGIC = 0xA1B2C3D4
_PCAP_MAGIC_NS = 0xA1B23C4D
_FILE_HEADER = struct.Struct("<IHHiIII")
_RECORD_HEADER = struct.Struct("<IIII")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBBHHH")
_UDP = struct.Struct("!HHHH")

_FIN, _SYN, _RST, _PSH, _ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_ETHERTYPE_IPV4 = b"\x08\x00"
_ETHERTYPE_IPV6 = b"\x86\xdd"
_TTL = 64
_WINDOW = 65535


def internet_checksum(data: bytes) -> int:
    """RFC 1071 ones' complement sum of 16-bit big-endian words (odd data padded with 00)."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def synthetic_address(label: str, *, ipv6: bool = False) -> str:
    """A stable private address for something without one (an MQTT-connected meter, a relay).

    IPv4 addresses come from 10.0.0.0/8 and IPv6 ones from fd00::/8, chosen by a hash of
    ``label`` so that the same AP title always lands on the same address.
    """
    digest = hashlib.sha256(label.encode("utf-8")).digest()
    if ipv6:
        return str(ipaddress.IPv6Address(b"\xfd" + digest[:15]))
    host = bytes((10, digest[0], digest[1], digest[2] or 1))
    return str(ipaddress.IPv4Address(host))


@dataclass(frozen=True, kw_only=True, slots=True)
class Endpoint:
    """One side of a conversation: an IP address (v4 or v6) and a port."""

    host: str
    """IPv4 or IPv6 address, as text."""
    port: int = C1222_PORT
    """TCP or UDP port (1153 is C12.22)."""

    def packed(self) -> bytes:
        """The address in network byte order (4 or 16 bytes)."""
        return ipaddress.ip_address(self.host).packed


class PcapEncoder:
    """The pcap savefile format as bytes: one file header, then one record per frame."""

    def __init__(self, *, snaplen: int = 262144, nanosecond: bool = False) -> None:
        self.snaplen = snaplen
        """Largest frame recorded whole; longer frames are cut (their original length is kept)."""
        self.nanosecond = nanosecond
        """Record timestamps in nanoseconds (magic A1B23C4D) instead of microseconds."""

    def file_header(self) -> bytes:
        """The 24-byte global header (little-endian, version 2.4, Ethernet)."""
        magic = _PCAP_MAGIC_NS if self.nanosecond else _PCAP_MAGIC
        return _FILE_HEADER.pack(magic, 2, 4, 0, 0, self.snaplen, LINKTYPE_ETHERNET)

    def record(self, now: float, frame: bytes) -> bytes:
        """One record: timestamp, captured and original lengths, then the (cut) frame."""
        scale = 1_000_000_000 if self.nanosecond else 1_000_000
        ticks = round(now * scale)
        seconds, fraction = divmod(ticks, scale)
        kept = frame[: self.snaplen]
        return _RECORD_HEADER.pack(seconds, fraction, len(kept), len(frame)) + kept


def _mac(address: bytes) -> bytes:
    """A locally administered MAC derived from the IP address (02:xx:...)."""
    return b"\x02" + hashlib.sha256(address).digest()[:5]


def _ip_frame(src: bytes, dst: bytes, proto: int, transport: bytes, ident: int) -> bytes:
    """Ethernet + IPv4/IPv6 header around ``transport`` (whose checksum is already set)."""
    ethernet = _mac(dst) + _mac(src)
    if len(src) == 4:
        header = _IPV4.pack(
            0x45, 0, 20 + len(transport), ident & 0xFFFF, 0x4000, _TTL, proto, 0, src, dst
        )
        checksum = internet_checksum(header)
        header = header[:10] + struct.pack("!H", checksum) + header[12:]
        return ethernet + _ETHERTYPE_IPV4 + header + transport
    header = _IPV6.pack(0x60000000, len(transport), proto, _TTL, src, dst)
    return ethernet + _ETHERTYPE_IPV6 + header + transport


def _pseudo_header(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, proto, length)
    return src + dst + struct.pack("!IxxxB", length, proto)


def tcp_frame(
    src: Endpoint, dst: Endpoint, *, seq: int, ack: int, flags: int, payload: bytes, ident: int = 0
) -> bytes:
    """A whole Ethernet frame carrying one TCP segment, checksums computed."""
    s, d = src.packed(), dst.packed()
    if len(s) != len(d):
        raise ValueError(f"cannot mix IPv4 and IPv6 endpoints: {src.host} -> {dst.host}")
    header = _TCP.pack(
        src.port, dst.port, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, _WINDOW, 0, 0
    )
    checksum = internet_checksum(_pseudo_header(s, d, 6, 20 + len(payload)) + header + payload)
    header = header[:16] + struct.pack("!H", checksum) + header[18:]
    return _ip_frame(s, d, 6, header + payload, ident)


def udp_frame(src: Endpoint, dst: Endpoint, payload: bytes, ident: int = 0) -> bytes:
    """A whole Ethernet frame carrying one UDP datagram, checksums computed."""
    s, d = src.packed(), dst.packed()
    if len(s) != len(d):
        raise ValueError(f"cannot mix IPv4 and IPv6 endpoints: {src.host} -> {dst.host}")
    length = 8 + len(payload)
    header = _UDP.pack(src.port, dst.port, length, 0)
    checksum = internet_checksum(_pseudo_header(s, d, 17, length) + header + payload) or 0xFFFF
    return _ip_frame(s, d, 17, header[:6] + struct.pack("!H", checksum) + payload, ident)


class _Connection:
    """Sequence numbers of one TCP connection (client = the side that opened it)."""

    def __init__(self, client: Endpoint, server: Endpoint, isn: int) -> None:
        self.client = client
        self.server = server
        # Next sequence number each side sends; the handshake consumes one of each.
        self.next_seq = {client: isn & 0xFFFFFFFF, server: (isn * 7 + 0x5EED) & 0xFFFFFFFF}

    def peer(self, side: Endpoint) -> Endpoint:
        return self.server if side == self.client else self.client


class CaptureWriter:
    """Frames C12.22 payloads into a pcap stream (see the module docstring).

    ``stream`` is any writable binary file; the file header is written at once. ``mss`` bounds the
    payload of one TCP segment (a bigger payload is split, as a real stack would).
    """

    def __init__(
        self, stream: BinaryIO, *, mss: int = 1460, snaplen: int = 262144, nanosecond: bool = False
    ) -> None:
        if not 1 <= mss <= 65495:
            raise ValueError(f"mss {mss} outside 1..65495")
        self.mss = mss
        """Largest TCP payload per segment."""
        self.bytes_written = 0
        """Bytes written so far, file header included (for size-based rotation)."""
        self.frames_written = 0
        """Frames (records) written so far."""
        self._stream = stream
        self._encoder = PcapEncoder(snaplen=snaplen, nanosecond=nanosecond)
        self._connections: dict[frozenset[Endpoint], _Connection] = {}
        self._ident = 0
        self._write(self._encoder.file_header())

    def _write(self, data: bytes) -> None:
        self._stream.write(data)
        self.bytes_written += len(data)

    def _frame(self, now: float, frame: bytes) -> None:
        self._write(self._encoder.record(now, frame))
        self.frames_written += 1

    def _segment(
        self, conn: _Connection, side: Endpoint, now: float, flags: int, payload: bytes
    ) -> None:
        peer = conn.peer(side)
        ack = conn.next_seq[peer] if flags & _ACK else 0
        self._ident += 1
        frame = tcp_frame(
            side,
            peer,
            seq=conn.next_seq[side],
            ack=ack,
            flags=flags,
            payload=payload,
            ident=self._ident,
        )
        self._frame(now, frame)
        consumed = len(payload) + (1 if flags & (_SYN | _FIN) else 0)
        conn.next_seq[side] = (conn.next_seq[side] + consumed) & 0xFFFFFFFF

    def _open(self, client: Endpoint, server: Endpoint, now: float) -> _Connection:
        seed = hashlib.sha256(f"{client}{server}{len(self._connections)}{now}".encode()).digest()
        conn = _Connection(client, server, int.from_bytes(seed[:4], "big"))
        self._segment(conn, client, now, _SYN, b"")
        self._segment(conn, server, now, _SYN | _ACK, b"")
        self._segment(conn, client, now, _ACK, b"")
        self._connections[frozenset((client, server))] = conn
        return conn

    def tcp_payload(self, src: Endpoint, dst: Endpoint, payload: bytes, now: float) -> None:
        """Write ``payload`` (one or more whole APDUs, or any part of the stream) from src to dst."""
        conn = self._connections.get(frozenset((src, dst))) or self._open(src, dst, now)
        for start in range(0, len(payload), self.mss):
            self._segment(conn, src, now, _PSH | _ACK, payload[start : start + self.mss])

    def tcp_close(self, a: Endpoint, b: Endpoint, now: float) -> None:
        """Close the connection between ``a`` and ``b`` (FIN from ``a``, FIN from ``b``, ACK)."""
        conn = self._connections.pop(frozenset((a, b)), None)
        if conn is None:
            return
        self._segment(conn, a, now, _FIN | _ACK, b"")
        self._segment(conn, b, now, _FIN | _ACK, b"")
        self._segment(conn, a, now, _ACK, b"")

    def udp_payload(self, src: Endpoint, dst: Endpoint, payload: bytes, now: float) -> None:
        """Write one UDP datagram (C12.22 over UDP carries exactly one APDU per datagram)."""
        self._ident += 1
        self._frame(now, udp_frame(src, dst, payload, self._ident))

    def raw_frame(self, frame: bytes, now: float) -> None:
        """Write an Ethernet frame as given (tests use it for hand-made segments)."""
        self._frame(now, frame)

    def flush(self) -> None:
        """Flush the underlying stream."""
        self._stream.flush()
