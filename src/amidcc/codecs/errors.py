"""The codec core's error tree.

Two kinds, after h11 and h2: :class:`LocalProtocolError` is our own misuse (building a message that
cannot exist, calling a state machine out of turn); :class:`RemoteProtocolError` is the peer's
garbage, and carries what to answer with: a PSEM response code, or a C12.18 NAK. Incomplete input is
never an error: framers return "need more" instead.

::

    CodecError
     +-- LocalProtocolError
     +-- RemoteProtocolError          (response_code, nak)
          +-- SecurityError           (bad MAC, unknown key: answered with SME)
          +-- SegmentationError       (answered with SGERR)
"""

from __future__ import annotations

from .codes import ResponseCode

__all__ = [
    "CodecError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "SecurityError",
    "SegmentationError",
]


class CodecError(Exception):
    """Base of every error the codec core raises on purpose."""


class LocalProtocolError(CodecError):
    """We asked for something the protocol does not allow (a bug in the caller)."""


class RemoteProtocolError(CodecError):
    """The peer sent something malformed or out of turn.

    :param response_code: the PSEM response code to answer with (``ERR`` unless a more precise code
        applies, e.g. ``SNS`` for an unknown service, ``ISSS`` for a service out of sequence).
    :param nak: True where the right answer is a C12.18 link-level NAK (bad CRC, bad frame) rather
        than a PSEM response.
    """

    def __init__(
        self, msg: str, *, response_code: ResponseCode = ResponseCode.ERR, nak: bool = False
    ) -> None:
        super().__init__(msg)
        self.response_code = response_code
        self.nak = nak

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self)!r}, response_code={self.response_code.name},"
            f" nak={self.nak})"
        )


class SecurityError(RemoteProtocolError):
    """A message failed authentication (wrong MAC, unknown key id, replayed IV)."""

    def __init__(self, msg: str, *, response_code: ResponseCode = ResponseCode.SME) -> None:
        super().__init__(msg, response_code=response_code)


class SegmentationError(RemoteProtocolError):
    """A C12.22 segment does not fit the APDU being reassembled."""

    def __init__(self, msg: str, *, response_code: ResponseCode = ResponseCode.SGERR) -> None:
        super().__init__(msg, response_code=response_code)
