"""C1222Link checks that a response carries one answer per service asked (after the sessionless
Security it prefixes) before the request's Deferred fires: a meter that answers fewer or more
fails that request with RemoteProtocolError and counts as malformed. The meter side is written by
hand with the codec, as in test_c1222_link.py."""

from __future__ import annotations

import pytest

from amidcc.codecs.errors import RemoteProtocolError
from amidcc.codecs.psem import (
    FullRead,
    ReadResponse,
    encode_request,
    encode_response,
    pad_password,
)

from .test_c1222_link import Rig, address, answer, outcome, register_apdu, sent


@pytest.mark.parametrize("answers", [1, 3])
def test_a_wrong_number_of_responses_fails_the_request(answers: int) -> None:
    rig = Rig(password=pad_password("master", fill=b" "))
    proto, transport = rig.connect()
    proto.dataReceived(register_apdu(".2.7.1", "SIM-1"))
    sent(transport)
    read = encode_request(FullRead(table_id=1))
    box = outcome(rig.link.request(address(), [read, read], timeout=5.0))
    (request,) = sent(transport)
    ok = encode_response(ReadResponse(data=b"AMDC"))
    proto.dataReceived(answer(request, [b"\x00", *[ok] * answers]))  # Security's answer first
    assert isinstance(box[0].value, RemoteProtocolError)  # type: ignore[attr-defined]
    assert f"{answers} responses to 2 services" in str(box[0].value)  # type: ignore[attr-defined]
    assert rig.errors("malformed") == 1


def test_the_right_number_fires_with_our_services_answers() -> None:
    rig = Rig(password=pad_password("master", fill=b" "))
    proto, transport = rig.connect()
    proto.dataReceived(register_apdu(".2.7.1", "SIM-1"))
    sent(transport)
    read = encode_request(FullRead(table_id=1))
    box = outcome(rig.link.request(address(), [read, read], timeout=5.0))
    (request,) = sent(transport)
    ok = encode_response(ReadResponse(data=b"AMDC"))
    proto.dataReceived(answer(request, [b"\x00", ok, ok]))
    assert box == [[ok, ok]] and rig.errors("malformed") == 0


def test_a_register_without_a_calling_title_is_malformed_not_a_crash() -> None:
    # Found by test_c1222_link's mutation test: the calling AP title's tag A6 turned into A9
    # (an unknown element, kept as extra), so the APDU decodes without a calling title.
    rig = Rig()
    proto, transport = rig.connect()
    wire = bytearray(register_apdu(".2.7.5", "SIM-5"))
    wire[wire.index(0xA6)] = 0xA9
    proto.dataReceived(bytes(wire))
    assert sent(transport) == [] and not transport.disconnecting
    assert rig.errors("malformed") == 1 and not rig.link.meters
