"""Table writes: ST7 procedures (answered in ST8) and the programmable tables.

Procedures (ST7 full write; the outcome is posted to ST8 per the selector):

====== ============================ ===================================================================
number name                         PARM -> RESP_DATA
====== ============================ ===================================================================
SP6    change end-device mode       1 byte ED_MODE -> none
SP7    clear standard status flags  none -> none (flags of faults still present come back at once)
SP8    clear mfg status flags       none -> none
SP9    remote reset                 1 byte: bit0 demand reset, bit1 self read -> none
SP10   set date and time            set-mask (1) + LTIME_DATE + TIME_DATE_QUAL [L] -> none;
                                    result 4 (timing constraint) while a time-sync fault is active
SP11   execute diagnostics          none -> failing-check bitmap (UINT32, DATA_ORDER; bit n = MT0 check n)
MP0    metrology check (amidcc)     none -> error per mille (INT16) + status (0 pass, 2 fail)
====== ============================ ===================================================================

Anything else: result 6 (unrecognized procedure). Programmable tables: ST5 (20 characters), ST6
UTILITY_INFO_TBL (230 bytes) and the opaque ``config.program_sizes`` tables (default ST53 10 bytes,
ST54 64): full writes of the exact size or offset writes inside it. A full write of a program table
other than ST5 re-programs the meter: it clears an active checksum or program fault (FR19: resolve
remotely by re-programming).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from amidcc.codecs.c1219 import (
    ST7,
    ST8,
    EdMode,
    ProcedureInitiate,
    ProcedureNumber,
    ProcedureResponse,
    ProcedureResult,
    ProcedureSelector,
    RemoteResetAction,
)
from amidcc.codecs.c1219.fields import encode_table_idb
from amidcc.codecs.c1219.timefmt import decode_time, time_size
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.errors import CodecError

from .faults import FaultKind, StdEvent
from .tables import EPOCH, MAX_RESP, context_for, program_bytes, program_sizes, writable

if TYPE_CHECKING:
    from .meter import SimMeter

__all__ = ["REPROGRAM_CLEARS", "run_procedure", "write"]

#: Faults a full re-write of a program table clears.
REPROGRAM_CLEARS = (FaultKind.CHECKSUM, FaultKind.PROGRAM)

_R = ProcedureResult


def write(meter: SimMeter, number: int, offset: int | None, data: bytes, now: float, *, user_id: int = 0) -> ResponseCode:
    """A full (``offset`` None) or offset write; the PSEM response code."""
    key = number & 0x0FFF
    if not writable(meter, key):
        return ResponseCode.IAR
    if key == 7:
        if offset is not None:
            return ResponseCode.IAR
        return _st7(meter, data, now, user_id)
    size = program_sizes(meter.config)[key]
    start = 0 if offset is None else offset
    if (offset is None and len(data) != size) or start + len(data) > size or not data:
        return ResponseCode.IAR
    current = bytearray(program_bytes(meter, key))
    current[start : start + len(data)] = data
    if meter.programs is None:
        meter.programs = {}
    meter.programs[key] = bytes(current)
    meter.log(now, StdEvent.TABLE_WRITTEN, key, user_id or 1)
    if offset is None and key != 5:
        for kind in REPROGRAM_CLEARS:
            if meter.fault_active(kind, now):
                meter.clear(kind, now)
        meter.log(now, StdEvent.END_DEVICE_PROGRAMMED, key, user_id or 1)
    return ResponseCode.OK


def _st7(meter: SimMeter, data: bytes, now: float, user_id: int) -> ResponseCode:
    ctx = context_for(meter.config, meter.identity.ed_class)
    try:
        proc = ST7.parse(data, ctx)
    except CodecError:
        return ResponseCode.ERR
    if ctx.st0 is not None and len(proc.params) > ctx.st0.max_proc_parm_length:
        return ResponseCode.IAR
    result, resp = run_procedure(meter, proc, now, user_id=user_id or 1)
    word = encode_table_idb(proc.number, proc.mfg, proc.selector)
    meter.log(now, StdEvent.PROCEDURE_INVOKED, word, user_id or 1)
    post = proc.selector in (ProcedureSelector.POST_ON_COMPLETION, ProcedureSelector.POST_NOW_AND_ON_COMPLETION) or (
        proc.selector == ProcedureSelector.POST_ON_EXCEPTION and result is not _R.COMPLETED
    )
    if post:
        response = ProcedureResponse(
            number=proc.number,
            mfg=proc.mfg,
            selector=proc.selector,
            seq_nbr=proc.seq_nbr,
            result_code=int(result),
            resp_data=resp.ljust(MAX_RESP, b"\x00"),
        )
        meter.st8 = ST8.build(response, ctx)
    return ResponseCode.OK


def run_procedure(meter: SimMeter, proc: ProcedureInitiate, now: float, *, user_id: int = 1) -> tuple[ProcedureResult, bytes]:
    """Run one procedure: (result code, RESP_DATA)."""
    order: Literal["big", "little"] = "big" if meter.config.big_endian else "little"
    n, p = proc.number, proc.params
    if proc.mfg:
        if n != 0:
            return _R.UNRECOGNIZED_PROCEDURE, b""
        err = meter.run_metrology_check(now, user_id=user_id)
        failed = meter.fault_active(FaultKind.METROLOGY, now)
        return _R.COMPLETED, err.to_bytes(2, order, signed=True) + bytes((2 if failed else 0,))
    if n == ProcedureNumber.CHANGE_END_DEVICE_MODE:
        if len(p) < 1:
            return _R.INVALID_PARAMETER, b""
        meter.mode = p[0] & int(EdMode.METERING | EdMode.TEST_MODE | EdMode.METER_SHOP_MODE | EdMode.FACTORY)
        return _R.COMPLETED, b""
    if n == ProcedureNumber.CLEAR_STD_STATUS_FLAGS:
        meter.clear_status(std=True, mfg=False)
        return _R.COMPLETED, b""
    if n == ProcedureNumber.CLEAR_MFG_STATUS_FLAGS:
        meter.clear_status(std=False, mfg=True)
        return _R.COMPLETED, b""
    if n == ProcedureNumber.REMOTE_RESET:
        if len(p) < 1:
            return _R.INVALID_PARAMETER, b""
        if p[0] & RemoteResetAction.DEMAND_RESET:
            meter.demand_reset(now, user_id=user_id)
        return _R.COMPLETED, b""
    if n == ProcedureNumber.SET_DATE_TIME:
        return _set_time(meter, p, now), b""
    if n == ProcedureNumber.EXECUTE_DIAGNOSTICS:
        failing = meter.run_self_test(now, user_id=user_id)
        return _R.COMPLETED, failing.to_bytes(4, order)
    return _R.UNRECOGNIZED_PROCEDURE, b""


def _set_time(meter: SimMeter, params: bytes, now: float) -> ProcedureResult:
    """SP10: set-mask + LTIME_DATE + TIME_DATE_QUAL (layout [L], facts 4.6)."""
    fmt = context_for(meter.config, meter.identity.ed_class).format
    size = time_size(fmt.tm_format, long=True)
    if len(params) < 1 + size or params[0] == 0:
        return _R.INVALID_PARAMETER
    try:
        when = decode_time(params[1 : 1 + size], fmt.tm_format, fmt.data_order, long=True)
    except (CodecError, ValueError, OverflowError):
        return _R.INVALID_PARAMETER
    if when is None:
        return _R.INVALID_PARAMETER
    target = (when - EPOCH).total_seconds()
    if not meter.set_clock(target, now):
        return _R.TIMING_CONSTRAINT
    return _R.COMPLETED
