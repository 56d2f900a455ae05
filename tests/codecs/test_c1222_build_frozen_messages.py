"""``build_message`` and ``reply_to`` build their Epsem, UserInformation and Apdu without
``__init__`` (``_tlv.build_frozen``): the objects must be exactly those ``__init__`` would build,
and the encoder's per-title cache must not change a byte.

Vectors: the standard's example 8 request and response (test_c1222_vectors.py, S3) and Hypothesis
titles, invocation ids and services.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from amidcc.codecs.c1222 import (
    AeQualifier,
    Apdu,
    ApTitle,
    ResponseControl,
    UserInformation,
    build_message,
    decode_apdu,
    encode_apdu,
    encode_epsem,
    reply_to,
)
from amidcc.codecs.c1222.epsem import Epsem

from .test_c1222_acse import SETTINGS, titles
from .test_c1222_build_frozen import same_as_init
from .test_c1222_vectors import EX8_REQUEST

services = st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=3)


@SETTINGS
@given(
    called=titles,
    calling=titles,
    invocation_id=st.integers(0, 2**31 - 1),
    answered=st.one_of(st.none(), st.integers(0, 2**31 - 1)),
    body=services,
    control=st.sampled_from(list(ResponseControl)),
    ed_class=st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
    qualifier=st.one_of(st.none(), st.integers(0, 255).map(AeQualifier)),
)
def test_build_message_is_init(
    called: ApTitle,
    calling: ApTitle,
    invocation_id: int,
    answered: int | None,
    body: list[bytes],
    control: ResponseControl,
    ed_class: bytes | None,
    qualifier: AeQualifier | None,
) -> None:
    apdu = build_message(
        called=called, calling=calling, invocation_id=invocation_id, services=body,
        response_control=control, ed_class=ed_class, ae_qualifier=qualifier,
        called_invocation_id=answered,
    )  # fmt: skip
    same_as_init(apdu)
    same_as_init(apdu.user_information)
    epsem = Epsem(services=tuple(body), response_control=control, ed_class=ed_class)
    expected = Apdu(
        called_ap_title=called,
        called_ap_invocation_id=answered,
        calling_ap_title=calling,
        calling_ae_qualifier=qualifier,
        calling_ap_invocation_id=invocation_id,
        user_information=UserInformation(epsem=encode_epsem(epsem)),
    )
    assert apdu == expected
    wire = encode_apdu(apdu)
    assert wire == encode_apdu(expected) == encode_apdu(apdu)  # the title cache: same bytes
    assert decode_apdu(wire) == expected


def test_reply_to_example8_request_is_init() -> None:
    request = decode_apdu(EX8_REQUEST)
    reply = reply_to(request, [b"\x00"])
    same_as_init(reply)
    same_as_init(reply.user_information)
    assert reply.called_ap_title is request.calling_ap_title
    assert reply.called_ap_invocation_id == request.calling_ap_invocation_id
