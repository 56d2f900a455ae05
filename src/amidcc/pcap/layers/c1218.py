"""A scapy layer for the C12.18 packet (protocol-facts.md 1.1-1.3).

``EE <identity> <ctrl> <seq_nbr> <length:2> <data> <crc:2 LE>``; length and CRC (CRC-16/X-25,
amidcc's ``crc16``) are computed when left None. The data of a single-packet message is dissected
as a PSEM service; a multi-packet fragment stays raw. C12.18 runs on the optical port, so nothing
binds it to a transport; :func:`bind_c1218` does, for serial-over-TCP bridges on a chosen port.
"""

# mypy: disable-error-code="misc"

from __future__ import annotations

from scapy.fields import (
    BitField,
    ByteField,
    ConditionalField,
    FieldLenField,
    PacketLenField,
    StrLenField,
    XByteField,
    XLEShortField,
)
from scapy.packet import Packet, bind_layers

from amidcc.codecs.c1218 import crc16

from .psem import psem_class

__all__ = ["C1218", "bind_c1218"]


def _service(data: bytes) -> Packet:
    return psem_class(data)(data)


class C1218(Packet):
    """One C12.18 packet."""

    name = "C12.18 packet"
    fields_desc = [
        XByteField("stp", 0xEE),
        XByteField("identity", 0x00),
        BitField("multi_packet", 0, 1),
        BitField("first_packet", 0, 1),
        BitField("toggle", 0, 1),
        BitField("reserved", 0, 3),
        BitField("data_format", 0, 2),
        ByteField("seq_nbr", 0),
        FieldLenField("length", None, length_of="data", fmt="!H"),
        ConditionalField(
            PacketLenField("service", None, _service, length_from=lambda p: p.length),  # type: ignore[arg-type]
            lambda p: not p.multi_packet,
        ),
        ConditionalField(
            StrLenField("data", b"", length_from=lambda p: p.length), lambda p: p.multi_packet
        ),
        XLEShortField("crc", None),
    ]

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        if not self.multi_packet and self.length is None:
            size = len(bytes(self.service)) if self.service is not None else 0
            p = p[:4] + size.to_bytes(2, "big") + p[6:]
        if self.crc is None:
            p = p[:-2] + crc16(p[:-2]).to_bytes(2, "little")
        return p + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


def bind_c1218(port: int) -> None:
    """Dissect TCP traffic on ``port`` as C12.18 packets (e.g. a serial-to-TCP bridge)."""
    from scapy.layers.inet import TCP

    bind_layers(TCP, C1218, sport=port)
    bind_layers(TCP, C1218, dport=port)
