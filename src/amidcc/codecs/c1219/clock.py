"""ST52 CLOCK_TBL: CLOCK_CALENDAR (LTIME_DATE) + TIME_DATE_QUAL (protocol-facts.md 4.8 [H]).

With TM_FORMAT 2 that is 7 bytes: YY MM DD hh mm ss + qual.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from datetime import datetime

from .context import TableContext
from .fields import Layout, ltime, record, time_date_qual
from .model import TableModel
from .structs import StructCodec, frozen, prefix, time_code, time_decoder, time_encoder
from .timefmt import TimeDateQual, decode_time_date_qual, encode_time_date_qual

__all__ = ["ST52", "Clock"]


@dataclass(frozen=True, kw_only=True)
class Clock:
    """ST52 CLOCK_TBL."""

    clock_calendar: datetime | None
    """CLOCK_CALENDAR: the device's wall clock (None when the field is all zero)."""
    time_date_qual: TimeDateQual = TimeDateQual()
    """TIME_DATE_QUAL: day of week, DST/GMT flags."""


def _st52_layout(ctx: TableContext) -> Layout:
    return record(
        Clock,
        ("clock_calendar", ltime(ctx)),
        ("time_date_qual", time_date_qual()),
    )


#: The 256 TIME_DATE_QUAL values, decoded once (they are immutable).
_qual = functools.lru_cache(maxsize=256)(decode_time_date_qual)


def _st52_structs(ctx: TableContext) -> StructCodec[Clock] | None:
    """ST52 in one ``Struct`` (see :mod:`.structs`)."""
    packer = struct.Struct(prefix(ctx) + time_code(ctx, long=True) + "B")
    decode_time, encode_time = time_decoder(ctx, long=True), time_encoder(ctx, long=True)

    def parse(data: bytes) -> Clock:
        raw, qual = packer.unpack(data)
        return frozen(Clock, {"clock_calendar": decode_time(raw), "time_date_qual": _qual(qual)})

    def build(value: Clock) -> bytes:
        return packer.pack(
            encode_time(value.clock_calendar), encode_time_date_qual(value.time_date_qual)
        )

    return StructCodec(parse, build)


ST52: TableModel[Clock] = TableModel(52, "CLOCK_TBL", _st52_layout, Clock, structs=_st52_structs)
