"""A small C12.18 host for the optical-port tests, built from c1218.Link (HOST role) and psem.

Test helper only (the field tool is a later issue): one request at a time, each a Deferred; the
link's timers run on the clock it is given (``task.Clock`` under iosim, the reactor on sockets).
"""

from __future__ import annotations

import math
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from amidcc.codecs.c1218 import Event, Link, MessageReceived, Role, SendFailed
from amidcc.codecs.c1219 import ProcedureResponse, TableContext, decode_table
from amidcc.codecs.psem import (
    Identify,
    Logoff,
    Logon,
    Negotiate,
    NegotiateResponse,
    NokResponse,
    ReadResponse,
    Request,
    Response,
    Security,
    Terminate,
    decode_response,
    encode_request,
    pad_user,
)

from .client import (
    DIMENSION_TABLES,
    MASTER,
    READER,
    Nok,
    procedure_request,
    procedure_result,
    read_request,
)

__all__ = ["MASTER", "READER", "NoAnswer", "Nok", "OpticalClient"]


class NoAnswer(Exception):
    """No response within the client's timeout, or the link gave up."""


class OpticalClient(Protocol):
    """The host end of an optical session."""

    def __init__(self, clock: Any, *, timeout: float = 5.0, **link_kw: Any) -> None:
        self.clock = clock
        self.timeout = timeout
        self.link = Link(Role.HOST, **link_kw)
        self.ready: Deferred[OpticalClient] = Deferred()
        self.lost: Deferred[None] = Deferred()
        self.events: list[Event] = []
        self.received = bytearray()
        self.ctx = TableContext()
        self.seq = 0
        self._pending: tuple[Request, Deferred[Response], Any] | None = None
        self._timer: Any = None
        self._timer_at = math.inf

    # -- Twisted --------------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.ready.callback(self)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        now = self.clock.seconds()
        self._process(self.link.receive_data(data, now))
        self._flush(now)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._cancel()
        self._fail(NoAnswer("connection lost"))
        if not self.lost.called:
            self.lost.callback(None)

    # -- requests -------------------------------------------------------------------------------

    def request(self, req: Request) -> Deferred[Response]:
        """Send one request; fires with its decoded response (nok included)."""
        assert self._pending is None, "one request at a time"
        d: Deferred[Response] = Deferred()
        guard = self.clock.callLater(self.timeout, self._fail, NoAnswer(f"no answer to {req}"))
        self._pending = (req, d, guard)
        now = self.clock.seconds()
        self.link.send_message(encode_request(req), now)
        self._flush(now)
        return d

    def write_raw(self, data: bytes) -> None:
        """Put bytes on the line as they are (garbage, a bare NAK, a hand-made frame)."""
        assert self.transport is not None
        self.transport.write(data)

    async def call(self, req: Request) -> Response:
        """The response, or :class:`Nok` for a non-ok code."""
        resp = await self.request(req)
        if isinstance(resp, NokResponse):
            raise Nok(resp.code)
        return resp

    async def open_session(
        self,
        *,
        password: bytes | None = MASTER,
        negotiate: tuple[int, int, tuple[int, ...]] | None = (1024, 8, ()),
    ) -> None:
        """Identify, Negotiate (packet size, packets, baud codes), Logon, Security."""
        await self.call(Identify())
        if negotiate is not None:
            size, count, bauds = negotiate
            await self.call(Negotiate(packet_size=size, nbr_packets=count, baud_rates=bauds))
        await self.call(Logon(user_id=7, user=pad_user("fieldtool")))
        if password is not None:
            await self.call(Security(password=password))

    async def close_session(self) -> None:
        await self.call(Logoff())
        await self.call(Terminate())

    async def read(self, table: int, offset: int | None = None, count: int = 0) -> bytes:
        resp = await self.call(read_request(table, offset, count))
        assert isinstance(resp, ReadResponse)
        return resp.data

    async def read_chunked(self, table: int, size: int, chunk: int) -> bytes:
        """A whole table by offset reads of ``chunk`` bytes."""
        out = bytearray()
        while len(out) < size:
            out += await self.read(table, len(out), min(chunk, size - len(out)))
        return bytes(out)

    async def learn(self) -> TableContext:
        """Read the dimension tables a head-end reads first and build the table context."""
        ctx = TableContext()
        for table in DIMENSION_TABLES:
            ctx = ctx.with_table(table, decode_table(table, await self.read(table), ctx))
        self.ctx = ctx
        return ctx

    async def procedure(self, number: int, params: bytes = b"") -> ProcedureResponse:
        self.seq = (self.seq + 1) & 0xFF
        await self.call(procedure_request(number, self.seq, self.ctx, params))
        return procedure_result(await self.read(8), self.ctx)

    # -- internals ------------------------------------------------------------------------------

    def _process(self, events: list[Event]) -> None:
        for ev in events:
            self.events.append(ev)
            if isinstance(ev, MessageReceived) and self._pending is not None:
                req, d, guard = self._pending
                self._pending = None
                guard.cancel()
                resp = decode_response(ev.data, req)
                if isinstance(resp, NegotiateResponse):
                    self.link.apply_negotiated(resp.packet_size, resp.nbr_packets)
                d.callback(resp)
            elif isinstance(ev, SendFailed):
                self._fail(NoAnswer(f"link gave up ({ev.cause})"))

    def _fail(self, exc: Exception) -> None:
        if self._pending is None:
            return
        _, d, guard = self._pending
        self._pending = None
        if guard.active():
            guard.cancel()
        d.errback(exc)

    def _flush(self, now: float) -> None:
        out = self.link.data_to_send()
        if out and self.transport is not None:
            self.transport.write(out)
        deadline = self.link.next_deadline()
        if deadline == self._timer_at and self._timer is not None:
            return
        self._cancel()
        if deadline is not None:
            self._timer_at = deadline
            self._timer = self.clock.callLater(max(0.0, deadline - now), self._tick)

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._timer_at = math.inf

    def _tick(self) -> None:
        now = max(self.clock.seconds(), self._timer_at)
        self._timer = None
        self._timer_at = math.inf
        self._process(self.link.tick(now))
        self._flush(now)
