"""Numbers inside C12.19 tables: signed integers per INT_FORMAT, BCD, and the NI_FMAT types.

Pure functions on ``bytes``; the construct fields in :mod:`.fields` wrap them. Facts: protocol-facts.md
4.1 and 4.2. Decoding raises :class:`RemoteProtocolError` (the meter sent it); encoding a value that
does not fit raises :class:`LocalProtocolError` (we asked for it).

Sizes of FIXED_BCD4/6/8 are [L]: S10 (NIST n0mcli) counts digits, so FIXED_BCD6 is 3 octets. The
``bcd_digits=False`` switch reads the number as octets instead. BCD numbers are unsigned, most
significant digit first, whatever DATA_ORDER says [?]. FLOAT_CHARn numbers are ASCII text, written
right-aligned and space-padded [?].
"""

from __future__ import annotations

import math
import struct
from decimal import Decimal, InvalidOperation

from ..errors import LocalProtocolError, RemoteProtocolError
from .formats import DataOrder, FormatControl, IntFormat, NiFormat

__all__ = [
    "NiValue",
    "bcd_decode",
    "bcd_encode",
    "decode_ni",
    "decode_signed",
    "encode_ni",
    "encode_signed",
    "encode_unsigned",
    "ni_size",
]

#: A decoded NI_FMAT value: ``int`` for the integer formats, ``float`` for FLOAT32/64,
#: ``Decimal`` for INT32_DEC4, FIXED_BCD and FLOAT_CHAR formats.
NiValue = int | float | Decimal

_INT_SIZES = {
    NiFormat.INT24: 3,
    NiFormat.INT32: 4,
    NiFormat.INT40: 5,
    NiFormat.INT48: 6,
    NiFormat.INT64: 8,
    NiFormat.INT32_DEC4: 4,
}
_FLOAT_CODES = {NiFormat.FLOAT64: "d", NiFormat.FLOAT32: "f"}
_CHAR_SIZES = {NiFormat.FLOAT_CHAR6: 6, NiFormat.FLOAT_CHAR12: 12, NiFormat.FLOAT_CHAR21: 21}
_BCD_DIGITS = {NiFormat.FIXED_BCD4: 4, NiFormat.FIXED_BCD6: 6, NiFormat.FIXED_BCD8: 8}
_DEC4 = Decimal(10) ** -4


# -- integers ---------------------------------------------------------------------------------


def decode_signed(raw: bytes, order: DataOrder, int_format: IntFormat) -> int:
    """A signed integer in the device's INT_FORMAT. Negative zero reads as 0."""
    bits = 8 * len(raw)
    value = int.from_bytes(raw, order.byteorder)
    top = 1 << (bits - 1)
    if not value & top:
        return value
    if int_format is IntFormat.TWOS_COMPLEMENT:
        return value - (1 << bits)
    if int_format is IntFormat.ONES_COMPLEMENT:
        return -(~value & ((1 << bits) - 1))
    return -(value & (top - 1))


def encode_signed(value: int, size: int, order: DataOrder, int_format: IntFormat) -> bytes:
    """Encode a signed integer in ``size`` bytes and the device's INT_FORMAT."""
    bits = 8 * size
    limit = 1 << (bits - 1)
    low = -limit if int_format is IntFormat.TWOS_COMPLEMENT else -(limit - 1)
    if not low <= value < limit:
        raise LocalProtocolError(f"{value} does not fit a signed {bits}-bit {int_format.name}")
    if value >= 0:
        raw = value
    elif int_format is IntFormat.TWOS_COMPLEMENT:
        raw = value + (1 << bits)
    elif int_format is IntFormat.ONES_COMPLEMENT:
        raw = ~(-value) & ((1 << bits) - 1)
    else:
        raw = limit | -value
    return raw.to_bytes(size, order.byteorder)


def encode_unsigned(value: int, size: int, order: DataOrder) -> bytes:
    """Encode an unsigned integer in ``size`` bytes."""
    if not 0 <= value < 1 << (8 * size):
        raise LocalProtocolError(f"{value} does not fit an unsigned {8 * size}-bit field")
    return value.to_bytes(size, order.byteorder)


# -- BCD --------------------------------------------------------------------------------------


def bcd_decode(raw: bytes) -> str:
    """Packed BCD to a digit string, most significant digit first."""
    text = raw.hex()
    if not text.isdigit() and text:
        raise RemoteProtocolError(f"BCD field {raw.hex()} holds a non-decimal nibble")
    return text


def bcd_encode(digits: str, size: int) -> bytes:
    """A digit string to ``size`` bytes of packed BCD, left-padded with zeros."""
    if not (digits.isascii() and digits.isdigit()) and digits:
        raise LocalProtocolError(f"{digits!r} is not a string of decimal digits")
    if len(digits) > 2 * size:
        raise LocalProtocolError(f"{len(digits)} digits do not fit {size} BCD bytes")
    return bytes.fromhex(digits.rjust(2 * size, "0"))


# -- NI_FMAT ----------------------------------------------------------------------------------


def ni_size(fmt: NiFormat, *, bcd_digits: bool = True) -> int:
    """Octets taken by one value in ``fmt``."""
    if fmt in _INT_SIZES:
        return _INT_SIZES[fmt]
    if fmt is NiFormat.FLOAT64:
        return 8
    if fmt is NiFormat.FLOAT32:
        return 4
    if fmt in _CHAR_SIZES:
        return _CHAR_SIZES[fmt]
    digits = _BCD_DIGITS[fmt]
    return digits // 2 if bcd_digits else digits


def decode_ni(raw: bytes, fmt: NiFormat, fc: FormatControl) -> NiValue:
    """Decode one NI_FMAT value of exactly ``ni_size(fmt)`` bytes."""
    if fmt in _FLOAT_CODES:
        prefix = "<" if fc.data_order is DataOrder.LITTLE else ">"
        return float(struct.unpack(prefix + _FLOAT_CODES[fmt], raw)[0])
    if fmt in _INT_SIZES:
        value = decode_signed(raw, fc.data_order, fc.int_format)
        return Decimal(value) * _DEC4 if fmt is NiFormat.INT32_DEC4 else value
    if fmt in _BCD_DIGITS:
        return Decimal(bcd_decode(raw) or "0")
    text = raw.decode("ascii", "replace").strip(" \x00")
    try:
        value_d = Decimal(text)
    except InvalidOperation:
        raise RemoteProtocolError(f"{fmt.name} field {raw!r} is not a number") from None
    if not value_d.is_finite():
        raise RemoteProtocolError(f"{fmt.name} field {raw!r} is not a finite number")
    return value_d


def encode_ni(value: NiValue, fmt: NiFormat, fc: FormatControl, size: int) -> bytes:
    """Encode one NI_FMAT value into ``size`` bytes (``size`` from :func:`ni_size`)."""
    if isinstance(value, bool):
        raise LocalProtocolError("a bool is not an NI_FMAT value")
    if fmt in _FLOAT_CODES:
        prefix = "<" if fc.data_order is DataOrder.LITTLE else ">"
        try:
            return struct.pack(prefix + _FLOAT_CODES[fmt], float(value))
        except OverflowError:
            raise LocalProtocolError(f"{value} overflows {fmt.name}") from None
    if fmt is NiFormat.INT32_DEC4:
        return encode_signed(
            _exact_int(Decimal(value) / _DEC4, fmt), size, fc.data_order, fc.int_format
        )
    if fmt in _INT_SIZES:
        return encode_signed(_exact_int(value, fmt), size, fc.data_order, fc.int_format)
    if fmt in _BCD_DIGITS:
        number = _exact_int(value, fmt)
        if number < 0:
            raise LocalProtocolError(f"{fmt.name} cannot hold the negative value {value}")
        return bcd_encode(str(number), size)
    return _encode_float_char(value, fmt, size)


def _exact_int(value: NiValue, fmt: NiFormat) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise LocalProtocolError(f"{value} cannot be written as {fmt.name}")
    number = Decimal(value)
    if number != number.to_integral_value():
        raise LocalProtocolError(f"{value} is not a whole number of {fmt.name} units")
    return int(number)


def _encode_float_char(value: NiValue, fmt: NiFormat, size: int) -> bytes:
    if isinstance(value, float) and not math.isfinite(value):
        raise LocalProtocolError(f"{value} cannot be written as {fmt.name}")
    text = str(value) if isinstance(value, Decimal | int) else repr(value)
    if len(text) > size:
        raise LocalProtocolError(f"{text!r} does not fit {fmt.name}")
    return text.rjust(size).encode("ascii")
