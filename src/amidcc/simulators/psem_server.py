"""The meter's PSEM server: session state machines and service dispatch. Sans-I/O.

Two flavours, each one table from (state, service) to the next state; a pair missing from the table
is answered ``ISSS`` (invalid service sequence state) and leaves the state alone:

* C12.18 (the optical port, :func:`handle_request`): Identify first, then Negotiate / Logon,
  Security, reads and writes, Logoff, Terminate. A session times out after
  ``config.session_timeout`` seconds of silence.
* C12.22 (:func:`handle_services`, one EPSEM's services): sessionless by default, where a leading
  ``Security <password> <user_id>`` grants access for the rest of that EPSEM only; or session mode
  after Logon (with the idle timeout the meter grants) until Logoff / Terminate.

Access: a wrong password answers ``ISC`` and grants nothing; tables outside
``config.anonymous_tables`` need a read password, writes and procedures the write password.
Malformed services get the response code the PSEM codec names (``SNS`` unknown service, ``ERR``
malformed); well-formed requests the meter will not carry out get ``IAR`` (no such table, offset past
the end, read-only table). Nothing raises: every input gets a response code.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING

from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.errors import CodecError, RemoteProtocolError
from amidcc.codecs.psem import (
    Authenticate,
    DefaultRead,
    Deregister,
    Disconnect,
    FullRead,
    FullWrite,
    Identify,
    IdentifyResponse,
    Logoff,
    Logon,
    LogonResponse,
    Negotiate,
    NegotiateResponse,
    NokResponse,
    OkResponse,
    PartialReadIndex,
    PartialReadOffset,
    PartialWriteIndex,
    PartialWriteOffset,
    ReadResponse,
    Register,
    Request,
    Resolve,
    Response,
    Security,
    SessionControlFeature,
    Standard,
    Terminate,
    TimingSetup,
    Trace,
    Wait,
    decode_request,
    encode_response,
)

from . import procedures, tables
from .config import Access, PortSharing

if TYPE_CHECKING:
    from .meter import SimMeter

__all__ = ["LOCAL_CHANNEL", "NETWORK_CHANNEL", "Session", "State", "handle_request", "handle_services"]

#: The optical port's channel name (local for FR26 pre-emption); every other name is network.
LOCAL_CHANNEL = "optical"
#: The default network channel name.
NETWORK_CHANNEL = "network"

#: Largest packet size and packet count the meter accepts in Negotiate.
MAX_PACKET_SIZE = 1024
MAX_PACKETS = 8
#: Baud-rate codes the optical port supports (300 .. 57600).
BAUD_CODES = frozenset(range(0x01, 0x0B))


class State(enum.IntEnum):
    """Session states."""

    BASE = 0  #: C12.18: nothing yet / after Terminate. C12.22: sessionless.
    IDENTIFIED = 1  #: C12.18 only: after Identify (Negotiate and Logon allowed).
    SESSION = 2  #: logged on.


class Op(enum.Enum):
    """Service kinds the state tables are written in."""

    IDENTIFY = "identify"
    NEGOTIATE = "negotiate"
    TIMING = "timing-setup"
    LOGON = "logon"
    SECURITY = "security"
    LOGOFF = "logoff"
    TERMINATE = "terminate"
    WAIT = "wait"
    READ = "read"
    WRITE = "write"


_B, _I, _S = State.BASE, State.IDENTIFIED, State.SESSION

#: C12.18 (state, op) -> next state.
C1218_TABLE: dict[tuple[State, Op], State] = {
    (_B, Op.IDENTIFY): _I,
    (_B, Op.TERMINATE): _B,
    (_I, Op.IDENTIFY): _I,
    (_I, Op.NEGOTIATE): _I,
    (_I, Op.TIMING): _I,
    (_I, Op.WAIT): _I,
    (_I, Op.LOGON): _S,
    (_I, Op.TERMINATE): _B,
    (_S, Op.SECURITY): _S,
    (_S, Op.READ): _S,
    (_S, Op.WRITE): _S,
    (_S, Op.WAIT): _S,
    (_S, Op.LOGOFF): _I,
    (_S, Op.TERMINATE): _B,
}

#: C12.22 (state, op) -> next state. Negotiate and Timing Setup are link services C12.22 lacks.
C1222_TABLE: dict[tuple[State, Op], State] = {
    (_B, Op.IDENTIFY): _B,
    (_B, Op.SECURITY): _B,
    (_B, Op.READ): _B,
    (_B, Op.WRITE): _B,
    (_B, Op.WAIT): _B,
    (_B, Op.LOGON): _S,
    (_B, Op.TERMINATE): _B,
    (_S, Op.IDENTIFY): _S,
    (_S, Op.SECURITY): _S,
    (_S, Op.READ): _S,
    (_S, Op.WRITE): _S,
    (_S, Op.WAIT): _S,
    (_S, Op.LOGOFF): _B,
    (_S, Op.TERMINATE): _B,
}
_C1222_UNSUPPORTED = frozenset({Op.NEGOTIATE, Op.TIMING})

_OPS: dict[type, Op] = {
    Identify: Op.IDENTIFY,
    Negotiate: Op.NEGOTIATE,
    TimingSetup: Op.TIMING,
    Logon: Op.LOGON,
    Security: Op.SECURITY,
    Logoff: Op.LOGOFF,
    Terminate: Op.TERMINATE,
    Wait: Op.WAIT,
    FullRead: Op.READ,
    PartialReadOffset: Op.READ,
    PartialReadIndex: Op.READ,
    DefaultRead: Op.READ,
    FullWrite: Op.WRITE,
    PartialWriteOffset: Op.WRITE,
    PartialWriteIndex: Op.WRITE,
}
#: Services a meter does not offer (registrar / relay services, C12.21 authentication).
_NOT_SUPPORTED = (Register, Deregister, Resolve, Trace, Authenticate, Disconnect)


class Session:
    """One channel's session: state, access and activity time."""

    __slots__ = ("state", "access", "user_id", "last", "timeout")

    def __init__(self, now: float, timeout: float) -> None:
        self.state = State.BASE
        self.access = Access.NONE
        self.user_id = 0
        self.last = now
        self.timeout = timeout

    def expire(self, now: float) -> None:
        """Back to the base state after ``timeout`` seconds of silence (0 = never)."""
        if self.timeout and self.state is not State.BASE and now - self.last > self.timeout:
            self.state, self.access, self.user_id = State.BASE, Access.NONE, 0
        self.last = now


def _session(meter: SimMeter, channel: str, now: float) -> Session:
    if meter.sessions is None:
        meter.sessions = {}
    s = meter.sessions.get(channel)
    if not isinstance(s, Session):
        s = Session(now, float(meter.config.session_timeout))
        meter.sessions[channel] = s
    s.expire(now)
    return s


def _busy(meter: SimMeter, channel: str) -> bool:
    """FR26: is another channel holding a session that pre-empts this one?"""
    rule = meter.config.port_sharing
    if rule is PortSharing.SHARE or not meter.sessions:
        return False
    local = channel == LOCAL_CHANNEL
    for name, s in meter.sessions.items():
        if name == channel or not isinstance(s, Session) or s.state is not State.SESSION:
            continue
        other_local = name == LOCAL_CHANNEL
        if rule is PortSharing.LOCAL_PREEMPTS and other_local and not local:
            return True
        if rule is PortSharing.NETWORK_PREEMPTS and not other_local and local:
            return True
    return False


class _Exchange:
    """The state of one call: the session plus the sessionless access of this EPSEM."""

    __slots__ = ("meter", "session", "c1222", "access", "user_id", "now")

    def __init__(self, meter: SimMeter, session: Session, c1222: bool, now: float) -> None:
        self.meter = meter
        self.session = session
        self.c1222 = c1222
        self.access = session.access
        self.user_id = session.user_id
        self.now = now


def handle_request(meter: SimMeter, request: bytes, now: float, *, channel: str = LOCAL_CHANNEL) -> bytes:
    """One PSEM request in, one PSEM response out, C12.18 session rules (the optical port).

    Returns ``b""`` (no answer at all) while the meter has no power.
    """
    if not meter.powered(now):
        return b""
    meter.advance(now)
    ex = _Exchange(meter, _session(meter, channel, now), False, now)
    return _one(ex, request, channel)


def handle_services(meter: SimMeter, services: list[bytes], now: float, *, channel: str = NETWORK_CHANNEL) -> list[bytes]:
    """The services of one C12.22 EPSEM in, one response each out (C12.22 rules).

    Returns ``[]`` (no answer at all) while the meter has no power.
    """
    if not meter.powered(now):
        return []
    meter.advance(now)
    ex = _Exchange(meter, _session(meter, channel, now), True, now)
    return [_one(ex, s, channel) for s in services]


def _one(ex: _Exchange, raw: bytes, channel: str) -> bytes:
    try:
        req = decode_request(bytes(raw))
    except RemoteProtocolError as e:
        return bytes((int(e.response_code),))
    except Exception:  # the codec promises only RemoteProtocolError; never let garbage escape
        return bytes((int(ResponseCode.ERR),))
    if _busy(ex.meter, channel):
        return _nok(ResponseCode.BSY)
    try:
        return encode_response(_dispatch(ex, req))
    except CodecError as e:
        code = e.response_code if isinstance(e, RemoteProtocolError) else ResponseCode.ERR
        return bytes((int(code),))


def _nok(code: ResponseCode) -> bytes:
    return bytes((int(code),))


def _dispatch(ex: _Exchange, req: Request) -> Response:
    if isinstance(req, _NOT_SUPPORTED):
        return NokResponse(code=ResponseCode.SNS)
    op = _OPS.get(type(req))
    if op is None:
        return NokResponse(code=ResponseCode.SNS)
    if ex.c1222 and op in _C1222_UNSUPPORTED:
        return NokResponse(code=ResponseCode.SNS)
    table = C1222_TABLE if ex.c1222 else C1218_TABLE
    state = ex.session.state
    nxt = table.get((state, op))
    if nxt is None:
        return NokResponse(code=ResponseCode.ISSS)
    handler = _HANDLERS[op]
    resp = handler(ex, req)
    if not isinstance(resp, NokResponse) or op in (Op.TERMINATE, Op.LOGOFF):
        _transition(ex, op, nxt)
    return resp


def _transition(ex: _Exchange, op: Op, nxt: State) -> None:
    s = ex.session
    if op in (Op.TERMINATE, Op.LOGOFF):
        s.access, s.user_id = Access.NONE, 0
        ex.access, ex.user_id = Access.NONE, 0
    s.state = nxt


# ---------------------------------------------------------------------- handlers


def _identify(ex: _Exchange, req: Request) -> Response:
    if ex.c1222:
        features = (SessionControlFeature(nbr_sessions=1, sessionless=True),)
        return IdentifyResponse(std=int(Standard.C1222), version=1, revision=0, features=features)
    return IdentifyResponse(std=int(Standard.C1218), version=2, revision=0)


def _negotiate(ex: _Exchange, req: Request) -> Response:
    assert isinstance(req, Negotiate)
    size = max(64, min(req.packet_size, MAX_PACKET_SIZE))
    count = max(1, min(req.nbr_packets, MAX_PACKETS))
    baud = next((b for b in req.baud_rates if b in BAUD_CODES), None)
    return NegotiateResponse(packet_size=size, nbr_packets=count, baud_rate=baud)


def _ok(ex: _Exchange, req: Request) -> Response:
    return OkResponse()


def _logon(ex: _Exchange, req: Request) -> Response:
    assert isinstance(req, Logon)
    ex.session.user_id = ex.user_id = req.user_id
    if req.session_idle_timeout is None:
        return LogonResponse()
    granted = ex.meter.config.session_timeout
    if req.session_idle_timeout:
        granted = min(granted, req.session_idle_timeout)
    ex.session.timeout = float(granted)
    return LogonResponse(session_idle_timeout=granted)


def _security(ex: _Exchange, req: Request) -> Response:
    assert isinstance(req, Security)
    access = ex.meter.config.access_for(req.password)
    if access is None:
        ex.access = Access.NONE
        if ex.session.state is State.SESSION:
            ex.session.access = Access.NONE
        return NokResponse(code=ResponseCode.ISC)
    ex.access = access
    if req.user_id is not None:
        ex.user_id = req.user_id
    if ex.session.state is State.SESSION:  # session mode: access lasts the session
        ex.session.access = access
    return OkResponse()


def _wait(ex: _Exchange, req: Request) -> Response:
    assert isinstance(req, Wait)
    ex.session.last = ex.now + req.seconds  # the session stays open that much longer
    return OkResponse()


def _read(ex: _Exchange, req: Request) -> Response:
    meter, now = ex.meter, ex.now
    if isinstance(req, DefaultRead):
        number = 0  # "transfer default table": ST0 describes the meter
    else:
        assert isinstance(req, FullRead | PartialReadOffset | PartialReadIndex)
        number = req.table_id
    if not tables.exists(meter, number):
        return NokResponse(code=ResponseCode.IAR)
    if number not in meter.config.anonymous_tables and ex.access < Access.READ:
        return NokResponse(code=ResponseCode.ISC)
    if isinstance(req, PartialReadOffset):
        data = tables.read_range(meter, number, req.offset, req.octet_count, now)
    elif isinstance(req, PartialReadIndex):
        data = tables.read_index(meter, number, req.indices, req.element_count, now)
    else:
        data = tables.read_full(meter, number, now)
    if data is None:
        return NokResponse(code=ResponseCode.IAR)
    return ReadResponse(data=data)


def _write(ex: _Exchange, req: Request) -> Response:
    assert isinstance(req, FullWrite | PartialWriteOffset | PartialWriteIndex)
    meter = ex.meter
    if not tables.exists(meter, req.table_id) and not tables.writable(meter, req.table_id):
        return NokResponse(code=ResponseCode.IAR)
    if ex.access < Access.WRITE:
        return NokResponse(code=ResponseCode.ISC)
    if isinstance(req, PartialWriteIndex):
        return NokResponse(code=ResponseCode.IAR)  # no table here is written by index
    offset = req.offset if isinstance(req, PartialWriteOffset) else None
    code = procedures.write(meter, req.table_id, offset, req.data, ex.now, user_id=ex.user_id)
    return OkResponse() if code is ResponseCode.OK else NokResponse(code=code)


_HANDLERS: dict[Op, Callable[[_Exchange, Request], Response]] = {
    Op.IDENTIFY: _identify,
    Op.NEGOTIATE: _negotiate,
    Op.TIMING: _ok,
    Op.LOGON: _logon,
    Op.SECURITY: _security,
    Op.LOGOFF: _ok,
    Op.TERMINATE: _ok,
    Op.WAIT: _wait,
    Op.READ: _read,
    Op.WRITE: _write,
}
