"""Simulated meters and fleets, made of amidcc's own codecs. Sans-I/O: transports live elsewhere.

The API the link simulators (C12.22/TCP and UDP, the MQTT mesh, Modbus, the optical port) use:

- :class:`MeterIdentity`: who a meter is (nameplate, AP title, account, premise, seed).
- :class:`MeterConfig`: the knobs every meter of a fleet shares (one object).
- :class:`SimMeter`: ``handle_request(bytes, now)`` (C12.18 rules), ``handle_services(list, now)``
  (one C12.22 EPSEM), ``tick(now) -> list[Alarm]``, ``inject(fault, now)`` / ``clear(fault, now)``,
  ``link_faults`` (for the transports to honour), ``powered(now)``, ``key`` (C12.22 key).
- :class:`Alarm` and :func:`alarm_services`: the unsolicited message of a critical failure.
- :func:`build_fleet`, :class:`FleetModel`: many meters with scheduled and random faults.
- :func:`load_scenario`, :func:`parse_fault_arg`: the scenario file and ``--fault`` strings.

See docs/simulators.md.
"""

from .alarms import alarm_services, decode_alarm_services
from .config import Access, MeterConfig, PortSharing, pad_password
from .diagnostics import Alarm, EventRecord, RunKind
from .faults import (
    FAULTS,
    Check,
    EventClass,
    FaultKind,
    LinkFaultKind,
    LinkFaults,
    MfgEvent,
    MfgStatus,
    StdEvent,
    StdStatus,
)
from .fleet import FaultAction, FleetModel, build_fleet, make_identity
from .identity import MeterIdentity
from .meter import SimMeter
from .scenario import (
    Scenario,
    ScenarioError,
    ScheduledFault,
    load_scenario,
    parse_fault_arg,
    parse_scenario,
)
from .tables import context_for

__all__ = [
    "FAULTS",
    "Access",
    "Alarm",
    "Check",
    "EventClass",
    "EventRecord",
    "FaultAction",
    "FaultKind",
    "FleetModel",
    "LinkFaultKind",
    "LinkFaults",
    "MeterConfig",
    "MeterIdentity",
    "MfgEvent",
    "MfgStatus",
    "PortSharing",
    "RunKind",
    "Scenario",
    "ScenarioError",
    "ScheduledFault",
    "SimMeter",
    "StdEvent",
    "StdStatus",
    "alarm_services",
    "build_fleet",
    "context_for",
    "decode_alarm_services",
    "load_scenario",
    "make_identity",
    "pad_password",
    "parse_fault_arg",
    "parse_scenario",
]
