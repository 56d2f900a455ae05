"""amidcc.gateway.intake: alarms, event-log and status reads become logged, classified, counted
events; critical ones leave at once as trouble events, others wait for the period (FR16); the
suppression hook (FR18); the Twisted reader on a fake meter client."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from amidcc.codecs.c1219 import (
    ST3,
    ST76,
    EdMode,
    EdModeStatus,
    EdStdStatus1,
    EventLogData,
    TableContext,
)
from amidcc.codecs.c1219.logs import ActLog, EventEntry, HistoryEntry, HistoryLogData, ListStatus
from amidcc.codecs.errors import RemoteProtocolError
from amidcc.codecs.psem import FullRead, FullWrite, encode_request
from amidcc.events import (
    AmidccMfgEvent,
    AmidccMfgStatus,
    Component,
    EventClass,
    EventSource,
    FailureType,
    InProcessSink,
    TroubleEvent,
)
from amidcc.gateway.config import ConfigError, parse_config
from amidcc.gateway.eventlog import EventLog
from amidcc.gateway.intake import (
    EventIntake,
    EventReader,
    OutageView,
    SuppressionWindow,
    WindowSuppression,
    decode_alarm,
    epoch_seconds,
    valid_event_entries,
    valid_history_entries,
)
from amidcc.gateway.links.base import LinkDown, LinkKind, MeterAddress
from amidcc.gateway.metrics import GatewayMetrics
from amidcc.gateway.registry import MeterRecord, MeterRegistry

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
EPOCH = datetime(1970, 1, 1)
CTX = TableContext(st71=ActLog(event_data_length=4, nbr_event_entries=8))
MFG = AmidccMfgEvent


def at(t: float) -> datetime:
    return EPOCH + timedelta(seconds=t)


def entry(seq: int, code: int, *, mfg: bool = False, t: float | None = None) -> EventEntry:
    return EventEntry(
        event_time=at(T0 + 60 * seq if t is None else t),
        event_seq_nbr=seq,
        code=code,
        mfg=mfg,
        argument=bytes(4),
    )


def event_log(*entries: EventEntry, capacity: int = 8) -> EventLogData:
    """A circular ST76 as amidcc meters fill it: entry with sequence s in slot s % capacity."""
    slots = [EventEntry(argument=bytes(4))] * capacity
    for e in entries:
        slots[e.event_seq_nbr % capacity] = e
    last = entries[-1].event_seq_nbr if entries else 0
    return EventLogData(
        list_status=ListStatus.LIST_TYPE,
        nbr_valid_entries=min(len(entries), capacity),
        last_entry_element=last % capacity,
        last_entry_seq_nbr=last,
        entries=tuple(slots),
    )


@pytest.fixture
def registry() -> Iterator[MeterRegistry]:
    reg = MeterRegistry(":memory:", synchronous="OFF")
    reg.register(
        MeterRecord(
            meter_id="m1",
            ap_title=".2.7.1",
            link=LinkKind.C1222_TCP,
            account="acct-1",
            premise="prem-1",
            meter_type="FORM2S",
            module="wan-x",
            manufacturer="AMDC",
            lot="lot-7",
        ),
        now=T0,
    )
    yield reg
    reg.close()


@pytest.fixture
def eventlog() -> Iterator[EventLog]:
    log = EventLog(":memory:", synchronous="OFF")
    yield log
    log.close()


@dataclasses.dataclass
class Setup:
    intake: EventIntake
    sink: InProcessSink
    eventlog: EventLog
    metrics: GatewayMetrics
    suppression: WindowSuppression

    def count(self, cls: str) -> float:
        value = self.metrics.registry.get_sample_value("amidcc_events_total", {"event_class": cls})
        return value or 0.0


@pytest.fixture
def setup(registry: MeterRegistry, eventlog: EventLog) -> Setup:
    sink = InProcessSink()
    metrics = GatewayMetrics(process=False)
    suppression = WindowSuppression()
    intake = EventIntake(
        eventlog=eventlog,
        sink=sink,
        meters=registry.get,
        metrics=metrics,
        suppression=suppression,
    )
    return Setup(intake, sink, eventlog, metrics, suppression)


# -- which entries of a log are valid ---------------------------------------------------------


def test_valid_entries_of_a_wrapped_circular_log() -> None:
    data = event_log(*(entry(s, 7) for s in range(11)), capacity=8)
    assert [e.event_seq_nbr for e in valid_event_entries(data)] == list(range(3, 11))


def test_valid_entries_of_an_empty_log() -> None:
    assert valid_event_entries(event_log()) == []
    assert valid_event_entries(EventLogData(nbr_valid_entries=3)) == []


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(1, 20), written=st.integers(0, 60), newest_first=st.booleans())
def test_valid_entries_are_the_newest_oldest_first(
    capacity: int, written: int, newest_first: bool
) -> None:
    # Ascending (ORDER 0): sequence s lives in slot s % n. Descending (ORDER 1): in slot -s % n.
    slots = [HistoryEntry()] * capacity
    for s in range(written):
        slots[(-s if newest_first else s) % capacity] = HistoryEntry(history_seq_nbr=s)
    last = written - 1
    data = HistoryLogData(
        list_status=ListStatus.ORDER if newest_first else ListStatus(0),
        nbr_valid_entries=min(written, capacity),
        last_entry_element=((-last if newest_first else last) % capacity) if written else 0,
        entries=tuple(slots),
    )
    expected = list(range(max(0, written - capacity), written))
    assert [e.history_seq_nbr for e in valid_history_entries(data)] == expected


def test_epoch_seconds_of_naive_aware_and_missing_times() -> None:
    from datetime import UTC

    assert epoch_seconds(at(T0)) == T0
    assert epoch_seconds(at(T0).replace(tzinfo=UTC)) == T0
    assert epoch_seconds(None) is None


# -- decoding alarms (the simulator's format: amidcc.simulators.alarms) ------------------------


def alarm_services(entries: list[EventEntry], status: EdModeStatus | None = None) -> list[bytes]:
    fragment_ctx = CTX.with_table(71, dataclasses.replace(CTX.st71, nbr_event_entries=len(entries)))
    fragment = EventLogData(
        nbr_valid_entries=len(entries),
        last_entry_element=max(0, len(entries) - 1),
        last_entry_seq_nbr=entries[-1].event_seq_nbr if entries else 0,
        nbr_unread_entries=len(entries),
        entries=tuple(entries),
    )
    services = [encode_request(FullWrite(table_id=76, data=ST76.build(fragment, fragment_ctx)))]
    if status is not None:
        services.append(encode_request(FullWrite(table_id=3, data=ST3.build(status, CTX))))
    return services


NO_FLAGS = EdStdStatus1(0)


def status(std: EdStdStatus1 = NO_FLAGS, mfg: int = 0) -> EdModeStatus:
    return EdModeStatus(
        ed_mode=EdMode.METERING, ed_std_status1=std, ed_mfg_status=mfg.to_bytes(2, "little")
    )


def test_decode_alarm_round_trip() -> None:
    entries = [entry(4, int(MFG.METROLOGY_FAILED), mfg=True), entry(5, 47)]
    st3 = status(EdStdStatus1.TAMPER_DETECT, int(AmidccMfgStatus.METROLOGY_CHECK_FAILED))
    decoded = decode_alarm(alarm_services(entries, st3), CTX)
    assert [(int(e.code), e.mfg, e.event_seq_nbr) for e in decoded.entries] == [
        (int(MFG.METROLOGY_FAILED), True, 4),
        (47, False, 5),
    ]
    assert decoded.status == st3


@pytest.mark.parametrize(
    ("services", "match"),
    [
        ([], "at least"),
        ([encode_request(FullRead(table_id=76))], "full write of table 76"),
        ([encode_request(FullWrite(table_id=3, data=b"\x01\x00\x00\x00"))], "table 76"),
        ([encode_request(FullWrite(table_id=76, data=b"\x00\x01"))], "no header"),
        ([b"\xff\xff"], None),
    ],
)
def test_decode_alarm_rejects_other_messages(services: list[bytes], match: str | None) -> None:
    with pytest.raises(RemoteProtocolError, match=match):
        decode_alarm(services, CTX)


def test_decode_alarm_needs_st71() -> None:
    with pytest.raises(ValueError, match="ST71"):
        decode_alarm(alarm_services([entry(1, 47)]), TableContext())


# -- the intake -------------------------------------------------------------------------------


def test_log_read_is_classified_logged_with_context_and_counted(setup: Setup) -> None:
    data = event_log(entry(0, 2), entry(1, int(MFG.HAN_COMM_FAILURE), mfg=True))
    result = setup.intake.ingest_event_log("m1", data, now=T0 + 600)
    assert [e.name for e in result.logged] == ["primary_power_up", "han_comm_failure"]
    han = result.logged[1]
    assert (han.event_class, han.component, han.critical) == (
        EventClass.CUSTOMER, Component.HAN, False,
    )  # fmt: skip
    assert han.source is EventSource.LOG_READ and han.ap_title == ".2.7.1"
    assert han.time == T0 + 60 and han.received == T0 + 600 and han.seq == 1
    # stored with the registry's context: queryable by account and by manufacturer/lot (FR10, FR12)
    assert [e.event_id for e in setup.eventlog.by_account("acct-1")] == [
        e.event_id for e in result.logged
    ]
    assert len(setup.eventlog.by_equipment(manufacturer="AMDC", lot="lot-7")) == 2
    assert setup.count("informational") == 1 and setup.count("customer") == 1
    assert result.reported == () and result.held == (han,)


def test_critical_event_leaves_at_once_with_the_meter_context(setup: Setup) -> None:
    result = setup.intake.ingest_event_log("m1", event_log(entry(0, 47)), now=T0 + 5)
    (trouble,) = setup.sink.events
    assert result.reported == (trouble,)
    assert trouble.failure_type is FailureType.TAMPER and trouble.critical
    assert trouble.event_class is EventClass.SAFETY and trouble.component is Component.METER
    assert (trouble.account, trouble.premise, trouble.lot, trouble.manufacturer) == (
        "acct-1", "prem-1", "lot-7", "AMDC",
    )  # fmt: skip
    assert trouble.detected == T0 + 5 and trouble.evidence == result.logged
    assert setup.count("safety") == 1


def test_reading_the_log_again_logs_and_reports_nothing_new(setup: Setup) -> None:
    first = event_log(entry(0, 47), entry(1, 2))
    setup.intake.ingest_event_log("m1", first, now=T0 + 200)
    again = setup.intake.ingest_event_log(
        "m1", event_log(entry(0, 47), entry(1, 2), entry(2, 38)), now=T0 + 900
    )
    assert [e.code for e in again.logged] == [38] and again.duplicates == 2
    assert [t.failure_type for t in setup.sink.events] == [
        FailureType.TAMPER, FailureType.SELF_TEST_FAILURE,
    ]  # fmt: skip
    assert len(setup.eventlog) == 3
    assert setup.count("safety") == 1  # counted once


def test_same_events_twice_in_one_batch_are_logged_once(setup: Setup) -> None:
    e = entry(3, 38)
    result = setup.intake.ingest_event_log("m1", event_log(e, capacity=8), now=T0)
    twice = setup.intake.ingest(list(result.logged) * 2, now=T0)
    assert twice.logged == () and twice.duplicates == 2


def test_non_critical_failures_wait_for_the_period(setup: Setup) -> None:
    data = event_log(entry(0, int(MFG.HAN_COMM_FAILURE), mfg=True), entry(1, 44))
    result = setup.intake.ingest_event_log("m1", data, now=T0)
    assert setup.sink.events == () and len(result.held) == 2
    assert len(setup.intake.pending) == 2
    report = setup.intake.report_pending(T0 + 86_400)
    assert {t.failure_type for t in report.reported} == {
        FailureType.HAN_FAILURE, FailureType.LOW_BATTERY,
    }  # fmt: skip
    assert all(not t.critical for t in report.reported)
    assert setup.sink.events == report.reported and setup.intake.pending == ()
    assert setup.intake.report_pending(T0 + 2 * 86_400).reported == ()


def test_informational_events_are_logged_but_never_reported(setup: Setup) -> None:
    setup.intake.ingest_event_log("m1", event_log(entry(0, 20), entry(1, 21)), now=T0)
    assert setup.intake.pending == () and setup.intake.report_pending(T0).reported == ()
    assert len(setup.eventlog) == 2


def test_status_flags_are_logged_only_when_they_rise(setup: Setup) -> None:
    intake = setup.intake
    first = intake.ingest_status("m1", status(EdStdStatus1.LOW_BATTERY), now=T0)
    assert [(e.name, e.seq, e.source) for e in first.logged] == [
        ("low_battery", 8, EventSource.STATUS_READ)
    ]
    assert intake.ingest_status("m1", status(EdStdStatus1.LOW_BATTERY), now=T0 + 60).logged == ()
    both = intake.ingest_status(
        "m1", status(EdStdStatus1.LOW_BATTERY | EdStdStatus1.CLOCK_ERROR), now=T0 + 120
    )
    assert [e.name for e in both.logged] == ["clock_error"]
    assert intake.ingest_status("m1", status(), now=T0 + 180).logged == ()  # cleared: nothing
    again = intake.ingest_status("m1", status(EdStdStatus1.LOW_BATTERY), now=T0 + 240)
    assert [e.name for e in again.logged] == ["low_battery"]


def test_manufacturer_status_bits_classify_as_amidcc_events(setup: Setup) -> None:
    flags = int(AmidccMfgStatus.WRONG_SOCKET | AmidccMfgStatus.DATA_INCONSISTENCY)
    result = setup.intake.ingest_status("m1", status(mfg=flags), now=T0)
    assert [(e.name, e.mfg, e.critical) for e in result.logged] == [
        ("wrong_socket", True, True),
        ("data_inconsistency", True, False),
    ]
    assert [t.failure_type for t in result.reported] == [FailureType.WRONG_SOCKET]


def test_status_after_forget_is_new_again(setup: Setup) -> None:
    setup.intake.ingest_status("m1", status(EdStdStatus1.LOW_BATTERY), now=T0)
    setup.intake.forget_status("m1")
    again = setup.intake.ingest_status("m1", status(EdStdStatus1.LOW_BATTERY), now=T0 + 1)
    assert len(again.logged) == 1


def test_alarm_entry_and_its_status_make_one_trouble_event(setup: Setup) -> None:
    services = alarm_services(
        [entry(9, int(MFG.METROLOGY_FAILED), mfg=True)],
        status(mfg=int(AmidccMfgStatus.METROLOGY_CHECK_FAILED)),
    )
    result = setup.intake.ingest_alarm("m1", services, CTX, now=T0 + 700)
    assert {e.source for e in result.logged} == {EventSource.PUSHED}
    assert len(result.logged) == 2
    (trouble,) = result.reported
    assert trouble.failure_type is FailureType.METROLOGY_FAILURE and len(trouble.evidence) == 2
    # the same entry read later from the log is a duplicate; the flag has not risen again
    later = setup.intake.ingest_event_log(
        "m1", event_log(entry(9, int(MFG.METROLOGY_FAILED), mfg=True)), now=T0 + 900
    )
    assert later.logged == () and later.duplicates == 1 and len(setup.sink.events) == 1


def test_a_repeat_within_the_holdoff_is_recorded_not_sent(setup: Setup) -> None:
    setup.intake.ingest_event_log("m1", event_log(entry(0, 47)), now=T0)
    repeat = setup.intake.ingest_event_log("m1", event_log(entry(0, 47), entry(1, 47)), now=T0 + 60)
    assert repeat.reported == () and repeat.suppressed[0].reason.startswith("already reported")
    late = setup.intake.ingest_event_log(
        "m1", event_log(entry(0, 47), entry(1, 47), entry(2, 47)), now=T0 + 7 * 3600
    )
    assert len(late.reported) == 1 and len(setup.sink.events) == 2


def test_suppression_window_keeps_trouble_in(setup: Setup) -> None:
    setup.suppression.add(
        SuppressionWindow(reason="planned outage 4711", start=T0, end=T0 + 3600,
                          premises=frozenset({"prem-1"}))
    )  # fmt: skip
    result = setup.intake.ingest_event_log("m1", event_log(entry(0, 38)), now=T0 + 10)
    assert result.reported == () and setup.sink.events == ()
    (record,) = setup.intake.suppressed
    assert record.reason == "planned outage 4711" and record.at == T0 + 10
    assert record.trouble.failure_type is FailureType.SELF_TEST_FAILURE
    assert len(setup.eventlog) == 1  # the event itself is still logged
    # after the window, the next failure leaves
    after = setup.intake.ingest_event_log("m1", event_log(entry(0, 38), entry(1, 39)), now=T0 + 4000)
    assert [t.failure_type for t in after.reported] == [FailureType.MEMORY_FAILURE]
    assert setup.suppression.expire(T0 + 4000) == 1


def _trouble(meter: str = "m1", premise: str | None = None) -> TroubleEvent:
    return TroubleEvent(
        trouble_id="t", meter_id=meter, failure_type=FailureType.TAMPER, premise=premise,
        component=Component.METER, event_class=EventClass.SAFETY, critical=True, detected=T0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("window", "trouble", "now", "covered"),
    [
        (SuppressionWindow(reason="r", start=T0, end=T0 + 10), _trouble(), T0, True),
        (SuppressionWindow(reason="r", start=T0, end=T0 + 10), _trouble(), T0 + 10, False),
        (SuppressionWindow(reason="r", start=T0, end=T0 + 10), _trouble(), T0 - 1, False),
        (SuppressionWindow(reason="r", start=T0, end=T0 + 9, meters=frozenset({"m2"})),
         _trouble(), T0, False),
        (SuppressionWindow(reason="r", start=T0, end=T0 + 9, meters=frozenset({"m1"})),
         _trouble(), T0, True),
        (SuppressionWindow(reason="r", start=T0, end=T0 + 9, premises=frozenset({"p"})),
         _trouble(premise="p"), T0, True),
        (SuppressionWindow(reason="r", start=T0, end=T0 + 9,
                           failure_types=frozenset({FailureType.POWER_OUTAGE})),
         _trouble(), T0, False),
    ],
)  # fmt: skip
def test_suppression_window_cover(
    window: SuppressionWindow, trouble: TroubleEvent, now: float, covered: bool
) -> None:
    assert window.covers(trouble, now) is covered
    assert (WindowSuppression([window]).reason(trouble, now) == "r") is covered


def test_a_failing_sink_subscriber_loses_nothing(setup: Setup) -> None:
    seen: list[TroubleEvent] = []

    def broken(event: TroubleEvent) -> None:
        raise RuntimeError("subscriber down")

    setup.sink.subscribe(broken)
    setup.sink.subscribe(seen.append)
    result = setup.intake.ingest_event_log("m1", event_log(entry(0, 47), entry(1, 39)), now=T0)
    assert len(result.reported) == 2 and len(seen) == 2 and len(setup.eventlog) == 2


def test_unknown_meter_is_logged_without_context(setup: Setup) -> None:
    result = setup.intake.ingest_event_log("ghost", event_log(entry(0, 47)), now=T0)
    (trouble,) = result.reported
    assert trouble.account is None and trouble.ap_title is None
    assert setup.eventlog.by_meter("ghost")[0].event_id == result.logged[0].event_id


def test_event_ids_are_stable_across_reads(setup: Setup, registry: MeterRegistry) -> None:
    other = EventLog(":memory:", synchronous="OFF")
    second = EventIntake(eventlog=other, sink=InProcessSink(), meters=registry.get)
    data = event_log(entry(0, 38), entry(1, 2))
    a = setup.intake.ingest_event_log("m1", data, now=T0)
    b = second.ingest_event_log("m1", data, now=T0 + 50)
    assert [e.event_id for e in a.logged] == [e.event_id for e in b.logged]
    other.close()


# -- the reader on a fake meter client --------------------------------------------------------


@dataclasses.dataclass
class FakeRead:
    value: Any


class FakeClient:
    """Implements the two MeterClient methods EventReader uses."""

    def __init__(self, tables: dict[int, Any], ctx: TableContext | None = None) -> None:
        self.tables = tables
        self.ctx = ctx
        self.reads: list[int] = []
        self.fail: Exception | None = None

    def read_table(self, meter_id: str, table: int, **kw: Any) -> Deferred[Any]:
        self.reads.append(table)
        if self.fail is not None:
            return fail(self.fail)
        if table == 71:
            self.ctx = CTX
        return succeed(FakeRead(self.tables.get(table)))

    def table_context(self, meter_id: str) -> TableContext | None:
        return self.ctx


ADDRESS = MeterAddress(meter_id="m1", ap_title=".2.7.1", link=LinkKind.C1222_TCP)


def _result(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the Deferred did not fire"
    return out[0]


def test_reader_reads_st71_once_then_decodes_alarms(setup: Setup) -> None:
    client = FakeClient({})
    reader = EventReader(setup.intake, client, Clock())
    first = _result(reader.on_alarm(ADDRESS, alarm_services([entry(1, 47)]), T0))
    second = _result(reader.on_alarm(ADDRESS, alarm_services([entry(2, 39)]), T0 + 1))
    assert client.reads == [71]
    assert [t.failure_type for t in first.reported + second.reported] == [
        FailureType.TAMPER, FailureType.MEMORY_FAILURE,
    ]  # fmt: skip


def test_reader_falls_back_when_st71_cannot_be_read(setup: Setup) -> None:
    client = FakeClient({})
    client.fail = LinkDown("gone")
    strict = EventReader(setup.intake, client, Clock())
    assert _result(strict.on_alarm(ADDRESS, alarm_services([entry(1, 47)]), T0)).check(LinkDown)
    lenient = EventReader(setup.intake, client, Clock(), fallback_context=CTX)
    result = _result(lenient.on_alarm(ADDRESS, alarm_services([entry(1, 47)]), T0))
    assert [e.code for e in result.logged] == [47]


def test_reader_counts_an_undecodable_alarm_as_malformed(setup: Setup) -> None:
    metrics = GatewayMetrics(process=False)
    reader = EventReader(setup.intake, FakeClient({}, CTX), Clock(), metrics=metrics)
    outcome = _result(reader.on_alarm(ADDRESS, [b"\x40\x00"], T0))
    assert outcome.check(RemoteProtocolError)
    sample = metrics.registry.get_sample_value(
        "amidcc_errors_total", {"link": "c1222-tcp", "kind": "malformed"}
    )
    assert sample == 1.0


def test_reader_event_log_and_status_reads(setup: Setup) -> None:
    clock = Clock()
    clock.advance(T0 + 3600)
    client = FakeClient({76: event_log(entry(0, 38)), 3: status(EdStdStatus1.RAM_FAILURE)}, CTX)
    reader = EventReader(setup.intake, client, clock)
    logged = _result(reader.read_event_log("m1"))
    assert [e.received for e in logged.logged] == [T0 + 3600]
    flags = _result(reader.read_status("m1"))
    assert [e.name for e in flags.logged] == ["ram_failure"]
    assert client.reads == [76, 3]
    assert reader.report_pending().reported == ()


def test_reader_rejects_undecoded_reads(setup: Setup) -> None:
    reader = EventReader(setup.intake, FakeClient({76: None, 3: b"raw"}, CTX), Clock())
    assert _result(reader.read_event_log("m1")).check(ValueError)
    assert _result(reader.read_status("m1")).check(ValueError)


# -- against the simulator's own alarms ------------------------------------------------------


def test_simulated_meter_alarm_end_to_end(setup: Setup) -> None:
    sims = pytest.importorskip("amidcc.simulators")
    meter = sims.SimMeter(
        sims.MeterIdentity(manufacturer="AMDC", model="SIM2", serial="m1", seed=1),
        config=sims.MeterConfig(),
        start_time=T0,
    )
    from amidcc.simulators.tables import context_for

    ctx = context_for(meter.config, meter.identity.ed_class)
    meter.tick(T0 + 60)
    meter.inject(sims.FaultKind.TAMPER, T0 + 120)
    alarms = meter.tick(T0 + 180)
    assert alarms, "the simulator pushed no alarm for a tamper"
    result = setup.intake.ingest_alarm("m1", meter.alarm_services(alarms[0]), ctx, now=T0 + 181)
    assert FailureType.TAMPER in {t.failure_type for t in result.reported}
    assert all(e.source is EventSource.PUSHED for e in result.logged)


# -- history is logged, not reported ------------------------------------------------------------

DAY = 86_400.0
GASP = int(MFG.LAST_GASP)


def history(days: int = 60) -> list[EventEntry]:
    """A meter's log before it registered at T0 (as the simulator's synthetic history): a momentary
    outage, a passed self-test and, now and then, an old failure, every day."""
    out: list[EventEntry] = []
    for d in range(days, 0, -1):
        t = T0 - d * DAY
        out += [entry(len(out), 1, t=t), entry(len(out) + 1, 2, t=t + 30)]
        out.append(entry(len(out), int(MFG.SELF_TEST_PASSED), mfg=True, t=t + 600))
        if d % 10 == 0:
            out.append(entry(len(out), 38, t=t + 900))  # critical, but weeks old
            out.append(entry(len(out), int(MFG.HAN_COMM_FAILURE), mfg=True, t=t + 960))
    return out


def test_the_first_read_logs_the_whole_history_and_reports_nothing(setup: Setup) -> None:
    old = history()
    result = setup.intake.ingest_event_log("m1", event_log(*old, capacity=512), now=T0 + 600)
    assert len(result.logged) == len(old) == len(result.history) == len(setup.eventlog)
    assert result.reported == () and result.suppressed == () and result.held == ()
    assert setup.sink.events == () and setup.intake.pending == ()
    assert setup.intake.report_pending(T0 + DAY).reported == ()  # nor at the period's end
    assert setup.intake.in_outage(T0 + 600) == ()  # old outages are over
    assert result.opened == () and result.closed == ()
    totals = setup.intake.totals
    assert (totals.logged, totals.history, totals.reported) == (len(old), len(old), 0)
    assert setup.count("service") == 60 + 6  # still counted by class: 60 power downs, 6 failures


def test_a_fresh_critical_event_still_reports_at_once(setup: Setup) -> None:
    old = history(3)
    fresh = entry(len(old), 47, t=T0 + 300)  # tamper after registering
    result = setup.intake.ingest_event_log("m1", event_log(*old, fresh, capacity=64), now=T0 + 600)
    (trouble,) = result.reported
    assert trouble.failure_type is FailureType.TAMPER and trouble.evidence == result.logged[-1:]
    assert len(result.history) == len(old)


def test_the_installation_self_test_counts_as_new(setup: Setup) -> None:
    # FR1: the meter tests itself at installation, before it registers (T0): within install_grace
    data = event_log(entry(0, 39, t=T0 - 3 * 3600), entry(1, 38, t=T0 - 600))
    result = setup.intake.ingest_event_log("m1", data, now=T0 + 60)
    assert [e.code for e in result.history] == [39]
    assert [t.failure_type for t in result.reported] == [FailureType.SELF_TEST_FAILURE]


def test_age_alone_makes_history_for_a_meter_the_registry_does_not_know(setup: Setup) -> None:
    now = T0 + 10 * DAY
    data = event_log(entry(0, 38, t=now - 2 * DAY), entry(1, 39, t=now - 3600))
    result = setup.intake.ingest_event_log("ghost", data, now=now)
    assert [e.code for e in result.history] == [38]
    assert [t.failure_type for t in result.reported] == [FailureType.MEMORY_FAILURE]


def test_a_later_read_of_an_installed_meter_uses_report_max_age(
    setup: Setup, registry: MeterRegistry
) -> None:
    now = T0 + 30 * DAY  # installed long ago: only the age counts
    data = event_log(entry(0, 38, t=now - 25 * 3600), entry(1, 39, t=now - 23 * 3600))
    result = setup.intake.ingest_event_log("m1", data, now=now)
    assert [e.code for e in result.history] == [38] and len(result.reported) == 1
    assert setup.intake.history_cutoff("m1", now) == now - DAY


def test_pushed_entries_are_new_whatever_the_meter_clock_says(setup: Setup) -> None:
    # a meter whose clock fell back (FR6) still reaches the head-end with its alarm
    services = alarm_services([entry(5, 42, t=T0 - 300 * DAY)])
    result = setup.intake.ingest_alarm("m1", services, CTX, now=T0 + 60)
    assert result.history == () and [t.failure_type for t in result.reported] == [
        FailureType.TIME_SYNC_FAILURE
    ]


def test_report_max_age_and_install_grace_are_settings(
    registry: MeterRegistry, eventlog: EventLog
) -> None:
    events = parse_config({"events": {"report_max_age": "2h", "install_grace": "0s"}}).events
    intake = EventIntake(
        eventlog=eventlog, sink=InProcessSink(), meters=registry.get,
        report_max_age=events.report_max_age, install_grace=events.install_grace,
    )  # fmt: skip
    data = event_log(entry(0, 38, t=T0 - 60), entry(1, 39, t=T0 + 60))
    result = intake.ingest_event_log("m1", data, now=T0 + 3600)
    assert [e.code for e in result.history] == [38]  # before installation, no grace
    later = intake.ingest_event_log("m1", event_log(entry(2, 40, t=T0 + 60)), now=T0 + 4 * 3600)
    assert [e.code for e in later.history] == [40]  # older than 2h


def test_events_settings_defaults_and_checks() -> None:
    events = parse_config({}).events
    assert (events.report_max_age, events.install_grace, events.outage_expiry) == (
        DAY, 3600.0, 3 * DAY,
    )  # fmt: skip
    for key, value in [
        ("report_max_age", "10m"), ("report_max_age", "60d"), ("report_max_age", 3600),
        ("install_grace", "8d"), ("outage_expiry", "30m"),
    ]:  # fmt: skip
        with pytest.raises(ConfigError) as caught:
            parse_config({"events": {key: value}})
        assert caught.value.key == f"events.{key}"
    with pytest.raises(ValueError):
        EventIntake(eventlog=EventLog(":memory:"), sink=InProcessSink(), report_max_age=0)


# -- outages are service events, not meter trouble (FR18) ---------------------------------------


def test_momentary_outages_are_logged_and_counted_never_trouble(setup: Setup) -> None:
    data = event_log(entry(0, 1), entry(1, 2), entry(2, GASP, mfg=True), entry(3, 2))
    result = setup.intake.ingest_event_log("m1", data, now=T0 + 600)
    assert len(result.logged) == 4 and result.outage == result.logged
    assert result.reported == () and result.held == () and result.suppressed == ()
    assert [o.cause for o in result.opened] == ["primary_power_down", "last_gasp"]
    assert [(o.since, o.until) for o in result.closed] == [(T0, T0 + 60), (T0 + 120, T0 + 180)]
    assert setup.intake.in_outage(T0 + 600) == () and setup.intake.totals.outage == 4
    assert setup.intake.report_pending(T0 + DAY).reported == ()


def test_last_gasp_opens_an_outage_and_the_power_up_closes_it(setup: Setup) -> None:
    gasp = setup.intake.ingest_alarm("m1", alarm_services([entry(0, GASP, mfg=True)]), CTX,
                                     now=T0 + 2)  # fmt: skip
    assert gasp.reported == () and gasp.outage == gasp.logged
    (outage,) = setup.intake.in_outage(T0 + 60)
    assert (outage.meter_id, outage.since, outage.cause) == ("m1", T0, "last_gasp")
    assert setup.intake.outages.meters(T0 + 60) == {"m1"}
    back = setup.intake.ingest_event_log(
        "m1", event_log(entry(0, GASP, mfg=True), entry(1, 2)), now=T0 + 900
    )
    assert back.duplicates == 1 and [o.until for o in back.closed] == [T0 + 60]
    assert setup.intake.in_outage(T0 + 900) == ()


def test_an_outage_suppresses_a_self_test_failure_during_it_not_after(setup: Setup) -> None:
    intake = setup.intake
    intake.ingest_alarm("m1", alarm_services([entry(0, GASP, mfg=True)]), CTX, now=T0 + 1)
    during = intake.ingest_alarm(
        "m1", alarm_services([entry(1, int(MFG.SELF_TEST_FAILED), mfg=True)]), CTX, now=T0 + 61
    )
    assert during.reported == () and setup.sink.events == ()
    (record,) = during.suppressed
    assert record.reason.startswith("in outage since 2026-01-01T00:00:00Z (last_gasp)")
    assert record.trouble.failure_type is FailureType.SELF_TEST_FAILURE
    assert intake.suppressed == (record,)
    intake.ingest_event_log("m1", event_log(entry(2, 2)), now=T0 + 900)  # power up at T0 + 120
    after = intake.ingest_alarm(
        "m1", alarm_services([entry(3, int(MFG.SELF_TEST_FAILED), mfg=True)]), CTX, now=T0 + 960
    )
    assert [t.failure_type for t in after.reported] == [FailureType.SELF_TEST_FAILURE]
    assert after.suppressed == ()


def test_failures_stamped_inside_an_outage_read_later_are_explained(setup: Setup) -> None:
    # one log read after the fact: down, a RAM error while power was failing, up, then a failed
    # self-check (a RAM error after the power-up would join the first as one memory trouble)
    data = event_log(entry(0, 1), entry(1, 39), entry(2, 2), entry(3, 38))
    result = setup.intake.ingest_event_log("m1", data, now=T0 + 900)
    (explained,) = result.suppressed
    assert explained.trouble.evidence[0].code == 39
    assert explained.reason == "during outage 2026-01-01T00:00:00Z to 2026-01-01T00:02:00Z" + (
        " (primary_power_down)"
    )
    assert [t.evidence[0].code for t in result.reported] == [38]


def test_a_status_power_flag_is_an_outage_event_but_opens_no_outage(setup: Setup) -> None:
    # ST3 POWER_FAILURE is latched (it stays set after the power-up): not a transition
    result = setup.intake.ingest_status("m1", status(EdStdStatus1.POWER_FAILURE), now=T0)
    (flag,) = result.logged
    assert result.outage == (flag,) and flag.failure_type is FailureType.POWER_OUTAGE
    assert result.reported == () and result.held == () and result.opened == ()
    assert setup.intake.in_outage(T0) == ()


def test_a_held_failure_stamped_during_an_outage_is_suppressed_at_the_period(
    setup: Setup,
) -> None:
    data = event_log(entry(0, 1), entry(1, int(MFG.HAN_COMM_FAILURE), mfg=True))
    held = setup.intake.ingest_event_log("m1", data, now=T0 + 100)
    assert len(held.held) == 1 and [o.meter_id for o in held.opened] == ["m1"]
    report = setup.intake.report_pending(T0 + 200)
    assert report.reported == () and report.suppressed[0].reason.startswith("in outage")


def test_outage_expiry_ends_the_suppression(registry: MeterRegistry, eventlog: EventLog) -> None:
    sink = InProcessSink()
    intake = EventIntake(
        eventlog=eventlog, sink=sink, meters=registry.get, outages=OutageView(expiry=3600.0)
    )
    intake.ingest_event_log("m1", event_log(entry(0, 1)), now=T0 + 10)
    assert len(intake.in_outage(T0 + 3000)) == 1 and intake.in_outage(T0 + 3610) == ()
    late = intake.ingest_alarm("m1", alarm_services([entry(1, 38)]), CTX, now=T0 + 3700)
    assert len(late.reported) == 1  # the meter is no longer taken to be without power
    assert intake.report_pending(T0 + 3700).reported == ()
    assert intake.outages.current("m1", T0 + 10) is None  # expire() dropped it


# -- the outage view on its own ----------------------------------------------------------------


def _unreachable(meter: str = "m1") -> TroubleEvent:
    return TroubleEvent(
        trouble_id="u", meter_id=meter, failure_type=FailureType.UNREACHABLE,
        component=Component.UNKNOWN, event_class=EventClass.SERVICE, critical=True, detected=T0,
    )  # fmt: skip


def test_outage_view_latest_power_event_by_meter_time_decides() -> None:
    view = OutageView()
    assert view.power_up("m1", time=T0, now=T0) is None  # nothing open
    opened = view.power_down("m1", time=T0 + 10, now=T0 + 11, cause="primary_power_down")
    assert opened is not None and view.current("m1", T0 + 20) == opened
    assert view.power_down("m1", time=T0 + 30, now=T0 + 31, cause="last_gasp") is None  # kept
    assert view.power_up("m1", time=T0 + 5, now=T0 + 40) is None  # older than the latest
    closed = view.power_up("m1", time=T0 + 50, now=T0 + 60)
    assert closed is not None and (closed.since, closed.until, closed.closed) == (
        T0 + 10, T0 + 50, T0 + 60,
    )  # fmt: skip
    assert view.power_down("m1", time=T0 + 40, now=T0 + 70, cause="late") is None  # stale
    assert view.current("m1", T0 + 70) is None and view.history("m1") == (closed,)


def test_outage_view_as_a_suppression() -> None:
    view = OutageView()
    view.power_down("m1", time=T0, now=T0, cause="last_gasp")
    view.power_down("m0", time=T0 - 5, now=T0, cause="last_gasp")
    assert [o.meter_id for o in view.in_outage(T0)] == ["m0", "m1"]
    # an unreachable meter inside a known outage is not a broken meter (S2 step 2)
    assert view.reason(_unreachable(), T0 + 60) == "in outage since 2026-01-01T00:00:00Z (last_gasp)"
    assert view.reason(_unreachable("m2"), T0 + 60) is None
    view.power_up("m1", time=T0 + 100, now=T0 + 200)
    assert view.reason(_unreachable(), T0 + 300) is None  # over: reachable or broken
    view.forget("m0")
    assert view.meters(T0) == frozenset()


def test_evidence_before_the_outage_is_not_explained_by_it(setup: Setup) -> None:
    # a self-check failure stamped before the power went, read with the last gasp: the meter's
    # own failure, reported although the meter is now in an outage
    data = event_log(entry(0, 38, t=T0 + 5), entry(1, GASP, mfg=True, t=T0 + 20))
    result = setup.intake.ingest_event_log("m1", data, now=T0 + 30)
    assert [t.failure_type for t in result.reported] == [FailureType.SELF_TEST_FAILURE]
    assert [o.since for o in setup.intake.in_outage(T0 + 30)] == [T0 + 20]
    view = setup.intake.outages
    assert view.explaining("m1", [T0 + 5], T0 + 30) is None
    assert view.explaining("m1", [T0 + 25], T0 + 30) is not None
    assert view.explaining("m1", [], T0 + 30) is None


def test_power_events_apply_in_meter_time_order_whatever_the_batch_order(setup: Setup) -> None:
    from amidcc.gateway.classify import classify_event

    def power(code: int, t: float, seq: int) -> Any:
        return setup.intake.make_event(
            "m1", classify_event(code), time=t, now=T0 + 100, source=EventSource.PUSHED, seq=seq
        )

    result = setup.intake.ingest([power(2, T0 + 60, 1), power(1, T0, 0)], now=T0 + 100)
    assert [(o.since, o.until) for o in result.closed] == [(T0, T0 + 60)]
    assert len(result.opened) == 1 and setup.intake.in_outage(T0 + 100) == ()
