"""What the simulated meter computes faster for a read gives what it gave before.

ST23's maximum demand (branch and bound over the same candidates, boundaries read once) equals the
brute-force maximum over every interval since the last demand reset; the registers (E(origin) and
the boundary noise kept) equal ``channel_energy``; the last demand reset (the month start without
a walk) equals the walk over ``month_starts``. Meters with and without fault spans, first reads
and later (cached) reads.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.simulators import MeterConfig, build_fleet
from amidcc.simulators.faults import FaultKind
from amidcc.simulators.history import DAY, channel_energy, latest_month_start, month_starts
from amidcc.simulators.meter import SimMeter

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC).timestamp()


def brute_max_demand(meter: SimMeter, now: float) -> tuple[float, float]:
    """The definition: the first interval since the last reset holding the most energy."""
    reset = meter.last_demand_reset(now)
    step = meter.config.interval
    lo, hi = math.ceil(reset / step), math.floor(now / step)
    energies = [d for d, _ in meter.intervals(lo, hi - lo)] if hi > lo else []
    best = max(energies, default=0)
    if best * 3600.0 / step <= 0.0:
        return 0.0, reset
    return best * 3600.0 / step, float((lo + energies.index(best) + 1) * step)


def fleet(faults: str) -> list[SimMeter]:
    meters = build_fleet(6, 21, start_time=NOW - 40 * DAY, config=MeterConfig(history_days=70))
    for meter in meters:
        if faults == "outage":  # an outage inside the window: every interval is read
            meter.inject(FaultKind.POWER_OUTAGE, NOW - 10 * DAY)
            meter.clear(FaultKind.POWER_OUTAGE, NOW - 10 * DAY + 5000)
        elif faults == "earlier":  # a span before the window shifts the cumulative floors
            meter.inject(FaultKind.METROLOGY, NOW - 39 * DAY)
            meter.clear(FaultKind.METROLOGY, NOW - 38 * DAY)
        elif faults == "reset":
            meter.demand_reset(NOW - 12 * DAY)
    return meters


@pytest.mark.parametrize("faults", ["none", "outage", "earlier", "reset"])
def test_max_demand_is_the_maximum_over_every_interval(faults: str) -> None:
    for meter in fleet(faults):
        now = NOW
        for later in (0.0, 1.0, 900.0, 2 * DAY + 7.0):  # the first read, then cached ones
            now += later
            assert meter.max_demand(now) == brute_max_demand(meter, now)


def test_max_demand_first_read_of_a_fresh_meter_matches_a_cached_one() -> None:
    cached, fresh = fleet("none")[0], fleet("none")[0]
    cached.max_demand(NOW - 3 * DAY)
    assert cached.max_demand(NOW) == fresh.max_demand(NOW)


@pytest.mark.parametrize("faults", ["none", "earlier"])
def test_registers_are_channel_energy(faults: str) -> None:
    for meter in fleet(faults):
        for t in (NOW, NOW + 0.5, NOW + 899.9, NOW + 900.0, NOW + 3 * DAY, NOW + 1.0):
            d, r = channel_energy(meter.curve, meter.spans(), float(meter.epoch), t)
            expected = (meter.initial_wh + math.floor(d), math.floor(r))
            assert meter.registers(t) == expected


def walk_last_reset(meter: SimMeter, now: float) -> float:
    last = meter._reset_at if meter._reset_at <= now else float(meter.epoch)
    for t in month_starts(max(last, now - 32 * DAY), now):
        last = max(last, t)
    return last


@given(st.floats(0.0, 4e9), st.floats(0.0, 40 * DAY))
@settings(max_examples=200, deadline=None)
def test_last_demand_reset_is_the_walk(now: float, back: float) -> None:
    meter = build_fleet(1, 5, start_time=max(0.0, now - back))[0]
    assert meter.last_demand_reset(now) == walk_last_reset(meter, now)
    assert latest_month_start(now) == max([0.0, *month_starts(max(0.0, now - 32 * DAY), now)])


@pytest.mark.parametrize("month", [1, 2, 3, 12])
def test_last_demand_reset_at_month_boundaries(month: int) -> None:
    start = datetime(2027, month, 1, tzinfo=UTC).timestamp()
    meter = build_fleet(1, 5, start_time=start - 50 * DAY)[0]
    for now in (start - 1.0, start, start + 1.0):
        assert meter.last_demand_reset(now) == walk_last_reset(meter, now)
