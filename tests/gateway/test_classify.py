"""amidcc.gateway.classify: the event-code and status-flag tables."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from amidcc.events import AmidccMfgEvent, AmidccMfgStatus, Component, EventClass, FailureType
from amidcc.gateway import classify
from amidcc.gateway.classify import (
    AMIDCC_MFG_EVENTS,
    STANDARD_EVENTS,
    Classification,
    Classifier,
    PowerChange,
    classify_event,
    classify_mfg_status,
    classify_status,
)

S, V, B, C, I = (  # noqa: E741
    EventClass.SAFETY,
    EventClass.SERVICE,
    EventClass.BILLING,
    EventClass.CUSTOMER,
    EventClass.INFORMATIONAL,
)
F = FailureType

# (code, mfg, class, component, critical, failure type). Standard codes: protocol-facts 4.10 (the
# termineter / EnergyICT list); mfg codes: amidcc.events.AmidccMfgEvent.
CASES = [
    (1, False, V, Component.UNKNOWN, False, F.POWER_OUTAGE),  # power down: outage, not trouble
    (2, False, I, Component.UNKNOWN, False, None),  # primary power up
    (20, False, I, Component.METER, False, None),  # demand reset: not a failure
    (37, False, V, Component.METER, True, F.PROGRAM_FAILURE),  # FR5
    (38, False, V, Component.METER, True, F.SELF_TEST_FAILURE),  # FR1
    (39, False, V, Component.METER, True, F.MEMORY_FAILURE),  # FR1/FR5 RAM
    (40, False, V, Component.METER, True, F.MEMORY_FAILURE),  # ROM
    (41, False, V, Component.METER, True, F.MEMORY_FAILURE),  # NV memory
    (42, False, B, Component.METER, True, F.TIME_SYNC_FAILURE),  # FR6 clock error
    (43, False, B, Component.METER, True, F.METROLOGY_FAILURE),  # FR17 measurement error
    (44, False, B, Component.METER, False, F.LOW_BATTERY),
    (47, False, S, Component.METER, True, F.TAMPER),  # S7
    (48, False, S, Component.METER, True, F.REVERSE_ROTATION),  # S7
    (AmidccMfgEvent.WRONG_SOCKET, True, S, Component.METER, True, F.WRONG_SOCKET),  # FR2
    (AmidccMfgEvent.HAN_COMM_FAILURE, True, C, Component.HAN, False, F.HAN_FAILURE),  # FR7
    (AmidccMfgEvent.PUSH_FAILURE, True, I, Component.WAN, False, F.COMM_FAILURE),  # FR8
    (AmidccMfgEvent.DATA_INCONSISTENCY, True, B, Component.METER, False, F.DATA_INCONSISTENCY),
    (AmidccMfgEvent.FIRMWARE_FAILURE, True, V, Component.METER, True, F.FIRMWARE_UPGRADE_FAILURE),
    (AmidccMfgEvent.CHECKSUM_ERROR, True, V, Component.METER, True, F.CHECKSUM_ERROR),  # FR1
    (AmidccMfgEvent.TIME_SYNC_FAILURE, True, B, Component.METER, True, F.TIME_SYNC_FAILURE),
    (AmidccMfgEvent.METROLOGY_FAILED, True, B, Component.METER, True, F.METROLOGY_FAILURE),
    (AmidccMfgEvent.METROLOGY_PASSED, True, I, Component.METER, False, None),  # NFR6
    (AmidccMfgEvent.LAST_GASP, True, V, Component.UNKNOWN, False, F.POWER_OUTAGE),
]


@pytest.mark.parametrize(("code", "mfg", "cls", "component", "critical", "failure"), CASES)
def test_classify_event(
    code: int,
    mfg: bool,
    cls: EventClass,
    component: Component,
    critical: bool,
    failure: FailureType | None,
) -> None:
    got = classify_event(int(code), mfg)
    assert (got.code, got.mfg) == (int(code), mfg)
    assert (got.event_class, got.component, got.critical, got.failure_type) == (
        cls,
        component,
        critical,
        failure,
    )


def test_every_standard_code_0_to_76_has_a_unique_name() -> None:
    assert sorted(STANDARD_EVENTS) == list(range(77))
    names = [row.name for row in STANDARD_EVENTS.values()]
    assert len(set(names)) == len(names)
    assert STANDARD_EVENTS[47].name == "tamper_attempt_detected"
    assert STANDARD_EVENTS[76].name == "read_secured_register_with_values"


def test_every_amidcc_mfg_event_has_a_row() -> None:
    assert set(AMIDCC_MFG_EVENTS) == {int(e) for e in AmidccMfgEvent}
    assert all(row.mfg for row in AMIDCC_MFG_EVENTS.values())


def test_fr1_critical_failures_are_reported_immediately() -> None:
    # FR1: checksum error, failure after firmware upgrade, metrology, program or memory, time sync
    fr1 = {
        F.CHECKSUM_ERROR,
        F.FIRMWARE_UPGRADE_FAILURE,
        F.METROLOGY_FAILURE,
        F.PROGRAM_FAILURE,
        F.MEMORY_FAILURE,
        F.TIME_SYNC_FAILURE,
    }
    rows = [*STANDARD_EVENTS.values(), *AMIDCC_MFG_EVENTS.values()]
    assert fr1 <= {r.failure_type for r in rows}
    assert all(r.critical for r in rows if r.failure_type in fr1)


def test_fr16_safety_and_service_rows_are_critical() -> None:
    for row in [*STANDARD_EVENTS.values(), *AMIDCC_MFG_EVENTS.values()]:
        if row.event_class.immediate and row.power is None:
            assert row.critical, row.name
        if row.failure_type is None or row.power is not None:
            assert not row.critical, row.name


# Power events: outage management, never meter trouble (FR18). Codes: protocol-facts 4.10 (1, 2),
# amidcc.events.AmidccMfgEvent (LAST_GASP).
POWER = [
    (1, False, PowerChange.DOWN),
    (2, False, PowerChange.UP),
    (int(AmidccMfgEvent.LAST_GASP), True, PowerChange.DOWN),
]


@pytest.mark.parametrize(("code", "mfg", "power"), POWER)
def test_power_events_are_outage_events_not_trouble(
    code: int, mfg: bool, power: PowerChange
) -> None:
    row = classify_event(code, mfg)
    assert row.power is power and not row.critical
    assert row.component is Component.UNKNOWN  # an outage points at no meter component
    assert "FR18" in row.requirements


def test_only_the_power_rows_carry_a_power_change() -> None:
    rows = [*STANDARD_EVENTS.values(), *AMIDCC_MFG_EVENTS.values()]
    assert {(r.code, r.mfg) for r in rows if r.power is not None} == {
        (code, mfg) for code, mfg, _ in POWER
    }
    assert classify_event(300).power is None  # unknown codes neither


def test_the_power_failure_flag_is_latched_not_a_transition() -> None:
    # ST3 POWER_FAILURE stays set after the power-up (amidcc simulator; protocol-facts 4.4)
    (flag,) = classify_status(0x0800)
    assert flag.failure_type is F.POWER_OUTAGE and flag.power is None and not flag.critical


def test_a_manufacturer_last_gasp_row_is_a_power_event() -> None:
    gasp = Classification(
        code=99, mfg=True, name="vendor_last_gasp", event_class=V, component=Component.UNKNOWN,
        critical=False, failure_type=F.POWER_OUTAGE, power=PowerChange.DOWN,
    )  # fmt: skip
    c = Classifier(manufacturers={"EE  ": {99: gasp}})
    assert c.classify_event(99, True, manufacturer="EE  ").power is PowerChange.DOWN
    assert c.classify_event(99, True).power is None


def test_each_required_behaviour_is_answered_by_a_documented_row() -> None:
    rows = [*STANDARD_EVENTS.values(), *AMIDCC_MFG_EVENTS.values()]
    answered = {req for row in rows for req in row.requirements}
    for req in ("FR1", "FR2", "FR5", "FR6", "FR7", "FR8", "FR14", "FR16", "FR17"):
        assert req in answered, req
    doc = classify.__doc__ or ""
    for row in rows:
        if row.failure_type is not None:  # every failure row appears in the docstring table
            kind = "mfg" if row.mfg else "std"
            assert re.search(rf"^{kind}\s+{row.code}\s", doc, re.M), row.name


def test_unknown_codes_are_informational_and_out_of_range_is_an_error() -> None:
    got = classify_event(300)
    assert (got.name, got.event_class, got.component, got.critical) == (
        "std_event_300",
        I,
        Component.UNKNOWN,
        False,
    )
    assert classify_event(2000, True).name == "mfg_event_2000"
    for bad in (-1, 0x800):
        with pytest.raises(ValueError):
            classify_event(bad)


def test_manufacturer_tables_and_overrides() -> None:
    elster_row = Classification(
        code=6, mfg=True, name="elster_six", event_class=I, component=Component.METER,
        critical=False, failure_type=None,
    )  # fmt: skip
    battery = Classification(
        code=44, mfg=False, name="low_battery_detected", event_class=V,
        component=Component.METER, critical=True, failure_type=F.LOW_BATTERY,
    )  # fmt: skip
    c = Classifier(overrides=[battery], manufacturers={"EE  ": {6: elster_row}})
    assert c.classify_event(6, True, manufacturer="EE  ") is elster_row
    assert c.classify_event(7, True, manufacturer="EE  ").name == "mfg_event_7"
    # a manufacturer without a table gets amidcc's (the simulators use several ids)
    assert c.classify_event(6, True, manufacturer="SIM1").failure_type is F.WRONG_SOCKET
    assert c.classify_event(44).critical is True
    assert classify_event(44).critical is False  # the default table is untouched
    assert c.classify_mfg_status(0xFFFF, manufacturer="EE  ") == []


# ST3 ED_STD_STATUS1 bit masks: protocol-facts 4.4 (S11, S12, termineter).
STATUS = [
    (0x0001, "unprogrammed", None),
    (0x0002, "configuration_error", F.PROGRAM_FAILURE),
    (0x0004, "self_chk_error", F.SELF_TEST_FAILURE),
    (0x0008, "ram_failure", F.MEMORY_FAILURE),
    (0x0010, "rom_failure", F.MEMORY_FAILURE),
    (0x0020, "nonvol_mem_failure", F.MEMORY_FAILURE),
    (0x0040, "clock_error", F.TIME_SYNC_FAILURE),
    (0x0080, "measurement_error", F.METROLOGY_FAILURE),
    (0x0100, "low_battery", F.LOW_BATTERY),
    (0x0200, "low_loss_potential", F.LOW_POTENTIAL),
    (0x0400, "demand_overload", F.DEMAND_OVERLOAD),
    (0x0800, "power_failure", F.POWER_OUTAGE),
    (0x1000, "tamper_detect", F.TAMPER),
    (0x2000, "reverse_rotation", F.REVERSE_ROTATION),
]


@pytest.mark.parametrize(("mask", "name", "failure"), STATUS)
def test_classify_each_status_flag(mask: int, name: str, failure: FailureType | None) -> None:
    (got,) = classify_status(mask)
    assert (got.name, got.failure_type, got.mfg) == (name, failure, False)
    if failure is not None:  # it classifies as the standard event it stands for
        same = classify_event(got.code)
        assert (same.event_class, same.failure_type) == (got.event_class, got.failure_type)


def test_status_flags_together_lowest_bit_first_filler_ignored() -> None:
    got = classify_status(0xC000 | 0x1000 | 0x0080 | 0x0004)
    assert [c.name for c in got] == ["self_chk_error", "measurement_error", "tamper_detect"]
    assert classify_status(0) == []
    with pytest.raises(ValueError):
        classify_status(0x10000)


def test_amidcc_mfg_status() -> None:
    got = classify_mfg_status(AmidccMfgStatus.WRONG_SOCKET | AmidccMfgStatus.HAN_COMM_FAILURE)
    assert [(c.name, c.failure_type) for c in got] == [
        ("wrong_socket", F.WRONG_SOCKET),
        ("han_comm_failure", F.HAN_FAILURE),
    ]
    assert len(classify_mfg_status(sum(AmidccMfgStatus))) == len(AmidccMfgStatus)
    with pytest.raises(ValueError):
        classify_mfg_status(-1)


def test_module_is_pure() -> None:
    tree = ast.parse(Path(classify.__file__).read_text())
    imported = {
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert imported <= {"__future__", "collections.abc", "dataclasses", "enum", "amidcc.events"}
