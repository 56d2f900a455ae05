"""Hypothesis: every request and response type round-trips; garbage only raises RemoteProtocolError."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.errors import RemoteProtocolError
from amidcc.codecs.psem import (
    Authenticate,
    DefaultRead,
    Deregister,
    DeviceClassFeature,
    DeviceIdentityFeature,
    Disconnect,
    Feature,
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
    RawResponse,
    ReadResponse,
    Register,
    RegisterResponse,
    Request,
    Resolve,
    ResolveResponse,
    Response,
    Security,
    SecurityMechanismFeature,
    SessionControlFeature,
    Terminate,
    TimingSetup,
    Trace,
    TraceResponse,
    UniversalId,
    UnknownFeature,
    Wait,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u24 = st.integers(0, 0xFFFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
arc = st.integers(0, 2**40)


def _bytes(max_size: int) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=max_size)


relative_ids = st.lists(arc, max_size=6).map(lambda a: UniversalId(arcs=tuple(a), relative=True))
absolute_ids = st.one_of(
    st.tuples(st.integers(0, 1), st.integers(0, 39)),
    st.tuples(st.just(2), arc),
).flatmap(
    lambda head: st.lists(arc, max_size=6).map(lambda rest: UniversalId(arcs=head + tuple(rest)))
)
ids = st.one_of(relative_ids, absolute_ids)
indices = st.lists(u16, min_size=1, max_size=9).map(tuple)


@st.composite
def registers(draw: st.DrawFn) -> Register:
    pattern = draw(st.none() | _bytes(20))
    node_type = (draw(u8) & 0x7F) | (0x80 if pattern is not None else 0)
    return Register(
        node_type=node_type,
        connection_type=draw(u8),
        device_class=draw(st.binary(min_size=4, max_size=4)),
        ap_title=draw(ids),
        electronic_serial_number=draw(ids),
        native_address=draw(_bytes(255)),
        registration_period=draw(u24),
        my_domain_pattern=pattern,
    )


requests: st.SearchStrategy[Request] = st.one_of(
    st.just(Identify()),
    st.just(Terminate()),
    st.just(DefaultRead()),
    st.just(Logoff()),
    st.builds(Disconnect, parameters=_bytes(8)),
    st.builds(FullRead, table_id=u16),
    st.builds(PartialReadIndex, table_id=u16, indices=indices, element_count=u16),
    st.builds(PartialReadOffset, table_id=u16, offset=u24, octet_count=u16),
    st.builds(FullWrite, table_id=u16, data=_bytes(64)),
    st.builds(PartialWriteIndex, table_id=u16, indices=indices, data=_bytes(64)),
    st.builds(PartialWriteOffset, table_id=u16, offset=u24, data=_bytes(64)),
    st.builds(
        Logon,
        user_id=u16,
        user=st.binary(min_size=10, max_size=10),
        session_idle_timeout=st.none() | u16,
    ),
    st.builds(Security, password=st.binary(min_size=20, max_size=20), user_id=st.none() | u16),
    st.builds(Authenticate, data=_bytes(255)),
    st.builds(
        Negotiate,
        packet_size=u16,
        nbr_packets=u8,
        baud_rates=st.lists(u8, max_size=11).map(tuple),
    ),
    st.builds(Wait, seconds=u8),
    st.builds(TimingSetup, traffic=u8, inter_char=u8, resp_to=u8, nbr_retries=u8),
    registers(),
    st.builds(Deregister, ap_title=ids),
    st.builds(Resolve, ap_title=ids),
    st.builds(Trace, ap_title=ids),
)


@FAST
@given(requests)
def test_request_round_trip(req: Request) -> None:
    wire = encode_request(req)
    assert decode_request(wire) == req


known_features: st.SearchStrategy[Feature] = st.one_of(
    st.builds(SecurityMechanismFeature, mechanism=ids),
    st.builds(SessionControlFeature, nbr_sessions=st.integers(0, 127), sessionless=st.booleans()),
    st.builds(DeviceClassFeature, device_class=ids),
    st.builds(DeviceIdentityFeature, format=u8, identity=_bytes(254)),
)
unknown_features = st.builds(
    UnknownFeature,
    tag=u8.filter(lambda t: t not in (0, 4, 5, 6, 7)),
    body=_bytes(16),
)


@st.composite
def identify_responses(draw: st.DrawFn) -> IdentifyResponse:
    features = draw(st.lists(known_features, max_size=4))
    if draw(st.booleans()):
        features.append(draw(unknown_features))
    return IdentifyResponse(
        std=draw(u8), version=draw(u8), revision=draw(u8), features=tuple(features)
    )


@st.composite
def noks(draw: st.DrawFn) -> NokResponse:
    code = draw(st.sampled_from([c for c in ResponseCode if c != ResponseCode.OK]))
    if code in (ResponseCode.RQTL, ResponseCode.RSTL):
        size = draw(st.none() | u32)
        detail = b"" if size is None else draw(_bytes(8))
        return NokResponse(code=code, max_size=size, detail=detail)
    return NokResponse(code=code, detail=draw(_bytes(8)))


_ANY_TITLE = UniversalId(arcs=(1,), relative=True)
_REGISTER = Register(
    node_type=0x20,
    connection_type=0,
    device_class=bytes(4),
    ap_title=_ANY_TITLE,
    electronic_serial_number=_ANY_TITLE,
    native_address=b"",
    registration_period=0,
)

# (response, the request whose answer it is)
pairs: st.SearchStrategy[tuple[Response, Request | None]] = st.one_of(
    st.tuples(st.just(OkResponse()), st.sampled_from([Logoff(), FullWrite(table_id=1, data=b"")])),
    st.tuples(st.just(OkResponse()), st.none()),
    st.tuples(
        noks(), st.sampled_from([Identify(), FullRead(table_id=1), Trace(ap_title=_ANY_TITLE)])
    ),
    st.tuples(noks(), st.none()),
    st.tuples(identify_responses(), st.just(Identify())),
    st.tuples(
        st.builds(ReadResponse, data=_bytes(300)),
        st.sampled_from(
            [
                FullRead(table_id=1),
                DefaultRead(),
                PartialReadOffset(table_id=1, offset=0, octet_count=1),
                PartialReadIndex(table_id=1, indices=(0,), element_count=1),
            ]
        ),
    ),
    st.tuples(
        st.builds(LogonResponse, session_idle_timeout=st.none() | u16),
        st.just(Logon(user_id=0, user=bytes(10))),
    ),
    st.tuples(
        st.builds(NegotiateResponse, packet_size=u16, nbr_packets=u8, baud_rate=st.none() | u8),
        st.just(Negotiate(packet_size=64, nbr_packets=1)),
    ),
    st.tuples(
        st.builds(RegisterResponse, ap_title=ids, reg_delay=u16, reg_period=u24, reg_info=u8),
        st.just(_REGISTER),
    ),
    st.tuples(
        st.builds(ResolveResponse, local_address=_bytes(255)),
        st.just(Resolve(ap_title=_ANY_TITLE)),
    ),
    st.tuples(
        st.builds(TraceResponse, ap_titles=st.lists(ids, max_size=4).map(tuple)),
        st.just(Trace(ap_title=_ANY_TITLE)),
    ),
    st.tuples(
        st.builds(RawResponse, code=st.just(0), body=st.binary(min_size=1, max_size=16)),
        st.sampled_from([None, Authenticate(data=b""), Disconnect()]),
    ),
    st.tuples(
        st.builds(RawResponse, code=st.integers(0x13, 0xFF), body=_bytes(16)),
        st.none(),
    ),
)


@FAST
@given(pairs)
def test_response_round_trip(pair: tuple[Response, Request | None]) -> None:
    resp, req = pair
    wire = encode_response(resp)
    assert decode_response(wire, req) == resp


# --------------------------------------------------------------------------- fuzz

contexts = st.one_of(st.none(), requests)


@FAST
@given(st.binary(max_size=48))
def test_random_request_bytes_raise_only_remote_errors(data: bytes) -> None:
    try:
        req = decode_request(data)
    except RemoteProtocolError:
        return
    # What decodes re-encodes to the same bytes, except universal ids (tag 80 is re-sent as 0D,
    # a long-form BER length as the short form).
    if not isinstance(req, Register | Deregister | Resolve | Trace):
        assert encode_request(req) == data
    assert decode_request(encode_request(req)) == req


@FAST
@given(st.binary(max_size=48), contexts)
def test_random_response_bytes_raise_only_remote_errors(data: bytes, req: Request | None) -> None:
    try:
        resp = decode_response(data, req)
    except RemoteProtocolError:
        return
    assert decode_response(encode_response(resp), req) == resp


@st.composite
def mutated(draw: st.DrawFn, wire: bytes) -> bytes:
    buf = bytearray(wire)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and buf:
            i = draw(st.integers(0, len(buf) - 1))
            buf[i] = draw(u8)
        elif action == "cut" and buf:
            del buf[draw(st.integers(0, len(buf) - 1)) :]
        else:
            buf.insert(draw(st.integers(0, len(buf))), draw(u8))
    return bytes(buf)


@FAST
@given(st.data())
def test_mutated_requests_raise_only_remote_errors(data: st.DataObject) -> None:
    wire = encode_request(data.draw(requests))
    try:
        decode_request(data.draw(mutated(wire)))
    except RemoteProtocolError:
        pass


@FAST
@given(st.data())
def test_mutated_responses_raise_only_remote_errors(data: st.DataObject) -> None:
    resp, req = data.draw(pairs)
    try:
        decode_response(data.draw(mutated(encode_response(resp))), req)
    except RemoteProtocolError:
        pass
