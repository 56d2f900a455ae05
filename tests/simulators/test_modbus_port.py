"""The sans-I/O Modbus port of a simulated collector (no sockets): the register map over SimMeters."""

from __future__ import annotations

import pytest

from amidcc.codecs import modbus_map as mm
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.psem import (
    FullRead,
    FullWrite,
    Logoff,
    Request,
    Security,
    decode_response,
    encode_request,
)
from amidcc.simulators import FaultKind, LinkFaultKind, MeterIdentity, RunKind, SimMeter, StdStatus
from amidcc.simulators.config import pad_password
from amidcc.simulators.modbus import Availability, ModbusMeterPort, native_readings

T = 1_767_225_600.0 + 5 * 86400 + 450
H, IN, C, D = mm.Space.HOLDING, mm.Space.INPUT, mm.Space.COILS, mm.Space.DISCRETE_INPUTS


def make_port() -> tuple[ModbusMeterPort, SimMeter]:
    meter = SimMeter(
        MeterIdentity(manufacturer="AMDC", model="P1", serial="PORT0001", seed=77),
        start_time=T - 3600,
    )
    return ModbusMeterPort({4: meter}), meter


class Window:
    """Drive the window the way a client does, through the port's read and write."""

    def __init__(self, port: ModbusMeterPort) -> None:
        self.port, self.seq = port, 0

    def run(self, request: Request | mm.WindowRequest, now: float = T) -> bytes:
        self.seq = self.seq % 255 + 1
        win = (
            request
            if isinstance(request, mm.WindowRequest)
            else mm.request_to_window(request, self.seq)
        )
        assert isinstance(win, mm.WindowRequest)
        for address, words in mm.plan_window_write(win):
            self.port.write(4, H, address, words, now)
        header = mm.decode_window_header(self.port.read(4, IN, mm.RESPONSE_HEADER, 4, now))
        count = 4 + (header.length + 1) // 2
        words = self.port.read(4, IN, mm.RESPONSE_HEADER, count, now)
        return mm.window_to_response(win, mm.decode_window_response(words))


def test_availability() -> None:
    port, meter = make_port()
    assert port.availability(4, T) is Availability.OK
    assert port.availability(5, T) is Availability.UNKNOWN_UNIT
    meter.inject(LinkFaultKind.SILENT, T)
    assert port.availability(4, T) is Availability.SILENT
    meter.clear(LinkFaultKind.SILENT, T)
    meter.inject(LinkFaultKind.COLLECTOR_DOWN, T)
    assert port.availability(4, T) is Availability.PATH_DOWN
    meter.clear(LinkFaultKind.COLLECTOR_DOWN, T)
    meter.inject(FaultKind.POWER_OUTAGE, T)
    assert port.availability(4, T + 1) is Availability.SILENT


def test_native_reads_any_slice_of_the_block() -> None:
    port, meter = make_port()
    whole = port.read(4, IN, 0, mm.NATIVE_COUNT, T)
    assert mm.decode_native(whole) == native_readings(meter, T)
    assert port.read(4, IN, 7, 8, T) == whole[7:15]
    assert mm.words_to_bytes(whole[7:15]) == b"PORT0001        "


def test_tables_through_the_window_equal_the_meter() -> None:
    port, meter = make_port()
    w = Window(port)
    assert (
        w.run(FullRead(table_id=1))
        == meter.handle_services([encode_request(FullRead(table_id=1))], T, channel="x")[0]
    )
    assert w.run(FullRead(table_id=23)) == bytes((ResponseCode.ISC,))  # no credential yet
    assert w.run(Security(password=pad_password("nope"), user_id=1)) == bytes((ResponseCode.ISC,))
    assert w.run(Security(password=pad_password("reader"), user_id=1)) == b"\x00"
    st23 = decode_response(w.run(FullRead(table_id=23)), FullRead(table_id=23))
    assert st23.data  # type: ignore[union-attr]
    assert w.run(Logoff()) == b"\x00"
    assert w.run(FullRead(table_id=23)) == bytes((ResponseCode.ISC,))


def test_credential_expires_after_the_session_timeout() -> None:
    port, meter = make_port()
    w = Window(port)
    w.run(Security(password=pad_password("reader"), user_id=1))
    later = T + meter.config.session_timeout - 1
    assert w.run(FullRead(table_id=23), later)[0] == 0  # used: the idle time restarts
    idle = later + meter.config.session_timeout + 1
    assert w.run(FullRead(table_id=23), idle) == bytes((ResponseCode.ISC,))


def test_long_writes_and_bad_commands_are_answered_in_the_window() -> None:
    port, _ = make_port()
    w = Window(port)
    w.run(Security(password=pad_password("master"), user_id=1))
    data = bytes(range(256)) * 2  # 512 bytes: needs an FC16 before the command write
    assert w.run(FullWrite(table_id=60, data=data)) == bytes((ResponseCode.IAR,))
    back = port.read(4, H, mm.WINDOW_DATA, len(data) // 2, T)
    assert mm.words_to_bytes(back) == data
    port.write(4, H, mm.WINDOW_REQUEST, [0, 0, 0, 0, 0, 0x7709], T)
    header = mm.decode_window_header(port.read(4, IN, mm.RESPONSE_HEADER, 4, T))
    assert (header.command, header.sequence, header.code) == (0x77, 9, ResponseCode.SNS)
    assert port.read(4, H, mm.RESPONSE_HEADER, 2, T) == port.read(4, IN, mm.RESPONSE_HEADER, 2, T)


def test_coils_run_their_procedures() -> None:
    port, meter = make_port()
    events = len(meter.event_records(T))
    port.write(4, C, mm.Coil.SELF_TEST, [True], T)
    assert meter.last_self_test(T) == (T, RunKind.ON_DEMAND)
    assert len(meter.event_records(T)) == events + 2  # summary + procedure invoked
    assert port.read(4, C, 0, mm.COIL_COUNT, T) == [False] * mm.COIL_COUNT
    port.write(4, C, mm.Coil.DEMAND_RESET, [True], T)
    assert meter.demand_resets == 1
    port.write(4, C, mm.Coil.SELF_TEST, [False], T)  # writing 0 does nothing
    assert len(meter.event_records(T)) == events + 4


def test_status_bits_follow_faults_and_clear_coil() -> None:
    port, meter = make_port()
    meter.inject(FaultKind.TAMPER, T)
    bits = mm.decode_status_bits(port.read(4, D, 0, mm.STATUS_BITS_COUNT, T))
    assert bits.std_status & StdStatus.TAMPER_DETECT and bits.ed_mode & 1
    meter.clear(FaultKind.TAMPER, T + 1)
    port.write(4, C, mm.Coil.CLEAR_STD_STATUS, [True], T + 2)
    assert mm.decode_status_bits(port.read(4, D, 0, 40, T + 2)).std_status == 0


def test_addresses_outside_the_map() -> None:
    port, _ = make_port()
    with pytest.raises(mm.MapAddressError):
        port.read(4, IN, 100, 1, T)
    with pytest.raises(mm.MapAddressError):
        port.write(4, IN, 0, [1], T)
    with pytest.raises(mm.MapAddressError):
        port.write(4, H, mm.RESPONSE_HEADER, [1], T)
