"""Self-diagnostics and the records they leave: event records, self-test runs, alarms.

A meter runs its self-test at installation, at every power-up, periodically (a per-meter phase within
the configured period, so a fleet does not test all at once) and on demand (SP11); it runs the
metrology health check on its own schedule (NFR6: at least monthly, at most daily) and on demand
(amidcc manufacturer procedure 0). A run fails the checks (:class:`~amidcc.simulators.faults.Check`)
of the faults active at that moment; a fault whose detection is "self-test" or "metrology" is first
*noticed* at the first such run after it starts.

Outcomes show in three places: ST3 status bits (latched until SP7/SP8), the event log (a summary
event per run plus one event per newly noticed fault), and MT0 (one record per check). Critical
faults also come back from :meth:`SimMeter.tick` as :class:`Alarm` s for the transport to push.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .faults import Check, EventClass, FaultKind

__all__ = [
    "Alarm",
    "EventRecord",
    "RunKind",
    "checks_bitmap",
    "selftest_argument",
]


class RunKind(enum.IntEnum):
    """Why a self-test ran (bits 24-31 of the summary event's argument)."""

    INSTALL = 0
    POWER_UP = 1
    PERIODIC = 2
    ON_DEMAND = 3


@dataclass(frozen=True, kw_only=True, slots=True)
class EventRecord:
    """One event-log entry as the meter reports it in ST76 (and in a pushed alarm)."""

    time: float
    """When it happened (seconds since the epoch, the simulation's true time, whole seconds)."""
    seq: int
    """EVENT_SEQ_NBR (16 bits on the wire): position in the meter's lifetime event sequence."""
    code: int
    """EVENT_CODE word: the event number, plus 0x0800 for amidcc manufacturer events."""
    argument: int
    """EVENT_ARGUMENT as an unsigned integer (its bytes follow ST0 DATA_ORDER)."""
    user_id: int = 0
    """0: initiated by the device; otherwise the user id of the session that caused it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Alarm:
    """A critical failure the transport pushes to the head-end at once."""

    meter_id: str
    """The meter's id (its serial)."""
    time: float
    """When the meter noticed it."""
    event_code: int
    """EVENT_CODE of the main event (StdEvent, or 0x0800 | MfgEvent)."""
    kind: FaultKind | None
    """The fault behind it; None for a restoration notice (power back)."""
    event_class: EventClass
    """FR16 class hint for the head-end's classification."""
    events: tuple[EventRecord, ...]
    """The event-log entries this alarm carries (table 76 format on the wire)."""
    std_status: int
    """ST3 ED_STD_STATUS1 at the time (so the head-end sees every flag without a read)."""
    mfg_status: int
    """ST3 ED_MFG_STATUS at the time."""
    body: bytes
    """The unsolicited message body: a plaintext C12.22 EPSEM (ED class, "never respond") carrying
    :func:`~amidcc.simulators.alarms.alarm_services`; wrap it in an ACSE APDU (and secure it)."""


def checks_bitmap(checks: set[Check] | frozenset[Check]) -> int:
    """Failing checks as a bitmap (bit n = Check n)."""
    out = 0
    for c in checks:
        out |= 1 << int(c)
    return out


def selftest_argument(kind: RunKind, failing: int) -> int:
    """Summary event argument (4 bytes): failing-check bitmap in bits 0-23 (bit n = MT0 check n),
    run kind in bits 24-31."""
    return (int(kind) << 24) | (failing & 0xFFFFFF)
