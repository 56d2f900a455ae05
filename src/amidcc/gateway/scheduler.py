"""The head-end's periodic work on meters: register reads, metrology checks, clock checks with
time sync, event-log reads, and what a registration sets off (self-test; where the meter is
installed, read from ST6; after a premise exchange, clock sync and the account's programs:
scenario 1, steps 9 and 9.1).

Theory of operation. The decisions are pure and take time as input: :func:`phase` spreads each
meter's first run of each task over ``read_spread`` (a hash of meter id and task, so a restart
keeps the spread and a fleet-wide read never starts as a storm); :class:`Agenda` holds the next
due time of every (task, meter) and hands out what is due; :func:`clock_drift` and
:func:`needs_time_sync` judge a clock; :class:`SuccessWindow` keeps read outcomes for the
``amidcc_read_success_ratio`` gauge; :func:`default_programs` is the small set of tables the
simulator accepts (docs/simulators.md, "Programmable tables").

:class:`Scheduler` drives them on a reactor: :meth:`Scheduler.step` (a periodic job, every
``tick`` seconds) adds newly registered meters to the agenda, drops removed ones, and starts what
is due through the :class:`~amidcc.gateway.meters.MeterClient` (which throttles per link and per
collector); it also caps its own outstanding work so the queue in front of the throttle stays
bounded, and runs at most one task per meter at a time (a task due on a busy meter waits for its
next slot). :meth:`Scheduler.on_register` is the C12.22 link's ``on_register`` hook.

A C12.22 Register names the meter but not its premise or account, so on registration the
scheduler reads ST6 UTILITY_INFO_TBL (:meth:`Scheduler.locate`): SERVICE_POINT_ID is the premise,
CUSTOMER_ID the account (:func:`installed_at`). When they differ from the registry's record they
are written there through :meth:`MeterRegistry.register`, which detects the exchange: another
active meter at that premise is REMOVED, ``replaced_by`` this one. The new meter then gets SP10
and the account's programs (:meth:`Scheduler.install`). A blank ST6 leaves a plain registration.
"""

from __future__ import annotations

import enum
import heapq
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from amidcc.codecs.c1219 import DEFAULT_CONTEXT, ST6, TableContext, UtilityInfo, id_text
from amidcc.codecs.c1219.procedures import ProcedureNumber, ProcedureResult
from amidcc.codecs.c1219.timefmt import (
    DayOfWeek,
    TimeDateQual,
    encode_time,
    encode_time_date_qual,
)

from .config import ScheduleSection
from .meters import MeterRefused, TableReader
from .metrics import GatewayMetrics
from .registry import MeterRecord, MeterRegistry, MeterState, Registration

__all__ = [
    "Agenda",
    "Program",
    "Scheduler",
    "SuccessWindow",
    "Task",
    "clock_drift",
    "default_programs",
    "installed_at",
    "needs_time_sync",
    "phase",
    "set_time_params",
]

log = Logger(namespace="amidcc.gateway.scheduler")

_EPOCH = datetime(1970, 1, 1)

#: Manufacturer procedure 0 of amidcc meters: the metrology check (docs/simulators.md).
METROLOGY_PROCEDURE = 0
#: SP10 set-mask: "set the date and time" [L] (protocol-facts.md 4.6; the simulator wants non-zero).
SET_TIME_MASK = 0x01
#: ST6 PROGRAMMER_NAME and EX1_SW_VENDOR of the programs the head-end writes.
PROGRAMMER_NAME = "AMIDCC-HE"
SW_VENDOR = "AMDC"


class Task(enum.StrEnum):
    """Periodic work on one meter."""

    READ = "read"
    """Register read (ST23)."""
    EVENT_LOG = "event_log"
    """Event-log read (ST76) fed to the intake."""
    CLOCK = "clock"
    """Clock read (ST52), SP10 when it drifted."""
    METROLOGY = "metrology"
    """Metrology check (manufacturer procedure 0)."""


# -- pure decisions --------------------------------------------------------------------------------


def phase(meter_id: str, task: Task, span: float) -> float:
    """Where in ``[0, span)`` this meter's ``task`` falls: stable across restarts, spread evenly."""
    if span <= 0:
        return 0.0
    h = zlib.crc32(f"{task.value}/{meter_id}".encode())
    return h / 2**32 * span


class Agenda:
    """Next due time of every (task, meter); pure, time as input.

    A task runs every ``intervals[task]`` seconds, first at ``added + phase`` (phase spread over
    ``min(spread, interval)``). A run that is due is rescheduled one interval after its due time
    (keeping the meter's phase), or one interval after ``now`` when it fell more than an interval
    behind.
    """

    def __init__(self, intervals: Mapping[Task, float], spread: float) -> None:
        self.intervals = dict(intervals)
        self.spread = spread
        self._due: dict[tuple[Task, str], float] = {}
        self._heap: list[tuple[float, str, Task]] = []

    def __contains__(self, meter_id: object) -> bool:
        return any((t, meter_id) in self._due for t in self.intervals)

    def __len__(self) -> int:
        return len(self.meters())

    def meters(self) -> set[str]:
        """The meters on the agenda."""
        return {m for _, m in self._due}

    def add(self, meter_id: str, now: float) -> None:
        """Schedule every task of a new meter (a meter already present keeps its times)."""
        for task, interval in self.intervals.items():
            if (task, meter_id) not in self._due:
                self._set(task, meter_id, now + phase(meter_id, task, min(self.spread, interval)))

    def remove(self, meter_id: str) -> None:
        """Forget a meter (its heap entries go stale and are skipped)."""
        for task in self.intervals:
            self._due.pop((task, meter_id), None)

    def postpone(self, task: Task, meter_id: str, until: float) -> None:
        """Run ``task`` at ``until`` instead (work the caller could not start now)."""
        if (task, meter_id) in self._due:
            self._set(task, meter_id, until)

    def _set(self, task: Task, meter_id: str, when: float) -> None:
        self._due[(task, meter_id)] = when
        heapq.heappush(self._heap, (when, meter_id, task))

    def next_due(self) -> float | None:
        """When the next task is due (None: nothing scheduled)."""
        while self._heap:
            when, meter_id, task = self._heap[0]
            if self._due.get((task, meter_id)) == when:
                return when
            heapq.heappop(self._heap)
        return None

    def due(self, now: float, limit: int | None = None) -> list[tuple[Task, str]]:
        """Pop what is due at ``now`` (at most ``limit``), earliest first, and reschedule it."""
        out: list[tuple[Task, str]] = []
        while (when := self.next_due()) is not None and when <= now:
            if limit is not None and len(out) >= limit:
                break
            _, meter_id, task = heapq.heappop(self._heap)
            interval = self.intervals[task]
            nxt = when + interval
            self._set(task, meter_id, nxt if nxt > now else now + interval)
            out.append((task, meter_id))
        return out


def clock_drift(meter_clock: datetime | None, now: float) -> float | None:
    """Meter clock minus head-end time, in seconds (None when the meter has no clock reading).

    C12.19 times are naive wall-clock readings; amidcc's meters keep UTC.
    """
    if meter_clock is None:
        return None
    return (meter_clock - _EPOCH).total_seconds() - now


def needs_time_sync(drift: float | None, threshold: float) -> bool:
    """Whether a measured drift calls for SP10 (an unset clock always does)."""
    return drift is None or abs(drift) > threshold


def set_time_params(now: float, ctx: TableContext) -> bytes:
    """SP10 parameters: set-mask, LTIME_DATE, TIME_DATE_QUAL (layout [L], facts 4.6)."""
    fmt = ctx.format
    when = _EPOCH + timedelta(seconds=int(now))
    stamp = encode_time(when, fmt.tm_format, fmt.data_order, long=True)
    return bytes((SET_TIME_MASK,)) + stamp + bytes((_qual_byte(when),))


def _qual_byte(when: datetime) -> int:
    # C12.19 day of week: 0 Sunday .. 6 Saturday; GMT flag set (amidcc meters keep UTC)
    return encode_time_date_qual(
        TimeDateQual(day_of_week=DayOfWeek((when.weekday() + 1) % 7), gmt=True)
    )


class SuccessWindow:
    """Outcomes of scheduled reads per link over the last ``window`` seconds."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._outcomes: dict[str, deque[tuple[float, bool]]] = {}

    def record(self, link: str, ok: bool, now: float) -> None:
        """Note one read's outcome."""
        self._outcomes.setdefault(link, deque()).append((now, ok))

    def ratio(self, link: str, now: float) -> float | None:
        """Share of successful reads on ``link`` in the window (None: no reads in it)."""
        q = self._outcomes.get(link)
        if not q:
            return None
        while q and q[0][0] < now - self.window:
            q.popleft()
        return sum(ok for _, ok in q) / len(q) if q else None

    def links(self) -> list[str]:
        """Links that have outcomes."""
        return list(self._outcomes)


@dataclass(frozen=True, kw_only=True, slots=True)
class Program:
    """One table the head-end writes to a newly installed meter."""

    table: int
    """Standard table number."""
    data: bytes
    """The whole table (a full write)."""


def _padded(text: str, size: int) -> bytes:
    return text.encode("ascii", "replace")[:size].ljust(size, b" ")


def installed_at(info: UtilityInfo | None) -> tuple[str | None, str | None]:
    """(premise, account) that ST6 names: SERVICE_POINT_ID and CUSTOMER_ID without padding; None
    for a field never programmed (or no ST6 at all)."""
    if info is None:
        return None, None
    return id_text(info.service_point_id) or None, id_text(info.customer_id) or None


def utility_info_for(record: MeterRecord) -> UtilityInfo:
    """The ST6 the head-end programs: the record's premise, account and ids, and who wrote it."""
    return UtilityInfo(
        service_point_id=(record.premise or "")[:20],
        device_id=record.meter_id[:20],
        util_ser_nbr=(record.serial or record.meter_id)[:20],
        customer_id=(record.account or "")[:20],
        ex1_sw_vendor=SW_VENDOR,
        programmer_name=PROGRAMMER_NAME,
    )


def default_programs(
    record: MeterRecord, ctx: TableContext = DEFAULT_CONTEXT
) -> tuple[Program, ...]:
    """The account's programs, settings and schedules for a meter at its premise (S1 step 9.1):
    ST5 device id (the premise), ST6 utility information (premise, account, ids; encoded for the
    meter's ``ctx``), ST53 time offsets, ST54 calendar. Sizes are what the simulator accepts
    (docs/simulators.md); ST53 and ST54 are placeholders until the MMS supplies the account's
    own."""
    return (
        Program(table=5, data=_padded(record.premise or record.meter_id, 20)),
        Program(table=6, data=ST6.build(utility_info_for(record), ctx)),
        Program(table=53, data=bytes(10)),
        Program(table=54, data=bytes(64)),
    )


# -- the Twisted driver ----------------------------------------------------------------------------


class Client(TableReader, Protocol):
    """What the scheduler needs of the MeterClient: reads (``TableReader``), and more."""

    def write_table(
        self,
        meter_id: str,
        table: int,
        data: bytes,
        *,
        offset: int | None = None,
        mfg: bool = False,
    ) -> Deferred[None]: ...

    def run_procedure(
        self, meter_id: str, number: int, params: bytes = b"", *, mfg: bool = False
    ) -> Deferred[Any]: ...

    def table_context(self, meter_id: str) -> TableContext | None: ...

    def forget(self, meter_id: str) -> None: ...


class LogReader(Protocol):
    """What the scheduler needs of the EventReader."""

    def read_event_log(self, meter_id: str) -> Deferred[Any]: ...


class Clock(Protocol):
    def seconds(self) -> float: ...


@dataclass
class Counts:
    """What the scheduler did (for the demo's summary and the tests)."""

    started: int = 0
    reads_ok: int = 0
    reads_failed: int = 0
    self_tests: int = 0
    self_tests_failed: int = 0
    metrology: int = 0
    clock_checks: int = 0
    time_syncs: int = 0
    event_logs: int = 0
    located: int = 0
    exchanges: int = 0
    programs_written: int = 0
    failures: int = 0
    postponed: int = 0
    """Due tasks not started because the meter's last task was still running."""


class Scheduler:
    """Runs the agenda on a reactor through the meter client.

    At most one scheduled task per meter is in progress: a task that falls due while the meter's
    previous one still runs (a dead meter's read spends ``timeout x (retries + 1)`` plus backoff)
    is postponed to its next slot and counted in ``counts.postponed``. When the running task ends
    with an answer the meter was only busy, and what waited runs at the next step instead (two
    tasks whose phases lie close together would otherwise starve one of them for good).
    Registration work (self-test, ST6, install) is not held back by this.

    :param max_outstanding: scheduled operations in progress at once; what is due beyond that
        waits for the next step (the client's throttle bounds the network, this bounds the queue).
    :param window: the read success ratio's window in seconds.
    :param programs: the tables to write to a meter installed in place of another, for its record
        and its table context.
    :param locate_on_register: read ST6 on every registration to learn the premise and account.
    """

    def __init__(
        self,
        *,
        client: Client,
        registry: MeterRegistry,
        clock: Clock,
        schedule: ScheduleSection,
        reader: LogReader | None = None,
        metrics: GatewayMetrics | None = None,
        programs: Callable[[MeterRecord, TableContext], Sequence[Program]] = default_programs,
        max_outstanding: int = 512,
        window: float = 3600.0,
        event_log_interval: float | None = None,
        locate_on_register: bool = True,
    ) -> None:
        self.client = client
        self.registry = registry
        self.clock = clock
        self.schedule = schedule
        self.reader = reader
        self.metrics = metrics
        self.programs = programs
        self.locate_on_register = locate_on_register
        self.max_outstanding = max_outstanding
        intervals = {
            Task.READ: schedule.read_interval,
            Task.CLOCK: schedule.clock_check_interval,
            Task.METROLOGY: schedule.metrology_interval,
        }
        if reader is not None:
            intervals[Task.EVENT_LOG] = event_log_interval or schedule.read_interval
        self.agenda = Agenda(intervals, schedule.read_spread)
        self.success = SuccessWindow(window)
        self.counts = Counts()
        self.outstanding = 0
        self.busy: set[str] = set()
        """Meters with a scheduled task in progress: at most one per meter, so a dead meter's
        retries and timeouts never pile its next tasks up in front of the throttle."""
        self._waiting: dict[str, set[Task]] = {}

    # -- the periodic step -------------------------------------------------------------------------

    def step(self) -> None:
        """Sync the agenda with the registry, start what is due, update the success gauge."""
        now = self.clock.seconds()
        self._sync(now)
        room = max(0, self.max_outstanding - self.outstanding)
        while room and (due := self.agenda.due(now, limit=room)):
            for task, meter_id in due:
                if meter_id in self.busy:
                    self._postpone(task, meter_id)
                else:
                    self._start(task, meter_id)
                    room -= 1
        self._gauge(now)

    def _postpone(self, task: Task, meter_id: str) -> None:
        """The meter's last task still runs: this one keeps the next slot the agenda gave it,
        unless that task ends with an answer (then it runs at the next step)."""
        self.counts.postponed += 1
        self._waiting.setdefault(meter_id, set()).add(task)
        log.debug("{task} of {meter} postponed: busy", task=task.value, meter=meter_id)

    def _sync(self, now: float) -> None:
        live = set()
        for record in self.registry:
            if record.state is MeterState.REMOVED:
                continue
            live.add(record.meter_id)
            if record.meter_id not in self.agenda:
                self.agenda.add(record.meter_id, now)
        for gone in self.agenda.meters() - live:
            self.agenda.remove(gone)

    def _gauge(self, now: float) -> None:
        if self.metrics is None:
            return
        for link in self.success.links():
            ratio = self.success.ratio(link, now)
            if ratio is not None:
                self.metrics.read_success_ratio.labels(link=link).set(ratio)

    def _start(self, task: Task, meter_id: str) -> None:
        run = {
            Task.READ: self.read_registers,
            Task.EVENT_LOG: self.read_event_log,
            Task.CLOCK: self.check_clock,
            Task.METROLOGY: self.check_metrology,
        }[task]
        d = run(meter_id)
        self.busy.add(meter_id)  # before addBoth: a Deferred already fired frees it at once
        d.addBoth(self._free, meter_id)
        self._track(d, f"{task.value} of {meter_id}")

    def _free(self, result: object, meter_id: str) -> object:
        self.busy.discard(meter_id)
        waiting = self._waiting.pop(meter_id, ())
        if not isinstance(result, Failure):  # a live meter that was only busy: no slot lost
            now = self.clock.seconds()
            for task in waiting:
                self.agenda.postpone(task, meter_id, now)
        return result

    def _track(self, d: Deferred[Any], what: str) -> Deferred[Any]:
        self.outstanding += 1
        self.counts.started += 1

        def done(result: object) -> object:
            self.outstanding -= 1
            if isinstance(result, Failure):
                self.counts.failures += 1
                log.debug("{what} failed: {error}", what=what, error=result.getErrorMessage())
                return None
            return result

        return d.addBoth(done)

    # -- the tasks ---------------------------------------------------------------------------------

    def _link_of(self, meter_id: str) -> str:
        record = self.registry.get(meter_id)
        return record.link.value if record is not None else "unknown"

    def read_registers(self, meter_id: str) -> Deferred[Any]:
        """ST23; the outcome counts in the success window."""
        link = self._link_of(meter_id)

        def ok(read: object) -> object:
            self.counts.reads_ok += 1
            self.success.record(link, True, self.clock.seconds())
            return read

        def failed(f: Failure) -> Failure:
            self.counts.reads_failed += 1
            self.success.record(link, False, self.clock.seconds())
            return f

        return self.client.read_table(meter_id, 23).addCallbacks(ok, failed)

    def read_event_log(self, meter_id: str) -> Deferred[Any]:
        """ST76 into the intake."""
        if self.reader is None:
            return succeed(None)
        self.counts.event_logs += 1
        return self.reader.read_event_log(meter_id)

    def check_metrology(self, meter_id: str) -> Deferred[Any]:
        """Manufacturer procedure 0 (the meter logs and pushes a failure itself)."""
        self.counts.metrology += 1
        return self.client.run_procedure(meter_id, METROLOGY_PROCEDURE, mfg=True)

    def check_clock(self, meter_id: str) -> Deferred[Any]:
        """Read ST52; SP10 when the drift passes ``clock_drift_threshold``."""
        return Deferred.fromCoroutine(self._check_clock(meter_id))

    async def _check_clock(self, meter_id: str) -> bool:
        self.counts.clock_checks += 1
        read = await self.client.read_table(meter_id, 52)
        drift = clock_drift(getattr(read.value, "clock_calendar", None), self.clock.seconds())
        if not needs_time_sync(drift, self.schedule.clock_drift_threshold):
            return False
        log.info("clock of {meter} drifted {drift}s: setting it", meter=meter_id, drift=drift)
        await self.sync_time(meter_id)
        return True

    async def sync_time(self, meter_id: str) -> None:
        """SP10 with the head-end's time."""
        ctx = self.client.table_context(meter_id)
        if ctx is None:
            await self.client.read_table(meter_id, 0)
            ctx = self.client.table_context(meter_id)
        assert ctx is not None
        answer = await self.client.run_procedure(
            meter_id, ProcedureNumber.SET_DATE_TIME, set_time_params(self.clock.seconds(), ctx)
        )
        self.counts.time_syncs += 1
        if answer.result_code != ProcedureResult.COMPLETED:
            raise RuntimeError(f"{meter_id}: SP10 answered {answer.result_code}")

    def self_test(self, meter_id: str) -> Deferred[Any]:
        """SP11; a failing bitmap is counted (the meter pushes the failure as an alarm)."""

        def seen(answer: Any) -> Any:
            self.counts.self_tests += 1
            if answer.result_code != ProcedureResult.COMPLETED or any(answer.resp_data[:4]):
                self.counts.self_tests_failed += 1
            return answer

        d = self.client.run_procedure(meter_id, ProcedureNumber.EXECUTE_DIAGNOSTICS)
        return d.addCallback(seen)

    # -- registration ------------------------------------------------------------------------------

    def on_register(self, event: Any) -> None:
        """The C12.22 link's hook: schedule the meter; self-test; learn where it is installed
        (ST6); after an exchange, sync its clock and write the account's programs."""
        if getattr(event, "relay", False):
            return None
        self.meter_joined(event.address.meter_id, event.registration, event.time)
        return None

    def meter_joined(self, meter_id: str, registration: Registration | None, now: float) -> None:
        """A meter became known to the head-end (C12.22 registration, Modbus enrolment): schedule
        it, learn where it is installed (or run the exchange), and self-test it (FR1)."""
        self.agenda.add(meter_id, now)
        if registration is not None and registration.replaced is not None:
            self._track(self.install(meter_id, registration.replaced), f"install of {meter_id}")
        elif self.locate_on_register:
            self._track(self.locate(meter_id), f"ST6 of {meter_id}")
        if self.schedule.self_test_on_register:
            self._track(self.self_test(meter_id), f"self-test of {meter_id}")

    def locate(self, meter_id: str) -> Deferred[Registration | None]:
        """Read ST6; put its premise and account in the registry when they are new or changed
        (S1 step 9). When that shows an exchange, run :meth:`install`. Fires with the registry's
        outcome, or None when the registry was left as it was (blank ST6, nothing new)."""
        return Deferred.fromCoroutine(self._locate(meter_id))

    async def _locate(self, meter_id: str) -> Registration | None:
        try:
            read = await self.client.read_table(meter_id, 6)
        except MeterRefused as exc:  # a meter without ST6 (or that will not show it)
            log.info("meter {meter}: no ST6 ({code})", meter=meter_id, code=exc.code.name)
            return None
        value = read.value if isinstance(read.value, UtilityInfo) else None
        premise, account = installed_at(value)
        record = self.registry.get(meter_id)
        if record is None or record.state is MeterState.REMOVED or premise is None:
            return None  # unknown, taken out meanwhile, or ST6 never programmed
        account = account or record.account
        if (premise, account) == (record.premise, record.account):
            return None
        now = self.clock.seconds()
        located = replace(record, premise=premise, account=account)
        registration = self.registry.register(located, now=now)
        self.counts.located += 1
        log.info(
            "meter {meter}: ST6 says premise {premise}, account {account}",
            meter=meter_id, premise=premise, account=account,
        )  # fmt: skip
        if registration.replaced is not None:
            await self._install(meter_id, registration.replaced)
        return registration

    def install(self, meter_id: str, replaced: str | None) -> Deferred[None]:
        """S1 steps 9 and 9.1: the registry has recorded the removal of ``replaced`` and the
        installation of ``meter_id``; sync the clock, then write the account's programs."""
        return Deferred.fromCoroutine(self._install(meter_id, replaced))

    async def _install(self, meter_id: str, replaced: str | None) -> None:
        self.counts.exchanges += 1
        if replaced is not None:
            self.agenda.remove(replaced)
        record = self.registry.get(meter_id)
        log.info(
            "meter {meter} installed at premise {premise}, replacing {old}",
            meter=meter_id, premise=record.premise if record else None, old=replaced,
        )  # fmt: skip
        self.client.forget(meter_id)
        await self.sync_time(meter_id)
        if record is None:
            return
        ctx = self.client.table_context(meter_id) or DEFAULT_CONTEXT
        for program in self.programs(record, ctx):
            await self.client.write_table(meter_id, program.table, program.data)
            self.counts.programs_written += 1
        self.client.forget(meter_id)  # its layout may have changed
