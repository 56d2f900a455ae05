"""The C12.22 link's route table keeps the reachable count that the meters gauge reports."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.gateway.links.base import LinkKind, MeterAddress
from amidcc.gateway.links.c1222 import Routes

TITLES = [f".2.7.{i}" for i in range(6)]

# (operation, title index, channel): set a route, delete a route, or make the title a meter
OPS = st.lists(
    st.tuples(st.sampled_from(["route", "unroute", "meter"]), st.integers(0, 5), st.integers(0, 2)),
    max_size=60,
)


def address(title: str) -> MeterAddress:
    return MeterAddress(meter_id=f"M{title}", ap_title=title, link=LinkKind.C1222_TCP)


@settings(max_examples=200, deadline=None)
@given(OPS)
def test_the_count_is_the_routed_meters(ops: list[tuple[str, int, int]]) -> None:
    meters: dict[str, MeterAddress] = {}
    routes = Routes(meters)
    for op, i, channel in ops:
        title = TITLES[i]
        if op == "route":
            routes[title] = channel  # type: ignore[assignment]
        elif op == "unroute" and title in routes:
            del routes[title]
        elif op == "meter" and title not in meters:
            routes.metered(title)
            meters[title] = address(title)
        assert routes.reachable == sum(1 for t in routes if t in meters)


def test_relays_are_routes_but_not_reachable_meters() -> None:
    meters: dict[str, MeterAddress] = {}
    routes = Routes(meters)
    routes[".2.9.1"] = object()  # type: ignore[assignment]  # a collector: routed, not a meter
    routes.metered(".2.7.1")
    meters[".2.7.1"] = address(".2.7.1")
    routes[".2.7.1"] = object()  # type: ignore[assignment]
    routes[".2.7.1"] = object()  # type: ignore[assignment]  # re-routed to another channel: still one
    assert routes.reachable == 1 and len(routes) == 2
    del routes[".2.7.1"]
    assert routes.reachable == 0
