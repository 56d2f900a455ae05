"""amidcc.gateway.eventlog on real SQLite files: FR10-FR13, NFR5, durability."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from amidcc.events import Component, EventClass, EventSource, FailureType, MeterEvent
from amidcc.gateway.classify import classify_event
from amidcc.gateway.eventlog import DAY, MIN_RETENTION, EventContext, EventLog
from amidcc.gateway.store import StoreError, connect, ensure_schema

T0 = 1_700_000_000.0
F = FailureType


def ev(
    meter: str = "M1",
    code: int = 43,
    *,
    t: float = T0,
    seq: int | None = 1,
    mfg: bool = False,
    received: float | None = None,
    event_id: str | None = None,
    argument: bytes = b"",
    source: EventSource = EventSource.LOG_READ,
) -> MeterEvent:
    """A classified event, as the gateway would build it."""
    c = classify_event(code, mfg)
    return MeterEvent(
        event_id=event_id or f"{meter}/{t}/{seq}/{code}/{mfg}",
        meter_id=meter,
        ap_title=f".2.7.{meter}",
        time=t,
        code=code,
        mfg=mfg,
        name=c.name,
        argument=argument,
        event_class=c.event_class,
        component=c.component,
        critical=c.critical,
        failure_type=c.failure_type,
        source=source,
        received=t + 5 if received is None else received,
        seq=seq,
    )


CTX = {
    "M1": EventContext(account="A1", premise="P1", meter_type="FORM2S", module="rf-1",
                       manufacturer="AMDC", lot="L1"),
    "M2": EventContext(account="A2", premise="P2", meter_type="FORM2S", module="cell-1",
                       manufacturer="AMDC", lot="L1"),
    "M3": EventContext(account="A3", premise="P3", meter_type="FORM12S", module="rf-1",
                       manufacturer="OTHR", lot="L2"),
}  # fmt: skip


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "amidcc.db"


@pytest.fixture
def log(path: Path) -> Iterator[EventLog]:
    log = EventLog(path, context=CTX.get)
    yield log
    log.close()


def test_events_round_trip_and_survive_reopening(path: Path) -> None:
    log = EventLog(path, context=CTX.get)
    stored = [
        ev(argument=b"\x00\x01\xff"),
        ev(code=2, seq=None, t=T0 + 60, source=EventSource.PUSHED),  # no failure type, no seq
        ev(code=6, mfg=True, t=T0 + 120),  # amidcc wrong socket
    ]
    assert log.append_many(stored) == 3
    log.close()
    again = EventLog(path)
    assert again.query() == stored  # every field, including bytes, None seq and None failure
    assert len(again) == 3
    again.close()


def test_append_is_idempotent_on_the_natural_key(log: EventLog) -> None:
    assert log.append(ev()) is True
    # the same entry read again from ST76 gets a fresh id from the reader: still not duplicated
    assert log.append(ev(event_id="re-read")) is False
    batch = [ev(event_id="x"), ev(seq=2, t=T0 + 1), ev(seq=2, t=T0 + 1, event_id="y")]
    assert log.append_many(batch) == 1
    assert len(log) == 2
    # same time and code but another sequence number, or the mfg flag, is another event
    assert log.append(ev(seq=3)) and log.append(ev(code=43, mfg=True))
    assert len(log) == 4


def test_a_reused_event_id_for_another_event_is_an_error(log: EventLog) -> None:
    log.append(ev(event_id="dup"))
    with pytest.raises(sqlite3.IntegrityError):
        log.append(ev(seq=99, event_id="dup"))


def test_append_many_is_all_or_nothing(log: EventLog) -> None:
    log.append(ev(event_id="dup"))
    with pytest.raises(sqlite3.IntegrityError):
        log.append_many([ev(seq=10), ev(seq=11), ev(seq=12, event_id="dup")])
    assert len(log) == 1


def test_queries_by_meter_account_and_equipment(log: EventLog) -> None:
    log.append_many(
        [
            ev("M1", 43, t=T0),
            ev("M1", 20, t=T0 + 10),
            ev("M2", 47, t=T0 + 20),
            ev("M3", 42, t=T0 + 30),
        ]
    )
    assert [e.code for e in log.by_meter("M1")] == [43, 20]  # FR11
    assert [e.meter_id for e in log.by_account("A2")] == ["M2"]  # FR10
    assert [e.meter_id for e in log.by_equipment(meter_type="FORM2S")] == ["M1", "M1", "M2"]
    assert [e.meter_id for e in log.by_equipment(module="rf-1")] == ["M1", "M1", "M3"]
    assert [e.meter_id for e in log.by_equipment(manufacturer="OTHR")] == ["M3"]  # FR12
    assert [e.meter_id for e in log.by_equipment(lot="L1", module="cell-1")] == ["M2"]
    assert [e.meter_id for e in log.query(premise="P3")] == ["M3"]
    assert log.by_meter("nobody") == []


def test_time_ranges_classes_and_flags(log: EventLog) -> None:
    log.append_many([ev("M1", c, t=T0 + i * 100, seq=i) for i, c in enumerate((43, 20, 47, 44))])
    # [since, until) on the event time
    assert [e.code for e in log.by_meter("M1", since=T0 + 100, until=T0 + 300)] == [20, 47]
    assert [e.code for e in log.query(classes=[EventClass.SAFETY, EventClass.INFORMATIONAL])] == [
        20,
        47,
    ]
    assert [e.code for e in log.query(failures_only=True)] == [43, 47, 44]
    assert [e.code for e in log.query(critical=True)] == [43, 47]
    assert [e.code for e in log.query(failure_types=[F.LOW_BATTERY])] == [44]
    assert [e.code for e in log.query(newest_first=True, limit=2)] == [44, 47]


def test_the_account_is_the_one_at_logging_time(path: Path) -> None:
    """FR10: after a move-out the old account keeps the old events."""
    current = {"M1": EventContext(account="OLD")}
    log = EventLog(path, context=current.get)
    log.append(ev(t=T0))
    current["M1"] = EventContext(account="NEW")
    log.append(ev(t=T0 + DAY))
    log.append(ev(t=T0 + 2 * DAY), EventContext(account="GIVEN"))  # explicit beats the lookup
    log.append(ev("unknown-meter"))  # no context: stored, just not by account
    assert [e.time for e in log.by_account("OLD")] == [T0]
    assert [e.time for e in log.by_account("NEW")] == [T0 + DAY]
    assert [e.time for e in log.by_account("GIVEN")] == [T0 + 2 * DAY]
    assert len(log.by_meter("unknown-meter")) == 1
    log.close()


def test_retention_is_at_least_45_days(path: Path) -> None:
    with pytest.raises(ValueError, match="45 days"):
        EventLog(path, retention=44 * DAY)
    EventLog(path, retention=90 * DAY).close()


def test_prune_counts_from_reception(log: EventLog) -> None:
    now = T0 + 100 * DAY
    log.append_many(
        [
            ev(seq=1, t=now - 50 * DAY),  # older than 45 days: goes
            ev(seq=2, t=now - 45 * DAY, received=now - 45 * DAY),  # exactly 45 days: stays
            ev(seq=3, t=now - 10 * DAY),
            # the meter's clock is wrong (CLOCK_ERROR): stamped 1990, received yesterday: stays
            ev(seq=4, t=631_152_000.0, received=now - DAY),
        ]
    )
    assert log.prune(now) == 1
    assert sorted(e.seq or 0 for e in log.query()) == [2, 3, 4]
    assert log.prune(now) == 0
    assert log.retention == MIN_RETENTION


def test_counts_by_class(log: EventLog) -> None:
    log.append_many([ev("M1", 47, seq=1), ev("M1", 48, seq=2), ev("M2", 20), ev("M3", 43)])
    counts = log.counts_by_class()
    assert counts == {
        EventClass.SAFETY: 2,
        EventClass.SERVICE: 0,
        EventClass.BILLING: 1,
        EventClass.CUSTOMER: 0,
        EventClass.INFORMATIONAL: 1,
    }
    assert sum(log.counts_by_class(meter_id="M1").values()) == 2
    assert log.counts_by_class(account="A3")[EventClass.BILLING] == 1
    assert sum(log.counts_by_class(since=T0 + 1).values()) == 0


def test_chronic_failures_per_meter(log: EventLog) -> None:
    """FR13: meters failing again and again inside the window."""
    now = T0 + 30 * DAY
    window = 7 * DAY
    day = [now - d * DAY for d in (1, 2, 3, 4)]
    log.append_many(
        [
            ev("M1", 43, t=day[0], seq=1),
            ev("M1", 43, t=day[1], seq=2),
            ev("M1", 42, t=day[2], seq=3),
            ev("M1", 43, t=now - 20 * DAY, seq=4),  # outside the window
            ev("M2", 43, t=day[0], seq=1),
            ev("M2", 1, t=day[1], seq=2),  # outages are explained, not chronic (FR18)
            ev("M2", 1, t=day[2], seq=3),
            ev("M2", 20, t=day[3], seq=4),  # demand reset: not a failure
            ev("M3", 44, t=day[0], seq=1),
            ev("M3", 44, t=day[1], seq=2),
        ]
    )
    found = log.chronic_failures(now, window, 2)
    assert [(c.key, c.count, c.meters) for c in found] == [("M1", 3, 1), ("M3", 2, 1)]
    m1 = found[0]
    assert m1.group_by == "meter" and m1.failure_type is None
    assert m1.by_failure_type == ((F.METROLOGY_FAILURE, 2), (F.TIME_SYNC_FAILURE, 1))
    assert (m1.first, m1.last) == (day[2], day[0])
    # the same failure again and again
    same = log.chronic_failures(now, window, 2, per_failure_type=True)
    assert [(c.key, c.failure_type, c.count) for c in same] == [
        ("M1", F.METROLOGY_FAILURE, 2),
        ("M3", F.LOW_BATTERY, 2),
    ]
    assert same[0].by_failure_type == ((F.METROLOGY_FAILURE, 2),)
    # outages counted when asked
    with_outages = log.chronic_failures(now, window, 3, exclude=())
    assert [c.key for c in with_outages] == ["M1", "M2"]


def test_chronic_failures_by_lot_and_manufacturer(log: EventLog) -> None:
    now = T0 + 30 * DAY
    log.append_many(
        [
            ev("M1", 43, t=now - DAY),
            ev("M1", 43, t=now - 2 * DAY),
            ev("M2", 43, t=now - DAY),  # same lot L1, another meter
            ev("M3", 43, t=now - DAY),  # lot L2
        ]
    )
    lots = log.chronic_failures(now, 7 * DAY, 2, group_by="lot")
    assert [(c.key, c.count, c.meters) for c in lots] == [("L1", 3, 2)]
    # a lot problem is spread over meters: ask for at least 2 meters
    assert log.chronic_failures(now, 7 * DAY, 1, group_by="lot", min_meters=2)[0].key == "L1"
    mfrs = log.chronic_failures(now, 7 * DAY, 1, group_by="manufacturer")
    assert [(c.key, c.count) for c in mfrs] == [("AMDC", 3), ("OTHR", 1)]
    with pytest.raises(KeyError):
        log.chronic_failures(now, DAY, 1, group_by="meter_id; DROP TABLE meter_events")  # type: ignore[arg-type]


def test_shares_a_file_with_another_component_and_checks_its_schema_version(path: Path) -> None:
    log = EventLog(path)
    log.append(ev())
    conn = connect(path)
    ensure_schema(conn, "other", 1, ["CREATE TABLE IF NOT EXISTS other (x)"])
    with pytest.raises(StoreError, match="eventlog schema version 1"):
        ensure_schema(conn, "eventlog", 2, [])
    conn.close()
    log.close()
    assert len(EventLog(path)) == 1


CHILD = textwrap.dedent(
    """
    import sys, time
    from amidcc.events import EventClass, Component, EventSource, MeterEvent
    from amidcc.gateway.eventlog import EventLog

    log = EventLog(sys.argv[1])
    def event(n):
        return MeterEvent(event_id=f"e{n}", meter_id="M1", ap_title=None, time=1.0e9 + n,
                          code=38, mfg=False, name="self_check_error_detected",
                          event_class=EventClass.SERVICE, component=Component.METER,
                          critical=True, source=EventSource.PUSHED, received=1.0e9 + n, seq=n)
    log.append(event(0))
    log.append_many([event(n) for n in range(1, 50)])
    print("committed", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_committed_rows_survive_sigkill(path: Path) -> None:
    """Nothing stored is lost: the writer is killed without any chance to close or checkpoint."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "committed"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    log = EventLog(path)
    assert len(log) == 50
    assert [e.seq for e in log.by_meter("M1")] == list(range(50))
    assert log.query()[0].component is Component.METER
    log.close()
