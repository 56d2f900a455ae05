"""``message_from_apdu`` is ``decode_message`` of an APDU the reader has already decoded.

Vectors: the standard's example 8 and the synthetic secured vectors (test_c1222_vectors.py, S3),
the ICSNPP Ident APDU (test_c1222_acse.py, S8), and Hypothesis APDUs with every element.
"""

from __future__ import annotations

import pytest
from hypothesis import given

from amidcc.codecs.c1222 import Apdu, decode_apdu, decode_message, encode_apdu, message_from_apdu
from amidcc.codecs.errors import LocalProtocolError, SecurityError

from .test_c1222_acse import ICSNPP_IDENT, SETTINGS, apdus
from .test_c1222_vectors import KEYS, SECURED_IDS, SECURED_VECTORS


@pytest.mark.parametrize("wire", [*SECURED_VECTORS, ICSNPP_IDENT], ids=[*SECURED_IDS, "icsnpp"])
def test_same_message_with_and_without_keys(wire: bytes) -> None:
    assert message_from_apdu(decode_apdu(wire)) == decode_message(wire)
    with_keys = message_from_apdu(decode_apdu(wire), KEYS)
    assert with_keys == decode_message(wire, KEYS)
    if with_keys.security_mode:
        assert with_keys.authenticated and with_keys.epsem is not None


def test_same_errors() -> None:
    wire = bytearray(SECURED_VECTORS[0])
    wire[-1] ^= 0x01  # the MAC's last bit
    with pytest.raises(SecurityError):
        message_from_apdu(decode_apdu(bytes(wire)), KEYS)
    with pytest.raises(LocalProtocolError):
        message_from_apdu(decode_apdu(ICSNPP_IDENT), None, require_security=True)


@SETTINGS
@given(apdus())
def test_every_element(apdu: Apdu) -> None:
    wire = encode_apdu(apdu)
    try:
        expected = decode_message(wire)
    except Exception as exc:
        with pytest.raises(type(exc)):
            message_from_apdu(decode_apdu(wire))
        return
    assert message_from_apdu(decode_apdu(wire)) == expected
