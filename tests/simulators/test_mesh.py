"""The simulated RF mesh without a broker: plans, down-routing tables, relay failure and re-routing,
seeded hop loss (amidcc.simulators.mesh). The broker runs are in tests/integration/test_mqtt_mesh.py."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.task import Clock

from amidcc.codecs.c1222 import ApTitle
from amidcc.simulators import SimMeter, build_fleet
from amidcc.simulators.mesh import CellPlan, HopProfile, MeshSettings, RelayPlan, RfMesh, plan_cells


def fleet(n: int) -> list[SimMeter]:
    return build_fleet(n, 5, start_time=0.0)


def mesh(meters: list[SimMeter], clock: Any, **settings: Any) -> RfMesh:
    plans = plan_cells(meters, relays=3, chains=2)
    return RfMesh(clock, plans, url="mqtt://127.0.0.1:1", settings=MeshSettings(**settings), seed=3)


def test_plan_places_relays_in_chains_and_meters_round_robin() -> None:
    meters = fleet(7)
    (cell,) = plan_cells(meters, relays=3, chains=2)
    assert [(r.name, r.parent, r.alternates) for r in cell.relays] == [
        ("r1", "c1", ()), ("r2", "c1", ()), ("r3", "r1", ()),
    ]
    assert cell.relays[2].title == ApTitle(arcs=(2, 8, 1, 3), relative=True)
    assert [(p, a) for _m, p, a in cell.meters[:4]] == [("r1", ("r2",)), ("r2", ("r3",)), ("r3", ("r1",)), ("r1", ("r2",))]
    two = plan_cells(meters, cells=2, relays=0)
    assert [len(c.meters) for c in two] == [4, 3]
    assert all(p == c.collector for c in two for _m, p, _a in c.meters)


def test_down_routes_follow_the_tree_and_paths_reach_the_collector() -> None:
    meters = fleet(3)
    sim = mesh(meters, Clock())
    cell = sim.cells["cell1"]
    deep = meters[2]  # below r3, below r1
    title = deep.identity.ap_title_text
    assert cell.routes["c1"][title] == "r1" and cell.routes["r1"][title] == "r3"
    assert cell.routes["r3"][title] == deep.meter_id and title not in cell.routes["r2"]
    assert sim.path(deep.meter_id) == [deep.meter_id, "r3", "r1", "c1"]
    assert cell.alive(deep.meter_id)


def test_relay_failure_cuts_off_without_reroute() -> None:
    meters, clock = fleet(3), Clock()
    sim = mesh(meters, clock, reroute=False)
    sim.fail_relay("cell1", "r1")
    clock.advance(1)
    cell = sim.cells["cell1"]
    assert not cell.alive(meters[0].meter_id) and not cell.alive(meters[2].meter_id)
    assert cell.alive(meters[1].meter_id)
    assert cell.status(0.0)["meters"][meters[0].meter_id]["reachable"] is False
    sim.restore_relay("cell1", "r1")
    assert cell.alive(meters[0].meter_id)


def test_children_move_to_a_live_alternate_after_the_delay() -> None:
    meters, clock = fleet(3), Clock()
    sim = mesh(meters, clock, reroute=True, reroute_delay=2.0)
    sim.fail_relay("cell1", "r1")
    cell = sim.cells["cell1"]
    assert sim.path(meters[0].meter_id)[1] == "r1"  # not yet
    clock.advance(2.0)
    assert sim.path(meters[0].meter_id) == [meters[0].meter_id, "r2", "c1"]
    assert cell.nodes[meters[0].meter_id].alternates == ("r1",)  # the old parent becomes an alternate
    assert cell.routes["c1"][meters[0].identity.ap_title_text] == "r2"
    assert not cell.alive(meters[2].meter_id)  # r3 itself has no alternate


def test_unknown_parent_is_refused() -> None:
    plan = CellPlan(name="x", collector="c", collector_title=ApTitle(arcs=(2, 9, 9), relative=True),
                    relays=(RelayPlan(name="r", title=ApTitle(arcs=(2, 8, 9), relative=True), parent="nowhere"),))
    with pytest.raises(ValueError, match="nowhere"):
        RfMesh(Clock(), [plan], url="mqtt://127.0.0.1:1")


@pytest.mark.parametrize("seed_a, seed_b, same", [(3, 3, True), (3, 4, False)])
def test_hop_loss_is_seeded(seed_a: int, seed_b: int, same: bool) -> None:
    def run(seed: int) -> list[int]:
        plans = plan_cells(fleet(1), relays=1)
        sim = RfMesh(Clock(), plans, url="mqtt://127.0.0.1:1", settings=MeshSettings(hop=HopProfile(loss=0.5)), seed=seed)
        lost = []
        for _ in range(40):
            before = sim.stats().lost
            sim._hop("cell1", "r1", "up", b"\x60\x00")
            lost.append(sim.stats().lost - before)
        return lost

    a, b = run(seed_a), run(seed_b)
    assert 0 < sum(a) < 40
    assert (a == b) is same
