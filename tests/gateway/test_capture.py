"""amidcc.gateway.capture and amidcc.gateway.tracing on in-memory transports and a task.Clock.

The C12.22 link's frame taps feed the capture; the files are read back with amidcc's own capture
reader and analyser (amidcc.pcap), so each test checks what Wireshark would be given: the flows
(addresses, ports, handshake, FIN), every APDU once, rotation into standalone files, and a disk
that fills up without the link noticing. The meter side is played with the codec by hand, as in
test_c1222_link.py (whose helpers are reused)."""

from __future__ import annotations

import errno
import io
from pathlib import Path
from typing import Any

import pytest
from twisted.application.service import MultiService
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, capturedLogs

from amidcc.codecs.c1222 import ApTitle, SecurityMode, build_message, encode_apdu
from amidcc.codecs.psem import FullRead, encode_request
from amidcc.gateway.capture import (
    DEFAULT_HEAD_END_HOST,
    CaptureMetrics,
    CaptureService,
    PcapCapture,
    attach_capture,
    flow_of,
    gateway_links,
)
from amidcc.gateway.config import ConfigError, parse_config
from amidcc.gateway.links.c1222 import C1222Link, C1222Settings
from amidcc.gateway.links.c1222_transport import C1222Datagram, C1222Protocol
from amidcc.gateway.links.mqtt import CellChannel
from amidcc.gateway.metrics import GatewayMetrics
from amidcc.gateway.tap import GatewayService, build_service
from amidcc.gateway.tracing import FrameTracer, normalise_target, set_trace_meters
from amidcc.pcap.analysis import CaptureAnalyzer, analyze_file
from amidcc.pcap.packets import TCP_FIN, TCP_SYN, parse_frame
from amidcc.pcap.reader import read_frames
from amidcc.pcap.records import MessageKind
from amidcc.pcap.writer import C1222_PORT, synthetic_address

from .test_c1222_link import (
    GW,
    KEY,
    T0,
    Rig,
    address,
    answer,
    outcome,
    register_apdu,
    sent,
    st1_read,
)  # fmt: skip

READ = encode_request(FullRead(table_id=1))
HEAD_END = IPv4Address("TCP", "10.0.0.1", C1222_PORT)


def analyse(path: Path, **kw: Any) -> tuple[list[Any], Any]:
    analyzer = CaptureAnalyzer(**kw)
    records = list(analyze_file(path, analyzer))
    return records, analyzer.summary()


def segments(path: Path) -> list[Any]:
    return [parse_frame(f.linktype, f.data) for f in read_frames(path)]


class CapturedRig(Rig):
    """A link (test_c1222_link.Rig) with a capture to ``tmp_path/gw.pcap`` on its taps."""

    def __init__(self, tmp_path: Path, **capture: Any) -> None:
        super().__init__()
        self.path = tmp_path / "gw.pcap"
        self.capture = PcapCapture(self.path, **capture)
        self.capture.start(self.clock.seconds())
        self.link.taps.append(self.capture)

    def connect(self, port: int = 40000) -> tuple[C1222Protocol, StringTransport]:
        """A connection from 127.0.0.1:port to the gateway's 10.0.0.1:1153."""
        proto, transport = super().connect(port)
        transport.hostAddr = HEAD_END
        return proto, transport

    def register(self, port: int, title: str, serial: str) -> tuple[C1222Protocol, StringTransport]:
        proto, transport = self.connect(port)
        proto.dataReceived(register_apdu(title, serial))
        transport.clear()
        return proto, transport

    def read(self, proto: C1222Protocol, transport: StringTransport, title: str, meter: str) -> Any:
        d = outcome(self.link.request(address(title, meter), [READ], timeout=5))
        self.clock.advance(0.25)
        (request,) = sent(transport)
        proto.dataReceived(answer(request, [st1_read()]))
        return d

    def close(self) -> None:
        self.capture.close(self.clock.seconds())


# the link's taps


def test_every_apdu_of_a_tcp_connection_is_one_flow_with_real_addresses(tmp_path: Path) -> None:
    rig = CapturedRig(tmp_path)
    proto, transport = rig.register(40000, ".2.7.1", "SIM-1")
    for _ in range(3):
        assert rig.read(proto, transport, ".2.7.1", "SIM-1")[0] == [st1_read()]
    rig.close()

    records, summary = analyse(rig.path)
    assert [r.kind for r in records] == [MessageKind.REQUEST, MessageKind.RESPONSE] * 4
    assert summary.malformed == {} and summary.conversations == 1 and summary.matched == 4
    first = records[0]  # the meter connected: it is the originator, at its real address and port
    assert (first.proto, first.orig_h, first.orig_p) == ("tcp", "127.0.0.1", 40000)
    assert (first.resp_h, first.resp_p) == ("10.0.0.1", 1153)
    assert [r.is_orig for r in records] == [True, False] + [False, True] * 3
    assert records[1].answers == 0 and records[3].answers == 2
    assert rig.capture.stats.apdus == 8 and rig.capture.stats.dropped == 0
    # the handshake comes first, from the meter
    handshake = segments(rig.path)[:3]
    assert [s.flags & (TCP_SYN | 0x10) for s in handshake] == [TCP_SYN, TCP_SYN | 0x10, 0x10]
    assert handshake[0].sport == 40000


def test_a_closed_connection_ends_with_fin_and_the_next_is_a_new_flow(tmp_path: Path) -> None:
    rig = CapturedRig(tmp_path)
    proto, transport = rig.register(40000, ".2.7.1", "SIM-1")
    proto.connectionLost()
    rig.register(40000, ".2.7.1", "SIM-1")  # same port again: a new connection
    rig.close()
    fins = [s for s in segments(rig.path) if s.flags & TCP_FIN]
    assert len(fins) == 2
    records, summary = analyse(rig.path)
    assert summary.conversations == 2 and summary.malformed == {}
    assert [r.conversation for r in records] == [1, 1, 2, 2]


def test_undecodable_apdus_are_captured_too(tmp_path: Path) -> None:
    rig = CapturedRig(tmp_path)
    proto, _ = rig.register(40000, ".2.7.1", "SIM-1")
    proto.dataReceived(b"\x60\x03\xa1\x01\x00")  # framed, but no ACSE the codec accepts
    rig.close()
    records, summary = analyse(rig.path)
    assert len(records) == 3 and records[-1].apdu == b"\x60\x03\xa1\x01\x00"
    assert summary.malformed == {"apdu": 1}


def test_udp_peers_are_udp_datagrams_to_the_listeners_address(tmp_path: Path) -> None:
    rig = CapturedRig(tmp_path)
    udp = C1222Datagram(rig.link)
    udp.transport = StringTransport(hostAddress=IPv4Address("UDP", "0.0.0.0", C1222_PORT))  # type: ignore[assignment]
    udp.transport.write = lambda data, addr=None: None  # type: ignore[method-assign,assignment]
    udp.datagramReceived(register_apdu(".2.7.9", "SIM-9"), ("192.0.2.7", 5000))
    rig.close()
    records, summary = analyse(rig.path)
    assert [(r.proto, r.is_orig) for r in records] == [("udp", True), ("udp", False)]
    assert (records[0].orig_h, records[0].orig_p) == ("192.0.2.7", 5000)
    # a wildcard listener address is not an address: the head-end gets a synthetic one
    assert (records[0].resp_h, records[0].resp_p) == (synthetic_address("amidcc head-end"), 1153)
    assert summary.malformed == {}


class _Cells:
    """What a CellChannel needs of its MqttLink: the C12.22 link and a downlink."""

    def __init__(self, link: C1222Link) -> None:
        self.c1222 = link
        self.down: list[tuple[str, bytes]] = []

    def publish_down(self, cell: str, data: bytes) -> None:
        self.down.append((cell, data))

    def close_cell(self, cell: str, reason: str) -> None:
        pass


def test_mqtt_cells_are_tcp_on_1153_from_a_synthetic_address_per_cell(tmp_path: Path) -> None:
    rig = CapturedRig(tmp_path)
    owner = _Cells(rig.link)
    cells = [CellChannel(owner, name) for name in ("cell-a", "cell-b")]  # type: ignore[arg-type]
    for n, cell in enumerate(cells):
        rig.link.channel_opened(cell)
        rig.link.apdu_received(cell, register_apdu(f".2.7.{n + 1}", f"SIM-{n}"))
    rig.link.channel_closed(cells[0], "broker session lost")
    again = CellChannel(owner, "cell-a")  # type: ignore[arg-type]
    rig.link.channel_opened(again)
    rig.link.apdu_received(again, register_apdu(".2.7.1", "SIM-0"))
    rig.close()

    assert len(owner.down) == 3  # the link answered through the downlinks, capture or not
    records, summary = analyse(rig.path)
    assert summary.malformed == {} and summary.conversations == 3
    flows = [(r.orig_h, r.orig_p, r.resp_h, r.resp_p) for r in records if r.is_orig]
    a, b, a2 = flows
    assert a[0] == a2[0] == synthetic_address("cell cell-a") != b[0]
    assert a[1] != a2[1]  # a new broker session is a new connection
    assert {f[2:] for f in flows} == {(DEFAULT_HEAD_END_HOST, C1222_PORT)}


def test_flows_of_odd_addresses() -> None:
    class Tcp:
        peer = "tcp:?"

        def __init__(self, peer: Any, host: Any) -> None:
            self.transport = StringTransport(peerAddress=peer, hostAddress=host)

    v6 = flow_of(Tcp(IPv6Address("TCP", "2001:db8::7", 4000), IPv6Address("TCP", "::", 1153)))
    assert v6.meter.host == "2001:db8::7" and v6.head_end.host.startswith("fd")
    mixed = flow_of(Tcp(IPv4Address("TCP", "192.0.2.1", 4000), IPv6Address("TCP", "::1", 1153)))
    assert mixed.head_end.host == synthetic_address("amidcc head-end")
    other = flow_of(type("Unix", (), {"peer": "unix:/x"})())
    assert other.proto == "tcp" and other.meter.host == synthetic_address("unix:/x")


def test_a_failing_tap_never_breaks_the_link(tmp_path: Path) -> None:
    rig = Rig()

    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    rig.link.taps.append(broken)
    proto, transport = rig.connect()
    with capturedLogs() as events:
        proto.dataReceived(register_apdu(".2.7.1", "SIM-1"))
    assert rig.link.routes and transport.value()  # registered and answered
    assert any("frame tap" in e.get("log_format", "") for e in events)


# rotation, buffering, a full disk


def test_rotation_at_max_size_keeps_files_standalone(tmp_path: Path) -> None:
    rig = CapturedRig(tmp_path, max_size=8192, keep=3, buffer_size=1)
    proto, transport = rig.register(40000, ".2.7.1", "SIM-1")
    for _ in range(200):
        rig.read(proto, transport, ".2.7.1", "SIM-1")
    rig.close()
    files = [rig.path, *(rig.path.with_name(f"gw.pcap.{n}") for n in (1, 2, 3))]
    assert all(f.exists() for f in files) and not rig.path.with_name("gw.pcap.4").exists()
    assert rig.capture.stats.rotations >= 4  # older files were dropped beyond keep=3
    total = 0
    for f in files:
        assert f.stat().st_size <= 8192
        records, summary = analyse(f)
        assert summary.malformed == {} and summary.conversations == 1, f
        total += len(records)
        assert segments(f)[0].flags & TCP_SYN  # each file opens its flow anew
    assert 0 < total < rig.capture.stats.apdus == 402


def test_an_existing_file_is_rotated_away_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "gw.pcap").write_bytes(b"yesterday")
    rig = CapturedRig(tmp_path)
    rig.close()
    assert (tmp_path / "gw.pcap.1").read_bytes() == b"yesterday"
    assert (tmp_path / "gw.pcap").stat().st_size == 24  # the pcap file header


def test_writes_are_buffered_until_flush(tmp_path: Path) -> None:
    rig = CapturedRig(tmp_path, buffer_size=1 << 20)
    rig.register(40000, ".2.7.1", "SIM-1")
    assert rig.path.stat().st_size == 24 and rig.capture.stats.apdus == 0
    rig.capture.flush(rig.clock.seconds())
    assert rig.path.stat().st_size > 24 and rig.capture.stats.apdus == 2


class FullDisk(io.FileIO):
    """A file on a disk with ``room`` bytes left: a write past it is cut short, then ENOSPC."""

    room = 0

    def write(self, data: Any) -> int:
        if FullDisk.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = min(len(data), FullDisk.room)
        FullDisk.room -= n
        return super().write(bytes(data)[:n])


def test_a_full_disk_is_counted_and_the_link_goes_on(tmp_path: Path) -> None:
    FullDisk.room = 600
    metrics = GatewayMetrics(process=False)
    opener = lambda path: FullDisk(path, "wb")  # noqa: E731
    rig = CapturedRig(
        tmp_path, buffer_size=1, retry_after=10.0, opener=opener, metrics=CaptureMetrics(metrics)
    )
    proto, transport = rig.register(40000, ".2.7.1", "SIM-1")
    with capturedLogs() as events:
        reads = [rig.read(proto, transport, ".2.7.1", "SIM-1") for _ in range(6)]
    assert all(r == [[st1_read()]] for r in reads)  # the link never noticed
    stats = rig.capture.stats
    assert stats.write_errors == 1 and stats.dropped > 0 and not rig.capture.open
    assert stats.apdus + stats.dropped == 14
    assert any("No space left" in e.get("error", "") for e in events)
    assert metrics.registry.get_sample_value("amidcc_capture_write_errors_total") == 1
    assert metrics.registry.get_sample_value("amidcc_capture_dropped_total") == stats.dropped
    # the file was cut back to its last whole record: it still reads cleanly
    records, summary = analyse(rig.path)
    assert len(records) == stats.apdus and summary.malformed == {}

    FullDisk.room = 1 << 20  # space again: after retry_after, a new file
    rig.clock.advance(10)
    rig.read(proto, transport, ".2.7.1", "SIM-1")
    rig.close()
    assert rig.capture.stats.write_errors == 1 and len(rig.capture.stats.files) == 2
    records, summary = analyse(rig.path)
    assert len(records) == 2 and summary.malformed == {}
    assert analyse(tmp_path / "gw.pcap.1")[1].malformed == {}


def test_a_file_that_cannot_be_opened_is_retried(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    capture = PcapCapture(blocker / "gw.pcap", retry_after=5.0)
    capture.start(T0)
    assert not capture.open and capture.stats.write_errors == 1
    capture("rx", object(), None, b"\x60\x00", T0 + 1)
    assert capture.stats.dropped == 1 and capture.stats.write_errors == 1  # not retried yet
    capture("rx", object(), None, b"\x60\x00", T0 + 6)
    assert capture.stats.write_errors == 2 and capture.stats.dropped == 2


# the service and the gateway


def test_service_attaches_on_start_flushes_on_its_clock_and_detaches_on_stop(
    tmp_path: Path,
) -> None:
    rig = Rig()
    capture = PcapCapture(tmp_path / "gw.pcap")
    tracer = FrameTracer([".2.7.1"])
    original = rig.link.settings = C1222Settings(
        ap_title=GW, base_oid=rig.link.settings.base_oid, trace_titles=frozenset({".2.7.1"})
    )
    service = CaptureService(rig.clock, lambda: [rig.link], capture=capture, tracer=tracer)
    service.startService()
    assert rig.link.taps == [tracer, capture] and not rig.link.settings.trace_titles
    proto, _ = rig.connect()
    with capturedLogs() as events:
        proto.dataReceived(register_apdu(".2.7.1", "SIM-1"))
    assert len([e for e in events if "hex" in e]) == 2  # the tracer's lines only, not the link's
    assert capture.stats.apdus == 0
    rig.clock.advance(1.0)  # the periodic flush
    assert capture.stats.apdus == 2
    service.stopService()
    assert rig.link.taps == [] and rig.link.settings is original and not capture.open


def make_gateway(tmp_path: Path, **sections: dict[str, object]) -> GatewayService:
    config = parse_config({"gateway": {"state_dir": str(tmp_path)}, **sections})
    return build_service(config, MemoryReactorClock(), metrics=GatewayMetrics(process=False))


def test_attach_capture_wires_the_gateways_links(tmp_path: Path) -> None:
    gateway = make_gateway(
        tmp_path, capture={"pcap": "gw.pcap", "max_size": "1MiB"},
        logging={"trace_meters": ["SIM-1"]},
    )  # fmt: skip
    service = attach_capture(gateway)
    assert gateway.stores["capture"] is service and gateway.stores["tracer"] is service.tracer
    gateway.startService()
    try:
        listener: Any = gateway.stores["c1222"]
        assert service.capture is not None and listener.tcp.taps == [
            service.tracer,
            service.capture,
        ]
        proto = listener.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        peer = IPv4Address("TCP", "127.0.0.1", 40000)
        proto.makeConnection(StringTransport(hostAddress=HEAD_END, peerAddress=peer))
        with capturedLogs() as events:
            proto.dataReceived(register_apdu(".2.7.1", "SIM-1"))
        # traced by meter id: the registry names the meter once it registered (its reply, and
        # the scheduler's first request on registration), not before (the Register itself)
        lines = [(e["direction"], e["meter"]) for e in events if "hex" in e]
        assert lines and set(lines) == {("tx", "SIM-1")}
        assert set_trace_meters(gateway, ["*"]) == {"*"}
    finally:
        gateway.stopService()
    assert listener.tcp.taps == []
    records, summary = analyse(tmp_path / "gw.pcap")
    assert len(records) == 1 + len(lines) and summary.malformed == {}


def test_attach_capture_without_a_file_still_traces(tmp_path: Path) -> None:
    gateway = make_gateway(tmp_path)
    service = attach_capture(gateway)
    assert service.capture is None and isinstance(service.tracer, FrameTracer)
    assert not service.tracer.targets


def test_gateway_links_finds_listeners_and_mqtt_links() -> None:
    link_a, link_b, link_c = (
        C1222Link(C1222Settings(ap_title=GW, base_oid=()), clock=Clock()) for _ in range(3)
    )
    listener = type("Listener", (), {"tcp": link_a, "udp": link_b})()
    mqtt = type("Mqtt", (), {"c1222": link_c})()
    assert gateway_links([listener, mqtt, link_a, object(), None]) == [link_a, link_b, link_c]


# tracing


def secured_request(tag: int = 7) -> bytes:
    return encode_apdu(build_message(
        called=ApTitle.parse(".2.7.1"), calling=GW, invocation_id=tag, services=[READ],
        security_mode=SecurityMode.CIPHERTEXT, key_id=1, key=KEY, iv=bytes(4),
    ))  # fmt: skip


class Chan:
    peer = "tcp:127.0.0.1:40000"


def traced(tracer: FrameTracer, *frames: tuple[str, str | None, bytes]) -> list[dict[str, Any]]:
    with capturedLogs() as events:
        for direction, title, data in frames:
            tracer(direction, Chan(), title, data, T0)
    return [e for e in events if "hex" in e]


def test_tracer_logs_direction_meter_id_security_and_hex() -> None:
    tracer = FrameTracer([".2.7.1"], meter_of={".2.7.1": "SIM-1"}.get)
    apdu = secured_request()
    (line,) = traced(tracer, ("tx", ".2.7.1", apdu), ("tx", ".2.7.2", apdu))
    assert (line["direction"], line["meter"], line["ap_title"], line["peer"]) == (
        "tx", "SIM-1", ".2.7.1", "tcp:127.0.0.1:40000",
    )  # fmt: skip
    assert (line["invocation_id"], line["security_mode"], line["key_id"]) == (7, "ciphertext", 1)
    assert (
        line["hex"] == apdu.hex() and not line["truncated"] and line["log_level"] is LogLevel.info
    )
    assert line["responding_to"] is None and tracer.traced == 1


def test_tracer_truncates_long_apdus_and_names_undecodable_ones() -> None:
    tracer = FrameTracer(["*"], limit=8)
    (long, bad) = traced(tracer, ("rx", ".2.7.3", secured_request()), ("rx", None, b"\x60\x01\x00"))
    assert long["truncated"] and long["hex"].startswith(secured_request()[:8].hex() + "...")
    assert bad["meter"] == "?" and bad["error"] and bad["security_mode"].startswith("undecodable")


def test_tracer_switches_at_runtime() -> None:
    tracer = FrameTracer(meter_of={".2.7.1": "SIM-1"}.get)
    frame = ("rx", ".2.7.1", secured_request())
    assert traced(tracer, frame) == []
    assert tracer.trace("SIM-1") == {"SIM-1"}
    assert len(traced(tracer, frame)) == 1
    tracer.set_targets(["2.16.124.113620.1.22.0.2.7.1"])  # absolute: not the relative title
    assert traced(tracer, frame) == []
    tracer.set_targets([" .2.7.01 "])  # normalised like the links' titles
    assert tracer.targets == {".2.7.1"} and len(traced(tracer, frame)) == 1
    assert tracer.untrace(".2.7.1") == frozenset() and traced(tracer, frame) == []
    assert traced(FrameTracer(["*"]), ("closed", None, b"")) == []  # closings are not traced


def test_trace_targets_are_checked() -> None:
    assert normalise_target("*") == "*" and normalise_target("12345678") == "12345678"
    with pytest.raises(ValueError, match="not an AP title"):
        normalise_target(".2.x")
    with pytest.raises(LookupError):
        set_trace_meters(type("Gw", (), {"stores": {}})(), ["*"])
    gateway = type("Gw", (), {"stores": {"tracer": FrameTracer()}})()
    assert set_trace_meters(gateway, ["SIM-1", ".2.7.1"]) == {"SIM-1", ".2.7.1"}


def test_config_trace_meters_take_meter_ids_and_star() -> None:
    config = parse_config({"logging": {"trace_meters": ["*", "SIM-1", "12345", ".2.07.1"]}})
    assert config.logging.trace_meters == ("*", "SIM-1", "12345", ".2.7.1")
    settings = C1222Settings.from_config(config)
    assert settings.trace_frames and ".2.7.1" in settings.trace_titles
    with pytest.raises(ConfigError, match=r"logging.trace_meters\[0\]"):
        parse_config({"logging": {"trace_meters": [".2.x"]}})


def test_gateway_service_tree_is_unchanged_without_attach(tmp_path: Path) -> None:
    gateway = make_gateway(tmp_path)
    assert "capture" not in gateway.stores
    assert isinstance(gateway.links, MultiService)
