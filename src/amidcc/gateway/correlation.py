"""Requests matched to responses by tag, one pending Deferred each (``amp.BoxDispatcher`` style).

A :class:`Correlator` belongs to one channel (a TCP connection, a UDP peer): the link allocates a
tag for each request (:meth:`Correlator.new_tag`, the C12.22 calling AP invocation id, A8), waits on
:meth:`Correlator.expect`, and hands each response to :meth:`Correlator.resolve` with the tag the
peer echoed (A4). Three ways out for a pending request, exactly one of which happens:

* the response arrives: the Deferred fires with it;
* the timeout passes on the clock first: it fails with :class:`RequestTimeout` (``on_timeout`` is
  told, so the link can count it); a response arriving later is *late* and only counted;
* the channel goes down: :meth:`Correlator.fail_all` fails every pending request (with
  :class:`LinkDown`), and the correlator refuses new requests from then on.

Cancelling the Deferred forgets the request. Time is the clock given (a reactor or ``task.Clock``);
nothing here reads the global reactor.

Timeouts run on one clock call per correlator, armed at the earliest deadline of the requests
pending (each request's is its send time plus its timeout), rather than one call per request: a
gateway answers hundreds of requests a second per channel, and scheduling and cancelling a
reactor call for each cost more than the rest of the correlation. When the call fires, every
request whose deadline has come fails, oldest deadline first, and the call is armed again for
the next deadline; it is cancelled when nothing is pending.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from twisted.internet.defer import Deferred

from .links.base import LinkDown, RequestTimeout

__all__ = ["MAX_TAG", "Clock", "Correlator", "Pending"]

_T = TypeVar("_T")

#: Largest tag: the C12.22 invocation id is an INTEGER of 1..4 octets, kept positive.
MAX_TAG = 0x7FFFFFFF


class Clock(Protocol):
    """The part of ``IReactorTime`` used here (a reactor, ``task.Clock``, ``MemoryReactorClock``).

    A structural type because zope interfaces are not types mypy can check calls against.
    """

    def seconds(self) -> float:
        """Now, in seconds."""
        ...

    def callLater(self, delay: float, f: Callable[..., object], /, *args: Any, **kw: Any) -> Any:
        """Call ``f(*args, **kw)`` in ``delay`` seconds; returns an ``IDelayedCall``."""
        ...


class Pending(Generic[_T]):
    """One request waiting for its response."""

    __slots__ = ("tag", "deferred", "sent_at", "timeout", "deadline", "context")

    def __init__(
        self, tag: int, deferred: Deferred[_T], sent_at: float, timeout: float, context: object
    ) -> None:
        self.tag = tag
        """The tag the response must echo."""
        self.deferred = deferred
        """Fires with the response, or fails."""
        self.sent_at = sent_at
        """Clock time when the request was registered."""
        self.timeout = timeout
        """Seconds it may wait."""
        self.deadline = sent_at + timeout
        """Clock time when it times out."""
        self.context = context
        """Whatever the link wants back with the response (e.g. the AP title it expects)."""


class Correlator(Generic[_T]):
    """Pending requests of one channel, by tag."""

    def __init__(
        self,
        clock: Clock,
        *,
        first_tag: int = 1,
        on_timeout: Callable[[Pending[_T]], None] | None = None,
    ) -> None:
        if not 0 < first_tag <= MAX_TAG:
            raise ValueError(f"first_tag must be 1..{MAX_TAG}")
        self._clock = clock
        self._next = first_tag
        self._pending: dict[int, Pending[_T]] = {}
        self._on_timeout = on_timeout
        self._down: Exception | None = None
        self.late = 0
        """Responses that matched no pending request (late after a timeout, or unknown tags)."""
        self.timeouts = 0
        """Requests that timed out."""
        self._timer: Any = None  # the one clock call, armed at _timer_at (see the module doc)
        self._timer_at = math.inf

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, tag: object) -> bool:
        return tag in self._pending

    def __iter__(self) -> Iterator[Pending[_T]]:
        return iter(list(self._pending.values()))

    @property
    def down(self) -> bool:
        """True once :meth:`fail_all` ran: the channel is gone."""
        return self._down is not None

    def new_tag(self) -> int:
        """A tag no pending request uses (counts up, wraps at :data:`MAX_TAG`)."""
        if len(self._pending) >= MAX_TAG:
            raise RuntimeError("every tag is pending")
        while True:
            tag = self._next
            self._next = 1 if tag >= MAX_TAG else tag + 1
            if tag not in self._pending:
                return tag

    def expect(self, tag: int, timeout: float, *, context: object = None) -> Deferred[_T]:
        """Wait for the response tagged ``tag`` for at most ``timeout`` seconds."""
        if self._down is not None:
            raise LinkDown(f"channel is down: {self._down}")
        if tag in self._pending:
            raise ValueError(f"tag {tag} is already pending")
        d: Deferred[_T] = Deferred(functools.partial(self._cancelled, tag))
        pending = Pending(tag, d, self._clock.seconds(), timeout, context)
        self._pending[tag] = pending
        if pending.deadline < self._timer_at:
            self._arm(timeout, pending.deadline)  # the delay callLater had per request
        return d

    def get(self, tag: int) -> Pending[_T] | None:
        """The pending request tagged ``tag``, or None."""
        return self._pending.get(tag)

    def _pop(self, tag: int) -> Pending[_T] | None:
        pending = self._pending.pop(tag, None)
        if not self._pending:
            self._disarm()
        return pending

    def _arm(self, delay: float, deadline: float) -> None:
        self._disarm()
        self._timer = self._clock.callLater(delay, self._expire, deadline)
        self._timer_at = deadline

    def _disarm(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer, self._timer_at = None, math.inf

    def resolve(self, tag: int, value: _T) -> bool:
        """Fire the request tagged ``tag`` with ``value``; False (and counted late) if none."""
        pending = self._pop(tag)
        if pending is None:
            self.late += 1
            return False
        pending.deferred.callback(value)
        return True

    def reject(self, tag: int, error: Exception) -> bool:
        """Fail the request tagged ``tag`` with ``error``; False if none is pending."""
        pending = self._pop(tag)
        if pending is None:
            self.late += 1
            return False
        pending.deferred.errback(error)
        return True

    def fail_all(self, error: Exception | None = None) -> int:
        """The channel is down: fail every pending request (LinkDown by default); how many."""
        err = error if error is not None else LinkDown("link down")
        self._down = err
        failed = 0
        for tag in list(self._pending):
            pending = self._pop(tag)
            if pending is not None:
                pending.deferred.errback(err)
                failed += 1
        return failed

    def _expire(self, due: float) -> None:
        """The clock call: fail what is due, oldest deadline first (ties: oldest request), then
        arm for the next deadline. ``due`` is the deadline it was armed for; never more than the
        clock says (a call may come a rounding error early)."""
        self._timer, self._timer_at = None, math.inf
        limit = min(due, self._clock.seconds())
        expired = sorted(
            (p for p in self._pending.values() if p.deadline <= limit), key=lambda p: p.deadline
        )
        for pending in expired:
            if self._pending.get(pending.tag) is pending:  # an earlier errback may have resolved it
                del self._pending[pending.tag]
                self._timed_out(pending)
        if not self._pending:
            self._disarm()
            return
        following = min(p.deadline for p in self._pending.values())
        if following < self._timer_at:
            self._arm(max(0.0, following - self._clock.seconds()), following)

    def _timed_out(self, pending: Pending[_T]) -> None:
        self.timeouts += 1
        if self._on_timeout is not None:
            self._on_timeout(pending)
        message = f"no response to request {pending.tag} in {pending.timeout}s"
        pending.deferred.errback(RequestTimeout(message))

    def _cancelled(self, tag: int, _: Deferred[_T]) -> None:
        self._pop(tag)
