"""The optical port's Twisted protocol without sockets or real time: StringTransport for exact
bytes, iosim with a task.Clock for whole sessions driven by the test host (optical_client.py)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.test.iosim import IOPump, connectedServerAndClient

from amidcc.codecs.c1218 import (
    DEFAULT_PACKET_SIZE,
    ChannelState,
    Frame,
    MessageReceived,
    encode_frame,
)
from amidcc.codecs.c1219 import ST64, CurrentRegData, GeneralMfgId, LpData, decode_table
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.psem import (
    FullRead,
    Identify,
    IdentifyResponse,
    Logon,
    Security,
    Terminate,
    encode_request,
    pad_password,
    pad_user,
)
from amidcc.simulators import MeterConfig, MeterIdentity, PortSharing, SimMeter
from amidcc.simulators.config import DAY
from amidcc.simulators.optical import (
    LocalPort,
    LocalPortPolicy,
    OpticalConfig,
    OpticalPortFactory,
    OpticalPortProtocol,
)

from .optical_client import READER, NoAnswer, Nok, OpticalClient

T0 = 1_767_225_600.0
NOW = T0 + 10 * DAY + 3600.0

# Frames from protocol-facts.md 1.3 (CRC-checked there).
IDENTIFY_T0 = bytes.fromhex("EE 00 00 00 00 01 20 13 10")  # S9 unit test, termineter
TERMINATE_T1 = bytes.fromhex("EE 00 20 00 00 01 21 0B 61")  # termineter
OK_T1 = bytes.fromhex("EE 00 20 00 00 01 00 80 51")  # S13 real meter: bare ok, toggle 1
FULL_READ_ST0_T1 = bytes.fromhex("EE 00 20 00 00 03 30 00 00 5F 7F")  # termineter
ACK, NAK = b"\x06", b"\x15"
READ_ST0 = encode_request(FullRead(table_id=0))
BSY = bytes((int(ResponseCode.BSY),))


def make_meter(serial: str = "meter-0042", **cfg: Any) -> SimMeter:
    ident = MeterIdentity(manufacturer="AMDC", model="OPT1", serial=serial, seed=42)
    return SimMeter(ident, config=MeterConfig(**cfg), start_time=T0)


def make_clock() -> Clock:
    clock = Clock()
    clock.advance(NOW)  # meter time is reactor time
    return clock


def raw_port(
    policy: LocalPortPolicy | None = None, **opt: Any
) -> tuple[OpticalPortProtocol, StringTransport, Clock, LocalPort]:
    clock = make_clock()
    port = LocalPort(make_meter(), policy)
    proto = OpticalPortFactory(port, clock, OpticalConfig(**opt)).buildProtocol(None)
    assert proto is not None
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport, clock, port


def take(transport: StringTransport) -> bytes:
    out = transport.value()
    transport.clear()
    return out


class Session:
    """A meter's optical port and the test host, joined by iosim on one clock."""

    def __init__(self, policy: LocalPortPolicy | None = None, **opt: Any) -> None:
        self.clock = make_clock()
        self.meter = make_meter()
        self.port = LocalPort(self.meter, policy)
        self.factory = OpticalPortFactory(self.port, self.clock, OpticalConfig(**opt))

        def server() -> OpticalPortProtocol:
            proto = self.factory.buildProtocol(None)
            assert proto is not None
            return proto

        self.client, self.server, self.pump = connectedServerAndClient(
            server, lambda: OpticalClient(self.clock), clock=self.clock
        )

    def run(self, work: Callable[[], Coroutine[Any, Any, Any]] | Deferred[Any], limit: float = 60.0) -> Any:
        """Pump bytes and advance the clock in 10 ms steps until ``work`` is done."""
        d = ensureDeferred(work()) if callable(work) else work
        return settle(self.pump, self.clock, d, limit)


def settle(pump: IOPump, clock: Clock, d: Deferred[Any], limit: float = 60.0) -> Any:
    done: list[Any] = []
    d.addBoth(done.append)
    start = clock.seconds()
    while True:
        pump.flush()
        if done:
            break
        assert clock.seconds() - start < limit, "the exchange did not finish"
        clock.advance(0.01)
    if isinstance(done[0], Failure):
        done[0].raiseException()
    return done[0]


# -- exact bytes --------------------------------------------------------------------------------


@pytest.mark.parametrize("chunking", ["whole", "bytewise"])
def test_identify_then_terminate_vectors(chunking: str) -> None:
    proto, tr, _, port = raw_port()
    pieces = [IDENTIFY_T0] if chunking == "whole" else [bytes((b,)) for b in IDENTIFY_T0]
    for piece in pieces:
        proto.dataReceived(piece)
    out = take(tr)
    # ACK then the answer back to back, as real meters do (facts 1.4); first frame toggle 0.
    assert out[:1] == ACK and out[1:3] == b"\xee\x00" and out[3] & 0x20 == 0
    assert port.active
    proto.dataReceived(ACK)
    proto.dataReceived(TERMINATE_T1)
    assert take(tr) == ACK + OK_T1
    proto.dataReceived(ACK)
    assert not port.active


def test_nak_and_timeout_retransmit_same_bytes_then_give_up() -> None:
    proto, tr, clock, _ = raw_port()
    proto.dataReceived(IDENTIFY_T0)
    frame = take(tr)[1:]
    proto.dataReceived(NAK)
    assert take(tr) == frame  # same toggle bit, same bytes
    clock.advance(2.0)  # response timeout
    assert take(tr) == frame
    clock.advance(2.0)
    assert take(tr) == frame
    assert proto.link.stats.retransmissions == 3
    clock.advance(2.0)  # retries exhausted: the answer is abandoned
    assert take(tr) == b""
    assert proto.link.stats.send_failures == 1
    # the port still serves the next request (toggle 1: a new packet)
    proto.dataReceived(TERMINATE_T1)
    assert take(tr) == ACK + bytes.fromhex("EE 00 20 00 00 01 00 80 51")


def test_bad_crc_is_naked_and_duplicates_are_acked_once_served() -> None:
    proto, tr, _, _ = raw_port()
    bad = IDENTIFY_T0[:-1] + bytes((IDENTIFY_T0[-1] ^ 0xFF,))
    proto.dataReceived(bad)
    assert take(tr) == NAK
    proto.dataReceived(IDENTIFY_T0)
    answer = take(tr)
    assert answer[:1] == ACK and len(answer) > 1
    proto.dataReceived(ACK)
    proto.dataReceived(IDENTIFY_T0)  # our ACK "was lost": the host sends it again
    assert take(tr) == ACK  # ACKed, not answered twice
    assert proto.link.stats.duplicates == 1 and proto.link.stats.crc_errors == 1


def test_garbage_before_a_frame_is_skipped() -> None:
    proto, tr, _, _ = raw_port()
    proto.dataReceived(b"\x55\x00\xff\x13garbage\x06")  # wake-up byte, noise, a stray ACK
    assert take(tr) == b""
    proto.dataReceived(IDENTIFY_T0)
    assert take(tr)[:2] == ACK + b"\xee"
    assert proto.link.stats.garbage_bytes >= 11


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_never_break_the_port(noise: bytes) -> None:
    proto, tr, clock, _ = raw_port()
    proto.dataReceived(noise)
    clock.advance(7.0)  # inter-character and channel timeouts clear any partial frame
    take(tr)
    proto.dataReceived(ACK)  # whatever it was sending is done
    clock.advance(7.0)
    take(tr)
    proto.dataReceived(IDENTIFY_T0)
    out = take(tr)
    assert out[:2] == ACK + b"\xee" or out == ACK  # ACK (a duplicate of a noise frame) at least


def test_power_outage_means_no_ack_and_no_answer() -> None:
    proto, tr, clock, port = raw_port()
    port.meter.inject("power-outage", NOW)
    proto.dataReceived(IDENTIFY_T0)
    assert take(tr) == b""
    port.meter.clear("power-outage", NOW)
    proto.dataReceived(IDENTIFY_T0)
    assert take(tr)[:2] == ACK + b"\xee" and port.active
    # power fails while the answer waits for its ACK: no retransmission, session gone
    port.meter.inject("power-outage", clock.seconds())
    clock.advance(10.0)
    assert take(tr) == b"" and proto.link.stats.retransmissions == 0
    assert not port.active


def test_one_probe_at_a_time() -> None:
    clock = make_clock()
    factory = OpticalPortFactory(LocalPort(make_meter()), clock)
    first = factory.buildProtocol(None)
    assert first is not None
    first.makeConnection(StringTransport())
    assert factory.buildProtocol(None) is None
    first.connectionLost(Failure(ConnectionError("gone")))
    assert factory.buildProtocol(None) is not None and factory.sessions == 2


# -- pacing -------------------------------------------------------------------------------------


def frame(req: Any, toggle: bool) -> bytes:
    """One single-packet C12.18 frame carrying ``req``."""
    data = encode_request(req)
    return encode_frame(
        Frame(identity=0, multi_packet=False, first_packet=False, toggle=toggle, seq_nbr=0, data=data)
    )


def test_pacing_writes_at_the_baud_rate() -> None:
    proto, tr, clock, _ = raw_port(pace=True, baud=9600)
    # one packet at 9600 bd must be clocked out before the ACK timer may run out
    assert proto.link.response_timeout == pytest.approx(2.0 + (DEFAULT_PACKET_SIZE + 1) * 10 / 9600)
    for toggle, req in enumerate((Identify(), Logon(user_id=1, user=pad_user("t")))):
        proto.dataReceived(frame(req, bool(toggle)))
        clock.advance(0.1)
        proto.dataReceived(ACK)
    take(tr)
    proto.dataReceived(frame(FullRead(table_id=0), False))  # ST0: ACK + 56-byte frame
    chunk = int(9600 / 10 * 0.02)  # bytes in one 20 ms chunk at 960 bytes a second
    assert len(take(tr)) == chunk
    clock.advance(chunk / 960 - 0.001)
    assert tr.value() == b""  # the line is still busy with the first chunk
    clock.advance(0.002)
    assert len(take(tr)) == chunk
    clock.advance(0.1)
    assert len(take(tr)) == 1 + 8 + 48 - 2 * chunk


def test_paced_read_takes_line_time() -> None:
    s = Session(pace=True, baud=9600)
    start = s.clock.seconds()
    s.run(lambda: s.client.open_session(negotiate=(1024, 8, ())))
    t0 = s.clock.seconds()
    data = s.run(lambda: s.client.read(64, 0, 960))
    elapsed = s.clock.seconds() - t0
    assert len(data) == 960
    # 960 data bytes + 4 of PSEM + 8 of framing, at 960 bytes a second: about a second
    assert elapsed >= (960 + 12) / 960.0
    assert t0 > start


def test_negotiated_baud_changes_pacing_after_the_ack() -> None:
    s = Session(pace=True, baud=9600)
    s.run(lambda: s.client.open_session(negotiate=(512, 4, (0x08,))))  # 19200 bd
    assert s.server.baud == 19200 and s.server.pacer.baud == 19200
    t0 = s.clock.seconds()
    s.run(lambda: s.client.read(64, 0, 1900))
    fast = s.clock.seconds() - t0
    assert fast < 1900 / 960.0  # faster than 9600 bd could carry it


# -- whole sessions -----------------------------------------------------------------------------


def test_negotiate_applies_packet_size_after_the_ack() -> None:
    s = Session()
    s.run(lambda: s.client.call(Identify()))
    assert s.server.link.packet_size == DEFAULT_PACKET_SIZE
    s.run(lambda: s.client.open_session(negotiate=(1024, 8, (0x06,))))
    assert (s.server.link.packet_size, s.server.link.nbr_packets, s.server.baud) == (1024, 8, 9600)
    data = s.run(lambda: s.client.read(64, 0, 6000))
    assert len(data) == 6000
    got = [e for e in s.client.events if isinstance(e, MessageReceived)][-1]
    assert got.packets == 6  # 6004 bytes in 1016-byte packets


def test_response_too_big_for_the_default_packets_is_refused() -> None:
    s = Session()
    s.run(lambda: s.client.open_session(negotiate=None))
    with pytest.raises(Nok) as err:
        s.run(lambda: s.client.read(64, 0, 200))
    assert err.value.code is ResponseCode.ONP
    assert len(s.run(lambda: s.client.read(64, 0, 50))) == 50


def test_logon_security_and_reads() -> None:
    s = Session()

    async def work() -> None:
        c = s.client
        ident = await c.call(Identify())
        assert isinstance(ident, IdentifyResponse) and ident.std == 0
        with pytest.raises(Nok) as err:
            await c.read(23)
        assert err.value.code is ResponseCode.ISSS  # not logged on
        await c.open_session(password=None)
        st1 = decode_table(1, await c.read(1), c.ctx)  # anonymous
        assert isinstance(st1, GeneralMfgId) and st1.mfg_serial_number.strip() == "meter-0042"
        with pytest.raises(Nok) as err:
            await c.read(23)
        assert err.value.code is ResponseCode.ISC
        with pytest.raises(Nok) as err:
            await c.call(Security(password=pad_password("wrong", fill=b"\x00")))
        assert err.value.code is ResponseCode.ISC
        await c.call(Security(password=READER))
        await c.learn()
        regs = decode_table(23, await c.read(23), c.ctx)
        assert isinstance(regs, CurrentRegData)
        with pytest.raises(Nok) as err:
            await c.procedure(11)  # the reader password cannot run procedures
        assert err.value.code is ResponseCode.ISC
        await c.close_session()

    s.run(work)
    assert not s.port.active


def test_procedure_st7_execute_diagnostics() -> None:
    s = Session()

    async def work() -> tuple[Any, Any]:
        await s.client.open_session()
        await s.client.learn()
        healthy = await s.client.procedure(11)  # SP11: the on-demand self-test
        s.meter.inject("ram", s.clock.seconds())
        return healthy, await s.client.procedure(11)

    healthy, failing = s.run(work)
    for resp, seq in ((healthy, 1), (failing, 2)):
        assert int(resp.number) == 11 and int(resp.result_code) == 0 and resp.seq_nbr == seq
    # RESP_DATA starts with the failing-check bitmap (UINT32)
    assert healthy.resp_data[:4] == bytes(4)
    assert failing.resp_data[:4] != bytes(4)


def test_reads_45_days_of_interval_data() -> None:
    s = Session()

    async def work() -> tuple[Any, bytes]:
        await s.client.open_session()
        ctx = await s.client.learn()
        size = ST64.size(ctx)
        assert size is not None and size > 45 * 96 * 4  # 45 days of 15-minute intervals at least
        return ctx, await s.client.read_chunked(64, size, 8000)

    ctx, raw = s.run(work)
    lp = ST64.parse(raw, ctx)
    assert isinstance(lp, LpData) and len(lp.blocks) >= 45


def test_terminate_returns_the_link_to_defaults() -> None:
    s = Session(baud=4800, pace=True)
    s.run(lambda: s.client.open_session(negotiate=(1024, 8, (0x06,))))
    assert s.server.baud == 9600 and s.port.active
    s.run(lambda: s.client.call(Terminate()))
    s.pump.flush()
    assert (s.server.link.packet_size, s.server.baud) == (DEFAULT_PACKET_SIZE, 4800)
    assert not s.port.active


def test_channel_timeout_returns_the_session_to_base_state() -> None:
    s = Session()
    s.run(lambda: s.client.open_session(negotiate=(1024, 8, ())))
    assert s.server.link.channel_state is ChannelState.ACTIVE and s.port.active
    s.clock.advance(5.0)
    assert s.port.active  # not yet: 6 s of silence
    s.clock.advance(1.1)
    assert s.server.link.channel_state is ChannelState.BASE
    assert not s.port.active and s.server.link.packet_size == DEFAULT_PACKET_SIZE
    s.client.link.apply_negotiated(DEFAULT_PACKET_SIZE, 1)
    with pytest.raises(Nok) as err:
        s.run(lambda: s.client.read(0))
    assert err.value.code is ResponseCode.ISSS  # the meter forgot the logon


def test_hang_up_terminates_the_optical_session() -> None:
    s = Session(policy=LocalPortPolicy.PREEMPT)
    s.run(lambda: s.client.open_session())
    assert s.port.network_busy()
    s.client.transport.loseConnection()
    s.pump.flush()
    assert not s.port.active and s.factory.current is None
    assert not s.port.network_busy()
    assert s.port.handle_network_services([READ_ST0], NOW)[0][:1] == b"\x00"


def test_unanswered_request_times_out_in_the_client() -> None:
    s = Session()
    s.port.meter.inject("power-outage", NOW)
    with pytest.raises(NoAnswer):
        s.run(lambda: s.client.call(Identify()))


# -- FR26 ---------------------------------------------------------------------------------------


def test_preempt_answers_bsy_to_the_network_while_the_optical_session_is_open() -> None:
    s = Session(policy=LocalPortPolicy.PREEMPT)
    assert s.port.handle_network_services([READ_ST0], NOW)[0][:1] == b"\x00"
    s.run(lambda: s.client.call(Identify()))
    assert s.port.handle_network_services([READ_ST0, READ_ST0], NOW) == [BSY, BSY]
    s.run(lambda: s.client.call(Terminate()))
    assert s.port.handle_network_services([READ_ST0], NOW)[0][:1] == b"\x00"


def test_share_serves_both() -> None:
    s = Session(policy=LocalPortPolicy.SHARE)
    s.run(lambda: s.client.open_session())
    assert not s.port.network_busy()
    assert s.port.handle_network_services([READ_ST0], NOW)[0][:1] == b"\x00"
    assert len(s.run(lambda: s.client.read(0))) > 0


def test_exclusive_network_refuses_the_optical_port() -> None:
    s = Session(policy="exclusive-network")
    with pytest.raises(Nok) as err:
        s.run(lambda: s.client.call(Identify()))
    assert err.value.code is ResponseCode.ONP
    assert not s.port.active
    assert s.port.handle_network_services([READ_ST0], NOW)[0][:1] == b"\x00"


def test_default_policy_follows_the_meter_config() -> None:
    assert LocalPort(make_meter()).policy is LocalPortPolicy.SHARE
    m = make_meter(port_sharing=PortSharing.LOCAL_PREEMPTS)
    assert LocalPort(m).policy is LocalPortPolicy.PREEMPT
    with pytest.raises(ValueError):
        LocalPort(m, "sometimes")
