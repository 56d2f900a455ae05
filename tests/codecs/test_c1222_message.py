"""The high-level message view: decode_message, build_message, reply_to, security options."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.codecs.c1222 import (
    AeQualifier,
    ApTitle,
    KeyStore,
    ResponseControl,
    SecurityMode,
    UserInformation,
    build_message,
    canonical_cleartext,
    decode_apdu,
    decode_message,
    encode_apdu,
    iv_from_time,
    protect,
    reply_to,
)
from amidcc.codecs.c1222.eax import MAC_SIZE, eax_key, mode1_mac
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.errors import LocalProtocolError, RemoteProtocolError, SecurityError

from .test_c1222_acse import ICSNPP_IDENT
from .test_c1222_vectors import (
    KEY,
    KEY_ID,
    KEYS,
    SYNTH_MODE1,
    SYNTH_MODE2_ED,
)

CALLED = ApTitle.parse(".123.8437")
CALLING = ApTitle.parse(".123.4")


def _request(mode: SecurityMode, **extra: object) -> bytes:
    apdu = build_message(
        called=CALLED,
        calling=CALLING,
        invocation_id=42,
        services=[b"\x30\x00\x01", b"\x20"],
        security_mode=mode,
        key_id=KEY_ID,
        key=KEY,
        iv=iv_from_time(1_700_000_000),
        **extra,  # type: ignore[arg-type]
    )
    return encode_apdu(apdu)


@pytest.mark.parametrize("mode", list(SecurityMode))
def test_build_then_decode(mode: SecurityMode) -> None:
    message = decode_message(_request(mode, ed_class=b"EE  "), KEYS)
    assert message.security_mode is mode
    assert message.authenticated is (mode is not SecurityMode.CLEARTEXT)
    assert message.epsem is not None
    assert message.epsem.services == (b"\x30\x00\x01", b"\x20")
    assert message.epsem.ed_class == b"EE  "
    assert message.apdu.calling_ap_invocation_id == 42


def test_without_keys() -> None:
    mode1 = decode_message(SYNTH_MODE1)
    assert not mode1.authenticated and mode1.epsem is not None  # parsed, but not verified
    mode2 = decode_message(SYNTH_MODE2_ED)
    assert mode2.encrypted and mode2.epsem is None and mode2.key_id == KEY_ID
    clear = decode_message(ICSNPP_IDENT)
    assert clear.security_mode is SecurityMode.CLEARTEXT and clear.key_id is None
    assert clear.epsem is not None and clear.epsem.services == (b"\x20",)


def test_require_security() -> None:
    with pytest.raises(SecurityError, match="cleartext"):
        decode_message(ICSNPP_IDENT, KEYS, require_security=True)
    with pytest.raises(LocalProtocolError):
        decode_message(ICSNPP_IDENT, require_security=True)
    assert decode_message(SYNTH_MODE1, KEYS, require_security=True).authenticated


def test_secured_without_ac_is_a_security_error() -> None:
    apdu = decode_apdu(SYNTH_MODE1)
    stripped = encode_apdu(replace(apdu, calling_authentication=None, wire_elements=()))
    with pytest.raises(SecurityError, match="key id"):
        decode_message(stripped, KEYS)


def test_secured_without_calling_title_is_a_security_error() -> None:
    apdu = decode_apdu(SYNTH_MODE1)
    stripped = encode_apdu(replace(apdu, calling_ap_title=None, wire_elements=()))
    with pytest.raises(SecurityError, match="A6"):
        decode_message(stripped, KEYS)


def test_build_requires_key_material() -> None:
    with pytest.raises(LocalProtocolError):
        build_message(
            called=CALLED,
            calling=CALLING,
            invocation_id=1,
            services=[b"\x20"],
            security_mode=SecurityMode.CIPHERTEXT,
        )
    plain = build_message(called=CALLED, calling=CALLING, invocation_id=1, services=[b"\x20"])
    with pytest.raises(LocalProtocolError):
        protect(plain, KEY_ID, KEY, b"abcd", SecurityMode.CLEARTEXT)
    with pytest.raises(LocalProtocolError, match="IV"):
        protect(plain, KEY_ID, KEY, b"abc", SecurityMode.AUTHENTICATED)
    with pytest.raises(LocalProtocolError, match="16 bytes"):
        protect(plain, KEY_ID, KEY[:15], b"abcd", SecurityMode.AUTHENTICATED)
    # A bytearray key works like bytes (the per-key cache needs a hashable copy).
    assert eax_key(bytearray(KEY)) is eax_key(KEY)


def test_build_options() -> None:
    apdu = build_message(
        called=CALLED,
        calling=CALLING,
        invocation_id=5,
        services=[b"\x20"],
        response_control=ResponseControl.ON_EXCEPTION,
        ae_qualifier=AeQualifier.TEST | AeQualifier.URGENT,
        aso_context=(2, 16, 124, 113620, 1, 22),
    )
    wire = encode_apdu(apdu)
    # 3.2: the default context A1 09 06 07 60 7C 86 F7 54 01 16, and A7 = 02 01 <bits>.
    assert wire[2:13] == bytes.fromhex("a1090607607c86f7540116")
    assert bytes.fromhex("a703020103") in wire
    message = decode_message(wire)
    assert message.epsem is not None
    assert message.epsem.response_control is ResponseControl.ON_EXCEPTION


def test_reply_to_swaps_titles_and_echoes() -> None:
    request = decode_apdu(_request(SecurityMode.CLEARTEXT, ae_qualifier=AeQualifier.TEST))
    reply = reply_to(request, [b"\x00"], invocation_id=77)
    assert reply.called_ap_title == CALLING and reply.calling_ap_title == CALLED
    assert reply.called_ap_invocation_id == 42 and reply.calling_ap_invocation_id == 77
    assert reply.calling_ae_qualifier == AeQualifier.TEST


def test_reply_to_without_calling_title() -> None:
    request = decode_apdu(_request(SecurityMode.CLEARTEXT))
    with pytest.raises(RemoteProtocolError) as info:
        reply_to(replace(request, calling_ap_title=None), [b"\x00"])
    assert info.value.response_code is ResponseCode.UAT


def test_mechanism_name_in_cleartext_is_configurable() -> None:
    request = decode_apdu(_request(SecurityMode.CLEARTEXT))
    with_8b = replace(request, mechanism_name=bytes.fromhex("607c86f754011602"), wire_elements=())
    wire = encode_apdu(protect(with_8b, KEY_ID, KEY, b"\x01\x02\x03\x04", SecurityMode.CIPHERTEXT))
    assert decode_message(wire, KEYS).authenticated  # default: Wireshark's canonicaliser
    with pytest.raises(SecurityError):
        decode_message(wire, KEYS, include_mechanism_name=False)  # MeteringSDK's
    wire2 = encode_apdu(
        protect(
            with_8b,
            KEY_ID,
            KEY,
            b"\x01\x02\x03\x04",
            SecurityMode.AUTHENTICATED,
            include_mechanism_name=False,
        )
    )
    assert decode_message(wire2, KEYS, include_mechanism_name=False).authenticated


def test_mac_uses_elements_as_received() -> None:
    """A non-minimal A8 (02 02 00 05) is authenticated as sent, not as we would re-encode it."""
    minimal = SYNTH_MODE1
    wire = bytearray(minimal.replace(bytes.fromhex("a803020105"), bytes.fromhex("a80402020005")))
    wire[1] += 1
    unsigned = decode_apdu(bytes(wire))
    body = unsigned.user_information.epsem[1:-MAC_SIZE]
    mac = mode1_mac(KEY, canonical_cleartext(unsigned), body)
    signed = bytes(wire[:-MAC_SIZE]) + mac
    message = decode_message(signed, KEYS)
    assert message.authenticated and message.apdu.calling_ap_invocation_id == 5
    assert encode_apdu(message.apdu) != signed  # our own encoding is minimal


def test_keystore() -> None:
    store = KeyStore()
    store.add(7, KEY)
    assert 7 in store and store[7] == KEY and len(store) == 1
    assert KEY.hex() not in repr(store) and "7" in repr(store)
    store.remove(7)
    assert 7 not in store
    with pytest.raises(LocalProtocolError):
        store.add(1, b"short")
    with pytest.raises(LocalProtocolError):
        store.add(256, KEY)


def test_iv_from_time() -> None:
    # Fact sheet 3.5: sample IV 48F3D061 is a 2008 timestamp.
    assert iv_from_time(0x48F3D061 + 0.9) == bytes.fromhex("48f3d061")


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([SecurityMode.AUTHENTICATED, SecurityMode.CIPHERTEXT]),
    st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=3),
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=4, max_size=4),
    st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
)
def test_protect_round_trip(
    mode: SecurityMode, services: list[bytes], key: bytes, iv: bytes, ed_class: bytes | None
) -> None:
    apdu = build_message(
        called=ApTitle.parse("1.3.6.1.4.1.33507.1919.12345678.0"),
        calling=CALLING,
        invocation_id=1,
        services=services,
        security_mode=mode,
        key_id=9,
        key=key,
        iv=iv,
        ed_class=ed_class,
    )
    message = decode_message(encode_apdu(apdu), KeyStore({9: key}))
    assert message.authenticated and message.epsem is not None
    assert message.epsem.services == tuple(services) and message.epsem.ed_class == ed_class


def test_empty_epsem_is_malformed() -> None:
    apdu = decode_apdu(ICSNPP_IDENT)
    wire = encode_apdu(replace(apdu, user_information=UserInformation(epsem=b""), wire_elements=()))
    for keys in (None, KEYS):
        with pytest.raises(RemoteProtocolError):
            decode_message(wire, keys)
