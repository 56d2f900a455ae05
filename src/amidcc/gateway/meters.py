"""The meter client: read and write tables, run procedures, identify, ping and trace, on any link.

:class:`MeterClient` sits above the :class:`~amidcc.gateway.links.base.MeterLink` s. It encodes PSEM
requests, sends them through the link that reaches the meter (looked up by meter id), decodes the
responses and the C12.19 tables, and returns Deferreds with decoded values. The caller never asks
which link it is.

* **Retries.** A request that times out, or that the meter answers ``BSY`` or ``DNR``, is sent again
  after a backoff (``[requests]``: ``backoff_base`` doubling up to ``backoff_max``, at most
  ``retries`` times). Other refusals raise :class:`MeterRefused` at once. Ping and trace never retry
  (they measure the path as it is).
* **Throttling.** Every attempt goes through the :class:`~amidcc.gateway.throttle.RequestThrottle`:
  per link and per collector (the first hop of the meter's route); queued, never dropped. A retry
  gives its slot back while it waits.
* **Tables.** A full read is decoded with the meter's own table context (its ST0, and ST21, ST61,
  ST62 or ST71 where the table's layout depends on them): the client reads those dimension tables
  first, once per meter, and caches the context (one object per distinct context, shared by the
  meters that have it). Partial reads and tables without a model return the bytes only. A table
  the meter cannot send in one response (``RSTL`` with its maximum size, e.g. 45 days of load
  profile) is read with offset reads that fit, its size known from the context.
* **Procedures** (protocol-facts.md 4.6): one APDU carries the ST7 write and the ST8 read; the ST8
  answer must match the procedure number, the manufacturer flag and our sequence number. After a
  timeout the client first reads ST8 again (the procedure may have run) before starting it anew,
  so a procedure is never run twice because a response was lost. ``accepted, not completed`` is
  polled with the same backoff.
* **Reachability.** How each request ends is told to ``on_seen`` / ``on_unreachable`` (the
  registry's ``mark_seen`` / ``mark_unreachable`` in the daemon): any answer, even a refusal or
  an undecodable one, means the meter was heard; no answer after the last retry
  (:class:`~amidcc.gateway.links.base.RequestTimeout`) or no way to it (``LinkDown``) makes it
  unreachable. This is the one place for it, the same on every link.
* **Metrics**: request latency by operation and link (pre-bound histogram children); PSEM refusals
  count as ``errors{kind="nak"}``, undecodable responses as ``malformed`` (timeouts are counted by
  the link that saw them).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from amidcc.codecs.c1219 import TableContext
from amidcc.codecs.c1219.context import DEFAULT_CONTEXT
from amidcc.codecs.c1219.procedures import (
    ST7,
    ST8,
    ProcedureInitiate,
    ProcedureResponse,
    ProcedureResult,
)
from amidcc.codecs.c1219.registry import MFG_FLAG, UnknownTableError, table_model
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.errors import RemoteProtocolError
from amidcc.codecs.psem import (
    FullRead,
    FullWrite,
    Identify,
    IdentifyResponse,
    NokResponse,
    PartialReadOffset,
    PartialWriteOffset,
    ReadResponse,
    Request,
    Response,
    Trace,
    TraceResponse,
    UniversalId,
    decode_response,
    encode_request,
)

from .config import RequestsSection
from .correlation import Clock
from .links.base import LinkDown, LinkKind, MeterAddress, MeterLink, RequestTimeout
from .metrics import GatewayMetrics
from .registry import MeterRegistry, UnknownMeter, address_of
from .throttle import RequestThrottle

__all__ = [
    "MFG_TABLE",
    "MeterClient",
    "MeterError",
    "MeterMark",
    "MeterRefused",
    "ProcedureMismatch",
    "TableRead",
    "TableReader",
    "dimension_tables",
]

_T = TypeVar("_T")

#: Table-id bit of a manufacturer table.
MFG_TABLE = MFG_FLAG
#: Response codes worth asking again for.
RETRY_CODES = frozenset({ResponseCode.BSY, ResponseCode.DNR})
_DIMENSIONS = (0, 21, 61, 62, 71)
#: Room left in a response APDU for ACSE, EPSEM, the security answer and the MAC (chunked reads).
CHUNK_OVERHEAD = 256
#: Chunk size when a meter answers RSTL without its maximum.
DEFAULT_CHUNK = 4096


class MeterError(Exception):
    """The meter answered, but not with what was asked for."""


class MeterRefused(MeterError):
    """The meter answered a service with a non-ok PSEM response code."""

    def __init__(self, meter_id: str, operation: str, response: NokResponse) -> None:
        super().__init__(f"{meter_id}: {operation} refused with {response.code.name}")
        self.meter_id = meter_id
        self.operation = operation
        self.code = response.code
        """The PSEM response code."""
        self.response = response


class ProcedureMismatch(MeterError):
    """ST8 answers another procedure (number, flag or sequence) than the one we started."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TableRead:
    """The result of :meth:`MeterClient.read_table`."""

    meter_id: str
    """The meter read."""
    table: int
    """The table-id word (bit 11 set for a manufacturer table)."""
    offset: int | None
    """Byte offset of a partial read; None for a full read."""
    data: bytes
    """The bytes the meter returned."""
    value: Any
    """The decoded C12.19 model; None for partial reads and tables without a model."""


def dimension_tables(word: int) -> tuple[int, ...]:
    """The tables whose values shape table ``word``'s layout, in the order to read them."""
    number = word & 0x07FF
    if word & MFG_TABLE:
        return (0,)
    if number == 0:
        return ()
    if number in (22, 23):
        return (0, 21)
    if number in (62, 63):
        return (0, 61)
    if 64 <= number <= 67:
        return (0, 61, 62)
    if 72 <= number <= 76:
        return (0, 71)
    return (0,)


def _sleep(clock: Clock, seconds: float) -> Deferred[None]:
    return deferLater(clock, seconds, lambda: None)  # type: ignore[arg-type]


class TableReader(Protocol):
    """What the gateway's other parts (event intake, scheduler, API) need of
    :meth:`MeterClient.read_table`; tests stand in for the client with it."""

    def read_table(
        self,
        meter_id: str,
        table: int,
        *,
        offset: int | None = None,
        count: int | None = None,
        mfg: bool = False,
        decode: bool = True,
    ) -> Deferred[Any]:
        """Fire with a :class:`TableRead` (``.value`` is the decoded model)."""
        ...


class MeterMark(Protocol):
    """A note of a request's outcome (``MeterRegistry.mark_seen`` / ``mark_unreachable``)."""

    def __call__(self, meter_id: str, *, now: float) -> object: ...


class MeterClient:
    """PSEM operations on meters, over whichever link reaches each one."""

    def __init__(
        self,
        links: Mapping[LinkKind, MeterLink] | Iterable[MeterLink],
        *,
        resolve: Callable[[str], MeterAddress] | MeterRegistry,
        clock: Clock,
        requests: RequestsSection | None = None,
        throttle: RequestThrottle | None = None,
        metrics: GatewayMetrics | None = None,
        base_context: TableContext = DEFAULT_CONTEXT,
        on_seen: MeterMark | None = None,
        on_unreachable: MeterMark | None = None,
    ) -> None:
        self.links: dict[LinkKind, MeterLink] = (
            dict(links) if isinstance(links, Mapping) else {link.kind: link for link in links}
        )
        self._resolve = _registry_resolver(resolve) if isinstance(resolve, MeterRegistry) else resolve
        self.clock = clock
        self.requests = requests if requests is not None else RequestsSection()
        self.throttle = throttle
        self.metrics = metrics if metrics is not None else GatewayMetrics(process=False)
        self.base_context = base_context
        self._contexts: dict[str, TableContext] = {}
        self._shared: dict[TableContext, TableContext] = {}
        """One object per distinct context: a fleet's meters mostly share their dimension tables,
        and a decoded context per meter (ST0 + ST21: ~5 KB) would outweigh the rest of its state."""
        self._seq: dict[str, int] = {}
        self.on_seen = on_seen
        """Called when a request to the meter got an answer."""
        self.on_unreachable = on_unreachable
        """Called when a request to the meter got none after its retries, or found no way."""

    # -- plumbing ------------------------------------------------------------------------------

    def address(self, meter_id: str) -> MeterAddress:
        """Where the meter is now (raises LinkDown when no link reaches its kind)."""
        address = self._resolve(meter_id)
        if address.link not in self.links:
            raise LinkDown(f"meter {meter_id}: no {address.link.value} link")
        return address

    def forget(self, meter_id: str) -> None:
        """Drop the cached table context of a meter (after a reprogramming or an exchange)."""
        self._contexts.pop(meter_id, None)

    def _send(self, address: MeterAddress, operation: str, raw: list[bytes]) -> Deferred[list[bytes]]:
        link = self.links[address.link]
        observe = self.metrics.latency(operation, address.link.value)
        if self.throttle is None:
            return self._start(link, address, raw, observe)
        collector = address.route[0] if address.route else None
        start = functools.partial(self._start, link, address, raw, observe)  # no closure cells
        return self.throttle.run(address.link.value, collector, start)

    def _start(
        self, link: MeterLink, address: MeterAddress, raw: list[bytes], observe: Callable[[float], None]
    ) -> Deferred[list[bytes]]:
        sent = self.clock.seconds()
        d = link.request(address, raw, timeout=self.requests.timeout)
        return d.addCallback(self._observed, observe, sent)

    def _observed(self, result: _T, observe: Callable[[float], None], sent: float) -> _T:
        observe(self.clock.seconds() - sent)
        return result

    def _decode(self, address: MeterAddress, requests: Sequence[Request], raw: Sequence[bytes]) -> list[Response]:
        counters = self.metrics.link(address.link.value)
        try:
            responses = [decode_response(r, q) for r, q in zip(raw, requests, strict=True)]
        except (RemoteProtocolError, ValueError) as exc:
            counters.error("malformed")
            raise RemoteProtocolError(f"{address.meter_id}: undecodable response: {exc}") from exc
        if any(isinstance(r, NokResponse) for r in responses):
            counters.error("nak")
        return responses

    async def _once(self, address: MeterAddress, operation: str, requests: Sequence[Request]) -> list[Response]:
        """One attempt; a timeout is the caller's to judge (it may retry)."""
        try:
            raw = await self._send(address, operation, [encode_request(r) for r in requests])
        except (LinkDown, RemoteProtocolError) as exc:
            self._failed(address.meter_id, exc)
            raise
        self._seen(address.meter_id)
        return self._decode(address, requests, raw)

    def _seen(self, meter_id: str) -> None:
        if self.on_seen is not None:
            self.on_seen(meter_id, now=self.clock.seconds())

    def _failed(self, meter_id: str, exc: Exception) -> None:
        """A request that ends with ``exc``: the meter answered (RemoteProtocolError: badly) or
        is out of reach (LinkDown, the last RequestTimeout)."""
        if isinstance(exc, RemoteProtocolError):
            self._seen(meter_id)
        elif self.on_unreachable is not None:
            self.on_unreachable(meter_id, now=self.clock.seconds())

    def _backoff(self, attempt: int) -> float:
        r = self.requests
        return float(min(r.backoff_max, r.backoff_base * (2**attempt)))

    async def _exchange(
        self, meter_id: str, operation: str, requests: Sequence[Request], *, retries: int | None = None
    ) -> list[Response]:
        """Send ``requests`` in one APDU, retrying on timeout / BSY / DNR; refusals raise."""
        address = self.address(meter_id)
        tries = 1 + (self.requests.retries if retries is None else retries)
        for attempt in range(tries):
            last = attempt == tries - 1
            try:  # _once, inline: one coroutine less per request
                raw = await self._send(address, operation, [encode_request(r) for r in requests])
            except RequestTimeout as exc:
                if last:
                    self._failed(meter_id, exc)
                    raise
                await _sleep(self.clock, self._backoff(attempt))
                continue
            except (LinkDown, RemoteProtocolError) as exc:
                self._failed(meter_id, exc)
                raise
            self._seen(meter_id)
            responses = self._decode(address, requests, raw)
            nok = next((r for r in responses if isinstance(r, NokResponse)), None)
            if nok is None:
                return responses
            if nok.code not in RETRY_CODES or last:
                raise MeterRefused(meter_id, operation, nok)
            await _sleep(self.clock, self._backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- tables --------------------------------------------------------------------------------

    def read_table(
        self,
        meter_id: str,
        table: int,
        *,
        offset: int | None = None,
        count: int | None = None,
        mfg: bool = False,
        decode: bool = True,
    ) -> Deferred[TableRead]:
        """Read a table (partial when ``offset`` or ``count`` is given); decode full reads."""
        word = table | (MFG_TABLE if mfg else 0)
        return Deferred.fromCoroutine(self._read(meter_id, word, offset, count, decode))

    async def _read(
        self, meter_id: str, word: int, offset: int | None, count: int | None, decode: bool
    ) -> TableRead:
        partial = offset is not None or count is not None
        if partial:
            if count is None:
                raise ValueError("a partial read needs a count")
            request: Request = PartialReadOffset(table_id=word, offset=offset or 0, octet_count=count)
        else:
            request = FullRead(table_id=word)
        ctx = None
        if decode and not partial:  # the context is known after the meter's first read
            ctx = self._known_context(meter_id, word) or await self._context(meter_id, word)
        try:
            (response,) = await self._exchange(meter_id, "read", [request])
            data = response.data  # type: ignore[union-attr]
        except MeterRefused as exc:
            if exc.code is not ResponseCode.RSTL or partial:
                raise
            ctx = ctx or await self._context(meter_id, word)
            data = await self._read_in_chunks(meter_id, word, ctx, exc)
        value = None
        if ctx is not None and decode:
            value = self._decode_table(meter_id, word, data, ctx)
        return TableRead(meter_id=meter_id, table=word, offset=offset if partial else None, data=data, value=value)

    async def _read_in_chunks(self, meter_id: str, word: int, ctx: TableContext, refusal: MeterRefused) -> bytes:
        """A table too large for one response (``RSTL``): offset reads that fit, joined."""
        try:
            size = table_model(word).size(ctx)
        except UnknownTableError:
            size = None
        if size is None:
            raise refusal
        limit = refusal.response.max_size or DEFAULT_CHUNK + CHUNK_OVERHEAD
        chunk = max(64, limit - CHUNK_OVERHEAD)
        parts: list[bytes] = []
        for offset in range(0, size, chunk):
            count = min(chunk, size - offset)
            request = PartialReadOffset(table_id=word, offset=offset, octet_count=count)
            (response,) = await self._exchange(meter_id, "read", [request])
            assert isinstance(response, ReadResponse)
            parts.append(response.data)
        return b"".join(parts)

    def _decode_table(self, meter_id: str, word: int, data: bytes, ctx: TableContext) -> Any:
        try:
            model = table_model(word)
        except UnknownTableError:
            return None
        try:
            value = model.parse(data, ctx)
        except RemoteProtocolError:
            self.metrics.link(self.address(meter_id).link.value).error("malformed")
            raise
        number = word & 0x07FF
        if not word & MFG_TABLE and number in _DIMENSIONS:
            grown = self._contexts.get(meter_id, ctx).with_table(number, value)
            self._contexts[meter_id] = self._shared.setdefault(grown, grown)
        return value

    def _known_context(self, meter_id: str, word: int) -> TableContext | None:
        """The meter's context when it has every dimension table ``word`` needs, else None."""
        ctx = self._contexts.get(meter_id, self.base_context)
        for number in dimension_tables(word):
            if not _has_dimension(ctx, number):
                return None
        return ctx

    async def _context(self, meter_id: str, word: int) -> TableContext:
        """The meter's table context, with every dimension table ``word`` needs read first."""
        for number in dimension_tables(word):
            ctx = self._contexts.get(meter_id, self.base_context)
            if _has_dimension(ctx, number):
                continue
            (response,) = await self._exchange(meter_id, "read", [FullRead(table_id=number)])
            assert isinstance(response, ReadResponse)
            self._decode_table(meter_id, number, response.data, ctx)
        return self._contexts.get(meter_id, self.base_context)

    def table_context(self, meter_id: str) -> TableContext | None:
        """The cached table context of a meter, if any table was read."""
        return self._contexts.get(meter_id)

    def write_table(
        self, meter_id: str, table: int, data: bytes, *, offset: int | None = None, mfg: bool = False
    ) -> Deferred[None]:
        """Write a whole table, or ``data`` at ``offset``."""
        word = table | (MFG_TABLE if mfg else 0)
        request: Request = (
            FullWrite(table_id=word, data=data)
            if offset is None
            else PartialWriteOffset(table_id=word, offset=offset, data=data)
        )
        return Deferred.fromCoroutine(self._write(meter_id, request))

    async def _write(self, meter_id: str, request: Request) -> None:
        await self._exchange(meter_id, "write", [request])

    # -- procedures ----------------------------------------------------------------------------

    def run_procedure(
        self, meter_id: str, number: int, params: bytes = b"", *, mfg: bool = False
    ) -> Deferred[ProcedureResponse]:
        """Write ST7, read ST8, match procedure + sequence number; fire with the ST8 response."""
        return Deferred.fromCoroutine(self._procedure(meter_id, number, params, mfg))

    def _next_seq(self, meter_id: str) -> int:
        """1..255, never 0: a blank ST8 (zeros) must not match procedure 0's first call."""
        seq = self._seq.get(meter_id, 0) % 255 + 1
        self._seq[meter_id] = seq
        return seq

    async def _procedure(self, meter_id: str, number: int, params: bytes, mfg: bool) -> ProcedureResponse:
        ctx = await self._context(meter_id, 7)
        call = ProcedureInitiate(number=number, mfg=mfg, seq_nbr=self._next_seq(meter_id), params=params)
        write = FullWrite(table_id=7, data=ST7.build(call, ctx))
        read = FullRead(table_id=8)
        address = self.address(meter_id)
        started = False  # True once the meter may have run it
        tries = 1 + self.requests.retries
        for attempt in range(tries):
            last = attempt == tries - 1
            polling = started
            try:
                responses = await self._once(address, "procedure", [read] if polling else [write, read])
            except RequestTimeout as exc:
                started = True
                if last:
                    self._failed(meter_id, exc)
                    raise
                await _sleep(self.clock, self._backoff(attempt))
                continue
            outcome = self._procedure_outcome(meter_id, call, responses, polling, ctx)
            if isinstance(outcome, ProcedureResponse):
                return outcome
            started = outcome
            if last:
                raise MeterError(f"{meter_id}: procedure {number} did not complete after {tries} attempts")
            await _sleep(self.clock, self._backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _procedure_outcome(
        self, meter_id: str, call: ProcedureInitiate, responses: list[Response], polling: bool, ctx: TableContext
    ) -> ProcedureResponse | bool:
        """The final ST8 answer, or whether to poll (True) or start again (False)."""
        *written, st8 = responses
        for response in written:
            if isinstance(response, NokResponse):
                if response.code not in RETRY_CODES:
                    raise MeterRefused(meter_id, "procedure", response)
                return False  # the write was refused: it did not run; start it again
        if isinstance(st8, NokResponse):
            if st8.code not in RETRY_CODES:
                raise MeterRefused(meter_id, "procedure", st8)
            return True  # written (or being polled): read ST8 again
        assert isinstance(st8, ReadResponse)
        try:
            answer = ST8.parse(st8.data, ctx)
        except RemoteProtocolError:
            self.metrics.link(self.address(meter_id).link.value).error("malformed")
            raise
        if (int(answer.number), answer.mfg, answer.seq_nbr) != (int(call.number), call.mfg, call.seq_nbr):
            if polling:
                return False  # our write never arrived: start it again
            raise ProcedureMismatch(
                f"{meter_id}: ST8 answers procedure {int(answer.number)} seq {answer.seq_nbr}, "
                f"not {call.number} seq {call.seq_nbr}"
            )
        if answer.result_code == ProcedureResult.ACCEPTED_NOT_COMPLETED:
            return True
        return answer

    # -- identity and the path -----------------------------------------------------------------

    def identify(self, meter_id: str) -> Deferred[IdentifyResponse]:
        """The Identify service: standard, version, features."""
        return Deferred.fromCoroutine(self._identify(meter_id, "identify", None))

    async def _identify(self, meter_id: str, operation: str, retries: int | None) -> IdentifyResponse:
        (response,) = await self._exchange(meter_id, operation, [Identify()], retries=retries)
        assert isinstance(response, IdentifyResponse)
        return response

    def ping(self, meter_id: str) -> Deferred[float]:
        """One Identify round trip, no retry; fires with its duration in seconds."""
        return Deferred.fromCoroutine(self._ping(meter_id))

    async def _ping(self, meter_id: str) -> float:
        start = self.clock.seconds()
        await self._identify(meter_id, "ping", 0)
        return self.clock.seconds() - start

    def trace(self, meter_id: str) -> Deferred[tuple[str, ...]]:
        """The C12.22 Trace service, no retry: the AP titles on the way to the meter [L]."""
        return Deferred.fromCoroutine(self._trace(meter_id))

    async def _trace(self, meter_id: str) -> tuple[str, ...]:
        title = UniversalId.parse(self.address(meter_id).ap_title)
        (response,) = await self._exchange(meter_id, "trace", [Trace(ap_title=title)], retries=0)
        assert isinstance(response, TraceResponse)
        return tuple(str(t) for t in response.ap_titles)


_DIMENSION_FIELDS = {0: "st0", 21: "st21", 61: "st61", 62: "st62", 71: "st71"}


def _has_dimension(ctx: TableContext, number: int) -> bool:
    return getattr(ctx, _DIMENSION_FIELDS[number]) is not None


def _registry_resolver(registry: MeterRegistry) -> Callable[[str], MeterAddress]:
    def resolve(meter_id: str) -> MeterAddress:
        record = registry.get(meter_id)
        if record is None:
            raise UnknownMeter(meter_id)
        return address_of(record)

    return resolve
