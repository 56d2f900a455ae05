"""ST52 CLOCK_TBL: CLOCK_CALENDAR (LTIME_DATE) + TIME_DATE_QUAL (protocol-facts.md 4.8 [H]).

With TM_FORMAT 2 that is 7 bytes: YY MM DD hh mm ss + qual.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .context import TableContext
from .fields import Layout, ltime, record, time_date_qual
from .model import TableModel
from .timefmt import TimeDateQual

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


ST52: TableModel[Clock] = TableModel(52, "CLOCK_TBL", _st52_layout, Clock)
