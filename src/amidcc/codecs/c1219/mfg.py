"""Manufacturer tables: the registry hook, and amidcc's own MT0 and MT1.

Manufacturer tables (table id 2048 + n) are defined by each vendor; nothing here is standard. A
deployment that talks to one vendor's meters registers that vendor's models with
:func:`register_mfg_table`; the registry is keyed by number only, so two vendors whose MT7 differ
cannot both be registered in one process (pick per process, or decode with the model directly).

amidcc defines two manufacturer tables of its own, used by the simulated meters and understood by
the gateway. Both are self-describing (a count first), little/big-endian per ST0 DATA_ORDER, times
per ST0 TM_FORMAT:

**MT0 SELF_TEST_RESULTS_TBL** (detailed self-test results; ST3 only has summary flags)::

    NBR_RESULTS : UINT8
    RESULTS     : ARRAY[NBR_RESULTS] OF
        CHECK_ID    : UINT16       -- SelfTestCheck (0-255 amidcc-defined, 256+ free)
        STATUS      : UINT8        -- SelfTestStatus
        DETAIL_CODE : UINT16       -- check-specific detail, 0 = none
        TIMESTAMP   : LTIME_DATE   -- when the check last ran (zeros: never)

**MT1 HAN_STATUS_TBL** (home-area-network devices bound to the meter)::

    NBR_DEVICES : UINT8
    DEVICES     : ARRAY[NBR_DEVICES] OF
        DEVICE_ID    : BINARY(8)   -- the device's EUI-64
        DEVICE_TYPE  : UINT8       -- HanDeviceType
        LINK_STATE   : UINT8       -- HanLinkState
        LAST_CONTACT : LTIME_DATE  -- last frame heard from the device (zeros: never)
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from construct import ExprAdapter, PrefixedArray

from ..errors import LocalProtocolError
from .context import TableContext
from .fields import Layout, bytes_field, ltime, record, u8, uint
from .model import TableModel
from .registry import MFG_FLAG, TABLES

__all__ = [
    "MT0",
    "MT1",
    "HanDevice",
    "HanDeviceType",
    "HanLinkState",
    "HanStatus",
    "SelfTestCheck",
    "SelfTestResult",
    "SelfTestResults",
    "SelfTestStatus",
    "mfg_table_id",
    "register_mfg_table",
]


def mfg_table_id(n: int) -> int:
    """The table number of MTn (2048 + n)."""
    if not 0 <= n <= 0x07FF:
        raise LocalProtocolError(f"manufacturer table number {n} does not fit 11 bits")
    return MFG_FLAG | n


def register_mfg_table(number: int, model: TableModel[Any], *, replace: bool = False) -> None:
    """Make ``decode_table`` / ``encode_table`` know MT``number``.

    ``model.number`` must be ``2048 + number``. Registering over an existing model needs
    ``replace=True``, so that two components cannot silently fight over one table number.
    """
    key = mfg_table_id(number)
    if model.number != key:
        raise LocalProtocolError(f"model {model!r} is numbered {model.number}, not MT{number}")
    if key in TABLES and TABLES[key] is not model and not replace:
        raise LocalProtocolError(f"MT{number} is already registered as {TABLES[key]!r}")
    TABLES[key] = model


def _counted(sub: Layout) -> Layout:
    """UINT8 count + that many records, as a tuple."""
    return ExprAdapter(
        PrefixedArray(u8(), sub), lambda obj, _: tuple(obj), lambda obj, _: list(obj)
    )


# -- MT0 --------------------------------------------------------------------------------------


class SelfTestCheck(enum.IntEnum):
    """MT0 CHECK_ID values defined by amidcc."""

    RAM = 0
    ROM = 1
    NONVOLATILE_MEMORY = 2
    CLOCK = 3
    MEASUREMENT = 4
    BATTERY = 5
    CALIBRATION = 6
    RADIO = 7
    DISCONNECT_SWITCH = 8
    TAMPER_SENSOR = 9
    TEMPERATURE = 10
    FIRMWARE_IMAGE = 11


class SelfTestStatus(enum.IntEnum):
    """MT0 STATUS values."""

    PASS = 0
    WARNING = 1
    FAIL = 2
    NOT_RUN = 3


@dataclass(frozen=True, kw_only=True)
class SelfTestResult:
    """One MT0 result record."""

    check_id: int
    """CHECK_ID (:class:`SelfTestCheck` for amidcc's checks)."""
    status: int = SelfTestStatus.NOT_RUN
    """STATUS (:class:`SelfTestStatus`; other values kept as ints)."""
    detail_code: int = 0
    """DETAIL_CODE: check-specific, 0 = none."""
    timestamp: datetime | None = None
    """TIMESTAMP: when the check last ran."""


@dataclass(frozen=True, kw_only=True)
class SelfTestResults:
    """MT0 SELF_TEST_RESULTS_TBL."""

    results: tuple[SelfTestResult, ...] = ()
    """RESULTS (at most 255)."""


def _known(enum_type: type[enum.IntEnum]) -> Callable[[int, object], int]:
    def decode(obj: int, _: object) -> int:
        try:
            return enum_type(obj)
        except ValueError:
            return obj

    return decode


def _mt0_layout(ctx: TableContext) -> Layout:
    result = record(
        SelfTestResult,
        ("check_id", ExprAdapter(uint(2, ctx), _known(SelfTestCheck), lambda o, _: int(o))),
        ("status", ExprAdapter(u8(), _known(SelfTestStatus), lambda o, _: int(o))),
        ("detail_code", uint(2, ctx)),
        ("timestamp", ltime(ctx)),
    )
    return record(SelfTestResults, ("results", _counted(result)))


MT0: TableModel[SelfTestResults] = TableModel(
    MFG_FLAG | 0, "SELF_TEST_RESULTS_TBL", _mt0_layout, SelfTestResults
)


# -- MT1 --------------------------------------------------------------------------------------


class HanDeviceType(enum.IntEnum):
    """MT1 DEVICE_TYPE values."""

    UNKNOWN = 0
    IN_HOME_DISPLAY = 1
    THERMOSTAT = 2
    LOAD_CONTROL_DEVICE = 3
    SMART_PLUG = 4
    GAS_METER = 5
    WATER_METER = 6
    EV_CHARGER = 7
    PV_INVERTER = 8


class HanLinkState(enum.IntEnum):
    """MT1 LINK_STATE values."""

    NOT_JOINED = 0
    JOINING = 1
    JOINED = 2
    LOST = 3  #: joined, but silent for longer than the device's reporting period
    REMOVED = 4


@dataclass(frozen=True, kw_only=True)
class HanDevice:
    """One MT1 device record."""

    device_id: bytes
    """DEVICE_ID: the EUI-64 (8 bytes)."""
    device_type: int = HanDeviceType.UNKNOWN
    """DEVICE_TYPE (:class:`HanDeviceType`; other values kept as ints)."""
    link_state: int = HanLinkState.NOT_JOINED
    """LINK_STATE (:class:`HanLinkState`; other values kept as ints)."""
    last_contact: datetime | None = None
    """LAST_CONTACT."""


@dataclass(frozen=True, kw_only=True)
class HanStatus:
    """MT1 HAN_STATUS_TBL."""

    devices: tuple[HanDevice, ...] = ()
    """DEVICES (at most 255)."""


def _mt1_layout(ctx: TableContext) -> Layout:
    device = record(
        HanDevice,
        ("device_id", bytes_field(8)),
        ("device_type", ExprAdapter(u8(), _known(HanDeviceType), lambda o, _: int(o))),
        ("link_state", ExprAdapter(u8(), _known(HanLinkState), lambda o, _: int(o))),
        ("last_contact", ltime(ctx)),
    )
    return record(HanStatus, ("devices", _counted(device)))


MT1: TableModel[HanStatus] = TableModel(MFG_FLAG | 1, "HAN_STATUS_TBL", _mt1_layout, HanStatus)

register_mfg_table(0, MT0)
register_mfg_table(1, MT1)
