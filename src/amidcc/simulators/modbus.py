"""Simulated Modbus/TCP collectors: many meters behind one pymodbus server, one unit id each.

Theory of operation. :class:`ModbusMeterPort` is the sans-I/O part: the register map of
:mod:`amidcc.codecs.modbus_map` laid over the collector's :class:`~amidcc.simulators.SimMeter` s.
A read of the native block computes it from the meter at ``now``; a write of the window's command
word decodes the request block and runs the equivalent PSEM service through
``SimMeter.handle_services`` (C12.22 sessionless rules, channel ``"modbus"``), led by a
``Security`` service when a credential was set; coils run the equivalent procedure.

:class:`ModbusCollector` puts a port on the network: a pymodbus ``ModbusTcpServer`` on a loopback
port whose datastore is the port. Two pymodbus 3.16 internals are replaced (pymodbus is pinned
below 3.17): the server's ``context`` becomes a thin adapter after construction (``SimDevice`` keeps
a register array per device, and a 64 K-register window per meter would not let thousands of meters
fit), and the per-connection request handler answers each request with its own transaction id
(see :func:`_server_class`). The adapter honours the link faults of each meter (silent, collector
down, packet loss, latency, garbage) and the collector's own outage (:meth:`ModbusCollector.go_down`).
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from amidcc.codecs import modbus_map as mm
from amidcc.codecs.c1219 import ProcedureInitiate, RemoteResetAction
from amidcc.codecs.c1219.fields import encode_table_idb
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.errors import RemoteProtocolError
from amidcc.codecs.psem import Security, encode_request

from .faults import StdEvent
from .meter import SimMeter
from .procedures import run_procedure
from .tables import program_bytes

__all__ = [
    "MODBUS_CHANNEL",
    "Availability",
    "CollectorSettings",
    "ModbusCollector",
    "ModbusMeterPort",
    "SilentMode",
    "native_readings",
    "start_collectors",
]

#: The meters' PSEM channel name for Modbus (a network channel for FR26 port sharing).
MODBUS_CHANNEL = "modbus"

#: The procedure each action coil runs (docs/protocols.md, "Coils").
COIL_PROCEDURES: dict[mm.Coil, ProcedureInitiate] = {
    mm.Coil.SELF_TEST: ProcedureInitiate(number=11),
    mm.Coil.METROLOGY_CHECK: ProcedureInitiate(number=0, mfg=True),
    mm.Coil.CLEAR_STD_STATUS: ProcedureInitiate(number=7),
    mm.Coil.CLEAR_MFG_STATUS: ProcedureInitiate(number=8),
    mm.Coil.DEMAND_RESET: ProcedureInitiate(
        number=9, params=bytes((int(RemoteResetAction.DEMAND_RESET),))
    ),
}


def native_readings(meter: SimMeter, now: float) -> mm.NativeReadings:
    """The native register block of ``meter`` at ``now`` (the same model its tables show)."""
    ident = meter.identity
    delivered, received = meter.registers(now)
    max_w, max_at = meter.max_demand(now)
    std, mfg = meter.status(now)
    events = meter.event_records(now)
    test_at, test_kind = meter.last_self_test(now)
    k = math.floor(now / meter.config.interval)
    st5 = program_bytes(meter, 5)
    return mm.NativeReadings(
        manufacturer=ident.manufacturer.rstrip(), model=ident.model.rstrip(),
        serial=ident.serial.rstrip(), hw_version=ident.hw_version, hw_revision=ident.hw_revision,
        fw_version=ident.fw_version, fw_revision=ident.fw_revision,
        device_id=st5[:20].decode("ascii", "replace").rstrip(" \x00"),
        energy_delivered_wh=delivered, energy_received_wh=received,
        max_demand_w=min(round(max_w), 0xFFFFFFFF), max_demand_time=_u32(max_at),
        demand_resets=meter.demand_resets & 0xFFFF,
        voltage_dv=meter.curve.voltage_dv(k, meter.config.nominal_voltage),
        power_factor_pm=meter.curve.power_factor_pm(k), meter_time=_u32(meter.clock(now)),
        ed_mode=meter.mode & 0xFF, std_status=std, mfg_status=mfg & 0xFFFF,
        event_entries=min(len(events), 0xFFFF),
        event_total=(events[-1].seq + 1) & 0xFFFFFFFF if events else 0,
        last_event_code=events[-1].code if events else 0,
        last_event_time=_u32(events[-1].time) if events else 0,
        self_test_time=_u32(test_at), self_test_kind=int(test_kind),
        self_test_failing=meter.failing_checks(test_at) & 0xFFFF,
    )  # fmt: skip


def _u32(t: float) -> int:
    return max(0, min(math.floor(t), 0xFFFFFFFF))


class Availability(enum.Enum):
    """Whether a unit can answer now, and if not, why."""

    OK = "ok"
    UNKNOWN_UNIT = "unknown-unit"  #: no meter with that unit id behind this collector
    PATH_DOWN = "path-down"  #: the meter's collector-down link fault
    SILENT = "silent"  #: the meter's silent link fault, or no power


class _Window:
    """One unit's window: the request registers, the posted answer and the credential."""

    __slots__ = ("header", "data", "response", "credential")

    def __init__(self) -> None:
        self.header = [0] * mm.WINDOW_HEADER_WORDS
        self.data = bytearray()
        self.response: tuple[int, ...] = ()
        self.credential: tuple[bytes, int, float] | None = None  # (password, user id, last use)


class ModbusMeterPort:
    """The register map over a set of meters, by unit id. Sans-I/O: ``now`` is always passed in.

    ``read`` and ``write`` raise :class:`~amidcc.codecs.modbus_map.MapAddressError` for addresses
    outside the map; everything inside it gets an answer. Callers check :meth:`availability` first.
    """

    def __init__(self, meters: Mapping[int, SimMeter], *, coil_user_id: int = 1) -> None:
        self.meters: dict[int, SimMeter] = dict(meters)
        self.coil_user_id = coil_user_id
        self._windows: dict[int, _Window] = {}

    def availability(self, unit: int, now: float) -> Availability:
        """Can ``unit`` answer at ``now``?"""
        meter = self.meters.get(unit)
        if meter is None:
            return Availability.UNKNOWN_UNIT
        faults = meter.link_faults
        if faults.collector_down:
            return Availability.PATH_DOWN
        if faults.silent or not meter.powered(now):
            return Availability.SILENT
        return Availability.OK

    def _window(self, unit: int) -> _Window:
        w = self._windows.get(unit)
        if w is None:
            w = self._windows[unit] = _Window()
        return w

    # ------------------------------------------------------------------ reads

    def read(self, unit: int, space: mm.Space, address: int, count: int, now: float) -> list[Any]:
        """``count`` registers (ints) or bits (bools) at ``address``."""
        region = mm.locate(space, address, count)
        meter = self.meters[unit]
        if region is mm.Region.NATIVE:
            words = mm.encode_native(native_readings(meter, now))
            return list(words[address - mm.NATIVE_ADDRESS : address - mm.NATIVE_ADDRESS + count])
        if region is mm.Region.STATUS_BITS:
            std, mfg = meter.status(now)
            status = mm.StatusBits(
                std_status=std, mfg_status=mfg & 0xFFFF, ed_mode=meter.mode & 0xFF
            )
            return list(mm.encode_status_bits(status)[address : address + count])
        if region is mm.Region.COILS:
            return [False] * count  # actions run at once: a coil reads 0 when done
        w = self._window(unit)
        if region is mm.Region.RESPONSE:
            return _slice(w.response, address - mm.RESPONSE_HEADER, count)
        request = tuple(w.header) + mm.bytes_to_words(bytes(w.data))
        return _slice(request, address - mm.WINDOW_REQUEST, count)

    # ------------------------------------------------------------------ writes

    def write(
        self, unit: int, space: mm.Space, address: int, values: Sequence[Any], now: float
    ) -> None:
        """Write registers or coils; a write covering the COMMAND word runs the command after it."""
        region = mm.locate(space, address, len(values), write=True)
        meter = self.meters[unit]
        if region is mm.Region.COILS:
            for i, on in enumerate(values):
                if on:
                    self._run_coil(meter, mm.Coil(address + i), now)
            return
        w = self._window(unit)
        command = mm.WINDOW_REQUEST + mm.WINDOW_HEADER_WORDS - 1
        for i, value in enumerate(values):
            self._store(w, address + i, int(value))
        if address <= command < address + len(values):
            w.response = mm.encode_window_response(self._execute(meter, w, now))

    @staticmethod
    def _store(w: _Window, address: int, value: int) -> None:
        if address < mm.WINDOW_DATA:
            w.header[address - mm.WINDOW_REQUEST] = value
            return
        at = 2 * (address - mm.WINDOW_DATA)
        if len(w.data) < at + 2:
            w.data.extend(bytes(at + 2 - len(w.data)))
        w.data[at : at + 2] = value.to_bytes(2, "big")

    def _run_coil(self, meter: SimMeter, coil: mm.Coil, now: float) -> None:
        proc = COIL_PROCEDURES[coil]
        run_procedure(meter, proc, now, user_id=self.coil_user_id)
        word = encode_table_idb(proc.number, proc.mfg, proc.selector)
        meter.log(now, StdEvent.PROCEDURE_INVOKED, word, self.coil_user_id)

    def _execute(self, meter: SimMeter, w: _Window, now: float) -> mm.WindowResponse:
        header = w.header
        try:
            req = mm.decode_window_request(header, mm.bytes_to_words(bytes(w.data)))
        except RemoteProtocolError as e:
            return mm.WindowResponse(
                command=header[5] >> 8, sequence=header[5] & 0xFF, state=mm.WindowState.DONE,
                code=int(e.response_code),
            )  # fmt: skip
        return self._run(meter, w, req, now)

    def _run(
        self, meter: SimMeter, w: _Window, req: mm.WindowRequest, now: float
    ) -> mm.WindowResponse:
        c = mm.WindowCommand
        if req.command in (c.LOGOFF, c.TERMINATE):
            w.credential = None
            return mm.response_to_window(req, b"\x00")
        services = [encode_request(mm.window_to_request(req))]
        cred = self._credential(meter, w, now)
        if req.command is not c.SECURITY and cred is not None:
            services.insert(0, encode_request(Security(password=cred[0], user_id=cred[1])))
            w.credential = (cred[0], cred[1], now)
        answers = meter.handle_services(services, now, channel=MODBUS_CHANNEL)
        if not answers:  # lost power between the check and now: nothing to post
            return mm.response_to_window(req, bytes((ResponseCode.BSY,)))
        answer = answers[-1]
        if req.command is c.SECURITY:
            ok = answer[:1] == b"\x00"
            w.credential = (req.data, req.user_id, now) if ok else None
        return mm.response_to_window(req, answer)

    @staticmethod
    def _credential(meter: SimMeter, w: _Window, now: float) -> tuple[bytes, int, float] | None:
        cred = w.credential
        timeout = meter.config.session_timeout
        if cred is not None and timeout and now - cred[2] > timeout:
            w.credential = cred = None
        return cred


def _slice(block: Sequence[int], start: int, count: int) -> list[int]:
    part = list(block[start : start + count])
    return part + [0] * (count - len(part))


# ---------------------------------------------------------------------- the pymodbus collector

_SPACES = {1: mm.Space.COILS, 5: mm.Space.COILS, 15: mm.Space.COILS, 2: mm.Space.DISCRETE_INPUTS,
           4: mm.Space.INPUT, 3: mm.Space.HOLDING, 6: mm.Space.HOLDING, 16: mm.Space.HOLDING,
           22: mm.Space.HOLDING, 23: mm.Space.HOLDING}  # fmt: skip
_WRITE_FIRST = frozenset({5, 6, 15, 16, 22, 23})  # function codes whose set comes before a get


class SilentMode(enum.StrEnum):
    """How a collector answers for a meter that does not answer."""

    EXCEPTION = "exception"  #: Modbus exception 0B, as a real gateway does after its own timeout
    DROP = "drop"  #: no answer at all (the client times out)


@dataclass(frozen=True, kw_only=True, slots=True)
class CollectorSettings:
    """Knobs of one simulated collector."""

    host: str = "127.0.0.1"
    """Interface to listen on (loopback by default)."""
    port: int = 0
    """TCP port; 0 picks a free one (see :attr:`ModbusCollector.port`)."""
    silent: SilentMode = SilentMode.EXCEPTION
    """Answer for silent or unpowered meters and unknown unit ids."""
    seed: int = 0
    """Seed of the packet-loss and garbage draws (same seed, same run)."""
    coil_user_id: int = 1
    """User id logged for procedures started by a coil."""


class _Datastore:
    """What pymodbus's request PDUs call (``async_getValues`` / ``async_setValues``)."""

    def __init__(self, collector: ModbusCollector) -> None:
        self.collector = collector
        self._echo: dict[tuple[int, int], list[Any]] = {}

    def device_ids(self) -> list[int]:
        return sorted(self.collector.port_model.meters)

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> Any:  # noqa: N802
        echo = self._echo.pop((device_id, address), None) if func_code == 5 else None
        if echo is not None:
            return echo  # FC05 answers with what was written (Modbus spec), the coil reads 0 after
        if func_code not in _WRITE_FIRST and (refusal := await self.collector.gate(device_id)):
            return refusal
        c = self.collector
        try:
            values = c.port_model.read(device_id, _SPACES[func_code], address, count, c.clock())
        except mm.MapAddressError as e:
            return _exc(e.exception_code)
        return c.scramble(device_id, address, values)

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: Any
    ) -> Any:  # noqa: N802
        if refusal := await self.collector.gate(device_id):
            return refusal
        c = self.collector
        try:
            c.port_model.write(device_id, _SPACES[func_code], address, list(values), c.clock())
        except mm.MapAddressError as e:
            return _exc(e.exception_code)
        if func_code == 5:
            self._echo[(device_id, address)] = list(values)
        return None


def _server_class() -> Any:
    """pymodbus's TCP server, answering every request, each with its own transaction id.

    Two things of pymodbus 3.16's request handler are replaced. It keeps one ``last_pdu`` per
    connection and stamps every answer with it, so an answer delayed by the latency fault would
    carry the id of a newer request on the same connection (a client that gave up and asked again
    would take the stale answer as its own). And it decodes one frame per read from the socket:
    when two requests arrive in one segment (a client that gave up on a request sends the next
    one while the first is still unread, which a busy loop turns into one read), the second
    waits in the buffer until more bytes come, and from then on the collector answers one
    request behind, every answer stale, for the life of the connection. A Modbus/TCP server reads
    a stream: here every whole frame of a read is answered.
    """
    from pymodbus.constants import ExcCodes
    from pymodbus.exceptions import ModbusIOException, NoSuchIdException
    from pymodbus.pdu import ExceptionResponse
    from pymodbus.server import ModbusTcpServer
    from pymodbus.server.requesthandler import ServerRequestHandler
    from pymodbus.transaction import TransactionManager

    class Handler(ServerRequestHandler):  # type: ignore[misc]
        tasks: set[asyncio.Task[None]]

        def callback_data(self, data: bytes, addr: tuple[str, int] | None = None) -> int:
            used = 0
            while used < len(data):
                step = self.one_frame(data[used:], addr)
                if step <= 0:
                    break  # a partial frame: wait for the rest
                used += step
            return used

        def one_frame(self, data: bytes, addr: tuple[str, int] | None) -> int:
            try:
                used: int = TransactionManager.callback_data(self, data, addr)
            except ModbusIOException as exc:
                code = 0 if exc.fcode is None else exc.fcode
                self.server_send(ExceptionResponse(code, exception_code=ExcCodes.ILLEGAL_FUNCTION,
                                 device_id=exc.dev_id, transaction=exc.transaction_id), addr)  # fmt: skip
                return len(data)
            if self.last_pdu:
                task = self.loop.create_task(self.answer(self.last_pdu, self.last_addr))
                if not hasattr(self, "tasks"):
                    self.tasks = set()
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            return used

        async def answer(self, pdu: Any, addr: Any) -> None:
            try:
                response = await pdu.datastore_update(self.server.context, pdu.dev_id)
            except NoSuchIdException:
                return  # silence: dropped by a link fault
            except Exception:  # a bug in the datastore: answer as pymodbus does, keep serving
                response = ExceptionResponse(pdu.function_code, ExcCodes.DEVICE_FAILURE)
            response.transaction_id = pdu.transaction_id
            response.dev_id = pdu.dev_id
            self.server_send(response, addr)

    class Server(ModbusTcpServer):  # type: ignore[misc]
        def callback_new_connection(self) -> Handler:
            return Handler(self, self.trace_packet, self.trace_pdu, self.trace_connect)

    return Server


def _exc(code: int) -> Any:
    from pymodbus.constants import ExcCodes

    return ExcCodes(code)


class ModbusCollector:
    """One simulated Modbus/TCP collector (a pymodbus server) carrying meters as unit ids.

    Build and start it inside the running asyncio loop (pymodbus needs the running loop).
    """

    def __init__(
        self,
        meters: Mapping[int, SimMeter],
        *,
        settings: CollectorSettings | None = None,
        clock: Callable[[], float] = time.time,
        name: str = "collector",
    ) -> None:
        self.settings = settings if settings is not None else CollectorSettings()
        self.port_model = ModbusMeterPort(meters, coil_user_id=self.settings.coil_user_id)
        self.clock = clock
        self.name = name
        self.requests = 0
        self._rng = random.Random(self.settings.seed)
        self._server: Any = None
        self._port = self.settings.port

    @property
    def port(self) -> int:
        """The TCP port it listens on (known once started)."""
        return self._port

    @property
    def endpoint(self) -> str:
        """Client endpoint string for the gateway's config (``tcp:HOST:PORT``)."""
        return f"tcp:{self.settings.host}:{self._port}"

    @property
    def running(self) -> bool:
        """True while it listens."""
        return self._server is not None

    async def start(self) -> int:
        """Listen; returns the port."""
        from pymodbus.simulator import DataType, SimData, SimDevice

        placeholder = SimDevice(id=0, simdata=[SimData(address=0, datatype=DataType.REGISTERS)])
        server = _server_class()(
            placeholder, address=(self.settings.host, self._port),
            ignore_missing_devices=True,
        )  # fmt: skip
        server.context = _Datastore(self)  # type: ignore[assignment]
        await server.serve_forever(background=True)
        self._server = server
        self._port = server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self._port

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()

    async def go_down(self) -> None:
        """The collector fails: connections drop, new ones are refused (port kept for go_up)."""
        await self.stop()

    async def go_up(self) -> None:
        """The collector is back, on the same port."""
        if self._server is None:
            await self.start()

    async def gate(self, unit: int) -> Any:
        """Apply link faults before a request reaches the port: None to go on, else the answer.

        Dropping (no answer) raises pymodbus's NoSuchIdException, which the server (built with
        ``ignore_missing_devices``) answers with silence.
        """
        from pymodbus.exceptions import NoSuchIdException

        self.requests += 1
        state = self.port_model.availability(unit, self.clock())
        if state is Availability.PATH_DOWN:
            return _exc(mm.ExceptionCode.GATEWAY_PATH_UNAVAILABLE)
        if state is not Availability.OK:
            if self.settings.silent is SilentMode.DROP:
                raise NoSuchIdException(f"unit {unit} silent")
            return _exc(mm.ExceptionCode.GATEWAY_TARGET_NO_RESPONSE)
        faults = self.port_model.meters[unit].link_faults
        if faults.packet_loss and self._rng.random() < faults.packet_loss:
            raise NoSuchIdException(f"unit {unit}: packet lost")
        if faults.latency:
            await asyncio.sleep(faults.latency)
        return None

    def scramble(self, unit: int, address: int, values: list[Any]) -> list[Any]:
        """The garbage link fault: window data registers come back scrambled."""
        garbage = self.port_model.meters[unit].link_faults.garbage
        if not garbage or self._rng.random() >= garbage:
            return values
        first = max(0, mm.RESPONSE_DATA - address)
        if address + len(values) <= mm.RESPONSE_DATA or address < mm.RESPONSE_HEADER:
            return values
        return values[:first] + [self._rng.getrandbits(16) for _ in values[first:]]


async def start_collectors(
    meters: Sequence[SimMeter],
    *,
    per_collector: int = 32,
    settings: CollectorSettings | None = None,
    clock: Callable[[], float] = time.time,
) -> list[ModbusCollector]:
    """Spread ``meters`` over collectors of ``per_collector`` unit ids each (1, 2, ...) and start
    them on free loopback ports (``settings.port`` is ignored)."""
    if not 1 <= per_collector <= 247:
        raise ValueError("a collector carries 1 to 247 unit ids")
    base = settings if settings is not None else CollectorSettings()
    out: list[ModbusCollector] = []
    for n, group in enumerate(_chunks(meters, per_collector)):
        own = CollectorSettings(
            host=base.host, port=0, silent=base.silent, seed=base.seed + n,
            coil_user_id=base.coil_user_id,
        )  # fmt: skip
        units = {i + 1: m for i, m in enumerate(group)}
        collector = ModbusCollector(units, settings=own, clock=clock, name=f"modbus-{n}")
        await collector.start()
        out.append(collector)
    return out


def _chunks(items: Sequence[SimMeter], size: int) -> Iterable[Sequence[SimMeter]]:
    return (items[i : i + size] for i in range(0, len(items), size))
