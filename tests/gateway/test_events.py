"""amidcc.events: the event types are immutable keyword-only records; the in-process sink."""

from __future__ import annotations

import ast
import dataclasses
import inspect

import pytest

from amidcc import events
from amidcc.events import (
    IMMEDIATE_CLASSES,
    AmidccMfgEvent,
    AmidccMfgStatus,
    Component,
    EventClass,
    EventSource,
    FailureType,
    InProcessSink,
    MeterEvent,
    TroubleEvent,
    TroubleSink,
)


def meter_event(**changes: object) -> MeterEvent:
    fields: dict[str, object] = dict(
        event_id="e1",
        meter_id="M1",
        ap_title=".2.7.1",
        time=1_700_000_000.0,
        code=43,
        mfg=False,
        name="measurement_error_detected",
        event_class=EventClass.BILLING,
        component=Component.METER,
        critical=True,
        failure_type=FailureType.METROLOGY_FAILURE,
        source=EventSource.PUSHED,
        received=1_700_000_001.0,
    )
    fields.update(changes)
    return MeterEvent(**fields)  # type: ignore[arg-type]


def trouble(trouble_id: str = "t1", **changes: object) -> TroubleEvent:
    fields: dict[str, object] = dict(
        trouble_id=trouble_id,
        meter_id="M1",
        failure_type=FailureType.METROLOGY_FAILURE,
        component=Component.METER,
        event_class=EventClass.BILLING,
        critical=True,
        detected=1_700_000_002.0,
    )
    fields.update(changes)
    return TroubleEvent(**fields)  # type: ignore[arg-type]


# -- the records -------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [MeterEvent, TroubleEvent])
def test_records_are_frozen_and_keyword_only(cls: type) -> None:
    assert dataclasses.is_dataclass(cls)
    params = inspect.signature(cls).parameters.values()
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)
    record = meter_event() if cls is MeterEvent else trouble()
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.meter_id = "other"  # type: ignore[misc]


def test_every_record_field_has_a_docstring() -> None:
    """style.md: events are dataclasses with a docstring per field."""
    tree = ast.parse(inspect.getsource(events))
    checked = 0
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or not any(
            isinstance(d, ast.Call) and getattr(d.func, "id", "") == "dataclass"
            for d in node.decorator_list
        ):
            continue
        body = node.body
        for i, stmt in enumerate(body):
            if isinstance(stmt, ast.AnnAssign):
                nxt = body[i + 1] if i + 1 < len(body) else None
                assert isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant), (
                    f"{node.name}.{ast.unparse(stmt.target)} has no docstring"
                )
                checked += 1
    assert checked >= 30  # MeterEvent and TroubleEvent together


def test_trouble_event_evidence_is_hashable_and_comparable() -> None:
    ev = meter_event()
    a = trouble(evidence=(ev,), details=(("probe", "relay R7 silent"),), alternate_paths=0)
    b = trouble(evidence=(ev,), details=(("probe", "relay R7 silent"),), alternate_paths=0)
    assert a == b and hash(a) == hash(b)
    assert a.alternate_path_kinds == () and a.affected_meters == ()
    assert trouble().alternate_paths is None  # not computed yet is distinct from zero


# -- classes and codes -------------------------------------------------------------------------


def test_fr16_classes_sort_by_urgency_and_safety_service_are_immediate() -> None:
    assert sorted([EventClass.INFORMATIONAL, EventClass.SAFETY, EventClass.BILLING]) == [
        EventClass.SAFETY,
        EventClass.BILLING,
        EventClass.INFORMATIONAL,
    ]
    assert IMMEDIATE_CLASSES == {EventClass.SAFETY, EventClass.SERVICE}
    assert [c.immediate for c in EventClass] == [True, True, False, False, False]
    assert events.IMMEDIATE_REPORT_SECONDS == 15 * 60  # NFR4


def test_amidcc_mfg_codes_fit_the_11_bit_event_number() -> None:
    # TABLE_IDB_BFLD: bits 0-10 are the event number, bit 11 the mfg flag (protocol-facts 4.10)
    codes = [int(c) for c in AmidccMfgEvent]
    assert len(set(codes)) == len(codes)
    assert all(0 <= c <= 0x7FF for c in codes)
    masks = [int(f) for f in AmidccMfgStatus]
    assert all(m & (m - 1) == 0 for m in masks)  # one bit each


def test_string_enums_round_trip_through_their_values() -> None:
    for enum_cls in (Component, EventSource, FailureType):
        for member in enum_cls:
            assert enum_cls(member.value) is member


# -- the sink ----------------------------------------------------------------------------------


def test_in_process_sink_keeps_order_and_calls_subscribers_in_order() -> None:
    sink = InProcessSink()
    seen: list[tuple[str, str]] = []
    sink.subscribe(lambda e: seen.append(("a", e.trouble_id)))
    sink.subscribe(lambda e: seen.append(("b", e.trouble_id)))
    target: TroubleSink = sink  # the Protocol is satisfied
    for n in range(3):
        target.submit(trouble(f"t{n}"))
    assert [e.trouble_id for e in sink.events] == ["t0", "t1", "t2"]
    assert seen == [("a", "t0"), ("b", "t0"), ("a", "t1"), ("b", "t1"), ("a", "t2"), ("b", "t2")]


def test_unsubscribe_and_replay() -> None:
    sink = InProcessSink()
    sink.submit(trouble("early"))
    late: list[str] = []
    unsubscribe = sink.subscribe(lambda e: late.append(e.trouble_id), replay=True)
    sink.submit(trouble("next"))
    unsubscribe()
    unsubscribe()  # idempotent
    sink.submit(trouble("after"))
    assert late == ["early", "next"]


def test_a_failing_subscriber_does_not_starve_the_others() -> None:
    sink = InProcessSink()
    got: list[str] = []

    def broken(event: TroubleEvent) -> None:
        raise RuntimeError("mms down")

    sink.subscribe(broken)
    sink.subscribe(lambda e: got.append(e.trouble_id))
    with pytest.raises(ExceptionGroup) as info:
        sink.submit(trouble("t9"))
    assert got == ["t9"]
    assert [e.trouble_id for e in sink.events] == ["t9"]
    assert isinstance(info.value.exceptions[0], RuntimeError)


def test_sink_keeps_only_the_last_events() -> None:
    sink = InProcessSink(keep=2)
    for n in range(5):
        sink.submit(trouble(f"t{n}"))
    assert [e.trouble_id for e in sink.events] == ["t3", "t4"]
