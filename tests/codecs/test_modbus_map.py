"""The Modbus register map (amidcc.codecs.modbus_map): known layouts, round trips, errors.

The map is amidcc's own (docs/protocols.md, "Modbus register map"); the layout vectors below are
taken from that table. Word order and string packing follow the usual Modbus convention (big-endian
registers, high word first), as pymodbus's own ``convert_to_registers`` does.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.codecs import modbus_map as mm
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.errors import LocalProtocolError, RemoteProtocolError
from amidcc.codecs.psem import (
    DefaultRead,
    FullRead,
    FullWrite,
    Identify,
    Logoff,
    Logon,
    NokResponse,
    PartialReadIndex,
    PartialReadOffset,
    PartialWriteOffset,
    ReadResponse,
    Security,
    Terminate,
    checksum,
    encode_request,
    encode_response,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocols.md"
FAST = settings(max_examples=60, deadline=None)


def readings(**over: object) -> mm.NativeReadings:
    base: dict[str, object] = dict(
        manufacturer="AMDC", model="R1-1PH", serial="SN000042", hw_version=1, hw_revision=2,
        fw_version=3, fw_revision=4, device_id="METER-42", energy_delivered_wh=10**12,
        energy_received_wh=5, max_demand_w=3000, max_demand_time=1_700_000_000, demand_resets=3,
        voltage_dv=2401, power_factor_pm=-950, meter_time=1_700_000_001, ed_mode=1,
        std_status=0x0084, mfg_status=0x0004, event_entries=100, event_total=1000,
        last_event_code=0x0801, last_event_time=1_699_999_000, self_test_time=1_699_990_000,
        self_test_kind=2, self_test_failing=0x0080,
    )  # fmt: skip
    base.update(over)
    return mm.NativeReadings(**base)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- known layouts


def test_native_block_layout() -> None:
    words = mm.encode_native(readings())
    assert len(words) == mm.NATIVE_COUNT == 72
    assert words[0] == mm.MAP_VERSION == 1
    assert words[1:3] == (0x414D, 0x4443)  # "AM" "DC"
    assert words[7:11] == (0x534E, 0x3030, 0x3030, 0x3432)  # "SN000042"
    assert words[11:15] == (0x2020,) * 4  # space padded to 16 characters
    assert words[15] == 0x0102 and words[16] == 0x0304  # version high, revision low
    assert words[40:44] == (0x0000, 0x00E8, 0xD4A5, 0x1000)  # 10**12 Wh, high word first
    assert words[44:48] == (0, 0, 0, 5)
    assert words[50:52] == (0x6553, 0xF100)  # 1_700_000_000
    assert words[53] == 2401
    assert words[54] == 0xFC4A  # -950 as int16
    assert words[58] == 0x0084 and words[59] == 0x0004
    assert words[69] == 0x0080 and words[70] == 1  # failing bitmap; result 1 = failed
    assert all(w == 0 for w in words[27:40]) and words[71] == 0  # reserved


def test_status_bits_layout() -> None:
    bits = mm.encode_status_bits(mm.StatusBits(std_status=0x2001, mfg_status=0x8002, ed_mode=0x05))
    assert len(bits) == mm.STATUS_BITS_COUNT == 40
    assert [i for i, b in enumerate(bits) if b] == [0, 13, 17, 31, 32, 34]


def test_window_request_layout() -> None:
    req = mm.WindowRequest(
        command=mm.WindowCommand.PARTIAL_WRITE, sequence=7, table_id=0x0805, offset=0x012345,
        count=3, data=b"\x01\x02\x03",
    )  # fmt: skip
    assert mm.encode_window_request(req) == (0x0805, 0x0001, 0x2345, 3, 0, 0x4F07, 0x0102, 0x0300)
    assert mm.WINDOW_REQUEST == 1000 and mm.WINDOW_DATA == 1006


def test_window_response_layout() -> None:
    resp = mm.WindowResponse(
        command=0x30, sequence=9, state=mm.WindowState.DONE, code=0, data=b"MANUFACTURER SN "
    )
    words = mm.encode_window_response(resp)
    # checksum of "MANUFACTURER SN " is 0x92 (protocol-facts 2.4, C12.22 example 8)
    assert words[:4] == (0x3009, 0x0100, 16, 0x92)
    assert mm.words_to_bytes(words[4:]) == b"MANUFACTURER SN "
    assert (mm.RESPONSE_HEADER + 4, mm.RESPONSE_DATA) == (0x8000, 0x8000)


def test_read_response_becomes_psem_read_response() -> None:
    req = mm.WindowRequest(command=mm.WindowCommand.FULL_READ, sequence=1, table_id=23)
    # ST23 bytes from a real meter, checksum FC (protocol-facts 2.4)
    data = bytes.fromhex("FB1304024D891A00")
    psem = mm.window_to_response(
        req,
        mm.WindowResponse(command=0x30, sequence=1, state=mm.WindowState.DONE, code=0, data=data),
    )
    assert psem == bytes.fromhex("000008FB1304024D891A00FC")


def test_nok_and_rqtl_pass_through() -> None:
    req = mm.WindowRequest(command=mm.WindowCommand.FULL_READ, sequence=2, table_id=99)
    resp = mm.response_to_window(req, b"\x05")
    assert (resp.code, resp.data) == (ResponseCode.IAR, b"")
    assert mm.window_to_response(req, resp) == b"\x05"
    rqtl = encode_response(NokResponse(code=ResponseCode.RQTL, max_size=300))
    assert mm.window_to_response(req, mm.response_to_window(req, rqtl)) == rqtl


# ---------------------------------------------------------------------------- PSEM mapping


@pytest.mark.parametrize(
    "service",
    [
        Logon(user_id=1, user=b"operator  "),
        PartialReadIndex(table_id=64, indices=(1,), element_count=2),
    ],
)
def test_unmappable_services_answer_sns(service: object) -> None:
    assert mm.request_to_window(service, 1) == NokResponse(code=ResponseCode.SNS)  # type: ignore[arg-type]


def test_too_large_write_answers_rqtl_with_the_window_size() -> None:
    big = FullWrite(table_id=6, data=bytes(mm.WINDOW_DATA_CAPACITY + 1))
    assert mm.request_to_window(big, 1) == NokResponse(
        code=ResponseCode.RQTL, max_size=mm.WINDOW_DATA_CAPACITY
    )
    fits = mm.request_to_window(FullWrite(table_id=6, data=bytes(mm.WINDOW_DATA_CAPACITY)), 1)
    assert isinstance(fits, mm.WindowRequest)


def test_security_always_uses_the_sessionless_form() -> None:
    pw = b"master".ljust(20, b"\x00")
    win = mm.request_to_window(Security(password=pw), 3)
    assert isinstance(win, mm.WindowRequest)
    assert mm.window_to_request(win) == Security(password=pw, user_id=0)


table_ids = st.integers(0, 0xFFFF)
mappable = st.one_of(
    st.builds(FullRead, table_id=table_ids),
    st.builds(
        PartialReadOffset, table_id=table_ids, offset=st.integers(0, 0xFFFFFF),
        octet_count=st.integers(0, 0xFFFF),
    ),
    st.just(DefaultRead()),
    st.builds(FullWrite, table_id=table_ids, data=st.binary(max_size=600)),
    st.builds(
        PartialWriteOffset, table_id=table_ids, offset=st.integers(0, 0xFFFFFF),
        data=st.binary(max_size=600),
    ),
    st.builds(Security, password=st.binary(min_size=20, max_size=20), user_id=st.integers(0, 0xFFFF)),
    st.just(Identify()),
    st.just(Logoff()),
    st.just(Terminate()),
)  # fmt: skip


@FAST
@given(service=mappable, seq=st.integers(1, 255))
def test_psem_request_round_trips_through_the_registers(service: object, seq: int) -> None:
    win = mm.request_to_window(service, seq)  # type: ignore[arg-type]
    assert isinstance(win, mm.WindowRequest)
    words = mm.encode_window_request(win)
    back = mm.decode_window_request(words[:6], words[6:])
    assert back == win
    assert encode_request(mm.window_to_request(back)) == encode_request(service)  # type: ignore[arg-type]


@FAST
@given(service=mappable, seq=st.integers(1, 255))
def test_write_plan_rebuilds_the_request_block(service: object, seq: int) -> None:
    win = mm.request_to_window(service, seq)  # type: ignore[arg-type]
    assert isinstance(win, mm.WindowRequest)
    plan = mm.plan_window_write(win)
    assert plan[-1][0] == mm.WINDOW_REQUEST and len(plan[-1][1]) <= mm.MAX_RW_WRITE_REGISTERS
    assert all(len(words) <= mm.MAX_WRITE_REGISTERS for _, words in plan)
    memory: dict[int, int] = {}
    for address, words in plan:
        memory.update((address + i, w) for i, w in enumerate(words))
    rebuilt = tuple(memory[mm.WINDOW_REQUEST + i] for i in range(len(memory)))
    assert rebuilt == mm.encode_window_request(win)


@FAST
@given(
    data=st.binary(max_size=700),
    seq=st.integers(1, 255),
    read=st.sampled_from([FullRead(table_id=1), PartialReadOffset(table_id=64, offset=9, octet_count=4)]),
)  # fmt: skip
def test_psem_read_response_round_trips(data: bytes, seq: int, read: object) -> None:
    win = mm.request_to_window(read, seq)  # type: ignore[arg-type]
    assert isinstance(win, mm.WindowRequest)
    psem = encode_response(ReadResponse(data=data))
    block = mm.encode_window_response(mm.response_to_window(win, psem))
    assert block[2] == len(data) and block[3] == checksum(data)
    padded = block + (0,) * 5  # a client reads whole pages: extra registers are ignored
    assert mm.window_to_response(win, mm.decode_window_response(padded)) == psem


@FAST
@given(
    code=st.sampled_from(list(ResponseCode)), detail=st.binary(max_size=8), seq=st.integers(1, 255)
)
def test_non_read_responses_round_trip(code: ResponseCode, detail: bytes, seq: int) -> None:
    win = mm.WindowRequest(command=mm.WindowCommand.FULL_WRITE, sequence=seq, table_id=7)
    psem = bytes((code,)) + detail
    resp = mm.decode_window_response(mm.encode_window_response(mm.response_to_window(win, psem)))
    assert mm.window_to_response(win, resp) == psem


# ---------------------------------------------------------------------------- round trips


def _text(n: int) -> st.SearchStrategy[str]:
    alphabet = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
    inner = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
    return st.one_of(
        st.just(""), st.tuples(st.text(inner, max_size=n - 1), alphabet).map(lambda t: t[0] + t[1])
    )


u16, u32, u64, u8 = (st.integers(0, (1 << b) - 1) for b in (16, 32, 64, 8))
native = st.builds(
    mm.NativeReadings, manufacturer=_text(4), model=_text(8), serial=_text(16), hw_version=u8,
    hw_revision=u8, fw_version=u8, fw_revision=u8, device_id=_text(20), energy_delivered_wh=u64,
    energy_received_wh=u64, max_demand_w=u32, max_demand_time=u32, demand_resets=u16,
    voltage_dv=u16, power_factor_pm=st.integers(-0x8000, 0x7FFF), meter_time=u32, ed_mode=u16,
    std_status=u16, mfg_status=u16, event_entries=u16, event_total=u32, last_event_code=u16,
    last_event_time=u32, self_test_time=u32, self_test_kind=u16, self_test_failing=u16,
)  # fmt: skip


@FAST
@given(r=native)
def test_native_round_trip(r: mm.NativeReadings) -> None:
    words = mm.encode_native(r)
    assert all(0 <= w <= 0xFFFF for w in words)
    assert mm.decode_native(words) == r


@FAST
@given(std=u16, mfg=u16, mode=u8)
def test_status_bits_round_trip(std: int, mfg: int, mode: int) -> None:
    s = mm.StatusBits(std_status=std, mfg_status=mfg, ed_mode=mode)
    assert mm.decode_status_bits(mm.encode_status_bits(s)) == s


@FAST
@given(data=st.binary(max_size=300))
def test_words_bytes_round_trip(data: bytes) -> None:
    words = mm.bytes_to_words(data)
    assert len(words) == (len(data) + 1) // 2
    assert mm.words_to_bytes(words, len(data)) == data


# ---------------------------------------------------------------------------- errors


@FAST
@given(words=st.lists(st.integers(0, 0xFFFF), min_size=0, max_size=80))
def test_garbage_blocks_raise_only_remote_errors(words: list[int]) -> None:
    for decode in (mm.decode_native, mm.decode_window_response, mm.decode_window_header):
        try:
            decode(words)
        except RemoteProtocolError:
            pass
    try:
        mm.decode_window_request(words[:6], words[6:])
    except RemoteProtocolError:
        pass


def test_unknown_command_is_sns_and_bad_fields_are_err() -> None:
    with pytest.raises(RemoteProtocolError) as unknown:
        mm.decode_window_request((0, 0, 0, 0, 0, 0x7701), ())
    assert unknown.value.response_code is ResponseCode.SNS
    with pytest.raises(RemoteProtocolError) as short_pw:
        mm.decode_window_request((0, 0, 0, 19, 0, 0x5101), (0,) * 10)
    assert short_pw.value.response_code is ResponseCode.ERR
    with pytest.raises(RemoteProtocolError):
        mm.decode_window_request((0, 0x100, 0, 0, 0, 0x3F01), ())  # offset past 24 bits
    with pytest.raises(RemoteProtocolError):
        mm.decode_window_request((0, 0, 0, 0, 0, 0x3000), ())  # sequence 0


def test_stale_or_corrupt_window_answers_are_rejected() -> None:
    req = mm.WindowRequest(command=mm.WindowCommand.FULL_READ, sequence=4, table_id=1)
    old = mm.WindowResponse(command=0x30, sequence=3, state=mm.WindowState.DONE, code=0)
    with pytest.raises(RemoteProtocolError, match="seq 3"):
        mm.window_to_response(req, old)
    busy = mm.WindowResponse(command=0x30, sequence=4, state=mm.WindowState.BUSY, code=0)
    with pytest.raises(RemoteProtocolError, match="BUSY"):
        mm.window_to_response(req, busy)
    words = list(mm.encode_window_response(
        mm.WindowResponse(command=0x30, sequence=4, state=mm.WindowState.DONE, code=0, data=b"ab")
    ))  # fmt: skip
    words[4] ^= 0x0100
    with pytest.raises(RemoteProtocolError, match="checksum"):
        mm.decode_window_response(words)


def test_bad_values_raise_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        mm.encode_native(readings(serial="X" * 17))
    with pytest.raises(LocalProtocolError):
        mm.encode_native(readings(model="mètre"))
    with pytest.raises(LocalProtocolError):
        mm.encode_native(readings(power_factor_pm=40000))
    with pytest.raises(LocalProtocolError):
        mm.encode_window_request(mm.WindowRequest(command=mm.WindowCommand.FULL_READ, sequence=0))
    with pytest.raises(LocalProtocolError):
        mm.encode_window_request(
            mm.WindowRequest(command=mm.WindowCommand.FULL_WRITE, sequence=1, count=2, data=b"a")
        )


def test_inconsistent_self_test_result_is_rejected() -> None:
    words = list(mm.encode_native(readings(self_test_failing=0)))
    words[70] = 1
    with pytest.raises(RemoteProtocolError, match="self-test"):
        mm.decode_native(words)


@pytest.mark.parametrize(
    ("space", "address", "count", "write", "region"),
    [
        (mm.Space.INPUT, 0, 72, False, mm.Region.NATIVE),
        (mm.Space.INPUT, 0x7FFC, 125, False, mm.Region.RESPONSE),
        (mm.Space.HOLDING, 0x7FFC, 125, False, mm.Region.RESPONSE),
        (mm.Space.HOLDING, 1000, 121, True, mm.Region.WINDOW_REQUEST),
        (mm.Space.DISCRETE_INPUTS, 0, 40, False, mm.Region.STATUS_BITS),
        (mm.Space.COILS, 0, 1, True, mm.Region.COILS),
    ],
)
def test_locate(space: mm.Space, address: int, count: int, write: bool, region: mm.Region) -> None:
    assert mm.locate(space, address, count, write=write) is region


@pytest.mark.parametrize(
    ("space", "address", "count", "write"),
    [
        (mm.Space.INPUT, 70, 3, False),  # past the native block
        (mm.Space.INPUT, 0, 1, True),  # input registers are read-only
        (mm.Space.HOLDING, 0x7FFC, 1, True),  # the response mirror is read-only
        (mm.Space.HOLDING, 0x7FF0, 20, True),  # straddles request data and response
        (mm.Space.DISCRETE_INPUTS, 39, 2, False),
        (mm.Space.COILS, mm.COIL_COUNT, 1, True),
    ],
)
def test_locate_rejects(space: mm.Space, address: int, count: int, write: bool) -> None:
    with pytest.raises(mm.MapAddressError) as err:
        mm.locate(space, address, count, write=write)
    assert err.value.exception_code is mm.ExceptionCode.ILLEGAL_ADDRESS


# ---------------------------------------------------------------------------- the documentation


def test_docs_table_matches_the_code() -> None:
    if not DOCS.exists():
        pytest.skip("docs/protocols.md not present")
    text = DOCS.read_text()
    section = text.split("## Modbus register map", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+)(?:-(\d+))? \| `(\w+)` \| (\w+) \|", section, re.M)
    documented = {name: (int(a), int(b or a) - int(a) + 1, kind) for a, b, name, kind in rows}
    expected = {f.name: (f.address, f.words, f.kind) for f in mm.NATIVE_FIELDS}
    assert documented == expected
