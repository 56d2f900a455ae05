"""C12.22 over UDP: one datagram carries exactly one APDU (protocol-facts.md 3.1).

Datagram links take and return lists of datagrams (style.md). A datagram that is not exactly one
APDU (truncated, trailing bytes, garbage) raises :class:`RemoteProtocolError`; there is no "need
more" on UDP. APDUs too big for one datagram must be segmented first (see ``segmentation``).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..ber import decode_length
from ..errors import LocalProtocolError, RemoteProtocolError
from .acse import APDU_TAG
from .stream import DEFAULT_MAX_APDU_SIZE, ApduTooLargeError

__all__ = ["C1222_PORT", "MAX_UDP_PAYLOAD", "datagrams_for", "receive_datagram"]

#: IANA "c1222-acse", TCP and UDP (Wireshark registers both).
C1222_PORT = 1153
#: Largest UDP payload over IPv4.
MAX_UDP_PAYLOAD = 65507


def receive_datagram(
    datagram: bytes | bytearray | memoryview, *, max_apdu_size: int = DEFAULT_MAX_APDU_SIZE
) -> list[bytes]:
    """The APDUs of one received datagram: always exactly one, checked for framing and size."""
    data = bytes(datagram)
    if not data or data[0] != APDU_TAG:
        raise RemoteProtocolError("datagram does not start with an APDU (60)")
    decoded = decode_length(data, 1)
    if decoded is None:
        raise RemoteProtocolError("datagram ends inside the APDU length")
    length, start = decoded
    total = start + length
    if total > max_apdu_size:
        raise ApduTooLargeError(total, max_apdu_size)
    if total != len(data):
        raise RemoteProtocolError(
            f"datagram of {len(data)} bytes holds an APDU declaring {total}"
            " (one datagram carries exactly one APDU)"
        )
    return [data]


def datagrams_for(
    apdus: Iterable[bytes], *, max_datagram_size: int = MAX_UDP_PAYLOAD
) -> list[bytes]:
    """The datagrams to send for ``apdus``: one each; too large for a datagram is our error."""
    out: list[bytes] = []
    for apdu in apdus:
        if len(apdu) > max_datagram_size:
            raise LocalProtocolError(
                f"APDU of {len(apdu)} bytes does not fit a {max_datagram_size}-byte datagram;"
                " segment it first"
            )
        out.append(bytes(apdu))
    return out
