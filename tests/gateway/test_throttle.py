"""amidcc.gateway.throttle: in-flight limits per link and collector (queued, FIFO, never dropped),
cancellation while queued, and the sliding-window cap on new connections."""

from __future__ import annotations

import pytest
from twisted.internet.defer import CancelledError, Deferred

from amidcc.gateway.config import ThrottleSection
from amidcc.gateway.links.base import Throttled
from amidcc.gateway.throttle import ConnectionRateLimit, InflightLimit, RequestThrottle


class Starter:
    """Records every started request and lets the test finish them."""

    def __init__(self) -> None:
        self.started: list[tuple[str, Deferred[str]]] = []

    def __call__(self, name: str):  # type: ignore[no-untyped-def]
        def start() -> Deferred[str]:
            d: Deferred[str] = Deferred()
            self.started.append((name, d))
            return d

        return start

    def finish(self, name: str) -> None:
        for i, (n, d) in enumerate(self.started):
            if n == name:
                del self.started[i]
                d.callback(name)
                return
        raise AssertionError(f"{name} not running")

    @property
    def running(self) -> list[str]:
        return [n for n, _ in self.started]


def test_inflight_limit_queues_in_fifo_order() -> None:
    limit = InflightLimit(2)
    got: list[int] = []
    for i in range(5):
        limit.acquire().addCallback(lambda _, i=i: got.append(i))
    assert got == [0, 1] and limit.queued == 3
    limit.release()
    assert got == [0, 1, 2]
    limit.release()
    limit.release()
    assert got == [0, 1, 2, 3, 4]
    assert limit.peak == 2 and limit.in_flight == 2
    with pytest.raises(RuntimeError):
        InflightLimit(1).release()


def test_inflight_limit_with_a_queue_cap_throttles() -> None:
    limit = InflightLimit(1, max_queue=1)
    limit.acquire()
    limit.acquire()
    with pytest.raises(Throttled):
        limit.acquire()


def test_link_limit_caps_requests_in_flight_and_none_is_dropped() -> None:
    throttle = RequestThrottle(per_link=3, per_collector=100)
    s = Starter()
    outcomes: list[str] = []
    for i in range(10):
        throttle.run("c1222-tcp", None, s(f"r{i}")).addCallback(outcomes.append)
    assert s.running == ["r0", "r1", "r2"]
    assert throttle.in_flight("c1222-tcp") == 3
    for i in range(10):
        s.finish(f"r{i}")
        assert len(s.running) <= 3
    assert outcomes == [f"r{i}" for i in range(10)]
    assert throttle.link_limit("c1222-tcp").peak == 3
    assert throttle.in_flight("c1222-tcp") == 0


def test_a_busy_collector_does_not_hold_link_slots() -> None:
    throttle = RequestThrottle(per_link=4, per_collector=2)
    s = Starter()
    for i in range(6):
        throttle.run("c1222-tcp", "col-A", s(f"a{i}"))
    for i in range(2):
        throttle.run("c1222-tcp", "col-B", s(f"b{i}"))
    throttle.run("c1222-tcp", None, s("direct"))
    # col-A gets its 2, col-B its 2; the link's 4 slots are full, the direct meter waits
    assert sorted(s.running) == ["a0", "a1", "b0", "b1"]
    s.finish("b0")
    assert "direct" in s.running
    s.finish("a0")
    assert "a2" in s.running and throttle.collector_peak == 2


def test_failures_release_their_slots() -> None:
    throttle = RequestThrottle(per_link=1, per_collector=1)
    s = Starter()
    box: list[object] = []
    throttle.run("mqtt", "relay", s("x")).addErrback(box.append)
    throttle.run("mqtt", "relay", s("y"))
    s.started.pop(0)[1].errback(ValueError("boom"))
    assert box and s.running == ["y"]
    s.finish("y")
    assert throttle.collector_limit("relay") is None  # idle collectors are forgotten


def test_cancelling_a_queued_request_leaves_the_queue() -> None:
    throttle = RequestThrottle(per_link=1, per_collector=5)
    s = Starter()
    throttle.run("c1222-tcp", None, s("first"))
    waiting = throttle.run("c1222-tcp", None, s("second"))
    box: list[object] = []
    waiting.addErrback(box.append)
    waiting.cancel()
    assert box[0].check(CancelledError)  # type: ignore[attr-defined]
    throttle.run("c1222-tcp", None, s("third"))
    s.finish("first")
    assert s.running == ["third"]


def test_from_config() -> None:
    section = ThrottleSection(max_inflight_per_link=7, max_inflight_per_collector=2)
    throttle = RequestThrottle.from_config(section)
    assert (throttle.per_link, throttle.per_collector) == (7, 2)
    cap = ConnectionRateLimit.from_config(section)
    assert (cap.per_window, cap.window) == (200, 1.0)


def test_connection_cap_is_a_sliding_window() -> None:
    cap = ConnectionRateLimit(3, 1.0)
    assert [cap.allow(t) for t in (0.0, 0.1, 0.2, 0.3)] == [True, True, True, False]
    assert cap.allow(0.99) is False
    assert cap.allow(1.05) is True  # the one at 0.0 left the window
    assert (cap.accepted, cap.refused) == (4, 2)


def test_a_deep_queue_whose_requests_fail_at_once_drains_completely() -> None:
    """A link drops with thousands queued: each waiter's request fails synchronously and releases
    inside the previous release. Every one must still fire (no RecursionError, no lost waiter)."""
    throttle = RequestThrottle(per_link=1, per_collector=1)
    gate: Deferred[None] = Deferred()
    first = throttle.run("c1222-tcp", "col-1", lambda: gate)
    outcomes: list[str] = []

    def failing() -> Deferred[None]:
        d: Deferred[None] = Deferred()
        d.errback(RuntimeError("link down"))
        return d

    queued = [throttle.run("c1222-tcp", "col-1", failing) for _ in range(3000)]
    for d in queued:
        d.addCallbacks(lambda _: outcomes.append("ok"), lambda f: outcomes.append(f.type.__name__))
    gate.callback(None)
    assert first.called
    assert outcomes == ["RuntimeError"] * 3000
    assert throttle.in_flight("c1222-tcp") == 0
