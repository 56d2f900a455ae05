"""Fleets: many meters with spread identities, scheduled and random faults. Deterministic by seed.

:func:`build_fleet` makes the meters; :class:`FleetModel` adds the fault timeline (the scenario's
scheduled faults plus random ones at NFR2's rates: 1 % at installation, 0.5 % a year after, scaled
by ``rates.time_scale``) and applies it as time goes by: ``advance(now)`` injects and clears what is
due and returns what it did (relay and collector faults are returned for the link simulators to
apply); ``tick(now)`` does that and collects every meter's alarms.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass

from .config import MeterConfig
from .diagnostics import Alarm
from .faults import FaultKind, LinkFaultKind
from .history import unit
from .identity import MeterIdentity, derive_seed
from .meter import SimMeter
from .scenario import YEAR, FaultRates, FleetSpec, Scenario, ScenarioError, ScheduledFault

__all__ = ["FaultAction", "FleetModel", "build_fleet", "make_identity"]


def make_identity(spec: FleetSpec, index: int, *, seed: int | None = None) -> MeterIdentity:
    """Meter ``index`` of a fleet: identity spread over manufacturers, lots, types and modules."""
    s = spec.seed if seed is None else seed
    mfr = spec.manufacturers[int(unit(s, 30, index) * len(spec.manufacturers))]
    lot = int(unit(s, 31, index) * spec.lots)
    mtype = spec.meter_types[int(unit(s, 32, index) * len(spec.meter_types))]
    module = spec.modules[int(unit(s, 33, index) * len(spec.modules))]
    serial = spec.id_format.format(index=index)
    return MeterIdentity(
        manufacturer=mfr,
        model=f"{mfr[:2]}{mtype[:3].upper()}{spec.meter_types.index(mtype)}"[:8],
        serial=serial,
        hw_version=1 + int(unit(s, 34, index) * 3),
        hw_revision=int(unit(s, 35, index) * 4),
        fw_version=2 + int(unit(s, 36, index) * 2),
        fw_revision=int(unit(s, 37, index) * 10),
        lot=f"{mfr.strip()}-L{lot:03d}",
        meter_type=mtype,
        comm_module=module,
        ap_title=(*spec.ap_title_base, index + 1),
        account=f"AC{derive_seed(s, 'account', index) % 10**9:09d}",
        premise=f"PR{derive_seed(s, 'premise', index) % 10**8:08d}",
        seed=derive_seed(s, "meter", index),
    )


def build_fleet(
    n: int,
    seed: int,
    *,
    start_time: float,
    config: MeterConfig | None = None,
    spec: FleetSpec | None = None,
) -> list[SimMeter]:
    """``n`` meters sharing one config; identities from ``spec`` (meters and seed overridden)."""
    base = spec if spec is not None else FleetSpec()
    cfg = config if config is not None else MeterConfig()
    s = FleetSpec(
        meters=n,
        seed=seed,
        start=start_time,
        manufacturers=base.manufacturers,
        lots=base.lots,
        meter_types=base.meter_types,
        modules=base.modules,
        ap_title_base=base.ap_title_base,
        id_format=base.id_format,
    )
    return [SimMeter(make_identity(s, i), config=cfg, start_time=start_time) for i in range(n)]


@dataclass(frozen=True, kw_only=True, slots=True)
class FaultAction:
    """Something the fleet's timeline did (or asks a link simulator to do)."""

    time: float
    """When it was due."""
    kind: FaultKind | LinkFaultKind
    """The fault."""
    target: str
    """``"meter"``, ``"relay"`` or ``"collector"``."""
    ident: str
    """Meter id, relay id or collector id."""
    clear: bool
    """False: switched on; True: switched off."""
    value: float | None = None
    """Link-fault value."""
    random: bool = False
    """True for a random (NFR2) fault, False for a scheduled one."""


class FleetModel:
    """Meters plus their fault timeline."""

    def __init__(
        self,
        meters: list[SimMeter],
        *,
        start_time: float,
        seed: int = 1,
        rates: FaultRates | None = None,
        faults: tuple[ScheduledFault, ...] = (),
    ) -> None:
        self.meters = meters
        self.start_time = float(start_time)
        self.seed = seed
        self.rates = rates if rates is not None else FaultRates()
        self.by_id: dict[str, SimMeter] = {m.meter_id: m for m in meters}
        self._queue: list[tuple[float, int, FaultAction]] = []
        self._order = 0
        for i, sf in enumerate(faults):
            self._schedule(sf, i)
        self._schedule_random()

    @classmethod
    def from_scenario(
        cls, scenario: Scenario, *, start_time: float | None = None, extra_faults: list[ScheduledFault] | None = None
    ) -> FleetModel:
        """Build the fleet a scenario describes (``start_time`` when the file gives none)."""
        spec = scenario.fleet
        start = spec.start if spec.start is not None else start_time
        if start is None:
            raise ScenarioError("fleet.start: no start time in the scenario and none given")
        meters = build_fleet(spec.meters, spec.seed, start_time=start, config=scenario.meter, spec=spec)
        return cls(
            meters,
            start_time=start,
            seed=spec.seed,
            rates=scenario.rates,
            faults=(*scenario.faults, *(extra_faults or ())),
        )

    def __len__(self) -> int:
        return len(self.meters)

    def _push(self, action: FaultAction) -> None:
        heapq.heappush(self._queue, (action.time, self._order, action))
        self._order += 1

    def _meter_ids(self, sf: ScheduledFault, index: int) -> list[str]:
        sel = sf.selector
        if sel == "random":
            if sf.count > len(self.meters):
                raise ScenarioError(f"fault[{index}].count: {sf.count} > {len(self.meters)} meters")
            rng = random.Random(derive_seed(self.seed, "scheduled", index))
            return [m.meter_id for m in rng.sample(self.meters, sf.count)]
        if isinstance(sel, int):
            if sel >= len(self.meters):
                raise ScenarioError(f"fault[{index}].meter: index {sel} but the fleet has {len(self.meters)}")
            return [self.meters[sel].meter_id]
        if sel not in self.by_id:
            raise ScenarioError(f"fault[{index}].meter: no meter {sel!r} in the fleet")
        return [sel]

    def _schedule(self, sf: ScheduledFault, index: int) -> None:
        idents = self._meter_ids(sf, index) if sf.target == "meter" else [str(sf.selector)]
        at = sf.at.resolve(self.start_time)
        for ident in idents:
            self._push(FaultAction(time=at, kind=sf.kind, target=sf.target, ident=ident, clear=False, value=sf.value))
            if sf.until is not None:
                end = sf.until.resolve(self.start_time)
                self._push(FaultAction(time=max(end, at), kind=sf.kind, target=sf.target, ident=ident, clear=True))

    def _schedule_random(self) -> None:
        r = self.rates
        if not r.kinds:
            return
        # hazard rate with P(fail within a year) = per_year, sped up by time_scale
        rate = -math.log(max(1e-12, 1.0 - min(r.per_year, 0.999999))) / YEAR * r.time_scale
        for i, m in enumerate(self.meters):
            kind = r.kinds[int(unit(self.seed, 40, i) * len(r.kinds))]
            if unit(self.seed, 41, i) < r.install:
                at = self.start_time
            elif rate > 0.0:
                at = self.start_time - math.log(1.0 - unit(self.seed, 42, i)) / rate
            else:
                continue
            self._push(FaultAction(time=at, kind=kind, target="meter", ident=m.meter_id, clear=False, random=True))

    def next_due(self) -> float | None:
        """Time of the next pending action (None: nothing pending)."""
        return self._queue[0][0] if self._queue else None

    def advance(self, now: float) -> list[FaultAction]:
        """Apply every action due at or before ``now`` to the meters; return all of them (relay
        and collector actions are for the link simulators)."""
        done: list[FaultAction] = []
        while self._queue and self._queue[0][0] <= now:
            _, _, action = heapq.heappop(self._queue)
            meter = self.by_id.get(action.ident) if action.target == "meter" else None
            if meter is not None:
                if action.clear:
                    meter.clear(action.kind, action.time)
                else:
                    meter.inject(action.kind, action.time, value=action.value)
            done.append(action)
        return done

    def tick(self, now: float) -> list[Alarm]:
        """``advance(now)`` then every meter's :meth:`SimMeter.tick`."""
        self.advance(now)
        out: list[Alarm] = []
        for m in self.meters:
            out.extend(m.tick(now))
        return out

    def exchange(self, meter_id: str, now: float) -> SimMeter:
        """Replace a meter (S1: the field exchange): a new meter, new serial and AP title, same
        account and premise, powered up at ``now``."""
        old = self.by_id.pop(meter_id)
        idx = self.meters.index(old)
        n = sum(1 for m in self.meters if m.meter_id.startswith(meter_id[:12])) + len(self.meters)
        serial = f"{meter_id[:13]}-x{n % 100:02d}"[:16]
        ident = MeterIdentity(
            manufacturer=old.identity.manufacturer,
            model=old.identity.model,
            serial=serial,
            lot=old.identity.lot,
            meter_type=old.identity.meter_type,
            comm_module=old.identity.comm_module,
            ap_title=(*old.identity.ap_title[:-1], old.identity.ap_title[-1] + 1_000_000 + n),
            account=old.identity.account,
            premise=old.identity.premise,
            seed=derive_seed(old.identity.seed, "exchange", now),
        )
        new = SimMeter(ident, config=old.config, start_time=now, installed=now)
        self.meters[idx] = new
        self.by_id[new.meter_id] = new
        return new
