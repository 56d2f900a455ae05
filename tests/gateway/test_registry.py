"""amidcc.gateway.registry on real SQLite files: registration, premise exchange, states, scale."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from amidcc.gateway.eventlog import EventContext, EventLog
from amidcc.gateway.links.base import LinkKind, MeterAddress
from amidcc.gateway.registry import (
    ApTitleInUse,
    MeterRecord,
    MeterRegistry,
    MeterState,
    UnknownMeter,
    address_of,
)

T0 = 1_700_000_000.0


def meter(meter_id: str = "M1", **changes: object) -> MeterRecord:
    fields: dict[str, object] = dict(
        meter_id=meter_id,
        ap_title=f".2.7.{meter_id}",
        link=LinkKind.C1222_TCP,
        account="A1",
        premise="P1",
        meter_type="FORM2S",
        module="rf-1",
        manufacturer="AMDC",
        model="SIM2S",
        lot="L1",
        serial=f"SN-{meter_id}",
        firmware="1.4",
    )
    fields.update(changes)
    return MeterRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "amidcc.db"


@pytest.fixture
def reg(path: Path) -> Iterator[MeterRegistry]:
    registry = MeterRegistry(path)
    yield registry
    registry.close()


def test_first_registration(reg: MeterRegistry) -> None:
    result = reg.register(meter(state=MeterState.REMOVED, installed=5.0), now=T0)
    assert result.new_install and result.replaced is None
    rec = result.record
    # the registry owns state and times, whatever the caller passed
    assert (rec.state, rec.installed, rec.last_seen, rec.state_since) == (
        MeterState.REGISTERED,
        T0,
        T0,
        T0,
    )
    assert reg.get("M1") == rec and reg.by_ap_title(".2.7.M1") == rec
    assert "M1" in reg and len(reg) == 1 and list(reg) == [rec]


def test_re_registration_updates_but_keeps_the_install_time(reg: MeterRegistry) -> None:
    reg.register(meter(), now=T0)
    reg.mark_seen("M1", now=T0 + 10)
    again = reg.register(meter(firmware="1.5", link=LinkKind.MQTT), now=T0 + 100)
    assert not again.new_install and again.replaced is None
    assert again.record.installed == T0 and again.record.firmware == "1.5"
    assert again.record.state is MeterState.REGISTERED
    assert reg.counts_by_link()[LinkKind.MQTT] == 1
    assert reg.counts_by_link()[LinkKind.C1222_TCP] == 0


def test_premise_exchange_scenario_1_step_9(reg: MeterRegistry) -> None:
    reg.register(meter("OLD"), now=T0)
    result = reg.register(meter("NEW", serial="SN-NEW"), now=T0 + 3600)
    assert result.replaced == "OLD" and result.new_install
    old = reg.get("OLD")
    assert old is not None
    assert (old.state, old.replaced_by, old.state_since) == (MeterState.REMOVED, "NEW", T0 + 3600)
    assert [r.meter_id for r in reg.at_premise("P1")] == ["NEW"]
    assert [r.meter_id for r in reg.for_account("A1")] == ["NEW"]
    assert reg.by_ap_title(".2.7.OLD") is None  # a removed meter holds no address
    assert reg.counts_by_state()[MeterState.REMOVED] == 1
    assert reg.counts_by_state()[MeterState.REGISTERED] == 1
    # the exchange is not re-reported when the new meter registers again
    assert reg.register(meter("NEW"), now=T0 + 7200).replaced is None


def test_exchange_by_premise_and_type(path: Path) -> None:
    reg = MeterRegistry(path, exchange_match="premise_and_type")
    reg.register(meter("E1", meter_type="FORM2S"), now=T0)
    assert reg.register(meter("E2", meter_type="FORM12S"), now=T0 + 1).replaced is None
    assert reg.register(meter("E3", meter_type="FORM2S"), now=T0 + 2).replaced == "E1"
    assert [r.meter_id for r in reg.at_premise("P1")] == ["E2", "E3"]
    reg.close()


def test_meter_moved_to_another_premise_is_a_new_install(reg: MeterRegistry) -> None:
    reg.register(meter("M1"), now=T0)
    moved = reg.register(meter("M1", premise="P9", account="A9"), now=T0 + 50)
    assert moved.new_install and moved.record.installed == T0 + 50
    assert reg.at_premise("P1") == [] and reg.for_account("A1") == []
    assert [r.meter_id for r in reg.for_account("A9")] == ["M1"]


def test_ap_titles_stay_unique(reg: MeterRegistry) -> None:
    reg.register(meter("M1"), now=T0)
    with pytest.raises(ApTitleInUse):
        reg.register(meter("M2", ap_title=".2.7.M1", premise="P2"), now=T0 + 1)
    assert reg.get("M2") is None and len(reg) == 1
    # once the holder is removed, the title may be given to another meter
    reg.remove("M1", now=T0 + 2)
    reg.register(meter("M2", ap_title=".2.7.M1", premise="P2"), now=T0 + 3)
    found = reg.by_ap_title(".2.7.M1")
    assert found is not None and found.meter_id == "M2"


def test_register_many_is_all_or_nothing(path: Path) -> None:
    reg = MeterRegistry(path)
    reg.register(meter("M1"), now=T0)
    batch = [meter("M2", premise="P2"), meter("M3", premise="P3", ap_title=".2.7.M1")]
    with pytest.raises(ApTitleInUse):
        reg.register_many(batch, now=T0 + 1)
    assert reg.get("M2") is None and len(reg) == 1  # memory matches the rolled-back database
    reg.close()
    assert len(MeterRegistry(path)) == 1


def test_states_follow_the_table(reg: MeterRegistry) -> None:
    reg.register(meter(), now=T0)
    assert reg.mark_seen("M1", now=T0 + 1).state is MeterState.REACHABLE
    down = reg.mark_unreachable("M1", now=T0 + 2)
    assert (down.state, down.state_since, down.last_seen) == (
        MeterState.UNREACHABLE,
        T0 + 2,
        T0 + 1,
    )
    assert reg.mark_unreachable("M1", now=T0 + 3).state_since == T0 + 2  # no change, no new time
    assert reg.mark_seen("M1", now=T0 + 4).state is MeterState.REACHABLE
    gone = reg.remove("M1", now=T0 + 5)
    assert gone.state is MeterState.REMOVED
    # a removed meter that speaks again stays removed until it registers
    assert reg.mark_seen("M1", now=T0 + 6).state is MeterState.REMOVED
    assert reg.mark_unreachable("M1", now=T0 + 7).state is MeterState.REMOVED
    assert reg.register(meter(), now=T0 + 8).new_install  # re-installed after the shop
    for op in (reg.mark_seen, reg.mark_unreachable, reg.remove):
        with pytest.raises(UnknownMeter):
            op("nobody", now=T0)
    with pytest.raises(UnknownMeter):
        reg.set_route("nobody", ("C1",))


def test_everything_survives_reopening(path: Path) -> None:
    reg = MeterRegistry(path)
    reg.register(meter("M1", link=LinkKind.MODBUS, unit_id=7), now=T0)
    reg.register(meter("M2", premise="P2", account="A2"), now=T0)
    reg.set_route("M1", ("collector-3", "relay-9"), link=LinkKind.MODBUS)
    reg.mark_unreachable("M2", now=T0 + 5)
    reg.register(meter("M3"), now=T0 + 10)  # replaces M1 at P1
    before = {r.meter_id: r for r in reg}
    reg.close()
    again = MeterRegistry(path)
    assert {r.meter_id: r for r in again} == before
    m1 = again.get("M1")
    assert m1 is not None and m1.route == ("collector-3", "relay-9") and m1.unit_id == 7
    assert again.counts_by_state() == reg.counts_by_state()
    assert again.counts_by_link() == reg.counts_by_link()
    assert [r.meter_id for r in again.at_premise("P1")] == ["M3"]
    again.close()


def test_last_seen_stamps_wait_for_flush_but_state_changes_do_not(path: Path) -> None:
    reg = MeterRegistry(path)
    reg.register(meter(), now=T0)
    reg.mark_seen("M1", now=T0 + 1)  # REGISTERED -> REACHABLE: written at once
    reg.mark_seen("M1", now=T0 + 2)  # only the stamp: pending
    other = MeterRegistry(path)  # what a restart after a crash would see
    seen = other.get("M1")
    assert seen is not None and (seen.state, seen.last_seen) == (MeterState.REACHABLE, T0 + 1)
    other.close()
    assert reg.flush() == 1 and reg.flush() == 0
    other = MeterRegistry(path)
    seen = other.get("M1")
    assert seen is not None and seen.last_seen == T0 + 2
    other.close()
    reg.mark_seen("M1", now=T0 + 3)
    reg.close()  # close flushes
    final = MeterRegistry(path)
    seen = final.get("M1")
    assert seen is not None and seen.last_seen == T0 + 3
    final.close()


def test_context_feeds_the_event_log_and_address_feeds_the_links(path: Path) -> None:
    reg = MeterRegistry(path)
    reg.register(meter(route=("C1",)), now=T0)
    assert reg.context("M1") == EventContext(
        account="A1", premise="P1", meter_type="FORM2S", module="rf-1", manufacturer="AMDC",
        lot="L1",
    )  # fmt: skip
    assert reg.context("nobody") is None
    rec = reg.get("M1")
    assert rec is not None
    assert address_of(rec) == MeterAddress(
        meter_id="M1", ap_title=".2.7.M1", link=LinkKind.C1222_TCP, route=("C1",)
    )
    log = EventLog(path, context=reg.context)  # the same file
    assert len(log) == 0
    log.close()
    reg.close()


def test_ten_thousand_meters(path: Path) -> None:
    """10k+ meters: one transaction to register, AP-title lookups from memory."""
    reg = MeterRegistry(path, synchronous="NORMAL")
    links = list(LinkKind)
    fleet = [
        meter(f"M{n:05d}", premise=f"P{n}", account=f"A{n // 2}", link=links[n % len(links)])
        for n in range(10_500)
    ]
    results = reg.register_many(fleet, now=T0)
    assert all(r.new_install and r.replaced is None for r in results)
    titles = [m.ap_title for m in fleet]
    for title in titles:
        assert reg.by_ap_title(title) is not None
    assert sum(reg.counts_by_link().values()) == 10_500
    assert reg.counts_by_link()[LinkKind.MQTT] == 10_500 // len(links)
    assert len(reg.for_account("A7")) == 2
    reg.close()
    again = MeterRegistry(path)
    assert len(again) == 10_500
    found = again.by_ap_title(".2.7.M10499")
    assert found is not None and found.premise == "P10499"
    again.close()
