"""tshark, an independent decoder (protocol-facts.md 5a), reads what amidcc.pcap.writer writes:
no malformed packet, no expert error, and with the key every MAC verifies (crypto_good)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from amidcc.codecs import psem
from amidcc.codecs.c1222 import SecurityMode, build_message, encode_apdu
from amidcc.pcap.analysis import CaptureAnalyzer, analyze_file
from amidcc.pcap.writer import CaptureWriter, Endpoint

from .conftest import BASE_OID, HEAD_END, KEY, KEY_ID, METER, exchange

TSHARK = shutil.which("tshark") or "/usr/bin/tshark"
# Wireshark's expert severities (epan/proto.h): PI_WARN and PI_ERROR.
PI_WARN, PI_ERROR = 0x00600000, 0x00800000

pytestmark = pytest.mark.skipif(
    not Path(TSHARK).exists(), reason="tshark not installed (apt-get install tshark; .ci/run does)"
)

MODES = [SecurityMode.CLEARTEXT, SecurityMode.AUTHENTICATED, SecurityMode.CIPHERTEXT]


def write_capture(path: Path) -> int:
    """A gateway-like capture; returns the number of secured APDUs in it."""
    client, meter = Endpoint(host="127.0.0.1", port=41000), Endpoint(host="127.0.0.2")
    secured = 0
    with path.open("wb") as f:
        writer = CaptureWriter(f, mss=37)  # small segments: every APDU spans several
        now = 1700000000.0
        for n in range(9):
            mode = MODES[n % 3]
            request, response = exchange(n + 1, mode, table=n)
            writer.tcp_payload(client, meter, request, now)
            writer.tcp_payload(meter, client, response, now + 0.05)
            secured += 2 * (mode is not SecurityMode.CLEARTEXT)
            now += 0.1
        writer.mss = 1460  # then several APDUs in one segment, one of them mode 2 with an ED class
        ed = encode_apdu(build_message(
            called=METER, calling=HEAD_END, invocation_id=40, ed_class=b"EE  ",
            services=[psem.encode_request(psem.Identify())], security_mode=SecurityMode.CIPHERTEXT,
            key_id=KEY_ID, key=KEY, iv=bytes.fromhex("48f3d0aa"),
        ))  # fmt: skip
        writer.tcp_payload(client, meter, exchange(41)[0] + ed + exchange(42, MODES[1])[0], now)
        secured += 2
        writer.tcp_close(client, meter, now + 1)
        writer.udp_payload(client, Endpoint(host="127.0.0.2"), exchange(50, MODES[2])[0], now + 2)
        secured += 1
    return secured


def tshark_fields(path: Path, *fields: str, keys: bool = True) -> list[list[str]]:
    options = ["-o", f"c1222.baseoid:{BASE_OID}"]
    if keys:
        options += ["-o", f'uat:c1222_decryption_table:"{KEY_ID}",{KEY.hex()}']
    command = [
        TSHARK,
        "-n",
        "-r",
        str(path),
        *options,
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-E",
        "aggregator=^",
    ]
    for field in fields:
        command += ["-e", field]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return [line.split("|") for line in done.stdout.splitlines()]


def severities(cell: str) -> list[int]:
    return [int(v) for v in values(cell)]


def values(cell: str) -> list[str]:
    """The values of one field (tshark joins repeated occurrences with the aggregator ^)."""
    return cell.split("^") if cell else []


def test_tshark_decodes_amidcc_captures_without_errors_and_verifies_every_mac(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gateway.pcap"
    secured = write_capture(path)
    rows = tshark_fields(
        path, "frame.number", "_ws.malformed", "_ws.expert.severity", "_ws.expert.message",
        "c1222.crypto_good", "c1222.crypto_bad", "c1222.cmd",
    )  # fmt: skip
    assert rows, "tshark printed nothing"
    for number, malformed, severity, message, _, bad, _ in rows:
        assert not malformed, f"frame {number}: malformed"
        assert all(s < PI_WARN for s in severities(severity)), f"frame {number}: {message}"
        assert set(values(bad)) <= {"0"}, f"frame {number}: crypto_bad"
    good = [v for row in rows for v in values(row[4])]
    assert good == ["1"] * secured
    commands = [c for row in rows for c in values(row[6])]
    assert commands.count("0x30") == 12 and commands.count("0x20") == 1  # requests tshark decoded
    # and amidcc reads the same file cleanly, with the key
    analyzer = CaptureAnalyzer(keys={KEY_ID: KEY})
    records = list(analyze_file(path, analyzer))
    assert len(records) == 22 and analyzer.summary().malformed == {}


def test_without_the_key_the_only_complaints_are_about_security(tmp_path: Path) -> None:
    # tshark 4.0 reports a mode-1 MAC it cannot check as "failed authentication" (an error) and a
    # mode-2 body as "could not be decrypted" (a warning): nothing about the framing.
    path = tmp_path / "gateway.pcap"
    write_capture(path)
    rows = tshark_fields(
        path, "_ws.malformed", "_ws.expert.severity", "_ws.expert.message", keys=False
    )
    assert all(not malformed for malformed, _, _ in rows)
    complaints = {
        message
        for _, severity, messages in rows
        for s, message in zip(severities(severity), values(messages), strict=True)
        if s >= PI_WARN
    }
    assert complaints == {
        "C12.22 EPSEM failed authentication",
        "C12.22 EPSEM could not be decrypted",
    }
