"""The scapy layers: build from fields, dissect, round trip, decryption with user keys.

Vectors: protocol-facts.md 3.5 (the C12.22 standard's example 8 from Wireshark's test suite, S3,
and the synthetic mode-1 / mode-2 messages confirmed by tshark) and the ICSNPP captures (S8).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("scapy")

from scapy.layers.inet import IP, TCP, UDP  # noqa: E402
from scapy.packet import Raw  # noqa: E402
from scapy.utils import rdpcap  # noqa: E402

from amidcc.codecs import psem  # noqa: E402
from amidcc.codecs.c1218 import Frame, encode_frame  # noqa: E402
from amidcc.codecs.c1222 import ApTitle, build_message, encode_apdu  # noqa: E402
from amidcc.codecs.errors import SecurityError  # noqa: E402
from amidcc.pcap.layers import (  # noqa: E402
    C1218,
    C1222,
    EPSEM,
    EPSEMPlaintext,
    EPSEMService,
    PSEMLogon,
    PSEMNegotiate,
    PSEMReadFull,
    PSEMReadIndex,
    PSEMReadOffset,
    PSEMRegister,
    PSEMResponse,
    PSEMSecurity,
    PSEMWriteFull,
    PSEMWriteIndex,
    PSEMWriteOffset,
    set_keys,
)

KEY = bytes.fromhex("01020304050607080102030405060708")  # example 8, key id 2
EXAMPLE8_REQUEST = bytes.fromhex(
    "604fa20580037bc175a60480027b04a803020103ac0fa20da00ba109800102810448f3d061be2a2828812688"
    "41d10cda76206811b36f781489a11997773e117cb07aa3aa40374a7107c50da7f799c5d4e8"
)
EXAMPLE8_RESPONSE = bytes.fromhex(
    "6048a20480027b04a403020103a60580037bc175a803020103ac0fa20da00ba109800102810448f3d060be1e"
    "281c811a884baee4349631ab5e56a0e6e0e90dfad558591ee4ea334cb268"
)
SYNTHETIC_MODE1 = bytes.fromhex(
    "6032a20580037bc175a60480027b04a803020105ac0fa20da00ba109800102810448f3d0aabe0d280b810984"
    "033000014ebe7c42"
)
SYNTHETIC_MODE2_ED = bytes.fromhex(
    "6036a20580037bc175a60480027b04a803020105ac0fa20da00ba109800102810448f3d0aabe11280f810d98"
    "8094786a33b779eae3eceaab"
)


@pytest.fixture(autouse=True)
def _no_global_keys():
    set_keys({})
    yield
    set_keys({})


def test_build_from_fields_equals_the_codec() -> None:
    pkt = C1222(
        called_ap_title=".123.8437", calling_ap_title=".123.4", calling_ap_invocation_id=3
    ) / EPSEM(
        services=[
            EPSEMService() / PSEMReadFull(table_id=1),
            EPSEMService() / PSEMReadOffset(table_id=23, offset=16, octet_count=5),
        ]
    )
    expected = encode_apdu(
        build_message(
            called=ApTitle.parse(".123.8437"),
            calling=ApTitle.parse(".123.4"),
            invocation_id=3,
            services=[
                psem.encode_request(psem.FullRead(table_id=1)),
                psem.encode_request(psem.PartialReadOffset(table_id=23, offset=16, octet_count=5)),
            ],
        )
    )
    assert bytes(pkt) == expected
    again = C1222(bytes(pkt))
    assert again.calling_ap_invocation_id == 3 and again.called_ap_title == ".123.8437"
    services = again[EPSEM].services
    assert [s.payload.__class__ for s in services] == [PSEMReadFull, PSEMReadOffset]
    assert services[1].payload.offset == 16 and services[1].payload.octet_count == 5


@pytest.mark.parametrize(
    "service",
    [
        PSEMLogon(user_id=2, user=b"AMIDCC    ", session_idle_timeout=60),
        PSEMLogon(user_id=2, user=b"AMIDCC    "),
        PSEMSecurity(password=b"PASSWORD" + b" " * 12, user_id=2),
        PSEMReadIndex(table_id=64, indices=[1, 2], element_count=3),
        PSEMWriteOffset(table_id=7, offset=0, data=b"\x01\x02\x03"),
        PSEMWriteIndex(table_id=7, indices=[1, 2, 3], data=b"\xff"),
        PSEMWriteFull(table_id=7, data=bytes(range(20))),
        PSEMNegotiate(packet_size=256, nbr_packets=4, baud_rates=[6, 8]),
        PSEMRegister(
            node_type=0x20,
            ap_title=".1.2",
            electronic_serial_number="1.3.6.1.4.1.33507",
            native_address=b"\x0a\x00\x00\x01",
            registration_period=3600,
        ),
    ],
)
def test_psem_layers_agree_with_the_request_codec(service) -> None:
    wire = bytes(service)
    decoded = psem.decode_request(wire)  # amidcc's codec accepts what the layer builds
    assert psem.encode_request(decoded) == wire
    again = type(service)(wire)
    assert bytes(again) == wire
    for name in service.fields:
        assert again.getfieldval(name) == service.getfieldval(name), name


def test_c1218_packet_round_trip_with_crc() -> None:
    read = psem.encode_request(psem.FullRead(table_id=1))
    wire = encode_frame(Frame(data=read))  # amidcc's framer computes the CRC
    assert bytes(C1218(service=PSEMReadFull(table_id=1))) == wire
    pkt = C1218(wire)
    assert isinstance(pkt.service, PSEMReadFull) and pkt.service.table_id == 1
    assert pkt.crc == int.from_bytes(wire[-2:], "little") and bytes(pkt) == wire


@pytest.mark.parametrize("capture", ["ident", "logon", "reg", "rw", "security", "trace", "wait"])
def test_icsnpp_captures_dissect_and_rebuild(shared_vectors: Path, capture: str) -> None:
    pkts = rdpcap(str(shared_vectors / "icsnpp-c1222" / f"c1222_{capture}_service_tcp.pcap"))
    apdus = [p for p in pkts if C1222 in p]
    assert len(apdus) == 2
    for pkt in apdus:
        assert bytes(pkt[C1222]) == bytes(pkt[TCP].payload)
        assert not pkt.haslayer(Raw)  # every byte dissected
        services = pkt[EPSEM].services
        assert len(services) == 1 and services[0].length == len(bytes(services[0].payload))
    assert isinstance(apdus[1][EPSEM].services[0].payload, PSEMResponse)


def test_changing_a_field_rebuilds_the_lengths() -> None:
    pkt = C1222(EXAMPLE8_RESPONSE)
    pkt.calling_ap_title = "1.3.6.1.4.1.33507.1919.88.1"
    rebuilt = C1222(bytes(pkt))
    assert rebuilt.calling_ap_title == "1.3.6.1.4.1.33507.1919.88.1"
    assert rebuilt[EPSEM].ciphertext == C1222(EXAMPLE8_RESPONSE)[EPSEM].ciphertext


def test_example8_decrypts_with_the_users_key() -> None:
    request = C1222(EXAMPLE8_REQUEST)
    assert bytes(request) == EXAMPLE8_REQUEST
    assert request.key_id == 2 and request.iv == bytes.fromhex("48f3d061")
    assert request[EPSEM].security_mode == 2 and request[EPSEM].mac == bytes.fromhex("99c5d4e8")
    assert (
        request.verify({2: KEY}) and not request.verify({2: bytes(16)}) and not request.verify({})
    )
    plain = request.decrypt({2: KEY})
    services = plain[EPSEMPlaintext].services
    security, read = services[0].payload, services[1].payload
    assert isinstance(security, PSEMSecurity) and security.password == b"PASSWORD" + b" " * 12
    assert security.user_id == 2
    assert isinstance(read, PSEMReadOffset) and (read.table_id, read.offset, read.octet_count) == (
        1,
        16,
        16,
    )
    with pytest.raises(SecurityError):
        request.decrypt({2: bytes(16)})


def test_set_keys_decrypts_while_dissecting() -> None:
    set_keys({2: KEY}, base_oid="2.16.124.113620.1.22.0")
    response = C1222(EXAMPLE8_RESPONSE)
    assert response.crypto == "good"
    body = response[EPSEMPlaintext].services[0].payload
    assert isinstance(body, PSEMResponse) and body.body == b"\x00\x10MANUFACTURER SN \x92"
    read = body.decode(psem.PartialReadOffset(table_id=1, offset=16, octet_count=16))
    assert read == psem.ReadResponse(data=b"MANUFACTURER SN ")
    set_keys({2: bytes(16)})
    assert C1222(EXAMPLE8_RESPONSE).crypto == "bad"


def test_mode1_and_ed_class_vectors() -> None:
    mode1 = C1222(SYNTHETIC_MODE1)
    assert mode1[EPSEM].security_mode == 1 and mode1.verify({2: KEY})
    assert bytes(mode1[EPSEM].services[0].payload) == bytes.fromhex("300001")
    mode2 = C1222(SYNTHETIC_MODE2_ED)
    assert mode2[EPSEM].ed_class_included == 1 and mode2.verify({2: KEY})
    plain = mode2.decrypt({2: KEY})[EPSEMPlaintext]
    assert plain.ed_class == b"EE  "
    assert bytes(plain.services[0].payload) == bytes.fromhex("300001")


def test_bound_to_port_1153_and_two_apdus_in_one_segment() -> None:
    two = SYNTHETIC_MODE1 + EXAMPLE8_REQUEST
    pkt = IP(bytes(IP(dst="10.0.0.1") / TCP(sport=40000, dport=1153) / Raw(two)))
    first = pkt[C1222]
    second = first[EPSEM].payload
    assert isinstance(second, C1222) and second.calling_ap_invocation_id == 3
    assert bytes(first) == two
    udp = IP(bytes(IP(dst="10.0.0.1") / UDP(sport=1153, dport=1153) / Raw(EXAMPLE8_RESPONSE)))
    assert udp[C1222].called_ap_invocation_id == 3


def test_a_partial_apdu_stays_raw() -> None:
    pkt = IP(bytes(IP(dst="10.0.0.1") / TCP(sport=40000, dport=1153) / Raw(EXAMPLE8_REQUEST[:20])))
    assert C1222 not in pkt and pkt[Raw].load == EXAMPLE8_REQUEST[:20]
