"""Scenario files (TOML) and command-line fault specs: what fleet to build and what goes wrong when.

The format is documented in ``docs/simulators.md``. In short::

    [fleet]
    meters = 1000
    seed = 7
    start = "2026-03-01T00:00:00Z"      # optional; the runner's clock otherwise

    [meter]                              # MeterConfig overrides (durations take units)
    selftest_period = "1d"
    metrology_period = "7d"

    [rates]                              # random faults (NFR2 defaults)
    install = 0.01
    per_year = 0.005
    time_scale = 1.0

    [[fault]]
    meter = "meter-0007"                 # a meter id, an index, or "random" (with count)
    kind = "metrology"
    at = "+10m"                          # after the start, or an absolute ISO time
    for = "2h"                           # optional: cleared after this long (or until = ...)

    [topology]                           # hints for the link simulators; parsed and checked here
    cells = 4

On the command line, ``KIND[=VALUE]@TARGET[+AT][~FOR]``: ``metrology@meter-0007+10m``,
``packet-loss=0.2@random+1h~30m``, ``relay-down@relay:cell-1/relay-3+5m``.

Every error is a :class:`ScenarioError` naming the dotted key at fault (``fault[2].kind: ...``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Access, MeterConfig, PortSharing, pad_password
from .faults import FaultKind, LinkFaultKind, parse_fault_kind

__all__ = [
    "FaultRates",
    "FleetSpec",
    "Scenario",
    "ScenarioError",
    "ScheduledFault",
    "TopologyHints",
    "load_scenario",
    "parse_duration",
    "parse_fault_arg",
    "parse_scenario",
]

YEAR = 365.25 * 86400.0


class ScenarioError(ValueError):
    """A scenario file or fault spec is wrong; the message starts with the dotted key."""


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|min|s|m|h|d|w)?")


def parse_duration(value: object, key: str = "duration") -> float:
    """Seconds from ``90``, ``"90"``, ``"15m"``, ``"1h30m"``, ``"2d"``, ``"500ms"``."""
    if isinstance(value, bool):
        raise ScenarioError(f"{key}: expected a duration, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ScenarioError(f"{key}: a duration cannot be negative ({value})")
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ScenarioError(f"{key}: expected a duration such as '15m', got {value!r}")
    text = value.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    while pos < len(text):
        m = _PART.match(text, pos)
        if m is None or m.end() == pos:
            raise ScenarioError(f"{key}: cannot read duration {value!r} (use e.g. 90s, 15m, 1h30m, 2d)")
        total += float(m.group(1)) * _UNITS[m.group(2) or "s"]
        pos = m.end()
    return total


@dataclass(frozen=True, kw_only=True, slots=True)
class When:
    """A scenario time: seconds after the fleet's start, or an absolute epoch time."""

    seconds: float
    """Offset after the start, or seconds since the Unix epoch when ``absolute``."""
    absolute: bool = False
    """True for an ISO time in the file."""

    def resolve(self, start: float) -> float:
        """Epoch seconds given the fleet's start time."""
        return self.seconds if self.absolute else start + self.seconds


def parse_when(value: object, key: str) -> When:
    """``"+10m"``, ``"10m"``, ``600`` (relative) or ``"2026-03-01T00:10:00Z"`` (absolute)."""
    if isinstance(value, _dt.datetime):
        return When(seconds=_aware(value).timestamp(), absolute=True)
    if isinstance(value, str) and "T" in value.upper() and "-" in value:
        try:
            return When(seconds=_aware(_dt.datetime.fromisoformat(value)).timestamp(), absolute=True)
        except ValueError:
            raise ScenarioError(f"{key}: not an ISO date-time: {value!r}") from None
    if isinstance(value, str) and value.startswith("+"):
        value = value[1:]
    return When(seconds=parse_duration(value, key))


def _aware(d: _dt.datetime) -> _dt.datetime:
    return d if d.tzinfo is not None else d.replace(tzinfo=_dt.UTC)


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduledFault:
    """One fault the scenario switches on (and maybe off) at a given time."""

    kind: FaultKind | LinkFaultKind
    """What fails."""
    target: str
    """``"meter"``, ``"relay"`` or ``"collector"``: what the selector names."""
    selector: str | int
    """A meter id, a meter index, ``"random"``, or a relay / collector id (link simulators')."""
    at: When
    """When it starts."""
    until: When | None = None
    """When it is cleared (None: never)."""
    value: float | None = None
    """Probability or seconds for packet-loss, garbage and latency."""
    count: int = 1
    """With ``selector="random"``: how many distinct meters."""


@dataclass(frozen=True, kw_only=True, slots=True)
class FaultRates:
    """Random faults (NFR2): a share failing at installation, then a yearly rate."""

    install: float = 0.01
    """Probability that a meter fails at installation (power-up)."""
    per_year: float = 0.005
    """Yearly failure probability after installation."""
    time_scale: float = 1.0
    """Rates are multiplied by this (an accelerated demo sees a year's failures in hours)."""
    kinds: tuple[FaultKind, ...] = (
        FaultKind.CHECKSUM,
        FaultKind.FIRMWARE,
        FaultKind.METROLOGY,
        FaultKind.PROGRAM,
        FaultKind.RAM,
        FaultKind.ROM,
        FaultKind.NVRAM,
        FaultKind.TIME_SYNC,
        FaultKind.HAN,
        FaultKind.DATA_INCONSISTENCY,
        FaultKind.LOW_BATTERY,
    )
    """Kinds a random failure is drawn from (uniformly)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class FleetSpec:
    """How the fleet's identities are spread."""

    meters: int = 100
    """Number of meters."""
    seed: int = 1
    """Same seed, same fleet, same run."""
    start: float | None = None
    """Start time (epoch seconds); None lets the runner use its clock."""
    manufacturers: tuple[str, ...] = ("AMDC", "ELST", "ITRN", "LGYR")
    """Manufacturer codes (ST1, 4 characters)."""
    lots: int = 4
    """Lots per manufacturer."""
    meter_types: tuple[str, ...] = ("residential-1ph", "residential-3ph", "commercial-ct")
    """Meter types."""
    modules: tuple[str, ...] = ("rf-mesh", "cellular", "plc")
    """Communication modules."""
    ap_title_base: tuple[int, ...] = (2, 7)
    """Relative AP title prefix; meter ``i`` gets ``base + (i + 1,)``."""
    id_format: str = "meter-{index:04d}"
    """Meter id (= serial) from the index."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TopologyHints:
    """Topology for the link simulators (mesh, collectors); validated here, used there."""

    cells: int = 1
    """RF cells (each rooted at a collector)."""
    relays_per_cell: int = 0
    """Relays in each cell."""
    max_hops: int = 3
    """Deepest relay chain below a collector."""
    alternate_parents: int = 0
    """Alternate parent relays per meter."""
    reroute: bool = True
    """Whether meters re-route to an alternate parent when theirs is down."""
    hop_loss: float = 0.0
    """Loss probability per RF hop."""
    hop_latency: float = 0.0
    """Seconds per RF hop."""
    tcp_collectors: int = 0
    """C12.22/TCP collectors carrying meters over one connection (0: each meter connects)."""
    modbus_collectors: int = 0
    """Modbus/TCP collectors."""
    meters_per_modbus_collector: int = 32
    """Unit ids per Modbus collector (1-247)."""


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A parsed scenario file."""

    fleet: FleetSpec = field(default_factory=FleetSpec)
    """Fleet size, seed, start and identity spread."""
    meter: MeterConfig = field(default_factory=MeterConfig)
    """Configuration every meter shares."""
    rates: FaultRates = field(default_factory=FaultRates)
    """Random fault rates."""
    faults: tuple[ScheduledFault, ...] = ()
    """Scheduled faults."""
    topology: TopologyHints = field(default_factory=TopologyHints)
    """Topology hints for the link simulators."""

    def with_faults(self, extra: list[ScheduledFault]) -> Scenario:
        """This scenario plus faults from the command line."""
        return dataclasses.replace(self, faults=(*self.faults, *extra))


# ---------------------------------------------------------------------- parsing helpers


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            choices = ", ".join(sorted(allowed))
            raise ScenarioError(f"{where}.{key}: unknown key (expected one of: {choices})")


def _int(value: object, key: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{key}: expected an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ScenarioError(f"{key}: must be between {lo} and {hi if hi is not None else 'inf'}, got {value}")
    return value


def _float(value: object, key: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{key}: expected a number, got {value!r}")
    if not lo <= value <= hi:
        raise ScenarioError(f"{key}: must be between {lo} and {hi}, got {value}")
    return float(value)


def _strs(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ScenarioError(f"{key}: expected a non-empty list of strings")
    return tuple(value)


def _kind(value: object, key: str) -> FaultKind | LinkFaultKind:
    if not isinstance(value, str):
        raise ScenarioError(f"{key}: expected a fault kind name, got {value!r}")
    try:
        return parse_fault_kind(value)
    except ValueError as e:
        raise ScenarioError(f"{key}: {e}") from None


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ScenarioError(f"{name}: expected a table")
    return value


def _parse_fleet(t: Mapping[str, Any]) -> FleetSpec:
    _check_keys(t, {f.name for f in dataclasses.fields(FleetSpec)}, "fleet")
    kw: dict[str, Any] = {}
    if "meters" in t:
        kw["meters"] = _int(t["meters"], "fleet.meters", 1, 1_000_000)
    if "seed" in t:
        kw["seed"] = _int(t["seed"], "fleet.seed", 0)
    if "start" in t:
        when = parse_when(t["start"], "fleet.start")
        if not when.absolute:
            raise ScenarioError("fleet.start: expected an ISO date-time such as 2026-03-01T00:00:00Z")
        kw["start"] = when.seconds
    if "manufacturers" in t:
        mfrs = _strs(t["manufacturers"], "fleet.manufacturers")
        if any(len(m) > 4 or not m.isascii() for m in mfrs):
            raise ScenarioError("fleet.manufacturers: each code is at most 4 ASCII characters")
        kw["manufacturers"] = mfrs
    if "lots" in t:
        kw["lots"] = _int(t["lots"], "fleet.lots", 1, 10_000)
    for name in ("meter_types", "modules"):
        if name in t:
            kw[name] = _strs(t[name], f"fleet.{name}")
    if "ap_title_base" in t:
        base = t["ap_title_base"]
        if not isinstance(base, str) or not re.fullmatch(r"\.?\d+(\.\d+)*", base):
            raise ScenarioError(f"fleet.ap_title_base: expected a dotted relative OID such as '.2.7', got {base!r}")
        kw["ap_title_base"] = tuple(int(p) for p in base.strip(".").split("."))
    if "id_format" in t:
        fmt = t["id_format"]
        try:
            sample = str(fmt).format(index=12345)
        except (KeyError, IndexError, ValueError):
            raise ScenarioError(f"fleet.id_format: must use only {{index}}, got {fmt!r}") from None
        if len(sample) > 16:
            raise ScenarioError("fleet.id_format: ids become serials, at most 16 characters")
        kw["id_format"] = str(fmt)
    return FleetSpec(**kw)


def _parse_meter(t: Mapping[str, Any]) -> MeterConfig:
    fields = {f.name: f for f in dataclasses.fields(MeterConfig)}
    _check_keys(t, set(fields), "meter")
    kw: dict[str, Any] = {}
    for key, value in t.items():
        dotted = f"meter.{key}"
        if key in ("selftest_period", "metrology_period"):
            kw[key] = parse_duration(value, dotted)
        elif key in ("log_days", "history_days"):
            kw[key] = _float(value, dotted, 0.0, 3650.0)
        elif key == "anonymous_tables":
            if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
                raise ScenarioError(f"{dotted}: expected a list of table numbers")
            kw[key] = frozenset(value)
        elif key == "push_kinds":
            kinds = [_kind(v, f"{dotted}[{i}]") for i, v in enumerate(_strs(value, dotted))]
            kw[key] = frozenset(k for k in kinds if isinstance(k, FaultKind))
        elif key == "passwords":
            kw[key] = _parse_passwords(value, dotted)
        elif key == "port_sharing":
            try:
                kw[key] = PortSharing(value)
            except ValueError:
                raise ScenarioError(f"{dotted}: one of {', '.join(PortSharing)}") from None
        elif key == "key_secret":
            if not isinstance(value, str):
                raise ScenarioError(f"{dotted}: expected a string")
            kw[key] = value.encode()
        elif key == "program_sizes":
            raise ScenarioError(f"{dotted}: not settable from a scenario file")
        else:
            kw[key] = _typed(value, fields[key].type, dotted)
    try:
        return MeterConfig(**kw)
    except ValueError as e:
        raise ScenarioError("; ".join(f"meter.{p}" for p in str(e).split("; "))) from None


def _typed(value: object, annotation: object, key: str) -> object:
    text = str(annotation)
    if text == "bool":
        if not isinstance(value, bool):
            raise ScenarioError(f"{key}: expected true or false")
        return value
    if text == "int":
        return _int(value, key, 0)
    if text == "float":
        return _float(value, key, -1e12, 1e12)
    raise ScenarioError(f"{key}: cannot be set from a scenario file")


def _parse_passwords(value: object, key: str) -> tuple[tuple[bytes, Access], ...]:
    if not isinstance(value, list) or not value:
        raise ScenarioError(f"{key}: expected a list of {{password, access, pad}} tables")
    out: list[tuple[bytes, Access]] = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(item, dict):
            raise ScenarioError(f"{where}: expected a table")
        _check_keys(item, {"password", "access", "pad"}, where)
        pw, access, pad = item.get("password"), item.get("access", "read"), item.get("pad", "space")
        if not isinstance(pw, str):
            raise ScenarioError(f"{where}.password: expected a string")
        if access not in ("read", "write"):
            raise ScenarioError(f"{where}.access: 'read' or 'write'")
        if pad not in ("nul", "space"):
            raise ScenarioError(f"{where}.pad: 'nul' or 'space'")
        try:
            raw = pad_password(pw, pad=b"\x00" if pad == "nul" else b" ")
        except ValueError as e:
            raise ScenarioError(f"{where}.password: {e}") from None
        out.append((raw, Access.READ if access == "read" else Access.WRITE))
    return tuple(out)


def _parse_rates(t: Mapping[str, Any]) -> FaultRates:
    _check_keys(t, {"install", "per_year", "time_scale", "kinds"}, "rates")
    kw: dict[str, Any] = {}
    for name in ("install", "per_year"):
        if name in t:
            kw[name] = _float(t[name], f"rates.{name}", 0.0, 1.0)
    if "time_scale" in t:
        kw["time_scale"] = _float(t["time_scale"], "rates.time_scale", 0.0, 1e9)
    if "kinds" in t:
        kinds = []
        for i, v in enumerate(_strs(t["kinds"], "rates.kinds")):
            k = _kind(v, f"rates.kinds[{i}]")
            if not isinstance(k, FaultKind):
                raise ScenarioError(f"rates.kinds[{i}]: {v!r} is a link fault; random faults are meter faults")
            kinds.append(k)
        kw["kinds"] = tuple(kinds)
    return FaultRates(**kw)


def _parse_topology(t: Mapping[str, Any]) -> TopologyHints:
    _check_keys(t, {f.name for f in dataclasses.fields(TopologyHints)}, "topology")
    kw: dict[str, Any] = {}
    for name, lo, hi in (
        ("cells", 1, 10_000),
        ("relays_per_cell", 0, 100_000),
        ("max_hops", 1, 64),
        ("alternate_parents", 0, 16),
        ("tcp_collectors", 0, 100_000),
        ("modbus_collectors", 0, 100_000),
        ("meters_per_modbus_collector", 1, 247),
    ):
        if name in t:
            kw[name] = _int(t[name], f"topology.{name}", lo, hi)
    if "reroute" in t:
        if not isinstance(t["reroute"], bool):
            raise ScenarioError("topology.reroute: expected true or false")
        kw["reroute"] = t["reroute"]
    if "hop_loss" in t:
        kw["hop_loss"] = _float(t["hop_loss"], "topology.hop_loss", 0.0, 1.0)
    if "hop_latency" in t:
        kw["hop_latency"] = parse_duration(t["hop_latency"], "topology.hop_latency")
    return TopologyHints(**kw)


_FAULT_KEYS = {"meter", "relay", "collector", "kind", "at", "until", "for", "value", "count"}


def _parse_fault(t: object, where: str) -> ScheduledFault:
    if not isinstance(t, dict):
        raise ScenarioError(f"{where}: expected a table")
    _check_keys(t, _FAULT_KEYS, where)
    if "kind" not in t:
        raise ScenarioError(f"{where}.kind: missing")
    kind = _kind(t["kind"], f"{where}.kind")
    targets = [k for k in ("meter", "relay", "collector") if k in t]
    if len(targets) != 1:
        raise ScenarioError(f"{where}: name exactly one of meter, relay or collector")
    target = targets[0]
    selector = t[target]
    if target == "meter":
        if isinstance(selector, bool) or not isinstance(selector, str | int):
            raise ScenarioError(f"{where}.meter: a meter id, an index or 'random'")
        if isinstance(selector, int) and selector < 0:
            raise ScenarioError(f"{where}.meter: an index cannot be negative")
    elif not isinstance(selector, str) or not selector:
        raise ScenarioError(f"{where}.{target}: expected an id string")
    elif not isinstance(kind, LinkFaultKind):
        raise ScenarioError(f"{where}.kind: a {target} takes link faults, not {kind.value!r}")
    at = parse_when(t.get("at", 0), f"{where}.at")
    until = None
    if "until" in t and "for" in t:
        raise ScenarioError(f"{where}: give 'until' or 'for', not both")
    if "until" in t:
        until = parse_when(t["until"], f"{where}.until")
    elif "for" in t:
        dur = parse_duration(t["for"], f"{where}.for")
        until = When(seconds=at.seconds + dur, absolute=at.absolute)
    value = None
    if "value" in t:
        value = _float(t["value"], f"{where}.value", 0.0, 1e6)
        if kind in (LinkFaultKind.PACKET_LOSS, LinkFaultKind.GARBAGE) and value > 1.0:
            raise ScenarioError(f"{where}.value: a probability between 0 and 1")
    count = 1
    if "count" in t:
        if selector != "random":
            raise ScenarioError(f"{where}.count: only with meter = 'random'")
        count = _int(t["count"], f"{where}.count", 1)
    return ScheduledFault(kind=kind, target=target, selector=selector, at=at, until=until, value=value, count=count)


def parse_scenario(data: Mapping[str, Any]) -> Scenario:
    """A :class:`Scenario` from parsed TOML (a dict)."""
    _check_keys(data, {"fleet", "meter", "rates", "fault", "topology"}, "scenario")
    faults_raw = data.get("fault", [])
    if not isinstance(faults_raw, list):
        raise ScenarioError("fault: use [[fault]] (an array of tables)")
    return Scenario(
        fleet=_parse_fleet(_table(data, "fleet")),
        meter=_parse_meter(_table(data, "meter")),
        rates=_parse_rates(_table(data, "rates")),
        faults=tuple(_parse_fault(f, f"fault[{i}]") for i, f in enumerate(faults_raw)),
        topology=_parse_topology(_table(data, "topology")),
    )


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{p}: not valid TOML: {e}") from None
    except OSError as e:
        raise ScenarioError(f"{p}: {e.strerror or e}") from None
    return parse_scenario(data)


_ARG = re.compile(
    r"^(?P<kind>[A-Za-z_-]+)(?:=(?P<value>[0-9.]+))?@(?P<target>[^+~]+)"
    r"(?:\+(?P<at>[^~]+))?(?:~(?P<dur>.+))?$"
)


def parse_fault_arg(text: str) -> ScheduledFault:
    """``KIND[=VALUE]@TARGET[+AT][~FOR]``; TARGET is a meter id, an index, ``random``,
    ``relay:ID`` or ``collector:ID``. Example: ``metrology@meter-0007+10m``."""
    m = _ARG.match(text.strip())
    where = f"--fault {text!r}"
    if m is None:
        raise ScenarioError(f"{where}: expected KIND[=VALUE]@TARGET[+AT][~FOR], e.g. metrology@meter-0007+10m")
    raw: dict[str, Any] = {"kind": m.group("kind"), "at": m.group("at") or 0}
    target = m.group("target")
    if target.startswith(("relay:", "collector:")):
        name, _, ident = target.partition(":")
        raw[name] = ident
    else:
        raw["meter"] = int(target) if target.isdigit() else target
    if m.group("value") is not None:
        try:
            raw["value"] = float(m.group("value"))
        except ValueError:
            raise ScenarioError(f"{where}: bad value {m.group('value')!r}") from None
    if m.group("dur"):
        raw["for"] = m.group("dur")
    return _parse_fault(raw, where)
