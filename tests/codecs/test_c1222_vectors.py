"""Known-answer tests for C12.22 EAX' security (protocol-facts.md 3.5).

Sources: the C12.22 standard's example 8 as captured in Wireshark's test suite (S3:
``test/captures/c1222_std_example8.pcap``, key table ``test/config/c1222_decryption_table.tmpl``,
expected plaintext in ``test/suite_decryption.py``), and the fact sheet's synthetic mode-1 and
mode-2 + ED-class messages that tshark 4.0.17 reported as "Crypto good" (S4). The intermediates
(L, D, Q, N, N', C', first counter block) are the fact sheet's. Other c1222 test modules import the
constants below.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from amidcc.codecs.c1222 import (
    ApTitle,
    KeyStore,
    SecurityMode,
    build_message,
    canonical_cleartext,
    decode_apdu,
    decode_message,
    eax,
    encode_apdu,
    protect,
    reply_to,
    unprotect,
)
from amidcc.codecs.c1222.epsem import security_mode_of
from amidcc.codecs.errors import RemoteProtocolError, SecurityError

# S3 key table: key id 2.
KEY_ID = 2
KEY = bytes.fromhex("01020304050607080102030405060708")
KEYS = KeyStore({KEY_ID: KEY})

# S3 example 8 request (TCP payload), its plaintext services (S3 suite_decryption.py) and IV.
EX8_REQUEST = bytes.fromhex(
    "604fa20580037bc175a60480027b04a803020103ac0fa20da00ba109800102810448f3d061be2a2828812688"
    "41d10cda76206811b36f781489a11997773e117cb07aa3aa40374a7107c50da7f799c5d4e8"
)
EX8_REQUEST_SERVICES = (
    bytes.fromhex("51") + b"PASSWORD" + b" " * 12 + bytes.fromhex("0002"),  # Security, user 2
    bytes.fromhex("3f00010000100010"),  # partial read ST1, offset 16, count 16
)
EX8_REQUEST_IV = bytes.fromhex("48f3d061")
EX8_REQUEST_N = bytes.fromhex(
    "a20d060b607c86f7540116007bc175a803020103ac0fa20da00ba109800102810448f3d061"
    "be2a2828812688a60c060a607c86f7540116007b040248f3d061"
)
# S3 example 8 response.
EX8_RESPONSE = bytes.fromhex(
    "6048a20480027b04a403020103a60580037bc175a803020103ac0fa20da00ba109800102810448f3d060"
    "be1e281c811a884baee4349631ab5e56a0e6e0e90dfad558591ee4ea334cb268"
)
EX8_RESPONSE_SERVICES = (bytes.fromhex("00 0010") + b"MANUFACTURER SN " + bytes.fromhex("92"),)
EX8_RESPONSE_IV = bytes.fromhex("48f3d060")
EX8_RESPONSE_N = bytes.fromhex(
    "a20c060a607c86f7540116007b04a403020103a803020103ac0fa20da00ba109800102810448f3d060"
    "be1e281c811a88a60d060b607c86f7540116007bc1750248f3d060"
)
# Fact sheet 3.5 (c): synthetic, confirmed by tshark ("Crypto good").
SYNTH_MODE1 = bytes.fromhex(
    "6032a20580037bc175a60480027b04a803020105ac0fa20da00ba109800102810448f3d0aa"
    "be0d280b810984033000014ebe7c42"
)
SYNTH_MODE2_ED = bytes.fromhex(
    "6036a20580037bc175a60480027b04a803020105ac0fa20da00ba109800102810448f3d0aa"
    "be11280f810d988094786a33b779eae3eceaab"
)
SECURED_VECTORS = [EX8_REQUEST, EX8_RESPONSE, SYNTH_MODE1, SYNTH_MODE2_ED]
SECURED_IDS = ["ex8-request", "ex8-response", "synthetic-mode1", "synthetic-mode2-ed"]


def test_key_constants() -> None:
    ctx = eax.eax_key(KEY)
    assert ctx.l_block.hex() == "c39e93d8ce44bef6aadf2959fd066db8"
    assert ctx.d_block.hex() == "013d27b19d897ced55bf53b2fa0dda70"
    assert ctx.q_block.hex() == "027a4e623b13f9daab7ea764f51bb4e1"


def test_dbl_is_little_endian() -> None:
    # Byte 15 bit 7 carries out and folds 87 into byte 0; big-endian CMAC doubling would not.
    assert eax.dbl(bytes(15) + b"\x80") == b"\x87" + bytes(15)
    assert eax.dbl(b"\x80" + bytes(15)) == b"\x00\x01" + bytes(14)


@pytest.mark.parametrize(
    ("apdu", "expected"), [(EX8_REQUEST, EX8_REQUEST_N), (EX8_RESPONSE, EX8_RESPONSE_N)]
)
def test_canonical_cleartext(apdu: bytes, expected: bytes) -> None:
    assert canonical_cleartext(decode_apdu(apdu)) == expected


def test_example8_intermediates() -> None:
    ctx = eax.eax_key(KEY)
    n_prime = eax.omac(ctx, ctx.d_block, EX8_REQUEST_N)
    assert n_prime.hex() == "bb60dec9a147eda7fc7bd880ea59141c"
    assert eax.counter_block(n_prime).hex() == "bb60dec9a147eda7fc7bd8806a59141c"
    ciphertext = EX8_REQUEST[-37:-4]
    c_prime = eax.omac(ctx, ctx.q_block, ciphertext)
    assert c_prime.hex() == "f25219506a544e6321c42220739cc0f4"
    tag = bytes(a ^ b for a, b in zip(n_prime, c_prime, strict=True))
    assert tag.hex() == "4932c799cb13a3c4ddbffaa099c5d4e8"
    assert EX8_REQUEST[-4:] == tag[12:]


@pytest.mark.parametrize(
    ("apdu", "services"),
    [(EX8_REQUEST, EX8_REQUEST_SERVICES), (EX8_RESPONSE, EX8_RESPONSE_SERVICES)],
)
def test_example8_decrypts(apdu: bytes, services: tuple[bytes, ...]) -> None:
    message = decode_message(apdu, KEYS)
    assert message.authenticated and message.encrypted
    assert message.key_id == KEY_ID
    assert message.epsem is not None and message.epsem.services == services


def test_synthetic_vectors_verify() -> None:
    mode1 = decode_message(SYNTH_MODE1, KEYS)
    assert mode1.security_mode is SecurityMode.AUTHENTICATED and mode1.authenticated
    assert mode1.epsem is not None and mode1.epsem.services == (bytes.fromhex("300001"),)
    mode2 = decode_message(SYNTH_MODE2_ED, KEYS)
    assert mode2.epsem is not None
    assert mode2.epsem.ed_class == b"EE  " and mode2.epsem.services == (bytes.fromhex("300001"),)


@pytest.mark.parametrize("wire", SECURED_VECTORS, ids=SECURED_IDS)
def test_reprotect_gives_identical_bytes(wire: bytes) -> None:
    received = decode_apdu(wire)
    plain_apdu, epsem = unprotect(received, KEYS)
    plain = replace(
        plain_apdu,
        user_information=replace(
            plain_apdu.user_information, epsem=plain_apdu.user_information.epsem[:-4]
        ),
    )
    auth = received.calling_authentication
    assert auth is not None and auth.key_id is not None and auth.iv is not None
    again = protect(plain, auth.key_id, KEY, auth.iv, epsem.security_mode)
    assert encode_apdu(again) == wire


def test_build_message_reproduces_example8_request() -> None:
    apdu = build_message(
        called=ApTitle.parse(".123.8437"),
        calling=ApTitle.parse(".123.4"),
        invocation_id=3,
        services=EX8_REQUEST_SERVICES,
        security_mode=SecurityMode.CIPHERTEXT,
        key_id=KEY_ID,
        key=KEY,
        iv=EX8_REQUEST_IV,
    )
    assert encode_apdu(apdu) == EX8_REQUEST


def test_reply_to_reproduces_example8_response() -> None:
    reply = reply_to(
        decode_apdu(EX8_REQUEST),
        EX8_RESPONSE_SERVICES,
        security_mode=SecurityMode.CIPHERTEXT,
        key_id=KEY_ID,
        key=KEY,
        iv=EX8_RESPONSE_IV,
    )
    assert encode_apdu(reply) == EX8_RESPONSE


def _flip(data: bytes, bit: int) -> bytes:
    mutated = bytearray(data)
    mutated[bit // 8] ^= 1 << (bit % 8)
    return bytes(mutated)


@pytest.mark.parametrize("wire", SECURED_VECTORS, ids=SECURED_IDS)
def test_every_single_bit_flip_is_rejected(wire: bytes) -> None:
    """Every flip is malformed or fails authentication; a flip that still decodes is SecurityError."""
    for bit in range(len(wire) * 8):
        mutated = _flip(wire, bit)
        try:
            security_mode_of(decode_apdu(mutated).user_information.epsem[0])
        except RemoteProtocolError:
            continue  # structurally broken (APDU, or a reserved control byte): no crypto needed
        with pytest.raises(SecurityError):
            decode_message(mutated, KEYS, require_security=True)


@pytest.mark.parametrize("wire", SECURED_VECTORS, ids=SECURED_IDS)
def test_flips_in_mac_and_body_are_security_errors(wire: bytes) -> None:
    epsem_len = len(decode_apdu(wire).user_information.epsem)
    for index in range(len(wire) - epsem_len + 1, len(wire)):  # after the control byte
        for bit in range(8):
            with pytest.raises(SecurityError, match="MAC mismatch"):
                decode_message(_flip(wire, index * 8 + bit), KEYS)


def test_unknown_key_id_is_named() -> None:
    with pytest.raises(SecurityError, match="unknown key id 2"):
        decode_message(EX8_REQUEST, KeyStore({3: KEY}))


def test_wrong_key_is_rejected() -> None:
    with pytest.raises(SecurityError, match="MAC mismatch"):
        decode_message(SYNTH_MODE1, KeyStore({KEY_ID: bytes(16)}))


def test_relative_titles_need_the_right_base_oid() -> None:
    with pytest.raises(SecurityError):
        decode_message(EX8_REQUEST, KEYS, base_oid=(2, 16, 124, 113620, 1, 22, 1))
