"""``amidcc decode``: print what a C12.18 or C12.22 message says, or a clear error.

::

    amidcc decode c1218 HEX [--json]
    amidcc decode c1222 HEX [--key ID:HEXKEY ...] [--base-oid OID] [--json]

HEX may contain spaces, colons and a ``0x`` prefix. A PSEM body whose first byte is 0x20 or more is
read as a request, anything below as a response (a response body is only fully typed when its
request is known, so without one it is shown as code plus raw body).
"""

from __future__ import annotations

import argparse
import binascii
import json
import sys
from typing import Any

from .render import jsonable, text_lines


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("decode", help="decode a C12.18 frame or a C12.22 APDU given in hex")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)

    p1218 = kinds.add_parser("c1218", help="C12.18 packets (one or more frames, ACK/NAK bytes)")
    p1218.add_argument("hex", nargs="+", help="the bytes in hex")
    p1218.add_argument("--json", action="store_true", help="print JSON")
    p1218.set_defaults(handler=_run_c1218)

    p1222 = kinds.add_parser("c1222", help="a C12.22 ACSE APDU (as carried on TCP/UDP 1153)")
    p1222.add_argument("hex", nargs="+", help="the bytes in hex")
    p1222.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="ID:HEXKEY",
        help="a key for security modes 1 and 2 (repeatable), e.g. 2:01020304050607080102030405060708",
    )
    p1222.add_argument(
        "--base-oid", default=None, metavar="OID", help="base of relative AP titles (default 2.16.124.113620.1.22.0)"
    )
    p1222.add_argument("--json", action="store_true", help="print JSON")
    p1222.set_defaults(handler=_run_c1222)


class UsageError(Exception):
    """Bad command-line input (exit status 2)."""


def parse_hex(parts: list[str]) -> bytes:
    text = "".join(parts).replace(":", "").replace(" ", "").replace("\n", "")
    if text.lower().startswith("0x"):
        text = text[2:]
    try:
        return binascii.unhexlify(text)
    except (binascii.Error, ValueError) as e:
        raise UsageError(f"not hex: {e}") from None


def psem_view(body: bytes, context: list[Any] | None = None) -> dict[str, Any]:
    """Decode one PSEM service body: a request when its code is >= 0x20, else a response.

    ``context`` is a list the caller keeps across calls: requests are appended to it, and a
    response is decoded against the oldest request still waiting (so a whole exchange given in one
    go decodes fully). Without a request, an ok body that has the exact shape of a read response
    (count, data, good checksum) is shown as one, marked as guessed.
    """
    from amidcc.codecs import psem
    from amidcc.codecs.errors import RemoteProtocolError

    if not body:
        return {"error": "empty PSEM body"}
    pending = context if context is not None else []
    try:
        if body[0] >= 0x20:
            request = psem.decode_request(body)
            pending.append(request)
            return {"service": psem.service_name(request), "request": jsonable(request)}
        if pending:
            request = pending.pop(0)
            response = psem.decode_response(body, request)
            view = {"service": psem.service_name(response), "response": jsonable(response)}
            view["in_reply_to"] = psem.service_name(request)
            return view
        return _guess_response(body)
    except RemoteProtocolError as e:
        return {"error": str(e), "answer_with": e.response_code.name, "raw": body.hex()}


def _guess_response(body: bytes) -> dict[str, Any]:
    from amidcc.codecs import psem
    from amidcc.codecs.errors import RemoteProtocolError

    if body[0] == 0 and len(body) >= 4 and int.from_bytes(body[1:3], "big") == len(body) - 4:
        try:
            read = psem.decode_response(body, psem.FullRead(table_id=0))
        except RemoteProtocolError:
            pass
        else:
            return {"service": psem.service_name(read), "response": jsonable(read), "guessed": True}
    response = psem.decode_response(body, None)
    return {"service": psem.service_name(response), "response": jsonable(response)}


def c1218_items(data: bytes) -> list[dict[str, Any]]:
    from amidcc.codecs import c1218

    buf = c1218.FrameBuffer(packet_size=c1218.MAX_PACKET_SIZE)
    buf.receive_data(data)
    items: list[dict[str, Any]] = []
    context: list[Any] = []
    while (item := buf.next_item()) is not c1218.NEED_MORE:
        if isinstance(item, c1218.Control):
            items.append({"link": item.name})
        elif isinstance(item, c1218.BadFrame):
            items.append({"bad_frame": item.reason.value, "answer_with": "NAK", "raw": item.raw.hex()})
        elif isinstance(item, c1218.Frame):
            entry: dict[str, Any] = {"frame": jsonable(item)}
            whole = not item.multi_packet or (item.first_packet and item.seq_nbr == 0)
            if whole:
                entry["psem"] = psem_view(item.data, context)
            else:
                entry["psem"] = {"fragment": True, "packets_to_follow": item.seq_nbr}
            items.append(entry)
    if buf.in_frame:
        items.append({"incomplete": "input ends inside a frame (need more bytes)"})
    if buf.skipped_bytes:
        items.append({"skipped_bytes": buf.skipped_bytes})
    return items


def _emit(result: Any, as_json: bool) -> None:
    if as_json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("\n".join(text_lines(result)) + "\n")


def _run_c1218(args: argparse.Namespace) -> int:
    try:
        data = parse_hex(args.hex)
    except UsageError as e:
        sys.stderr.write(f"amidcc decode c1218: {e}\n")
        return 2
    items = c1218_items(data)
    _emit(items, args.json)
    bad = any("bad_frame" in i or "error" in i.get("psem", {}) or "incomplete" in i for i in items)
    return 1 if bad or not items else 0


def _run_c1222(args: argparse.Namespace) -> int:
    from . import decode_c1222

    return decode_c1222.run(args)
