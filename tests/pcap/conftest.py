"""Helpers shared by the pcap tests: C12.22 exchanges built with amidcc's codec."""

from __future__ import annotations

from amidcc.codecs import psem
from amidcc.codecs.c1222 import ApTitle, SecurityMode, build_message, encode_apdu, reply_to

# The C12.22 standard's example-8 key (protocol-facts.md 3.5, S3): key id 2.
KEY_ID = 2
KEY = bytes.fromhex("01020304050607080102030405060708")
BASE_OID = "2.16.124.113620.1.22.0"
METER = ApTitle.parse(".123.8437")
HEAD_END = ApTitle.parse(".123.4")


def exchange(
    invocation_id: int,
    mode: SecurityMode = SecurityMode.CLEARTEXT,
    *,
    table: int = 1,
    data: bytes = b"hello world",
    meter: ApTitle = METER,
) -> tuple[bytes, bytes]:
    """A Full Read request and its read response, secured with the example-8 key in modes 1/2."""
    request = build_message(
        called=meter, calling=HEAD_END, invocation_id=invocation_id,
        services=[psem.encode_request(psem.FullRead(table_id=table))],
        security_mode=mode, key_id=KEY_ID, key=KEY, iv=(0x1000 + invocation_id).to_bytes(4, "big"),
    )  # fmt: skip
    response = reply_to(
        request, [psem.encode_response(psem.ReadResponse(data=data))],
        security_mode=mode, key_id=KEY_ID, key=KEY, iv=(0x2000 + invocation_id).to_bytes(4, "big"),
    )  # fmt: skip
    return encode_apdu(request), encode_apdu(response)
