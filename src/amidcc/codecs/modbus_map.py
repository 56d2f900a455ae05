"""The Modbus register map of a Modbus-linked meter: pure encode/decode, both sides use it.

Theory of operation. A Modbus/TCP collector serves each meter as one unit id. The map has two parts:

* **Native registers**, for any Modbus poller: a read-only block of input registers (identity,
  energy, demand, voltage, power factor, clock, ST3 status words, event counters, last self-test),
  the ST3 status bits again as discrete inputs, and action coils (self-test, ...). Values are
  computed from the same meter model the C12.19 tables come from.
* **A C12.19 table-access window**: the client writes a request block into holding registers
  (table id, offset, count, user id, then the command word, whose write executes it) and reads
  the answer back from a response block (sequence, state and PSEM code, length, checksum, data).
  The response block appears both as input registers and, read-only, as holding registers at the
  same addresses, so one ``read/write multiple registers`` (FC23) writes a command and reads its
  answer. Commands carry PSEM request codes; :func:`request_to_window` and
  :func:`window_to_response` translate PSEM services, answering ``SNS`` for what the map cannot
  express (index reads, Logon, Wait, ...).

Conventions: addresses are 0-based protocol addresses; multi-register integers are big-endian
(high word first); text is ASCII, two characters a register, first in the high byte, padded with
spaces; byte strings (window data) are packed the same way, an odd last byte in a high byte.
docs/protocols.md ("Modbus register map") documents the same tables; a test checks they agree.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

from .codes import ResponseCode
from .errors import LocalProtocolError, RemoteProtocolError
from .psem import (
    DefaultRead,
    FullRead,
    FullWrite,
    Identify,
    Logoff,
    NokResponse,
    PartialReadOffset,
    PartialWriteOffset,
    ReadResponse,
    Request,
    Security,
    Terminate,
    checksum,
    decode_response,
    encode_response,
)
from .psem.primitives import PASSWORD_LENGTH

__all__ = [
    "COIL_COUNT", "MAP_VERSION", "MAX_READ_REGISTERS", "MAX_RW_WRITE_REGISTERS",
    "MAX_WRITE_REGISTERS", "NATIVE_ADDRESS", "NATIVE_COUNT", "NATIVE_FIELDS", "RESPONSE_DATA",
    "RESPONSE_DATA_CAPACITY", "RESPONSE_HEADER", "RESPONSE_HEADER_WORDS", "STATUS_BITS_COUNT",
    "WINDOW_DATA", "WINDOW_DATA_CAPACITY", "WINDOW_HEADER_WORDS", "WINDOW_REQUEST", "Coil",
    "ExceptionCode", "MapAddressError", "NativeField", "NativeReadings", "Region", "Space",
    "StatusBits", "WindowCommand", "WindowHeader", "WindowRequest", "WindowResponse",
    "WindowState", "bytes_to_words", "decode_native", "decode_status_bits", "decode_window_header",
    "decode_window_request", "decode_window_response", "encode_native", "encode_status_bits",
    "encode_window_request", "encode_window_response", "locate", "plan_window_write",
    "request_to_window", "response_to_window", "window_to_request", "window_to_response",
    "words_to_bytes",
]  # fmt: skip

#: Version of this map, readable at input register 0.
MAP_VERSION = 1

#: Modbus application limits (Modbus Application Protocol v1.1b3, FC03/04, FC16, FC23).
MAX_READ_REGISTERS = 125
MAX_WRITE_REGISTERS = 123
MAX_RW_WRITE_REGISTERS = 121


class Space(enum.StrEnum):
    """The four Modbus data spaces."""

    COILS = "coils"
    DISCRETE_INPUTS = "discrete-inputs"
    HOLDING = "holding"
    INPUT = "input"


class ExceptionCode(enum.IntEnum):
    """Modbus exception codes the map and the collectors use."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_ADDRESS = 0x02
    ILLEGAL_VALUE = 0x03
    DEVICE_FAILURE = 0x04
    DEVICE_BUSY = 0x06
    GATEWAY_PATH_UNAVAILABLE = 0x0A
    GATEWAY_TARGET_NO_RESPONSE = 0x0B


class MapAddressError(RemoteProtocolError):
    """A Modbus request touches addresses the map does not define (or writes read-only ones)."""

    def __init__(self, msg: str, *, exception_code: ExceptionCode = ExceptionCode.ILLEGAL_ADDRESS):
        super().__init__(msg, response_code=ResponseCode.IAR)
        self.exception_code = exception_code


# ------------------------------------------------------------------------------ words and bytes


def bytes_to_words(data: bytes) -> tuple[int, ...]:
    """Pack bytes two a register, big-endian; an odd last byte goes in a high byte."""
    if len(data) % 2:
        data = data + b"\x00"
    return tuple(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))


def words_to_bytes(words: Sequence[int], length: int | None = None) -> bytes:
    """Unpack registers into bytes (``length`` cuts off the padding of an odd count)."""
    try:
        out = b"".join(w.to_bytes(2, "big") for w in words)
    except OverflowError:
        raise RemoteProtocolError("register value outside 0..65535") from None
    if length is None:
        return out
    if length > len(out):
        raise RemoteProtocolError(f"{length} bytes wanted from {len(words)} registers")
    return out[:length]


def _check_word(value: int, what: str) -> int:
    if not 0 <= value <= 0xFFFF:
        raise LocalProtocolError(f"{what} {value} does not fit 16 bits")
    return value


# ------------------------------------------------------------------------------ native registers

#: First input register of the native block and its size (one FC04 read).
NATIVE_ADDRESS = 0
NATIVE_COUNT = 72


@dataclass(frozen=True, kw_only=True, slots=True)
class NativeField:
    """One value of the native input-register block."""

    name: str
    """Field name (the NativeReadings attribute; ``map_version`` and ``self_test_result`` derive)."""
    address: int
    """First input register."""
    words: int
    """Number of registers."""
    kind: str
    """``u16``, ``s16``, ``u32``, ``u64``, ``ascii`` or ``u8u8`` (two bytes: high, low field)."""
    doc: str
    """What it holds, with its unit and source."""


_F = NativeField
#: The native block, in address order. Gaps read as 0 and are reserved.
NATIVE_FIELDS: tuple[NativeField, ...] = (  # fmt: skip
    _F(name="map_version", address=0, words=1, kind="u16", doc="map version (1)"),
    _F(name="manufacturer", address=1, words=2, kind="ascii", doc="ST1 MANUFACTURER, 4 chars"),
    _F(name="model", address=3, words=4, kind="ascii", doc="ST1 ED_MODEL, 8 chars"),
    _F(name="serial", address=7, words=8, kind="ascii", doc="ST1 MFG_SERIAL_NUMBER, 16 chars"),
    _F(name="hw", address=15, words=1, kind="u8u8", doc="ST1 HW_VERSION (high), HW_REVISION (low)"),
    _F(name="fw", address=16, words=1, kind="u8u8", doc="ST1 FW_VERSION (high), FW_REVISION (low)"),
    _F(name="device_id", address=17, words=10, kind="ascii", doc="ST5 IDENTIFICATION, 20 chars"),
    _F(name="energy_delivered_wh", address=40, words=4, kind="u64", doc="ST23 delivered, Wh"),
    _F(name="energy_received_wh", address=44, words=4, kind="u64", doc="ST23 received, Wh"),
    _F(name="max_demand_w", address=48, words=2, kind="u32", doc="max demand since reset, W"),
    _F(name="max_demand_time", address=50, words=2, kind="u32", doc="its interval end, Unix s"),
    _F(name="demand_resets", address=52, words=1, kind="u16", doc="ST23 NBR_DEMAND_RESETS"),
    _F(name="voltage_dv", address=53, words=1, kind="u16", doc="present voltage, 0.1 V"),
    _F(name="power_factor_pm", address=54, words=1, kind="s16", doc="power factor, 1/1000"),
    _F(name="meter_time", address=55, words=2, kind="u32", doc="ST52 meter clock, Unix s"),
    _F(name="ed_mode", address=57, words=1, kind="u16", doc="ST3 ED_MODE"),
    _F(name="std_status", address=58, words=1, kind="u16", doc="ST3 ED_STD_STATUS1"),
    _F(name="mfg_status", address=59, words=1, kind="u16", doc="ST3 ED_MFG_STATUS"),
    _F(name="event_entries", address=60, words=1, kind="u16", doc="entries in the event log"),
    _F(name="event_total", address=61, words=2, kind="u32", doc="events logged since install"),
    _F(name="last_event_code", address=63, words=1, kind="u16", doc="newest EVENT_CODE"),
    _F(name="last_event_time", address=64, words=2, kind="u32", doc="newest event, Unix s"),
    _F(name="self_test_time", address=66, words=2, kind="u32", doc="last self-test, Unix s"),
    _F(
        name="self_test_kind", address=68, words=1, kind="u16", doc="RunKind: 0 install .. 3 demand"
    ),
    _F(name="self_test_failing", address=69, words=1, kind="u16", doc="failing-check bitmap (MT0)"),
    _F(name="self_test_result", address=70, words=1, kind="u16", doc="0 passed, 1 failed"),
)
del _F


@dataclass(frozen=True, kw_only=True, slots=True)
class NativeReadings:
    """The native block as values (what a plain Modbus poller learns in one read)."""

    manufacturer: str
    """ST1 MANUFACTURER (up to 4 ASCII characters)."""
    model: str
    """ST1 ED_MODEL (up to 8)."""
    serial: str
    """ST1 MFG_SERIAL_NUMBER (up to 16)."""
    hw_version: int
    """ST1 HW_VERSION_NUMBER (0-255)."""
    hw_revision: int
    """ST1 HW_REVISION_NUMBER (0-255)."""
    fw_version: int
    """ST1 FW_VERSION_NUMBER (0-255)."""
    fw_revision: int
    """ST1 FW_REVISION_NUMBER (0-255)."""
    device_id: str
    """ST5 IDENTIFICATION (up to 20)."""
    energy_delivered_wh: int
    """Delivered energy register, Wh (64 bits)."""
    energy_received_wh: int
    """Received energy register, Wh (64 bits)."""
    max_demand_w: int
    """Maximum interval demand since the last demand reset, W."""
    max_demand_time: int
    """End of the interval that set it, Unix seconds."""
    demand_resets: int
    """Number of demand resets (16 bits)."""
    voltage_dv: int
    """Present voltage in decivolts."""
    power_factor_pm: int
    """Present power factor in per mille (signed: negative when leading)."""
    meter_time: int
    """What the meter's clock reads, Unix seconds."""
    ed_mode: int
    """ST3 ED_MODE bits."""
    std_status: int
    """ST3 ED_STD_STATUS1 bits."""
    mfg_status: int
    """ST3 ED_MFG_STATUS (first two bytes)."""
    event_entries: int
    """Entries the event log holds now."""
    event_total: int
    """Events logged since installation (the newest EVENT_SEQ_NBR + 1)."""
    last_event_code: int
    """EVENT_CODE of the newest event (0 when the log is empty)."""
    last_event_time: int
    """Time of the newest event, Unix seconds (0 when the log is empty)."""
    self_test_time: int
    """Time of the last self-test run, Unix seconds."""
    self_test_kind: int
    """Why it ran: 0 install, 1 power-up, 2 periodic, 3 on demand."""
    self_test_failing: int
    """Bitmap of the checks that failed (bit n = MT0 check n); 0 when it passed."""

    @property
    def self_test_passed(self) -> bool:
        """True when the last self-test found nothing."""
        return self.self_test_failing == 0


_LIMITS = {"u16": (0, 0xFFFF), "s16": (-0x8000, 0x7FFF), "u32": (0, 0xFFFFFFFF),
           "u64": (0, (1 << 64) - 1), "u8u8": (0, 0xFFFF)}  # fmt: skip


def _encode_int(field: NativeField, value: int) -> list[int]:
    lo, hi = _LIMITS[field.kind]
    if not lo <= value <= hi:
        raise LocalProtocolError(f"{field.name} = {value} outside {lo}..{hi}")
    raw = value & ((1 << (16 * field.words)) - 1)
    return [(raw >> (16 * (field.words - 1 - i))) & 0xFFFF for i in range(field.words)]


def _encode_text(field: NativeField, value: str) -> list[int]:
    width = 2 * field.words
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"{field.name} {value!r} is not ASCII") from None
    if len(raw) > width:
        raise LocalProtocolError(f"{field.name} {value!r} is longer than {width} characters")
    return list(bytes_to_words(raw.ljust(width)))


def _native_values(r: NativeReadings) -> dict[str, int | str]:
    return {
        "map_version": MAP_VERSION,
        "hw": _pair(r.hw_version, r.hw_revision, "hw"),
        "fw": _pair(r.fw_version, r.fw_revision, "fw"),
        "self_test_result": int(not r.self_test_passed),
        **{f.name: getattr(r, f.name) for f in fields(r) if not f.name.startswith(("hw_", "fw_"))},
    }


def _pair(high: int, low: int, what: str) -> int:
    if not (0 <= high <= 255 and 0 <= low <= 255):
        raise LocalProtocolError(f"{what} version/revision {high}/{low} must fit a byte each")
    return high << 8 | low


def encode_native(readings: NativeReadings) -> tuple[int, ...]:
    """The native block, ``NATIVE_COUNT`` registers from ``NATIVE_ADDRESS``."""
    words = [0] * NATIVE_COUNT
    values = _native_values(readings)
    for f in NATIVE_FIELDS:
        v = values[f.name]
        if f.kind == "ascii":
            assert isinstance(v, str)
            part = _encode_text(f, v)
        else:
            assert isinstance(v, int)
            part = _encode_int(f, v)
        words[f.address - NATIVE_ADDRESS : f.address - NATIVE_ADDRESS + f.words] = part
    return tuple(words)


def _decode_field(field: NativeField, words: Sequence[int]) -> int | str:
    part = words[field.address - NATIVE_ADDRESS : field.address - NATIVE_ADDRESS + field.words]
    if field.kind == "ascii":
        raw = words_to_bytes(part)
        try:
            return raw.decode("ascii").rstrip(" \x00")
        except UnicodeDecodeError:
            raise RemoteProtocolError(f"{field.name} is not ASCII: {raw!r}") from None
    value = 0
    for w in part:
        if not 0 <= w <= 0xFFFF:
            raise RemoteProtocolError("register value outside 0..65535")
        value = value << 16 | w
    if field.kind == "s16" and value & 0x8000:
        value -= 0x10000
    return value


def decode_native(words: Sequence[int]) -> NativeReadings:
    """Read the native block (at least ``NATIVE_COUNT`` registers from ``NATIVE_ADDRESS``)."""
    if len(words) < NATIVE_COUNT:
        raise RemoteProtocolError(f"native block needs {NATIVE_COUNT} registers, got {len(words)}")
    v = {f.name: _decode_field(f, words) for f in NATIVE_FIELDS}
    if v["map_version"] != MAP_VERSION:
        raise RemoteProtocolError(f"register map version {v['map_version']}, not {MAP_VERSION}")
    hw, fw = v.pop("hw"), v.pop("fw")
    assert isinstance(hw, int) and isinstance(fw, int)
    result = v.pop("self_test_result")
    del v["map_version"]
    readings = NativeReadings(
        hw_version=hw >> 8, hw_revision=hw & 0xFF, fw_version=fw >> 8, fw_revision=fw & 0xFF,
        **v,  # type: ignore[arg-type]
    )  # fmt: skip
    if result != int(not readings.self_test_passed):
        raise RemoteProtocolError(f"self-test result {result} disagrees with the failing bitmap")
    return readings


# ------------------------------------------------------------------------------ discrete inputs

#: Discrete inputs 0-15 ED_STD_STATUS1, 16-31 ED_MFG_STATUS, 32-39 ED_MODE (bit n at base + n).
STATUS_BITS_COUNT = 40
_STD_BASE, _MFG_BASE, _MODE_BASE = 0, 16, 32


@dataclass(frozen=True, kw_only=True, slots=True)
class StatusBits:
    """ST3 as the discrete inputs carry it."""

    std_status: int
    """ED_STD_STATUS1 (16 bits)."""
    mfg_status: int
    """ED_MFG_STATUS (first 16 bits)."""
    ed_mode: int
    """ED_MODE (8 bits)."""


def encode_status_bits(status: StatusBits) -> tuple[bool, ...]:
    """The ``STATUS_BITS_COUNT`` discrete inputs."""
    _check_word(status.std_status, "std_status")
    _check_word(status.mfg_status, "mfg_status")
    if not 0 <= status.ed_mode <= 0xFF:
        raise LocalProtocolError(f"ed_mode {status.ed_mode} does not fit 8 bits")
    std = [bool(status.std_status >> i & 1) for i in range(16)]
    mfg = [bool(status.mfg_status >> i & 1) for i in range(16)]
    mode = [bool(status.ed_mode >> i & 1) for i in range(8)]
    return tuple(std + mfg + mode)


def decode_status_bits(bits: Sequence[bool]) -> StatusBits:
    """Read the discrete inputs (at least ``STATUS_BITS_COUNT`` from 0)."""
    if len(bits) < STATUS_BITS_COUNT:
        raise RemoteProtocolError(f"status needs {STATUS_BITS_COUNT} bits, got {len(bits)}")

    def word(base: int, width: int) -> int:
        return sum(1 << i for i in range(width) if bits[base + i])

    return StatusBits(
        std_status=word(_STD_BASE, 16), mfg_status=word(_MFG_BASE, 16), ed_mode=word(_MODE_BASE, 8)
    )


# ------------------------------------------------------------------------------ coils


class Coil(enum.IntEnum):
    """Action coils: write 1 to run; they read 0 once done (1 while a device is still busy).

    Each is the same as running the procedure in its docstring through ST7.
    """

    SELF_TEST = 0  #: SP11 Execute Diagnostics
    METROLOGY_CHECK = 1  #: amidcc MP0 metrology check
    CLEAR_STD_STATUS = 2  #: SP7 Clear Standard Status Flags
    CLEAR_MFG_STATUS = 3  #: SP8 Clear Manufacturer Status Flags
    DEMAND_RESET = 4  #: SP9 Remote Reset, action bit 0 (demand reset)


COIL_COUNT = len(Coil)


# ------------------------------------------------------------------------------ the window

#: Holding registers: the request block (TABLE, OFFSET_HI, OFFSET_LO, COUNT, USER_ID, COMMAND).
WINDOW_REQUEST = 1000
WINDOW_HEADER_WORDS = 6
#: Holding registers: write data, right after the command word (so FC23 can carry both).
WINDOW_DATA = WINDOW_REQUEST + WINDOW_HEADER_WORDS
#: Input (and read-only holding) registers: SEQUENCE, STATUS, LENGTH, CHECKSUM, then data.
RESPONSE_HEADER = 0x7FFC
RESPONSE_HEADER_WORDS = 4
RESPONSE_DATA = 0x8000
#: Bytes the request data area holds (writes up to this size) and the response data area.
WINDOW_DATA_CAPACITY = 2 * (RESPONSE_HEADER - WINDOW_DATA)
RESPONSE_DATA_CAPACITY = 0xFFFF


class WindowCommand(enum.IntEnum):
    """The COMMAND word's high byte: the PSEM request code the window runs."""

    NONE = 0x00
    IDENTIFY = 0x20  #: the meter's Identify answer (what a ping uses)
    TERMINATE = 0x21  #: forget the credential (answered by the window)
    FULL_READ = 0x30
    DEFAULT_READ = 0x3E
    PARTIAL_READ = 0x3F  #: offset/count read
    FULL_WRITE = 0x40
    PARTIAL_WRITE = 0x4F  #: offset write
    SECURITY = 0x51  #: data: the 20-byte password; USER_ID: the user id
    LOGOFF = 0x52  #: forget the credential (answered by the window)


_READS = frozenset(
    {WindowCommand.FULL_READ, WindowCommand.DEFAULT_READ, WindowCommand.PARTIAL_READ}
)
_WRITES = frozenset({WindowCommand.FULL_WRITE, WindowCommand.PARTIAL_WRITE})


class WindowState(enum.IntEnum):
    """The STATUS word's high byte."""

    IDLE = 0  #: no command yet
    DONE = 1  #: the command with SEQUENCE finished; the low byte is its PSEM response code
    BUSY = 2  #: still running: poll the header again


@dataclass(frozen=True, kw_only=True, slots=True)
class WindowRequest:
    """One command for the window."""

    command: WindowCommand
    """What to do."""
    sequence: int
    """1-255, echoed in the response so the client can match it (0 is never used)."""
    table_id: int = 0
    """PSEM table-id word (reads and writes)."""
    offset: int = 0
    """Byte offset (partial reads and writes; 24 bits)."""
    count: int = 0
    """Partial reads: bytes wanted. Writes and Security: length of ``data``."""
    user_id: int = 0
    """Security: the user id the meter logs."""
    data: bytes = b""
    """Writes: the bytes to write. Security: the 20-byte password."""


@dataclass(frozen=True, kw_only=True, slots=True)
class WindowHeader:
    """The response block's four header registers."""

    command: int
    """Command of the request answered (high byte of SEQUENCE)."""
    sequence: int
    """Its sequence number (low byte of SEQUENCE)."""
    state: WindowState
    """Idle, done or busy."""
    code: int
    """PSEM response code of the command (meaningful when done)."""
    length: int
    """Bytes of response data."""
    checksum: int
    """PSEM checksum of the data (two's complement of the byte sum)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class WindowResponse:
    """The response block: a PSEM response split into code and data."""

    command: int
    """Command answered."""
    sequence: int
    """Sequence answered."""
    state: WindowState
    """Idle, done or busy."""
    code: int
    """PSEM response code."""
    data: bytes = b""
    """OK reads: the table bytes. Anything else: the PSEM response bytes after the code."""


def encode_window_request(req: WindowRequest) -> tuple[int, ...]:
    """The request block from ``WINDOW_REQUEST``: six header registers, then the data."""
    if not 1 <= req.sequence <= 255:
        raise LocalProtocolError(f"sequence {req.sequence} outside 1..255")
    if not 0 <= req.offset <= 0xFFFFFF:
        raise LocalProtocolError(f"offset {req.offset} outside 0..16777215")
    if req.command in _WRITES or req.command is WindowCommand.SECURITY:
        if req.count != len(req.data):
            raise LocalProtocolError(f"count {req.count} is not the data length {len(req.data)}")
    elif req.data:
        raise LocalProtocolError(f"{req.command.name} carries no data")
    if len(req.data) > WINDOW_DATA_CAPACITY:
        raise LocalProtocolError(
            f"{len(req.data)} bytes exceed the window's {WINDOW_DATA_CAPACITY}"
        )
    header = (
        _check_word(req.table_id, "table_id"), req.offset >> 16, req.offset & 0xFFFF,
        _check_word(req.count, "count"), _check_word(req.user_id, "user_id"),
        int(req.command) << 8 | req.sequence,
    )  # fmt: skip
    return header + bytes_to_words(req.data)


def decode_window_request(header: Sequence[int], data_words: Sequence[int]) -> WindowRequest:
    """What the meter side reads from the request block when the command word is written.

    Raises RemoteProtocolError carrying the PSEM code to post: ``SNS`` for an unknown command,
    ``ERR`` for fields that do not fit it.
    """
    if len(header) != WINDOW_HEADER_WORDS:
        raise RemoteProtocolError(f"request header is {WINDOW_HEADER_WORDS} registers")
    table, off_hi, off_lo, count, user_id, word = header
    try:
        command = WindowCommand(word >> 8)
    except ValueError:
        raise RemoteProtocolError(
            f"unknown window command {word >> 8:#04x}", response_code=ResponseCode.SNS
        ) from None
    sequence = word & 0xFF
    if command is WindowCommand.NONE or not sequence:
        raise RemoteProtocolError("command word needs a command and a sequence 1-255")
    if off_hi > 0xFF:
        raise RemoteProtocolError(f"offset high word {off_hi:#x} exceeds 24 bits")
    data = b""
    if command in _WRITES or command is WindowCommand.SECURITY:
        if count > WINDOW_DATA_CAPACITY:
            raise RemoteProtocolError(f"write of {count} bytes exceeds the window")
        if command is WindowCommand.SECURITY and count != PASSWORD_LENGTH:
            raise RemoteProtocolError(f"Security needs a {PASSWORD_LENGTH}-byte password")
        data = words_to_bytes(data_words, count)
    return WindowRequest(
        command=command, sequence=sequence, table_id=table, offset=off_hi << 16 | off_lo,
        count=count, user_id=user_id, data=data,
    )  # fmt: skip


def plan_window_write(req: WindowRequest) -> list[tuple[int, tuple[int, ...]]]:
    """The holding-register writes that issue ``req``, in order: (address, registers) each.

    Data beyond what fits the final write goes first, in FC16-sized pieces; the final write starts
    at ``WINDOW_REQUEST`` (header, command word, first data) and fits an FC23 write, so the
    command runs after all its data is in place.
    """
    words = encode_window_request(req)
    head, rest = words[:MAX_RW_WRITE_REGISTERS], words[MAX_RW_WRITE_REGISTERS:]
    plan = [
        (WINDOW_REQUEST + MAX_RW_WRITE_REGISTERS + i, rest[i : i + MAX_WRITE_REGISTERS])
        for i in range(0, len(rest), MAX_WRITE_REGISTERS)
    ]
    plan.append((WINDOW_REQUEST, head))
    return plan


def encode_window_response(resp: WindowResponse) -> tuple[int, ...]:
    """The response block from ``RESPONSE_HEADER``: four header registers, then the data (the
    data starts at ``RESPONSE_DATA``, right after the header)."""
    if len(resp.data) > RESPONSE_DATA_CAPACITY:
        raise LocalProtocolError(f"{len(resp.data)} response bytes exceed the window")
    if not (0 <= resp.command <= 255 and 0 <= resp.sequence <= 255 and 0 <= resp.code <= 255):
        raise LocalProtocolError("command, sequence and code are one byte each")
    header = (
        resp.command << 8 | resp.sequence,
        int(resp.state) << 8 | resp.code,
        len(resp.data),
        checksum(resp.data),
    )
    return header + bytes_to_words(resp.data)


def decode_window_header(words: Sequence[int]) -> WindowHeader:
    """The first four registers of the response block."""
    if len(words) < RESPONSE_HEADER_WORDS:
        raise RemoteProtocolError(f"response header is {RESPONSE_HEADER_WORDS} registers")
    seq, status, length, cks = words[:RESPONSE_HEADER_WORDS]
    if any(not 0 <= w <= 0xFFFF for w in (seq, status, length, cks)) or cks > 0xFF:
        raise RemoteProtocolError("malformed response header")
    try:
        state = WindowState(status >> 8)
    except ValueError:
        raise RemoteProtocolError(f"unknown window state {status >> 8}") from None
    return WindowHeader(
        command=seq >> 8, sequence=seq & 0xFF, state=state, code=status & 0xFF, length=length,
        checksum=cks,
    )  # fmt: skip


def decode_window_response(words: Sequence[int]) -> WindowResponse:
    """The response block: header plus at least enough data registers for its length (more are
    ignored). The data must match the header's checksum."""
    h = decode_window_header(words)
    data = words_to_bytes(words[RESPONSE_HEADER_WORDS:], h.length)
    if checksum(data) != h.checksum:
        raise RemoteProtocolError(
            f"window data checksum {checksum(data):#04x}, header says {h.checksum:#04x}"
        )
    return WindowResponse(
        command=h.command, sequence=h.sequence, state=h.state, code=h.code, data=data
    )


# ------------------------------------------------------------------------------ PSEM <-> window


def request_to_window(req: Request, sequence: int) -> WindowRequest | NokResponse:
    """The window command for a PSEM service, or the nok a link answers when the map cannot
    carry it (``SNS``; ``RQTL`` with the window's size for a write that does not fit)."""
    c = WindowCommand
    if isinstance(req, FullRead):
        return WindowRequest(command=c.FULL_READ, sequence=sequence, table_id=req.table_id)
    if isinstance(req, PartialReadOffset):
        return WindowRequest(
            command=c.PARTIAL_READ, sequence=sequence, table_id=req.table_id, offset=req.offset,
            count=req.octet_count,
        )  # fmt: skip
    if isinstance(req, DefaultRead):
        return WindowRequest(command=c.DEFAULT_READ, sequence=sequence)
    if isinstance(req, FullWrite | PartialWriteOffset):
        if len(req.data) > WINDOW_DATA_CAPACITY:
            return NokResponse(code=ResponseCode.RQTL, max_size=WINDOW_DATA_CAPACITY)
        partial = isinstance(req, PartialWriteOffset)
        return WindowRequest(
            command=c.PARTIAL_WRITE if partial else c.FULL_WRITE, sequence=sequence,
            table_id=req.table_id, offset=req.offset if partial else 0,  # type: ignore[union-attr]
            count=len(req.data), data=req.data,
        )  # fmt: skip
    if isinstance(req, Security):
        return WindowRequest(
            command=c.SECURITY, sequence=sequence, count=len(req.password),
            user_id=req.user_id or 0, data=req.password,
        )  # fmt: skip
    if isinstance(req, Identify):
        return WindowRequest(command=c.IDENTIFY, sequence=sequence)
    if isinstance(req, Logoff):
        return WindowRequest(command=c.LOGOFF, sequence=sequence)
    if isinstance(req, Terminate):
        return WindowRequest(command=c.TERMINATE, sequence=sequence)
    return NokResponse(code=ResponseCode.SNS)


def window_to_request(req: WindowRequest) -> Request:
    """The PSEM service a window command stands for (the meter side runs it)."""
    c = WindowCommand
    builders: dict[WindowCommand, Callable[[], Request]] = {
        c.FULL_READ: lambda: FullRead(table_id=req.table_id),
        c.PARTIAL_READ: lambda: PartialReadOffset(
            table_id=req.table_id, offset=req.offset, octet_count=req.count
        ),
        c.DEFAULT_READ: DefaultRead,
        c.FULL_WRITE: lambda: FullWrite(table_id=req.table_id, data=req.data),
        c.PARTIAL_WRITE: lambda: PartialWriteOffset(
            table_id=req.table_id, offset=req.offset, data=req.data
        ),
        c.SECURITY: lambda: Security(password=req.data, user_id=req.user_id),
        c.IDENTIFY: Identify,
        c.LOGOFF: Logoff,
        c.TERMINATE: Terminate,
    }
    build = builders.get(req.command)
    if build is None:
        raise LocalProtocolError(f"{req.command.name} is not a PSEM service")
    return build()


def response_to_window(req: WindowRequest, response: bytes) -> WindowResponse:
    """Fit the meter's PSEM response to ``req`` into the response block (state DONE)."""
    if not response:
        raise LocalProtocolError("an empty PSEM response cannot be posted")
    code, data = response[0], response[1:]
    if code == ResponseCode.OK and req.command in _READS:
        decoded = decode_response(response, window_to_request(req))
        assert isinstance(decoded, ReadResponse)
        data = decoded.data
    return WindowResponse(
        command=int(req.command), sequence=req.sequence, state=WindowState.DONE, code=code,
        data=data,
    )  # fmt: skip


def window_to_response(req: WindowRequest, resp: WindowResponse) -> bytes:
    """The PSEM response bytes a finished window command stands for.

    Raises RemoteProtocolError when the block answers another command (a stale or foreign
    sequence) or is not finished.
    """
    if (resp.command, resp.sequence) != (int(req.command), req.sequence):
        raise RemoteProtocolError(
            f"window answers command {resp.command:#04x} seq {resp.sequence}, "
            f"not {int(req.command):#04x} seq {req.sequence}"
        )
    if resp.state is not WindowState.DONE:
        raise RemoteProtocolError(f"window is {resp.state.name}, not DONE")
    if resp.code == ResponseCode.OK and req.command in _READS:
        return encode_response(ReadResponse(data=resp.data))
    return bytes((resp.code,)) + resp.data


# ------------------------------------------------------------------------------ address map


class Region(enum.Enum):
    """What a Modbus address range falls in."""

    NATIVE = "native"
    STATUS_BITS = "status-bits"
    COILS = "coils"
    WINDOW_REQUEST = "window-request"
    RESPONSE = "response"


def _inside(address: int, count: int, first: int, end: int) -> bool:
    return first <= address and address + count <= end


def locate(space: Space, address: int, count: int, *, write: bool = False) -> Region:
    """The one region a request for ``count`` items at ``address`` touches.

    Raises MapAddressError (Modbus exception 02) for ranges outside the map, straddling two
    regions, or writing read-only registers.
    """
    if count < 1 or address < 0 or address + count > 0x10000:
        raise MapAddressError(
            f"{count} items at {address}", exception_code=ExceptionCode.ILLEGAL_VALUE
        )
    found: Region | None = None
    if space is Space.INPUT:
        if _inside(address, count, NATIVE_ADDRESS, NATIVE_ADDRESS + NATIVE_COUNT):
            found = Region.NATIVE
        elif _inside(address, count, RESPONSE_HEADER, 0x10000):
            found = Region.RESPONSE
    elif space is Space.HOLDING:
        if _inside(address, count, WINDOW_REQUEST, RESPONSE_HEADER):
            found = Region.WINDOW_REQUEST
        elif _inside(address, count, RESPONSE_HEADER, 0x10000) and not write:
            found = Region.RESPONSE
    elif space is Space.DISCRETE_INPUTS:
        if _inside(address, count, 0, STATUS_BITS_COUNT):
            found = Region.STATUS_BITS
    elif _inside(address, count, 0, COIL_COUNT):
        found = Region.COILS
    if found is None or (write and space in (Space.INPUT, Space.DISCRETE_INPUTS)):
        raise MapAddressError(f"{space.value} {address}..{address + count - 1} not in the map")
    return found
