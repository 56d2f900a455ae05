"""Parameters shared by the C12.19 table tests."""

from __future__ import annotations

from amidcc.codecs.c1219 import DataOrder, TimeFormat

#: Both data orders (ST0 DATA_ORDER).
ORDERS = list(DataOrder)
#: Every time format with a clock (NONE leaves the time fields out, and is tested on its own).
TIME_FORMATS = [f for f in TimeFormat if f is not TimeFormat.NONE]
