"""The head-end's meter event log (FR10-FR13, NFR5), on SQLite.

Every :class:`~amidcc.events.MeterEvent` is stored with a snapshot of the meter's account, premise,
meter type, module, manufacturer and lot *at the time it was logged*, so that the log answers "by
billing account" and "by meter type / module / manufacturer" (FR10-FR12) for the account the meter
served then, even after the meter moves or is exchanged. The snapshot comes from the caller or from
a ``context`` lookup given at construction (normally ``MeterRegistry.context``).

Appending is idempotent on the natural key (meter id, event time, sequence number, code, mfg
flag): reading a meter's event log again does not duplicate what was already stored. A row is
durable when ``append`` / ``append_many`` returns (WAL, ``synchronous=FULL`` by default; see
:mod:`amidcc.gateway.store` for why the writes run on the reactor thread without a pool).

Retention (NFR5: at least 45 days) counts from when the gateway *received* an event, not from the
meter's timestamp: a meter with a clock error stamps nonsense times, and its events are exactly the
evidence that must not vanish early. Queries and the chronic-failure analysis use the event time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from amidcc.events import Component, EventClass, EventSource, FailureType, MeterEvent

from .store import Synchronous, connect, ensure_schema, transaction

__all__ = [
    "DAY",
    "MIN_RETENTION",
    "ChronicFailure",
    "EventContext",
    "EventLog",
    "GroupBy",
]

DAY = 86_400.0
MIN_RETENTION = 45 * DAY
"""NFR5: diagnostic events stay in the log at least this long (seconds)."""

GroupBy = Literal["meter", "account", "premise", "meter_type", "module", "manufacturer", "lot"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS meter_events (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        meter_id TEXT NOT NULL,
        ap_title TEXT,
        time REAL NOT NULL,
        seq INTEGER NOT NULL,            -- -1 where the event has none (NULLs never collide)
        code INTEGER NOT NULL,
        mfg INTEGER NOT NULL,
        name TEXT NOT NULL,
        argument BLOB NOT NULL,
        event_class TEXT NOT NULL,
        component TEXT NOT NULL,
        critical INTEGER NOT NULL,
        failure_type TEXT,
        source TEXT NOT NULL,
        received REAL NOT NULL,
        account TEXT,
        premise TEXT,
        meter_type TEXT,
        module TEXT,
        manufacturer TEXT,
        lot TEXT,
        UNIQUE (meter_id, time, seq, code, mfg)
    )""",
    "CREATE INDEX IF NOT EXISTS ix_events_account ON meter_events (account, time)",
    "CREATE INDEX IF NOT EXISTS ix_events_premise ON meter_events (premise, time)",
    "CREATE INDEX IF NOT EXISTS ix_events_type ON meter_events (meter_type, time)",
    "CREATE INDEX IF NOT EXISTS ix_events_module ON meter_events (module, time)",
    "CREATE INDEX IF NOT EXISTS ix_events_mfr ON meter_events (manufacturer, time)",
    "CREATE INDEX IF NOT EXISTS ix_events_lot ON meter_events (lot, time)",
    "CREATE INDEX IF NOT EXISTS ix_events_received ON meter_events (received)",
    "CREATE INDEX IF NOT EXISTS ix_events_time ON meter_events (time)",
    "CREATE INDEX IF NOT EXISTS ix_events_failures ON meter_events (time)"
    " WHERE failure_type IS NOT NULL",
)

@dataclass(frozen=True, kw_only=True, slots=True)
class EventContext:
    """Who and what a meter was when an event was logged (FR10-FR12)."""

    account: str | None = None
    """Billing account served by the meter."""
    premise: str | None = None
    """Premise (service point)."""
    meter_type: str | None = None
    """Meter type (form, product family)."""
    module: str | None = None
    """Communication module."""
    manufacturer: str | None = None
    """Manufacturer code."""
    lot: str | None = None
    """Manufacturing lot."""


#: The snapshot columns, named and ordered as the :class:`EventContext` fields.
_CONTEXT_COLUMNS = tuple(f.name for f in fields(EventContext))
_GROUP_COLUMNS: dict[str, str] = {"meter": "meter_id", **{c: c for c in _CONTEXT_COLUMNS}}
#: The event's own columns, in the order of :func:`_to_row` and :func:`_from_row`.
_EVENT_COLUMNS = (
    "event_id", "meter_id", "ap_title", "time", "seq", "code", "mfg", "name", "argument",
    "event_class", "component", "critical", "failure_type", "source", "received",
)  # fmt: skip
_COLUMNS = ", ".join((*_EVENT_COLUMNS, *_CONTEXT_COLUMNS))
_INSERT = (
    f"INSERT INTO meter_events ({_COLUMNS})"
    f" VALUES ({', '.join('?' * (len(_EVENT_COLUMNS) + len(_CONTEXT_COLUMNS)))})"
    " ON CONFLICT (meter_id, time, seq, code, mfg) DO NOTHING"
)


ContextLookup = Callable[[str], EventContext | None]
"""meter id -> its current context, or None for a meter the caller does not know."""

_NO_CONTEXT = EventContext()


@dataclass(frozen=True, kw_only=True, slots=True)
class ChronicFailure:
    """One group (a meter, a lot, a manufacturer ...) with repeated failures in a window (FR13)."""

    group_by: str
    """What the groups are: "meter", "lot", "manufacturer", ..."""
    key: str
    """The group's value: the meter id, the lot, the manufacturer ..."""
    failure_type: FailureType | None
    """The failure type when grouped per failure type, else None (all types together)."""
    count: int
    """Failure events in the window."""
    meters: int
    """Distinct meters among them."""
    first: float
    """Event time of the earliest of them."""
    last: float
    """Event time of the latest of them."""
    by_failure_type: tuple[tuple[FailureType, int], ...]
    """Count per failure type, most frequent first."""


def _to_row(event: MeterEvent, ctx: EventContext) -> tuple[object, ...]:
    return (
        event.event_id,
        event.meter_id,
        event.ap_title,
        event.time,
        -1 if event.seq is None else event.seq,
        event.code,
        int(event.mfg),
        event.name,
        event.argument,
        event.event_class.name,
        event.component.value,
        int(event.critical),
        None if event.failure_type is None else event.failure_type.value,
        event.source.value,
        event.received,
        *(getattr(ctx, column) for column in _CONTEXT_COLUMNS),
    )


def _from_row(row: Sequence[Any]) -> MeterEvent:
    (event_id, meter_id, ap_title, time, seq, code, mfg, name, argument, cls, comp, critical,
     failure, source, received) = row[: len(_EVENT_COLUMNS)]  # fmt: skip
    return MeterEvent(
        event_id=str(event_id),
        meter_id=str(meter_id),
        ap_title=None if ap_title is None else str(ap_title),
        time=float(time),
        seq=None if seq == -1 else int(seq),
        code=int(code),
        mfg=bool(mfg),
        name=str(name),
        argument=bytes(argument),
        event_class=EventClass[str(cls)],
        component=Component(str(comp)),
        critical=bool(critical),
        failure_type=None if failure is None else FailureType(str(failure)),
        source=EventSource(str(source)),
        received=float(received),
    )


class EventLog:
    """The meter event log on a SQLite file (it may share the file with the meter registry).

    :param path: the database file (``":memory:"`` for a throwaway log).
    :param retention: seconds an event is kept after it was received; at least 45 days (NFR5).
    :param context: looks up a meter's account/premise/equipment when ``append`` is not given one.
    :param synchronous: SQLite ``synchronous`` level; ``FULL`` survives power loss.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        retention: float = MIN_RETENTION,
        context: ContextLookup | None = None,
        synchronous: Synchronous = "FULL",
    ) -> None:
        if retention < MIN_RETENTION:
            raise ValueError(f"retention {retention / DAY:g} days is below NFR5's 45 days")
        self.retention = retention
        self._lookup = context
        self._conn: sqlite3.Connection = connect(path, synchronous=synchronous)
        ensure_schema(self._conn, "eventlog", 1, _SCHEMA)

    def close(self) -> None:
        """Close the database; the log cannot be used afterwards."""
        self._conn.close()

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM meter_events").fetchone()[0])

    # -- writing ---------------------------------------------------------------------------------

    def _context(self, meter_id: str, given: EventContext | None) -> EventContext:
        if given is not None:
            return given
        found = self._lookup(meter_id) if self._lookup is not None else None
        return found if found is not None else _NO_CONTEXT

    def append(self, event: MeterEvent, context: EventContext | None = None) -> bool:
        """Store one event; False when an event with the same natural key is already stored.

        An ``event_id`` already used by a *different* event raises :class:`sqlite3.IntegrityError`.
        """
        before = self._conn.total_changes
        self._conn.execute(_INSERT, _to_row(event, self._context(event.meter_id, context)))
        return self._conn.total_changes > before

    def append_many(self, events: Iterable[MeterEvent], context: EventContext | None = None) -> int:
        """Store many events in one transaction (all or none); return how many were new."""
        before = self._conn.total_changes
        with transaction(self._conn):
            self._conn.executemany(
                _INSERT, (_to_row(e, self._context(e.meter_id, context)) for e in events)
            )
        return self._conn.total_changes - before

    def prune(self, now: float) -> int:
        """Delete events received more than ``retention`` seconds before ``now``; return the count."""
        with transaction(self._conn):
            cur = self._conn.execute(
                "DELETE FROM meter_events WHERE received < ?", (now - self.retention,)
            )
        return cur.rowcount

    # -- reading ---------------------------------------------------------------------------------

    def query(
        self,
        *,
        meter_id: str | None = None,
        account: str | None = None,
        premise: str | None = None,
        meter_type: str | None = None,
        module: str | None = None,
        manufacturer: str | None = None,
        lot: str | None = None,
        since: float | None = None,
        until: float | None = None,
        classes: Collection[EventClass] | None = None,
        failure_types: Collection[FailureType] | None = None,
        failures_only: bool = False,
        critical: bool | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[MeterEvent]:
        """Events matching every given filter, by event time in ``[since, until)``.

        Ordered by event time (oldest first unless ``newest_first``), then by arrival.
        """
        where, params = _where(
            equal={
                "meter_id": meter_id,
                "account": account,
                "premise": premise,
                "meter_type": meter_type,
                "module": module,
                "manufacturer": manufacturer,
                "lot": lot,
            },
            since=since,
            until=until,
            classes=classes,
            failure_types=failure_types,
            failures_only=failures_only,
            critical=critical,
        )
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {_COLUMNS} FROM meter_events{where} ORDER BY time {order}, id {order}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_from_row(row) for row in self._conn.execute(sql, params)]

    def by_meter(
        self,
        meter_id: str,
        *,
        since: float | None = None,
        until: float | None = None,
        classes: Collection[EventClass] | None = None,
    ) -> list[MeterEvent]:
        """FR11: one meter's events."""
        return self.query(meter_id=meter_id, since=since, until=until, classes=classes)

    def by_account(
        self,
        account: str,
        *,
        since: float | None = None,
        until: float | None = None,
        classes: Collection[EventClass] | None = None,
    ) -> list[MeterEvent]:
        """FR10: the events of the meters that served a billing account."""
        return self.query(account=account, since=since, until=until, classes=classes)

    def by_equipment(
        self,
        *,
        meter_type: str | None = None,
        module: str | None = None,
        manufacturer: str | None = None,
        lot: str | None = None,
        since: float | None = None,
        until: float | None = None,
        classes: Collection[EventClass] | None = None,
    ) -> list[MeterEvent]:
        """FR12: events by meter type, communication module, manufacturer and/or lot."""
        return self.query(
            meter_type=meter_type,
            module=module,
            manufacturer=manufacturer,
            lot=lot,
            since=since,
            until=until,
            classes=classes,
        )

    def counts_by_class(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        meter_id: str | None = None,
        account: str | None = None,
    ) -> dict[EventClass, int]:
        """Number of events per class (every class present, zero where none)."""
        where, params = _where(
            equal={"meter_id": meter_id, "account": account}, since=since, until=until
        )
        counts = dict.fromkeys(EventClass, 0)
        sql = f"SELECT event_class, COUNT(*) FROM meter_events{where} GROUP BY event_class"
        for cls, count in self._conn.execute(sql, params):
            counts[EventClass[cls]] = int(count)
        return counts

    def chronic_failures(
        self,
        now: float,
        window: float,
        min_count: int,
        *,
        group_by: GroupBy = "meter",
        per_failure_type: bool = False,
        min_meters: int = 1,
        exclude: Collection[FailureType] = (FailureType.POWER_OUTAGE,),
    ) -> list[ChronicFailure]:
        """FR13: groups with at least ``min_count`` failure events in ``(now - window, now]``.

        ``group_by`` picks meters, or lots / manufacturers / types / modules / accounts / premises
        (a lot with failures spread over ``min_meters`` meters or more points at the lot, S6).
        ``per_failure_type`` counts each failure type separately (the same failure again and
        again); otherwise all failure types of a group count together. Failures explained by
        outages are left out by default (FR18). Most failures first.
        """
        column = _GROUP_COLUMNS[group_by]
        keys = f"{column}, failure_type" if per_failure_type else column
        params: list[object] = [now - window, now, *(f.value for f in exclude)]
        base = (
            f" FROM meter_events WHERE failure_type IS NOT NULL AND time > ? AND time <= ?"
            f" AND failure_type NOT IN ({', '.join('?' * len(exclude))}) AND {column} IS NOT NULL"
        )
        totals = self._conn.execute(
            f"SELECT {keys}, COUNT(*), COUNT(DISTINCT meter_id), MIN(time), MAX(time){base}"
            f" GROUP BY {keys} HAVING COUNT(*) >= ? AND COUNT(DISTINCT meter_id) >= ?",
            [*params, min_count, min_meters],
        ).fetchall()
        breakdown: dict[str, list[tuple[FailureType, int]]] = {}
        for key, failure, count in self._conn.execute(
            f"SELECT {column}, failure_type, COUNT(*){base} GROUP BY {column}, failure_type"
            f" ORDER BY COUNT(*) DESC, failure_type",
            params,
        ):
            breakdown.setdefault(str(key), []).append((FailureType(failure), int(count)))
        found = [_chronic(group_by, per_failure_type, row, breakdown) for row in totals]
        found.sort(key=lambda c: (-c.count, c.key, c.failure_type or ""))
        return found


def _chronic(
    group_by: str,
    per_failure_type: bool,
    row: Sequence[Any],
    breakdown: dict[str, list[tuple[FailureType, int]]],
) -> ChronicFailure:
    key = str(row[0])
    failure = FailureType(str(row[1])) if per_failure_type else None
    count, meters, first, last = row[-4:]
    parts = breakdown.get(key, [])
    if failure is not None:
        parts = [p for p in parts if p[0] is failure]
    return ChronicFailure(
        group_by=group_by,
        key=key,
        failure_type=failure,
        count=int(count),
        meters=int(meters),
        first=float(first),
        last=float(last),
        by_failure_type=tuple(parts),
    )


def _where(
    *,
    equal: dict[str, str | None],
    since: float | None,
    until: float | None,
    classes: Collection[EventClass] | None = None,
    failure_types: Collection[FailureType] | None = None,
    failures_only: bool = False,
    critical: bool | None = None,
) -> tuple[str, list[object]]:
    """A WHERE clause (column names come from this module only, values are parameters)."""
    clauses: list[str] = []
    params: list[object] = []
    for column, value in equal.items():
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        clauses.append("time >= ?")
        params.append(since)
    if until is not None:
        clauses.append("time < ?")
        params.append(until)
    if classes is not None:
        clauses.append(f"event_class IN ({', '.join('?' * len(classes))})")
        params.extend(c.name for c in classes)
    if failure_types is not None:
        clauses.append(f"failure_type IN ({', '.join('?' * len(failure_types))})")
        params.extend(f.value for f in failure_types)
    if failures_only:
        clauses.append("failure_type IS NOT NULL")
    if critical is not None:
        clauses.append("critical = ?")
        params.append(int(critical))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
