"""Fleets: identity spread, scheduled and random faults, reproducibility, memory per meter."""

from __future__ import annotations

import gc
import tracemalloc
from collections import Counter

import pytest

from amidcc.simulators import (
    FaultKind,
    FleetModel,
    LinkFaultKind,
    MeterConfig,
    build_fleet,
    parse_fault_arg,
    parse_scenario,
)
from amidcc.simulators.config import DAY
from amidcc.simulators.scenario import FaultRates, ScenarioError

T0 = 1_767_225_600.0


def test_identities_spread_and_deterministic() -> None:
    a = build_fleet(400, 5, start_time=T0)
    b = build_fleet(400, 5, start_time=T0)
    assert [m.identity for m in a] == [m.identity for m in b]
    c = build_fleet(400, 6, start_time=T0)
    assert [m.identity.seed for m in a] != [m.identity.seed for m in c]
    ids = [m.identity for m in a]
    assert len({i.serial for i in ids}) == 400 and len({i.ap_title for i in ids}) == 400
    assert len({i.account for i in ids}) == 400 and len({i.premise for i in ids}) == 400
    for attr, at_least in (("manufacturer", 4), ("lot", 12), ("meter_type", 3), ("comm_module", 3)):
        counts = Counter(getattr(i, attr) for i in ids)
        assert len(counts) >= at_least, attr
        assert min(counts.values()) >= 400 // (len(counts) * 4), attr
    assert ids[7].serial == "meter-0007" and ids[7].ap_title == (2, 7, 8)


def test_random_faults_follow_nfr2_rates_and_reproduce() -> None:
    def run() -> list[tuple[float, str, str]]:
        fleet = FleetModel(build_fleet(3000, 11, start_time=T0), start_time=T0, seed=11)
        done = fleet.advance(T0 + 365.25 * DAY)
        return [(a.time, a.ident, a.kind.value) for a in done]

    first = run()
    assert first == run()
    at_install = [x for x in first if x[0] == T0]
    later = [x for x in first if x[0] > T0]
    assert 10 <= len(at_install) <= 55  # 1 % of 3000 = 30
    assert 3 <= len(later) <= 35  # 0.5 % a year = 15


def test_time_scale_accelerates_random_faults() -> None:
    fleet = FleetModel(build_fleet(1000, 3, start_time=T0), start_time=T0, seed=3, rates=FaultRates(install=0.0, per_year=0.005, time_scale=365.0))
    done = fleet.advance(T0 + DAY)
    assert 1 <= len(done) <= 15  # a year's 0.5 % (5 meters) within one simulated day


def test_install_faults_are_detected_at_power_up() -> None:
    fleet = FleetModel(build_fleet(500, 21, start_time=T0), start_time=T0, seed=21, rates=FaultRates(install=0.05, per_year=0.0, kinds=(FaultKind.RAM,)))
    alarms = fleet.tick(T0)
    faulty = [m for m in fleet.meters if m.faults]
    assert faulty and {a.meter_id for a in alarms} == {m.meter_id for m in faulty}
    assert all(a.time == T0 and a.kind is FaultKind.RAM for a in alarms)


def test_scheduled_faults_from_a_scenario() -> None:
    scenario = parse_scenario(
        {
            "fleet": {"meters": 20, "seed": 4},
            "rates": {"install": 0.0, "per_year": 0.0},
            "fault": [
                {"meter": "meter-0003", "kind": "tamper", "at": "+10m", "for": "1h"},
                {"meter": "random", "count": 2, "kind": "latency", "value": 3.0, "at": "5m"},
                {"relay": "cell-0/relay-1", "kind": "relay-down", "at": "+1h"},
            ],
        }
    )
    extra = [parse_fault_arg("metrology@meter-0005+2h")]
    fleet = FleetModel.from_scenario(scenario, start_time=T0, extra_faults=extra)
    assert fleet.tick(T0 + 60) == []
    alarms = fleet.tick(T0 + 700)
    assert [(a.meter_id, a.kind) for a in alarms] == [("meter-0003", FaultKind.TAMPER)]
    slow = [m for m in fleet.meters if m.link_faults.latency == 3.0]
    assert len(slow) == 2
    actions = fleet.advance(T0 + 2 * 3600 + 1)
    kinds = [(a.kind, a.target, a.clear) for a in actions]
    assert (FaultKind.TAMPER, "meter", True) in kinds
    assert (LinkFaultKind.RELAY_DOWN, "relay", False) in kinds
    assert fleet.by_id["meter-0005"].fault_active(FaultKind.METROLOGY, T0 + 2 * 3600 + 1)
    assert not fleet.by_id["meter-0003"].fault_active(FaultKind.TAMPER, T0 + 2 * 3600 + 1)
    with pytest.raises(ScenarioError, match=r"fault\[0\]\.meter"):
        FleetModel.from_scenario(parse_scenario({"fault": [{"meter": "meter-9999", "kind": "ram"}]}), start_time=T0)


def test_exchange_installs_a_new_meter() -> None:
    fleet = FleetModel(build_fleet(10, 2, start_time=T0), start_time=T0, seed=2)
    old = fleet.by_id["meter-0004"]
    new = fleet.exchange("meter-0004", T0 + DAY)
    assert new.identity.premise == old.identity.premise and new.identity.account == old.identity.account
    assert new.meter_id != old.meter_id and new.meter_id in fleet.by_id and "meter-0004" not in fleet.by_id
    assert new.epoch == int(T0 + DAY) and len(fleet) == 10


def test_ten_thousand_meters_fit_in_20_kb_each() -> None:
    cfg = MeterConfig()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fleet = build_fleet(10_000, 1, start_time=T0, config=cfg)
        for m in fleet[::50]:  # some meters in use: sessions, a fault, stored events
            m.handle_services([b"\x20"], T0 + 10)
            m.inject(FaultKind.TAMPER, T0 + 20)
            m.tick(T0 + 30)
        used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    per_meter = used / len(fleet)
    print(f"\n{per_meter:.0f} bytes per meter")
    assert per_meter < 20_000
