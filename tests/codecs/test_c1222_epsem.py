"""EPSEM envelope (protocol-facts.md 3.4): control byte, ED class, services, MAC."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.codecs.c1222 import Epsem, ResponseControl, SecurityMode, decode_epsem, encode_epsem
from amidcc.codecs.c1222.epsem import control_byte
from amidcc.codecs.errors import LocalProtocolError, RemoteProtocolError

# (Epsem, bytes): the typical control bytes of 3.4 (80, 84, 88, 90, 98) and the ICSNPP ident request.
CASES = [
    (Epsem(services=(b"\x20",)), bytes.fromhex("800120")),
    (
        Epsem(services=(b"\x30\x00\x01",), security_mode=SecurityMode.AUTHENTICATED, mac=b"MAC!"),
        bytes.fromhex("8403300001") + b"MAC!",
    ),
    (
        Epsem(services=(b"\x20", b"\x21"), security_mode=SecurityMode.CIPHERTEXT, mac=b"abcd"),
        bytes.fromhex("8801200121") + b"abcd",
    ),
    (Epsem(services=(b"\x20",), ed_class=b"EE  "), b"\x90EE  \x01\x20"),
    (
        Epsem(
            services=(b"\x20",),
            ed_class=b"EE  ",
            security_mode=SecurityMode.CIPHERTEXT,
            mac=b"wxyz",
        ),
        b"\x98EE  \x01\x20wxyz",
    ),
    (
        Epsem(
            services=(b"\x20",),
            recovery=True,
            proxy=True,
            response_control=ResponseControl.NEVER,
        ),
        bytes.fromhex("e20120"),
    ),
]


@pytest.mark.parametrize(("epsem", "wire"), CASES)
def test_encode_decode_table(epsem: Epsem, wire: bytes) -> None:
    assert encode_epsem(epsem) == wire
    assert decode_epsem(wire) == epsem
    assert control_byte(epsem) == wire[0]


def test_long_service_uses_long_form_length() -> None:
    service = bytes(range(256)) * 2
    wire = encode_epsem(Epsem(services=(service,)))
    assert wire[:4] == bytes.fromhex("80820200")
    assert decode_epsem(wire).services == (service,)


def test_trailing_zero_length_is_tolerated_not_sent() -> None:
    assert decode_epsem(bytes.fromhex("80012000")).services == (b"\x20",)
    assert encode_epsem(Epsem(services=(b"\x20",))) == bytes.fromhex("800120")


def test_ed_class_included_follows_ed_class() -> None:
    assert Epsem(services=(b"\x20",), ed_class=b"EE  ").ed_class_included
    assert not Epsem(services=(b"\x20",)).ed_class_included


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        bytes.fromhex("000120"),  # bit 7 clear
        bytes.fromhex("8c0120"),  # security mode 3
        bytes.fromhex("830120"),  # response control 3
        bytes.fromhex("80"),  # no service
        bytes.fromhex("8000"),  # only the terminator
        bytes.fromhex("80000120"),  # empty service before the end
        bytes.fromhex("800220"),  # service overruns
        bytes.fromhex("8081"),  # length truncated
        bytes.fromhex("9045450120"),  # ED class announced, too short
        bytes.fromhex("84012001"),  # secured, no room for the MAC
    ],
)
def test_malformed_epsem(wire: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_epsem(wire)


@pytest.mark.parametrize(
    "epsem",
    [
        Epsem(services=()),
        Epsem(services=(b"",)),
        Epsem(services=(b"\x20",), ed_class=b"EE"),
        Epsem(services=(b"\x20",), mac=b"12345"),
    ],
)
def test_impossible_epsem_is_a_local_error(epsem: Epsem) -> None:
    with pytest.raises(LocalProtocolError):
        encode_epsem(epsem)


@st.composite
def epsems(draw: st.DrawFn) -> Epsem:
    mode = draw(st.sampled_from(SecurityMode))
    return Epsem(
        services=tuple(draw(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=4))),
        security_mode=mode,
        response_control=draw(st.sampled_from(ResponseControl)),
        recovery=draw(st.booleans()),
        proxy=draw(st.booleans()),
        ed_class=draw(st.one_of(st.none(), st.binary(min_size=4, max_size=4))),
        mac=None if mode is SecurityMode.CLEARTEXT else draw(st.binary(min_size=4, max_size=4)),
    )


@settings(max_examples=200, deadline=None)
@given(epsems())
def test_epsem_round_trip(epsem: Epsem) -> None:
    wire = encode_epsem(epsem)
    assert decode_epsem(wire) == epsem
    assert wire[0] & 0x80


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_random_epsem_raises_only_remote_errors(data: bytes) -> None:
    try:
        epsem = decode_epsem(data)
    except RemoteProtocolError:
        return
    assert data[0] & 0x80 and epsem.services
