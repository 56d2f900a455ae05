"""Deterministic history: the load curve, the registers, interval data and schedules.

Nothing here is stored per interval. A meter's consumption is a closed-form function of time drawn
from its seed, so any register value or any 15-minute interval of the last 45 days (or 45 years) is
computed on read:

* ``S(t)``: the smooth curve, the integral of ``P(t) = base * (1 + a1 sin(wt + p1) + a2 sin(2wt + p2))``
  (``w`` = one day), in closed form;
* ``n(k)``: a seeded "noise" energy at each interval boundary ``k``, in ``[0, N)`` with ``N`` at most
  half the smallest interval energy, linearly interpolated between boundaries. ``E(t) = S(t) + n(t)``
  is therefore strictly increasing, and the interval values (differences of floored ``E`` at the
  boundaries) add up exactly to the register deltas: a head-end can check one against the other, and
  the "internal data inconsistency" fault is what breaks that.

Faults reshape the curve through :class:`Span` s: a power outage stops registration, a metrology
failure scales it, reverse rotation moves it from the delivered to the received register. Spans are
a handful of tuples per meter, built from the fault timeline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "DAY",
    "LoadCurve",
    "Span",
    "channel_energy",
    "interval_energy",
    "latest_month_start",
    "runs_between",
    "runs_before",
    "unit",
]

DAY = 86400.0
_W = 2.0 * math.pi / DAY
_M64 = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64 finaliser: a fast, well-spread integer hash (deterministic across runs)."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def unit(seed: int, tag: int, k: int) -> float:
    """A deterministic uniform number in [0, 1) for (seed, tag, k)."""
    return _mix((seed & _M64) ^ _mix((tag << 40) ^ (k & 0xFFFFFFFFFF))) / 18446744073709551616.0


@dataclass(frozen=True, slots=True)
class LoadCurve:
    """One meter's consumption pattern, drawn from its seed."""

    base_w: float
    """Average power in watts."""
    a1: float
    """Relative amplitude of the daily harmonic."""
    p1: float
    """Phase of the daily harmonic (radians)."""
    a2: float
    """Relative amplitude of the half-day harmonic."""
    p2: float
    """Phase of the half-day harmonic."""
    noise_wh: float
    """Width of the boundary noise in Wh (at most half the smallest interval's energy)."""
    interval: float
    """Interval length in seconds (900 for 15-minute data)."""
    seed: int
    """The seed the noise, voltage and power factor come from."""

    @classmethod
    def from_seed(cls, seed: int, *, interval: float = 900.0, mean_w: float = 600.0) -> LoadCurve:
        """A plausible residential curve: mean around ``mean_w`` W, evening peak, noise."""
        base = mean_w * (0.4 + 1.2 * unit(seed, 1, 0))
        a1 = 0.25 + 0.35 * unit(seed, 1, 1)
        a2 = 0.05 + 0.2 * unit(seed, 1, 2)
        p1 = 2.0 * math.pi * unit(seed, 1, 3)
        p2 = 2.0 * math.pi * unit(seed, 1, 4)
        min_interval_wh = base * (1.0 - a1 - a2) * interval / 3600.0
        return cls(base, a1, p1, a2, p2, 0.5 * min_interval_wh, interval, seed)

    def smooth_wh(self, t: float) -> float:
        """``S(t)``: the integral of the smooth power curve from the Unix epoch, in Wh."""
        c1 = math.cos(_W * t + self.p1) - math.cos(self.p1)
        c2 = math.cos(2.0 * _W * t + self.p2) - math.cos(self.p2)
        joules = self.base_w * (t - self.a1 / _W * c1 - self.a2 / (2.0 * _W) * c2)
        return joules / 3600.0

    def noise_wh_at(self, k: int) -> float:
        """The seeded noise energy at interval boundary ``k``."""
        return self.noise_wh * unit(self.seed, 2, k)

    def energy_wh(self, t: float) -> float:
        """``E(t)``: cumulative energy since the Unix epoch in Wh (strictly increasing)."""
        pos = t / self.interval
        k = math.floor(pos)
        frac = pos - k
        n0 = self.noise_wh_at(k)
        noise = n0 if frac == 0.0 else n0 + (self.noise_wh_at(k + 1) - n0) * frac
        return self.smooth_wh(t) + noise

    def energy_wh_near(
        self, t: float, noise: tuple[int, float, float] | None
    ) -> tuple[float, tuple[int, float, float]]:
        """``E(t)`` as :meth:`energy_wh` computes it, reusing ``noise``, the ``(k, n(k), n(k+1))``
        this returned for an earlier ``t`` (noise at boundaries is a pure function of the seed,
        so reads within one interval hash it once); with the triple for ``t``'s interval."""
        pos = t / self.interval
        k = math.floor(pos)
        frac = pos - k
        if noise is None or noise[0] != k:
            noise = (k, self.noise_wh_at(k), self.noise_wh_at(k + 1))
        _, n0, n1 = noise
        return self.smooth_wh(t) + (n0 if frac == 0.0 else n0 + (n1 - n0) * frac), noise

    def power_w(self, t: float) -> float:
        """Instantaneous smooth power in W (present demand)."""
        return self.base_w * (
            1.0 + self.a1 * math.sin(_W * t + self.p1) + self.a2 * math.sin(2.0 * _W * t + self.p2)
        )

    def voltage_dv(self, k: int, nominal_v: float = 240.0) -> int:
        """Average voltage of interval ``k`` in decivolts (nominal +-3 %, seeded)."""
        return round(nominal_v * 10.0 * (0.97 + 0.06 * unit(self.seed, 3, k)))

    def power_factor_pm(self, k: int) -> int:
        """Average power factor of interval ``k`` in per mille (0.88 to 0.99)."""
        return round(880 + 110 * unit(self.seed, 4, k))


@dataclass(frozen=True, slots=True)
class Span:
    """A time span during which registration is reshaped (outage, metrology error, reversal)."""

    start: float
    """Start (inclusive) in seconds since the epoch."""
    end: float
    """End (exclusive); ``math.inf`` while open."""
    scale: float
    """Multiplies the energy registered (0 during an outage, <1 for under-registration)."""
    reverse: bool
    """True: the energy goes to the received channel instead of delivered."""


def _factors(spans: Sequence[Span], t0: float, t1: float) -> tuple[float, float]:
    """(delivered factor, received factor) for the piece [t0, t1) (no span boundary inside)."""
    scale = 1.0
    reverse = False
    for s in spans:
        if s.start <= t0 and t1 <= s.end:
            scale *= s.scale
            reverse = reverse or s.reverse
    return (0.0, scale) if reverse else (scale, 0.0)


def channel_energy(curve: LoadCurve, spans: Sequence[Span], origin: float, t: float) -> tuple[float, float]:
    """(delivered, received) energy in Wh registered between ``origin`` and ``t`` (floats)."""
    if t <= origin:
        return 0.0, 0.0
    if not spans:
        return curve.energy_wh(t) - curve.energy_wh(origin), 0.0
    cuts = sorted({origin, t, *(c for s in spans for c in (s.start, s.end) if origin < c < t)})
    delivered = received = 0.0
    e_prev = curve.energy_wh(cuts[0])
    for a, b in zip(cuts, cuts[1:], strict=False):
        e_next = curve.energy_wh(b)
        f_del, f_rec = _factors(spans, a, b)
        delivered += f_del * (e_next - e_prev)
        received += f_rec * (e_next - e_prev)
        e_prev = e_next
    return delivered, received


def interval_energy(
    curve: LoadCurve, spans: Sequence[Span], origin: float, first: int, count: int
) -> list[tuple[int, int]]:
    """Integer (delivered, received) Wh of intervals ``first .. first+count-1`` (interval index
    ``k`` covers ``[k*interval, (k+1)*interval)``). Differences of floored cumulative values, so
    they add up exactly to the integer registers."""
    out: list[tuple[int, int]] = []
    step = curve.interval
    d0, r0 = channel_energy(curve, spans, origin, first * step)
    prev = (math.floor(d0), math.floor(r0))
    for k in range(first, first + count):
        d1, r1 = channel_energy(curve, spans, origin, (k + 1) * step)
        cur = (math.floor(d1), math.floor(r1))
        out.append((cur[0] - prev[0], cur[1] - prev[1]))
        prev = cur
    return out


def runs_between(origin: float, phase: float, period: float, a: float, b: float) -> list[float]:
    """Times ``origin + phase + k*period`` (k >= 0) in ``(a, b]``."""
    first = origin + phase
    if b < first:
        return []
    k0 = max(0, math.floor((a - first) / period) + 1) if a >= first else 0
    out: list[float] = []
    k = k0
    while True:
        t = first + k * period
        if t > b:
            return out
        if t > a:
            out.append(t)
        k += 1


def runs_before(origin: float, phase: float, period: float, t: float) -> int:
    """How many runs ``origin + phase + k*period`` (k >= 0) fall strictly before ``t``."""
    first = origin + phase
    if t <= first:
        return 0
    return math.ceil((t - first) / period)


_month = (0.0, -1.0, 0.0)  # (start, end, start): the last month looked up


def latest_month_start(t: float) -> float:
    """The UTC start of ``t``'s month (the last of :func:`month_starts` up to ``t``), for
    ``t >= 0``; the last month asked for is remembered (a fleet asks within one month)."""
    global _month
    lo, hi, start = _month
    if lo <= t < hi:
        return start
    import datetime as _dt

    d = _dt.datetime.fromtimestamp(t, _dt.UTC)
    first = _dt.datetime(d.year, d.month, 1, tzinfo=_dt.UTC)
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    end = _dt.datetime(year, month, 1, tzinfo=_dt.UTC).timestamp()
    _month = (first.timestamp(), end, first.timestamp())
    return first.timestamp()


def month_starts(a: float, b: float) -> Iterable[float]:
    """UTC month starts in ``(a, b]`` (automatic demand resets)."""
    import datetime as _dt

    d = _dt.datetime.fromtimestamp(max(a, 0.0), _dt.UTC)
    year, month = d.year, d.month
    while True:
        month += 1
        if month == 13:
            year, month = year + 1, 1
        t = _dt.datetime(year, month, 1, tzinfo=_dt.UTC).timestamp()
        if t > b:
            return
        if t > a:
            yield t
