"""How hard the gateway may push the network: in-flight limits and a connection-rate cap.

* :class:`InflightLimit`: at most ``limit`` requests at once; the next ones wait in FIFO order.
  Requests are queued, never dropped (a fleet-wide read becomes a steady stream, not a storm);
  an optional ``max_queue`` turns an absurd backlog into :class:`Throttled` instead of memory.
* :class:`RequestThrottle`: one limit per link kind and one per collector (or relay), as
  ``[throttle]`` configures. A request takes its collector's slot first and its link's second, so
  requests queued behind a busy collector never hold link slots other collectors could use.
* :class:`ConnectionRateLimit`: at most ``per_window`` new connections in any sliding ``window``
  seconds; the listener refuses the rest (the meters retry with backoff).

Time comes in as an argument (``now``); nothing here reads a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from twisted.internet.defer import CancelledError, Deferred, maybeDeferred, succeed
from twisted.python.failure import Failure

from .config import ThrottleSection
from .links.base import Throttled

__all__ = ["ConnectionRateLimit", "InflightLimit", "RequestThrottle"]

_T = TypeVar("_T")


class _Waiter(Protocol):
    """What waits in an :class:`InflightLimit`'s queue: told with ``callback(None)`` that a slot
    has been taken for it (a Deferred from :meth:`InflightLimit.acquire`, or a :class:`_Waiting`)."""

    def callback(self, result: None, /) -> object: ...


class InflightLimit:
    """A counting semaphore with a FIFO queue, and the numbers a test or a gauge wants."""

    def __init__(self, limit: int, *, max_queue: int | None = None) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        """Most holders at once."""
        self.max_queue = max_queue
        """Most waiters (None: unbounded); past it :meth:`acquire` fails with Throttled."""
        self.in_flight = 0
        """Current holders."""
        self.peak = 0
        """Most holders ever seen at once."""
        self._waiting: deque[_Waiter] = deque()
        self._dispatching = False

    @property
    def queued(self) -> int:
        """Waiters."""
        return len(self._waiting)

    @property
    def idle(self) -> bool:
        """Nobody holds or waits."""
        return self.in_flight == 0 and not self._waiting

    def acquire(self) -> Deferred[None]:
        """Fires when a slot is ours (at once if one is free). Cancelling it leaves the queue."""
        if self.in_flight < self.limit:
            self._take()
            return succeed(None)
        d: Deferred[None] = Deferred(self._cancel_wait)
        self._enqueue(d)
        return d

    def _enqueue(self, waiter: _Waiter) -> None:
        if self.max_queue is not None and len(self._waiting) >= self.max_queue:
            raise Throttled(f"{len(self._waiting)} requests already queued (limit {self.max_queue})")
        self._waiting.append(waiter)

    @property
    def free(self) -> bool:
        """A slot is free now (:meth:`acquire` would fire at once)."""
        return self.in_flight < self.limit

    def _take(self) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    def _cancel_wait(self, waiter: _Waiter) -> None:
        try:
            self._waiting.remove(waiter)
        except ValueError:
            pass

    def release(self) -> None:
        """Give a slot back; the first waiter gets it."""
        if self.in_flight <= 0:
            raise RuntimeError("release() without acquire()")
        self.in_flight -= 1
        self._dispatch()

    def _dispatch(self) -> None:
        # A loop, not recursion: a waiter whose request fails at once (its link just dropped)
        # releases inside callback(); that nested release only returns here, so a queue of any
        # depth drains without growing the stack.
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._waiting and self.in_flight < self.limit:
                self._take()
                self._waiting.popleft().callback(None)
        finally:
            self._dispatching = False


class RequestThrottle:
    """Requests in flight per link and per collector (``[throttle]``), queued in FIFO order."""

    def __init__(self, *, per_link: int, per_collector: int, max_queue: int | None = None) -> None:
        self.per_link = per_link
        self.per_collector = per_collector
        self.max_queue = max_queue
        self._links: dict[str, InflightLimit] = {}
        self._collectors: dict[str, InflightLimit] = {}
        self.collector_peak = 0
        """Most requests ever in flight through one collector."""

    @classmethod
    def from_config(cls, section: ThrottleSection, *, max_queue: int | None = None) -> RequestThrottle:
        """The throttle ``[throttle]`` describes."""
        return cls(
            per_link=section.max_inflight_per_link,
            per_collector=section.max_inflight_per_collector,
            max_queue=max_queue,
        )

    def link_limit(self, link: str) -> InflightLimit:
        """The limit of one link (made on first use, kept)."""
        limit = self._links.get(link)
        if limit is None:
            limit = self._links[link] = InflightLimit(self.per_link, max_queue=self.max_queue)
        return limit

    def collector_limit(self, collector: str) -> InflightLimit | None:
        """The current limit of one collector, if it has holders or waiters."""
        return self._collectors.get(collector)

    def _collector(self, collector: str) -> InflightLimit:
        limit = self._collectors.get(collector)
        if limit is None:
            limit = InflightLimit(self.per_collector, max_queue=self.max_queue)
            self._collectors[collector] = limit
        return limit

    def _forget_idle(self, collector: str | None, limit: InflightLimit) -> None:
        """Drop a collector's limit once nobody holds or waits for it (there are thousands)."""
        if collector is not None and limit.idle and self._collectors.get(collector) is limit:
            del self._collectors[collector]

    def in_flight(self, link: str) -> int:
        """Requests in flight on ``link`` now."""
        limit = self._links.get(link)
        return 0 if limit is None else limit.in_flight

    def run(
        self, link: str, collector: str | None, start: Callable[[], Deferred[_T]]
    ) -> Deferred[_T]:
        """Call ``start()`` once a collector slot (if any) and a link slot are ours; release both
        when its Deferred fires. Cancelling the result cancels the wait or the request."""
        link_limit = self.link_limit(link)
        mine = self._collector(collector) if collector is not None else None
        if link_limit.free and (mine is None or mine.free):
            return self._run_now(link_limit, collector, mine, start)
        limits = (mine, link_limit) if mine is not None else (link_limit,)
        waiting: _Waiting[_T] = _Waiting(self, collector, limits, start)
        waiting.step()
        return waiting.outer

    def _run_now(
        self,
        link_limit: InflightLimit,
        collector: str | None,
        mine: InflightLimit | None,
        start: Callable[[], Deferred[_T]],
    ) -> Deferred[_T]:
        """:meth:`run` when both slots are free: taken at once, in the same order, released in
        the reverse order before anything chained to the result runs; the result is the
        request's own Deferred (cancelling it cancels the request)."""
        if mine is not None:
            mine._take()
            self.collector_peak = max(self.collector_peak, mine.in_flight)
        link_limit._take()
        running: Deferred[_T] = maybeDeferred(start)
        return running.addBoth(self._release, link_limit, collector, mine)

    def _release(
        self, result: _T, link_limit: InflightLimit, collector: str | None, mine: InflightLimit | None
    ) -> _T:
        link_limit.release()
        if mine is not None:
            mine.release()
            self._forget_idle(collector, mine)
        return result


class _Waiting(Generic[_T]):
    """A request of :meth:`RequestThrottle.run` waiting for its slots: the collector's (if any),
    then the link's, taken in that order and released in the reverse order. It waits in a
    limit's queue itself (no Deferred per wait), and is one object with slots rather than
    closures: a fleet-wide read keeps hundreds of these queued."""

    __slots__ = ("throttle", "collector", "limits", "held", "start", "waiting", "current", "outer")

    def __init__(
        self,
        throttle: RequestThrottle,
        collector: str | None,
        limits: tuple[InflightLimit, ...],
        start: Callable[[], Deferred[_T]],
    ) -> None:
        self.throttle = throttle
        self.collector = collector
        self.limits = limits
        self.held = 0
        """Slots held: the first ``held`` of ``limits``."""
        self.start = start
        self.waiting: InflightLimit | None = None
        """The limit in whose queue it waits."""
        self.current: Deferred[Any] | None = None
        """The request, once started: what cancelling ``outer`` then cancels."""
        self.outer: Deferred[_T] = Deferred(self._cancel)
        """What :meth:`RequestThrottle.run` returned."""

    def _cancel(self, _: Deferred[_T]) -> None:
        if self.waiting is not None:  # leave the queue; give back the slots held
            self.waiting._cancel_wait(self)
            self.waiting = None
            self.finish(Failure(CancelledError()))  # type: ignore[no-untyped-call]
        elif self.current is not None:
            self.current.cancel()

    def finish(self, result: object) -> None:
        for limit in reversed(self.limits[: self.held]):
            limit.release()
        self.held = 0
        if self.collector is not None:
            self.throttle._forget_idle(self.collector, self.limits[0])
        if self.outer.called:
            return
        if isinstance(result, Failure):
            self.outer.errback(result)
        else:
            self.outer.callback(result)  # type: ignore[arg-type]

    def _got(self, limit: InflightLimit) -> None:
        self.held += 1
        if self.collector is not None and limit is self.limits[0]:
            self.throttle.collector_peak = max(self.throttle.collector_peak, limit.in_flight)

    def callback(self, _: None) -> None:
        """The limit it waited for took a slot for it (:class:`_Waiter`)."""
        limit = self.waiting
        assert limit is not None
        self.waiting = None
        self._got(limit)
        self.step()

    def step(self) -> None:
        while self.held < len(self.limits):
            limit = self.limits[self.held]
            if not limit.free:
                try:
                    limit._enqueue(self)
                except Throttled:
                    self.finish(Failure())  # type: ignore[no-untyped-call]
                    return
                self.waiting = limit
                return
            limit._take()
            self._got(limit)
        running: Deferred[Any] = maybeDeferred(self.start)
        self.current = running
        running.addBoth(self.finish)


class ConnectionRateLimit:
    """At most ``per_window`` new connections in any ``window`` seconds (a sliding window)."""

    def __init__(self, per_window: int, window: float) -> None:
        if per_window < 1 or window <= 0:
            raise ValueError("per_window must be >= 1 and window > 0")
        self.per_window = per_window
        self.window = window
        self.accepted = 0
        """Connections allowed so far."""
        self.refused = 0
        """Connections refused so far."""
        self._times: deque[float] = deque()

    @classmethod
    def from_config(cls, section: ThrottleSection) -> ConnectionRateLimit:
        """The cap ``[throttle]`` describes."""
        return cls(section.new_connections_per_window, section.window)

    def allow(self, now: float) -> bool:
        """Whether a connection arriving at ``now`` may be accepted (and count it if so)."""
        times = self._times
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.per_window:
            self.refused += 1
            return False
        times.append(now)
        self.accepted += 1
        return True
