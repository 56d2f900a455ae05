"""ST0's format controls: the three bytes that decide how every other table is encoded.

protocol-facts.md 4.1 and 4.2 (S10, S11, S12 and termineter agree). FORMAT_CONTROL_1 carries the
byte order and character set, FORMAT_CONTROL_2 the time format, access method, identifier form and
signed-integer form, FORMAT_CONTROL_3 the two non-integer formats NI_FMAT1 and NI_FMAT2.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal, TypeVar

from ..errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "CharFormat",
    "DataAccessMethod",
    "DataOrder",
    "FormatControl",
    "IdForm",
    "IntFormat",
    "NiFormat",
    "TimeFormat",
    "format_control_from_bytes",
    "format_control_to_bytes",
]


class DataOrder(enum.IntEnum):
    """FORMAT_CONTROL_1 bit 0: byte order of integers inside table contents (not PSEM headers)."""

    LITTLE = 0  #: least significant byte first
    BIG = 1  #: most significant byte first

    @property
    def byteorder(self) -> Literal["little", "big"]:
        """The name ``int.from_bytes`` wants: ``"little"`` or ``"big"``."""
        return "little" if self is DataOrder.LITTLE else "big"


class CharFormat(enum.IntEnum):
    """FORMAT_CONTROL_1 bits 1-3: character set of CHAR fields."""

    ISO_646 = 1  #: ISO 646 7-bit (ASCII)
    ISO_8859_1 = 2  #: ISO 8859/1 (Latin-1)
    UTF_8 = 3
    UTF_16 = 4
    UTF_32 = 5


class TimeFormat(enum.IntEnum):
    """FORMAT_CONTROL_2 bits 0-2: encoding of LTIME_DATE / STIME_DATE fields."""

    NONE = 0  #: no clock; time fields take no room
    BCD = 1  #: YY MM DD hh mm [ss] as BCD bytes
    UINT8 = 2  #: YY MM DD hh mm [ss] as binary bytes
    UINT32_MINUTES = 3  #: UINT32 minutes since 1970 (+ UINT8 seconds in LTIME)
    UINT32_SECONDS = 4  #: UINT32 seconds since 1970


class DataAccessMethod(enum.IntEnum):
    """FORMAT_CONTROL_2 bits 3-4: which partial reads the device accepts."""

    FULL_ONLY = 0
    OFFSET = 1  #: full plus offset/count partial access
    INDEX = 2  #: full plus index/count partial access
    ANY = 3


class IdForm(enum.IntEnum):
    """FORMAT_CONTROL_2 bit 5: identifiers (serial number, ST5) as characters or BCD."""

    CHARS = 0
    BCD = 1


class IntFormat(enum.IntEnum):
    """FORMAT_CONTROL_2 bits 6-7: representation of signed integers."""

    TWOS_COMPLEMENT = 0
    ONES_COMPLEMENT = 1
    SIGN_MAGNITUDE = 2


class NiFormat(enum.IntEnum):
    """FORMAT_CONTROL_3 nibbles: encoding of the non-integer types NI_FMAT1 / NI_FMAT2 (S10)."""

    FLOAT64 = 0
    FLOAT32 = 1
    FLOAT_CHAR12 = 2  #: a number written in 12 characters
    FLOAT_CHAR6 = 3
    INT32_DEC4 = 4  #: INT32 with an implied decimal point before the last 4 digits
    FIXED_BCD6 = 5
    FIXED_BCD4 = 6
    INT24 = 7
    INT32 = 8
    INT40 = 9
    INT48 = 10
    INT64 = 11
    FIXED_BCD8 = 12
    FLOAT_CHAR21 = 13


@dataclass(frozen=True, kw_only=True)
class FormatControl:
    """The decoded FORMAT_CONTROL_1..3 bytes of ST0 (GEN_CONFIG_TBL)."""

    data_order: DataOrder = DataOrder.LITTLE
    """Byte order of integers in table contents."""
    char_format: CharFormat = CharFormat.ISO_646
    """Character set of CHAR fields."""
    model_select: int = 0
    """FORMAT_CONTROL_1 bits 4-6; 0 selects the ST16 source model."""
    tm_format: TimeFormat = TimeFormat.UINT8
    """Encoding of time fields."""
    data_access_method: DataAccessMethod = DataAccessMethod.ANY
    """Partial-read methods the device accepts."""
    id_form: IdForm = IdForm.CHARS
    """Whether identifiers are characters or BCD."""
    int_format: IntFormat = IntFormat.TWOS_COMPLEMENT
    """Representation of signed integers."""
    ni_format1: NiFormat = NiFormat.INT64
    """Encoding of NI_FMAT1 (summations, cumulative demands)."""
    ni_format2: NiFormat = NiFormat.INT32
    """Encoding of NI_FMAT2 (demands, coincident values)."""


_E = TypeVar("_E", bound=enum.IntEnum)


def _member(enum_type: type[_E], value: int, what: str) -> _E:
    try:
        return enum_type(value)
    except ValueError:
        raise RemoteProtocolError(f"ST0 {what} has the reserved value {value}") from None


def format_control_from_bytes(data: bytes) -> FormatControl:
    """Decode ST0's first three bytes. Reserved codes raise :class:`RemoteProtocolError`."""
    if len(data) < 3:
        raise RemoteProtocolError(f"ST0 format control needs 3 bytes, got {len(data)}")
    fc1, fc2, fc3 = data[0], data[1], data[2]
    if fc1 & 0x80:
        raise RemoteProtocolError("ST0 FORMAT_CONTROL_1 bit 7 must be 0")
    return FormatControl(
        data_order=DataOrder(fc1 & 0x01),
        char_format=_member(CharFormat, (fc1 >> 1) & 0x07, "CHAR_FORMAT"),
        model_select=(fc1 >> 4) & 0x07,
        tm_format=_member(TimeFormat, fc2 & 0x07, "TM_FORMAT"),
        data_access_method=DataAccessMethod((fc2 >> 3) & 0x03),
        id_form=IdForm((fc2 >> 5) & 0x01),
        int_format=_member(IntFormat, fc2 >> 6, "INT_FORMAT"),
        ni_format1=_member(NiFormat, fc3 & 0x0F, "NI_FORMAT1"),
        ni_format2=_member(NiFormat, fc3 >> 4, "NI_FORMAT2"),
    )


def format_control_to_bytes(fc: FormatControl) -> bytes:
    """Encode a :class:`FormatControl` as ST0's first three bytes."""
    if not 0 <= fc.model_select <= 7:
        raise LocalProtocolError(f"MODEL_SELECT {fc.model_select} does not fit 3 bits")
    fc1 = int(fc.data_order) | int(fc.char_format) << 1 | fc.model_select << 4
    fc2 = (
        int(fc.tm_format)
        | int(fc.data_access_method) << 3
        | int(fc.id_form) << 5
        | int(fc.int_format) << 6
    )
    fc3 = int(fc.ni_format1) | int(fc.ni_format2) << 4
    return bytes((fc1, fc2, fc3))
