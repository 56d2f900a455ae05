"""The Modbus/TCP link: PSEM services carried over the register map of Modbus collectors.

Theory of operation. One pymodbus asyncio client per collector endpoint (pymodbus serialises a
client's transactions; integration-notes.md: one client per endpoint). :class:`ModbusLink` is the
:class:`~amidcc.gateway.links.base.MeterLink`: each PSEM service of a request becomes a window
command of :mod:`amidcc.codecs.modbus_map` (an FC23 that writes the command and reads the answer,
plus FC16/FC04 for long data), run under a per-unit lock; what the map cannot express is answered
locally (``SNS``, ``RQTL``). The link also reads the native registers, the status bits and the
action coils for pollers that want values rather than tables.

Pacing. pymodbus runs one transaction at a time per client, so operations on different units of
one collector only take turns transaction by transaction: a burst of N operations of k
transactions each then finishes together after N*k transactions, and past the timeout all of
them fail at once. Operations therefore queue per collector in FIFO order
(``ModbusSettings.max_in_flight``, 1 by default) and each runs its transactions back to back;
an operation whose time runs out while queued leaves the queue without sending anything. A
transaction already sent is never abandoned half-way: when its operation's time runs out, the
operation fails at once, but the transaction runs on (shielded) until its answer or pymodbus's own
timeout, so the next request on the connection never meets a late answer to this one.

asyncio and Twisted meet in one place: every operation is a coroutine run with
``Deferred.fromFuture(asyncio.ensure_future(...))`` (the reactor is asyncioreactor), and clients
are built inside coroutines because pymodbus needs the running loop. Supervision is Twisted's:
each endpoint follows :data:`TRANSITIONS` (idle, connecting, up, waiting, stopped); a lost
connection (pymodbus's ``trace_connect(False)``) fails every pending request with
:class:`LinkDown` and schedules a reconnect with doubling backoff on the reactor. pymodbus's own
reconnect and retries are switched off; the meter client above owns retries.

Errors: no answer in time is :class:`RequestTimeout`, as is a collector's exception 0B (its meter
did not answer); exception 0A (no path to the meter) is :class:`LinkDown` and marks the unit
unreachable until it answers again; exception 06 (busy) becomes a PSEM ``BSY``; a stale window
sequence or a checksum mismatch (garbage) is :class:`ModbusProtocolError`.
"""

from __future__ import annotations

import asyncio
import enum
import math
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure

from amidcc.codecs import modbus_map as mm
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.errors import RemoteProtocolError
from amidcc.codecs.psem import (
    NokResponse,
    Security,
    decode_request,
    encode_response,
    pad_password,
)

from ..config import Config, ModbusCollector
from ..correlation import Clock
from ..metrics import GatewayMetrics, LinkMetrics
from .base import LinkDown, LinkError, LinkKind, MeterAddress, RequestTimeout

__all__ = [
    "TRANSITIONS",
    "EndpointState",
    "ModbusLink",
    "ModbusProtocolError",
    "ModbusSettings",
    "parse_endpoint",
]

_T = TypeVar("_T")
log = Logger()


class ModbusProtocolError(LinkError):
    """The collector answered something the register map does not allow (a Modbus exception
    other than busy/no-path/no-response, a stale window sequence, a data checksum mismatch)."""


class _NoResponse(Exception):
    """pymodbus gave up waiting for a transaction's answer."""


def parse_endpoint(text: str) -> tuple[str, int]:
    """``tcp:HOST:PORT`` or ``tcp:host=HOST:port=PORT`` -> (host, port)."""
    kind, *parts = text.split(":")
    args = [p for p in parts if "=" not in p]
    kwargs = dict(p.split("=", 1) for p in parts if "=" in p)
    host = kwargs.get("host") or (args[0] if args else "")
    port = kwargs.get("port") or (args[1] if len(args) > 1 else "")
    if kind != "tcp" or not host or not port.isdigit():
        raise ValueError(f"not a Modbus/TCP client endpoint: {text!r} (tcp:HOST:PORT)")
    return host, int(port)


@dataclass(frozen=True, kw_only=True, slots=True)
class ModbusSettings:
    """What the Modbus link needs (``[modbus]``, plus the meters' password from ``[c1222]``)."""

    collectors: tuple[ModbusCollector, ...]
    """Endpoints and the unit ids behind each."""
    timeout: float = 3.0
    """Timeout of one Modbus transaction (a request's own timeout bounds the whole request)."""
    password: bytes | None = None
    """20-byte PSEM password the window's Security command carries; None: no credential."""
    user_id: int = 0
    """User id sent with the password."""
    credential_ttl: float = 30.0
    """Seconds a unit's credential is trusted before Security is sent again (keep it below the
    meters' session timeout; an ``ISC`` answer sends it again at once)."""
    reconnect_base: float = 0.5
    """First reconnect delay (then doubling)."""
    reconnect_max: float = 30.0
    """Longest reconnect delay."""
    busy_poll: float = 0.05
    """Delay between polls of a window that answers BUSY."""
    max_no_responses: int = 20
    """Unanswered transactions in a row after which pymodbus drops the connection."""
    max_in_flight: int = 1
    """Operations running at once through one collector; the rest wait in FIFO order (see
    "Pacing": more than one only interleaves their transactions on the one client)."""

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> ModbusSettings:
        """Settings from a loaded config."""
        c = config.c1222
        values: dict[str, Any] = {
            "collectors": config.modbus.collectors,
            "timeout": config.modbus.timeout,
            "password": pad_password(c.password, fill=b" ") if c.password else None,
            "user_id": c.user_id,
        }
        values.update(overrides)
        return cls(**values)


class EndpointState(enum.Enum):
    """Supervision states of one collector connection."""

    IDLE = "idle"
    CONNECTING = "connecting"
    UP = "up"
    WAITING = "waiting"  #: down, a reconnect is scheduled
    STOPPED = "stopped"


_S = EndpointState
#: (state, event) -> next state. Anything else is ignored (and logged): late callbacks of a
#: stopped client are expected.
TRANSITIONS: dict[tuple[EndpointState, str], EndpointState] = {
    (_S.IDLE, "start"): _S.CONNECTING,
    (_S.CONNECTING, "connected"): _S.UP,
    (_S.CONNECTING, "failed"): _S.WAITING,
    (_S.UP, "lost"): _S.WAITING,
    (_S.WAITING, "retry"): _S.CONNECTING,
    **{(s, "stop"): _S.STOPPED for s in _S},
}


@dataclass(eq=False)
class _Endpoint:
    """One collector: its client, state, pending calls and per-unit window state."""

    name: str
    host: str
    port: int
    units: frozenset[int]
    state: EndpointState = EndpointState.IDLE
    client: Any = None
    delay: float = 0.0
    retry_call: Any = None
    pending: set[_Call] = field(default_factory=set)
    slots: asyncio.Semaphore | None = None
    locks: dict[int, asyncio.Lock] = field(default_factory=dict)
    sequence: dict[int, int] = field(default_factory=dict)
    credential_at: dict[int, float] = field(default_factory=dict)
    path_down: set[int] = field(default_factory=set)

    def slot(self, limit: int) -> asyncio.Semaphore:
        """The collector's operation slots (made on first use, inside the running loop)."""
        if self.slots is None:
            self.slots = asyncio.Semaphore(limit)
        return self.slots

    def lock(self, unit: int) -> asyncio.Lock:
        lk = self.locks.get(unit)
        if lk is None:
            lk = self.locks[unit] = asyncio.Lock()
        return lk

    def next_sequence(self, unit: int) -> int:
        seq = self.sequence.get(unit, 0) % 255 + 1
        self.sequence[unit] = seq
        return seq


class _Call:
    """One operation in flight: its asyncio task and, once known, why it was cancelled."""

    __slots__ = ("task", "reason")

    def __init__(self, task: asyncio.Future[Any]) -> None:
        self.task = task
        self.reason: Exception | None = None


class ModbusLink:
    """The gateway's Modbus/TCP link (one client per collector endpoint)."""

    kind = LinkKind.MODBUS

    def __init__(
        self, settings: ModbusSettings, *, clock: Clock, metrics: GatewayMetrics | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = metrics if metrics is not None else GatewayMetrics(process=False)
        self.counters: LinkMetrics = self.metrics.link(str(self.kind))
        self.endpoints: dict[str, _Endpoint] = {}
        for c in settings.collectors:
            host, port = parse_endpoint(c.endpoint)
            self.endpoints[c.endpoint] = _Endpoint(c.endpoint, host, port, frozenset(c.unit_ids))

    # -- supervision ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect every endpoint (from the reactor, so pymodbus sees the running loop)."""
        for ep in self.endpoints.values():
            if self._event(ep, "start"):
                self.clock.callLater(0, self._connect, ep)

    def stop(self) -> Deferred[None]:
        """Close every client; pending requests fail with LinkDown."""
        for ep in self.endpoints.values():
            self._event(ep, "stop")
            if ep.retry_call is not None and ep.retry_call.active():
                ep.retry_call.cancel()
            self._fail_pending(ep, LinkDown(f"Modbus link to {ep.name} stopped"))
            client, ep.client = ep.client, None
            if client is not None:
                client.close()
        self._gauge()
        d: Deferred[None] = Deferred()
        self.clock.callLater(0, d.callback, None)  # let pymodbus's close callbacks run
        return d

    def _event(self, ep: _Endpoint, event: str) -> bool:
        nxt = TRANSITIONS.get((ep.state, event))
        if nxt is None:
            log.debug("modbus {endpoint}: {event} ignored in {state}", endpoint=ep.name,
                      event=event, state=ep.state.value)  # fmt: skip
            return False
        ep.state = nxt
        return True

    def _connect(self, ep: _Endpoint) -> None:
        if ep.state is not EndpointState.CONNECTING:
            return
        d = Deferred.fromFuture(asyncio.ensure_future(self._open(ep)))
        d.addCallbacks(lambda ok: self._opened(ep, ok), lambda f: self._opened(ep, False, f))

    async def _open(self, ep: _Endpoint) -> bool:
        from pymodbus.client import AsyncModbusTcpClient

        if ep.client is not None:
            ep.client.close()
        client = AsyncModbusTcpClient(
            ep.host, port=ep.port, name=ep.name, timeout=self.settings.timeout, retries=0,
            reconnect_delay=0, trace_connect=lambda up: self._traced(ep, client, up),
            trace_packet=self._packet,
        )  # fmt: skip
        client.set_max_no_responses(self.settings.max_no_responses)
        ep.client = client
        return bool(await client.connect())

    def _opened(self, ep: _Endpoint, ok: bool, failure: Failure | None = None) -> None:
        if ok and self._event(ep, "connected"):
            log.info("modbus {endpoint}: connected", endpoint=ep.name)
            ep.delay = 0.0
            self._gauge()
            return
        if failure is not None:
            log.debug("modbus {endpoint}: connect failed: {f}", endpoint=ep.name, f=failure.value)
        if self._event(ep, "failed"):
            self._schedule_retry(ep)

    def _traced(self, ep: _Endpoint, client: Any, up: bool) -> None:
        if up or client is not ep.client or ep.state is not EndpointState.UP:
            return
        self._event(ep, "lost")
        log.warn("modbus {endpoint}: connection lost", endpoint=ep.name)
        ep.credential_at.clear()
        self._fail_pending(ep, LinkDown(f"Modbus collector {ep.name} disconnected"))
        self._gauge()
        self._schedule_retry(ep)

    def _schedule_retry(self, ep: _Endpoint) -> None:
        s = self.settings
        ep.delay = min(s.reconnect_max, ep.delay * 2 if ep.delay else s.reconnect_base)
        ep.retry_call = self.clock.callLater(ep.delay, self._retry, ep)

    def _retry(self, ep: _Endpoint) -> None:
        if self._event(ep, "retry"):
            self._connect(ep)

    def _fail_pending(self, ep: _Endpoint, reason: Exception) -> None:
        for call in list(ep.pending):
            call.reason = reason
            call.task.cancel()

    def _packet(self, sending: bool, data: bytes) -> bytes:
        (self.counters.sent if sending else self.counters.received)(len(data))
        return data

    def _gauge(self) -> None:
        units = sum(len(ep.units) for ep in self.endpoints.values())
        up = sum(len(ep.units - ep.path_down) for ep in self.endpoints.values() if self._up(ep))
        self.metrics.set_meters(str(self.kind), registered=units, reachable=up)

    @staticmethod
    def _up(ep: _Endpoint) -> bool:
        return ep.state is EndpointState.UP and ep.client is not None and ep.client.connected

    # -- MeterLink -----------------------------------------------------------------------------

    def endpoint_for(self, address: MeterAddress) -> str:
        """The collector endpoint of a meter: the first hop of its route when that names one,
        else the only collector configured with its unit id. KeyError when there is none."""
        if address.route and address.route[0] in self.endpoints:
            return address.route[0]
        found = [n for n, ep in self.endpoints.items() if address.unit_id in ep.units]
        if len(found) != 1:
            raise KeyError(f"no single Modbus collector for {address.meter_id} "
                           f"(unit {address.unit_id}, route {address.route})")  # fmt: skip
        return found[0]

    def is_reachable(self, address: MeterAddress) -> bool:
        """Whether the meter's collector is connected and the meter's path is not known down."""
        try:
            ep = self.endpoints[self.endpoint_for(address)]
        except KeyError:
            return False
        return self._up(ep) and address.unit_id not in ep.path_down

    def request(
        self, address: MeterAddress, services: Sequence[bytes], *, timeout: float
    ) -> Deferred[list[bytes]]:
        """Carry PSEM services to the meter through its collector's window, one at a time."""
        return self._run(address, timeout, lambda ep, unit: self._services(ep, unit, services))

    def read_native(self, address: MeterAddress, *, timeout: float) -> Deferred[mm.NativeReadings]:
        """One FC04 read of the native block, decoded."""
        return self._run(address, timeout, self._native)

    def read_status_bits(self, address: MeterAddress, *, timeout: float) -> Deferred[mm.StatusBits]:
        """One FC02 read of the ST3 status bits."""
        return self._run(address, timeout, self._status_bits)

    def run_coil(self, address: MeterAddress, coil: mm.Coil, *, timeout: float) -> Deferred[None]:
        """Write 1 to an action coil (FC05)."""

        async def write(ep: _Endpoint, unit: int) -> None:
            await self._call(ep, unit, lambda c: c.write_coil(int(coil), True, device_id=unit))

        return self._run(address, timeout, write)

    # -- running operations --------------------------------------------------------------------

    def _run(
        self,
        address: MeterAddress,
        timeout: float,
        operation: Callable[[_Endpoint, int], Coroutine[Any, Any, _T]],
    ) -> Deferred[_T]:
        try:
            ep = self.endpoints[self.endpoint_for(address)]
        except KeyError as e:
            return fail(LinkDown(str(e)))
        unit = address.unit_id
        if unit is None:
            return fail(LinkDown(f"meter {address.meter_id} has no Modbus unit id"))
        if not self._up(ep):
            return fail(LinkDown(f"Modbus collector {ep.name} is {ep.state.value}"))

        async def locked() -> _T:
            async with ep.slot(self.settings.max_in_flight), ep.lock(unit):
                return await operation(ep, unit)

        call = _Call(asyncio.ensure_future(locked()))
        ep.pending.add(call)
        expiry = self.clock.callLater(timeout, self._expire, call, unit, ep, timeout)
        call.task.add_done_callback(lambda _: self._finished(ep, call, expiry))
        d = Deferred.fromFuture(call.task)
        return d.addErrback(self._translate, ep, unit, call, timeout)

    def _expire(self, call: _Call, unit: int, ep: _Endpoint, timeout: float) -> None:
        call.reason = RequestTimeout(f"unit {unit} via {ep.name}: no answer in {timeout} s")
        self.counters.error("timeout")
        call.task.cancel()

    @staticmethod
    def _finished(ep: _Endpoint, call: _Call, expiry: Any) -> None:
        ep.pending.discard(call)
        if expiry.active():
            expiry.cancel()

    def _translate(self, f: Failure, ep: _Endpoint, unit: int, call: _Call, timeout: float) -> Any:
        from pymodbus.exceptions import ConnectionException, ModbusIOException

        err = f.value
        where = f"unit {unit} via {ep.name}"
        if call.reason is not None and isinstance(err, CancelledError | asyncio.CancelledError):
            raise call.reason
        if isinstance(err, _NoResponse | ModbusIOException):
            self.counters.error("timeout")
            raise RequestTimeout(f"{where}: no answer in {timeout} s ({err or 'timeout'})")
        if isinstance(err, ModbusProtocolError):
            self.counters.error("malformed")
        if isinstance(err, ConnectionException):
            raise LinkDown(f"{where}: {err}")
        return f

    async def _call(self, ep: _Endpoint, unit: int, send: Callable[[Any], Any]) -> Any:
        """One Modbus transaction; Modbus exceptions mapped (busy is returned, not raised)."""
        from pymodbus.exceptions import ModbusIOException

        if ep.client is None:
            raise LinkDown(f"Modbus collector {ep.name} is not connected")
        transaction = asyncio.ensure_future(send(ep.client))
        transaction.add_done_callback(_retrieve)  # an abandoned one's error is nobody's
        try:
            response = await asyncio.shield(transaction)  # see "Pacing"
        except ModbusIOException as e:
            raise _NoResponse(str(e)) from None
        code = getattr(response, "exception_code", 0) if response.isError() else 0
        if code == mm.ExceptionCode.GATEWAY_TARGET_NO_RESPONSE:
            raise _NoResponse(f"collector {ep.name}: unit {unit} did not answer (exception 0B)")
        if code == mm.ExceptionCode.GATEWAY_PATH_UNAVAILABLE:
            self._path(ep, unit, down=True)
            raise LinkDown(f"collector {ep.name}: no path to unit {unit} (exception 0A)")
        if code and code != mm.ExceptionCode.DEVICE_BUSY:
            raise ModbusProtocolError(f"collector {ep.name}, unit {unit}: Modbus exception {code}")
        self._path(ep, unit, down=False)
        return response

    def _path(self, ep: _Endpoint, unit: int, *, down: bool) -> None:
        if (unit in ep.path_down) != down:
            (ep.path_down.add if down else ep.path_down.discard)(unit)
            self._gauge()

    async def _native(self, ep: _Endpoint, unit: int) -> mm.NativeReadings:
        r = await self._call(ep, unit, lambda c: c.read_input_registers(
            mm.NATIVE_ADDRESS, count=mm.NATIVE_COUNT, device_id=unit))  # fmt: skip
        return self._decode(mm.decode_native, _registers(r, ep, unit))

    async def _status_bits(self, ep: _Endpoint, unit: int) -> mm.StatusBits:
        r = await self._call(ep, unit, lambda c: c.read_discrete_inputs(
            0, count=mm.STATUS_BITS_COUNT, device_id=unit))  # fmt: skip
        if r.isError():
            raise ModbusProtocolError(f"collector {ep.name}, unit {unit}: busy")
        return self._decode(mm.decode_status_bits, list(r.bits))

    @staticmethod
    def _decode(decode: Callable[[Any], _T], value: Any) -> _T:
        try:
            return decode(value)
        except RemoteProtocolError as e:
            raise ModbusProtocolError(str(e)) from None

    # -- PSEM over the window ------------------------------------------------------------------

    async def _services(self, ep: _Endpoint, unit: int, services: Sequence[bytes]) -> list[bytes]:
        out = []
        for raw in services:
            answer = await self._service(ep, unit, raw)
            if answer[:1] == bytes((ResponseCode.ISC,)) and self.settings.password is not None:
                ep.credential_at.pop(unit, None)  # the credential may have expired: once more
                answer = await self._service(ep, unit, raw)
            out.append(answer)
        return out

    async def _service(self, ep: _Endpoint, unit: int, raw: bytes) -> bytes:
        try:
            req = decode_request(raw)
        except RemoteProtocolError as e:  # our own client's bytes; answer as a meter would
            return bytes((int(e.response_code),))
        win = mm.request_to_window(req, ep.next_sequence(unit))
        if isinstance(win, NokResponse):
            return encode_response(win)
        c = mm.WindowCommand
        if win.command in (c.LOGOFF, c.TERMINATE):
            ep.credential_at.pop(unit, None)
        elif win.command is c.SECURITY:  # the caller's own credential holds from now on
            ep.credential_at[unit] = self.clock.seconds()
        else:
            await self._ensure_credential(ep, unit)
        return await self._window(ep, unit, win)

    async def _ensure_credential(self, ep: _Endpoint, unit: int) -> None:
        s = self.settings
        if s.password is None:
            return
        last = ep.credential_at.get(unit)
        now = self.clock.seconds()
        if last is not None and now - last < s.credential_ttl:
            return
        sec = mm.request_to_window(Security(password=s.password, user_id=s.user_id),
                                   ep.next_sequence(unit))  # fmt: skip
        assert isinstance(sec, mm.WindowRequest)
        answer = await self._window(ep, unit, sec)
        if answer[:1] == b"\x00":
            ep.credential_at[unit] = now

    async def _window(self, ep: _Endpoint, unit: int, win: mm.WindowRequest) -> bytes:
        plan = mm.plan_window_write(win)
        for address, words in plan[:-1]:
            await self._call(ep, unit, _writer(address, words, unit))
        address, words = plan[-1]
        r = await self._call(ep, unit, lambda c: c.readwrite_registers(
            read_address=mm.RESPONSE_HEADER, read_count=mm.MAX_READ_REGISTERS,
            write_address=address, values=list(words), device_id=unit))  # fmt: skip
        if r.isError():  # busy collector: the meter's answer is BSY
            return bytes((ResponseCode.BSY,))
        block = _registers(r, ep, unit)
        header = self._decode(mm.decode_window_header, block)
        while header.state is mm.WindowState.BUSY:
            await asyncio.sleep(self.settings.busy_poll)
            block = await self._read_input(ep, unit, mm.RESPONSE_HEADER, mm.MAX_READ_REGISTERS)
            header = self._decode(mm.decode_window_header, block)
        need = mm.RESPONSE_HEADER_WORDS + math.ceil(header.length / 2)
        while len(block) < need:
            count = min(mm.MAX_READ_REGISTERS, need - len(block))
            block += await self._read_input(ep, unit, mm.RESPONSE_HEADER + len(block), count)
        response = self._decode(mm.decode_window_response, block)
        try:
            return mm.window_to_response(win, response)
        except RemoteProtocolError as e:
            raise ModbusProtocolError(f"collector {ep.name}, unit {unit}: {e}") from None

    async def _read_input(self, ep: _Endpoint, unit: int, address: int, count: int) -> list[int]:
        r = await self._call(ep, unit, lambda c: c.read_input_registers(
            address, count=count, device_id=unit))  # fmt: skip
        return _registers(r, ep, unit)


def _retrieve(transaction: asyncio.Future[Any]) -> None:
    if not transaction.cancelled():
        transaction.exception()


def _writer(address: int, words: Sequence[int], unit: int) -> Callable[[Any], Any]:
    return lambda client: client.write_registers(address, list(words), device_id=unit)


def _registers(response: Any, ep: _Endpoint, unit: int) -> list[int]:
    if response.isError():
        raise ModbusProtocolError(f"collector {ep.name}, unit {unit}: busy")
    return list(response.registers)
