"""amidcc.gateway.scheduler: the pure agenda, drift and success window, and the Scheduler driven
on task.Clock with a fake meter client (no sockets)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from amidcc.codecs.c1219.context import DEFAULT_CONTEXT
from amidcc.codecs.c1219.timefmt import decode_time, time_size
from amidcc.gateway.config import ScheduleSection
from amidcc.gateway.links.base import LinkKind, MeterAddress, RequestTimeout
from amidcc.gateway.registry import MeterRecord, MeterRegistry
from amidcc.gateway.scheduler import (
    Agenda,
    Scheduler,
    SuccessWindow,
    Task,
    clock_drift,
    default_programs,
    needs_time_sync,
    phase,
    set_time_params,
)

T0 = 1_700_000_000.0


def test_phase_is_stable_and_inside_the_span() -> None:
    assert phase("meter-0001", Task.READ, 600) == phase("meter-0001", Task.READ, 600)
    assert phase("meter-0001", Task.READ, 0) == 0.0
    spread = [phase(f"meter-{i:04d}", Task.READ, 600) for i in range(1000)]
    assert all(0 <= p < 600 for p in spread)
    # spread evenly: every tenth of the span gets some meters, none gets a storm
    tenths = [sum(1 for p in spread if k * 60 <= p < (k + 1) * 60) for k in range(10)]
    assert min(tenths) > 50 and max(tenths) < 150


def test_agenda_spreads_first_runs_and_keeps_the_phase() -> None:
    agenda = Agenda({Task.READ: 100.0}, spread=50.0)
    for i in range(20):
        agenda.add(f"m{i}", T0)
    assert len(agenda) == 20 and "m3" in agenda
    assert agenda.due(T0 - 1) == []
    first = agenda.due(T0 + 50)
    assert len(first) == 20 and all(task is Task.READ for task, _ in first)
    assert agenda.due(T0 + 100) == []  # next runs one interval after each meter's phase
    p = phase("m0", Task.READ, 50.0)
    assert ("read", "m0") not in [(t.value, m) for t, m in agenda.due(T0 + 100 + p - 0.01)]
    assert (Task.READ, "m0") in agenda.due(T0 + 100 + p)


def test_agenda_limit_remove_postpone_and_falling_behind() -> None:
    agenda = Agenda({Task.READ: 10.0, Task.CLOCK: 30.0}, spread=0.0)
    for m in ("a", "b", "c"):
        agenda.add(m, T0)
    assert len(agenda.due(T0, limit=2)) == 2
    assert len(agenda.due(T0)) == 4  # the rest
    agenda.remove("b")
    assert "b" not in agenda and agenda.meters() == {"a", "c"}
    agenda.postpone(Task.READ, "a", T0 + 5)
    assert agenda.due(T0 + 5) == [(Task.READ, "a")]
    # far behind: rescheduled one interval after now, not a burst of catch-up runs
    got = agenda.due(T0 + 1000)
    assert sorted(got) == sorted([(Task.READ, "a"), (Task.READ, "c"), (Task.CLOCK, "a"),
                                  (Task.CLOCK, "c")])  # fmt: skip
    assert agenda.next_due() == T0 + 1010


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 500), min_size=1, max_size=30))
def test_agenda_never_hands_out_work_twice_per_interval(times: list[float]) -> None:
    agenda = Agenda({Task.READ: 60.0}, spread=60.0)
    agenda.add("m", T0)
    first = T0 + phase("m", Task.READ, 60.0)
    runs = 0
    for now in sorted(times):
        runs += len(agenda.due(T0 + now))
        # never more runs than due slots (first, first + 60, ...) up to now: no catch-up bursts
        slots = 0 if T0 + now < first else int((T0 + now - first) // 60.0) + 1
        assert runs <= slots


def test_drift_and_time_sync_decision() -> None:
    meter = datetime(2023, 11, 14, 22, 14, 0)  # T0 + 100 s (T0 is 22:13:20 UTC)
    assert clock_drift(meter, T0) == pytest.approx(40.0)
    assert needs_time_sync(40.0, 30.0) and not needs_time_sync(-29.0, 30.0)
    assert clock_drift(None, T0) is None and needs_time_sync(None, 30.0)


def test_set_time_params_carry_the_time() -> None:
    params = set_time_params(T0 + 0.7, DEFAULT_CONTEXT)
    fmt = DEFAULT_CONTEXT.format
    size = time_size(fmt.tm_format, long=True)
    assert params[0] == 1 and len(params) == 1 + size + 1
    when = decode_time(params[1 : 1 + size], fmt.tm_format, fmt.data_order, long=True)
    assert when == datetime(2023, 11, 14, 22, 13, 20)
    assert params[-1] & 0x07 == 2 and params[-1] & 0x10  # Tuesday, GMT flag


def test_success_window() -> None:
    w = SuccessWindow(60.0)
    assert w.ratio("c1222-tcp", T0) is None
    w.record("c1222-tcp", True, T0)
    w.record("c1222-tcp", False, T0 + 10)
    w.record("c1222-tcp", True, T0 + 20)
    assert w.ratio("c1222-tcp", T0 + 30) == pytest.approx(2 / 3)
    assert w.ratio("c1222-tcp", T0 + 65) == pytest.approx(1 / 2)  # the first fell out
    assert w.links() == ["c1222-tcp"]


def test_default_programs_fit_the_simulators_tables() -> None:
    record = MeterRecord(meter_id="m1", ap_title=".2.7.1", link=LinkKind.C1222_TCP,
                         account="AC1", premise="PR9")  # fmt: skip
    sizes = {p.table: len(p.data) for p in default_programs(record)}
    assert sizes == {5: 20, 6: 120, 53: 10, 54: 64}  # docs/simulators.md, programmable tables


# -- the driver ------------------------------------------------------------------------------------


@dataclass
class Read:
    value: Any


@dataclass
class Answer:
    result_code: int = 0
    resp_data: bytes = b"\0\0\0\0"


@dataclass
class FakeClient:
    clock: Clock
    drift: float = 0.0
    failing: set[str] = field(default_factory=set)
    calls: list[tuple[str, str, int]] = field(default_factory=list)
    hold: list[Deferred[Any]] = field(default_factory=list)
    holding: bool = False

    def read_table(self, meter_id: str, table: int, **_: Any) -> Deferred[Any]:
        self.calls.append(("read", meter_id, table))
        if self.holding:
            d: Deferred[Any] = Deferred()
            self.hold.append(d)
            return d
        if meter_id in self.failing:
            return fail(RequestTimeout("no answer"))
        if table == 52:
            from datetime import timedelta

            now = datetime(1970, 1, 1) + timedelta(seconds=int(self.clock.seconds() + self.drift))
            return succeed(Read(type("Clk", (), {"clock_calendar": now})()))
        return succeed(Read(None))

    def write_table(self, meter_id: str, table: int, data: bytes, **_: Any) -> Deferred[None]:
        self.calls.append(("write", meter_id, table))
        return succeed(None)

    def run_procedure(
        self, meter_id: str, number: int, params: bytes = b"", **kw: Any
    ) -> Deferred[Any]:
        self.calls.append(("mproc" if kw.get("mfg") else "proc", meter_id, number))
        if self.holding:
            d: Deferred[Any] = Deferred()
            self.hold.append(d)
            return d
        return succeed(Answer())

    def table_context(self, meter_id: str) -> Any:
        return DEFAULT_CONTEXT

    def forget(self, meter_id: str) -> None:
        self.calls.append(("forget", meter_id, 0))


def make(tmp_path: Path, **schedule: Any) -> tuple[Scheduler, FakeClient, MeterRegistry, Clock]:
    clock = Clock()
    clock.advance(T0)
    registry = MeterRegistry(tmp_path / "r.db", synchronous="OFF")
    client = FakeClient(clock)
    section = ScheduleSection(**{"read_interval": 60.0, "read_spread": 30.0, **schedule})
    return (
        Scheduler(client=client, registry=registry, clock=clock, schedule=section),
        client,
        registry,
        clock,
    )


def record(i: int, premise: str | None = None) -> MeterRecord:
    return MeterRecord(meter_id=f"m{i}", ap_title=f".2.7.{i}", link=LinkKind.C1222_TCP,
                       premise=premise, account="AC1" if premise else None)  # fmt: skip


def test_scheduled_reads_are_spread_and_counted(tmp_path: Path) -> None:
    sched, client, registry, clock = make(tmp_path)
    registry.register_many([record(i) for i in range(10)], now=T0)
    sched.step()
    reads = [c for c in client.calls if c[0] == "read" and c[2] == 23]
    assert len(reads) < 10  # spread over 30 s, not all at once
    for _ in range(30):
        clock.advance(1)
        sched.step()
    reads = [c for c in client.calls if c[0] == "read" and c[2] == 23]
    assert sorted(m for _, m, _ in reads) == sorted(f"m{i}" for i in range(10))
    assert sched.counts.reads_ok == 10 and sched.success.ratio("c1222-tcp", clock.seconds()) == 1.0
    metro = [c for c in client.calls if c[0] == "mproc"]
    assert len(metro) == 10 and all(c[2] == 0 for c in metro)  # MP0 once per meter so far


def test_failed_reads_lower_the_success_ratio(tmp_path: Path) -> None:
    from amidcc.gateway.metrics import GatewayMetrics

    sched, client, registry, clock = make(tmp_path)
    sched.metrics = GatewayMetrics(process=False)
    registry.register_many([record(1), record(2)], now=T0)
    client.failing.add("m2")
    for _ in range(31):
        sched.step()
        clock.advance(1)
    assert sched.counts.reads_failed == 1 and sched.counts.reads_ok == 1
    gauge = sched.metrics.read_success_ratio.labels(link="c1222-tcp")._value.get()
    assert gauge == 0.5


def test_clock_check_syncs_only_past_the_threshold(tmp_path: Path) -> None:
    sched, client, registry, clock = make(tmp_path, clock_drift_threshold=30.0)
    registry.register(record(1), now=T0)
    client.drift = 10.0
    sched.check_clock("m1")
    assert sched.counts.time_syncs == 0
    client.drift = -90.0
    sched.check_clock("m1")
    assert sched.counts.time_syncs == 1 and ("proc", "m1", 10) in client.calls  # SP10


def test_outstanding_work_is_capped(tmp_path: Path) -> None:
    sched, client, registry, clock = make(tmp_path, read_spread=0.0)
    sched.max_outstanding = 3
    client.holding = True
    registry.register_many([record(i) for i in range(5)], now=T0)
    sched.step()
    assert sched.outstanding == 3 and len(client.hold) == 3
    for d in client.hold:
        d.callback(Answer())
    assert sched.outstanding == 0
    sched.step()
    assert len(client.hold) == 6  # the rest now


def test_register_runs_a_self_test(tmp_path: Path) -> None:
    sched, client, registry, clock = make(tmp_path)
    reg = registry.register(record(1), now=T0)
    event = type("E", (), {"address": MeterAddress(meter_id="m1", ap_title=".2.7.1",
                                                   link=LinkKind.C1222_TCP),
                           "registration": reg, "relay": False, "time": T0})()  # fmt: skip
    sched.on_register(event)
    assert ("proc", "m1", 11) in client.calls and sched.counts.self_tests == 1
    assert "m1" in sched.agenda


def test_exchange_syncs_the_clock_and_writes_the_programs(tmp_path: Path) -> None:
    sched, client, registry, clock = make(tmp_path, self_test_on_register=False)
    registry.register(record(1, premise="PR9"), now=T0)
    sched.step()
    reg = registry.register(record(2, premise="PR9"), now=T0 + 5)  # same premise: exchange
    assert reg.replaced == "m1"
    event = type("E", (), {"address": MeterAddress(meter_id="m2", ap_title=".2.7.2",
                                                   link=LinkKind.C1222_TCP),
                           "registration": reg, "relay": False, "time": T0 + 5})()  # fmt: skip
    client.calls.clear()
    sched.on_register(event)
    kinds = [(k, n) for k, m, n in client.calls if m == "m2"]
    assert ("proc", 10) in kinds  # SP10 first
    assert [n for k, n in kinds if k == "write"] == [5, 6, 53, 54]
    assert kinds.index(("proc", 10)) < kinds.index(("write", 5))
    assert "m1" not in sched.agenda and sched.counts.exchanges == 1
    assert sched.counts.programs_written == 4
    assert not any(c[0] == "proc" and c[2] == 11 for c in client.calls)  # self-test switched off
