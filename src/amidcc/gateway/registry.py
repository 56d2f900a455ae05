"""The meter registry: every meter the gateway knows, persisted on SQLite, indexed in memory.

A meter registers (C12.22 Register, an MQTT announce, a Modbus poll list, the field tool) with its
identity, equipment and link; :meth:`MeterRegistry.register` upserts it. All lookups are answered
from in-memory dicts (by meter id, AP title, premise, account) so the link adapters can map an AP
title to a meter in O(1) for 10k+ meters; every change of identity or state is written through to
SQLite before the call returns. Only ``last_seen`` stamps of meters whose state did not change are
written lazily, by :meth:`MeterRegistry.flush` (call it from a periodic job) and on close: at one
fsync each they would otherwise cost the reactor a write per message.

Premise exchange (scenario S1 step 9): when a meter registers at a premise where another meter is
still active, the other one was exchanged: it is marked REMOVED, ``replaced_by`` the new one, and
:class:`Registration` names it. ``exchange_match="premise_and_type"`` is for premises that carry
several meters of different types.

Meter states, as a table (``_TRANSITIONS``)::

    register:     any                                 -> REGISTERED
    seen:         REGISTERED | REACHABLE | UNREACHABLE -> REACHABLE   (REMOVED stays REMOVED)
    unreachable:  REGISTERED | REACHABLE | UNREACHABLE -> UNREACHABLE (REMOVED stays REMOVED)
    remove:       any                                 -> REMOVED
"""

from __future__ import annotations

import enum
import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from .eventlog import EventContext
from .links.base import LinkKind, MeterAddress
from .store import Synchronous, connect, ensure_schema, transaction

__all__ = [
    "ApTitleInUse",
    "MeterRecord",
    "MeterRegistry",
    "MeterState",
    "Registration",
    "RegistryError",
    "UnknownMeter",
    "address_of",
]


class MeterState(enum.StrEnum):
    """Where a meter stands as the gateway sees it (the MMS keeps the full lifecycle)."""

    REGISTERED = "registered"
    """Registered, not yet heard from since."""
    REACHABLE = "reachable"
    """Answered or pushed recently."""
    UNREACHABLE = "unreachable"
    """Requests time out on every path tried."""
    REMOVED = "removed"
    """Exchanged or taken out of service; kept for history."""


_TRANSITIONS: dict[tuple[MeterState, str], MeterState] = {
    **{(s, "register"): MeterState.REGISTERED for s in MeterState},
    **{(s, "remove"): MeterState.REMOVED for s in MeterState},
    **{(s, "seen"): MeterState.REACHABLE for s in MeterState},
    **{(s, "unreachable"): MeterState.UNREACHABLE for s in MeterState},
    (MeterState.REMOVED, "seen"): MeterState.REMOVED,
    (MeterState.REMOVED, "unreachable"): MeterState.REMOVED,
}


class RegistryError(Exception):
    """A registry operation that cannot be done."""


class UnknownMeter(RegistryError, KeyError):
    """No meter with that id is registered."""


class ApTitleInUse(RegistryError):
    """Another active meter already holds the AP title (addresses must stay unique)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class MeterRecord:
    """What the gateway knows about one meter."""

    meter_id: str
    """The head-end's id of the meter (unique)."""
    ap_title: str
    """C12.22 AP title, dotted text (relative ones with a leading dot)."""
    link: LinkKind
    """How the meter is reached."""
    account: str | None = None
    """Billing account at the premise."""
    premise: str | None = None
    """Premise (service point) where it is installed."""
    meter_type: str | None = None
    """Meter type (form, product family)."""
    module: str | None = None
    """Communication module."""
    manufacturer: str | None = None
    """Manufacturer code (ST1 MANUFACTURER)."""
    model: str | None = None
    """ST1 ED_MODEL."""
    lot: str | None = None
    """Manufacturing lot."""
    serial: str | None = None
    """Manufacturer serial number."""
    firmware: str | None = None
    """Firmware version and revision."""
    route: tuple[str, ...] = ()
    """Collector, cell and relay ids from the head-end down to the meter."""
    unit_id: int | None = None
    """Modbus unit id behind a Modbus collector."""
    state: MeterState = MeterState.REGISTERED
    """Current state; set by the registry."""
    state_since: float = 0.0
    """When the state last changed; set by the registry."""
    installed: float = 0.0
    """When it was (last) installed at its premise; set by the registry."""
    last_seen: float | None = None
    """When it was last heard from; set by the registry."""
    replaced_by: str | None = None
    """For a meter removed by a premise exchange: the meter that replaced it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Registration:
    """The outcome of one :meth:`MeterRegistry.register`."""

    record: MeterRecord
    """The meter as now stored."""
    new_install: bool
    """First registration of this meter, a re-install after removal, or a move to a new premise:
    the head-end should send its programs, settings and schedules (S1)."""
    replaced: str | None
    """The meter id this one replaced at its premise (now REMOVED), or None."""


_COLUMNS = (
    "meter_id", "ap_title", "link", "account", "premise", "meter_type", "module", "manufacturer",
    "model", "lot", "serial", "firmware", "route", "unit_id", "state", "state_since", "installed",
    "last_seen", "replaced_by",
)  # fmt: skip
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meters (meter_id TEXT PRIMARY KEY, ap_title TEXT NOT NULL,"
    " link TEXT NOT NULL, account TEXT, premise TEXT, meter_type TEXT, module TEXT,"
    " manufacturer TEXT, model TEXT, lot TEXT, serial TEXT, firmware TEXT, route TEXT NOT NULL,"
    " unit_id INTEGER, state TEXT NOT NULL, state_since REAL NOT NULL, installed REAL NOT NULL,"
    " last_seen REAL, replaced_by TEXT)",
)
_UPSERT = (
    f"INSERT OR REPLACE INTO meters ({', '.join(_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(_COLUMNS))})"
)


def _to_row(r: MeterRecord) -> tuple[object, ...]:
    return (
        r.meter_id, r.ap_title, r.link.value, r.account, r.premise, r.meter_type, r.module,
        r.manufacturer, r.model, r.lot, r.serial, r.firmware, json.dumps(list(r.route)),
        r.unit_id, r.state.value, r.state_since, r.installed, r.last_seen, r.replaced_by,
    )  # fmt: skip


def _from_row(row: tuple[Any, ...]) -> MeterRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["link"] = LinkKind(values["link"])
    values["state"] = MeterState(values["state"])
    values["route"] = tuple(json.loads(values["route"]))
    return MeterRecord(**values)


def address_of(record: MeterRecord) -> MeterAddress:
    """The link-layer address of a registered meter."""
    return MeterAddress(
        meter_id=record.meter_id,
        ap_title=record.ap_title,
        link=record.link,
        route=record.route,
        unit_id=record.unit_id,
    )


class MeterRegistry:
    """Registered meters on a SQLite file (it may share the file with the event log).

    :param exchange_match: which active meter a registration at a premise replaces: any other
        meter at the premise (``"premise"``), or only one of the same meter type.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        exchange_match: Literal["premise", "premise_and_type"] = "premise",
        synchronous: Synchronous = "FULL",
    ) -> None:
        self._exchange_match = exchange_match
        self._conn: sqlite3.Connection = connect(path, synchronous=synchronous)
        ensure_schema(self._conn, "registry", 1, _SCHEMA)
        self._load()

    def _load(self) -> None:
        self._by_id: dict[str, MeterRecord] = {}
        self._by_ap: dict[str, str] = {}
        self._by_premise: dict[str, set[str]] = {}
        self._by_account: dict[str, set[str]] = {}
        self._states: Counter[MeterState] = Counter()
        self._links: Counter[LinkKind] = Counter()
        self._dirty: set[str] = set()
        sql = f"SELECT {', '.join(_COLUMNS)} FROM meters ORDER BY installed"
        for row in self._conn.execute(sql):
            self._index(_from_row(row))

    def close(self) -> None:
        """Write pending ``last_seen`` stamps and close the database."""
        self.flush()
        self._conn.close()

    # -- the in-memory indexes: _index is the one place they change ------------------------------

    def _index(self, record: MeterRecord) -> None:
        old = self._by_id.get(record.meter_id)
        if old is not None:
            self._unindex(old)
        self._by_id[record.meter_id] = record
        self._states[record.state] += 1
        if record.state is MeterState.REMOVED:
            return  # removed meters keep their record but hold no address, premise or account
        self._links[record.link] += 1
        self._by_ap[record.ap_title] = record.meter_id
        if record.premise is not None:
            self._by_premise.setdefault(record.premise, set()).add(record.meter_id)
        if record.account is not None:
            self._by_account.setdefault(record.account, set()).add(record.meter_id)

    def _unindex(self, record: MeterRecord) -> None:
        self._states[record.state] -= 1
        if record.state is MeterState.REMOVED:
            return
        self._links[record.link] -= 1
        if self._by_ap.get(record.ap_title) == record.meter_id:
            del self._by_ap[record.ap_title]
        for index, key in ((self._by_premise, record.premise), (self._by_account, record.account)):
            if key is not None and key in index:
                index[key].discard(record.meter_id)
                if not index[key]:
                    del index[key]

    # -- registration ----------------------------------------------------------------------------

    def register(self, meter: MeterRecord, *, now: float) -> Registration:
        """Upsert a meter as REGISTERED; detect a premise exchange. Durable on return.

        ``state``, ``state_since``, ``installed``, ``last_seen`` and ``replaced_by`` of ``meter``
        are ignored: the registry sets them.
        """
        return self.register_many([meter], now=now)[0]

    def register_many(self, meters: Iterable[MeterRecord], *, now: float) -> list[Registration]:
        """Register several meters in one transaction (all or none)."""
        results: list[Registration] = []
        try:
            with transaction(self._conn):
                for meter in meters:
                    result, changed = self._plan(meter, now)
                    self._conn.executemany(_UPSERT, [_to_row(r) for r in changed])
                    for record in changed:
                        self._index(record)
                        self._dirty.discard(record.meter_id)
                    results.append(result)
        except BaseException:
            self._load()  # the memory ran ahead of the rolled-back database
            raise
        return results

    def _plan(self, meter: MeterRecord, now: float) -> tuple[Registration, list[MeterRecord]]:
        old = self._by_id.get(meter.meter_id)
        holder = self._by_ap.get(meter.ap_title)
        if holder is not None and holder != meter.meter_id:
            raise ApTitleInUse(f"AP title {meter.ap_title} is held by meter {holder}")
        new_install = old is None or old.state is MeterState.REMOVED or old.premise != meter.premise
        record = replace(
            meter,
            state=_TRANSITIONS[(old.state if old else MeterState.REGISTERED, "register")],
            state_since=now,
            installed=now if new_install or old is None else old.installed,
            last_seen=now,
            replaced_by=None,
        )
        changed = [record]
        gone = self._exchanged(record)
        if gone is not None:
            changed.insert(0, self._moved(gone, "remove", now, replaced_by=record.meter_id))
        return Registration(record=record, new_install=new_install, replaced=gone), changed

    def _exchanged(self, record: MeterRecord) -> str | None:
        """The active meter at ``record``'s premise that ``record`` replaces, if any."""
        if record.premise is None:
            return None
        for other_id in sorted(self._by_premise.get(record.premise, ())):
            other = self._by_id[other_id]
            if other_id == record.meter_id:
                continue
            if self._exchange_match == "premise" or other.meter_type == record.meter_type:
                return other_id
        return None

    def _moved(self, meter_id: str, action: str, now: float, **changes: Any) -> MeterRecord:
        old = self.get(meter_id)
        if old is None:
            raise UnknownMeter(meter_id)
        state = _TRANSITIONS[(old.state, action)]
        since = now if state is not old.state else old.state_since
        return replace(old, state=state, state_since=since, **changes)

    # -- state changes ---------------------------------------------------------------------------

    def _write(self, record: MeterRecord) -> MeterRecord:
        if self._by_id.get(record.meter_id) == record:
            return record  # nothing changed: no write
        self._conn.execute(_UPSERT, _to_row(record))
        self._index(record)
        self._dirty.discard(record.meter_id)
        return record

    def mark_seen(self, meter_id: str, *, now: float) -> MeterRecord:
        """The meter answered or pushed: REACHABLE (a REMOVED meter stays REMOVED).

        A state change is written at once; a bare ``last_seen`` stamp waits for :meth:`flush`.
        """
        old = self._by_id.get(meter_id)
        record = self._moved(meter_id, "seen", now, last_seen=now)
        if old is not None and old.state is record.state:
            self._index(record)
            self._dirty.add(meter_id)
            return record
        return self._write(record)

    def mark_unreachable(self, meter_id: str, *, now: float) -> MeterRecord:
        """Requests to the meter fail on every path: UNREACHABLE (REMOVED stays REMOVED)."""
        return self._write(self._moved(meter_id, "unreachable", now))

    def remove(self, meter_id: str, *, now: float) -> MeterRecord:
        """Take a meter out of service (REMOVED): it no longer holds its AP title or premise."""
        return self._write(self._moved(meter_id, "remove", now))

    def set_route(
        self, meter_id: str, route: tuple[str, ...], *, link: LinkKind | None = None
    ) -> MeterRecord:
        """Record a new route (and link) to the meter, e.g. after topology found a better one."""
        old = self.get(meter_id)
        if old is None:
            raise UnknownMeter(meter_id)
        return self._write(replace(old, route=tuple(route), link=link or old.link))

    def flush(self) -> int:
        """Write the pending ``last_seen`` stamps in one transaction; return how many."""
        if not self._dirty:
            return 0
        stamps = [(self._by_id[m].last_seen, m) for m in sorted(self._dirty)]
        with transaction(self._conn):
            self._conn.executemany("UPDATE meters SET last_seen = ? WHERE meter_id = ?", stamps)
        self._dirty.clear()
        return len(stamps)

    # -- lookups (memory only) -------------------------------------------------------------------

    def get(self, meter_id: str) -> MeterRecord | None:
        """The meter with that id (any state), or None."""
        return self._by_id.get(meter_id)

    def by_ap_title(self, ap_title: str) -> MeterRecord | None:
        """The active (not REMOVED) meter holding that AP title, or None. O(1)."""
        meter_id = self._by_ap.get(ap_title)
        return None if meter_id is None else self._by_id[meter_id]

    def at_premise(self, premise: str) -> list[MeterRecord]:
        """The active meters at a premise."""
        return [self._by_id[m] for m in sorted(self._by_premise.get(premise, ()))]

    def for_account(self, account: str) -> list[MeterRecord]:
        """The active meters serving a billing account."""
        return [self._by_id[m] for m in sorted(self._by_account.get(account, ()))]

    def context(self, meter_id: str) -> EventContext | None:
        """The meter's account, premise and equipment for the event log (``EventLog(context=)``)."""
        r = self._by_id.get(meter_id)
        if r is None:
            return None
        return EventContext(
            account=r.account,
            premise=r.premise,
            meter_type=r.meter_type,
            module=r.module,
            manufacturer=r.manufacturer,
            lot=r.lot,
        )

    def counts_by_state(self) -> dict[MeterState, int]:
        """Meters per state (every state present)."""
        return {state: self._states[state] for state in MeterState}

    def counts_by_link(self) -> dict[LinkKind, int]:
        """Active (not REMOVED) meters per link kind (every kind present)."""
        return {link: self._links[link] for link in LinkKind}

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, meter_id: object) -> bool:
        return meter_id in self._by_id

    def __iter__(self) -> Iterator[MeterRecord]:
        return iter(list(self._by_id.values()))
