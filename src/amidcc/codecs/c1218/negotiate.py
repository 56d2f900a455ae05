"""Negotiate-service constants for the link (protocol-facts.md 1.4, 1.5).

The Negotiate request and response bodies are PSEM messages and are built by the PSEM codec; this
module only holds what the link needs to apply their result: session defaults and the baud codes.
Codes 01-0A are [H] (S6, S10, termineter); 0B-0E come from MeteringSDK (S6) only [M], which is why
0B (38400) sits after 0A (57600). S10 writes "56200" for 0A, taken here as a typo for 57600.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from ..errors import LocalProtocolError, RemoteProtocolError
from .frame import DEFAULT_PACKET_SIZE

__all__ = [
    "BAUD_BY_CODE",
    "CODE_BY_BAUD",
    "DEFAULT_BAUD",
    "DEFAULT_NBR_PACKETS",
    "DEFAULT_PACKET_SIZE",
    "EXTERNALLY_DEFINED",
    "baud_code",
    "baud_rate",
]

#: Session defaults before Negotiate (S6): 64-byte packets (DEFAULT_PACKET_SIZE), one packet
#: per message, 9600 8N1.
DEFAULT_NBR_PACKETS: Final = 1
DEFAULT_BAUD: Final = 9600

#: Baud code 00: the rate is set outside the protocol.
EXTERNALLY_DEFINED: Final = 0x00

#: Baud code -> bits per second (code 00 excluded: see :data:`EXTERNALLY_DEFINED`).
BAUD_BY_CODE: Final[Mapping[int, int]] = MappingProxyType(
    {
        0x01: 300,
        0x02: 600,
        0x03: 1200,
        0x04: 2400,
        0x05: 4800,
        0x06: 9600,
        0x07: 14400,
        0x08: 19200,
        0x09: 28800,
        0x0A: 57600,
        0x0B: 38400,
        0x0C: 115200,
        0x0D: 128000,
        0x0E: 256000,
    }
)

#: Bits per second -> baud code.
CODE_BY_BAUD: Final[Mapping[int, int]] = MappingProxyType({v: k for k, v in BAUD_BY_CODE.items()})


def baud_rate(code: int) -> int | None:
    """Bits per second for a received baud code; None for 00 (externally defined).

    :raises RemoteProtocolError: an unknown code (answer ``err``).
    """
    if code == EXTERNALLY_DEFINED:
        return None
    try:
        return BAUD_BY_CODE[code]
    except KeyError:
        raise RemoteProtocolError(f"unknown baud code {code:#04x}") from None


def baud_code(rate: int) -> int:
    """The code to send for ``rate`` bits per second.

    :raises LocalProtocolError: a rate with no code.
    """
    try:
        return CODE_BY_BAUD[rate]
    except KeyError:
        raise LocalProtocolError(f"no C12.18 baud code for {rate} bit/s") from None
