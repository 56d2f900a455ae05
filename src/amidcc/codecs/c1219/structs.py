"""Hand-written :mod:`struct` codecs for the tables a gateway reads on every poll (ST3, ST23, ST52).

construct interprets a layout field by field: the simulated meter's 31-byte ST23 takes ~28 µs to
parse that way, most of a gateway's decoding work per poll (docs/benchmarks.md); one
``Struct.unpack`` and a few constructors take a few µs. Each table module has a factory that
returns a :class:`StructCodec` for a context whose formats it covers (two's-complement INT32/INT64
or FLOAT32/FLOAT64 non-integer formats, time fields of any TM_FORMAT), or None, and the
:class:`~amidcc.codecs.c1219.model.TableModel` keeps to construct for that context.

A struct codec never decides what is valid. Whatever it cannot decode or encode exactly (a wrong
size, a bad time field, a value the layout has no room for, an unexpected type) raises one of
:data:`FALLBACK`, and the model hands the same input to construct, whose answer (usually its error)
is the answer. So on bytes and values that construct accepts, both must give the same values and
bytes: tests/codecs/test_c1219_structs.py checks that on shared vectors and with Hypothesis.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from ..errors import CodecError
from .context import TableContext
from .formats import DataOrder, IntFormat, NiFormat
from .timefmt import decode_time, encode_time, time_size

__all__ = [
    "FALLBACK",
    "StructCodec",
    "frozen",
    "ni_code",
    "prefix",
    "time_code",
    "time_decoder",
    "time_encoder",
]

_T = TypeVar("_T")

#: What a struct codec raises when construct must decide instead.
FALLBACK = (
    struct.error,
    CodecError,
    ValueError,
    TypeError,
    OverflowError,
    IndexError,
    AttributeError,
    KeyError,
)

_FLOAT_CODES = {NiFormat.FLOAT64: "d", NiFormat.FLOAT32: "f"}
_INT_CODES = {NiFormat.INT32: "l", NiFormat.INT64: "q"}


@dataclass(frozen=True, slots=True)
class StructCodec(Generic[_T]):
    """A table's struct fast path for one context: both functions raise :data:`FALLBACK`."""

    parse: Callable[[bytes], _T]
    """The whole table's bytes to its value."""
    build: Callable[[_T], bytes]
    """A value to the whole table's bytes."""


def prefix(ctx: TableContext) -> str:
    """The struct byte-order prefix of DATA_ORDER (standard sizes, no padding)."""
    return "<" if ctx.format.data_order is DataOrder.LITTLE else ">"


def ni_code(which: int, ctx: TableContext) -> str | None:
    """The struct code of NI_FMAT1 (``which=1``) or NI_FMAT2, None where struct has none that
    reads it as construct does (BCD, character, INT24-48, implied decimals, other INT_FORMATs)."""
    fc = ctx.format
    fmt = fc.ni_format1 if which == 1 else fc.ni_format2
    if fmt in _FLOAT_CODES:
        return _FLOAT_CODES[fmt]
    if fmt in _INT_CODES and fc.int_format is IntFormat.TWOS_COMPLEMENT:
        return _INT_CODES[fmt]
    return None


def time_code(ctx: TableContext, *, long: bool) -> str:
    """The struct code holding an LTIME_DATE (``long``) or STIME_DATE field's bytes."""
    return f"{time_size(ctx.format.tm_format, long=long)}s"


def time_decoder(ctx: TableContext, *, long: bool) -> Callable[[bytes], datetime | None]:
    """The time field's bytes to its value, as the construct layout decodes it."""
    tm, order, pivot = ctx.format.tm_format, ctx.format.data_order, ctx.year_pivot

    def decode(raw: bytes) -> datetime | None:
        return decode_time(raw, tm, order, long=long, year_pivot=pivot)

    return decode


def time_encoder(ctx: TableContext, *, long: bool) -> Callable[[datetime | None], bytes]:
    """A time value to the field's bytes, as the construct layout encodes it."""
    tm, order, pivot = ctx.format.tm_format, ctx.format.data_order, ctx.year_pivot

    def encode(value: datetime | None) -> bytes:
        return encode_time(value, tm, order, long=long, year_pivot=pivot)

    return encode


def frozen(cls: type[_T], values: dict[str, Any]) -> _T:
    """``cls(**values)`` for a plain frozen dataclass, without its ``__init__``.

    A frozen dataclass's ``__init__`` stores each field through ``object.__setattr__``; filling
    the instance dictionary in one call is several times faster. ``values`` must name every field
    in declaration order (the struct codecs always do; their tests compare with ``__init__``).
    """
    obj: _T = object.__new__(cls)
    obj.__dict__.update(values)
    return obj
