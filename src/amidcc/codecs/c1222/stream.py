"""C12.22 over TCP: an incremental APDU framer (protocol-facts.md 3.1, 3.6).

The payload is a bare stream of ACSE APDUs, each delimited by its own ``60 <BER length>``.
:class:`ApduBuffer` collects whole APDUs and returns them as bytes, or :data:`NEED_MORE`.

Errors, chosen so that the gateway can answer and keep the connection:

* **garbage** (a byte other than ``60`` where an APDU must start): the buffer drops bytes up to the
  next ``60`` (hunting across chunks if needed), counts them in :attr:`ApduBuffer.discarded_bytes`,
  and raises one :class:`RemoteProtocolError` per garbage run. Calling :meth:`next_apdu` again
  continues with the next APDU, so the caller may count, answer or drop the connection as it likes;
* **a bad length** (indefinite form, too many length octets): handled as garbage starting at that
  ``60``;
* **too large** (the declared size exceeds ``max_apdu_size``, default 32767 after MeteringSDK):
  :class:`ApduTooLargeError` (response code RQTL, with the limit to announce) is raised as soon as
  the length is known; the declared number of bytes is then skipped as it arrives, without being
  buffered, and framing resumes after it.
"""

from __future__ import annotations

import enum

from ..ber import decode_length
from ..codes import ResponseCode
from ..errors import LocalProtocolError, RemoteProtocolError
from .acse import APDU_TAG

__all__ = [
    "DEFAULT_MAX_APDU_SIZE",
    "NEED_MORE",
    "ApduBuffer",
    "ApduTooLargeError",
    "NeedMore",
]

#: MeteringSDK's default maximum APDU size (valid range 512 .. 16 MiB there).
DEFAULT_MAX_APDU_SIZE = 32767


class NeedMore(enum.Enum):
    """The type of :data:`NEED_MORE`."""

    NEED_MORE = "need more"


#: Returned by :meth:`ApduBuffer.next_apdu` when no whole APDU is buffered yet.
NEED_MORE = NeedMore.NEED_MORE


class ApduTooLargeError(RemoteProtocolError):
    """An APDU larger than the receiver accepts: answer RQTL with :attr:`limit` (4 bytes)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"APDU of {size} bytes exceeds the maximum of {limit}", response_code=ResponseCode.RQTL
        )
        self.size = size
        """The declared size of the APDU, tag and length included."""
        self.limit = limit
        """The largest APDU accepted."""


class ApduBuffer:
    """Incremental TCP framer: ``receive_data(chunk)``, then ``next_apdu()`` until NEED_MORE."""

    def __init__(self, max_apdu_size: int = DEFAULT_MAX_APDU_SIZE) -> None:
        if max_apdu_size < 3:
            raise LocalProtocolError(f"max_apdu_size {max_apdu_size} is too small for any APDU")
        self.max_apdu_size = max_apdu_size
        """The largest APDU accepted, tag and length octets included."""
        self.discarded_bytes = 0
        """Bytes dropped so far: garbage and skipped oversize APDUs."""
        self._buf = bytearray()
        self._hunting = False
        self._skip = 0

    @property
    def buffered(self) -> int:
        """Bytes held, waiting for the rest of an APDU."""
        return len(self._buf)

    @property
    def has_partial(self) -> bool:
        """True when a stream closing now would cut an APDU (or an oversize skip) short."""
        return bool(self._buf) or self._skip > 0

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append a chunk of the TCP stream."""
        self._buf += data

    def _drop(self, count: int) -> None:
        del self._buf[:count]
        self.discarded_bytes += count

    def _skip_oversize(self) -> None:
        dropped = min(self._skip, len(self._buf))
        self._drop(dropped)
        self._skip -= dropped

    def _hunt(self, start: int) -> int:
        """Drop bytes before the next ``60`` found at or after ``start``; returns the count."""
        found = self._buf.find(APDU_TAG, start)
        count = len(self._buf) if found < 0 else found
        self._drop(count)
        self._hunting = found < 0
        return count

    def next_apdu(self) -> bytes | NeedMore:
        """The next whole APDU, or NEED_MORE. Raises on garbage or oversize (see module doc)."""
        if self._skip:
            self._skip_oversize()
            if self._skip:
                return NEED_MORE
        if self._hunting:
            self._hunt(0)
        if not self._buf:
            return NEED_MORE
        if self._buf[0] != APDU_TAG:
            count = self._hunt(1)
            raise RemoteProtocolError(f"{count} bytes of garbage where an APDU (60) must start")
        try:
            decoded = decode_length(self._buf, 1)
        except RemoteProtocolError as exc:
            count = self._hunt(1)
            raise RemoteProtocolError(f"bad APDU length ({exc}); dropped {count} bytes") from exc
        if decoded is None:
            return NEED_MORE
        length, start = decoded
        total = start + length
        if total > self.max_apdu_size:
            self._skip = total
            self._skip_oversize()
            raise ApduTooLargeError(total, self.max_apdu_size)
        if len(self._buf) < total:
            return NEED_MORE
        apdu = bytes(self._buf[:total])
        del self._buf[:total]
        return apdu
