"""A minimal head-end test client built from the codecs: drives a SimMeter directly (sans-I/O).

Its passwords, :class:`Nok` and request helpers also serve the optical-port client.
"""

from __future__ import annotations

from typing import Any

from amidcc.codecs.c1219 import (
    ST7,
    ST8,
    ProcedureInitiate,
    ProcedureResponse,
    TableContext,
    decode_table,
)
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.psem import (
    FullRead,
    FullWrite,
    Identify,
    Logoff,
    Logon,
    NokResponse,
    PartialReadIndex,
    PartialReadOffset,
    ReadResponse,
    Request,
    Response,
    Security,
    Terminate,
    decode_response,
    encode_request,
    pad_password,
    pad_user,
)
from amidcc.simulators import SimMeter

MASTER = pad_password("master", fill=b" ")
READER = pad_password("reader", fill=b" ")


class Nok(Exception):
    """The meter answered a non-ok code."""

    def __init__(self, code: ResponseCode) -> None:
        super().__init__(code.name)
        self.code = code


#: The dimension tables a head-end reads first to build its table context.
DIMENSION_TABLES = (0, 21, 61, 62, 71)


def read_request(table: int, offset: int | None = None, count: int | None = None) -> Request:
    """A full read, or an offset read of ``count`` bytes when ``offset`` is given."""
    if offset is None:
        return FullRead(table_id=table)
    return PartialReadOffset(table_id=table, offset=offset, octet_count=count or 0)


def procedure_request(
    number: int, seq: int, ctx: TableContext, params: bytes = b"", *, mfg: bool = False, selector: int = 0
) -> FullWrite:
    """The ST7 write that starts procedure ``number`` (its answer is read back from ST8)."""
    proc = ProcedureInitiate(number=number, mfg=mfg, selector=selector, seq_nbr=seq, params=params)
    return FullWrite(table_id=7, data=ST7.build(proc, ctx))


def procedure_result(st8: bytes, ctx: TableContext) -> ProcedureResponse:
    """The procedure response read back from ST8."""
    resp = ST8.parse(st8, ctx)
    assert isinstance(resp, ProcedureResponse)
    return resp


class Client:
    """C12.22-style sessionless client: every call is one EPSEM with Security first."""

    def __init__(self, meter: SimMeter, *, password: bytes = MASTER, user_id: int = 2) -> None:
        self.meter = meter
        self.password = password
        self.user_id = user_id
        self.ctx = TableContext()
        self.seq = 0

    def call(self, requests: list[Request], now: float, *, secure: bool = True) -> list[Response]:
        services = [encode_request(r) for r in requests]
        if secure:
            services.insert(0, encode_request(Security(password=self.password, user_id=self.user_id)))
        raw = self.meter.handle_services(services, now)
        assert len(raw) == len(services)
        if secure:
            first = decode_response(raw[0], Security(password=self.password, user_id=self.user_id))
            if isinstance(first, NokResponse):
                raise Nok(first.code)
            raw = raw[1:]
        return [decode_response(r, q) for r, q in zip(raw, requests, strict=True)]

    def one(self, request: Request, now: float, *, secure: bool = True) -> Response:
        resp = self.call([request], now, secure=secure)[0]
        if isinstance(resp, NokResponse):
            raise Nok(resp.code)
        return resp

    def read_raw(self, table: int, now: float, *, offset: int | None = None, count: int | None = None) -> bytes:
        resp = self.one(read_request(table, offset, count), now)
        assert isinstance(resp, ReadResponse)
        return resp.data

    def read_index(self, table: int, indices: tuple[int, ...], count: int, now: float) -> bytes:
        resp = self.one(PartialReadIndex(table_id=table, indices=indices, element_count=count), now)
        assert isinstance(resp, ReadResponse)
        return resp.data

    def learn(self, now: float) -> TableContext:
        """Read the dimension tables as a head-end would and build the context."""
        ctx = TableContext()
        for table in DIMENSION_TABLES:
            ctx = ctx.with_table(table, decode_table(table, self.read_raw(table, now), ctx))
        self.ctx = ctx
        return ctx

    def read(self, table: int, now: float) -> Any:
        return decode_table(table, self.read_raw(table, now), self.ctx)

    def procedure(self, number: int, now: float, params: bytes = b"", *, mfg: bool = False, selector: int = 0) -> ProcedureResponse:
        self.seq = (self.seq + 1) & 0xFF
        self.one(procedure_request(number, self.seq, self.ctx, params, mfg=mfg, selector=selector), now)
        return procedure_result(self.read_raw(8, now), self.ctx)


def c1218_session(meter: SimMeter, now: float, password: bytes = MASTER) -> list[bytes]:
    """Identify, Logon, Security over the optical port; the raw responses."""
    out = []
    for req in (Identify(), Logon(user_id=1, user=pad_user("field")), Security(password=password)):
        out.append(meter.handle_request(encode_request(req), now))
    return out


def c1218_end(meter: SimMeter, now: float) -> list[bytes]:
    return [meter.handle_request(encode_request(r), now) for r in (Logoff(), Terminate())]
