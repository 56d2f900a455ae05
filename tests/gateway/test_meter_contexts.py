"""MeterClient keeps one table context per distinct content, shared by the meters that have it
(a 10,000-meter fleet must not hold 10,000 decoded copies of the same ST0 and ST21)."""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from amidcc.codecs.psem import Security, encode_request
from amidcc.gateway.links.base import LinkKind, MeterAddress
from amidcc.gateway.meters import MeterClient
from amidcc.simulators import build_fleet, pad_password
from amidcc.simulators.psem_server import handle_services

T0 = 1_700_000_000.0
MASTER = encode_request(Security(password=pad_password("master"), user_id=1))


class MemoryLink:
    """Services handed to simulated meters in memory, behind the master password."""

    kind = LinkKind.C1222_TCP

    def __init__(self, meters: dict[str, object], clock: Clock) -> None:
        self.meters = meters
        self.clock = clock

    def request(self, address: MeterAddress, services: Sequence[bytes], *, timeout: float) -> Deferred[list[bytes]]:
        meter = self.meters[address.meter_id]
        return succeed(handle_services(meter, [MASTER, *services], self.clock.seconds())[1:])  # type: ignore[arg-type]

    def is_reachable(self, address: MeterAddress) -> bool:
        return address.meter_id in self.meters


def test_meters_with_the_same_dimension_tables_share_one_context() -> None:
    clock = Clock()
    clock.advance(T0)
    meters = build_fleet(20, 7, start_time=T0 - 86400)
    link = MemoryLink({m.meter_id: m for m in meters}, clock)
    client = MeterClient(
        [link],
        resolve=lambda meter_id: MeterAddress(meter_id=meter_id, ap_title=".2.7.1", link=LinkKind.C1222_TCP),
        clock=clock,
    )
    for m in meters:
        read = client.read_table(m.meter_id, 23)
        assert read.called and read.result.value is not None  # type: ignore[attr-defined]
    contexts = [client.table_context(m.meter_id) for m in meters]
    assert all(c is not None and c.st0 is not None and c.st21 is not None for c in contexts)
    distinct = set(contexts)
    assert len(distinct) < len(meters)  # the fleet has a few configurations, not one per meter
    assert len({id(c) for c in contexts}) == len(distinct)  # and one object for each
    client.forget(meters[0].meter_id)
    assert client.table_context(meters[0].meter_id) is None
    assert client.table_context(meters[1].meter_id) is contexts[1]
