"""Decade 7: logs. ST71 ACT_LOG_TBL, ST72 EVENTS_ID_TBL, ST73/ST75 log control, ST74/ST76 log data.

protocol-facts.md 4.10 [H for ST71, ST74, ST76]:

* ST71: LOG_FLAGS (1 byte; S11 says 2, see :attr:`TableContext.log_flags_octets`), NBR_STD_EVENTS,
  NBR_MFG_EVENTS, HIST_DATA_LENGTH, EVENT_DATA_LENGTH (1 each), NBR_HISTORY_ENTRIES,
  NBR_EVENT_ENTRIES (2 each); from STD_VERSION_NO 2 on, EXT_LOG_FLAGS (1) + NBR_PROGRAM_TABLES (2).
* ST72: STD_EVENTS_SUPPORTED (NBR_STD_EVENTS octets) + MFG_EVENTS_SUPPORTED SETs.
* ST73 [M]: six "monitored" SETs: std/mfg events (ST71 sizes), std/mfg tables, std/mfg procedures
  (ST0 sizes). S11 and a firmware header agree.
* ST75 [L]: the same six sets (that firmware header types ST73 and ST75 with one struct), or only the
  two event sets (:attr:`TableContext.st75_layout`).
* ST74/ST76: an 11-byte header (LIST_STATUS, NBR_VALID_ENTRIES, LAST_ENTRY_ELEMENT,
  LAST_ENTRY_SEQ_NBR, NBR_UNREAD_ENTRIES) then NBR_*_ENTRIES entries, valid or not.
* History entry: [HISTORY_TIME LTIME] [EVENT_NUMBER] [HISTORY_SEQ_NBR] USER_ID HISTORY_CODE ARGUMENT.
* Event entry: EVENT_TIME (LTIME, always; zero-sized with TM_FORMAT 0) [EVENT_NUMBER] EVENT_SEQ_NBR
  USER_ID EVENT_CODE ARGUMENT.

Codes are TABLE_IDB_BFLD (bits 0-10 number, bit 11 manufacturer, bits 12-15 selector); standard
codes decode to :class:`~.events.StdEvent` members. USER_ID 0 means the device itself, 1 a manual
action (S12).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from .context import LogCtrlLayout, TableContext
from .events import StdEvent
from .fields import (
    Field,
    Layout,
    Spread,
    array,
    bytes_field,
    decode_table_idb,
    encode_table_idb,
    flags,
    ltime,
    record,
    set_field,
    u8,
    uint,
)
from .model import TableModel

__all__ = [
    "ST71",
    "ST72",
    "ST73",
    "ST74",
    "ST75",
    "ST76",
    "ActLog",
    "EventEntry",
    "EventLogData",
    "EventsId",
    "ExtLogFlag",
    "HistoryEntry",
    "HistoryLogData",
    "ListStatus",
    "LogCtrl",
    "LogFlag",
]


class LogFlag(enum.IntFlag):
    """ST71 LOG_FLAGS."""

    EVENT_NUMBER = 0x01  #: entries carry a common EVENT_NUMBER
    HIST_DATE_TIME = 0x02  #: history entries carry HISTORY_TIME
    HIST_SEQ_NBR = 0x04  #: history entries carry HISTORY_SEQ_NBR
    HIST_INHIBIT_OVF = 0x08
    EVENT_INHIBIT_OVF = 0x10


class ExtLogFlag(enum.IntFlag):
    """ST71 EXT_LOG_FLAGS (C12.19-2008)."""

    METROLOGICAL_SIG = 0x01
    PROGRAM_SIG = 0x02
    ALTERNATE_SIG = 0x04
    SECURED_REGISTERS = 0x08


class ListStatus(enum.IntFlag):
    """LIST_STATUS_BFLD of ST74/ST76."""

    ORDER = 0x01  #: entries newest first
    OVERFLOW = 0x02
    LIST_TYPE = 0x04  #: circular (else FIFO)
    INHIBIT_OVERFLOW = 0x08


# -- ST71, ST72 -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ActLog:
    """ST71 ACT_LOG_TBL (same layout as ST70)."""

    log_flags: LogFlag = LogFlag(0)
    """LOG_FLAGS."""
    nbr_std_events: int = 0
    """Octets of the standard event SETs."""
    nbr_mfg_events: int = 0
    """Octets of the manufacturer event SETs."""
    hist_data_length: int = 0
    """Octets of HISTORY_ARGUMENT."""
    event_data_length: int = 0
    """Octets of EVENT_ARGUMENT."""
    nbr_history_entries: int = 0
    """Entries in ST74."""
    nbr_event_entries: int = 0
    """Entries in ST76."""
    ext_log_flags: ExtLogFlag | None = None
    """EXT_LOG_FLAGS (version 2 on)."""
    nbr_program_tables: int | None = None
    """NBR_PROGRAM_TABLES (version 2 on)."""


def _st71_extended(ctx: TableContext) -> bool:
    if ctx.st71_extended is not None:
        return ctx.st71_extended
    return ctx.st0 is not None and ctx.st0.std_version_no >= 2


def _st71_layout(ctx: TableContext) -> Layout:
    fields: list[Field] = [
        ("log_flags", flags(LogFlag, uint(ctx.log_flags_octets, ctx))),
        ("nbr_std_events", u8()),
        ("nbr_mfg_events", u8()),
        ("hist_data_length", u8()),
        ("event_data_length", u8()),
        ("nbr_history_entries", uint(2, ctx)),
        ("nbr_event_entries", uint(2, ctx)),
    ]
    if _st71_extended(ctx):
        fields.append(("ext_log_flags", flags(ExtLogFlag, u8())))
        fields.append(("nbr_program_tables", uint(2, ctx)))
    return record(ActLog, *fields)


ST71: TableModel[ActLog] = TableModel(71, "ACT_LOG_TBL", _st71_layout, ActLog)


@dataclass(frozen=True, kw_only=True)
class EventsId:
    """ST72 EVENTS_ID_TBL: the event codes the device can log."""

    std_events_supported: frozenset[int] = frozenset()
    """STD_EVENTS_SUPPORTED."""
    mfg_events_supported: frozenset[int] = frozenset()
    """MFG_EVENTS_SUPPORTED."""


def _st72_layout(ctx: TableContext) -> Layout:
    log = ctx.require(ctx.st71, "ST71", "ST72")
    return record(
        EventsId,
        ("std_events_supported", set_field(log.nbr_std_events)),
        ("mfg_events_supported", set_field(log.nbr_mfg_events)),
    )


ST72: TableModel[EventsId] = TableModel(72, "EVENTS_ID_TBL", _st72_layout, EventsId)


# -- ST73, ST75 -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LogCtrl:
    """ST73 HISTORY_LOG_CTRL_TBL / ST75 EVENT_LOG_CTRL_TBL: what gets logged."""

    std_events_monitored: frozenset[int] = frozenset()
    """STD_EVENTS_MONITORED_FLAGS."""
    mfg_events_monitored: frozenset[int] = frozenset()
    """MFG_EVENTS_MONITORED_FLAGS."""
    std_tbls_monitored: frozenset[int] = frozenset()
    """STD_TBLS_MONITORED_FLAGS (ST0 DIM_STD_TBLS_USED octets)."""
    mfg_tbls_monitored: frozenset[int] = frozenset()
    """MFG_TBLS_MONITORED_FLAGS (ST0 DIM_MFG_TBLS_USED octets)."""
    std_proc_monitored: frozenset[int] = frozenset()
    """STD_PROC_MONITORED_FLAGS (ST0 DIM_STD_PROC_USED octets)."""
    mfg_proc_monitored: frozenset[int] = frozenset()
    """MFG_PROC_MONITORED_FLAGS (ST0 DIM_MFG_PROC_USED octets)."""


def _log_ctrl_layout(ctx: TableContext, table: str, *, six_sets: bool) -> Layout:
    log = ctx.require(ctx.st71, "ST71", table)
    fields: list[Field] = [
        ("std_events_monitored", set_field(log.nbr_std_events)),
        ("mfg_events_monitored", set_field(log.nbr_mfg_events)),
    ]
    if six_sets:
        st0 = ctx.require(ctx.st0, "ST0", table)
        fields += [
            ("std_tbls_monitored", set_field(st0.dim_std_tbls_used)),
            ("mfg_tbls_monitored", set_field(st0.dim_mfg_tbls_used)),
            ("std_proc_monitored", set_field(st0.dim_std_proc_used)),
            ("mfg_proc_monitored", set_field(st0.dim_mfg_proc_used)),
        ]
    return record(LogCtrl, *fields)


ST73: TableModel[LogCtrl] = TableModel(
    73,
    "HISTORY_LOG_CTRL_TBL",
    lambda ctx: _log_ctrl_layout(ctx, "ST73", six_sets=True),
    LogCtrl,
)
ST75: TableModel[LogCtrl] = TableModel(
    75,
    "EVENT_LOG_CTRL_TBL",
    lambda ctx: _log_ctrl_layout(ctx, "ST75", six_sets=ctx.st75_layout is LogCtrlLayout.SIX_SETS),
    LogCtrl,
)


# -- ST74, ST76 -------------------------------------------------------------------------------


def _split_code(word: int) -> tuple[int, bool, int]:
    number, mfg, selector = decode_table_idb(word)
    if not mfg:
        try:
            number = StdEvent(number)
        except ValueError:
            pass
    return number, mfg, selector


def _code_field(ctx: TableContext) -> Field:
    return (
        "code_word",
        uint(2, ctx),
        Spread(("code", "mfg", "selector"), _split_code, encode_table_idb),
    )


@dataclass(frozen=True, kw_only=True)
class HistoryEntry:
    """HISTORY_ENTRY_RCD of ST74."""

    history_time: datetime | None = None
    """HISTORY_TIME (LTIME_DATE), present with HIST_DATE_TIME."""
    event_number: int | None = None
    """EVENT_NUMBER, present with EVENT_NUMBER."""
    history_seq_nbr: int | None = None
    """HISTORY_SEQ_NBR, present with HIST_SEQ_NBR."""
    user_id: int = 0
    """USER_ID: 0 the device, 1 manual, else the logged-on user."""
    code: int = StdEvent.NO_EVENT
    """HISTORY_CODE number (:class:`StdEvent` for standard codes)."""
    mfg: bool = False
    """HISTORY_CODE manufacturer flag."""
    selector: int = 0
    """HISTORY_CODE bits 12-15, kept as read."""
    argument: bytes = b""
    """HISTORY_ARGUMENT (HIST_DATA_LENGTH octets)."""


@dataclass(frozen=True, kw_only=True)
class EventEntry:
    """EVENT_ENTRY_RCD of ST76."""

    event_time: datetime | None = None
    """EVENT_TIME (LTIME_DATE); None when all zero or TM_FORMAT is 0."""
    event_number: int | None = None
    """EVENT_NUMBER, present with EVENT_NUMBER."""
    event_seq_nbr: int = 0
    """EVENT_SEQ_NBR."""
    user_id: int = 0
    """USER_ID: 0 the device, 1 manual, else the logged-on user."""
    code: int = StdEvent.NO_EVENT
    """EVENT_CODE number (:class:`StdEvent` for standard codes)."""
    mfg: bool = False
    """EVENT_CODE manufacturer flag."""
    selector: int = 0
    """EVENT_CODE bits 12-15, kept as read."""
    argument: bytes = b""
    """EVENT_ARGUMENT (EVENT_DATA_LENGTH octets)."""


@dataclass(frozen=True, kw_only=True)
class HistoryLogData:
    """ST74 HISTORY_LOG_DATA_TBL."""

    list_status: ListStatus = ListStatus(0)
    """HIST_FLAGS."""
    nbr_valid_entries: int = 0
    """NBR_VALID_ENTRIES."""
    last_entry_element: int = 0
    """LAST_ENTRY_ELEMENT: array index of the newest valid entry."""
    last_entry_seq_nbr: int = 0
    """LAST_ENTRY_SEQ_NBR."""
    nbr_unread_entries: int = 0
    """NBR_UNREAD_ENTRIES."""
    entries: tuple[HistoryEntry, ...] = ()
    """ENTRIES: NBR_HISTORY_ENTRIES of them."""


@dataclass(frozen=True, kw_only=True)
class EventLogData:
    """ST76 EVENT_LOG_DATA_TBL."""

    list_status: ListStatus = ListStatus(0)
    """EVENT_FLAGS."""
    nbr_valid_entries: int = 0
    """NBR_VALID_ENTRIES."""
    last_entry_element: int = 0
    """LAST_ENTRY_ELEMENT: array index of the newest valid entry."""
    last_entry_seq_nbr: int = 0
    """LAST_ENTRY_SEQ_NBR."""
    nbr_unread_entries: int = 0
    """NBR_UNREAD_ENTRIES."""
    entries: tuple[EventEntry, ...] = ()
    """ENTRIES: NBR_EVENT_ENTRIES of them."""


def _header(ctx: TableContext) -> list[Field]:
    return [
        ("list_status", flags(ListStatus, u8())),
        ("nbr_valid_entries", uint(2, ctx)),
        ("last_entry_element", uint(2, ctx)),
        ("last_entry_seq_nbr", uint(4, ctx)),
        ("nbr_unread_entries", uint(2, ctx)),
    ]


def _history_entry(ctx: TableContext, log: ActLog) -> Layout:
    fields: list[Field] = []
    if log.log_flags & LogFlag.HIST_DATE_TIME:
        fields.append(("history_time", ltime(ctx)))
    if log.log_flags & LogFlag.EVENT_NUMBER:
        fields.append(("event_number", uint(2, ctx)))
    if log.log_flags & LogFlag.HIST_SEQ_NBR:
        fields.append(("history_seq_nbr", uint(2, ctx)))
    fields += [
        ("user_id", uint(2, ctx)),
        _code_field(ctx),
        ("argument", bytes_field(log.hist_data_length)),
    ]
    return record(HistoryEntry, *fields)


def _event_entry(ctx: TableContext, log: ActLog) -> Layout:
    fields: list[Field] = [("event_time", ltime(ctx))]
    if log.log_flags & LogFlag.EVENT_NUMBER:
        fields.append(("event_number", uint(2, ctx)))
    fields += [
        ("event_seq_nbr", uint(2, ctx)),
        ("user_id", uint(2, ctx)),
        _code_field(ctx),
        ("argument", bytes_field(log.event_data_length)),
    ]
    return record(EventEntry, *fields)


def _st74_layout(ctx: TableContext) -> Layout:
    log = ctx.require(ctx.st71, "ST71", "ST74")
    entries = array(log.nbr_history_entries, _history_entry(ctx, log))
    return record(HistoryLogData, *_header(ctx), ("entries", entries))


def _st76_layout(ctx: TableContext) -> Layout:
    log = ctx.require(ctx.st71, "ST71", "ST76")
    entries = array(log.nbr_event_entries, _event_entry(ctx, log))
    return record(EventLogData, *_header(ctx), ("entries", entries))


ST74: TableModel[HistoryLogData] = TableModel(
    74, "HISTORY_LOG_DATA_TBL", _st74_layout, HistoryLogData
)
ST76: TableModel[EventLogData] = TableModel(76, "EVENT_LOG_DATA_TBL", _st76_layout, EventLogData)
