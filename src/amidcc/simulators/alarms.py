"""The unsolicited alarm message a meter pushes for a critical failure.

Format (amidcc's choice; the public sources define no standard "exception report" layout):

* a plaintext C12.22 EPSEM with the ED_CLASS_INCLUDED bit and the meter's 4-byte ED class (S6: an
  ED class "shall be included in all unsolicited and one-way messages"), response control 2
  ("never respond"), security as the transport applies it;
* service 1: a Full Write (``40``) of table 76 carrying the new event entries: an ST76 header
  (``NBR_VALID_ENTRIES`` = the number of entries carried, ``LAST_ENTRY_SEQ_NBR`` the last one's
  sequence number) followed by exactly that many EVENT_LOG_DATA entries in the meter's ST71 format;
* service 2: a Full Write of table 3 (ED_MODE_STATUS) with the status at that moment.

A head-end decodes it with the code it uses for an event-log read: :func:`decode_alarm_services`
takes the meter's ST71 (or a context built from it) and sets ``NBR_EVENT_ENTRIES`` to the header's
count. The transport wraps :attr:`Alarm.body` in an ACSE APDU whose calling AE qualifier carries
the NOTIFICATION (and URGENT) bits.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Literal

from amidcc.codecs.c1219 import ST3, ST76, EdModeStatus, EventLogData, ListStatus, TableContext
from amidcc.codecs.c1222 import Epsem, ResponseControl, encode_epsem
from amidcc.codecs.errors import RemoteProtocolError
from amidcc.codecs.psem import FullWrite, decode_request, encode_request

from .diagnostics import Alarm, EventRecord
from .faults import FAULTS, EventClass, FaultKind

if TYPE_CHECKING:
    from .meter import SimMeter

__all__ = ["ALARM_TABLES", "alarm_services", "decode_alarm_services", "make_alarm"]

#: Tables written by an alarm, in order.
ALARM_TABLES = (76, 3)


def _entries_ctx(ctx: TableContext, count: int) -> TableContext:
    log = ctx.require(ctx.st71, "ST71", "alarm")
    return ctx.with_table(71, dataclasses.replace(log, nbr_event_entries=count))


def make_alarm(meter: SimMeter, t: float, code: int, kind: FaultKind, *, restoration: bool = False) -> Alarm:
    """The alarm for the event ``code`` the meter just logged at ``t``."""
    from .tables import _st3, context_for

    records = [r for r in meter.event_records(t) if r.code == int(code) and r.time == float(int(t))]
    events = tuple(records[-1:])
    std, mfg = meter.status(t)
    event_class = EventClass.SERVICE if restoration else FAULTS[kind].event_class
    ctx = context_for(meter.config, meter.identity.ed_class)
    services = [
        encode_request(FullWrite(table_id=76, data=_st76_fragment(meter, events, ctx))),
        encode_request(FullWrite(table_id=3, data=_st3(meter, t))),
    ]
    body = encode_epsem(
        Epsem(services=tuple(services), response_control=ResponseControl.NEVER, ed_class=meter.identity.ed_class)
    )
    return Alarm(
        meter_id=meter.meter_id,
        time=t,
        event_code=int(code),
        kind=None if restoration else kind,
        event_class=event_class,
        events=events,
        std_status=std,
        mfg_status=mfg,
        body=body,
    )


def _st76_fragment(meter: SimMeter, events: tuple[EventRecord, ...], ctx: TableContext) -> bytes:
    from .tables import event_entry

    entries = tuple(event_entry(meter, r) for r in events)
    last = events[-1].seq if events else 0
    value = EventLogData(
        list_status=ListStatus(0),
        nbr_valid_entries=len(entries),
        last_entry_element=max(0, len(entries) - 1),
        last_entry_seq_nbr=last,
        nbr_unread_entries=len(entries),
        entries=entries,
    )
    return ST76.build(value, _entries_ctx(ctx, len(entries)))


def alarm_services(alarm: Alarm) -> list[bytes]:
    """The PSEM service bytes of an alarm (what its EPSEM body carries)."""
    from amidcc.codecs.c1222 import decode_epsem

    return list(decode_epsem(alarm.body).services)


def decode_alarm_services(services: list[bytes] | tuple[bytes, ...], ctx: TableContext) -> tuple[EventLogData, EdModeStatus | None]:
    """Head-end side: the event entries (and status) of an alarm's services, decoded with the
    meter's table context (ST0 + ST71). Raises RemoteProtocolError on anything else."""
    if not services:
        raise RemoteProtocolError("an alarm carries at least the table-76 write")
    first = decode_request(services[0])
    if not isinstance(first, FullWrite) or first.table_id & 0x07FF != 76:
        raise RemoteProtocolError("an alarm's first service is a full write of table 76")
    if len(first.data) < 3:
        raise RemoteProtocolError("table-76 fragment too short")
    count = ST76_count(first.data, ctx)
    log = ST76.parse(first.data, _entries_ctx(ctx, count))
    status = None
    if len(services) > 1:
        second = decode_request(services[1])
        if isinstance(second, FullWrite) and second.table_id & 0x07FF == 3:
            status = ST3.parse(second.data, ctx)
    return log, status


def ST76_count(data: bytes, ctx: TableContext) -> int:  # noqa: N802 - named for the table
    """NBR_VALID_ENTRIES from an ST76 header (bytes 1-2 in DATA_ORDER)."""
    order: Literal["big", "little"] = "big" if int(ctx.format.data_order) else "little"
    return int.from_bytes(data[1:3], order)
