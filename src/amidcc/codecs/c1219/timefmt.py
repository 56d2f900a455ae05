"""Time fields: LTIME_DATE, STIME_DATE and TIME_DATE_QUAL for every ST0 TM_FORMAT.

protocol-facts.md 4.1 (S10, termineter) [H]:

========= ================================= ================= ==============
TM_FORMAT meaning                           LTIME_DATE        STIME_DATE
========= ================================= ================= ==============
0         no clock                          0 bytes           0 bytes
1         BCD YY MM DD hh mm [ss]           6                 5
2         UINT8 YY MM DD hh mm [ss]         6                 5
3         UINT32 minutes since 1970         + UINT8 seconds   4
4         UINT32 seconds since 1970         4                 4
========= ================================= ================= ==============

Values are naive :class:`datetime` objects holding the wall-clock reading exactly as the meter states
it; TIME_DATE_QUAL (GMT_FLAG, DST_FLAG...) says how to interpret it. A time field whose bytes are all
zero (and TM_FORMAT 0) reads as ``None``: unused log entries carry zero stamps. Two-digit years at or
above ``year_pivot`` (default 90, termineter's rule [M]) are 19xx, the rest 20xx.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import LocalProtocolError, RemoteProtocolError
from .formats import DataOrder, TimeFormat

__all__ = [
    "DayOfWeek",
    "TimeDateQual",
    "decode_time",
    "decode_time_date_qual",
    "encode_time",
    "encode_time_date_qual",
    "time_size",
]

_EPOCH = datetime(1970, 1, 1)
_LTIME_SIZES = {
    TimeFormat.NONE: 0,
    TimeFormat.BCD: 6,
    TimeFormat.UINT8: 6,
    TimeFormat.UINT32_MINUTES: 5,
    TimeFormat.UINT32_SECONDS: 4,
}
_STIME_SIZES = {
    TimeFormat.NONE: 0,
    TimeFormat.BCD: 5,
    TimeFormat.UINT8: 5,
    TimeFormat.UINT32_MINUTES: 4,
    TimeFormat.UINT32_SECONDS: 4,
}


class DayOfWeek(enum.IntEnum):
    """TIME_DATE_QUAL bits 0-2."""

    SUNDAY = 0
    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    UNDEFINED = 7  #: the device does not report the day of week


@dataclass(frozen=True, kw_only=True)
class TimeDateQual:
    """TIME_DATE_QUAL (1 byte; S10/S11/S12 [M])."""

    day_of_week: DayOfWeek = DayOfWeek.UNDEFINED
    """Day of the week, or UNDEFINED."""
    dst: bool = False
    """DST_FLAG: daylight saving time is in effect."""
    gmt: bool = False
    """GMT_FLAG: the time is UTC."""
    tm_zn_applied: bool = False
    """TM_ZN_APPLIED_FLAG: the time-zone offset has been applied."""
    dst_applied: bool = False
    """DST_APPLIED_FLAG: the DST offset has been applied."""
    dst_supported: bool = False
    """DST_SUPPORTED_FLAG (C12.19-2008; 0 in 1997 devices)."""


def decode_time_date_qual(byte: int) -> TimeDateQual:
    """Decode the TIME_DATE_QUAL byte."""
    return TimeDateQual(
        day_of_week=DayOfWeek(byte & 0x07),
        dst=bool(byte & 0x08),
        gmt=bool(byte & 0x10),
        tm_zn_applied=bool(byte & 0x20),
        dst_applied=bool(byte & 0x40),
        dst_supported=bool(byte & 0x80),
    )


def encode_time_date_qual(qual: TimeDateQual) -> int:
    """Encode a :class:`TimeDateQual` as one byte."""
    return (
        int(qual.day_of_week)
        | qual.dst << 3
        | qual.gmt << 4
        | qual.tm_zn_applied << 5
        | qual.dst_applied << 6
        | qual.dst_supported << 7
    )


def time_size(tm: TimeFormat, *, long: bool) -> int:
    """Size of an LTIME_DATE (``long=True``) or STIME_DATE field."""
    return (_LTIME_SIZES if long else _STIME_SIZES)[tm]


def decode_time(
    raw: bytes, tm: TimeFormat, order: DataOrder, *, long: bool, year_pivot: int = 90
) -> datetime | None:
    """Decode LTIME_DATE (``long=True``) or STIME_DATE; all-zero bytes read as ``None``."""
    if not any(raw):
        return None
    if tm is TimeFormat.UINT32_SECONDS:
        return _EPOCH + timedelta(seconds=int.from_bytes(raw, order.byteorder))
    if tm is TimeFormat.UINT32_MINUTES:
        minutes = int.from_bytes(raw[:4], order.byteorder)
        seconds = raw[4] if long else 0
        if seconds > 59:
            raise RemoteProtocolError(f"time field {raw.hex()} has {seconds} seconds")
        return _EPOCH + timedelta(minutes=minutes, seconds=seconds)
    if tm is TimeFormat.BCD:
        if any((b >> 4) > 9 or (b & 0x0F) > 9 for b in raw):
            raise RemoteProtocolError(f"BCD time field {raw.hex()} holds a non-decimal nibble")
        fields = [(b >> 4) * 10 + (b & 0x0F) for b in raw]
    else:
        fields = list(raw)
    yy, month, day, hour, minute = fields[:5]
    second = fields[5] if long else 0
    year = (1900 if yy >= year_pivot else 2000) + yy
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        raise RemoteProtocolError(f"time field {raw.hex()} is not a valid date") from None


def encode_time(
    value: datetime | None, tm: TimeFormat, order: DataOrder, *, long: bool, year_pivot: int = 90
) -> bytes:
    """Encode LTIME_DATE (``long=True``) or STIME_DATE; ``None`` writes zeros."""
    size = time_size(tm, long=long)
    if value is None or tm is TimeFormat.NONE:
        return bytes(size)
    if value.tzinfo is not None:
        raise LocalProtocolError("C12.19 times are naive wall-clock readings; drop the tzinfo")
    seconds_lost = not long and tm is not TimeFormat.UINT32_SECONDS and value.second
    if value.microsecond or seconds_lost:
        raise LocalProtocolError(f"{value} has more precision than the time field holds")
    if tm in (TimeFormat.UINT32_SECONDS, TimeFormat.UINT32_MINUTES):
        return _encode_counter(value, tm, order, long=long)
    if not 1900 + year_pivot <= value.year < 2000 + year_pivot:
        raise LocalProtocolError(f"year {value.year} has no two-digit form (pivot {year_pivot})")
    fields = [value.year % 100, value.month, value.day, value.hour, value.minute]
    if long:
        fields.append(value.second)
    if tm is TimeFormat.BCD:
        return bytes((f // 10) << 4 | f % 10 for f in fields)
    return bytes(fields)


def _encode_counter(value: datetime, tm: TimeFormat, order: DataOrder, *, long: bool) -> bytes:
    seconds = (value - _EPOCH) // timedelta(seconds=1)
    if tm is TimeFormat.UINT32_SECONDS:
        count, tail = seconds, b""
    else:
        count, sec = divmod(seconds, 60)
        tail = bytes((sec,)) if long else b""
    if not 0 <= count < 1 << 32:
        raise LocalProtocolError(f"{value} is outside the UINT32 range of {tm.name}")
    return count.to_bytes(4, order.byteorder) + tail
