"""RequestThrottle.run when the slots are free: started at once on the request's own Deferred,
with the same releases, cancellation, failures and FIFO order as a request that waited."""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred

from amidcc.gateway.throttle import RequestThrottle


def test_slots_are_released_before_the_callers_callbacks_run() -> None:
    throttle = RequestThrottle(per_link=2, per_collector=1)
    request: Deferred[str] = Deferred()
    result = throttle.run("c1222-tcp", "col", lambda: request)
    assert result is request  # no Deferred of its own
    assert throttle.in_flight("c1222-tcp") == 1 and throttle.collector_limit("col") is not None
    seen: list[tuple[int, object]] = []
    result.addCallback(lambda v: seen.append((throttle.in_flight("c1222-tcp"), v)))
    request.callback("answer")
    assert seen == [(0, "answer")]
    assert throttle.collector_limit("col") is None  # idle collectors are forgotten
    assert throttle.collector_peak == 1


def test_cancelling_cancels_the_request_and_releases() -> None:
    throttle = RequestThrottle(per_link=1, per_collector=1)
    cancelled: list[object] = []
    request: Deferred[str] = Deferred(cancelled.append)
    result = throttle.run("c1222-tcp", "col", lambda: request)
    errors: list[object] = []
    result.addErrback(errors.append)
    result.cancel()
    assert cancelled == [request] and errors[0].check(CancelledError)  # type: ignore[attr-defined]
    assert throttle.in_flight("c1222-tcp") == 0 and throttle.collector_limit("col") is None


def test_a_start_that_raises_fails_the_result_and_releases() -> None:
    throttle = RequestThrottle(per_link=1, per_collector=1)

    def start() -> Deferred[str]:
        raise ValueError("no route")

    errors: list[object] = []
    throttle.run("c1222-tcp", None, start).addErrback(errors.append)
    assert errors[0].check(ValueError)  # type: ignore[attr-defined]
    assert throttle.in_flight("c1222-tcp") == 0


def test_a_freed_slot_goes_to_the_oldest_waiter_not_to_a_newcomer() -> None:
    throttle = RequestThrottle(per_link=1, per_collector=5)
    started: list[str] = []
    requests: dict[str, Deferred[str]] = {}

    def starter(name: str):  # type: ignore[no-untyped-def]
        def start() -> Deferred[str]:
            started.append(name)
            requests[name] = Deferred()
            return requests[name]

        return start

    throttle.run("c1222-tcp", "col", starter("first"))  # at once
    throttle.run("c1222-tcp", "col", starter("waiter"))  # queued behind the link slot
    requests["first"].callback("done")
    throttle.run("c1222-tcp", "col", starter("newcomer"))
    assert started == ["first", "waiter"]
    requests["waiter"].callback("done")
    assert started == ["first", "waiter", "newcomer"]
    requests["newcomer"].callback("done")
    assert throttle.in_flight("c1222-tcp") == 0 and throttle.collector_limit("col") is None


def test_cancelling_a_request_that_holds_its_collector_slot_gives_it_back() -> None:
    throttle = RequestThrottle(per_link=1, per_collector=1)
    first: Deferred[str] = Deferred()
    throttle.run("c1222-tcp", None, lambda: first)  # holds the link
    started: list[str] = []

    def starter(name: str):  # type: ignore[no-untyped-def]
        def start() -> Deferred[str]:
            started.append(name)
            return Deferred()

        return start

    waiting = throttle.run("c1222-tcp", "col", starter("a"))
    assert throttle.collector_limit("col") is not None  # col's slot taken, waiting for the link
    behind = throttle.run("c1222-tcp", "col", starter("b"))
    errors: list[object] = []
    waiting.addErrback(errors.append)
    waiting.cancel()
    assert errors[0].check(CancelledError)  # type: ignore[attr-defined]
    first.callback("done")
    assert started == ["b"]  # col's slot went to the next request, the link's too
    assert not behind.called


def test_a_full_queue_throttles_a_request_and_releases_what_it_held() -> None:
    from amidcc.gateway.links.base import Throttled

    throttle = RequestThrottle(per_link=1, per_collector=5, max_queue=1)
    throttle.run("c1222-tcp", "col", lambda: Deferred())  # holds the link
    throttle.run("c1222-tcp", "col", lambda: Deferred())  # waits for the link (queue full)
    errors: list[object] = []
    throttle.run("c1222-tcp", "col", lambda: Deferred()).addErrback(errors.append)
    assert errors[0].check(Throttled)  # type: ignore[attr-defined]
    limit = throttle.collector_limit("col")
    assert limit is not None and limit.in_flight == 2  # the refused one gave its slot back
