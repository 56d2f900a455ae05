"""One simulated meter: state, schedules, faults. Sans-I/O: time is always passed in.

Theory of operation. A meter keeps a handful of numbers (mode, latched status bits, clock offset,
demand-reset time, a small cache) plus two short lists that exist only once something has happened
(fault records, and events that cannot be generated). Everything else is computed on read from the
seed and ``now``: registers and interval data (:mod:`~amidcc.simulators.history`), the event log
(generated runs of the self-test and metrology schedules merged with the stored events), the
self-test results (the faults active at each run). That is what lets ten thousand meters live in
one process.

``_advance(now)`` walks the schedules forward: a fault that a self-test or metrology check can
notice is *detected* at the first run after it starts; detection latches ST3 bits, logs an event
and, for the kinds in ``config.push_kinds``, queues an :class:`~amidcc.simulators.diagnostics.Alarm`
that the next :meth:`SimMeter.tick` returns. Requests advance the schedules too, so a read is always
consistent with ``now``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

from . import psem_server  # imports this module only for type checking
from .alarms import make_alarm
from .config import DAY, MeterConfig
from .diagnostics import Alarm, EventRecord, RunKind, selftest_argument
from .faults import (
    FAULT_NUMBER,
    FAULTS,
    MFG_EVENT_FLAG,
    NO_LINK_FAULTS,
    Detection,
    FaultKind,
    LinkFaultKind,
    LinkFaults,
    MfgEvent,
    StdEvent,
    parse_fault_kind,
)
from .history import (
    LoadCurve,
    Span,
    channel_energy,
    interval_energy,
    latest_month_start,
    month_starts,
    runs_between,
    unit,
)
from .identity import MeterIdentity

__all__ = ["FaultRecord", "SimMeter"]

_MFG_SHIFT = 16
_OUTAGE = FaultKind.POWER_OUTAGE
_ED_MODE_METERING = 0x01

# Event tuples kept in memory: (time, code, argument, user_id).
EventTuple = tuple[float, int, int, int]


class FaultRecord:
    """One injected meter fault: when it started, ended and was noticed."""

    __slots__ = ("kind", "start", "end", "detected")

    def __init__(self, kind: FaultKind, start: float) -> None:
        self.kind = kind
        self.start = start
        self.end = math.inf
        self.detected: float | None = None

    def active(self, t: float) -> bool:
        """True at ``t`` (start inclusive, end exclusive)."""
        return self.start <= t < self.end

    def __repr__(self) -> str:
        return f"FaultRecord({self.kind.value}, {self.start}, {self.end}, detected={self.detected})"


class SimMeter:
    """A simulated C12.19 meter. See the module docstring; PSEM lives in :mod:`.psem_server`."""

    __slots__ = (
        "identity",
        "config",
        "start_time",
        "epoch",
        "curve",
        "link_faults",
        "mode",
        "_faults",
        "_latched",
        "_clock",
        "_events",
        "_dropped",
        "_last",
        "_alarms",
        "sessions",
        "st8",
        "programs",
        "_demand",
        "_reset_at",
        "demand_resets",
        "_origin_wh",
        "_noise",
    )

    def __init__(
        self,
        identity: MeterIdentity,
        *,
        config: MeterConfig | None = None,
        start_time: float,
        installed: float | None = None,
    ) -> None:
        self.identity = identity
        self.config = config if config is not None else MeterConfig()
        self.start_time = float(start_time)
        #: Installation time: the synthetic history starts here (default: history_days before).
        hist = self.start_time - self.config.history_days * DAY
        self.epoch = math.floor(hist if installed is None else min(installed, self.start_time))
        self.curve = LoadCurve.from_seed(
            identity.seed, interval=float(self.config.interval), mean_w=self.config.mean_power_w
        )
        #: Link faults for the transports to honour (shared immutable default).
        self.link_faults: LinkFaults = NO_LINK_FAULTS
        #: ST3 ED_MODE.
        self.mode = _ED_MODE_METERING
        self._faults: list[FaultRecord] | None = None
        self._latched = 0  # std status | mfg status << 16
        self._clock: tuple[float, float] = (0.0, self.start_time)  # (offset at sync, sync time)
        self._events: list[EventTuple] | None = None
        self._dropped = 0
        self._last = self.start_time
        self._alarms: list[Alarm] | None = None
        #: PSEM sessions by channel (None until a channel is used); owned by psem_server.
        self.sessions: dict[str, object] | None = None
        #: Last ST8 PROC_RESPONSE bytes (None until a procedure ran).
        self.st8: bytes | None = None
        #: Programmable tables written by the head-end (None until one is written).
        self.programs: dict[int, bytes] | None = None
        self._demand: tuple[float, int, float, float] | None = None  # (reset_at, upto, max W, at)
        self._reset_at = float(self.epoch)  # last SP9 demand reset
        #: Number of demand resets (ST23 NBR_DEMAND_RESETS, mod 256 on the wire).
        self.demand_resets = 0
        self._origin_wh: float | None = None  # E(epoch): the registers start there
        self._noise: tuple[int, float, float] | None = None  # see LoadCurve.energy_wh_near

    # ------------------------------------------------------------------ identity and time

    @property
    def meter_id(self) -> str:
        """The head-end's id of the meter (its serial)."""
        return self.identity.serial

    @property
    def key(self) -> bytes:
        """This meter's 16-byte C12.22 key (for security modes 1 and 2)."""
        return self.config.meter_key(self.identity.serial)

    @property
    def drift_ppm(self) -> float:
        """This meter's own clock drift (seeded, within +-config.clock_drift_ppm)."""
        return self.config.clock_drift_ppm * (2.0 * unit(self.identity.seed, 9, 0) - 1.0)

    def clock(self, now: float) -> float:
        """What the meter's clock reads at true time ``now`` (drift, time-sync faults)."""
        offset, sync = self._clock
        if now <= sync:
            return now + offset
        extra = 0.0
        for f in self._faults or ():
            if f.kind is FaultKind.TIME_SYNC:
                lo, hi = max(f.start, sync), min(f.end, now)
                if hi > lo:
                    extra += hi - lo
        drift = self.drift_ppm * 1e-6 * (now - sync) + self.config.time_sync_drift_ppm * 1e-6 * extra
        return now + offset + drift

    def set_clock(self, meter_time: float, now: float) -> bool:
        """SP10: set the clock so it reads ``meter_time`` at ``now``; False while time sync fails."""
        self._advance(now)
        old = self.clock(now)
        if self.fault_active(FaultKind.TIME_SYNC, now):
            self.log(now, MFG_EVENT_FLAG | MfgEvent.TIME_SYNC_FAILURE, FAULT_NUMBER[FaultKind.TIME_SYNC])
            return False
        self._clock = (meter_time - now, now)
        self.log(now, StdEvent.TIME_CHANGED_OLD_TIME, int(old) & 0xFFFFFFFF, 1)
        self.log(now, StdEvent.TIME_CHANGED_NEW_TIME, int(meter_time) & 0xFFFFFFFF, 1)
        return True

    @property
    def selftest_phase(self) -> float:
        """Offset of this meter's periodic self-tests within the period (seeded)."""
        return self.config.selftest_period * unit(self.identity.seed, 10, 0)

    @property
    def metrology_phase(self) -> float:
        """Offset of this meter's metrology checks within their period (seeded)."""
        return self.config.metrology_period * unit(self.identity.seed, 11, 0)

    # ------------------------------------------------------------------ faults

    @property
    def faults(self) -> tuple[FaultRecord, ...]:
        """Every fault record kept (active and cleared)."""
        return tuple(self._faults or ())

    def fault_active(self, kind: FaultKind, t: float) -> bool:
        """Whether a fault of ``kind`` is active at ``t``."""
        return any(f.kind is kind and f.active(t) for f in self._faults or ())

    def active_faults(self, now: float) -> frozenset[FaultKind]:
        """Kinds active at ``now``."""
        return frozenset(f.kind for f in self._faults or () if f.active(now))

    def powered(self, now: float) -> bool:
        """False during a power outage: the meter answers nothing (handlers return no response)."""
        return not self.fault_active(_OUTAGE, now)

    def inject(self, fault: FaultKind | LinkFaultKind | str, now: float, *, value: float | None = None) -> None:
        """Switch a fault on at ``now`` (link faults: ``value`` = probability or seconds)."""
        kind = parse_fault_kind(fault) if isinstance(fault, str) else fault
        if isinstance(kind, LinkFaultKind):
            self.link_faults = self.link_faults.with_fault(kind, value)
            return
        self._advance(now)
        if self.fault_active(kind, now):
            return
        rec = FaultRecord(kind, now)
        if self._faults is None:
            self._faults = []
        self._faults.append(rec)
        self._trim_faults()
        if FAULTS[kind].detection is Detection.IMMEDIATE:
            self._detect(rec, now)
        else:
            self._advance(now)  # a run scheduled exactly now (e.g. the power-up test) sees it

    def clear(self, fault: FaultKind | LinkFaultKind | str, now: float) -> None:
        """Switch a fault off at ``now`` (a power outage ends: power-up event and self-test)."""
        kind = parse_fault_kind(fault) if isinstance(fault, str) else fault
        if isinstance(kind, LinkFaultKind):
            self.link_faults = self.link_faults.without_fault(kind)
            return
        self._advance(now)
        for rec in self._faults or ():
            if rec.kind is kind and rec.active(now):
                rec.end = now
                if kind is _OUTAGE:
                    self._power_up(now)
                elif rec.detected is not None:
                    self.log(now, MFG_EVENT_FLAG | MfgEvent.FAULT_CLEARED, FAULT_NUMBER[kind])

    def _trim_faults(self) -> None:
        faults = self._faults
        if faults is None or len(faults) <= self.config.max_faults:
            return
        for i, f in enumerate(faults):
            if f.end != math.inf:
                del faults[i]
                return

    def _power_up(self, now: float) -> None:
        self.log(now, StdEvent.PRIMARY_POWER_UP, 0)
        failing = self.failing_checks(now)
        self.log(now, _summary_code(failing), selftest_argument(RunKind.POWER_UP, failing))
        self._queue_alarm(now, StdEvent.PRIMARY_POWER_UP, _OUTAGE, restoration=True)
        self._detect_self_test_faults(now)

    # ------------------------------------------------------------------ diagnostics

    def failing_checks(self, t: float) -> int:
        """Bitmap of the MT0 checks that fail at ``t`` (bit n = Check n)."""
        bits = 0
        for f in self._faults or ():
            check = FAULTS[f.kind].check
            if check is not None and f.active(t):
                bits |= 1 << int(check)
        return bits

    def metrology_error_pm(self, t: float) -> int:
        """Metrology check result at ``t``: registration error in per mille (signed)."""
        if self.fault_active(FaultKind.METROLOGY, t):
            return round((self.config.metrology_fault_scale - 1.0) * 1000.0)
        return round((unit(self.identity.seed, 12, int(t // DAY)) - 0.5) * 4.0)

    def run_self_test(self, now: float, *, user_id: int = 0) -> int:
        """On-demand self-test (SP11): logs the summary, detects faults; returns the failing bitmap."""
        self._advance(now)
        failing = self.failing_checks(now)
        self.log(now, _summary_code(failing), selftest_argument(RunKind.ON_DEMAND, failing), user_id)
        self._detect_self_test_faults(now)
        return failing

    def run_metrology_check(self, now: float, *, user_id: int = 0) -> int:
        """On-demand metrology check (amidcc MP0); returns the error in per mille."""
        self._advance(now)
        err = self.metrology_error_pm(now)
        failed = self.fault_active(FaultKind.METROLOGY, now)
        code = MfgEvent.METROLOGY_FAILED if failed else MfgEvent.METROLOGY_PASSED
        self.log(now, MFG_EVENT_FLAG | code, err & 0xFFFF, user_id)
        for f in self._faults or ():
            if f.detected is None and f.active(now) and FAULTS[f.kind].detection is Detection.METROLOGY:
                self._detect(f, now)
        return err

    def _detect_self_test_faults(self, now: float) -> None:
        for f in self._faults or ():
            if f.detected is None and f.active(now) and FAULTS[f.kind].detection is Detection.SELF_TEST:
                self._detect(f, now)

    def last_self_test(self, now: float) -> tuple[float, RunKind]:
        """Time and kind of the most recent self-test run at or before ``now``."""
        best = (float(self.epoch), RunKind.INSTALL)
        if self.start_time <= now:
            best = (self.start_time, RunKind.POWER_UP)
        runs = runs_between(self.epoch, self.selftest_phase, self.config.selftest_period, max(best[0], now - self.config.selftest_period - 1), now)
        for t in reversed(runs):
            if self.powered(t):
                if t > best[0]:
                    best = (t, RunKind.PERIODIC)
                break
        for t, code, arg, _ in reversed(self._events or ()):
            if t <= now and code & ~1 == MFG_EVENT_FLAG | MfgEvent.SELF_TEST_PASSED and t >= best[0]:
                best = (t, RunKind(arg >> 24))
                break
        return best

    def last_metrology(self, now: float) -> float:
        """Time of the most recent metrology check (scheduled or on demand) at or before ``now``."""
        best = float(self.epoch)
        period = self.config.metrology_period
        for t in reversed(runs_between(self.epoch, self.metrology_phase, period, now - period - 1, now)):
            if self.powered(t):
                best = t
                break
        flag = MFG_EVENT_FLAG | MfgEvent.METROLOGY_PASSED
        for t, code, _, _ in reversed(self._events or ()):
            if t <= now and code & ~1 == flag:
                best = max(best, t)
                break
        return best

    def _next_run(self, t: float, phase: float, period: float) -> float:
        """First powered scheduled run at or after ``t`` (the power-up test counts for self-tests)."""
        first = self.epoch + phase
        k = max(0, math.ceil((t - first) / period))
        for _ in range(1000):
            r = first + k * period
            if self.powered(r):
                return r
            k += 1
        return math.inf

    def _advance(self, now: float) -> None:
        """Run the schedules up to ``now``: detect what the runs in ``(last, now]`` notice."""
        if now < self._last:
            return
        found: list[tuple[float, FaultRecord]] = []
        for f in self._faults or ():
            if f.detected is not None:
                continue
            how = FAULTS[f.kind].detection
            if how is Detection.SELF_TEST:
                r = self._next_run(f.start, self.selftest_phase, self.config.selftest_period)
                if f.start <= self.start_time:
                    r = min(r, self.start_time)
            elif how is Detection.METROLOGY:
                r = self._next_run(f.start, self.metrology_phase, self.config.metrology_period)
            else:
                continue
            if r <= now and f.active(r):
                found.append((r, f))
        found.sort(key=lambda p: p[0])
        for r, f in found:
            self._detect(f, r)
        self._last = now

    def _detect(self, rec: FaultRecord, t: float) -> None:
        spec = FAULTS[rec.kind]
        rec.detected = t
        self._latched |= int(spec.std_status) | (int(spec.mfg_status) << _MFG_SHIFT)
        self.log(t, spec.event_code, FAULT_NUMBER[rec.kind])
        if rec.kind in self.config.push_kinds:
            self._queue_alarm(t, spec.event_code, rec.kind)

    def _queue_alarm(self, t: float, code: int, kind: FaultKind, *, restoration: bool = False) -> None:
        if kind not in self.config.push_kinds:
            return
        if self.fault_active(FaultKind.PUSH_FAILURE, t):
            self.log(t, MFG_EVENT_FLAG | MfgEvent.PUSH_FAILURE, code)  # FR8
            return
        alarm = make_alarm(self, t, code, kind, restoration=restoration)
        if self._alarms is None:
            self._alarms = []
        self._alarms.append(alarm)

    def note_push_failed(self, alarm: Alarm, now: float) -> None:
        """A transport could not deliver ``alarm``: the meter logs it (FR8)."""
        self.log(now, MFG_EVENT_FLAG | MfgEvent.PUSH_FAILURE, alarm.event_code)

    def advance(self, now: float) -> None:
        """Run the schedules up to ``now`` without collecting alarms (they wait for :meth:`tick`)."""
        self._advance(now)

    def tick(self, now: float) -> list[Alarm]:
        """Advance schedules and faults to ``now``; the critical alarms to push at once."""
        self._advance(now)
        alarms, self._alarms = self._alarms, None
        return alarms or []

    # ------------------------------------------------------------------ status

    def status(self, now: float) -> tuple[int, int]:
        """ST3 (ED_STD_STATUS1, ED_MFG_STATUS) at ``now``: latched bits plus detected active faults."""
        self._advance(now)
        bits = self._latched
        for f in self._faults or ():
            if f.detected is not None and f.detected <= now and f.active(now):
                spec = FAULTS[f.kind]
                bits |= int(spec.std_status) | (int(spec.mfg_status) << _MFG_SHIFT)
        return bits & 0xFFFF, bits >> _MFG_SHIFT

    def clear_status(self, *, std: bool, mfg: bool) -> None:
        """SP7 / SP8: clear latched bits (bits of faults still active come back at once)."""
        if std:
            self._latched &= ~0xFFFF
        if mfg:
            self._latched &= 0xFFFF

    # ------------------------------------------------------------------ events

    def log(self, t: float, code: int, argument: int, user_id: int = 0) -> None:
        """Store an event that the schedules cannot regenerate."""
        if self._events is None:
            self._events = []
        bisect.insort(self._events, (float(math.floor(t)), int(code), int(argument), int(user_id)))
        if len(self._events) > self.config.max_stored_events:
            del self._events[0]
            self._dropped += 1

    def _generated(self, now: float) -> list[EventTuple]:
        """Schedule events from installation to ``now`` (not stored; regenerated on every read)."""
        cfg, seed, out = self.config, self.identity.seed, []
        ep = float(self.epoch)
        if ep <= now:
            out.append((ep, _summary_code(0), selftest_argument(RunKind.INSTALL, 0), 0))
        hist_end = min(now, self.start_time)
        day = int(ep // DAY) + 1
        while day * DAY < hist_end:
            if unit(seed, 5, day) < cfg.history_outage_rate:
                down = math.floor(day * DAY + unit(seed, 6, day) * 0.9 * DAY)
                up = down + 1 + math.floor(59 * unit(seed, 7, day))
                if up < hist_end:
                    out.append((float(down), int(StdEvent.PRIMARY_POWER_DOWN), 0, 0))
                    out.append((float(up), int(StdEvent.PRIMARY_POWER_UP), 0, 0))
            day += 1
        if self.start_time <= now:
            f = self.failing_checks(self.start_time)
            out.append((self.start_time, _summary_code(f), selftest_argument(RunKind.POWER_UP, f), 0))
        for t in runs_between(ep, self.selftest_phase, cfg.selftest_period, ep, now):
            if self.powered(t):
                f = self.failing_checks(t)
                out.append((float(math.floor(t)), _summary_code(f), selftest_argument(RunKind.PERIODIC, f), 0))
        for t in runs_between(ep, self.metrology_phase, cfg.metrology_period, ep, now):
            if self.powered(t):
                failed = self.fault_active(FaultKind.METROLOGY, t)
                code = MfgEvent.METROLOGY_FAILED if failed else MfgEvent.METROLOGY_PASSED
                out.append((float(math.floor(t)), MFG_EVENT_FLAG | code, self.metrology_error_pm(t) & 0xFFFF, 0))
        if cfg.monthly_demand_reset:
            out.extend((t, int(StdEvent.DEMAND_RESET), 0, 0) for t in month_starts(ep, now))
        return out

    def event_records(self, now: float) -> list[EventRecord]:
        """The event log at ``now``: at most ``event_capacity`` entries of the last ``log_days``,
        oldest first, with lifetime sequence numbers."""
        self._advance(now)
        merged = self._generated(now)
        merged.extend(e for e in self._events or () if e[0] <= now)
        merged.sort()
        horizon = now - self.config.log_days * DAY
        first = bisect.bisect_left(merged, (horizon,))
        first = max(first, len(merged) - self.config.event_capacity)
        return [
            EventRecord(time=t, seq=self._dropped + i, code=c, argument=a, user_id=u)
            for i, (t, c, a, u) in enumerate(merged[first:], start=first)
        ]

    # ------------------------------------------------------------------ metering

    def spans(self) -> list[Span]:
        """Registration spans from the fault records (outage, metrology, reverse rotation)."""
        out: list[Span] = []
        for f in self._faults or ():
            if f.kind is _OUTAGE:
                out.append(Span(f.start, f.end, 0.0, False))
            elif f.kind is FaultKind.METROLOGY:
                out.append(Span(f.start, f.end, self.config.metrology_fault_scale, False))
            elif f.kind is FaultKind.REVERSE_ROTATION:
                out.append(Span(f.start, f.end, 1.0, True))
        return out

    def registers(self, now: float) -> tuple[int, int]:
        """(delivered, received) energy registers in Wh at ``now`` (as ST23 reports them)."""
        spans, origin = self.spans(), float(self.epoch)
        if spans or now <= origin:
            d, r = channel_energy(self.curve, spans, origin, now)
        else:  # channel_energy without spans, with E(origin) and the boundary noise kept
            e, self._noise = self.curve.energy_wh_near(now, self._noise)
            d, r = e - self._origin_energy(), 0.0
        base = self.initial_wh
        delivered = base + math.floor(d)
        if self.fault_active(FaultKind.DATA_INCONSISTENCY, now):
            delivered += self.config.inconsistency_offset_wh
        return delivered, math.floor(r)

    @property
    def initial_wh(self) -> int:
        """Register reading at installation (seeded: meters are not all new)."""
        return math.floor(unit(self.identity.seed, 13, 0) * 5_000_000)

    def _origin_energy(self) -> float:
        if self._origin_wh is None:
            self._origin_wh = self.curve.energy_wh(float(self.epoch))
        return self._origin_wh

    def intervals(self, first: int, count: int) -> list[tuple[int, int]]:
        """(delivered, received) Wh of intervals ``first .. first+count-1`` (absolute indexes)."""
        return interval_energy(self.curve, self.spans(), float(self.epoch), first, count)

    def demand_reset(self, now: float, *, user_id: int = 0) -> None:
        """SP9 demand reset: maximum demand restarts, the reset counter counts."""
        self._advance(now)
        self._reset_at = now
        self._demand = None
        self.demand_resets += 1
        self.log(now, StdEvent.DEMAND_RESET, self.demand_resets & 0xFF, user_id)

    def last_demand_reset(self, now: float) -> float:
        """Time of the most recent demand reset (SP9 or monthly) at or before ``now``."""
        last = self._reset_at if self._reset_at <= now else float(self.epoch)
        if self.config.monthly_demand_reset and now >= 0:
            # the last of month_starts(a, now), if any: month_starts yields those after a
            # and after the start of the month of max(a, 0)
            start = latest_month_start(now)
            if start > max(last, now - 32 * DAY, 0.0):
                last = start
        return last

    def max_demand(self, now: float) -> tuple[float, float]:
        """(maximum interval demand in W since the last reset, end time of that interval)."""
        reset = self.last_demand_reset(now)
        step = self.config.interval
        lo = math.ceil(reset / step)
        hi = math.floor(now / step)  # intervals lo .. hi-1 are complete
        cached = self._demand
        if cached is not None and cached[0] == reset and cached[1] <= hi:
            lo, best, at = cached[1], cached[2], cached[3]
        else:
            best, at = 0.0, reset
        found = self._max_interval(lo, hi)
        if found is not None and found[0] * 3600.0 / step > best:
            best, at = found[0] * 3600.0 / step, float((found[1] + 1) * step)
        self._demand = (reset, max(hi, lo), best, at)
        return best, at

    def _max_interval(self, lo: int, hi: int) -> tuple[int, int] | None:
        """(Wh, k) of the first interval in ``lo .. hi-1`` holding the most energy, None if none.

        A window a fault span reshapes, or a short one, is read whole (:meth:`intervals` reads
        each boundary once). Otherwise only intervals near the daily peak of the (day-periodic)
        smooth curve can hold the maximum; those are read a time of day at a time, highest
        smooth energy first, until no interval at the next time of day can reach the best found:
        interval ``k`` holds less than ``smooth(k) + noise_wh + 1`` (floors move a value by less
        than 1 Wh). That reads a few dozen intervals where reading every candidate took ~750.
        """
        if hi <= lo:
            return None
        step = self.config.interval
        spans = self.spans()
        if any(s.start < hi * step and s.end > lo * step for s in spans) or hi - lo < 200:
            energies = [d for d, _ in self.intervals(lo, hi - lo)]
            most = max(energies)
            return most, lo + energies.index(most)
        per_day = int(DAY // step)
        c = self.curve
        smooth = [c.smooth_wh((j + 1) * step) - c.smooth_wh(j * step) for j in range(per_day)]
        top = max(smooth) - c.noise_wh - 1.0
        offsets = sorted((j for j, e in enumerate(smooth) if e >= top), key=lambda j: -smooth[j])
        energy = self._interval_energy(spans)
        best: tuple[int, int] | None = None
        periodic = DAY % step == 0  # else smooth[j] is not every day's: read every candidate
        for j in offsets:
            if periodic and best is not None and smooth[j] + c.noise_wh + 1.01 <= best[0]:
                break  # 0.01: room for rounding in smooth[j], computed on day 0
            first = lo + (j - lo) % per_day
            for k in range(first, hi, per_day):
                e = energy(k)
                if best is None or e > best[0] or (e == best[0] and k < best[1]):
                    best = (e, k)
        return best

    def _interval_energy(self, spans: list[Span]) -> Callable[[int], int]:
        """Delivered Wh of interval ``k``, exactly as ``intervals(k, 1)`` reads it (the same
        arithmetic on the same boundaries: ``(k + 1) * step`` of one is ``k * step`` of the next)."""
        curve, origin, step = self.curve, float(self.epoch), self.curve.interval
        if spans:

            def delivered(t: float) -> float:
                return channel_energy(curve, spans, origin, t)[0]
        else:  # channel_energy's own arithmetic without spans, E(origin) computed once
            origin_wh = self._origin_energy()

            def delivered(t: float) -> float:
                return curve.energy_wh(t) - origin_wh if t > origin else 0.0

        floors: dict[int, int] = {}  # boundary -> floor(delivered): neighbours share one

        def floor_at(k: int) -> int:
            value = floors.get(k)
            if value is None:
                value = floors[k] = math.floor(delivered(k * step))
            return value

        def energy(k: int) -> int:
            return floor_at(k + 1) - floor_at(k)

        return energy

    # ------------------------------------------------------------------ PSEM

    def handle_request(self, request: bytes, now: float, *, channel: str = psem_server.LOCAL_CHANNEL) -> bytes:
        """One PSEM request in (C12.18 session rules: the optical port), one PSEM response out.
        Garbage gets a response code, never an exception; ``b""`` means no answer (no power)."""
        return psem_server.handle_request(self, request, now, channel=channel)

    def handle_services(self, services: list[bytes], now: float, *, channel: str = psem_server.NETWORK_CHANNEL) -> list[bytes]:
        """The services of one C12.22 EPSEM in (sessionless Security first, or a Logon session),
        one response each out; ``[]`` means no answer (no power)."""
        return psem_server.handle_services(self, services, now, channel=channel)

    def alarm_services(self, alarm: Alarm) -> list[bytes]:
        """The PSEM services an alarm's unsolicited EPSEM carries (see :mod:`.alarms`)."""
        from .alarms import alarm_services

        return alarm_services(alarm)

    def __repr__(self) -> str:
        return f"SimMeter({self.identity.serial!r}, ap_title={self.identity.ap_title_text})"


def _summary_code(failing: int) -> int:
    return MFG_EVENT_FLAG | (MfgEvent.SELF_TEST_FAILED if failing else MfgEvent.SELF_TEST_PASSED)

