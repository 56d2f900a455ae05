"""The event types the gateway emits and the MMS consumes, and the trouble-sink interface.

This module sits beside :mod:`amidcc.codecs` at the bottom of the layers: the gateway builds these
events, the MMS receives them, and neither imports the other (architecture, "Layers"). It imports
nothing from amidcc.

Two kinds of event:

* :class:`MeterEvent`: one thing a meter said or the gateway saw about it (an event-log entry, a
  pushed alarm, an ST3 status flag, a link failure), already classified. The gateway's event log
  stores these (FR10-FR12).
* :class:`TroubleEvent`: what leaves the gateway for the MMS when something needs a trouble order:
  the failed component, the failure type, the evidence, and the alternate paths still working
  (scenario S2, FR19, FR21, FR27).

Times are floats of seconds since the epoch (UTC), the same scale as ``reactor.seconds()``; they
are always passed in, never read from a clock here.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "IMMEDIATE_CLASSES",
    "IMMEDIATE_REPORT_SECONDS",
    "AmidccMfgEvent",
    "AmidccMfgStatus",
    "Component",
    "EventClass",
    "EventSource",
    "FailureType",
    "InProcessSink",
    "MeterEvent",
    "TroubleEvent",
    "TroubleSink",
    "TroubleSubscriber",
]


class EventClass(enum.IntEnum):
    """FR16 priority classes; a lower value is more urgent, so sorting orders by urgency.

    Safety and service-affecting failures are reported immediately (NFR4: within 15 minutes);
    billing, customer and informational ones may wait for the next billing period.
    """

    SAFETY = 1
    SERVICE = 2
    BILLING = 3
    CUSTOMER = 4
    INFORMATIONAL = 5

    @property
    def immediate(self) -> bool:
        """Whether FR16 asks for this class to be reported immediately."""
        return self in IMMEDIATE_CLASSES


IMMEDIATE_CLASSES = frozenset({EventClass.SAFETY, EventClass.SERVICE})
"""The FR16 classes reported at once rather than by the next billing period."""

IMMEDIATE_REPORT_SECONDS = 15 * 60
"""NFR4: a safety or service failure reaches the MMS within this many seconds of detection."""


class Component(enum.StrEnum):
    """Which part of the system failed (FR19: WAN, LAN or HAN of the meter, or the network)."""

    METER = "meter"
    """The meter itself: metrology, memory, clock, firmware, socket."""
    WAN = "wan"
    """The meter's wide-area communication module (its uplink to the head-end)."""
    LAN = "lan"
    """The meter's local/neighbourhood network interface (RF mesh radio)."""
    HAN = "han"
    """The meter's home-area-network interface or the HAN devices behind it (FR7)."""
    RELAY = "relay"
    """A relay (repeater) between the collector and the meter."""
    COLLECTOR = "collector"
    """A collector (data concentrator / cell gateway)."""
    UNKNOWN = "unknown"
    """Not (yet) isolated."""


class EventSource(enum.StrEnum):
    """How the gateway learnt of an event."""

    PUSHED = "pushed"
    """An unsolicited message (alarm) the meter sent on its own."""
    LOG_READ = "log_read"
    """An entry read from the meter's event or history log (ST74/ST76)."""
    STATUS_READ = "status_read"
    """A flag read from ST3 ED_STD_STATUS1."""
    LINK = "link"
    """The gateway's own observation of the link: timeouts, unreachable, bad frames."""
    SELF_TEST = "self_test"
    """The result of an on-demand or periodic self-test (SP11 / manufacturer results table)."""
    METROLOGY = "metrology"
    """The result of a metrology health check (FR17, NFR6)."""


class FailureType(enum.StrEnum):
    """What failed, as the MMS routes it (BR3: the responsible organization depends on it)."""

    SELF_TEST_FAILURE = "self_test_failure"
    METROLOGY_FAILURE = "metrology_failure"
    TIME_SYNC_FAILURE = "time_sync_failure"
    MEMORY_FAILURE = "memory_failure"
    PROGRAM_FAILURE = "program_failure"
    CHECKSUM_ERROR = "checksum_error"
    FIRMWARE_UPGRADE_FAILURE = "firmware_upgrade_failure"
    TAMPER = "tamper"
    REVERSE_ROTATION = "reverse_rotation"
    WRONG_SOCKET = "wrong_socket"
    HAN_FAILURE = "han_failure"
    COMM_FAILURE = "comm_failure"
    UNREACHABLE = "unreachable"
    LOW_BATTERY = "low_battery"
    LOW_POTENTIAL = "low_potential"
    DEMAND_OVERLOAD = "demand_overload"
    DATA_INCONSISTENCY = "data_inconsistency"
    DATA_ANOMALY = "data_anomaly"
    POWER_OUTAGE = "power_outage"


class AmidccMfgEvent(enum.IntEnum):
    """Manufacturer event codes (EVENT_CODE / HISTORY_CODE with the mfg bit 0x0800) of amidcc meters.

    The standard codes (protocol-facts 4.10) have no entry for several use-case failures, so
    amidcc's simulated meters log them as manufacturer events with these numbers (the simulator
    uses this enum, as ``amidcc.simulators.faults.MfgEvent``). Other manufacturers' codes mean other
    things: see :mod:`amidcc.gateway.classify`.
    """

    SELF_TEST_PASSED = 0
    """FR1: a periodic or on-demand self-diagnostic passed (argument: run kind, checks run)."""
    SELF_TEST_FAILED = 1
    """FR1: a self-diagnostic failed (argument: run kind, failing-check bitmap)."""
    METROLOGY_PASSED = 2
    """NFR6: the metrology self-check passed (logged, sent with the next read; argument: error in
    per mille)."""
    METROLOGY_FAILED = 3
    """FR17: the metrology self-check failed (argument: error in per mille)."""
    CHECKSUM_ERROR = 4
    """FR1: a program or table checksum does not match."""
    FIRMWARE_FAILURE = 5
    """FR1: the self-diagnostic after a firmware upgrade failed."""
    WRONG_SOCKET = 6
    """FR2: the meter recognises it is installed in the wrong socket."""
    HAN_COMM_FAILURE = 7
    """FR7: a subscribed home-area-network device does not answer (argument: HAN device index)."""
    PUSH_FAILURE = 8
    """FR8: a meter-initiated message could not be delivered."""
    DATA_INCONSISTENCY = 9
    """FR14: an internal data inconsistency."""
    TIME_SYNC_FAILURE = 10
    """FR6: the meter could not synchronise its clock."""
    FAULT_CLEARED = 11
    """A previously detected fault cleared (argument: the fault number, its position in
    ``amidcc.simulators.faults.FaultKind``)."""
    LAST_GASP = 12
    """Primary power is failing (sent as power fails)."""
    PROGRAM_FAILURE = 13
    """FR5: the meter's program failed its check."""


class AmidccMfgStatus(enum.IntFlag):
    """ST3 ED_MFG_STATUS bits of amidcc meters (2 bytes, DATA_ORDER): one bit per fault the standard
    bits blur. The simulator uses this enum, as ``amidcc.simulators.faults.MfgStatus``."""

    CHECKSUM_ERROR = 0x0001
    FIRMWARE_FAILURE = 0x0002
    METROLOGY_CHECK_FAILED = 0x0004
    TIME_SYNC_FAILURE = 0x0008
    WRONG_SOCKET = 0x0010
    HAN_COMM_FAILURE = 0x0020
    PUSH_FAILURE = 0x0040
    DATA_INCONSISTENCY = 0x0080
    PROGRAM_FAILURE = 0x0100


@dataclass(frozen=True, kw_only=True, slots=True)
class MeterEvent:
    """One classified event about one meter."""

    event_id: str
    """Unique id given by whoever created the event (the event log also de-duplicates on the
    natural key: meter, time, sequence number, code and mfg flag)."""
    meter_id: str
    """The head-end's id of the meter."""
    ap_title: str | None
    """The meter's C12.22 AP title in dotted text, where known."""
    time: float
    """When the event happened, by the meter's clock where the meter stamped it."""
    code: int
    """C12.19 event code (0-2047): standard, or manufacturer-defined when ``mfg``."""
    mfg: bool
    """Whether ``code`` is a manufacturer code (bit 11 of HISTORY_CODE / EVENT_CODE)."""
    name: str
    """Short readable name of the event (from the classification table)."""
    argument: bytes = b""
    """EVENT_ARGUMENT / HISTORY_ARGUMENT bytes, or the raw status bytes for a status read."""
    event_class: EventClass
    """FR16 priority class."""
    component: Component
    """The component the event points at."""
    critical: bool
    """Whether it must be reported immediately (FR1, FR17, FR16 safety/service)."""
    failure_type: FailureType | None = None
    """The failure it shows, or None for an event that is not a failure (power up, demand reset)."""
    source: EventSource
    """How the gateway learnt of it."""
    received: float
    """When the gateway received it (the head-end's clock); retention counts from here."""
    seq: int | None = None
    """EVENT_SEQ_NBR / HISTORY_SEQ_NBR for log reads; for status reads the ED_STD_STATUS1 bit
    number, so flags read at the same instant stay distinct; None where the source has none."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TroubleEvent:
    """A failure the gateway believes needs attention: what it sends to the MMS."""

    trouble_id: str
    """Unique id of this trouble event."""
    meter_id: str
    """The failed device: a meter id, or a relay/collector id when ``component`` names one."""
    failure_type: FailureType
    """What failed; the MMS routes on it (BR3)."""
    component: Component
    """The isolated failed component (FR19)."""
    event_class: EventClass
    """FR16 priority class."""
    critical: bool
    """Whether it is to be acted on immediately (NFR4)."""
    detected: float
    """When the gateway detected it."""
    ap_title: str | None = None
    """The device's AP title, where known."""
    account: str | None = None
    """Billing account of the premise (FR10)."""
    premise: str | None = None
    """Premise (service point) id or address (FR21)."""
    meter_type: str | None = None
    """Meter type, e.g. a form or product family (FR12)."""
    module: str | None = None
    """Communication module of the meter (FR12)."""
    manufacturer: str | None = None
    """Manufacturer code (ST1 MANUFACTURER) (FR12)."""
    lot: str | None = None
    """Manufacturing lot (S6: other meters of the same lot are checked)."""
    evidence: tuple[MeterEvent, ...] = ()
    """The meter events that show the failure."""
    details: tuple[tuple[str, str], ...] = ()
    """Free-form evidence as (key, value) pairs: probe results, counters, read errors."""
    affected_meters: tuple[str, ...] = ()
    """Meters behind a failed relay or collector (one order for one root cause)."""
    alternate_paths: int | None = None
    """Number of alternate paths still working (S2 priority), or None where not yet computed."""
    alternate_path_kinds: tuple[str, ...] = ()
    """The kinds of those paths (e.g. "mqtt", "c1222-tcp", "relay:R7")."""


class TroubleSink(Protocol):
    """Where trouble events go: the MMS in process, or an MQTT topic."""

    def submit(self, event: TroubleEvent) -> None:
        """Hand one trouble event over; must not block."""
        ...


TroubleSubscriber = Callable[[TroubleEvent], None]


class InProcessSink:
    """A :class:`TroubleSink` that keeps events in arrival order and calls subscribers.

    Every subscriber sees every event in order, even when an earlier subscriber raises; the
    errors are then raised together as an :class:`ExceptionGroup` so the caller can log them.
    Only the last ``keep`` events are kept (None keeps all), so a long-running daemon does not grow.
    """

    def __init__(self, *, keep: int | None = 10_000) -> None:
        self._events: deque[TroubleEvent] = deque(maxlen=keep)
        self._subscribers: list[TroubleSubscriber] = []

    @property
    def events(self) -> tuple[TroubleEvent, ...]:
        """The kept events, oldest first."""
        return tuple(self._events)

    def subscribe(self, callback: TroubleSubscriber, *, replay: bool = False) -> Callable[[], None]:
        """Call ``callback`` for each later event (and the kept ones first if ``replay``).

        Returns a function that unsubscribes.
        """
        if replay:
            for event in tuple(self._events):
                callback(event)
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def submit(self, event: TroubleEvent) -> None:
        """Keep ``event`` and deliver it to every subscriber."""
        self._events.append(event)
        errors: list[Exception] = []
        for callback in tuple(self._subscribers):
            try:
                callback(event)
            except Exception as exc:  # one bad subscriber must not starve the others
                errors.append(exc)
        if errors:
            raise ExceptionGroup(f"trouble subscribers failed on {event.trouble_id}", errors)
