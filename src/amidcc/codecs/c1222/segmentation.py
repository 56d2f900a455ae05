"""C12.22 application-layer segmentation -- **DRAFT FORMAT** (protocol-facts.md 3.7, [L]).

Only the Jan-2008 draft (S7) is public; the final IEEE 1703 wording is unconfirmed. It is enabled by
default (a gateway that cannot reassemble loses large responses) but sits behind
:attr:`SegmentationConfig.enabled` and is labelled draft everywhere. In the draft format a segment
is an APDU that carries:

* ``A3`` called AE qualifier = the total size of the full (unsegmented) APDU;
* ``A8`` = the APDU sequence number, the full APDU's A8, the same in every segment;
* the BE/28 indirect reference = the byte offset of this segment in the full APDU's encoding;
* ``81`` = the segment bytes; A1, A2, A6, A7 and A8 are copied; A4, 8B and AC are absent.

:class:`Reassembler` keys partial APDUs by (calling AP title, A8). Time is an input: ``now`` in
seconds. Every inconsistency raises :class:`SegmentationError` (answer SGERR) and forgets that
partial APDU; with segmentation disabled a segment raises it with SGNP.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..ber import decode_length, encode_integer, encode_length
from ..codes import ResponseCode
from ..errors import LocalProtocolError, RemoteProtocolError, SegmentationError
from .acse import APDU_TAG, Apdu, ApTitle, UserInformation, encode_apdu, encode_elements

__all__ = ["Reassembler", "SegmentationConfig", "is_segment", "split_apdu"]


@dataclass(frozen=True, kw_only=True)
class SegmentationConfig:
    """Settings of the draft segmentation."""

    enabled: bool = True
    """Use the draft segment format at all (unconfirmed against the final standard)."""
    timeout: float = 300.0
    """Seconds of silence after which a partial APDU is forgotten (S6's response timeout)."""
    max_pending: int = 64
    """Partial APDUs held at once, across all peers."""
    max_apdu_size: int = 1 << 20
    """Largest reassembled APDU accepted (S6 allows up to 16 MiB)."""


def is_segment(apdu: Apdu) -> bool:
    """True for a draft-format segment (the only APDUs that carry A3)."""
    return apdu.called_ae_qualifier is not None


def _tlv_size(content: int) -> int:
    return 1 + len(encode_length(content)) + content


def _segment_size(header: int, offset: int, chunk: int) -> int:
    """Encoded size of a segment whose elements before BE take ``header`` bytes."""
    external = _tlv_size(len(encode_integer(offset))) + _tlv_size(chunk)  # 02 <offset> 81 <chunk>
    return _tlv_size(header + _tlv_size(_tlv_size(external)))  # 60 { header BE { 28 {...} } }


def _largest_chunk(header: int, offset: int, remaining: int, limit: int) -> int:
    low, high = 0, remaining
    while low < high:
        mid = (low + high + 1) // 2
        if _segment_size(header, offset, mid) <= limit:
            low = mid
        else:
            high = mid - 1
    return low


def split_apdu(
    apdu: Apdu, max_segment_size: int, *, config: SegmentationConfig = SegmentationConfig()
) -> list[bytes]:
    """Encode ``apdu``, split into draft segments of at most ``max_segment_size`` bytes each.

    An APDU that fits is returned whole (one element). Too large with segmentation disabled, or a
    limit too small for one byte per segment, is our error (:class:`LocalProtocolError`).
    """
    data = encode_apdu(apdu)
    if len(data) <= max_segment_size:
        return [data]
    if not config.enabled:
        raise LocalProtocolError(f"APDU of {len(data)} bytes needs segmentation, which is disabled")
    template = Apdu(
        aso_context=apdu.aso_context,
        called_ap_title=apdu.called_ap_title,
        called_ae_qualifier=len(data),
        calling_ap_title=apdu.calling_ap_title,
        calling_ae_qualifier=apdu.calling_ae_qualifier,
        calling_ap_invocation_id=apdu.calling_ap_invocation_id,
        user_information=UserInformation(epsem=b""),
    )
    header = sum(len(raw) for _, raw in encode_elements(template)[:-1])
    segments: list[bytes] = []
    offset = 0
    while offset < len(data):
        chunk = _largest_chunk(header, offset, len(data) - offset, max_segment_size)
        if chunk == 0:
            raise LocalProtocolError(f"max_segment_size {max_segment_size} leaves no room for data")
        info = UserInformation(epsem=data[offset : offset + chunk], indirect_reference=offset)
        segments.append(encode_apdu(replace(template, user_information=info)))
        offset += chunk
    return segments


@dataclass
class _Partial:
    total: int
    data: bytearray
    updated: float
    intervals: list[tuple[int, int]] = field(default_factory=list)  # sorted, merged, [start, end)


SegmentKey = tuple[ApTitle | None, int]


def _check_segment(apdu: Apdu, config: SegmentationConfig) -> tuple[int, int, bytes]:
    total = apdu.called_ae_qualifier
    if total is None:
        raise SegmentationError("not a segment (no A3 total size)")
    if apdu.called_ap_invocation_id is not None or apdu.mechanism_name is not None:
        raise SegmentationError("a segment must not carry A4 or 8B")
    if apdu.calling_authentication is not None:
        raise SegmentationError("a segment must not carry AC")
    if not 0 < total <= config.max_apdu_size:
        raise SegmentationError(f"segmented APDU of {total} bytes (maximum {config.max_apdu_size})")
    offset = apdu.user_information.indirect_reference or 0
    chunk = apdu.user_information.epsem
    if not chunk or offset < 0 or offset + len(chunk) > total:
        raise SegmentationError(f"segment [{offset}, +{len(chunk)}) outside an APDU of {total}")
    return total, offset, chunk


class Reassembler:
    """Collects draft segments into whole APDUs (offsets, duplicates, gaps, timeouts)."""

    def __init__(self, config: SegmentationConfig = SegmentationConfig()) -> None:
        self.config = config
        """The settings in force."""
        self.duplicates = 0
        """Segments received again with the same bytes (ignored)."""
        self._partials: dict[SegmentKey, _Partial] = {}

    @property
    def pending(self) -> int:
        """Partial APDUs held."""
        return len(self._partials)

    def expire(self, now: float) -> list[SegmentKey]:
        """Forget the partial APDUs idle for longer than the timeout; returns their keys."""
        stale = [k for k, p in self._partials.items() if now - p.updated > self.config.timeout]
        for key in stale:
            del self._partials[key]
        return stale

    def receive(self, segment: Apdu, now: float) -> bytes | None:
        """Add one segment; returns the whole APDU's bytes when it completes, else None."""
        if not self.config.enabled:
            raise SegmentationError(
                "segmentation (draft format) is disabled", response_code=ResponseCode.SGNP
            )
        total, offset, chunk = _check_segment(segment, self.config)
        key = (segment.calling_ap_title, segment.calling_ap_invocation_id)
        self.expire(now)
        partial = self._partials.get(key)
        if partial is None:
            if len(self._partials) >= self.config.max_pending:
                raise SegmentationError(f"{len(self._partials)} partial APDUs already pending")
            partial = self._partials[key] = _Partial(total, bytearray(total), now)
        try:
            return self._add(key, partial, total, offset, chunk, now)
        except SegmentationError:
            self._partials.pop(key, None)
            raise

    def _add(
        self, key: SegmentKey, partial: _Partial, total: int, offset: int, chunk: bytes, now: float
    ) -> bytes | None:
        if partial.total != total:
            raise SegmentationError(f"total size changed from {partial.total} to {total}")
        end = offset + len(chunk)
        covered = 0
        for start, stop in partial.intervals:
            low, high = max(start, offset), min(stop, end)
            if low < high:
                if partial.data[low:high] != chunk[low - offset : high - offset]:
                    raise SegmentationError(f"segment at {offset} contradicts earlier bytes")
                covered += high - low
        partial.updated = now
        if covered == len(chunk):
            self.duplicates += 1
            return None
        partial.data[offset:end] = chunk
        partial.intervals = _merge(partial.intervals, (offset, end))
        if partial.intervals != [(0, total)]:
            return None
        del self._partials[key]
        return _whole(bytes(partial.data))


def _merge(intervals: list[tuple[int, int]], new: tuple[int, int]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, stop in sorted([*intervals, new]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


def _whole(data: bytes) -> bytes:
    try:
        decoded = decode_length(data, 1) if data[0] == APDU_TAG else None
    except RemoteProtocolError as exc:
        raise SegmentationError(f"reassembled APDU has a bad length: {exc}") from exc
    if decoded is None or decoded[0] + decoded[1] != len(data):
        raise SegmentationError("reassembled bytes are not one APDU of the announced size")
    return data
