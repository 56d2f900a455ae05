"""The deterministic load curve, registers, interval data and schedules (no codecs needed)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.simulators.history import (
    DAY,
    LoadCurve,
    Span,
    channel_energy,
    interval_energy,
    month_starts,
    runs_before,
    runs_between,
    unit,
)

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def test_unit_is_deterministic_and_spread() -> None:
    values = [unit(42, 1, k) for k in range(2000)]
    assert values == [unit(42, 1, k) for k in range(2000)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert 0.45 < sum(values) / len(values) < 0.55
    assert unit(42, 1, 0) != unit(43, 1, 0) != unit(42, 2, 0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**63 - 1), start=st.floats(min_value=T0, max_value=T0 + 400 * DAY))
def test_energy_strictly_increases(seed: int, start: float) -> None:
    curve = LoadCurve.from_seed(seed)
    times = [start + i * 137.0 for i in range(60)]
    energies = [curve.energy_wh(t) for t in times]
    assert all(b > a for a, b in zip(energies, energies[1:], strict=False))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**63 - 1), day=st.integers(min_value=0, max_value=365))
def test_intervals_add_up_to_register_delta(seed: int, day: int) -> None:
    curve = LoadCurve.from_seed(seed)
    origin = T0 - 10 * DAY
    first = int((T0 + day * DAY) // 900)
    values = interval_energy(curve, [], origin, first, 96)
    d0, _ = channel_energy(curve, [], origin, first * 900.0)
    d1, _ = channel_energy(curve, [], origin, (first + 96) * 900.0)
    assert sum(v[0] for v in values) == math.floor(d1) - math.floor(d0)
    assert all(v[0] > 0 and v[1] == 0 for v in values)


def test_outage_stops_and_reverse_moves_energy() -> None:
    curve = LoadCurve.from_seed(7)
    origin = T0
    start, end = T0 + 3600.0, T0 + 7200.0
    plain = channel_energy(curve, [], origin, T0 + 3 * 3600.0)
    outage = channel_energy(curve, [Span(start, end, 0.0, False)], origin, T0 + 3 * 3600.0)
    hour = curve.energy_wh(end) - curve.energy_wh(start)
    assert math.isclose(plain[0] - outage[0], hour, rel_tol=1e-9)
    rev = channel_energy(curve, [Span(start, end, 1.0, True)], origin, T0 + 3 * 3600.0)
    assert math.isclose(rev[1], hour, rel_tol=1e-9)
    assert math.isclose(rev[0] + rev[1], plain[0], rel_tol=1e-9)
    scaled = channel_energy(curve, [Span(start, math.inf, 0.5, False)], origin, end)
    before = curve.energy_wh(start) - curve.energy_wh(origin)
    assert math.isclose(scaled[0], before + 0.5 * hour, rel_tol=1e-9)


def test_interval_in_outage_is_zero() -> None:
    curve = LoadCurve.from_seed(3)
    k = int(T0 // 900) + 10
    spans = [Span(k * 900.0, (k + 4) * 900.0, 0.0, False)]
    values = interval_energy(curve, spans, T0 - DAY, k - 1, 6)
    assert [v[0] for v in values[1:5]] == [0, 0, 0, 0]
    assert values[0][0] > 0 and values[5][0] > 0


def test_runs_between_and_before_agree() -> None:
    origin, phase, period = 1000.0, 250.0, 3600.0
    runs = runs_between(origin, phase, period, 0.0, origin + 10 * period)
    assert runs[0] == origin + phase and len(runs) == 10
    for t in (origin, origin + phase, origin + phase + 1, origin + 5.5 * period):
        assert runs_before(origin, phase, period, t) == len([r for r in runs if r < t])
    assert runs_between(origin, phase, period, runs[2], runs[4]) == runs[3:5]


def test_month_starts() -> None:
    got = list(month_starts(T0 - 1.0, T0 + 70 * DAY))
    assert got == [T0, T0 + 31 * DAY, T0 + 59 * DAY]
