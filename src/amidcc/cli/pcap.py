"""``amidcc pcap``: analyse a capture of C12.22 traffic.

::

    amidcc pcap analyze FILE [--key ID:HEXKEY ...] [--base-oid OID] [--port N ...] [--json]
                             [--summary-json PATH] [--fail-on-malformed]

Without ``--json`` it prints a summary a person can read: counts, latency, response codes,
malformed frames, then one line per service and one per AP title. With ``--json`` it prints one
JSON object per message (JSON Lines), keyed like the ICSNPP Zeek logs (see docs/pcap.md), and
nothing else on stdout. Exit status: 0, 1 with ``--fail-on-malformed`` when anything was
malformed, 2 for bad arguments or an unreadable file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

EXIT_MALFORMED = 1
EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "pcap",
        help="analyse a pcap/pcapng capture of C12.22 traffic",
        description="Decode every C12.22 message of a capture, match requests and responses, "
        "and summarise per service and per meter.",
    )
    actions = parser.add_subparsers(dest="pcap_command", metavar="ACTION", required=True)
    analyze = actions.add_parser("analyze", help="decode and summarise a capture")
    analyze.add_argument("file", metavar="FILE", help="pcap or pcapng file (gzip accepted)")
    analyze.add_argument(
        "--key", action="append", default=[], metavar="ID:HEXKEY",
        help="a key for security modes 1 and 2 (repeatable), e.g. 2:01020304050607080102030405060708",
    )  # fmt: skip
    analyze.add_argument(
        "--base-oid", default=None, metavar="OID",
        help="base of relative AP titles, for the MAC (default 2.16.124.113620.1.22.0)",
    )  # fmt: skip
    analyze.add_argument(
        "--port", action="append", type=int, default=[], metavar="N",
        help="TCP/UDP port carrying C12.22 (repeatable; default 1153)",
    )  # fmt: skip
    analyze.add_argument("--json", action="store_true", help="one JSON object per message")
    analyze.add_argument("--summary-json", metavar="PATH", help="also write the summary as JSON")
    analyze.add_argument(
        "--fail-on-malformed", action="store_true", help="exit 1 when anything was malformed"
    )
    analyze.set_defaults(handler=run_analyze)


class UsageError(Exception):
    """A bad argument (exit status 2)."""


def parse_key(text: str) -> tuple[int, bytes]:
    """``ID:HEXKEY`` -> (key id, 16-byte key)."""
    key_id, sep, hexkey = text.partition(":")
    try:
        number = int(key_id, 0)
        key = bytes.fromhex(hexkey.replace(" ", ""))
    except ValueError:
        raise UsageError(f"--key {text!r}: expected ID:HEXKEY") from None
    if not sep or not 0 <= number <= 255 or len(key) != 16:
        raise UsageError(f"--key {text!r}: the id is 0..255 and the key 16 bytes (32 hex digits)")
    return number, key


def parse_base_oid(text: str) -> tuple[int, ...]:
    from amidcc.codecs.ber import parse_oid
    from amidcc.codecs.errors import CodecError

    try:
        arcs, relative = parse_oid(text)
    except (CodecError, ValueError):
        raise UsageError(f"--base-oid {text!r} is not a dotted OID") from None
    if relative:
        raise UsageError(f"--base-oid {text!r} must be absolute (no leading dot)")
    return arcs


def run_analyze(args: argparse.Namespace) -> int:
    from amidcc.codecs.ber import DEFAULT_BASE_OID
    from amidcc.pcap.analysis import CaptureAnalyzer, analyze_file
    from amidcc.pcap.icsnpp import json_record

    try:
        keys = dict(parse_key(k) for k in args.key)
        base_oid = DEFAULT_BASE_OID if args.base_oid is None else parse_base_oid(args.base_oid)
    except UsageError as err:
        print(f"amidcc pcap: {err}", file=sys.stderr)
        return EXIT_USAGE
    analyzer = CaptureAnalyzer(keys=keys or None, base_oid=base_oid, ports=args.port or (1153,))
    try:
        for record in analyze_file(args.file, analyzer):
            if args.json:
                sys.stdout.write(json.dumps(json_record(record)) + "\n")
    except ImportError as err:  # scapy is the optional "pcap" extra
        print(f"amidcc pcap: {err}; install it with: pip install 'amidcc[pcap]'", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. piped into head: stop quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- keeps the interpreter's final flush quiet
        return 0
    except (OSError, ValueError) as err:
        print(f"amidcc pcap: {err}", file=sys.stderr)
        return EXIT_USAGE
    summary = analyzer.summary()
    if not args.json:
        write_summary(sys.stdout, args.file, summary)
    if args.summary_json:
        with open(args.summary_json, "w", encoding="utf-8") as out:
            json.dump(summary_json(summary), out, indent=2)
            out.write("\n")
    malformed = sum(summary.malformed.values()) + summary.truncated_frames
    return EXIT_MALFORMED if args.fail_on_malformed and malformed else 0


def summary_json(summary: Any) -> Any:
    """The summary as JSON-ready data (dataclasses to dicts)."""
    import dataclasses

    return dataclasses.asdict(summary)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def _counts(counts: dict[str, int] | Any) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"


def write_summary(out: TextIO, name: str, s: Any) -> None:
    """The human-readable report."""
    w = out.write
    w(f"{name}: {s.frames} frames ({s.c1222_frames} C12.22, {s.other_frames} other, "
      f"{s.truncated_frames} truncated), {s.conversations} conversations, {s.messages} messages\n")  # fmt: skip
    kinds = s.kinds
    w(f"  requests {kinds.get('request', 0)}, responses {kinds.get('response', 0)} "
      f"(matched {s.matched}, unmatched {s.unmatched_responses}), unanswered {s.unanswered}, "
      f"segments {kinds.get('segment', 0)}, undecodable {kinds.get('unknown', 0)}\n")  # fmt: skip
    lat = s.latency
    w(f"  latency ms: mean {_ms(lat.mean)}, median {_ms(lat.median)}, p95 {_ms(lat.p95)}, "
      f"max {_ms(lat.maximum)}\n")  # fmt: skip
    w(f"  response codes: {_counts(s.response_codes)}\n")
    w(f"  security: {_counts(s.security)}\n")
    w(f"  malformed: {_counts(s.malformed)}\n")
    tcp = s.tcp
    w(f"  tcp: retransmitted {tcp.get('retransmitted_bytes', 0)} B, out of order "
      f"{tcp.get('out_of_order_segments', 0)}, gaps {tcp.get('gaps', 0)} "
      f"({tcp.get('gap_bytes', 0)} B)\n")  # fmt: skip
    if s.services:
        w(
            f"\n{'service':<24}{'requests':>9}{'answered':>9}{'unanswd':>8}  {'mean/p95/max ms':<20}codes\n"
        )
        for v in s.services:
            lat = v.latency
            times = f"{_ms(lat.mean)}/{_ms(lat.p95)}/{_ms(lat.maximum)}"
            w(f"{v.name:<24}{v.requests:>9}{v.responses:>9}{v.unanswered:>8}  {times:<20}"
              f"{_counts(v.response_codes)}\n")  # fmt: skip
    if s.meters:
        w(f"\n{'AP title':<36}{'sent':>7}{'recv':>7}{'answers':>8}  {'mean/p95 ms':<14}addresses\n")
        for m in s.meters:
            times = f"{_ms(m.latency.mean)}/{_ms(m.latency.p95)}"
            w(f"{m.ap_title:<36}{m.sent:>7}{m.received:>7}{m.responses_sent:>8}  {times:<14}"
              f"{', '.join(m.addresses)}\n")  # fmt: skip
