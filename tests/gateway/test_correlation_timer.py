"""Correlator timeouts on one clock call per correlator: every request still fails at exactly its
own deadline (send time + its timeout), in deadline order, and no call is left when nothing is
pending."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from amidcc.gateway.correlation import Correlator
from amidcc.gateway.links.base import RequestTimeout


def box(d: Deferred[str]) -> list[object]:
    out: list[object] = []
    d.addBoth(out.append)
    return out


def timed_out(b: list[object]) -> bool:
    return bool(b) and not isinstance(b[0], str) and bool(b[0].check(RequestTimeout))  # type: ignore[attr-defined]


def test_each_request_fails_at_its_own_deadline_with_one_clock_call() -> None:
    clock = Clock()
    c: Correlator[str] = Correlator(clock)
    boxes = []
    for _ in range(5):
        boxes.append(box(c.expect(c.new_tag(), 10.0)))
        clock.advance(1.0)  # sent at 0, 1, 2, 3, 4
    assert len(clock.getDelayedCalls()) == 1
    c.resolve(1, "answered")  # the one the call was armed for
    clock.advance(5.5)  # 10.5: only the answered one's deadline has passed
    assert [timed_out(b) for b in boxes] == [False] * 5 and boxes[0] == ["answered"]
    for i in range(1, 5):
        clock.advance(0.5)  # 11, 12, 13, 14: the deadline of request i + 1
        assert [timed_out(b) for b in boxes] == [False] + [j <= i for j in range(1, 5)]
        clock.advance(0.5)
    assert c.timeouts == 4 and len(c) == 0 and not clock.getDelayedCalls()


def test_a_shorter_timeout_sent_later_fails_first() -> None:
    clock = Clock()
    order: list[int] = []
    c: Correlator[str] = Correlator(clock, on_timeout=lambda p: order.append(p.tag))
    long = box(c.expect(1, 30.0))
    clock.advance(1.0)
    short = box(c.expect(2, 5.0))
    clock.advance(5.0)
    assert timed_out(short) and not long
    clock.advance(24.0)
    assert timed_out(long) and order == [2, 1]


def test_a_jump_past_several_deadlines_fails_them_oldest_deadline_first() -> None:
    clock = Clock()
    order: list[int] = []
    c: Correlator[str] = Correlator(clock, on_timeout=lambda p: order.append(p.tag))
    c.expect(1, 9.0)
    c.expect(2, 3.0)
    c.expect(3, 6.0)
    clock.advance(100.0)
    assert order == [2, 3, 1] and not clock.getDelayedCalls()


def test_a_request_sent_from_a_timeout_gets_its_own_deadline() -> None:
    clock = Clock()
    c: Correlator[str] = Correlator(clock)
    retries: list[list[object]] = []

    def retry(_: object) -> None:
        retries.append(box(c.expect(c.new_tag(), 4.0)))

    c.expect(c.new_tag(), 2.0).addErrback(retry)
    clock.advance(2.0)
    assert len(retries) == 1 and not retries[0]
    clock.advance(4.0 - 1e-9)
    assert not retries[0]
    clock.advance(1e-9)
    assert timed_out(retries[0]) and not clock.getDelayedCalls()


def test_late_responses_after_a_timeout_are_counted() -> None:
    clock = Clock()
    c: Correlator[str] = Correlator(clock)
    first = box(c.expect(1, 1.0))
    second = box(c.expect(2, 5.0))
    clock.advance(1.0)
    assert timed_out(first) and not c.resolve(1, "late") and c.late == 1
    assert c.resolve(2, "in time") and second == ["in time"]
    assert not clock.getDelayedCalls()
