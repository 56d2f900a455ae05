"""Codec throughput (`make bench`): operations per second on one core.

Figures printed:
- C12.18 frame build+parse, 64-byte payload (encode_frame + FrameBuffer), and termineter's
  C1218Packet build+from_bytes on the same payload in the same run (its own venv), with the ratio;
- C12.18 full exchange through two sans-I/O links (send, frame, ACK, deliver);
- a PSEM read request/response pair (encode + decode both);
- a C12.22 APDU decode + encode (reply) in clear text and in security mode 2 (EAX').
"""

from __future__ import annotations

import os
import subprocess
import sys

from amidcc.codecs import c1218, c1222, psem
from amidcc.codecs.c1222 import ApTitle, SecurityMode

from ._timing import ops_per_second, report

PAYLOAD = bytes(range(64))
KEY = bytes.fromhex("01020304050607080102030405060708")


def c1218_build_parse() -> float:
    frame = c1218.Frame(toggle=True, data=PAYLOAD)
    buf = c1218.FrameBuffer(packet_size=1024)

    def once() -> None:
        buf.receive_data(c1218.encode_frame(frame))
        buf.next_item()

    return ops_per_second(once, number=50_000)


def c1218_link_exchange() -> float:
    host = c1218.Link(c1218.Role.HOST, packet_size=1024)
    device = c1218.Link(c1218.Role.DEVICE, packet_size=1024)

    def once() -> None:
        host.send_message(PAYLOAD, 0.0)
        device.receive_data(host.data_to_send(), 0.0)
        host.receive_data(device.data_to_send(), 0.0)

    return ops_per_second(once, number=20_000)


def psem_pair() -> float:
    request = psem.PartialReadOffset(table_id=23, offset=0, octet_count=64)
    response = psem.ReadResponse(data=PAYLOAD)

    def once() -> None:
        req = psem.decode_request(psem.encode_request(request))
        psem.decode_response(psem.encode_response(response), req)

    return ops_per_second(once, number=50_000)


def c1222_round_trip(mode: SecurityMode) -> float:
    keys = {2: KEY}
    services = [psem.encode_request(psem.PartialReadOffset(table_id=23, offset=0, octet_count=64))]
    apdu = c1222.build_message(
        called=ApTitle.parse(".2.7.1"), calling=ApTitle.parse(".2.1"), invocation_id=7,
        services=services, security_mode=mode, key_id=2 if mode else None,
        key=KEY if mode else None, iv=bytes.fromhex("48f3d061") if mode else None,
    )  # fmt: skip
    wire = c1222.encode_apdu(apdu)
    reply_services = [psem.encode_response(psem.ReadResponse(data=PAYLOAD))]

    def once() -> None:
        message = c1222.decode_message(wire, keys if mode else None)
        reply = c1222.reply_to(message.apdu, reply_services)
        if mode:
            reply = c1222.protect(reply, 2, KEY, bytes.fromhex("48f3d062"), mode)
        c1222.encode_apdu(reply)

    return ops_per_second(once, number=5_000)


def termineter_rate() -> float | None:
    python = os.environ.get("TERMINETER_PYTHON")
    if not python or not os.path.exists(python):
        return None
    script = os.path.join(os.path.dirname(__file__), "termineter_c1218.py")
    done = subprocess.run([python, script], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(f"termineter comparison failed: {done.stderr.strip()[-300:]}\n")
        return None
    return float(done.stdout.strip())


def main() -> None:
    print("amidcc codec benchmarks (one core, best of 5)")
    ours = c1218_build_parse()
    report("C12.18 frame build+parse, 64-byte payload", ours)
    theirs = termineter_rate()
    if theirs is None:
        print(f"{'termineter C1218Packet build+parse, same payload':<58} {'(not installed)':>12}")
    else:
        report("termineter C1218Packet build+parse, same payload", theirs)
        print(f"{'  amidcc / termineter':<58} {ours / theirs:>12.1f} x")
    report("C12.18 link exchange (send, ACK, deliver), 64 bytes", c1218_link_exchange())
    report("PSEM read request/response pair (encode+decode)", psem_pair())
    report("C12.22 APDU decode+encode, clear text", c1222_round_trip(SecurityMode.CLEARTEXT))
    report("C12.22 APDU decode+encode, mode 2 (EAX')", c1222_round_trip(SecurityMode.CIPHERTEXT))


if __name__ == "__main__":
    main()
