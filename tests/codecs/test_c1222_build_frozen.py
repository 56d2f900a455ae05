"""The decoders build Apdu, UserInformation, Epsem and C1222Message without calling __init__
(``_tlv.build_frozen``): the objects must be exactly those ``__init__`` would build.

Vectors: the standard's example 8 and the synthetic secured vectors (test_c1222_vectors.py, S3),
the ICSNPP Ident APDU (test_c1222_acse.py, S8), and Hypothesis APDUs with every element.
"""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest
from hypothesis import given

from amidcc.codecs.c1222 import (
    Apdu,
    C1222Message,
    Epsem,
    UserInformation,
    decode_apdu,
    decode_epsem,
    decode_message,
    encode_apdu,
)

from .test_c1222_acse import ICSNPP_IDENT, SETTINGS, apdus
from .test_c1222_vectors import KEYS, SECURED_IDS, SECURED_VECTORS

BUILT = (Apdu, UserInformation, Epsem, C1222Message)


@pytest.mark.parametrize("cls", BUILT, ids=lambda c: c.__name__)
def test_only_plain_frozen_dataclasses_are_built_this_way(cls: type) -> None:
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    assert params.frozen
    assert not hasattr(cls, "__slots__") and not hasattr(cls, "__post_init__")
    assert all(f.default_factory is dataclasses.MISSING for f in dataclasses.fields(cls))


def same_as_init(obj: Any) -> None:
    """``obj`` equals, field for field and in the same order, what its ``__init__`` builds."""
    cls = type(obj)
    names = [f.name for f in dataclasses.fields(cls)]
    assert list(vars(obj)) == names
    rebuilt = cls(**vars(obj))
    assert vars(rebuilt) == vars(obj) and rebuilt == obj and repr(rebuilt) == repr(obj)
    assert pickle.loads(pickle.dumps(obj)) == obj
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, names[0], None)


def check_message(message: C1222Message) -> None:
    same_as_init(message)
    same_as_init(message.apdu)
    same_as_init(message.apdu.user_information)
    if message.epsem is not None:
        same_as_init(message.epsem)


@pytest.mark.parametrize("wire", SECURED_VECTORS, ids=SECURED_IDS)
def test_secured_vectors(wire: bytes) -> None:
    check_message(decode_message(wire))
    check_message(decode_message(wire, KEYS))


def test_icsnpp_ident_and_its_epsem() -> None:
    message = decode_message(ICSNPP_IDENT)
    check_message(message)
    assert message.epsem is not None
    same_as_init(decode_epsem(message.apdu.user_information.epsem))


@SETTINGS
@given(apdus())
def test_every_element(apdu: Apdu) -> None:
    decoded = decode_apdu(encode_apdu(apdu))
    same_as_init(decoded)
    same_as_init(decoded.user_information)
    assert decoded == apdu
