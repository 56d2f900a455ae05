"""Wire constants shared by every layer of the codec core.

PSEM response codes follow protocol-facts.md section 2.2 (sources S1, S7, S8, S10, termineter).
"""

from __future__ import annotations

import enum

__all__ = ["ACK", "NAK", "ResponseCode"]

#: C12.18 link-layer acknowledgement (a bare byte, not framed).
ACK = 0x06
#: C12.18 link-layer negative acknowledgement (a bare byte, not framed).
NAK = 0x15


class ResponseCode(enum.IntEnum):
    """The first byte of every PSEM response."""

    OK = 0x00  #: acknowledge
    ERR = 0x01  #: error
    SNS = 0x02  #: service not supported
    ISC = 0x03  #: insufficient security clearance
    ONP = 0x04  #: operation not possible
    IAR = 0x05  #: inappropriate action requested
    BSY = 0x06  #: device busy
    DNR = 0x07  #: data not ready
    DLK = 0x08  #: data locked
    RNO = 0x09  #: renegotiate request
    ISSS = 0x0A  #: invalid service sequence state
    SME = 0x0B  #: security mechanism error (C12.22)
    UAT = 0x0C  #: unknown application title (C12.22)
    NETT = 0x0D  #: network time-out (C12.22)
    NETR = 0x0E  #: network not reachable (C12.22)
    RQTL = 0x0F  #: request too large (C12.22); followed by a 4-byte maximum request size
    RSTL = 0x10  #: response too large (C12.22); followed by a 4-byte maximum response size
    SGNP = 0x11  #: segmentation not possible (C12.22)
    SGERR = 0x12  #: segmentation error (C12.22)
