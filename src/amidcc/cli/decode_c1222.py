"""``amidcc decode c1222``: one ACSE APDU, its EPSEM and its PSEM services."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .decode import UsageError, parse_hex, psem_view
from .render import jsonable, text_lines


def parse_key(text: str) -> tuple[int, bytes]:
    """``ID:HEXKEY`` with a decimal (or 0x-hex) one-byte id and a 16-byte AES key."""
    ident, sep, hexkey = text.partition(":")
    if not sep:
        raise UsageError(f"--key {text!r}: expected ID:HEXKEY")
    try:
        key_id = int(ident, 0)
        key = bytes.fromhex(hexkey)
    except ValueError:
        raise UsageError(f"--key {text!r}: expected ID:HEXKEY, e.g. 2:0102...08") from None
    if not 0 <= key_id <= 255 or len(key) != 16:
        raise UsageError(f"--key {text!r}: id must be 0-255 and the key 16 bytes (32 hex digits)")
    return key_id, key


def describe(data: bytes, keys: dict[int, bytes] | None, base_oid: tuple[int, ...]) -> dict[str, Any]:
    """Decode an APDU into a JSON-ready view; security errors are reported, not raised."""
    from amidcc.codecs import c1222
    from amidcc.codecs.errors import RemoteProtocolError, SecurityError

    try:
        message = c1222.decode_message(data, keys or None, base_oid)
    except SecurityError as e:
        plain = c1222.decode_message(data, None, base_oid)
        view = _view(plain)
        view["security_error"] = str(e)
        view["answer_with"] = e.response_code.name
        return view
    except RemoteProtocolError as e:
        return {"error": str(e), "answer_with": e.response_code.name}
    return _view(message)


def _view(message: Any) -> dict[str, Any]:
    from amidcc.codecs.c1222.acse import apdu_elements

    apdu = message.apdu
    view: dict[str, Any] = {
        "apdu": {
            "called_ap_title": str(apdu.called_ap_title) if apdu.called_ap_title else None,
            "calling_ap_title": str(apdu.calling_ap_title) if apdu.calling_ap_title else None,
            "called_ap_invocation_id": apdu.called_ap_invocation_id,
            "calling_ap_invocation_id": apdu.calling_ap_invocation_id,
            "calling_ae_qualifier": jsonable(apdu.calling_ae_qualifier),
            "elements": [_element_name(tag) for tag, _ in apdu_elements(apdu)],
        },
        "security_mode": jsonable(message.security_mode),
        "authenticated": message.authenticated,
        "key_id": message.key_id,
        "iv": message.iv.hex() if message.iv else None,
    }
    if message.segment:
        view["segment"] = True
        return view
    if message.epsem is None:
        view["epsem"] = "ciphertext: give --key ID:HEXKEY to decrypt"
        return view
    epsem = message.epsem
    view["epsem"] = {
        "response_control": jsonable(epsem.response_control),
        "recovery": epsem.recovery,
        "proxy": epsem.proxy,
        "ed_class": epsem.ed_class.hex() if epsem.ed_class else None,
        "mac": epsem.mac.hex() if epsem.mac else None,
    }
    context: list[Any] = []
    view["services"] = [psem_view(bytes(s), context) for s in epsem.services]
    return view


def _element_name(tag: int) -> str:
    from amidcc.codecs.c1222.acse import Element

    try:
        return Element(tag).name
    except ValueError:
        return f"0x{tag:02X}"


def run(args: argparse.Namespace) -> int:
    from amidcc.codecs import ber

    try:
        data = parse_hex(args.hex)
        keys = dict(parse_key(k) for k in args.key)
        base_oid = ber.DEFAULT_BASE_OID
        if args.base_oid:
            arcs, relative = ber.parse_oid(args.base_oid)
            if relative:
                raise UsageError("--base-oid must be absolute (no leading dot)")
            base_oid = arcs
    except UsageError as e:
        sys.stderr.write(f"amidcc decode c1222: {e}\n")
        return 2
    except Exception as e:  # ber.parse_oid raises LocalProtocolError for bad text
        sys.stderr.write(f"amidcc decode c1222: --base-oid: {e}\n")
        return 2
    view = describe(data, keys, base_oid)
    if args.json:
        json.dump(view, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("\n".join(text_lines(view)) + "\n")
    failed = "error" in view or "security_error" in view
    return 1 if failed else 0
