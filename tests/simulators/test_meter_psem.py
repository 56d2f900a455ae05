"""A SimMeter driven through PSEM with a codec-built client: sessions, reads, writes, garbage."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amidcc.codecs.c1219 import (
    ST64,
    ST76,
    CurrentRegData,
    EventLogData,
    GeneralMfgId,
    LpData,
    decode_table,
)
from amidcc.codecs.c1219.mfg import SelfTestResults
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.psem import (
    FullRead,
    FullWrite,
    Identify,
    IdentifyResponse,
    Logoff,
    Logon,
    LogonResponse,
    Negotiate,
    NegotiateResponse,
    PartialWriteOffset,
    Register,
    Security,
    UniversalId,
    Wait,
    decode_response,
    encode_request,
    pad_user,
)
from amidcc.simulators import MeterConfig, MeterIdentity, PortSharing, SimMeter

from .client import MASTER, READER, Client, Nok, c1218_end, c1218_session

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
NOW = T0 + 3 * 3600.0
OK = bytes((0,))
ALL_TABLES = (0, 1, 3, 5, 8, 21, 22, 23, 52, 61, 62, 63, 64, 71, 72, 73, 74, 75, 76, 2048, 2049)


def make_meter(seed: int = 11, **cfg: object) -> SimMeter:
    ident = MeterIdentity(manufacturer="AMDC", model="SIM1", serial=f"meter-{seed:04d}", seed=seed)
    return SimMeter(ident, config=MeterConfig(**cfg), start_time=T0)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- C12.18 session rules


def test_c1218_session_flow_and_reads() -> None:
    m = make_meter()
    ident, logon, sec = c1218_session(m, NOW)
    resp = decode_response(ident, Identify())
    assert isinstance(resp, IdentifyResponse) and resp.std == 0 and len(ident) == 5
    assert logon == OK and sec == OK
    raw = m.handle_request(encode_request(FullRead(table_id=1)), NOW)
    data = decode_response(raw, FullRead(table_id=1))
    st1 = decode_table(1, data.data)  # type: ignore[union-attr]
    assert isinstance(st1, GeneralMfgId) and st1.mfg_serial_number.strip() == "meter-0011"
    assert c1218_end(m, NOW) == [OK, OK]


def test_c1218_out_of_sequence_is_isss() -> None:
    m = make_meter()
    read = encode_request(FullRead(table_id=0))
    assert m.handle_request(read, NOW) == bytes((ResponseCode.ISSS,))
    assert m.handle_request(encode_request(Logon(user_id=1, user=pad_user("x"))), NOW) == bytes((ResponseCode.ISSS,))
    assert m.handle_request(encode_request(Identify()), NOW)[0] == 0
    assert m.handle_request(encode_request(Security(password=MASTER)), NOW) == bytes((ResponseCode.ISSS,))
    assert m.handle_request(encode_request(Logoff()), NOW) == bytes((ResponseCode.ISSS,))
    neg = m.handle_request(encode_request(Negotiate(packet_size=512, nbr_packets=4, baud_rates=(0x06, 0x0F))), NOW)
    resp = decode_response(neg, Negotiate(packet_size=512, nbr_packets=4, baud_rates=(0x06,)))
    assert isinstance(resp, NegotiateResponse) and (resp.packet_size, resp.nbr_packets, resp.baud_rate) == (512, 4, 6)


def test_c1218_wrong_password_and_access_levels() -> None:
    m = make_meter()
    _, _, sec = c1218_session(m, NOW, password=b"wrong".ljust(20, b"\x00"))
    assert sec == bytes((ResponseCode.ISC,))
    assert m.handle_request(encode_request(FullRead(table_id=0)), NOW)[0] == 0  # anonymous table
    assert m.handle_request(encode_request(FullRead(table_id=23)), NOW) == bytes((ResponseCode.ISC,))
    assert m.handle_request(encode_request(Security(password=READER)), NOW) == OK
    assert m.handle_request(encode_request(FullRead(table_id=23)), NOW)[0] == 0
    write = encode_request(FullWrite(table_id=5, data=b"X" * 20))
    assert m.handle_request(write, NOW) == bytes((ResponseCode.ISC,))  # reader cannot write


def test_c1218_session_times_out() -> None:
    m = make_meter(session_timeout=60)
    c1218_session(m, NOW)
    assert m.handle_request(encode_request(FullRead(table_id=3)), NOW + 30)[0] == 0
    assert m.handle_request(encode_request(Wait(seconds=100)), NOW + 40) == OK
    assert m.handle_request(encode_request(FullRead(table_id=3)), NOW + 150)[0] == 0  # Wait kept it
    assert m.handle_request(encode_request(FullRead(table_id=3)), NOW + 400) == bytes((ResponseCode.ISSS,))


# ---------------------------------------------------------------------- C12.22 rules


def test_c1222_sessionless_security_scope() -> None:
    m = make_meter()
    sec = encode_request(Security(password=MASTER, user_id=7))
    read23 = encode_request(FullRead(table_id=23))
    out = m.handle_services([sec, read23], NOW)
    assert out[0] == OK and out[1][0] == 0
    # the next EPSEM starts again without clearance
    assert m.handle_services([read23], NOW) == [bytes((ResponseCode.ISC,))]
    assert m.handle_services([encode_request(FullRead(table_id=0))], NOW)[0][0] == 0
    bad = encode_request(Security(password=b"nope".ljust(20, b"\x00"), user_id=7))
    assert m.handle_services([bad, read23], NOW) == [bytes((ResponseCode.ISC,))] * 2


def test_c1222_session_mode() -> None:
    m = make_meter(session_timeout=120)
    logon = Logon(user_id=3, user=pad_user("hes"), session_idle_timeout=600)
    raw = m.handle_services([encode_request(logon), encode_request(Security(password=MASTER))], NOW)
    resp = decode_response(raw[0], logon)
    assert isinstance(resp, LogonResponse) and resp.session_idle_timeout == 120 and raw[1] == OK
    assert m.handle_services([encode_request(FullRead(table_id=23))], NOW + 10)[0][0] == 0  # access persists
    assert m.handle_services([encode_request(Logoff())], NOW + 20) == [OK]
    assert m.handle_services([encode_request(FullRead(table_id=23))], NOW + 30) == [bytes((ResponseCode.ISC,))]
    assert m.handle_services([encode_request(Logoff())], NOW + 40) == [bytes((ResponseCode.ISSS,))]


def test_c1222_identify_and_unsupported_services() -> None:
    m = make_meter()
    raw = m.handle_services([encode_request(Identify())], NOW)[0]
    resp = decode_response(raw, Identify())
    assert isinstance(resp, IdentifyResponse) and resp.std == 3 and resp.features
    neg = encode_request(Negotiate(packet_size=128, nbr_packets=1))
    reg = Register(
        node_type=0x20, connection_type=0, device_class=b"AMDC", ap_title=UniversalId(arcs=(1,), relative=True),
        electronic_serial_number=UniversalId(arcs=(2,), relative=True), native_address=b"", registration_period=0,
    )  # fmt: skip
    assert m.handle_services([neg, encode_request(reg)], NOW) == [bytes((ResponseCode.SNS,))] * 2


def test_port_sharing_local_preempts() -> None:
    m = make_meter(port_sharing=PortSharing.LOCAL_PREEMPTS)
    c1218_session(m, NOW)
    sec = encode_request(Security(password=MASTER, user_id=7))
    assert m.handle_services([sec], NOW) == [bytes((ResponseCode.BSY,))]
    c1218_end(m, NOW)
    assert m.handle_services([sec], NOW) == [OK]


# ---------------------------------------------------------------------- tables


def test_every_table_reads_and_decodes() -> None:
    m = make_meter()
    c = Client(m)
    ctx = c.learn(NOW)
    for table in ALL_TABLES:
        data = c.read_raw(table, NOW)
        value = decode_table(table, data, ctx)
        assert value is not None, table
    regs = c.read(23, NOW)
    assert isinstance(regs, CurrentRegData) and regs.tot_data_block.summations[0] > 0
    assert isinstance(c.read(2048, NOW), SelfTestResults)


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("tm_format", [1, 2, 3, 4])
def test_formats_decode(big_endian: bool, tm_format: int) -> None:
    m = make_meter(big_endian=big_endian, tm_format=tm_format)
    c = Client(m)
    ctx = c.learn(NOW)
    assert int(ctx.format.data_order) == int(big_endian) and int(ctx.format.tm_format) == tm_format
    clock = c.read(52, NOW)
    from amidcc.simulators.tables import to_datetime

    assert abs((clock.clock_calendar - to_datetime(NOW)).total_seconds()) <= 1  # synced at start-up
    log = c.read(76, NOW)
    assert isinstance(log, EventLogData) and log.nbr_valid_entries > 0


def test_offset_and_index_reads_match_full_reads() -> None:
    m = make_meter()
    c = Client(m)
    ctx = c.learn(NOW)
    for table in (1, 23, 76, 2048):
        full = c.read_raw(table, NOW)
        assert c.read_raw(table, NOW, offset=3, count=len(full) - 5) == full[3:-2]
    full64 = c.read_raw(64, NOW)
    block = len(full64) // m.config.lp_days
    assert c.read_raw(64, NOW, offset=block * 5 + 7, count=block + 3) == full64[block * 5 + 7 : block * 6 + 10]
    assert c.read_index(64, (5,), 2, NOW) == full64[block * 5 : block * 7]
    full76 = c.read_raw(76, NOW)
    entry = (len(full76) - 11) // m.config.event_capacity
    assert c.read_index(76, (3,), 2, NOW) == full76[11 + 3 * entry : 11 + 5 * entry]
    lp = ST64.parse(full64, ctx)
    assert isinstance(lp, LpData) and len(lp.blocks) == m.config.lp_days
    assert isinstance(ST76.parse(full76, ctx), EventLogData)


def test_read_errors() -> None:
    m = make_meter()
    c = Client(m)
    for table in (2, 9, 100, 2050, 7):
        with pytest.raises(Nok) as info:
            c.read_raw(table, NOW)
        assert info.value.code is ResponseCode.IAR, table
    size = len(c.read_raw(1, NOW))
    with pytest.raises(Nok) as info:
        c.read_raw(1, NOW, offset=size - 1, count=2)
    assert info.value.code is ResponseCode.IAR
    with pytest.raises(Nok) as info:
        c.read_index(23, (0,), 1, NOW)
    assert info.value.code is ResponseCode.IAR


def test_writes() -> None:
    m = make_meter()
    c = Client(m)
    c.learn(NOW)
    c.one(FullWrite(table_id=5, data=b"UTIL-000123".ljust(20)), NOW)
    assert decode_table(5, c.read_raw(5, NOW)).identification.strip() == "UTIL-000123"
    c.one(PartialWriteOffset(table_id=6, offset=10, data=b"PREMISE-9"), NOW)
    assert c.read_raw(6, NOW)[10:19] == b"PREMISE-9"
    for req, code in (
        (FullWrite(table_id=23, data=b"\x00" * 26), ResponseCode.IAR),  # read-only
        (FullWrite(table_id=6, data=b"short"), ResponseCode.IAR),  # wrong size
        (PartialWriteOffset(table_id=53, offset=9, data=b"xx"), ResponseCode.IAR),  # past the end
        (FullWrite(table_id=300, data=b"\x01"), ResponseCode.IAR),  # no such table
    ):
        with pytest.raises(Nok) as info:
            c.one(req, NOW)
        assert info.value.code is code, req
    reader = Client(m, password=READER)
    with pytest.raises(Nok) as info:
        reader.one(FullWrite(table_id=5, data=b"x" * 20), NOW)
    assert info.value.code is ResponseCode.ISC
    codes = [r.code for r in m.event_records(NOW)]
    assert codes.count(10) == 2  # TABLE_WRITTEN for ST5 and ST6


# ---------------------------------------------------------------------- garbage


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=40), prefix=st.sampled_from([b"", b"\x20", b"\x50\x00\x01", b"\x40\x00\x07", b"\x3f\x00"]))
def test_garbage_always_gets_a_response_code(data: bytes, prefix: bytes) -> None:
    m = make_meter()
    codes = {int(c) for c in ResponseCode}
    c1218_session(m, NOW)
    raw = m.handle_request(prefix + data, NOW)
    assert raw and raw[0] in codes
    out = m.handle_services([encode_request(Security(password=MASTER, user_id=1)), prefix + data], NOW)
    assert len(out) == 2 and all(r and r[0] in codes for r in out)


@settings(max_examples=60, deadline=None)
@given(table=st.integers(min_value=0, max_value=0xFFFF), offset=st.integers(min_value=0, max_value=0xFFFFFF), count=st.integers(min_value=0, max_value=0xFFFF))
def test_any_read_gets_data_or_a_code(table: int, offset: int, count: int) -> None:
    from amidcc.codecs.psem import PartialReadOffset

    m = make_meter()
    sec = encode_request(Security(password=MASTER, user_id=1))
    out = m.handle_services([sec, encode_request(PartialReadOffset(table_id=table, offset=offset, octet_count=count))], NOW)
    assert out[1][0] in (0, ResponseCode.IAR)
    if out[1][0] == 0:
        assert int.from_bytes(out[1][1:3], "big") == count
