"""ANSI C12.19 tables as typed, sans-I/O models (construct underneath).

A table's layout depends on ST0's format controls and on other tables (ST21 sizes ST23, ST61/ST62
size ST64, ST71 sizes ST74/ST76), so every model takes a :class:`TableContext` carrying them::

    from amidcc.codecs.c1219 import TableContext, decode_table, encode_table

    ctx = TableContext()
    st0 = decode_table(0, st0_bytes, ctx)
    ctx = ctx.with_table(0, st0)
    ident = decode_table(1, st1_bytes, ctx)        # a GeneralMfgId
    assert encode_table(1, ident, ctx) == st1_bytes

Each model (``ST0`` ... ``ST76``, ``MT0``, ``MT1``) also has typed ``parse(data, ctx)``,
``build(value, ctx)``, ``size(ctx)`` and a ``name``. Decoding bad bytes raises
:class:`~amidcc.codecs.errors.RemoteProtocolError` only; building a value that does not fit raises
:class:`~amidcc.codecs.errors.LocalProtocolError`.

Modules: ``formats`` (ST0 format controls), ``numeric`` (INT_FORMAT, BCD, NI_FMAT), ``timefmt``
(LTIME/STIME/TIME_DATE_QUAL), ``context``, ``fields`` (construct building blocks), ``model``
(TableModel), ``general`` (ST0-ST5), ``procedures`` (ST7/ST8), ``registers`` (ST21-ST23), ``clock``
(ST52), ``load_profile`` (ST61-ST67), ``logs`` (ST71-ST76), ``events`` (standard event codes),
``utility_info`` (ST6), ``registry`` (TABLES, decode_table, encode_table), ``mfg`` (manufacturer
tables, MT0, MT1).
"""

from __future__ import annotations

from . import mfg as _mfg  # noqa: F401  (registers MT0 and MT1)
from .clock import ST52, Clock
from .context import DEFAULT_CONTEXT, LogCtrlLayout, TableContext
from .events import StdEvent
from .formats import (
    CharFormat,
    DataAccessMethod,
    DataOrder,
    FormatControl,
    IdForm,
    IntFormat,
    NiFormat,
    TimeFormat,
)
from .general import (
    ST0,
    ST1,
    ST3,
    ST5,
    DeviceIdent,
    EdMode,
    EdModeStatus,
    EdStdStatus1,
    GenConfig,
    GeneralMfgId,
    fit_set_dims,
)
from .load_profile import (
    ST61,
    ST62,
    ST63,
    ST64,
    ST65,
    ST66,
    ST67,
    ActLp,
    ChannelStatus,
    ExtendedIntStatus,
    IntervalCommonFlag,
    IntervalFormat,
    LpBlock,
    LpChannelFlag,
    LpCtrl,
    LpData,
    LpEndReading,
    LpFlag,
    LpFormat,
    LpInterval,
    LpSetCtrl,
    LpSetDims,
    LpSetStatus,
    LpSetStatusFlag,
    LpSourceSelect,
    LpStatus,
)
from .logs import (
    ST71,
    ST72,
    ST73,
    ST74,
    ST75,
    ST76,
    ActLog,
    EventEntry,
    EventLogData,
    EventsId,
    ExtLogFlag,
    HistoryEntry,
    HistoryLogData,
    ListStatus,
    LogCtrl,
    LogFlag,
)
from .mfg import MT0, MT1, register_mfg_table
from .model import TableModel
from .numeric import NiValue
from .procedures import (
    ST7,
    ST8,
    ProcedureInitiate,
    ProcedureNumber,
    ProcedureResponse,
    ProcedureResult,
    ProcedureSelector,
    RemoteResetAction,
)
from .registers import (
    ST21,
    ST22,
    ST23,
    ActRegs,
    CurrentRegData,
    DataBlock,
    DataSelection,
    DemandRecord,
    RegFunc1Flag,
    RegFunc2Flag,
)
from .registry import (
    TABLES,
    UnknownTableError,
    decode_table,
    encode_table,
    split_table_id,
    table_id,
    table_model,
)
from .timefmt import DayOfWeek, TimeDateQual
from .utility_info import ST6, UtilityInfo, id_text

__all__ = [
    "DEFAULT_CONTEXT", "MT0", "MT1", "ST0", "ST1", "ST3", "ST5", "ST6", "ST7", "ST8", "ST21",
    "ST22", "ST23", "ST52", "ST61", "ST62", "ST63", "ST64", "ST65", "ST66", "ST67", "ST71", "ST72", "ST73",
    "ST74", "ST75", "ST76", "TABLES", "ActLog", "ActLp", "ActRegs", "ChannelStatus", "CharFormat",
    "Clock", "CurrentRegData", "DataAccessMethod", "DataBlock", "DataOrder", "DataSelection",
    "DayOfWeek", "DemandRecord", "DeviceIdent", "EdMode", "EdModeStatus", "EdStdStatus1",
    "EventEntry", "EventLogData", "EventsId", "ExtLogFlag", "ExtendedIntStatus", "FormatControl",
    "GenConfig", "GeneralMfgId", "HistoryEntry", "HistoryLogData", "IdForm", "IntFormat",
    "IntervalCommonFlag", "IntervalFormat", "ListStatus", "LogCtrl", "LogCtrlLayout", "LogFlag",
    "LpBlock", "LpChannelFlag", "LpCtrl", "LpData", "LpEndReading", "LpFlag", "LpFormat",
    "LpInterval", "LpSetCtrl", "LpSetDims", "LpSetStatus", "LpSetStatusFlag", "LpSourceSelect",
    "LpStatus", "NiFormat", "NiValue", "ProcedureInitiate", "ProcedureNumber",
    "ProcedureResponse", "ProcedureResult", "ProcedureSelector", "RegFunc1Flag", "RegFunc2Flag",
    "RemoteResetAction", "StdEvent", "TableContext", "TableModel", "TimeDateQual", "TimeFormat",
    "UnknownTableError", "UtilityInfo", "decode_table", "encode_table", "fit_set_dims", "id_text",
    "register_mfg_table", "split_table_id", "table_id", "table_model",
]  # fmt: skip
