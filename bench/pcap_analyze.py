"""Packets per second: ``amidcc pcap analyze``'s fast path against scapy's full dissection.

Writes a capture of about 20k packets (C12.22 Partial Read exchanges between a head-end and 100
meters, one TCP connection per meter, every response carrying different data, written by
``amidcc.pcap.writer``) into a temporary folder, then times, on that same file in the same run
(imports done beforehand; ``--repeat`` rounds that run each once, in turn, so that a change in
the machine's load touches all of them alike; the best round of each counts):

* reading alone: amidcc's reader (classic pcap read directly; the floor under the fast path), and
  scapy's raw reader (which amidcc uses for pcapng and gzip);
* the fast path: raw frames -> amidcc's own TCP reassembly, framing, decoding, request/response
  matching and summaries (``CaptureAnalyzer``), as ``amidcc pcap analyze`` runs it;
* the fast path plus the ``--json`` rendering of every message;
* scapy's full dissection with amidcc's layers bound to port 1153 (``PcapReader``).

Run it with ``python -m bench.pcap_analyze [--packets N] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from amidcc.codecs import psem
from amidcc.codecs.c1222 import ApTitle, build_message, encode_apdu, reply_to
from amidcc.pcap.writer import CaptureWriter, Endpoint, synthetic_address

from ._timing import report


def write_capture(path: Path, packets: int, meters: int = 100) -> int:
    """About ``packets`` frames; returns the exact number written."""
    head_end = Endpoint(host="10.255.0.1", port=40000)
    exchanges = max(1, (packets - 3 * meters) // 2)
    now = 1700000000.0
    with path.open("wb") as f:
        writer = CaptureWriter(f)
        for n in range(exchanges):
            meter = n % meters
            title = ApTitle.parse(f".123.{meter}")
            request = build_message(
                called=title, calling=ApTitle.parse(".1.1"), invocation_id=n % 65536 + 1,
                services=[psem.encode_request(psem.PartialReadOffset(table_id=23, offset=0, octet_count=40))],
            )  # fmt: skip
            data = (n * 2654435761 & 0xFFFFFFFF).to_bytes(4, "big") * 10  # a different read each time
            response = reply_to(request, [psem.encode_response(psem.ReadResponse(data=data))])
            peer = Endpoint(host=synthetic_address(str(title)), port=1153)
            client = Endpoint(host=head_end.host, port=40000 + meter)
            writer.tcp_payload(client, peer, encode_apdu(request), now)
            writer.tcp_payload(peer, client, encode_apdu(response), now + 0.012)
            now += 0.001
        return writer.frames_written


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    """Seconds one run takes, and the frame count it returns."""
    start = time.perf_counter()
    count = fn()
    return time.perf_counter() - start, count


def warm_up() -> None:
    """Import everything beforehand, so no run pays for scapy's or amidcc's imports."""
    import scapy.utils  # noqa: F401

    import amidcc.pcap.analysis  # noqa: F401
    import amidcc.pcap.icsnpp  # noqa: F401
    import amidcc.pcap.layers  # noqa: F401
    import amidcc.pcap.reader  # noqa: F401


def raw_read(path: Path) -> int:
    from amidcc.pcap.reader import read_frame_tuples

    return sum(1 for _ in read_frame_tuples(path))


def scapy_raw_read(path: Path) -> int:
    from scapy.utils import RawPcapReader

    with RawPcapReader(str(path)) as reader:
        return sum(1 for _ in reader)


def fast_path(path: Path, render: bool = False) -> int:
    from amidcc.pcap.analysis import CaptureAnalyzer, analyze_file
    from amidcc.pcap.icsnpp import json_record

    analyzer = CaptureAnalyzer()
    for record in analyze_file(path, analyzer):
        if render:
            json.dumps(json_record(record))
    summary = analyzer.summary()
    assert summary.matched > 0 and not summary.malformed, summary.malformed
    return summary.frames


def scapy_dissection(path: Path) -> int:
    from scapy.utils import PcapReader

    import amidcc.pcap.layers  # noqa: F401  -- binds C12.22 to port 1153
    from amidcc.pcap.layers import C1222

    count = dissected = 0
    with PcapReader(str(path)) as reader:
        for pkt in reader:
            count += 1
            dissected += C1222 in pkt
    assert dissected > 0
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each run's best counts")
    args = parser.parse_args()
    warm_up()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.pcap"
        frames = write_capture(path, args.packets)
        print(f"capture: {frames} frames, {path.stat().st_size / 1e6:.1f} MB")
        runs = [
            ("amidcc.pcap.reader, read only", lambda: raw_read(path)),
            ("scapy RawPcapReader, read only", lambda: scapy_raw_read(path)),
            ("amidcc pcap analyze (fast path)", lambda: fast_path(path)),
            ("amidcc pcap analyze --json (fast path + rendering)", lambda: fast_path(path, True)),
            ("scapy full dissection (PcapReader + amidcc layers)", lambda: scapy_dissection(path)),
        ]
        best = dict.fromkeys((name for name, _ in runs), float("inf"))
        for _ in range(args.repeat):
            for name, fn in runs:
                seconds, count = timed(fn)
                assert count == frames, (name, count, frames)
                best[name] = min(best[name], seconds)
        rates = {name: frames / seconds for name, seconds in best.items()}
        for name, rate in rates.items():
            report(name, rate, "packets/s")
        ratio = rates[runs[2][0]] / rates[runs[4][0]]
        print(f"fast path / scapy dissection: {ratio:.1f}x")


if __name__ == "__main__":
    main()
