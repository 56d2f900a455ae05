"""amidcc.gateway.correlation: responses by tag, out of order; timeouts on the clock; link drop."""

from __future__ import annotations

import pytest
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock

from amidcc.gateway.correlation import MAX_TAG, Correlator
from amidcc.gateway.links.base import LinkDown, RequestTimeout


def results(d):  # type: ignore[no-untyped-def]
    box: list[object] = []
    d.addBoth(box.append)
    return box


def test_out_of_order_responses_reach_their_own_request() -> None:
    clock = Clock()
    c: Correlator[str] = Correlator(clock)
    tags = [c.new_tag() for _ in range(3)]
    assert tags == [1, 2, 3]
    boxes = [results(c.expect(t, 10.0)) for t in tags]
    assert c.resolve(3, "three") and c.resolve(1, "one") and c.resolve(2, "two")
    assert [b[0] for b in boxes] == ["one", "two", "three"]
    assert len(c) == 0
    assert not clock.getDelayedCalls()  # every timer was cancelled


def test_timeout_fails_the_request_and_a_late_response_is_counted() -> None:
    clock = Clock()
    timed_out = []
    c: Correlator[str] = Correlator(clock, on_timeout=timed_out.append)
    box = results(c.expect(7, 5.0, context="ctx"))
    clock.advance(4.9)
    assert box == []
    clock.advance(0.2)
    assert box[0].check(RequestTimeout)  # type: ignore[attr-defined]
    assert [p.context for p in timed_out] == ["ctx"]
    assert c.timeouts == 1
    assert not c.resolve(7, "late")
    assert c.late == 1


def test_link_drop_fails_every_pending_request_and_refuses_new_ones() -> None:
    clock = Clock()
    c: Correlator[str] = Correlator(clock)
    boxes = [results(c.expect(c.new_tag(), 30.0)) for _ in range(5)]
    assert c.fail_all() == 5
    assert all(b[0].check(LinkDown) for b in boxes)  # type: ignore[attr-defined]
    assert not clock.getDelayedCalls()
    assert c.down
    with pytest.raises(LinkDown):
        c.expect(c.new_tag(), 1.0)


def test_cancel_forgets_the_request_and_its_timer() -> None:
    clock = Clock()
    c: Correlator[str] = Correlator(clock)
    d = c.expect(1, 10.0)
    box = results(d)
    d.cancel()
    assert box[0].check(CancelledError)  # type: ignore[attr-defined]
    assert 1 not in c and not clock.getDelayedCalls()


def test_reject_fails_one_request_with_the_error_given() -> None:
    c: Correlator[str] = Correlator(Clock())
    box = results(c.expect(4, 10.0))
    assert c.reject(4, ValueError("bad MAC"))
    assert box[0].check(ValueError)  # type: ignore[attr-defined]
    assert not c.reject(4, ValueError("again"))


def test_tags_wrap_and_skip_pending_ones() -> None:
    c: Correlator[str] = Correlator(Clock(), first_tag=MAX_TAG - 1)
    c.expect(1, 10.0)
    assert [c.new_tag(), c.new_tag(), c.new_tag()] == [MAX_TAG - 1, MAX_TAG, 2]
    with pytest.raises(ValueError):
        c.expect(1, 10.0)
