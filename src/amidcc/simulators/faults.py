"""The fault model: one switch per failure the use case names, and the link faults.

Each meter fault has a row in :data:`FAULTS` saying how the meter notices it (at once, at its next
self-test, or at its next metrology check), where a head-end sees it (ST3 standard and manufacturer
status bits, an event code, an MT0 self-test check), which organisation's kind of failure it is
(FR16 class, BR3 component), and whether it is critical (pushed to the head-end at once, FR1/FR17)
or waits for the next read.

Link faults are not seen by the meter at all: they are data on the meter (:class:`LinkFaults`) that
the transports (C12.22/TCP, MQTT mesh, Modbus, optical) honour.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from amidcc.codecs.c1219.events import StdEvent
from amidcc.codecs.c1219.general import EdStdStatus1
from amidcc.codecs.c1219.mfg import SelfTestCheck
from amidcc.events import AmidccMfgEvent, AmidccMfgStatus, Component, EventClass

__all__ = [
    "FAULTS",
    "FAULT_NUMBER",
    "MFG_EVENT_FLAG",
    "LINK_FAULT_KINDS",
    "LOGGED_STD_EVENTS",
    "NO_LINK_FAULTS",
    "Check",
    "Detection",
    "EventClass",
    "FaultKind",
    "FaultSpec",
    "LinkFaultKind",
    "LinkFaults",
    "MfgEvent",
    "MfgStatus",
    "StdEvent",
    "StdStatus",
    "parse_fault_kind",
]


class FaultKind(enum.StrEnum):
    """Meter faults (the use case's list; FR1, FR2, FR5-FR8, FR14, FR17, S7)."""

    CHECKSUM = "checksum"  #: program/configuration checksum error (FR1)
    FIRMWARE = "firmware"  #: failure after a firmware upgrade (FR1)
    METROLOGY = "metrology"  #: metrology failure: under-registers (FR1, FR17)
    PROGRAM = "program"  #: program (configuration) lost (FR5)
    RAM = "ram"  #: RAM failure (FR5)
    ROM = "rom"  #: ROM failure (FR5)
    NVRAM = "nvram"  #: non-volatile memory failure (FR5)
    TIME_SYNC = "time-sync"  #: the clock cannot be synchronised and drifts (FR6)
    WRONG_SOCKET = "wrong-socket"  #: installed in the wrong socket (FR2)
    HAN = "han"  #: a subscribed HAN device stopped answering (FR7)
    PUSH_FAILURE = "push-failure"  #: meter-initiated messages fail (FR8)
    DATA_INCONSISTENCY = "data-inconsistency"  #: registers disagree with interval data (FR14)
    TAMPER = "tamper"  #: tamper detected (S7)
    POWER_OUTAGE = "power-outage"  #: power lost (last gasp); clearing it restores power
    REVERSE_ROTATION = "reverse-rotation"  #: energy registers backwards (meter inverted)
    LOW_BATTERY = "low-battery"  #: clock battery low


class LinkFaultKind(enum.StrEnum):
    """Faults on the way to the meter; honoured by the transports, invisible to the meter."""

    SILENT = "silent"  #: the meter's radio/modem answers nothing
    RELAY_DOWN = "relay-down"  #: the meter's parent relay is down
    COLLECTOR_DOWN = "collector-down"  #: the meter's collector is down
    PACKET_LOSS = "packet-loss"  #: each message is lost with probability ``value`` (default 0.3)
    LATENCY = "latency"  #: ``value`` seconds added to every message (default 2.0)
    GARBAGE = "garbage"  #: responses are replaced by garbage with probability ``value`` (default 1)


LINK_FAULT_KINDS = frozenset(LinkFaultKind)


def parse_fault_kind(text: str) -> FaultKind | LinkFaultKind:
    """``"metrology"``, ``"time_sync"`` or ``"TIME-SYNC"`` -> the kind; ValueError naming the choices."""
    key = text.strip().lower().replace("_", "-")
    for enum_cls in (FaultKind, LinkFaultKind):
        try:
            return enum_cls(key)
        except ValueError:
            continue
    choices = ", ".join([*FaultKind, *LinkFaultKind])
    raise ValueError(f"unknown fault kind {text!r} (one of: {choices})")


class Detection(enum.StrEnum):
    """When the meter notices a fault."""

    IMMEDIATE = "immediate"  #: a sensor or the failing operation itself
    SELF_TEST = "self-test"  #: the next self-diagnostic run (power-up, periodic or on demand)
    METROLOGY = "metrology"  #: the next metrology health check


#: ST3 ED_STD_STATUS1 bits (protocol-facts 4.4): the codec's flags, under the simulator's name.
StdStatus = EdStdStatus1


#: The standard event codes (protocol-facts 4.10) the simulated meter logs: ST72 lists them as
#: supported and ST75 as monitored.
LOGGED_STD_EVENTS: frozenset[StdEvent] = frozenset(
    {
        StdEvent.PRIMARY_POWER_DOWN,
        StdEvent.PRIMARY_POWER_UP,
        StdEvent.TIME_CHANGED_OLD_TIME,
        StdEvent.TIME_CHANGED_NEW_TIME,
        StdEvent.PROCEDURE_INVOKED,
        StdEvent.TABLE_WRITTEN,
        StdEvent.END_DEVICE_PROGRAMMED,
        StdEvent.DEMAND_RESET,
        StdEvent.CONFIGURATION_ERROR,
        StdEvent.SELF_CHECK_ERROR,
        StdEvent.RAM_FAILURE,
        StdEvent.ROM_FAILURE,
        StdEvent.NV_MEMORY_FAILURE,
        StdEvent.CLOCK_ERROR,
        StdEvent.MEASUREMENT_ERROR,
        StdEvent.LOW_BATTERY,
        StdEvent.TAMPER_ATTEMPT,
        StdEvent.REVERSE_ROTATION,
    }
)

#: amidcc's manufacturer event numbers and ST3 ED_MFG_STATUS bits: the simulated meters log and
#: report exactly what the gateway classifies (:mod:`amidcc.events`), under the simulator's names.
MfgEvent = AmidccMfgEvent
MfgStatus = AmidccMfgStatus

#: Manufacturer flag in an EVENT_CODE / HISTORY_CODE word (TABLE_IDB_BFLD bit 11).
MFG_EVENT_FLAG = 0x0800


class Check(enum.IntEnum):
    """Self-test checks, one MT0 record each; the numbers are MT0 CHECK_IDs.

    Those below 12 are the codec's :class:`~amidcc.codecs.c1219.mfg.SelfTestCheck` numbers; 12-16
    are added here for the use case's failures that list has no check for (MT0 leaves 0-255 to
    amidcc)."""

    RAM = SelfTestCheck.RAM
    ROM = SelfTestCheck.ROM
    NVRAM = SelfTestCheck.NONVOLATILE_MEMORY
    CLOCK = SelfTestCheck.CLOCK
    METROLOGY = SelfTestCheck.MEASUREMENT
    BATTERY = SelfTestCheck.BATTERY
    RADIO = SelfTestCheck.RADIO  #: meter-initiated messages (FR8)
    FIRMWARE = SelfTestCheck.FIRMWARE_IMAGE
    PROGRAM_CHECKSUM = 12
    PROGRAM = 13
    SOCKET = 14
    HAN = 15
    DATA_CONSISTENCY = 16


@dataclass(frozen=True, kw_only=True, slots=True)
class FaultSpec:
    """How one fault kind shows, and to whom it matters."""

    kind: FaultKind
    """The fault."""
    detection: Detection
    """When the meter notices it."""
    event_class: EventClass
    """FR16 class, the hint the head-end's classification starts from."""
    critical: bool
    """Pushed to the head-end at once (an :class:`~amidcc.simulators.diagnostics.Alarm`)."""
    component: Component
    """BR3/FR19 component: the meter, its HAN or its WAN module."""
    std_status: StdStatus
    """ST3 standard status bits set while detected (latched until SP7)."""
    mfg_status: MfgStatus
    """ST3 manufacturer status bits set while detected."""
    event_code: int
    """EVENT_CODE logged on detection (a StdEvent, or MFG_EVENT_FLAG | MfgEvent)."""
    check: Check | None
    """MT0 check that fails while the fault is active (None: not a self-test matter)."""


def _mfg(e: MfgEvent) -> int:
    return MFG_EVENT_FLAG | int(e)


_I, _S, _M = Detection.IMMEDIATE, Detection.SELF_TEST, Detection.METROLOGY
_SAF, _SRV, _BIL, _CUS, _INF = (
    EventClass.SAFETY,
    EventClass.SERVICE,
    EventClass.BILLING,
    EventClass.CUSTOMER,
    EventClass.INFORMATIONAL,
)
_MTR, _HAN, _WAN = Component.METER, Component.HAN, Component.WAN
_NS, _NM = StdStatus(0), MfgStatus(0)

# kind, detection, class, critical, component, std bits, mfg bits, event, MT0 check
_ROWS: list[tuple[FaultKind, Detection, EventClass, bool, Component, StdStatus, MfgStatus, int, Check | None]] = [
    (FaultKind.CHECKSUM, _S, _SRV, True, _MTR, StdStatus.SELF_CHK_ERROR, MfgStatus.CHECKSUM_ERROR, _mfg(MfgEvent.CHECKSUM_ERROR), Check.PROGRAM_CHECKSUM),
    (FaultKind.FIRMWARE, _S, _SRV, True, _MTR, StdStatus.SELF_CHK_ERROR, MfgStatus.FIRMWARE_FAILURE, _mfg(MfgEvent.FIRMWARE_FAILURE), Check.FIRMWARE),
    (FaultKind.METROLOGY, _M, _BIL, True, _MTR, StdStatus.MEASUREMENT_ERROR, MfgStatus.METROLOGY_CHECK_FAILED, StdEvent.MEASUREMENT_ERROR, Check.METROLOGY),
    (FaultKind.PROGRAM, _S, _SRV, True, _MTR, StdStatus.UNPROGRAMMED | StdStatus.CONFIGURATION_ERROR, MfgStatus.PROGRAM_FAILURE, StdEvent.CONFIGURATION_ERROR, Check.PROGRAM),
    (FaultKind.RAM, _S, _SRV, True, _MTR, StdStatus.RAM_FAILURE, _NM, StdEvent.RAM_FAILURE, Check.RAM),
    (FaultKind.ROM, _S, _SRV, True, _MTR, StdStatus.ROM_FAILURE, _NM, StdEvent.ROM_FAILURE, Check.ROM),
    (FaultKind.NVRAM, _S, _SRV, True, _MTR, StdStatus.NONVOL_MEM_FAILURE, _NM, StdEvent.NV_MEMORY_FAILURE, Check.NVRAM),
    (FaultKind.TIME_SYNC, _S, _BIL, True, _MTR, StdStatus.CLOCK_ERROR, MfgStatus.TIME_SYNC_FAILURE, StdEvent.CLOCK_ERROR, Check.CLOCK),
    (FaultKind.WRONG_SOCKET, _I, _SAF, True, _MTR, StdStatus.CONFIGURATION_ERROR, MfgStatus.WRONG_SOCKET, _mfg(MfgEvent.WRONG_SOCKET), Check.SOCKET),
    (FaultKind.HAN, _I, _CUS, False, _HAN, _NS, MfgStatus.HAN_COMM_FAILURE, _mfg(MfgEvent.HAN_COMM_FAILURE), Check.HAN),
    (FaultKind.PUSH_FAILURE, _I, _INF, False, _WAN, _NS, MfgStatus.PUSH_FAILURE, _mfg(MfgEvent.PUSH_FAILURE), Check.RADIO),
    (FaultKind.DATA_INCONSISTENCY, _S, _BIL, False, _MTR, StdStatus.SELF_CHK_ERROR, MfgStatus.DATA_INCONSISTENCY, _mfg(MfgEvent.DATA_INCONSISTENCY), Check.DATA_CONSISTENCY),
    (FaultKind.TAMPER, _I, _SAF, True, _MTR, StdStatus.TAMPER_DETECT, _NM, StdEvent.TAMPER_ATTEMPT, None),
    (FaultKind.POWER_OUTAGE, _I, _SRV, True, _MTR, StdStatus.POWER_FAILURE, _NM, StdEvent.PRIMARY_POWER_DOWN, None),
    (FaultKind.REVERSE_ROTATION, _I, _SAF, True, _MTR, StdStatus.REVERSE_ROTATION, _NM, StdEvent.REVERSE_ROTATION, None),
    (FaultKind.LOW_BATTERY, _I, _INF, False, _MTR, StdStatus.LOW_BATTERY, _NM, StdEvent.LOW_BATTERY, Check.BATTERY),
]  # fmt: skip

#: The fault table, by kind.
FAULTS: dict[FaultKind, FaultSpec] = {
    row[0]: FaultSpec(
        kind=row[0],
        detection=row[1],
        event_class=row[2],
        critical=row[3],
        component=row[4],
        std_status=row[5],
        mfg_status=row[6],
        event_code=int(row[7]),
        check=row[8],
    )
    for row in _ROWS
}
assert set(FAULTS) == set(FaultKind), "every fault kind needs a row"

#: Position of each kind (the FAULT_CLEARED event argument, MT0 detail codes).
FAULT_NUMBER: dict[FaultKind, int] = {k: i for i, k in enumerate(FaultKind)}


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkFaults:
    """The link faults currently set on one meter; transports read these fields and honour them."""

    silent: bool = False
    """Answer nothing (the meter's radio or modem is dead; also true while the power is out)."""
    relay_down: bool = False
    """The meter's parent relay is down (the mesh re-routes via an alternate parent if allowed)."""
    collector_down: bool = False
    """The meter's collector is down."""
    packet_loss: float = 0.0
    """Probability that one message (either way) is lost."""
    latency: float = 0.0
    """Seconds added to every message."""
    garbage: float = 0.0
    """Probability that a response is replaced by garbage bytes."""

    @property
    def any(self) -> bool:
        """True when some link fault is set."""
        return self != NO_LINK_FAULTS

    def with_fault(self, kind: LinkFaultKind, value: float | None) -> LinkFaults:
        """A copy with ``kind`` set (``value`` for the numeric ones; a sensible default if None)."""
        if kind is LinkFaultKind.PACKET_LOSS:
            return replace(self, packet_loss=_prob(0.3 if value is None else value, kind))
        if kind is LinkFaultKind.LATENCY:
            lat = 2.0 if value is None else value
            if lat < 0:
                raise ValueError("latency must be >= 0 seconds")
            return replace(self, latency=lat)
        if kind is LinkFaultKind.GARBAGE:
            return replace(self, garbage=_prob(1.0 if value is None else value, kind))
        return replace(self, **{kind.value.replace("-", "_"): True})

    def without_fault(self, kind: LinkFaultKind) -> LinkFaults:
        """A copy with ``kind`` cleared."""
        field = kind.value.replace("-", "_")
        default = getattr(NO_LINK_FAULTS, field)
        return replace(self, **{field: default})


def _prob(value: float, kind: LinkFaultKind) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{kind.value} is a probability between 0 and 1, not {value}")
    return float(value)


#: The shared "no link fault" value (most meters point at this one object).
NO_LINK_FAULTS = LinkFaults()
