"""At most one scheduled task per meter in progress (the deployment's dead-meter pile-up)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred

from amidcc.gateway.links.base import RequestTimeout

from .test_scheduler import FakeClient, Read, make, record

#: What a dead meter costs the client per request: timeout 1.5 s x (1 retry + 1) + backoff,
#: rounded up (the deployment test's [requests]).
DEAD = 10.0


class SlowClient(FakeClient):
    """Every read and procedure of a dead meter fails with a timeout ``DEAD`` seconds later."""

    in_flight: int = 0
    peak: int = 0

    def _dead(self) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

        def expire() -> None:
            self.in_flight -= 1
            d.errback(RequestTimeout("no answer"))

        self.clock.callLater(DEAD, expire)
        return d

    def read_table(self, meter_id: str, table: int, **kw: Any) -> Deferred[Any]:
        super().read_table(meter_id, table, **kw)
        return self._dead()

    def run_procedure(self, meter_id: str, number: int, params: bytes = b"", **kw: Any) -> Deferred[Any]:
        super().run_procedure(meter_id, number, params, **kw)
        return self._dead()


def run(tmp_path: Path, seconds: int, **schedule: Any) -> tuple[Any, SlowClient]:
    sched, _, registry, clock = make(tmp_path, read_spread=0.0, **schedule)
    client = SlowClient(clock)
    sched.client = client
    registry.register(record(1), now=clock.seconds())
    for _ in range(seconds):
        sched.step()
        clock.advance(1)
    return sched, client


def test_a_dead_meter_has_one_scheduled_task_in_progress(tmp_path: Path) -> None:
    # read every 4 s, clock check every 5 s: both shorter than a dead request's 10 s
    sched, client = run(tmp_path, 40, read_interval=4.0, clock_check_interval=5.0)
    assert client.peak == 1  # the old scheduler had 3 reads and 2 clock checks in flight
    assert sched.counts.postponed > 0
    assert sched.outstanding == client.in_flight <= 1
    started = sched.counts.started
    assert started == len(client.calls) and 3 <= started <= 5  # one per ~10 s, not one per slot
    assert sched.counts.failures == started - client.in_flight


def test_a_postponed_task_runs_at_its_next_slot(tmp_path: Path) -> None:
    sched, client = run(tmp_path, 12, read_interval=4.0, clock_check_interval=3600.0)
    # all due at t=0: the clock check starts (dead until 10); the read and metrology wait for
    # their next slots (read: 4 and 8 are postponed again, 12 runs; metrology: a day later)
    assert [c[2] for c in client.calls] == [52] and sched.counts.postponed == 4
    sched.step()
    assert [c[2] for c in client.calls] == [52, 23] and sched.busy == {"m1"}


def test_a_healthy_meter_is_not_postponed(tmp_path: Path) -> None:
    sched, client, registry, clock = make(tmp_path, read_spread=0.0, read_interval=4.0)
    registry.register(record(1), now=clock.seconds())
    for _ in range(20):
        sched.step()
        clock.advance(1)
    assert sched.counts.postponed == 0 and sched.busy == set()
    assert sched.counts.reads_ok == 5


def test_a_task_that_waited_on_a_live_meter_runs_when_it_answers(tmp_path: Path) -> None:
    # read and clock check due together (no spread): the read holds the meter, then answers
    sched, client, registry, clock = make(tmp_path, read_spread=0.0, clock_check_interval=60.0)
    client.holding = True
    registry.register(record(1), now=clock.seconds())
    sched.step()
    assert len(client.hold) == 1 and sched.counts.postponed == 2  # clock check, metrology
    client.holding = False
    assert client.calls == [("read", "m1", 52)]  # the clock check went first
    now = datetime(1970, 1, 1) + timedelta(seconds=clock.seconds())
    client.hold[0].callback(Read(type("Clk", (), {"clock_calendar": now})()))
    clock.advance(1)
    sched.step()  # not a whole interval later
    assert [c[2] for c in client.calls] == [52, 0, 23]  # ST52, then MP0 and ST23 at once
    assert sched.counts.reads_ok == 1 and sched.counts.metrology == 1
