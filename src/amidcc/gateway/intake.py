"""Event intake: pushed alarms, event-log reads and ST3 status reads become logged, classified
:class:`~amidcc.events.MeterEvent` s, and critical ones become trouble events at once.

Theory of operation. Three sources feed one path (:meth:`EventIntake.ingest`):

* **pushed alarms**: the C12.22 link's ``on_alarm(address, services, now)``. amidcc meters push a
  full write of an ST76 fragment (header + the new entries, in the meter's ST71 format) and a full
  write of ST3 (the simulator's format, ``amidcc.simulators.alarms``); :func:`decode_alarm` reads
  them with the meter's table context;
* **event-log reads**: ST76 (and ST74) decoded by :mod:`amidcc.codecs.c1219`; only the valid
  entries count (:func:`valid_event_entries`), and re-reading a log stores nothing twice (the event
  log's natural key, checked before writing so that only new events go on);
* **ST3 status reads**: a flag is logged when it *rises* for that meter (the last flags seen per
  meter are kept), never again while it stays set.

Each event is classified (:mod:`amidcc.gateway.classify`), tagged with its component, stored with
the registry's context (account, premise, equipment) and counted in ``amidcc_events_total``.
Critical events (FR1, FR17, FR16 safety/service) become one :class:`~amidcc.events.TroubleEvent`
per meter and failure type, submitted to the sink in the same call (NFR4); non-critical failures
are held and reported by :meth:`EventIntake.report_pending`, called once per read/billing period
(FR16). Before a trouble event leaves, the :class:`Suppression` predicate is asked whether the meter
is in a known outage, maintenance window or has an active order (FR18); a suppressed trouble event
is recorded (:attr:`EventIntake.suppressed`), not sent. A failure already reported for the same
meter within ``repeat_holdoff`` is recorded the same way (an alarm followed by a status read must
not open two orders).

:class:`EventIntake` is pure: time comes in as ``now``. :class:`EventReader` is the thin Twisted
part that reads tables through the meter client and feeds the intake.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from amidcc.codecs.c1219 import ST3, ST76, EdModeStatus, EventLogData, TableContext
from amidcc.codecs.c1219.logs import EventEntry, HistoryEntry, HistoryLogData, ListStatus
from amidcc.codecs.errors import CodecError, RemoteProtocolError
from amidcc.codecs.psem import FullWrite, decode_request
from amidcc.events import (
    EventClass,
    EventSource,
    FailureType,
    MeterEvent,
    TroubleEvent,
    TroubleSink,
)

from .classify import DEFAULT_CLASSIFIER, Classification, Classifier
from .eventlog import EventContext, EventLog
from .links.base import MeterAddress
from .meters import TableReader as MeterTableReader
from .metrics import GatewayMetrics
from .registry import MeterRecord

__all__ = [
    "DecodedAlarm",
    "EventIntake",
    "EventReader",
    "IntakeResult",
    "NoSuppression",
    "Suppression",
    "SuppressedTrouble",
    "SuppressionWindow",
    "WindowSuppression",
    "decode_alarm",
    "valid_event_entries",
    "valid_history_entries",
]

log = Logger(namespace="amidcc.gateway.intake")

#: The ``event_class`` label value of ``amidcc_events_total`` for each class.
CLASS_LABELS = {cls: cls.name.lower() for cls in EventClass}

_EPOCH = datetime(1970, 1, 1)
_HOUR = 3600.0


# -- suppression (FR18) -----------------------------------------------------------------------


class Suppression(Protocol):
    """Whether a trouble event is explained and must not leave (FR18).

    Return a reason (``"planned outage 4711"``, ``"active order 17"``) to suppress, None to send.
    """

    def reason(self, trouble: TroubleEvent, now: float) -> str | None:
        """Why ``trouble`` is suppressed at ``now``, or None."""
        ...


class NoSuppression:
    """The default: nothing is suppressed."""

    def reason(self, trouble: TroubleEvent, now: float) -> str | None:
        return None


@dataclass(frozen=True, kw_only=True, slots=True)
class SuppressionWindow:
    """A known outage, maintenance window or active order covering some meters for a while."""

    reason: str
    """What explains the failures (shown in the suppressed record)."""
    start: float
    """Start of the window (seconds since the epoch)."""
    end: float
    """End of the window (exclusive)."""
    meters: frozenset[str] | None = None
    """Meter ids covered; None with ``premises`` None covers every meter."""
    premises: frozenset[str] | None = None
    """Premises covered (an outage on a feeder, a maintenance visit)."""
    failure_types: frozenset[FailureType] | None = None
    """Only these failure types are explained; None explains every one."""

    def covers(self, trouble: TroubleEvent, now: float) -> bool:
        """Whether this window explains ``trouble`` at ``now``."""
        if not self.start <= now < self.end:
            return False
        if self.failure_types is not None and trouble.failure_type not in self.failure_types:
            return False
        if self.meters is None and self.premises is None:
            return True
        in_meters = self.meters is not None and trouble.meter_id in self.meters
        in_premises = self.premises is not None and trouble.premise in self.premises
        return in_meters or in_premises


class WindowSuppression:
    """A :class:`Suppression` from a list of windows (the MMS or an operator adds them)."""

    def __init__(self, windows: Iterable[SuppressionWindow] = ()) -> None:
        self.windows: list[SuppressionWindow] = list(windows)

    def add(self, window: SuppressionWindow) -> None:
        """Add a window."""
        self.windows.append(window)

    def expire(self, now: float) -> int:
        """Drop windows that ended before ``now``; return how many."""
        before = len(self.windows)
        self.windows = [w for w in self.windows if w.end > now]
        return before - len(self.windows)

    def reason(self, trouble: TroubleEvent, now: float) -> str | None:
        for window in self.windows:
            if window.covers(trouble, now):
                return window.reason
        return None


@dataclass(frozen=True, kw_only=True, slots=True)
class SuppressedTrouble:
    """A trouble event that did not leave the gateway, and why."""

    trouble: TroubleEvent
    """The trouble event as it would have been sent."""
    reason: str
    """The suppression's reason, or "already reported" for a repeat within the hold-off."""
    at: float
    """When it was suppressed."""


@dataclass(frozen=True, kw_only=True, slots=True)
class IntakeResult:
    """What one call of the intake did."""

    logged: tuple[MeterEvent, ...] = ()
    """Events newly stored in the event log (duplicates of stored ones are not)."""
    duplicates: int = 0
    """Events already in the log (a log read again, an alarm then its log entry)."""
    reported: tuple[TroubleEvent, ...] = ()
    """Trouble events submitted to the sink."""
    suppressed: tuple[SuppressedTrouble, ...] = ()
    """Trouble events suppressed (FR18) or held back as repeats."""
    held: tuple[MeterEvent, ...] = ()
    """Non-critical failures kept for the next period's report (FR16)."""


# -- decoding the sources (pure) --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class DecodedAlarm:
    """The content of one pushed alarm."""

    entries: tuple[EventEntry, ...]
    """The event-log entries it carries, oldest first."""
    status: EdModeStatus | None
    """The ST3 status it carries, if any."""


def _circular(count: int, valid: int, last: int, newest_first: bool) -> list[int]:
    """Indices of the ``valid`` entries of a list of ``count``, oldest first."""
    if count == 0 or valid <= 0:
        return []
    valid = min(valid, count)
    step = 1 if newest_first else -1  # walking from the newest entry towards older ones
    newest_to_oldest = [(last + step * k) % count for k in range(valid)]
    return newest_to_oldest[::-1]


def valid_event_entries(data: EventLogData) -> list[EventEntry]:
    """The valid entries of an ST76 read, oldest first (NBR_VALID_ENTRIES back from the newest at
    LAST_ENTRY_ELEMENT, in the direction LIST_STATUS ORDER says; protocol-facts 4.10)."""
    newest_first = bool(data.list_status & ListStatus.ORDER)
    idx = _circular(
        len(data.entries), data.nbr_valid_entries, data.last_entry_element, newest_first
    )
    return [data.entries[i] for i in idx]


def valid_history_entries(data: HistoryLogData) -> list[HistoryEntry]:
    """The valid entries of an ST74 read, oldest first (as :func:`valid_event_entries`)."""
    newest_first = bool(data.list_status & ListStatus.ORDER)
    idx = _circular(
        len(data.entries), data.nbr_valid_entries, data.last_entry_element, newest_first
    )
    return [data.entries[i] for i in idx]


def decode_alarm(services: Sequence[bytes], ctx: TableContext) -> DecodedAlarm:
    """Decode an amidcc alarm: a full write of an ST76 fragment, then optionally one of ST3.

    ``ctx`` must carry the meter's ST71 (and its ST0 for ST3's manufacturer status size). The
    fragment's entry count is its own header's NBR_VALID_ENTRIES. Raises
    :class:`~amidcc.codecs.errors.RemoteProtocolError` for anything else.
    """
    if ctx.st71 is None:
        raise ValueError("decoding an alarm needs the meter's ST71 in the table context")
    if not services:
        raise RemoteProtocolError("an alarm carries at least the table-76 write")
    first = decode_request(services[0])
    if not isinstance(first, FullWrite) or first.table_id & 0x07FF != 76 or first.table_id & 0x0800:
        raise RemoteProtocolError("an alarm's first service is a full write of table 76")
    if len(first.data) < 11:
        raise RemoteProtocolError(f"table-76 fragment of {len(first.data)} bytes: no header")
    count = int.from_bytes(first.data[1:3], ctx.format.data_order.byteorder)
    fragment_ctx = ctx.with_table(71, dataclasses.replace(ctx.st71, nbr_event_entries=count))
    entries = valid_event_entries(ST76.parse(first.data, fragment_ctx))
    status = None
    for raw in services[1:]:
        service = decode_request(raw)
        if isinstance(service, FullWrite) and service.table_id == 3:
            status = ST3.parse(service.data, ctx)
    return DecodedAlarm(entries=tuple(entries), status=status)


def epoch_seconds(when: datetime | None) -> float | None:
    """A C12.19 time (naive = UTC, as the table codecs give it) as seconds since the epoch."""
    if when is None:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return (when - _EPOCH).total_seconds()


def event_id(meter_id: str, time: float, seq: int | None, code: int, mfg: bool) -> str:
    """A stable event id from the event log's natural key (so a re-read makes the same id)."""
    key = f"{meter_id}|{time!r}|{seq}|{code}|{int(mfg)}".encode()
    return "ev-" + hashlib.sha256(key).hexdigest()[:24]


def _natural_key(e: MeterEvent) -> tuple[str, float, int | None, int, bool]:
    return (e.meter_id, e.time, e.seq, e.code, e.mfg)


# -- the intake -------------------------------------------------------------------------------


MeterLookup = Callable[[str], MeterRecord | None]
"""meter id -> the registry's record of it (``MeterRegistry.get``), or None."""


class EventIntake:
    """Normalise, classify, log, count and route meter events. Pure: time is an argument.

    :param eventlog: where events are stored (and how duplicates are recognised).
    :param sink: where trouble events go.
    :param meters: the registry lookup giving each meter's AP title, account, premise, equipment.
    :param classifier: the classification tables (deployment overrides, manufacturer tables).
    :param metrics: ``amidcc_events_total{event_class}`` is counted here.
    :param suppression: asked before each trouble event leaves (default: nothing suppressed).
    :param repeat_holdoff: seconds during which a failure already reported for a meter is not
        reported again (recorded as suppressed instead).
    :param keep_suppressed: how many suppressed records to keep in memory.
    """

    def __init__(
        self,
        *,
        eventlog: EventLog,
        sink: TroubleSink,
        meters: MeterLookup = lambda _meter_id: None,
        classifier: Classifier = DEFAULT_CLASSIFIER,
        metrics: GatewayMetrics | None = None,
        suppression: Suppression | None = None,
        repeat_holdoff: float = 6 * _HOUR,
        keep_suppressed: int = 1000,
    ) -> None:
        self.eventlog = eventlog
        self.sink = sink
        self.meters = meters
        self.classifier = classifier
        self.metrics = metrics
        self.suppression: Suppression = suppression if suppression is not None else NoSuppression()
        self.repeat_holdoff = repeat_holdoff
        self._suppressed: deque[SuppressedTrouble] = deque(maxlen=keep_suppressed)
        self._pending: list[MeterEvent] = []
        self._reported: dict[tuple[str, FailureType], float] = {}
        self._status: dict[str, tuple[int, int]] = {}
        self._seq = 0

    @property
    def suppressed(self) -> tuple[SuppressedTrouble, ...]:
        """The suppressed trouble events kept, oldest first."""
        return tuple(self._suppressed)

    @property
    def pending(self) -> tuple[MeterEvent, ...]:
        """Non-critical failures waiting for :meth:`report_pending` (FR16)."""
        return tuple(self._pending)

    # -- building events ----------------------------------------------------------------------

    def _manufacturer(self, meter_id: str) -> str | None:
        record = self.meters(meter_id)
        return None if record is None else record.manufacturer

    def make_event(
        self,
        meter_id: str,
        found: Classification,
        *,
        time: float | None,
        now: float,
        source: EventSource,
        seq: int | None = None,
        argument: bytes = b"",
        ap_title: str | None = None,
    ) -> MeterEvent:
        """A :class:`MeterEvent` from a classification; a missing meter time is ``now``."""
        when = now if time is None else time
        if ap_title is None:
            record = self.meters(meter_id)
            ap_title = None if record is None else record.ap_title
        return MeterEvent(
            event_id=event_id(meter_id, when, seq, found.code, found.mfg),
            meter_id=meter_id,
            ap_title=ap_title,
            time=when,
            code=found.code,
            mfg=found.mfg,
            name=found.name,
            argument=bytes(argument),
            event_class=found.event_class,
            component=found.component,
            critical=found.critical,
            failure_type=found.failure_type,
            source=source,
            received=now,
            seq=seq,
        )

    def _entry_event(
        self,
        meter_id: str,
        entry: EventEntry | HistoryEntry,
        *,
        now: float,
        source: EventSource,
        manufacturer: str | None,
    ) -> MeterEvent:
        found = self.classifier.classify_event(
            int(entry.code), entry.mfg, manufacturer=manufacturer
        )
        seq: int | None
        if isinstance(entry, EventEntry):
            time, seq = epoch_seconds(entry.event_time), entry.event_seq_nbr
        else:
            time, seq = epoch_seconds(entry.history_time), entry.history_seq_nbr
        return self.make_event(
            meter_id, found, time=time, now=now, source=source, seq=seq, argument=entry.argument
        )

    def _entry_events(
        self,
        meter_id: str,
        entries: Iterable[EventEntry | HistoryEntry],
        *,
        now: float,
        source: EventSource,
    ) -> list[MeterEvent]:
        manufacturer = self._manufacturer(meter_id)
        return [
            self._entry_event(meter_id, e, now=now, source=source, manufacturer=manufacturer)
            for e in entries
        ]

    def status_events(
        self,
        meter_id: str,
        status: EdModeStatus,
        *,
        now: float,
        byteorder: Literal["little", "big"] = "little",
        source: EventSource = EventSource.STATUS_READ,
    ) -> list[MeterEvent]:
        """Events for the ST3 flags that rose since this meter's last status (and remember it).

        ``byteorder`` is the meter's DATA_ORDER, for its ED_MFG_STATUS bytes.
        """
        std = int(status.ed_std_status1) & 0x3FFF
        mfg = int.from_bytes(status.ed_mfg_status, byteorder) if status.ed_mfg_status else 0
        old_std, old_mfg = self._status.get(meter_id, (0, 0))
        self._status[meter_id] = (std, mfg)
        rose_std, rose_mfg = std & ~old_std, mfg & ~old_mfg
        manufacturer = self._manufacturer(meter_id)
        events: list[MeterEvent] = []
        for bit in range(16):
            if rose_std & (1 << bit):
                (found,) = self.classifier.classify_status(1 << bit)
                events.append(self.make_event(
                    meter_id, found, time=now, now=now, source=source, seq=bit,
                    argument=std.to_bytes(2, byteorder),
                ))  # fmt: skip
        for bit in range(rose_mfg.bit_length()):
            if rose_mfg & (1 << bit):
                for found in self.classifier.classify_mfg_status(
                    1 << bit, manufacturer=manufacturer
                ):
                    events.append(self.make_event(
                        meter_id, found, time=now, now=now, source=source, seq=bit,
                        argument=bytes(status.ed_mfg_status),
                    ))  # fmt: skip
        return events

    def forget_status(self, meter_id: str) -> None:
        """Forget a meter's last status (after an exchange: the new meter starts clean)."""
        self._status.pop(meter_id, None)

    # -- the sources --------------------------------------------------------------------------

    def ingest_alarm(
        self, meter_id: str, services: Sequence[bytes], ctx: TableContext, *, now: float
    ) -> IntakeResult:
        """A pushed alarm (see :func:`decode_alarm`); its ST3, if any, counts as a status read."""
        alarm = decode_alarm(services, ctx)
        events = self._entry_events(meter_id, alarm.entries, now=now, source=EventSource.PUSHED)
        if alarm.status is not None:
            order = ctx.format.data_order.byteorder
            events += self.status_events(
                meter_id, alarm.status, now=now, byteorder=order, source=EventSource.PUSHED
            )
        return self.ingest(events, now=now)

    def ingest_event_log(
        self,
        meter_id: str,
        data: EventLogData,
        *,
        now: float,
        source: EventSource = EventSource.LOG_READ,
    ) -> IntakeResult:
        """An ST76 read: its valid entries."""
        entries = valid_event_entries(data)
        return self.ingest(self._entry_events(meter_id, entries, now=now, source=source), now=now)

    def ingest_history_log(self, meter_id: str, data: HistoryLogData, *, now: float) -> IntakeResult:
        """An ST74 read: its valid entries."""
        events = self._entry_events(
            meter_id, valid_history_entries(data), now=now, source=EventSource.LOG_READ
        )
        return self.ingest(events, now=now)

    def ingest_status(
        self,
        meter_id: str,
        status: EdModeStatus,
        *,
        now: float,
        byteorder: Literal["little", "big"] = "little",
    ) -> IntakeResult:
        """An ST3 read: only the flags that rose since the last one are logged."""
        return self.ingest(self.status_events(meter_id, status, now=now, byteorder=byteorder), now=now)

    # -- the common path ----------------------------------------------------------------------

    def _context(self, record: MeterRecord | None) -> EventContext | None:
        if record is None:
            return None  # the event log's own lookup (if any) decides
        return EventContext(
            account=record.account,
            premise=record.premise,
            meter_type=record.meter_type,
            module=record.module,
            manufacturer=record.manufacturer,
            lot=record.lot,
        )

    def _new_only(self, events: Sequence[MeterEvent]) -> list[MeterEvent]:
        """The events not already in the log (nor twice in ``events``), in order."""
        seen: set[tuple[str, float, int | None, int, bool]] = set()
        for meter_id in {e.meter_id for e in events}:
            mine = [e.time for e in events if e.meter_id == meter_id]
            stored = self.eventlog.query(
                meter_id=meter_id, since=min(mine), until=max(mine) + 1.0
            )
            seen.update(_natural_key(e) for e in stored)
        fresh: list[MeterEvent] = []
        for event in events:
            key = _natural_key(event)
            if key not in seen:
                seen.add(key)
                fresh.append(event)
        return fresh

    def ingest(self, events: Sequence[MeterEvent], *, now: float) -> IntakeResult:
        """Log the new ones among ``events``, count them, report critical failures at once and
        hold the other failures for :meth:`report_pending`."""
        if not events:
            return IntakeResult()
        fresh = self._new_only(events)
        by_meter: dict[str, list[MeterEvent]] = {}
        for event in fresh:
            by_meter.setdefault(event.meter_id, []).append(event)
        for meter_id, mine in by_meter.items():
            self.eventlog.append_many(mine, self._context(self.meters(meter_id)))
        if self.metrics is not None:
            for event in fresh:
                self.metrics.event(CLASS_LABELS[event.event_class])
        critical = [e for e in fresh if e.critical and e.failure_type is not None]
        held = [e for e in fresh if not e.critical and e.failure_type is not None]
        self._pending.extend(held)
        reported, suppressed = self._route(critical, now=now, immediate=True)
        return IntakeResult(
            logged=tuple(fresh),
            duplicates=len(events) - len(fresh),
            reported=tuple(reported),
            suppressed=tuple(suppressed),
            held=tuple(held),
        )

    def report_pending(self, now: float) -> IntakeResult:
        """FR16: send the held non-critical failures (one trouble event per meter and failure)."""
        held, self._pending = self._pending, []
        reported, suppressed = self._route(held, now=now, immediate=False)
        return IntakeResult(reported=tuple(reported), suppressed=tuple(suppressed))

    # -- trouble events -----------------------------------------------------------------------

    def _route(
        self, failures: Sequence[MeterEvent], *, now: float, immediate: bool
    ) -> tuple[list[TroubleEvent], list[SuppressedTrouble]]:
        groups: dict[tuple[str, FailureType], list[MeterEvent]] = {}
        for event in failures:
            assert event.failure_type is not None
            groups.setdefault((event.meter_id, event.failure_type), []).append(event)
        reported: list[TroubleEvent] = []
        suppressed: list[SuppressedTrouble] = []
        for key, evidence in groups.items():
            trouble = self._trouble(evidence, now=now, critical=immediate)
            reason = self._suppressed_because(key, trouble, now)
            if reason is not None:
                record = SuppressedTrouble(trouble=trouble, reason=reason, at=now)
                self._suppressed.append(record)
                suppressed.append(record)
                log.info(
                    "trouble {failure} on {meter} suppressed: {reason}",
                    failure=trouble.failure_type.value, meter=trouble.meter_id, reason=reason,
                )  # fmt: skip
                continue
            self._reported[key] = now
            self._submit(trouble)
            reported.append(trouble)
        return reported, suppressed

    def _suppressed_because(
        self, key: tuple[str, FailureType], trouble: TroubleEvent, now: float
    ) -> str | None:
        reason = self.suppression.reason(trouble, now)
        if reason is not None:
            return reason
        last = self._reported.get(key)
        if last is not None and now - last < self.repeat_holdoff:
            return f"already reported {now - last:.0f}s ago"
        return None

    def _submit(self, trouble: TroubleEvent) -> None:
        try:
            self.sink.submit(trouble)
        except Exception:  # a failing subscriber must not lose the rest of the batch
            log.failure("trouble sink failed on {trouble_id}", trouble_id=trouble.trouble_id)

    def _trouble(self, evidence: Sequence[MeterEvent], *, now: float, critical: bool) -> TroubleEvent:
        first = evidence[0]
        assert first.failure_type is not None
        record = self.meters(first.meter_id)
        digest = hashlib.sha256("|".join(e.event_id for e in evidence).encode()).hexdigest()
        return TroubleEvent(
            trouble_id="tr-" + digest[:24],
            meter_id=first.meter_id,
            failure_type=first.failure_type,
            component=first.component,
            event_class=min(e.event_class for e in evidence),
            critical=critical,
            detected=now,
            ap_title=first.ap_title if record is None else record.ap_title,
            account=None if record is None else record.account,
            premise=None if record is None else record.premise,
            meter_type=None if record is None else record.meter_type,
            module=None if record is None else record.module,
            manufacturer=None if record is None else record.manufacturer,
            lot=None if record is None else record.lot,
            evidence=tuple(evidence),
            details=(
                ("sources", ",".join(sorted({e.source.value for e in evidence}))),
                ("events", ",".join(e.name for e in evidence)),
            ),
        )


# -- the Twisted side: reading tables through the meter client ---------------------------------


class TableReader(MeterTableReader, Protocol):
    """What :class:`EventReader` needs of :class:`amidcc.gateway.meters.MeterClient`."""

    def table_context(self, meter_id: str) -> TableContext | None:
        """The meter's cached table context, if any table was read."""
        ...


class Clock(Protocol):
    def seconds(self) -> float: ...


class EventReader:
    """Feeds the intake from the meter client: the alarm hook, event-log and status reads.

    :param fallback_context: used to decode an alarm when the meter's ST71 cannot be read (the
        meter may be failing); None drops such an alarm with an error in the log.
    """

    def __init__(
        self,
        intake: EventIntake,
        client: TableReader,
        clock: Clock,
        *,
        metrics: GatewayMetrics | None = None,
        fallback_context: TableContext | None = None,
    ) -> None:
        self.intake = intake
        self.client = client
        self.clock = clock
        self.metrics = metrics
        self.fallback_context = fallback_context

    def on_alarm(
        self, address: MeterAddress, services: Sequence[bytes], now: float
    ) -> Deferred[IntakeResult]:
        """The C12.22 link's ``on_alarm`` hook."""
        return Deferred.fromCoroutine(self._alarm(address, list(services), now))

    async def _alarm(self, address: MeterAddress, services: list[bytes], now: float) -> IntakeResult:
        ctx = await self._log_context(address.meter_id)
        try:
            return self.intake.ingest_alarm(address.meter_id, services, ctx, now=now)
        except (CodecError, ValueError) as exc:
            if self.metrics is not None:
                self.metrics.link(address.link.value).error("malformed")
            log.error("alarm from {meter} undecodable: {error}", meter=address.meter_id, error=exc)
            raise

    async def _log_context(self, meter_id: str) -> TableContext:
        ctx = self.client.table_context(meter_id)
        if ctx is not None and ctx.st71 is not None:
            return ctx
        try:
            await self.client.read_table(meter_id, 71)
        except Exception as exc:
            if self.fallback_context is None:
                raise
            log.warn(
                "ST71 of {meter} unreadable ({error}); decoding its alarm with the fallback",
                meter=meter_id, error=exc,
            )  # fmt: skip
            return self.fallback_context
        ctx = self.client.table_context(meter_id)
        if ctx is None or ctx.st71 is None:
            raise ValueError(f"{meter_id}: no ST71 context after reading it")
        return ctx

    def read_event_log(self, meter_id: str) -> Deferred[IntakeResult]:
        """Read ST76 and ingest its valid entries."""
        return Deferred.fromCoroutine(self._read_log(meter_id))

    async def _read_log(self, meter_id: str) -> IntakeResult:
        read = await self.client.read_table(meter_id, 76)
        if not isinstance(read.value, EventLogData):
            raise ValueError(f"{meter_id}: ST76 read gave no decoded event log")
        return self.intake.ingest_event_log(meter_id, read.value, now=self.clock.seconds())

    def read_status(self, meter_id: str) -> Deferred[IntakeResult]:
        """Read ST3 and log the flags that rose."""
        return Deferred.fromCoroutine(self._read_status(meter_id))

    async def _read_status(self, meter_id: str) -> IntakeResult:
        read = await self.client.read_table(meter_id, 3)
        if not isinstance(read.value, EdModeStatus):
            raise ValueError(f"{meter_id}: ST3 read gave no decoded status")
        ctx = self.client.table_context(meter_id)
        order = ctx.format.data_order.byteorder if ctx is not None else "little"
        return self.intake.ingest_status(
            meter_id, read.value, now=self.clock.seconds(), byteorder=order
        )

    def report_pending(self) -> IntakeResult:
        """The periodic FR16 report (a job step)."""
        return self.intake.report_pending(self.clock.seconds())
