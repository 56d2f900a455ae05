"""What explains a failure, so that no trouble report leaves for it (FR18; architecture, "Trouble
flow", step 2).

Theory of operation. Before a trouble event leaves the gateway, the intake asks a
:class:`Suppression` for a reason to keep it in. Two kinds answer here:

* :class:`WindowSuppression`: windows the MMS or an operator declares (planned outage, maintenance,
  an active order), by meter, premise and failure type;
* :class:`OutageView`: the gateway's own record of unplanned outages, built from the meters' power
  events (power down / last gasp open an outage, power up closes it). A meter in an open outage has
  every trouble suppressed (an unreachable meter without power is not a broken meter); a failure
  whose evidence was stamped by the meter inside a known outage (opened or closed) is explained by
  it ("during outage"), one stamped after the power-up is not.

Outage bookkeeping, per meter: the *latest* power event by the meter's clock decides, so a log read
that lists power events out of arrival order ends in the right state, and an older event changes
nothing. A second power-down while one is open keeps the first start. An open outage older than
``expiry`` (gateway clock) no longer counts: a meter that never reports its power-up must not have
its failures hidden for ever; :meth:`OutageView.expire` drops such outages. The last few closed
outages per meter are kept to explain failures read after the power came back.

Pure: times come in as arguments (``now`` is the gateway's clock, event times the meter's).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from amidcc.events import FailureType, MeterEvent, TroubleEvent

from .classify import PowerChange

__all__ = [
    "AnySuppression",
    "NoSuppression",
    "Outage",
    "OutageView",
    "SuppressedTrouble",
    "Suppression",
    "SuppressionWindow",
    "WindowSuppression",
]

DAY = 86400.0


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


class AnySuppression:
    """Several suppressions asked in order; the first reason wins."""

    def __init__(self, *parts: Suppression) -> None:
        self.parts = parts

    def reason(self, trouble: TroubleEvent, now: float) -> str | None:
        for part in self.parts:
            found = part.reason(trouble, now)
            if found is not None:
                return found
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


# -- unplanned outages from the meters' own power events ---------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Outage:
    """One meter without primary power, from its power-down to its power-up."""

    meter_id: str
    """The meter."""
    since: float
    """When power went down, by the meter's clock (the power-down or last-gasp event's time)."""
    cause: str
    """The name of the event that opened it (``primary_power_down``, ``last_gasp``)."""
    opened: float
    """When the gateway learnt of it (gateway clock; ``expiry`` counts from here)."""
    until: float | None = None
    """When power came back, by the meter's clock; None while the outage is open."""
    closed: float | None = None
    """When the gateway learnt of the power-up; None while open."""

    def covers(self, time: float) -> bool:
        """Whether a meter time falls inside the outage (an open one has no end)."""
        return self.since <= time and (self.until is None or time <= self.until)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class OutageView:
    """Which meters are without power now, and which recent outages each meter had.

    It is a :class:`Suppression`: trouble for a meter in an open outage is suppressed, and so is
    trouble whose evidence the meter stamped inside a known outage.

    :param expiry: an open outage older than this (gateway clock) no longer counts.
    :param keep_closed: closed outages remembered per meter (to explain failures read later).
    """

    def __init__(self, *, expiry: float = 3 * DAY, keep_closed: int = 4) -> None:
        self.expiry = expiry
        self.keep_closed = keep_closed
        self._open: dict[str, Outage] = {}
        self._closed: dict[str, deque[Outage]] = {}
        self._latest: dict[str, float] = {}

    def _newest(self, meter_id: str, time: float) -> bool:
        """Record ``time`` as the meter's latest power event unless a later one is known."""
        latest = self._latest.get(meter_id)
        if latest is not None and time < latest:
            return False
        self._latest[meter_id] = time
        return True

    def power_down(self, meter_id: str, *, time: float, now: float, cause: str) -> Outage | None:
        """A power-down stamped ``time``: the outage it opens, or None if it changed nothing (a
        later power event is known, or an outage is already open)."""
        if not self._newest(meter_id, time) or meter_id in self._open:
            return None
        outage = self._open[meter_id] = Outage(
            meter_id=meter_id, since=time, cause=cause, opened=now
        )
        return outage

    def power_up(self, meter_id: str, *, time: float, now: float) -> Outage | None:
        """A power-up stamped ``time``: the outage it closes, or None if none was open (or a
        later power event is known)."""
        if not self._newest(meter_id, time) or meter_id not in self._open:
            return None
        outage = replace(self._open.pop(meter_id), until=time, closed=now)
        self._closed.setdefault(meter_id, deque(maxlen=self.keep_closed)).append(outage)
        return outage

    def track(
        self, changes: Iterable[tuple[MeterEvent, PowerChange]], now: float
    ) -> tuple[list[Outage], list[Outage]]:
        """Apply power events in the meters' time order (one batch may mix a log read and a
        pushed alarm); return the outages opened and the outages closed."""
        opened: list[Outage] = []
        closed: list[Outage] = []
        ordered = sorted(changes, key=lambda c: (c[0].time, -1 if c[0].seq is None else c[0].seq))
        for event, change in ordered:
            if change is PowerChange.UP:
                outage = self.power_up(event.meter_id, time=event.time, now=now)
                if outage is not None:
                    closed.append(outage)
            else:
                outage = self.power_down(event.meter_id, time=event.time, now=now, cause=event.name)
                if outage is not None:
                    opened.append(outage)
        return opened, closed

    def _live(self, outage: Outage, now: float) -> bool:
        return now - outage.opened < self.expiry

    def current(self, meter_id: str, now: float) -> Outage | None:
        """The meter's open outage at ``now``, or None (none, or expired)."""
        outage = self._open.get(meter_id)
        return outage if outage is not None and self._live(outage, now) else None

    def in_outage(self, now: float) -> tuple[Outage, ...]:
        """Every open outage at ``now`` (meters whose latest power event is a power-down),
        oldest first."""
        live = (o for o in self._open.values() if self._live(o, now))
        return tuple(sorted(live, key=lambda o: (o.since, o.meter_id)))

    def meters(self, now: float) -> frozenset[str]:
        """The meters in an open outage at ``now``."""
        return frozenset(o.meter_id for o in self.in_outage(now))

    def history(self, meter_id: str) -> tuple[Outage, ...]:
        """The meter's remembered closed outages, oldest first."""
        return tuple(self._closed.get(meter_id, ()))

    def explaining(self, meter_id: str, times: Iterable[float], now: float) -> Outage | None:
        """A known outage of the meter covering every one of ``times``, or None."""
        stamps = list(times)
        candidates = [*self.history(meter_id)]
        open_now = self.current(meter_id, now)
        if open_now is not None:
            candidates.append(open_now)
        for outage in reversed(candidates):
            if stamps and all(outage.covers(t) for t in stamps):
                return outage
        return None

    def reason(self, trouble: TroubleEvent, now: float) -> str | None:
        """Trouble without evidence (an unreachable meter) is explained by an open outage;
        trouble with evidence, by an outage covering the times the meter stamped on it."""
        if not trouble.evidence:
            outage = self.current(trouble.meter_id, now)
        else:
            outage = self.explaining(trouble.meter_id, (e.time for e in trouble.evidence), now)
        if outage is None:
            return None
        if outage.until is None:
            return f"in outage since {_iso(outage.since)} ({outage.cause})"
        return f"during outage {_iso(outage.since)} to {_iso(outage.until)} ({outage.cause})"

    def expire(self, now: float) -> list[Outage]:
        """Drop the open outages older than ``expiry``; return them."""
        gone = [o for o in self._open.values() if not self._live(o, now)]
        for outage in gone:
            del self._open[outage.meter_id]
        return gone

    def forget(self, meter_id: str) -> None:
        """Forget a meter's outages (after an exchange or removal)."""
        self._open.pop(meter_id, None)
        self._closed.pop(meter_id, None)
        self._latest.pop(meter_id, None)
