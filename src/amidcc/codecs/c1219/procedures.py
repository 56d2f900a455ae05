"""ST7 PROC_INITIATE_TBL and ST8 PROC_RESPONSE_TBL: running procedures.

protocol-facts.md 4.6 [H]. A procedure is started by a full write of ST7 and its outcome read back
from ST8. Both start with TABLE_IDB_BFLD (2 bytes in DATA_ORDER: bits 0-10 procedure number, bit 11
manufacturer, bits 12-15 selector) and SEQ_NBR; the client matches ST8 to ST7 on those 3 bytes.

termineter writes ST7 without padding PARM to MAX_PROC_PARM_LENGTH (``07 00 03`` for SP7, seq 3), so
PARM and RESP_DATA are "the remaining bytes" here rather than fixed-size fields, bounded by ST0's
MAX_PROC_PARM_LENGTH / MAX_RESP_DATA_LEN when the context carries ST0.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from construct import ExprAdapter

from ..errors import LocalProtocolError, RemoteProtocolError
from .context import TableContext
from .fields import (
    Field,
    Layout,
    Spread,
    decode_table_idb,
    encode_table_idb,
    record,
    rest,
    u8,
    uint,
)
from .model import TableModel

__all__ = [
    "ST7",
    "ST8",
    "ProcedureInitiate",
    "ProcedureNumber",
    "ProcedureResponse",
    "ProcedureResult",
    "ProcedureSelector",
    "RemoteResetAction",
    "decode_table_idb",
    "encode_table_idb",
]


class ProcedureNumber(enum.IntEnum):
    """Standard procedures SP0-SP32 (termineter ``c1219/constants.py``; 23-26 unknown [?])."""

    COLD_START = 0
    WARM_START = 1
    SAVE_CONFIGURATION = 2
    CLEAR_DATA = 3
    RESET_LIST_POINTERS = 4
    UPDATE_LAST_READ_ENTRY = 5
    CHANGE_END_DEVICE_MODE = 6  #: PARM: 1 byte, the new ED_MODE
    CLEAR_STD_STATUS_FLAGS = 7
    CLEAR_MFG_STATUS_FLAGS = 8
    REMOTE_RESET = 9  #: PARM: 1 byte of :class:`RemoteResetAction`
    SET_DATE_TIME = 10
    EXECUTE_DIAGNOSTICS = 11
    ACTIVATE_ALL_PENDING_TABLES = 12
    ACTIVATE_SPECIFIC_PENDING_TABLES = 13
    CLEAR_ALL_PENDING_TABLES = 14
    CLEAR_SPECIFIC_PENDING_TABLES = 15
    START_LOAD_PROFILE = 16
    STOP_LOAD_PROFILE = 17
    LOG_IN = 18
    LOG_OUT = 19
    INITIATE_IMMEDIATE_CALL = 20
    DIRECT_LOAD_CONTROL = 21
    MODIFY_CREDIT = 22
    CLEAR_PENDING_CALL_STATUS = 27
    START_QOS_MONITORS = 28
    STOP_QOS_MONITORS = 29
    START_SECURED_REGISTERS = 30
    STOP_SECURED_REGISTERS = 31
    SET_PRECISION_DATE_TIME = 32


class ProcedureSelector(enum.IntEnum):
    """TABLE_IDB_BFLD bits 12-15 in ST7: when the device posts the ST8 response."""

    POST_ON_COMPLETION = 0
    POST_ON_EXCEPTION = 1
    DO_NOT_POST = 2
    POST_NOW_AND_ON_COMPLETION = 3


class ProcedureResult(enum.IntEnum):
    """ST8 RESULT_CODE."""

    COMPLETED = 0
    ACCEPTED_NOT_COMPLETED = 1  #: poll ST8 again
    INVALID_PARAMETER = 2
    CONFLICTS_WITH_SETUP = 3
    TIMING_CONSTRAINT = 4
    NO_AUTHORIZATION = 5
    UNRECOGNIZED_PROCEDURE = 6


class RemoteResetAction(enum.IntFlag):
    """SP9 REMOTE_RESET parameter byte [M]; other bits are unknown [?]."""

    DEMAND_RESET = 0x01
    SELF_READ = 0x02


@dataclass(frozen=True, kw_only=True)
class ProcedureInitiate:
    """ST7 PROC_INITIATE_TBL: a procedure call."""

    number: int
    """Procedure number (0-2047); :class:`ProcedureNumber` for standard ones."""
    mfg: bool = False
    """STD_VS_MFG_FLAG: a manufacturer procedure."""
    selector: int = ProcedureSelector.POST_ON_COMPLETION
    """Response selector (:class:`ProcedureSelector`)."""
    seq_nbr: int = 0
    """SEQ_NBR, echoed in ST8."""
    params: bytes = b""
    """PARM (at most MAX_PROC_PARM_LENGTH from ST0)."""


@dataclass(frozen=True, kw_only=True)
class ProcedureResponse:
    """ST8 PROC_RESPONSE_TBL: a procedure's outcome."""

    number: int
    """Procedure number, as in ST7."""
    mfg: bool = False
    """STD_VS_MFG_FLAG, as in ST7."""
    selector: int = ProcedureSelector.POST_ON_COMPLETION
    """Selector, as in ST7."""
    seq_nbr: int = 0
    """SEQ_NBR, as in ST7."""
    result_code: int = ProcedureResult.COMPLETED
    """RESULT_CODE (:class:`ProcedureResult` when known; other values are kept as ints)."""
    resp_data: bytes = b""
    """RESP_DATA (at most MAX_RESP_DATA_LEN from ST0)."""


def _split_word(word: int) -> tuple[int, bool, int]:
    number, mfg, selector = decode_table_idb(word)
    if not mfg:
        try:
            number = ProcedureNumber(number)
        except ValueError:
            pass
    return number, mfg, selector


def _result(code: int) -> int:
    try:
        return ProcedureResult(code)
    except ValueError:
        return code


def _bounded_rest(limit: int | None, what: str) -> Layout:
    """The remaining bytes, at most ``limit`` of them (ST0's MAX_PROC_PARM_LENGTH and friends)."""

    def decode(obj: bytes, _: object) -> bytes:
        if limit is not None and len(obj) > limit:
            raise RemoteProtocolError(f"{what} has {len(obj)} bytes, ST0 allows {limit}")
        return obj

    def encode(obj: bytes, _: object) -> bytes:
        if limit is not None and len(obj) > limit:
            raise LocalProtocolError(f"{what} has {len(obj)} bytes, ST0 allows {limit}")
        return obj

    return ExprAdapter(rest(), decode, encode)


def _proc_layout(ctx: TableContext, *, response: bool) -> Layout:
    word = Spread(("number", "mfg", "selector"), _split_word, encode_table_idb)
    fields: list[Field] = [("word", uint(2, ctx), word), ("seq_nbr", u8())]
    st0 = ctx.st0
    if response:
        result = ExprAdapter(u8(), lambda obj, _: _result(obj), lambda obj, _: int(obj))
        fields.append(("result_code", result))
        limit = None if st0 is None else st0.max_resp_data_len
        fields.append(("resp_data", _bounded_rest(limit, "RESP_DATA")))
        return record(ProcedureResponse, *fields)
    limit = None if st0 is None else st0.max_proc_parm_length
    fields.append(("params", _bounded_rest(limit, "PARM")))
    return record(ProcedureInitiate, *fields)


ST7: TableModel[ProcedureInitiate] = TableModel(
    7, "PROC_INITIATE_TBL", lambda ctx: _proc_layout(ctx, response=False), ProcedureInitiate
)
ST8: TableModel[ProcedureResponse] = TableModel(
    8, "PROC_RESPONSE_TBL", lambda ctx: _proc_layout(ctx, response=True), ProcedureResponse
)
