"""``amidcc pcap analyze``: text summary, --json lines, keys, exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amidcc.cli import main
from amidcc.codecs.c1222 import SecurityMode
from amidcc.pcap.icsnpp import CONN_COLUMNS, LOG_COLUMNS
from amidcc.pcap.writer import CaptureWriter, Endpoint

from .conftest import KEY, exchange

CLIENT, METER = Endpoint(host="10.1.0.1", port=40000), Endpoint(host="10.1.0.2")


@pytest.fixture
def secured_capture(tmp_path: Path) -> Path:
    path = tmp_path / "secured.pcap"
    with path.open("wb") as f:
        writer = CaptureWriter(f, mss=30)
        for n, mode in enumerate((SecurityMode.CLEARTEXT, SecurityMode.CIPHERTEXT)):
            request, response = exchange(n + 1, mode)
            writer.tcp_payload(CLIENT, METER, request, 100.0 + n)
            writer.tcp_payload(METER, CLIENT, response, 100.25 + n)
    return path


def test_text_summary(secured_capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pcap", "analyze", str(secured_capture), "--key", f"2:{KEY.hex()}"]) == 0
    out = capsys.readouterr().out
    assert "4 messages" in out and "matched 2" in out and "unanswered 0" in out
    assert "latency ms: mean 250.0" in out
    assert "security: cleartext 2, decrypted 2" in out and "malformed: none" in out
    assert "Full Read" in out and ".123.8437" in out


def test_json_lines(
    secured_capture: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    summary_path = tmp_path / "summary.json"
    code = main(["pcap", "analyze", str(secured_capture), "--json", "--key", f"0x02:{KEY.hex()}",
                 "--base-oid", "2.16.124.113620.1.22.0", "--summary-json", str(summary_path)])  # fmt: skip
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    objects = [json.loads(line) for line in lines]
    assert len(objects) == 4
    expected = {*CONN_COLUMNS, "ts", "uid", "service_logs", "amidcc"}
    for log in ("c1222", "c1222_user_information", "c1222_authentication_value"):
        expected |= set(LOG_COLUMNS[log])
    assert all(set(obj) == expected for obj in objects)
    encrypted = objects[2]
    assert encrypted["is_encrypted_epsem"] is True and encrypted["c1222_key_id"] == 2
    assert encrypted["services"] == ["REQ:Full Read"]  # decrypted with the key
    assert encrypted["amidcc"]["security"] == "decrypted"
    assert objects[3]["amidcc"]["answers"] == 2 and objects[3]["amidcc"][
        "latency"
    ] == pytest.approx(0.25)
    assert objects[3]["service_logs"][0]["service_type"] == "readresp-ok"
    summary = json.loads(summary_path.read_text())
    assert summary["matched"] == 2 and summary["services"][0]["name"] == "Full Read"


def test_without_the_key_ciphertext_is_listed_not_decoded(
    secured_capture: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pcap", "analyze", str(secured_capture), "--json"]) == 0
    objects = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert objects[2]["services"] is None and objects[2]["encrypted_epsem"]
    assert objects[2]["amidcc"]["security"] == "encrypted"


@pytest.mark.parametrize(
    "argv",
    [
        ["--key", "2:0102"],
        ["--key", "300:" + "00" * 16],
        ["--key", "nonsense"],
        ["--base-oid", ".1.2"],
    ],
)
def test_bad_arguments_exit_2(
    secured_capture: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pcap", "analyze", str(secured_capture), *argv]) == 2
    assert "amidcc pcap:" in capsys.readouterr().err


def test_unreadable_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pcap", "analyze", str(tmp_path / "missing.pcap")]) == 2
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    assert main(["pcap", "analyze", str(junk)]) == 2
    assert capsys.readouterr().err.count("amidcc pcap:") == 2


def test_fail_on_malformed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "garbage.pcap"
    with path.open("wb") as f:
        writer = CaptureWriter(f)
        writer.tcp_payload(CLIENT, METER, b"\x00\x01" + exchange(1)[0], 1.0)
    assert main(["pcap", "analyze", str(path)]) == 0
    assert main(["pcap", "analyze", str(path), "--fail-on-malformed"]) == 1
    assert "malformed: framing 1" in capsys.readouterr().out
