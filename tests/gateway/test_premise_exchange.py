"""Scenario S1 steps 9 and 9.1 end to end, in memory: simulated meters register over C12.22
(twisted.test.iosim, one task.Clock), the scheduler reads their ST6 through the MeterClient, and a
meter exchanged in the field is seen from its ST6: the old meter is REMOVED, replaced by the new
one, whose clock is set (SP10) and which is programmed (ST5, ST6, ST53, ST54)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.test import iosim

from amidcc.codecs.ber import DEFAULT_BASE_OID
from amidcc.codecs.c1219 import ST6, UtilityInfo, id_text
from amidcc.codecs.c1219.events import StdEvent
from amidcc.codecs.c1222 import ApTitle
from amidcc.codecs.psem import pad_password as psem_pad
from amidcc.gateway.config import RequestsSection, ScheduleSection
from amidcc.gateway.links.c1222 import C1222Link, C1222Settings
from amidcc.gateway.links.c1222_transport import C1222Factory
from amidcc.gateway.meters import MeterClient
from amidcc.gateway.registry import MeterRegistry, MeterState
from amidcc.gateway.scheduler import PROGRAMMER_NAME, Scheduler, installed_at
from amidcc.simulators import (
    Access,
    FleetModel,
    MeterConfig,
    SimMeter,
    build_fleet,
    pad_password,
)
from amidcc.simulators.c1222_tcp import C1222Node, SimC1222Protocol
from amidcc.simulators.scenario import FaultRates
from amidcc.simulators.tables import FACTORY_PROGRAMMER, table_bytes, utility_info

T0 = 1_700_000_000.0
PASSWORD = "master"
METER_CONFIG = MeterConfig(passwords=((pad_password(PASSWORD, pad=b" "), Access.WRITE),))


class Head:
    """The head-end's C12.22 link, registry, MeterClient and Scheduler on one task.Clock."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.registry = MeterRegistry(tmp_path / "gw.db", synchronous="OFF")
        self.link = C1222Link(
            C1222Settings(ap_title=ApTitle.parse(".2.1"), base_oid=DEFAULT_BASE_OID,
                          password=psem_pad(PASSWORD, fill=b" ")),
            clock=self.clock,
            registry=self.registry,
            on_register=lambda event: self.scheduler.on_register(event),
        )  # fmt: skip
        self.client = MeterClient(
            [self.link], resolve=self.registry, clock=self.clock,
            requests=RequestsSection(timeout=5.0, retries=1, backoff_base=1.0, backoff_max=2.0),
        )  # fmt: skip
        self.scheduler = Scheduler(
            client=self.client, registry=self.registry, clock=self.clock,
            schedule=ScheduleSection(self_test_on_register=False),
        )  # fmt: skip
        self.pumps: list[iosim.IOPump] = []

    def attach(self, meter: SimMeter) -> C1222Node:
        node = C1222Node([meter])
        _, _, pump = iosim.connectedServerAndClient(
            lambda: C1222Factory(self.link).buildProtocol(None),  # type: ignore[arg-type]
            lambda: SimC1222Protocol(node, self.clock.seconds, self.clock.callLater),
            clock=self.clock,
        )
        self.pumps.append(pump)
        return node

    def settle(self, limit: float = 60.0) -> None:
        """Pump the connections until the scheduler's registration work is done."""
        waited = 0.0
        while waited < limit:
            for pump in self.pumps:
                pump.flush()
            if self.scheduler.outstanding == 0 and waited > 0:
                return
            self.clock.advance(0.1)
            waited += 0.1
        raise AssertionError(f"{self.scheduler.outstanding} operations still outstanding")

    def wait(self, d: Deferred[Any]) -> Any:
        box: list[object] = []
        d.addBoth(box.append)
        for _ in range(600):
            if box:
                break
            for pump in self.pumps:
                pump.flush()
            self.clock.advance(0.1)
        assert box, "the Deferred never fired"
        if isinstance(box[0], Failure):
            box[0].raiseException()
        return box[0]


def fleet() -> FleetModel:
    meters = build_fleet(2, 7, start_time=T0 - 3600, config=METER_CONFIG)
    # the second meter was never programmed for a premise: blank ST6
    meters[1] = SimMeter(replace(meters[1].identity, premise="", account=""), config=METER_CONFIG,
                         start_time=T0 - 3600)  # fmt: skip
    return FleetModel(meters, start_time=T0 - 3600, rates=FaultRates(kinds=()))


def test_simulated_st6_comes_from_the_identity() -> None:
    (meter,) = build_fleet(1, 7, start_time=T0, config=METER_CONFIG)
    info = utility_info(meter)
    i = meter.identity
    assert installed_at(info) == (i.premise, i.account)
    assert (id_text(info.device_id), id_text(info.util_ser_nbr)) == (i.ident, i.serial)
    assert info.programmer_name == FACTORY_PROGRAMMER
    raw = table_bytes(meter, 6, T0)
    assert raw is not None and installed_at(ST6.parse(raw)) == (i.premise, i.account)


def test_an_exchange_is_seen_from_st6_and_the_new_meter_is_programmed(tmp_path: Path) -> None:
    head, model = Head(tmp_path), fleet()
    old, blank = model.meters
    premise, account = old.identity.premise, old.identity.account
    for meter in model.meters:
        head.attach(meter)
    head.settle()
    # step 9 for a first install: the premise and account come from ST6 alone
    rec = head.registry.get(old.meter_id)
    assert rec is not None and (rec.premise, rec.account) == (premise, account)
    rec = head.registry.get(blank.meter_id)
    assert rec is not None and (rec.premise, rec.account) == (None, None)  # plain registration
    assert head.scheduler.counts.located == 1 and head.scheduler.counts.exchanges == 0
    assert old.programs is None and blank.programs is None  # nobody programmed yet

    # the field exchange: a new meter, same premise and account, new serial and AP title
    head.clock.advance(3600)
    new = model.exchange(old.meter_id, head.clock.seconds())
    head.attach(new)
    head.settle()

    gone, now_there = head.registry.get(old.meter_id), head.registry.get(new.meter_id)
    assert gone is not None and gone.state is MeterState.REMOVED
    assert gone.replaced_by == new.meter_id
    assert now_there is not None and now_there.state is not MeterState.REMOVED
    assert (now_there.premise, now_there.account) == (premise, account)
    assert [m.meter_id for m in head.registry.at_premise(premise)] == [new.meter_id]
    counts = head.scheduler.counts
    assert counts.exchanges == 1 and counts.time_syncs == 1 and counts.programs_written == 4
    assert counts.failures == 0
    # on the meter: SP10 ran, then the four programs were written
    assert new.programs is not None and sorted(new.programs) == [5, 6, 53, 54]
    codes = [(r.code, r.argument) for r in new.event_records(head.clock.seconds())]
    assert any(c == int(StdEvent.PROCEDURE_INVOKED) and a & 0x07FF == 10 for c, a in codes)  # SP10
    assert sum(1 for c, _ in codes if c == int(StdEvent.TABLE_WRITTEN)) == 4
    read = head.wait(head.client.read_table(new.meter_id, 6))
    info = read.value
    assert isinstance(info, UtilityInfo) and installed_at(info) == (premise, account)
    assert id_text(info.programmer_name) == PROGRAMMER_NAME
    assert old.meter_id not in head.scheduler.agenda and new.meter_id in head.scheduler.agenda
