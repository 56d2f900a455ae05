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
(FR16).

What is history and what is new. Every event is logged (FR10-FR12), but only new ones may raise
trouble: an entry *read from a log* stamped more than ``report_max_age`` before ``now``, or before
the meter's installation in the registry (less ``install_grace``: the installation self-test runs
before the meter registers), is history (:attr:`IntakeResult.history`). The first read of a meter
with weeks of log must not open an order per old entry. Pushed entries and status flags are new by
definition (the meter sends or shows them now, whatever its clock says).

Outages are not meter trouble. Power events (:attr:`Classification.power`: power down, last gasp,
power up) and power-outage flags are logged and counted (:attr:`IntakeResult.outage`) and never
become trouble. Log and pushed entries move the :class:`~amidcc.gateway.suppression.OutageView`
(:attr:`EventIntake.outages`): a power-down opens an outage for the meter (unless it is history),
the power-up closes it. Before a trouble event leaves, that view is asked first (trouble for a
meter in an outage, or stamped during one, is explained: FR18), then the :class:`Suppression`
given (planned outages, maintenance windows, active orders); a suppressed trouble event is
recorded (:attr:`EventIntake.suppressed`) with its reason, not sent. A failure already reported for
the same meter within ``repeat_holdoff`` is recorded the same way (an alarm followed by a status
read must not open two orders).

:class:`EventIntake` is pure: time comes in as ``now``. :class:`EventReader` is the thin Twisted
part that reads tables through the meter client and feeds the intake.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter, deque
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

from .classify import DEFAULT_CLASSIFIER, Classification, Classifier, PowerChange
from .eventlog import EventContext, EventLog
from .links.base import MeterAddress
from .meters import TableReader as MeterTableReader
from .metrics import GatewayMetrics
from .registry import MeterRecord
from .suppression import (
    AnySuppression,
    NoSuppression,
    Outage,
    OutageView,
    SuppressedTrouble,
    Suppression,
    SuppressionWindow,
    WindowSuppression,
)

__all__ = [
    "AnySuppression",
    "DecodedAlarm",
    "EventIntake",
    "EventReader",
    "IntakeResult",
    "IntakeTotals",
    "NoSuppression",
    "Outage",
    "OutageView",
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
_DAY = 24 * _HOUR


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
    history: tuple[MeterEvent, ...] = ()
    """Events among ``logged`` that are history (read from a log, older than ``report_max_age`` or
    than the meter's installation): logged, never trouble."""
    outage: tuple[MeterEvent, ...] = ()
    """Power events and power-outage flags among ``logged``: logged, never meter trouble."""
    opened: tuple[Outage, ...] = ()
    """Outages this call opened in the outage view."""
    closed: tuple[Outage, ...] = ()
    """Outages this call closed (a power-up, a restoration)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class IntakeTotals:
    """What the intake did since it started (for metrics and the demo's summary)."""

    logged: int = 0
    """Events stored in the event log."""
    duplicates: int = 0
    """Events already in the log."""
    history: int = 0
    """Events logged as history (never trouble)."""
    outage: int = 0
    """Power events and power-outage flags logged (never meter trouble)."""
    reported: int = 0
    """Trouble events submitted to the sink."""
    suppressed: int = 0
    """Trouble events suppressed (FR18, repeats)."""
    held: int = 0
    """Non-critical failures held for the period report."""


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
    :param report_max_age: log entries stamped longer than this before ``now`` are history
        (``events.report_max_age``); keep it above the event-log read interval.
    :param install_grace: log entries stamped before the meter's installation less this are
        history (``events.install_grace``).
    :param outages: the outage view (default: a new one; ``events.outage_expiry`` sets its
        ``expiry``); asked before ``suppression``.
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
        report_max_age: float = _DAY,
        install_grace: float = _HOUR,
        outages: OutageView | None = None,
    ) -> None:
        if report_max_age <= 0 or install_grace < 0:
            raise ValueError("report_max_age must be positive and install_grace not negative")
        self.eventlog = eventlog
        self.sink = sink
        self.meters = meters
        self.classifier = classifier
        self.metrics = metrics
        self.suppression: Suppression = suppression if suppression is not None else NoSuppression()
        self.repeat_holdoff = repeat_holdoff
        self.report_max_age = report_max_age
        self.install_grace = install_grace
        self.outages = outages if outages is not None else OutageView()
        self._totals: Counter[str] = Counter()
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

    @property
    def totals(self) -> IntakeTotals:
        """What the intake did since it started."""
        names = (f.name for f in dataclasses.fields(IntakeTotals))
        return IntakeTotals(**{name: self._totals[name] for name in names})

    def in_outage(self, now: float) -> tuple[Outage, ...]:
        """The meters whose latest power event is a power-down, as open outages (FR18)."""
        return self.outages.in_outage(now)

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
        flags: list[MeterEvent] = []
        if alarm.status is not None:
            order = ctx.format.data_order.byteorder
            flags = self.status_events(
                meter_id, alarm.status, now=now, byteorder=order, source=EventSource.PUSHED
            )
        return self._ingest(events, flags, now=now)

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
        flags = self.status_events(meter_id, status, now=now, byteorder=byteorder)
        return self._ingest((), flags, now=now)

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
        """Log the new ones among ``events`` (entries the meter stamped: log or pushed), count
        them, report new critical failures at once and hold the other new failures for
        :meth:`report_pending`; history and power events are only logged (module docstring)."""
        return self._ingest(events, (), now=now)

    def _ingest(
        self, entries: Sequence[MeterEvent], flags: Sequence[MeterEvent], *, now: float
    ) -> IntakeResult:
        """``entries`` carry the meter's own time and move the outage view; ``flags`` (status
        flags, latched conditions) never do."""
        events = [*entries, *flags]
        if not events:
            return IntakeResult()
        fresh = self._new_only(events)
        self._store(fresh)
        history, outage, opened, closed = self._history_and_outages(fresh, flags, now)
        quiet = {id(e) for e in (*history, *outage)}
        failures = [e for e in fresh if id(e) not in quiet and e.failure_type is not None]
        held = [e for e in failures if not e.critical]
        self._pending.extend(held)
        critical = [e for e in failures if e.critical]
        reported, suppressed = self._route(critical, now=now, immediate=True)
        return self._tally(IntakeResult(
            logged=tuple(fresh), duplicates=len(events) - len(fresh), reported=tuple(reported),
            suppressed=tuple(suppressed), held=tuple(held), history=tuple(history),
            outage=tuple(outage), opened=tuple(opened), closed=tuple(closed),
        ))  # fmt: skip

    def _store(self, fresh: Sequence[MeterEvent]) -> None:
        by_meter: dict[str, list[MeterEvent]] = {}
        for event in fresh:
            by_meter.setdefault(event.meter_id, []).append(event)
        for meter_id, mine in by_meter.items():
            self.eventlog.append_many(mine, self._context(self.meters(meter_id)))
        if self.metrics is not None:
            for event in fresh:
                self.metrics.event(CLASS_LABELS[event.event_class])

    def _tally(self, result: IntakeResult) -> IntakeResult:
        counts = self._totals
        counts["duplicates"] += result.duplicates
        for name in ("logged", "history", "outage", "reported", "suppressed", "held"):
            counts[name] += len(getattr(result, name))
        return result

    # -- history and outages ------------------------------------------------------------------

    def _power(self, event: MeterEvent) -> PowerChange | None:
        manufacturer = self._manufacturer(event.meter_id) if event.mfg else None
        found = self.classifier.classify_event(event.code, event.mfg, manufacturer=manufacturer)
        return found.power

    def history_cutoff(self, meter_id: str, now: float) -> float:
        """Log entries of ``meter_id`` stamped before this time are history at ``now``."""
        cutoff = now - self.report_max_age
        record = self.meters(meter_id)
        if record is not None and record.installed > 0:
            cutoff = max(cutoff, record.installed - self.install_grace)
        return cutoff

    def _history(self, fresh: Sequence[MeterEvent], now: float) -> list[MeterEvent]:
        cutoffs: dict[str, float] = {}
        history: list[MeterEvent] = []
        for event in fresh:
            if event.source is not EventSource.LOG_READ:
                continue  # pushed entries and flags are new whatever the meter's clock says
            cutoff = cutoffs.get(event.meter_id)
            if cutoff is None:
                cutoff = cutoffs[event.meter_id] = self.history_cutoff(event.meter_id, now)
            if event.time < cutoff:
                history.append(event)
        if history:
            log.debug("{count} history events logged, not reported", count=len(history))
        return history

    def _history_and_outages(
        self, fresh: Sequence[MeterEvent], flags: Sequence[MeterEvent], now: float
    ) -> tuple[list[MeterEvent], list[MeterEvent], list[Outage], list[Outage]]:
        """History, outage events, and the outages opened and closed by the entries' power
        events. A power-down that is history opens nothing (that outage is long over)."""
        powers = {id(e): self._power(e) for e in fresh}
        history = self._history(fresh, now)
        outage = [
            e for e in fresh
            if powers[id(e)] is not None or e.failure_type is FailureType.POWER_OUTAGE
        ]  # fmt: skip
        skip = {id(e) for e in flags} | {id(e) for e in history}
        changes = [
            (e, change) for e in fresh
            if (change := powers[id(e)]) is PowerChange.UP
            or (change is PowerChange.DOWN and id(e) not in skip)
        ]  # fmt: skip
        opened, closed = self.outages.track(changes, now)
        for o in opened:
            log.info("outage of {meter} since {since}: {cause}", meter=o.meter_id, since=o.since,
                     cause=o.cause)  # fmt: skip
        for o in closed:
            log.info("outage of {meter} over at {until}", meter=o.meter_id, until=o.until)
        return history, outage, opened, closed

    def report_pending(self, now: float) -> IntakeResult:
        """FR16: send the held non-critical failures (one trouble event per meter and failure);
        drop outages open longer than the view's expiry."""
        for outage in self.outages.expire(now):
            log.warn(
                "outage of {meter} since {since} expired without a power up",
                meter=outage.meter_id, since=outage.since,
            )  # fmt: skip
        held, self._pending = self._pending, []
        reported, suppressed = self._route(held, now=now, immediate=False)
        return self._tally(IntakeResult(reported=tuple(reported), suppressed=tuple(suppressed)))

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
        for suppression in (self.outages, self.suppression):
            reason = suppression.reason(trouble, now)
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
