"""construct building blocks for C12.19 tables, parameterised by a :class:`TableContext`.

construct is untyped, so these factories return :data:`Layout` (``Any``); the table models in the
sibling modules wrap parse/build in typed functions. Values come out as Python types: ``int``,
``bool``, :class:`~enum.IntFlag` members, ``datetime``, ``frozenset`` for SETs, tuples for arrays,
and frozen dataclasses for records (:func:`record`).

SET semantics (protocol-facts.md 4.1 [H]): member n is bit (n mod 8) of byte (n div 8), bit 0 the
least significant, all 8 bits used (termineter's ST0 decoder ignores bit 7; that is a bug).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from construct import (
    Array,
    Bytes,
    BytesInteger,
    ExprAdapter,
    FormatField,
    GreedyBytes,
    Struct,
)

from ..errors import LocalProtocolError, RemoteProtocolError
from .context import TableContext
from .formats import CharFormat, DataOrder, IdForm, IntFormat, NiFormat
from .numeric import (
    bcd_decode,
    bcd_encode,
    decode_ni,
    decode_signed,
    encode_ni,
    encode_signed,
    ni_size,
)
from .timefmt import (
    decode_time,
    decode_time_date_qual,
    encode_time,
    encode_time_date_qual,
    time_size,
)

__all__ = [
    "Field",
    "Layout",
    "Spread",
    "array",
    "bytes_field",
    "chars",
    "decode_set",
    "decode_table_idb",
    "encode_set",
    "encode_table_idb",
    "enum_field",
    "flags",
    "ident",
    "ni",
    "ni_format",
    "record",
    "rest",
    "set_field",
    "set_octets",
    "sint",
    "stime",
    "ltime",
    "time_date_qual",
    "u8",
    "uint",
]

#: A construct object (construct ships no type information).
Layout = Any

_E = TypeVar("_E", bound=enum.IntEnum)
_F = TypeVar("_F", bound=enum.IntFlag)

_FORMAT_CODES = {1: "B", 2: "H", 4: "L", 8: "Q"}
_CODECS = {
    CharFormat.ISO_646: ("ascii", "surrogateescape"),
    CharFormat.ISO_8859_1: ("latin-1", "strict"),
    CharFormat.UTF_8: ("utf-8", "surrogateescape"),
}


def _prefix(order: DataOrder) -> str:
    return "<" if order is DataOrder.LITTLE else ">"


# -- integers ---------------------------------------------------------------------------------


def u8() -> Layout:
    """UINT8."""
    return FormatField(">", "B")


def uint(size: int, ctx: TableContext) -> Layout:
    """UINTn in DATA_ORDER."""
    order = ctx.format.data_order
    if size in _FORMAT_CODES:
        return FormatField(_prefix(order), _FORMAT_CODES[size])
    return BytesInteger(size, signed=False, swapped=order is DataOrder.LITTLE)


def sint(size: int, ctx: TableContext) -> Layout:
    """INTn in DATA_ORDER and INT_FORMAT."""
    fc = ctx.format
    if fc.int_format is IntFormat.TWOS_COMPLEMENT and size in _FORMAT_CODES:
        return FormatField(_prefix(fc.data_order), _FORMAT_CODES[size].lower())
    return ExprAdapter(
        Bytes(size),
        lambda obj, _: decode_signed(obj, fc.data_order, fc.int_format),
        lambda obj, _: encode_signed(obj, size, fc.data_order, fc.int_format),
    )


def enum_field(enum_type: type[_E], sub: Layout) -> Layout:
    """An integer field read strictly as an :class:`~enum.IntEnum`."""

    def decode(obj: int, _: object) -> _E:
        try:
            return enum_type(obj)
        except ValueError:
            raise RemoteProtocolError(f"{obj} is not a valid {enum_type.__name__}") from None

    return ExprAdapter(sub, decode, lambda obj, _: int(obj))


def flags(flag_type: type[_F], sub: Layout) -> Layout:
    """An integer field read as an :class:`~enum.IntFlag` (unknown bits are kept)."""
    return ExprAdapter(sub, lambda obj, _: flag_type(obj), lambda obj, _: int(obj))


# -- NI_FMAT ----------------------------------------------------------------------------------


def ni_format(fmt: NiFormat, ctx: TableContext) -> Layout:
    """One value in the given NI format."""
    fc = ctx.format
    size = ni_size(fmt, bcd_digits=ctx.fixed_bcd_digits)
    if fmt is NiFormat.FLOAT64 or fmt is NiFormat.FLOAT32:
        return ExprAdapter(
            FormatField(_prefix(fc.data_order), "d" if fmt is NiFormat.FLOAT64 else "f"),
            lambda obj, _: float(obj),
            lambda obj, _: float(obj),
        )
    if fmt in (NiFormat.INT32, NiFormat.INT64) and fc.int_format is IntFormat.TWOS_COMPLEMENT:
        return sint(size, ctx)
    return ExprAdapter(
        Bytes(size),
        lambda obj, _: decode_ni(obj, fmt, fc),
        lambda obj, _: encode_ni(obj, fmt, fc, size),
    )


def ni(which: int, ctx: TableContext) -> Layout:
    """NI_FMAT1 (``which=1``) or NI_FMAT2 (``which=2``)."""
    return ni_format(ctx.format.ni_format1 if which == 1 else ctx.format.ni_format2, ctx)


# -- time -------------------------------------------------------------------------------------


def _time(ctx: TableContext, *, long: bool) -> Layout:
    tm, order, pivot = ctx.format.tm_format, ctx.format.data_order, ctx.year_pivot
    return ExprAdapter(
        Bytes(time_size(tm, long=long)),
        lambda obj, _: decode_time(obj, tm, order, long=long, year_pivot=pivot),
        lambda obj, _: encode_time(obj, tm, order, long=long, year_pivot=pivot),
    )


def ltime(ctx: TableContext) -> Layout:
    """LTIME_DATE: ``datetime | None``."""
    return _time(ctx, long=True)


def stime(ctx: TableContext) -> Layout:
    """STIME_DATE: ``datetime | None`` (no seconds except in TM_FORMAT 4)."""
    return _time(ctx, long=False)


def time_date_qual() -> Layout:
    """TIME_DATE_QUAL: :class:`~.timefmt.TimeDateQual`."""
    return ExprAdapter(
        u8(),
        lambda obj, _: decode_time_date_qual(obj),
        lambda obj, _: encode_time_date_qual(obj),
    )


# -- characters and identifiers --------------------------------------------------------------


def _char_codec(ctx: TableContext) -> tuple[str, str]:
    fmt = ctx.format.char_format
    if fmt in _CODECS:
        return _CODECS[fmt]
    order = ctx.format.data_order.byteorder
    base = "utf-16" if fmt is CharFormat.UTF_16 else "utf-32"
    return (f"{base}-{'le' if order == 'little' else 'be'}", "strict")


def chars(size: int, ctx: TableContext) -> Layout:
    """CHAR(size): a ``size``-octet string in CHAR_FORMAT, padded with spaces on build.

    Parsing keeps the padding so that a parse/build round trip returns the same bytes; callers
    strip it. Undecodable bytes survive as surrogate escapes in ISO 646 and UTF-8 [?: UTF-16/32
    octet order follows DATA_ORDER].
    """
    codec, errors = _char_codec(ctx)
    pad = " ".encode(codec)

    def decode(obj: bytes, _: object) -> str:
        try:
            return obj.decode(codec, errors)
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError(f"CHAR({size}) field is not {codec}: {exc.reason}") from None

    def encode(obj: str, _: object) -> bytes:
        try:
            raw = obj.encode(codec, errors)
        except UnicodeEncodeError:
            raise LocalProtocolError(f"{obj!r} cannot be written in {codec}") from None
        if len(raw) > size or (size - len(raw)) % len(pad):
            raise LocalProtocolError(f"{obj!r} does not fit CHAR({size})")
        return raw + pad * ((size - len(raw)) // len(pad))

    return ExprAdapter(Bytes(size), decode, encode)


def ident(size: int, ctx: TableContext) -> Layout:
    """An identifier of ``size`` characters, or ``size // 2`` BCD bytes when ID_FORM is BCD."""
    if ctx.format.id_form is IdForm.CHARS:
        return chars(size, ctx)
    nbytes = size // 2
    return ExprAdapter(
        Bytes(nbytes),
        lambda obj, _: bcd_decode(obj),
        lambda obj, _: bcd_encode(obj, nbytes),
    )


# -- SETs, bytes, arrays ----------------------------------------------------------------------


def decode_set(raw: bytes) -> frozenset[int]:
    """Members of a C12.19 SET: n is present when bit (n mod 8) of byte (n div 8) is set."""
    value = int.from_bytes(raw, "little")
    return frozenset(n for n in range(8 * len(raw)) if value >> n & 1)


def encode_set(members: Iterable[int], nbytes: int) -> bytes:
    """Encode a SET of ``nbytes`` octets."""
    value = 0
    for n in members:
        if not 0 <= n < 8 * nbytes:
            raise LocalProtocolError(f"member {n} does not fit a {nbytes}-octet SET")
        value |= 1 << n
    return value.to_bytes(nbytes, "little")


def set_octets(members: Iterable[int]) -> int:
    """The smallest SET size (in octets) that holds ``members``."""
    return max((n // 8 + 1 for n in members), default=0)


def set_field(nbytes: int) -> Layout:
    """SET(nbytes) as ``frozenset[int]``."""
    return ExprAdapter(
        Bytes(nbytes),
        lambda obj, _: decode_set(obj),
        lambda obj, _: encode_set(obj, nbytes),
    )


def bytes_field(size: int) -> Layout:
    """BINARY(size) as ``bytes``."""
    return Bytes(size)


def rest() -> Layout:
    """Every remaining byte, as ``bytes``."""
    return GreedyBytes


def array(count: int, sub: Layout) -> Layout:
    """ARRAY[count] as a tuple."""

    def encode(obj: tuple[Any, ...], _: object) -> list[Any]:
        if len(obj) != count:
            raise LocalProtocolError(f"array needs {count} elements, got {len(obj)}")
        return list(obj)

    return ExprAdapter(Array(count, sub), lambda obj, _: tuple(obj), encode)


# -- TABLE_IDB_BFLD ---------------------------------------------------------------------------


def decode_table_idb(word: int) -> tuple[int, bool, int]:
    """TABLE_IDB_BFLD to (number 0-2047, manufacturer flag, selector 0-15)."""
    return word & 0x07FF, bool(word & 0x0800), word >> 12


def encode_table_idb(number: int, mfg: bool, selector: int) -> int:
    """(number, manufacturer flag, selector) to TABLE_IDB_BFLD."""
    if not 0 <= number <= 0x07FF or not 0 <= selector <= 0x0F:
        raise LocalProtocolError(f"number {number} / selector {selector} do not fit TABLE_IDB_BFLD")
    return number | (0x0800 if mfg else 0) | selector << 12


# -- records ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Spread:
    """A wire field that fills several dataclass fields (e.g. TABLE_IDB_BFLD -> code, mfg, selector)."""

    names: tuple[str, ...]
    """The dataclass fields it fills, in order."""
    split: Callable[[Any], tuple[Any, ...]]
    """Wire value to the values of ``names``."""
    join: Callable[..., Any]
    """The values of ``names`` (positional) to the wire value."""


#: A record field: ``(name, layout)``, or ``(name, layout, spread)`` for a field spread over several.
Field = tuple[str, Layout] | tuple[str, Layout, Spread]


def record(cls: Callable[..., Any], *fields: Field) -> Layout:
    """A PACKED RECORD read into the frozen dataclass ``cls``.

    Dataclass fields that the layout leaves out (conditional fields whose flag is off) take their
    default when parsing, and must still hold it when building: a value the layout cannot carry is
    refused rather than dropped.
    """
    plain = [f[0] for f in fields if len(f) == 2]
    spreads = [(f[0], f[2]) for f in fields if len(f) == 3]
    covered = {*plain, *(n for _, sp in spreads for n in sp.names)}
    absent = [
        (f.name, f.default)
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name not in covered
    ]
    struct = Struct(*(f[0] / f[1] for f in fields))
    cls_name = getattr(cls, "__name__", "record")

    def decode(obj: dict[str, Any], _: object) -> Any:
        kwargs = {name: obj[name] for name in plain}
        for name, spread in spreads:
            kwargs.update(zip(spread.names, spread.split(obj[name]), strict=True))
        return cls(**kwargs)

    def encode(obj: Any, _: object) -> dict[str, Any]:
        if not isinstance(obj, cls):  # type: ignore[arg-type]
            raise LocalProtocolError(f"expected a {cls_name}, got {type(obj).__name__}")
        for name, default in absent:
            if getattr(obj, name) != default:
                raise LocalProtocolError(
                    f"{cls_name}.{name} is set but this table layout has no room for it"
                )
        built = {name: getattr(obj, name) for name in plain}
        for name, spread in spreads:
            built[name] = spread.join(*(getattr(obj, n) for n in spread.names))
        return built

    return ExprAdapter(struct, decode, encode)
