"""Classification of meter events: event class, failed component, criticality and failure type.

Pure and table-driven. Each C12.19 event code (protocol-facts 4.10), each ST3 ED_STD_STATUS1 flag
(4.4) and each amidcc manufacturer event (:class:`amidcc.events.AmidccMfgEvent`) maps to one
:class:`Classification`. "critical" means "report at once" (FR1's list, FR17, and every FR16 safety
or service row); the rest waits for the next billing period (FR16). Codes are plain ints here: the
C12.19 codec's enums live in :mod:`amidcc.codecs.c1219` and this module does not depend on them.

Rows that are failures or power events (every other standard code 0-76 is informational, component
unknown or meter, no failure type, no power change):

==== ==== =============================== ============= ========= ==== ======================== ===== ===========
src  code name                            class         component crit failure type             power answers
==== ==== =============================== ============= ========= ==== ======================== ===== ===========
std  1    primary_power_down              SERVICE       unknown   no   POWER_OUTAGE             down  FR16, FR18
std  2    primary_power_up                INFORMATIONAL unknown   no   -                        up    FR18
std  13   communication_terminated_ab..   INFORMATIONAL unknown   no   COMM_FAILURE             -     FR8
std  37   configuration_error_detected    SERVICE       meter     yes  PROGRAM_FAILURE          -     FR1, FR5
std  38   self_check_error_detected       SERVICE       meter     yes  SELF_TEST_FAILURE        -     FR1
std  39   ram_failure_detected            SERVICE       meter     yes  MEMORY_FAILURE           -     FR1, FR5
std  40   rom_failure_detected            SERVICE       meter     yes  MEMORY_FAILURE           -     FR1, FR5
std  41   nonvolatile_memory_failure_..   SERVICE       meter     yes  MEMORY_FAILURE           -     FR1, FR5
std  42   clock_error_detected            BILLING       meter     yes  TIME_SYNC_FAILURE        -     FR1, FR6
std  43   measurement_error_detected      BILLING       meter     yes  METROLOGY_FAILURE        -     FR1, FR17
std  44   low_battery_detected            BILLING       meter     no   LOW_BATTERY              -     FR16
std  45   low_loss_potential_detected     SERVICE       meter     yes  LOW_POTENTIAL            -     FR16
std  46   demand_overload_detected        SAFETY        meter     yes  DEMAND_OVERLOAD          -     FR16
std  47   tamper_attempt_detected         SAFETY        meter     yes  TAMPER                   -     FR16, S7
std  48   reverse_rotation_detected       SAFETY        meter     yes  REVERSE_ROTATION         -     FR16, S7
mfg  0    self_test_passed                INFORMATIONAL meter     no   -                        -     FR1
mfg  1    self_test_failed                SERVICE       meter     yes  SELF_TEST_FAILURE        -     FR1
mfg  2    metrology_passed                INFORMATIONAL meter     no   -                        -     NFR6
mfg  3    metrology_failed                BILLING       meter     yes  METROLOGY_FAILURE        -     FR17
mfg  4    checksum_error                  SERVICE       meter     yes  CHECKSUM_ERROR           -     FR1
mfg  5    firmware_failure                SERVICE       meter     yes  FIRMWARE_UPGRADE_FAILURE -     FR1
mfg  6    wrong_socket                    SAFETY        meter     yes  WRONG_SOCKET             -     FR2, FR16
mfg  7    han_comm_failure                CUSTOMER      han       no   HAN_FAILURE              -     FR7
mfg  8    push_failure                    INFORMATIONAL wan       no   COMM_FAILURE             -     FR8
mfg  9    data_inconsistency              BILLING       meter     no   DATA_INCONSISTENCY       -     FR14
mfg  10   time_sync_failure               BILLING       meter     yes  TIME_SYNC_FAILURE        -     FR1, FR6
mfg  11   fault_cleared                   INFORMATIONAL meter     no   -                        -     FR1
mfg  12   last_gasp                       SERVICE       unknown   no   POWER_OUTAGE             down  FR16, FR18
mfg  13   program_failure                 SERVICE       meter     yes  PROGRAM_FAILURE          -     FR1, FR5
==== ==== =============================== ============= ========= ==== ======================== ===== ===========

ST3 ED_STD_STATUS1 flags classify as the standard event they stand for: CONFIGURATION_ERROR 37,
SELF_CHK_ERROR 38, RAM/ROM/NONVOL 39-41, CLOCK_ERROR 42, MEASUREMENT_ERROR 43, LOW_BATTERY 44,
LOW_LOSS_POTENTIAL 45, DEMAND_OVERLOAD 46, POWER_FAILURE 1, TAMPER_DETECT 47, REVERSE_ROTATION 48.
UNPROGRAMMED is informational: a new meter is unprogrammed until the head-end programs it (S1);
a meter still unprogrammed after programming is the gateway's call, not this table's.

amidcc meters also report ED_MFG_STATUS bits (:class:`amidcc.events.AmidccMfgStatus`); each
classifies as the manufacturer event it stands for (:func:`classify_mfg_status`).

Judgement calls (the standards do not assign classes): demand overload, tamper and reverse
rotation are SAFETY (an overloaded service is a hazard; a meter running backwards has usually
been pulled and inverted, which is tampering, S7; sites with generation may override the row).

Power events are service events for outage management, not meter trouble: a power-down (or a last
gasp) keeps its SERVICE class and its POWER_OUTAGE failure type, so the log can be queried for
outages (FR10-FR13), but is not critical and carries ``power`` (:class:`PowerChange`); the intake
logs and counts it, keeps the meter in its outage view until the power-up, and never opens a
trouble event for it; failures explained by the outage are suppressed (FR18). Outages point at no
meter component. Every row can be replaced per deployment with ``Classifier(overrides=...)``, and
other manufacturers' event tables plugged in with ``Classifier(manufacturers=...)``: manufacturer
codes mean different things per manufacturer (a manufacturer's last gasp is one more row with
``power=PowerChange.DOWN``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from amidcc.events import AmidccMfgEvent as Mfg
from amidcc.events import AmidccMfgStatus as MfgStatus
from amidcc.events import Component, EventClass, FailureType

__all__ = [
    "AMIDCC_MFG_EVENTS",
    "AMIDCC_MFG_STATUS_FLAGS",
    "Classification",
    "Classifier",
    "PowerChange",
    "STANDARD_EVENTS",
    "STATUS_FLAGS",
    "classify_event",
    "classify_mfg_status",
    "classify_status",
]

MAX_EVENT_CODE = 0x7FF  # 11 bits: TABLE_IDB_BFLD bits 0-10 (protocol-facts 4.10)


class PowerChange(enum.StrEnum):
    """What a power event says about the meter's supply (outage management, FR18)."""

    DOWN = "down"
    """Primary power failed (power down, last gasp): the meter enters the outage view."""
    UP = "up"
    """Primary power is back (power up, restoration): the meter leaves the outage view."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Classification:
    """How the gateway treats one kind of event."""

    code: int
    """The event code (for a status flag: the standard event code it stands for)."""
    mfg: bool
    """Whether ``code`` is a manufacturer code."""
    name: str
    """Short snake_case name."""
    event_class: EventClass
    """FR16 priority class."""
    component: Component
    """The component it points at."""
    critical: bool
    """Report at once (FR1, FR17, FR16 safety/service)."""
    failure_type: FailureType | None
    """The failure it shows, or None for an event that is not a failure."""
    requirements: tuple[str, ...] = ()
    """The requirements (FR/NFR/scenario ids) this row answers."""
    power: PowerChange | None = None
    """For a power event: whether power went down or came back. Power events feed the outage
    view and never become meter trouble, whatever ``critical`` says."""


_S, _V, _B, _C, _I = (
    EventClass.SAFETY,
    EventClass.SERVICE,
    EventClass.BILLING,
    EventClass.CUSTOMER,
    EventClass.INFORMATIONAL,
)
_M, _U = Component.METER, Component.UNKNOWN
_F = FailureType
_DOWN, _UP = PowerChange.DOWN, PowerChange.UP


def _row(
    code: int,
    name: str,
    cls: EventClass = _I,
    comp: Component = _M,
    crit: bool = False,
    failure: FailureType | None = None,
    *reqs: str,
    mfg: bool = False,
    power: PowerChange | None = None,
) -> Classification:
    return Classification(
        code=code,
        mfg=mfg,
        name=name,
        event_class=cls,
        component=comp,
        critical=crit,
        failure_type=failure,
        requirements=reqs,
        power=power,
    )


# Names of the standard codes 0-76 (protocol-facts 4.10, termineter's list [S5]).
_STD_NAMES = (
    "no_event primary_power_down primary_power_up time_changed_old_time time_changed_new_time"
    " time_changed_old_stime time_changed_new_stime accessed_for_read accessed_for_write"
    " procedure_invoked table_written end_device_programmed communication_terminated_normally"
    " communication_terminated_abnormally reset_list_pointers updated_list_pointers"
    " history_log_cleared history_log_pointers_updated event_log_cleared"
    " event_log_pointers_updated demand_reset self_read dst_on dst_off season_change rate_change"
    " special_schedule_activated tier_switch pending_table_activated pending_table_cleared"
    " metering_mode_started metering_mode_stopped test_mode_started test_mode_stopped"
    " meter_shop_mode_started meter_shop_mode_stopped end_device_reprogrammed"
    " configuration_error_detected self_check_error_detected ram_failure_detected"
    " rom_failure_detected nonvolatile_memory_failure_detected clock_error_detected"
    " measurement_error_detected low_battery_detected low_loss_potential_detected"
    " demand_overload_detected tamper_attempt_detected reverse_rotation_detected"
    " control_point_changed_by_command control_point_changed_by_schedule"
    " control_point_changed_by_condition control_point_changed_for_prepayment credit_added"
    " credit_subtracted credit_adjusted end_device_sealed end_device_unsealed"
    " procedure_invoked_with_values table_written_with_values end_device_programmed_with_values"
    " end_device_sealed_with_values end_device_unsealed_with_values"
    " procedure_invoked_with_signature table_written_with_signature"
    " end_device_programmed_with_signature end_device_sealed_with_signature"
    " end_device_unsealed_with_signature procedure_invoked_with_signature_and_values"
    " table_written_with_signature_and_values end_device_programmed_with_signature_and_values"
    " end_device_sealed_with_signature_and_values end_device_unsealed_with_signature_and_values"
    " read_secured_table read_secured_register read_secured_table_with_values"
    " read_secured_register_with_values"
).split()

_STD_FAILURES = (
    _row(1, "primary_power_down", _V, _U, False, _F.POWER_OUTAGE, "FR16", "FR18", power=_DOWN),
    _row(2, "primary_power_up", _I, _U, False, None, "FR18", power=_UP),
    _row(13, "communication_terminated_abnormally", _I, _U, False, _F.COMM_FAILURE, "FR8"),
    _row(37, "configuration_error_detected", _V, _M, True, _F.PROGRAM_FAILURE, "FR1", "FR5"),
    _row(38, "self_check_error_detected", _V, _M, True, _F.SELF_TEST_FAILURE, "FR1"),
    _row(39, "ram_failure_detected", _V, _M, True, _F.MEMORY_FAILURE, "FR1", "FR5"),
    _row(40, "rom_failure_detected", _V, _M, True, _F.MEMORY_FAILURE, "FR1", "FR5"),
    _row(41, "nonvolatile_memory_failure_detected", _V, _M, True, _F.MEMORY_FAILURE, "FR1", "FR5"),
    _row(42, "clock_error_detected", _B, _M, True, _F.TIME_SYNC_FAILURE, "FR1", "FR6"),
    _row(43, "measurement_error_detected", _B, _M, True, _F.METROLOGY_FAILURE, "FR1", "FR17"),
    _row(44, "low_battery_detected", _B, _M, False, _F.LOW_BATTERY, "FR16"),
    _row(45, "low_loss_potential_detected", _V, _M, True, _F.LOW_POTENTIAL, "FR16"),
    _row(46, "demand_overload_detected", _S, _M, True, _F.DEMAND_OVERLOAD, "FR16"),
    _row(47, "tamper_attempt_detected", _S, _M, True, _F.TAMPER, "FR16", "S7"),
    _row(48, "reverse_rotation_detected", _S, _M, True, _F.REVERSE_ROTATION, "FR16", "S7"),
)


def _table(rows: Iterable[Classification]) -> dict[int, Classification]:
    return {row.code: row for row in rows}


STANDARD_EVENTS: Mapping[int, Classification] = {
    **_table(_row(code, name) for code, name in enumerate(_STD_NAMES)),
    **_table(_STD_FAILURES),
}
"""Standard event code -> classification (codes 0-76)."""


def _mfg(
    code: Mfg,
    name: str,
    cls: EventClass,
    comp: Component,
    crit: bool,
    failure: FailureType | None,
    *reqs: str,
    power: PowerChange | None = None,
) -> Classification:
    return _row(int(code), name, cls, comp, crit, failure, *reqs, mfg=True, power=power)


_H, _W = Component.HAN, Component.WAN

AMIDCC_MFG_EVENTS: Mapping[int, Classification] = _table(
    (
        _mfg(Mfg.SELF_TEST_PASSED, "self_test_passed", _I, _M, False, None, "FR1"),
        _mfg(Mfg.SELF_TEST_FAILED, "self_test_failed", _V, _M, True, _F.SELF_TEST_FAILURE, "FR1"),
        _mfg(Mfg.METROLOGY_PASSED, "metrology_passed", _I, _M, False, None, "NFR6"),
        _mfg(Mfg.METROLOGY_FAILED, "metrology_failed", _B, _M, True, _F.METROLOGY_FAILURE, "FR17"),
        _mfg(Mfg.CHECKSUM_ERROR, "checksum_error", _V, _M, True, _F.CHECKSUM_ERROR, "FR1"),
        _mfg(
            Mfg.FIRMWARE_FAILURE,
            "firmware_failure", _V, _M, True, _F.FIRMWARE_UPGRADE_FAILURE, "FR1",
        ),
        _mfg(Mfg.WRONG_SOCKET, "wrong_socket", _S, _M, True, _F.WRONG_SOCKET, "FR2", "FR16"),
        _mfg(Mfg.HAN_COMM_FAILURE, "han_comm_failure", _C, _H, False, _F.HAN_FAILURE, "FR7"),
        _mfg(Mfg.PUSH_FAILURE, "push_failure", _I, _W, False, _F.COMM_FAILURE, "FR8"),
        _mfg(
            Mfg.DATA_INCONSISTENCY,
            "data_inconsistency", _B, _M, False, _F.DATA_INCONSISTENCY, "FR14",
        ),
        _mfg(
            Mfg.TIME_SYNC_FAILURE,
            "time_sync_failure", _B, _M, True, _F.TIME_SYNC_FAILURE, "FR1", "FR6",
        ),
        _mfg(Mfg.FAULT_CLEARED, "fault_cleared", _I, _M, False, None, "FR1"),
        _mfg(
            Mfg.LAST_GASP,
            "last_gasp", _V, _U, False, _F.POWER_OUTAGE, "FR16", "FR18", power=_DOWN,
        ),
        _mfg(
            Mfg.PROGRAM_FAILURE,
            "program_failure", _V, _M, True, _F.PROGRAM_FAILURE, "FR1", "FR5",
        ),
    )
)
"""amidcc manufacturer event code -> classification."""

STATUS_FLAGS: tuple[tuple[int, str, int], ...] = (
    (0x0001, "unprogrammed", 0),
    (0x0002, "configuration_error", 37),
    (0x0004, "self_chk_error", 38),
    (0x0008, "ram_failure", 39),
    (0x0010, "rom_failure", 40),
    (0x0020, "nonvol_mem_failure", 41),
    (0x0040, "clock_error", 42),
    (0x0080, "measurement_error", 43),
    (0x0100, "low_battery", 44),
    (0x0200, "low_loss_potential", 45),
    (0x0400, "demand_overload", 46),
    (0x0800, "power_failure", 1),
    (0x1000, "tamper_detect", 47),
    (0x2000, "reverse_rotation", 48),
)
"""ST3 ED_STD_STATUS1 (mask, name, standard event code it stands for); bits 14-15 are filler.
UNPROGRAMMED maps to code 0 ("no event"): informational, see the module docstring. POWER_FAILURE
keeps code 1's class and failure type but no :class:`PowerChange` (it is latched)."""

AMIDCC_MFG_STATUS_FLAGS: tuple[tuple[int, int], ...] = (
    (MfgStatus.CHECKSUM_ERROR, Mfg.CHECKSUM_ERROR),
    (MfgStatus.FIRMWARE_FAILURE, Mfg.FIRMWARE_FAILURE),
    (MfgStatus.METROLOGY_CHECK_FAILED, Mfg.METROLOGY_FAILED),
    (MfgStatus.TIME_SYNC_FAILURE, Mfg.TIME_SYNC_FAILURE),
    (MfgStatus.WRONG_SOCKET, Mfg.WRONG_SOCKET),
    (MfgStatus.HAN_COMM_FAILURE, Mfg.HAN_COMM_FAILURE),
    (MfgStatus.PUSH_FAILURE, Mfg.PUSH_FAILURE),
    (MfgStatus.DATA_INCONSISTENCY, Mfg.DATA_INCONSISTENCY),
    (MfgStatus.PROGRAM_FAILURE, Mfg.PROGRAM_FAILURE),
)
"""amidcc ED_MFG_STATUS (mask, the amidcc manufacturer event code it stands for)."""


class Classifier:
    """The classification tables, with per-deployment overrides and manufacturer tables.

    :param overrides: rows replacing the default rows with the same (code, mfg); mfg rows replace
        amidcc's manufacturer table.
    :param manufacturers: manufacturer id (ST1 MANUFACTURER, e.g. ``"EE  "``) -> that
        manufacturer's event table. A manufacturer without a table gets amidcc's.
    """

    def __init__(
        self,
        *,
        overrides: Iterable[Classification] = (),
        manufacturers: Mapping[str, Mapping[int, Classification]] | None = None,
    ) -> None:
        self._std = dict(STANDARD_EVENTS)
        self._amidcc = dict(AMIDCC_MFG_EVENTS)
        for row in overrides:
            (self._amidcc if row.mfg else self._std)[row.code] = row
        self._manufacturers = {k: dict(v) for k, v in (manufacturers or {}).items()}

    def classify_event(
        self, code: int, mfg: bool = False, *, manufacturer: str | None = None
    ) -> Classification:
        """Classify one event code; an unknown code is informational with component unknown."""
        if not 0 <= code <= MAX_EVENT_CODE:
            raise ValueError(f"event code {code} is not an 11-bit C12.19 event code")
        if not mfg:
            table = self._std
        elif manufacturer is not None and manufacturer in self._manufacturers:
            table = self._manufacturers[manufacturer]
        else:
            table = self._amidcc
        found = table.get(code)
        if found is not None:
            return found
        kind = "mfg" if mfg else "std"
        return _row(code, f"{kind}_event_{code}", _I, _U, mfg=mfg)

    def classify_status(self, flags: int) -> list[Classification]:
        """Classify every set ED_STD_STATUS1 flag, lowest bit first; filler bits are ignored."""
        if not 0 <= flags <= 0xFFFF:
            raise ValueError(f"ED_STD_STATUS1 is 16 bits, got {flags:#x}")
        found: list[Classification] = []
        for mask, name, code in STATUS_FLAGS:
            if flags & mask:
                # a flag is a latched condition, not a power transition (ST3 POWER_FAILURE
                # stays set after the power-up): it never moves the outage view
                found.append(replace(self.classify_event(code), name=name, power=None))
        return found

    def classify_mfg_status(
        self, flags: int, *, manufacturer: str | None = None
    ) -> list[Classification]:
        """Classify ED_MFG_STATUS bits of an amidcc meter, lowest bit first.

        A manufacturer with its own event table registered has its own status bits too, unknown
        here: nothing is returned for it.
        """
        if flags < 0:
            raise ValueError(f"ED_MFG_STATUS cannot be negative: {flags}")
        if manufacturer is not None and manufacturer in self._manufacturers:
            return []
        return [
            self.classify_event(code, True)
            for mask, code in AMIDCC_MFG_STATUS_FLAGS
            if flags & mask
        ]


DEFAULT_CLASSIFIER = Classifier()
"""The built-in tables without overrides."""


def classify_event(
    code: int, mfg: bool = False, *, manufacturer: str | None = None
) -> Classification:
    """Classify one event code with the built-in tables (see :class:`Classifier`)."""
    return DEFAULT_CLASSIFIER.classify_event(code, mfg, manufacturer=manufacturer)


def classify_status(flags: int) -> list[Classification]:
    """Classify the set ED_STD_STATUS1 flags with the built-in tables."""
    return DEFAULT_CLASSIFIER.classify_status(flags)


def classify_mfg_status(flags: int, *, manufacturer: str | None = None) -> list[Classification]:
    """Classify amidcc ED_MFG_STATUS bits with the built-in tables."""
    return DEFAULT_CLASSIFIER.classify_mfg_status(flags, manufacturer=manufacturer)
