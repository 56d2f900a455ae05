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

from amidcc.codecs.c1219 import ST6, UtilityInfo, id_text
from amidcc.codecs.c1219.context import DEFAULT_CONTEXT
from amidcc.codecs.c1219.timefmt import decode_time, time_size
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.psem import NokResponse
from amidcc.gateway.config import ScheduleSection
from amidcc.gateway.links.base import LinkKind, MeterAddress, RequestTimeout
from amidcc.gateway.meters import MeterRefused
from amidcc.gateway.registry import MeterRecord, MeterRegistry, MeterState
from amidcc.gateway.scheduler import (
    Agenda,
    Scheduler,
    SuccessWindow,
    Task,
    clock_drift,
    default_programs,
    installed_at,
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
    from amidcc.simulators import MeterConfig
    from amidcc.simulators.tables import program_sizes

    record = MeterRecord(meter_id="m1", ap_title=".2.7.1", link=LinkKind.C1222_TCP,
                         account="AC1", premise="PR9", serial="SN1")  # fmt: skip
    programs = {p.table: p.data for p in default_programs(record)}
    sizes = {table: len(data) for table, data in programs.items()}
    assert sizes == {5: 20, 6: 230, 53: 10, 54: 64}  # docs/simulators.md, programmable tables
    assert sizes == program_sizes(MeterConfig())
    st6 = ST6.parse(programs[6])
    assert installed_at(st6) == ("PR9", "AC1")
    assert id_text(st6.device_id) == "m1" and id_text(st6.util_ser_nbr) == "SN1"


def test_installed_at_reads_service_point_and_customer() -> None:
    assert installed_at(None) == (None, None)
    assert installed_at(UtilityInfo()) == (None, None)
    assert installed_at(ST6.parse(bytes(230))) == (None, None)  # erased: NULs
    assert installed_at(ST6.parse(b"\xff" * 230)) == (None, None)  # erased: FFs
    padded = UtilityInfo(service_point_id="PR9".ljust(20), customer_id="AC1".ljust(20, "\0"))
    assert installed_at(padded) == ("PR9", "AC1")
    assert installed_at(UtilityInfo(service_point_id="PR9")) == ("PR9", None)


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
    st6: dict[str, UtilityInfo] = field(default_factory=dict)
    no_st6: set[str] = field(default_factory=set)
    written: dict[tuple[str, int], bytes] = field(default_factory=dict)

    def read_table(self, meter_id: str, table: int, **_: Any) -> Deferred[Any]:
        self.calls.append(("read", meter_id, table))
        if self.holding:
            d: Deferred[Any] = Deferred()
            self.hold.append(d)
            return d
        if meter_id in self.failing:
            return fail(RequestTimeout("no answer"))
        if table == 6 and meter_id in self.no_st6:
            return fail(MeterRefused(meter_id, "read", NokResponse(code=ResponseCode.IAR)))
        if table == 6:
            return succeed(Read(self.st6.get(meter_id)))
        if table == 52:
            from datetime import timedelta

            now = datetime(1970, 1, 1) + timedelta(seconds=int(self.clock.seconds() + self.drift))
            return succeed(Read(type("Clk", (), {"clock_calendar": now})()))
        return succeed(Read(None))

    def write_table(self, meter_id: str, table: int, data: bytes, **_: Any) -> Deferred[None]:
        self.calls.append(("write", meter_id, table))
        self.written[(meter_id, table)] = data
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


def registered(meter_id: str, reg: Any, now: float = T0) -> Any:
    """The C12.22 link's MeterRegistered, as the scheduler reads it."""
    n = meter_id.lstrip("m")
    address = MeterAddress(meter_id=meter_id, ap_title=f".2.7.{n}", link=LinkKind.C1222_TCP)
    return type("E", (), {"address": address, "registration": reg, "relay": False, "time": now})()


def st6(premise: str = "", account: str = "") -> UtilityInfo:
    return UtilityInfo(service_point_id=premise.ljust(20), customer_id=account.ljust(20))


def test_st6_fills_premise_and_account_of_a_new_meter(tmp_path: Path) -> None:
    sched, client, registry, clock = make(tmp_path, self_test_on_register=False)
    reg = registry.register(record(1), now=T0)  # a C12.22 Register: no premise, no account
    client.st6["m1"] = st6("PR9", "AC7")
    sched.on_register(registered("m1", reg))
    r = registry.get("m1")
    assert r is not None and (r.premise, r.account) == ("PR9", "AC7")
    assert [m.meter_id for m in registry.at_premise("PR9")] == ["m1"]
    assert sched.counts.located == 1 and sched.counts.exchanges == 0
    assert not any(c[0] in ("write", "proc") for c in client.calls)  # nobody replaced: no programs
    # it registers again (its registration period): same ST6, the registry is left alone
    clock.advance(600)
    sched.on_register(registered("m1", registry.register(r, now=clock.seconds()), clock.seconds()))
    assert [c for c in client.calls if c[2] == 6] == [("read", "m1", 6)] * 2
    assert sched.counts.located == 1
    # the customer moved out and another moved in: the account follows ST6
    client.st6["m1"] = st6("PR9", "AC8")
    sched.on_register(registered("m1", None, clock.seconds()))
    r = registry.get("m1")
    assert r is not None and (r.premise, r.account) == ("PR9", "AC8") and sched.counts.located == 2


def test_st6_naming_a_known_premise_is_an_exchange(tmp_path: Path) -> None:
    """S1 steps 9 and 9.1: meter B registers, its ST6 names meter A's premise."""
    sched, client, registry, clock = make(tmp_path, self_test_on_register=False)
    registry.register(record(1, premise="PR9"), now=T0)
    sched.step()
    assert "m1" in sched.agenda
    clock.advance(3600)
    reg = registry.register(record(2), now=clock.seconds())
    assert reg.replaced is None  # the Register alone cannot tell
    client.st6["m2"] = st6("PR9", "AC1")
    client.calls.clear()
    sched.on_register(registered("m2", reg, clock.seconds()))
    old, new = registry.get("m1"), registry.get("m2")
    assert old is not None and new is not None
    assert old.state is MeterState.REMOVED and old.replaced_by == "m2"
    assert new.state is MeterState.REGISTERED and new.premise == "PR9"
    assert new.installed == clock.seconds()
    assert [m.meter_id for m in registry.at_premise("PR9")] == ["m2"]
    kinds = [(k, n) for k, m, n in client.calls if m == "m2"]
    assert kinds[0] == ("read", 6) and ("proc", 10) in kinds  # ST6, then SP10 ...
    assert [n for k, n in kinds if k == "write"] == [5, 6, 53, 54]  # ... then the programs
    assert kinds.index(("proc", 10)) < kinds.index(("write", 5))
    assert installed_at(ST6.parse(client.written[("m2", 6)])) == ("PR9", "AC1")
    assert "m1" not in sched.agenda and "m2" in sched.agenda
    assert sched.counts.exchanges == 1 and sched.counts.programs_written == 4
    assert sched.counts.failures == 0


def test_a_blank_st6_stays_a_plain_registration(tmp_path: Path) -> None:
    sched, client, registry, clock = make(tmp_path, self_test_on_register=False)
    registry.register(record(1, premise="PR9"), now=T0)
    reg = registry.register(record(2), now=T0 + 5)
    client.st6["m2"] = UtilityInfo()  # never programmed
    sched.on_register(registered("m2", reg, T0 + 5))
    client.no_st6.add("m3")  # a meter without ST6 at all
    sched.on_register(registered("m3", registry.register(record(3), now=T0 + 6), T0 + 6))
    assert registry.get("m1").state is MeterState.REGISTERED  # type: ignore[union-attr]
    assert [registry.get(m).premise for m in ("m2", "m3")] == [None, None]  # type: ignore[union-attr]
    assert sched.counts.located == 0 and sched.counts.exchanges == 0 and sched.counts.failures == 0
    assert not any(c[0] == "write" for c in client.calls)


def test_locate_can_be_switched_off(tmp_path: Path) -> None:
    sched, client, registry, clock = make(tmp_path, self_test_on_register=False)
    sched.locate_on_register = False
    client.st6["m1"] = st6("PR9")
    sched.on_register(registered("m1", registry.register(record(1), now=T0)))
    assert client.calls == [] and registry.get("m1").premise is None  # type: ignore[union-attr]
