"""How the demo's and ``amidcc simulate fleet``'s plan splits a fleet over the links (pure)."""

from __future__ import annotations

import argparse

import pytest
from twisted.internet.task import Clock

from amidcc.demo.fleet import FleetPlan, FleetRunner, MeshShape, split
from amidcc.simulators import Scenario
from amidcc.simulators.c1222_tcp import plan_nodes


@pytest.mark.parametrize("n", [1, 2, 7, 40, 60, 1000, 10_000])
@pytest.mark.parametrize("mesh", [False, True])
def test_split_accounts_for_every_meter(n: int, mesh: bool) -> None:
    s = split(n, modbus_collectors=max(1, n // 250), udp=True, per_collector=50, mesh=mesh)
    assert s.modbus + s.udp + s.mesh + s.behind + s.direct == n
    assert min(s.modbus, s.udp, s.mesh, s.behind, s.direct) >= 0
    assert (s.mesh > 0) == (mesh and n > s.modbus + s.udp)


def test_the_demo_split_of_1000_meters() -> None:
    s = split(1000, modbus_collectors=4, udp=True, per_collector=50, mesh=True)
    assert (s.modbus, s.udp, s.mesh, s.behind + s.direct) == (100, 50, 200, 650)


def test_plan_puts_the_mesh_between_udp_and_tcp() -> None:
    plan = FleetPlan.build(
        Scenario(), start=1_700_000_000.0, meters=100, seed=3, udp=True, modbus_collectors=1,
        mesh=MeshShape(url="mqtt://127.0.0.1:1883", cells=2, relays=3),
    )  # fmt: skip
    assert (len(plan.modbus), len(plan.udp), len(plan.mesh), len(plan.tcp)) == (10, 5, 20, 65)
    ordered = [*plan.modbus, *plan.udp, *plan.mesh, *plan.tcp]
    assert [m.meter_id for m in ordered] == [m.meter_id for m in plan.model.meters]
    cells = FleetRunner(Clock(), plan).mesh_cells()
    assert len(cells) == 2 and sum(len(c.meters) for c in cells) == 20
    assert all(len(c.relays) == 3 for c in cells)
    # one registry sees every collector: the mesh's are titled apart from C12.22/TCP's
    mesh_titles = {str(c.collector_title) for c in cells} | {
        str(r.title) for c in cells for r in c.relays
    }
    tcp = plan_nodes(plan.tcp, collectors=2, per_collector=20)
    tcp_titles = {str(n.collector) for n in tcp if n.collector is not None}
    assert len(tcp_titles) == 2 and not mesh_titles & tcp_titles
    assert all(t.startswith(".2.10.") for t in {str(c.collector_title) for c in cells})


def test_plan_without_a_broker_has_no_mesh_share() -> None:
    plan = FleetPlan.build(Scenario(), start=0.0, meters=50, modbus_collectors=1)
    assert plan.mesh == () and plan.mesh_shape is None and len(plan.tcp) == 45


def args(**overrides: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "meters": 30, "seed": 1, "password": None, "udp": None, "modbus_collectors": 0,
        "modbus_port": 0, "per_collector": 10, "mqtt": "mqtt://127.0.0.1:1", "cells": None,
        "relays": 4, "topic_prefix": "amidcc",
    }  # fmt: skip
    values.update(overrides)
    return argparse.Namespace(**values)


def test_from_args_takes_the_mesh_options() -> None:
    plan = FleetPlan.from_args(args(cells=3, relays=2, topic_prefix="utility"), Scenario(), [],
                               start=0.0)  # fmt: skip
    assert len(plan.mesh) == 6 and plan.mesh_shape == MeshShape(
        url="mqtt://127.0.0.1:1", cells=3, relays=2, prefix="utility"
    )
    with pytest.raises(ValueError, match="--cells"):
        FleetPlan.from_args(args(cells=0), Scenario(), [], start=0.0)
