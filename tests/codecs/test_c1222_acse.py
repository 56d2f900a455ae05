"""ACSE APDU encode/decode (protocol-facts.md 3.2-3.3): vectors, round trips, decode policy, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amidcc.codecs.c1222 import (
    AeQualifier,
    Apdu,
    ApTitle,
    CallingAuthentication,
    Element,
    UserInformation,
    decode_apdu,
    decode_message,
    encode_apdu,
)
from amidcc.codecs.c1222._tlv import tlv
from amidcc.codecs.errors import LocalProtocolError, RemoteProtocolError

from .test_c1222_vectors import EX8_REQUEST, EX8_RESPONSE, KEYS, SECURED_VECTORS

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ICSNPP c1222_ident_service_tcp.pcap request (S8 testing/traces), absolute titles.
ICSNPP_IDENT = bytes.fromhex(
    "6030a211060f2b060104018285638e7f85f1c24e00a60a06082b06010401828563"
    "a806020413e81421be0728058103800120"
)


def test_example8_request_fields() -> None:
    apdu = decode_apdu(EX8_REQUEST)
    assert apdu.called_ap_title == ApTitle(arcs=(123, 8437), relative=True)
    assert str(apdu.called_ap_title) == ".123.8437"
    assert apdu.calling_ap_title == ApTitle(arcs=(123, 4), relative=True)
    assert apdu.calling_ap_invocation_id == 3 and apdu.called_ap_invocation_id is None
    assert apdu.calling_authentication == CallingAuthentication(
        key_id=2, iv=bytes.fromhex("48f3d061")
    )
    assert [tag for tag, _ in apdu.wire_elements] == [0xA2, 0xA6, 0xA8, 0xAC, 0xBE]
    assert apdu.user_information.epsem[0] == 0x88 and len(apdu.user_information.epsem) == 38


def test_example8_response_has_a4() -> None:
    apdu = decode_apdu(EX8_RESPONSE)
    assert apdu.called_ap_invocation_id == 3
    assert [tag for tag, _ in apdu.wire_elements] == [0xA2, 0xA4, 0xA6, 0xA8, 0xAC, 0xBE]


def test_absolute_titles() -> None:
    apdu = decode_apdu(ICSNPP_IDENT)
    assert str(apdu.called_ap_title) == "1.3.6.1.4.1.33507.1919.12345678.0"
    assert apdu.calling_ap_title == ApTitle.parse("1.3.6.1.4.1.33507")
    assert apdu.calling_ap_invocation_id == 0x13E81421
    assert apdu.user_information == UserInformation(epsem=bytes.fromhex("800120"))
    assert encode_apdu(apdu) == ICSNPP_IDENT


def test_fact_sheet_title_examples() -> None:
    # 3.3: A2 05 80 03 7B C1 75 = .123.8437; the Elster absolute example.
    rel = Apdu(
        called_ap_title=ApTitle.parse(".123.8437"),
        calling_ap_invocation_id=3,
        user_information=UserInformation(epsem=b"\x80\x01\x20"),
    )
    assert encode_apdu(rel)[2:9] == bytes.fromhex("a20580037bc175")
    absolute = Apdu(
        called_ap_title=ApTitle.parse("1.3.6.1.4.1.33507.1919.22906.0"),
        calling_ap_invocation_id=3,
        user_information=UserInformation(epsem=b"\x80\x01\x20"),
    )
    assert encode_apdu(absolute)[2:20] == bytes.fromhex("a210060e2b060104018285638e7f81b27a00")


@pytest.mark.parametrize("wire", [*SECURED_VECTORS, ICSNPP_IDENT])
def test_vectors_reencode_identically(wire: bytes) -> None:
    assert encode_apdu(decode_apdu(wire)) == wire


# --- Hypothesis round trip ------------------------------------------------------------------------

arcs = st.integers(min_value=0, max_value=2**40)
relative_titles = st.lists(arcs, min_size=1, max_size=6).map(
    lambda a: ApTitle(arcs=tuple(a), relative=True)
)
absolute_titles = st.one_of(
    st.tuples(st.integers(0, 1), st.integers(0, 39), st.lists(arcs, max_size=5)),
    st.tuples(st.just(2), arcs, st.lists(arcs, max_size=5)),
).map(lambda t: ApTitle(arcs=(t[0], t[1], *t[2]), relative=False))
titles = st.one_of(relative_titles, absolute_titles)
integers = st.integers(min_value=-(2**31), max_value=2**32)
c1222_auth = st.builds(
    CallingAuthentication,
    key_id=st.integers(0, 255),
    iv=st.binary(min_size=1, max_size=16),
    indirect_reference=st.one_of(st.none(), st.integers(0, 1000)),
)
# The C12.21 form: AC { A2 { A0 { A0 { 80 ident } } } }, kept raw.
c1221_auth = st.binary(max_size=20).map(
    lambda ident: CallingAuthentication(raw=tlv(0xA2, tlv(0xA0, tlv(0xA0, tlv(0x80, ident)))))
)
extra_tags = st.sampled_from([0x80, 0x8A, 0xA5, 0xA9, 0xBD])


@st.composite
def apdus(draw: st.DrawFn) -> Apdu:
    extras = draw(st.lists(extra_tags, unique=True, max_size=2))
    return Apdu(
        aso_context=draw(st.one_of(st.none(), absolute_titles.map(lambda t: t.arcs))),
        called_ap_title=draw(titles),
        called_ae_qualifier=draw(st.one_of(st.none(), integers)),
        called_ap_invocation_id=draw(st.one_of(st.none(), integers)),
        calling_ap_title=draw(st.one_of(st.none(), titles)),
        calling_ae_qualifier=draw(st.one_of(st.none(), st.integers(0, 255).map(AeQualifier))),
        calling_ap_invocation_id=draw(integers),
        mechanism_name=draw(st.one_of(st.none(), st.binary(max_size=12))),
        calling_authentication=draw(st.one_of(st.none(), c1222_auth, c1221_auth)),
        extra_elements=tuple(tlv(tag, draw(st.binary(max_size=4))) for tag in extras),
        user_information=UserInformation(
            epsem=draw(st.binary(min_size=1, max_size=400)),
            indirect_reference=draw(st.one_of(st.none(), st.integers(0, 2**24))),
        ),
    )


@SETTINGS
@given(apdus())
def test_apdu_round_trip(apdu: Apdu) -> None:
    wire = encode_apdu(apdu)
    decoded = decode_apdu(wire)
    assert decoded == apdu
    assert encode_apdu(decoded) == wire
    assert b"".join(raw for _, raw in decoded.wire_elements) == wire[len(wire) - _content(wire) :]


def _content(wire: bytes) -> int:
    first = wire[1]
    return first if first < 0x80 else int.from_bytes(wire[2 : 2 + (first & 0x7F)], "big")


# --- decode policy --------------------------------------------------------------------------------

A2 = bytes.fromhex("a20580037bc175")
A8 = bytes.fromhex("a803020103")
BE = bytes.fromhex("be0728058103800120")


def _apdu(*elements: bytes) -> bytes:
    return tlv(0x60, b"".join(elements))


def test_elements_in_any_order() -> None:
    apdu = decode_apdu(_apdu(BE, A8, A2))
    assert apdu.calling_ap_invocation_id == 3
    assert encode_apdu(apdu) == _apdu(A2, A8, BE)  # encode always writes the canonical order


def test_unknown_context_element_is_kept() -> None:
    extra = bytes.fromhex("a503020107")
    apdu = decode_apdu(_apdu(A2, A8, extra, BE))
    assert apdu.extra_elements == (extra,)
    assert encode_apdu(apdu) == _apdu(A2, A8, extra, BE)


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        bytes.fromhex("61 00"),  # not an ACSE APDU
        _apdu(A2, A8, BE) + b"\x00",  # trailing byte
        _apdu(A2, A8, BE)[:-1],  # truncated
        _apdu(A8, BE),  # no A2
        _apdu(A2, BE),  # no A8
        _apdu(A2, A8),  # no BE
        _apdu(A2, A2, A8, BE),  # duplicate
        _apdu(A2, A8, bytes.fromhex("0201 00"), BE),  # universal tag
        _apdu(A2, A8, bytes.fromhex("bf1f 00"), BE),  # multi-octet tag
        _apdu(bytes.fromhex("a2 00"), A8, BE),  # empty title
        _apdu(bytes.fromhex("a2 03 0d 01 05"), A8, BE),  # title with the universal RELATIVE-OID tag
        _apdu(A2, A8, bytes.fromhex("be 05 28 03 82 01 80")),  # not octet-aligned
        _apdu(A2, A8, bytes.fromhex("be 05 30 03 81 01 80")),  # not EXTERNAL
        _apdu(A2, A8, bytes.fromhex("a7 04 02 02 01 00"), BE),  # AE qualifier > one byte
        _apdu(A2, A8, bytes.fromhex("ac 0a a2 08 a0 06 a1 04 80 02 00 02"), BE),  # 2-byte key id
        _apdu(A2, bytes.fromhex("a8 02 02 00"), BE),  # empty INTEGER
        _apdu(A2, bytes.fromhex("a8 80"), BE),  # indefinite length
    ],
)
def test_malformed_apdus_raise_remote_errors(wire: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_apdu(wire)


def test_c1221_authentication_is_kept_raw() -> None:
    raw = bytes.fromhex("a2 07 a0 05 a0 03 80 01 07")
    apdu = decode_apdu(_apdu(A2, A8, tlv(0xAC, raw), BE))
    assert apdu.calling_authentication == CallingAuthentication(raw=raw)
    assert encode_apdu(apdu) == _apdu(A2, A8, tlv(0xAC, raw), BE)


def test_authentication_indirect_reference() -> None:
    ac = bytes.fromhex("ac 12 a2 10 02 01 00 a0 0b a1 09 80 01 02 81 04 48 f3 d0 61")
    apdu = decode_apdu(_apdu(A2, A8, ac, BE))
    auth = apdu.calling_authentication
    assert auth is not None and auth.key_id == 2 and auth.indirect_reference == 0
    assert encode_apdu(apdu) == _apdu(A2, A8, ac, BE)


def test_invalid_local_values_are_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        ApTitle(arcs=(3, 1), relative=False)
    with pytest.raises(LocalProtocolError):
        ApTitle(arcs=())
    with pytest.raises(LocalProtocolError):
        CallingAuthentication(key_id=2)
    with pytest.raises(LocalProtocolError):
        CallingAuthentication(key_id=256, iv=b"1234")


def test_element_names_cover_the_wire_tags() -> None:
    assert {e.value for e in Element} == {
        0xA1,
        0xA2,
        0xA3,
        0xA4,
        0xA6,
        0xA7,
        0xA8,
        0x8B,
        0xAC,
        0xBE,
    }


# --- fuzz -----------------------------------------------------------------------------------------


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_remote_errors(data: bytes) -> None:
    try:
        decode_message(data, KEYS)
    except RemoteProtocolError:
        pass


@SETTINGS
@given(
    st.sampled_from([*SECURED_VECTORS, ICSNPP_IDENT]),
    st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 2)), max_size=4),
)
def test_mutated_apdus_raise_only_remote_errors(
    wire: bytes, edits: list[tuple[int, int, int]]
) -> None:
    data = bytearray(wire)
    for position, value, kind in edits:
        at = position % (len(data) + 1)
        if kind == 0 and at < len(data):
            data[at] = value
        elif kind == 1:
            data.insert(at, value)
        elif data:
            del data[at % len(data)]
    for keys in (None, KEYS):
        try:
            decode_message(bytes(data), keys)
        except RemoteProtocolError:
            pass
