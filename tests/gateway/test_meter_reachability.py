"""MeterClient tells the registry how each request ended (task Q1): an answer, even a refusal or
garbage, makes the meter REACHABLE with its last_seen; no answer after the last retry, or no way
to it (LinkDown), makes it UNREACHABLE. The same on every link: the client is the one place."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.defer import fail

from amidcc.codecs.c1219.procedures import ProcedureNumber
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.errors import RemoteProtocolError
from amidcc.gateway.links.base import LinkDown, LinkKind, RequestTimeout
from amidcc.gateway.meters import MeterRefused
from amidcc.gateway.registry import MeterRecord, MeterRegistry, MeterState

from .test_meters import T0, Rig, Script, busy, timeout


def rig(tmp_path: Path) -> tuple[Rig, MeterRegistry]:
    registry = MeterRegistry(tmp_path / "r.db", synchronous="OFF")
    r = Rig(1, on_seen=registry.mark_seen, on_unreachable=registry.mark_unreachable)
    registry.register(
        MeterRecord(meter_id=r.first, ap_title=r.addresses[r.first].ap_title, link=LinkKind.C1222_TCP),
        now=T0 - 100,
    )
    r.result(r.client.read_table(r.first, 0))  # ST0 known: each later read is one request
    return r, registry


def state(registry: MeterRegistry, meter_id: str) -> tuple[MeterState, float | None]:
    record = registry.get(meter_id)
    assert record is not None
    return record.state, record.last_seen


def test_an_answer_makes_the_meter_reachable_and_stamps_last_seen(tmp_path: Path) -> None:
    r, registry = rig(tmp_path)
    assert state(registry, r.first) == (MeterState.REACHABLE, T0)
    r.clock.advance(7)
    r.result(r.client.read_table(r.first, 1))
    assert state(registry, r.first) == (MeterState.REACHABLE, T0 + 7)


def test_no_answer_after_the_retries_makes_it_unreachable(tmp_path: Path) -> None:
    r, registry = rig(tmp_path)
    r.link.script = [timeout()] * 2  # retries=2: the third attempt is answered
    r.result(r.client.read_table(r.first, 1))
    assert state(registry, r.first)[0] is MeterState.REACHABLE  # never unreachable in between
    r.link.script = [timeout()] * 3
    with pytest.raises(RequestTimeout):
        r.result(r.client.read_table(r.first, 1))
    assert state(registry, r.first) == (MeterState.UNREACHABLE, T0 + 3)  # last_seen kept: 1 + 2 s backoff
    r.result(r.client.identify(r.first))  # it answers again
    assert state(registry, r.first)[0] is MeterState.REACHABLE


def test_a_refusal_is_an_answer(tmp_path: Path) -> None:
    r, registry = rig(tmp_path)
    registry.mark_unreachable(r.first, now=T0)
    r.link.script = [busy(ResponseCode.IAR)]
    with pytest.raises(MeterRefused):
        r.result(r.client.read_table(r.first, 1))
    assert state(registry, r.first)[0] is MeterState.REACHABLE


def test_garbage_from_the_meter_is_an_answer(tmp_path: Path) -> None:
    r, registry = rig(tmp_path)
    registry.mark_unreachable(r.first, now=T0)
    noise: Script = lambda services: fail(RemoteProtocolError("undecodable"))  # noqa: E731
    r.link.script = [noise]
    with pytest.raises(RemoteProtocolError):
        r.result(r.client.read_table(r.first, 1))
    assert state(registry, r.first)[0] is MeterState.REACHABLE


def test_link_down_makes_it_unreachable_at_once(tmp_path: Path) -> None:
    r, registry = rig(tmp_path)
    down: Script = lambda services: fail(LinkDown("not connected"))  # noqa: E731
    r.link.script = [down]
    with pytest.raises(LinkDown):
        r.result(r.client.ping(r.first))
    assert state(registry, r.first)[0] is MeterState.UNREACHABLE


def test_a_procedure_that_never_answers_makes_it_unreachable(tmp_path: Path) -> None:
    r, registry = rig(tmp_path)
    r.link.script = [timeout()] * 3
    with pytest.raises(RequestTimeout):
        r.result(r.client.run_procedure(r.first, ProcedureNumber.EXECUTE_DIAGNOSTICS))
    assert state(registry, r.first)[0] is MeterState.UNREACHABLE
    r.result(r.client.run_procedure(r.first, ProcedureNumber.EXECUTE_DIAGNOSTICS))
    assert state(registry, r.first)[0] is MeterState.REACHABLE


def test_without_callbacks_nothing_is_marked(tmp_path: Path) -> None:
    r = Rig(1)
    r.link.script = [timeout()] * 3
    with pytest.raises(RequestTimeout):
        r.result(r.client.read_table(r.first, 1, decode=False))
    assert r.client.on_seen is None and r.client.on_unreachable is None
