"""The seven ICSNPP C12.22 captures against their Zeek baselines, every log, field by field.

Source: ../shared/vectors/icsnpp-c1222 (BSD-3 data from the ICSNPP C12.22 parser's test suite, S8).
Each capture goes through the fast path (scapy's raw reader, amidcc's TCP reassembly, framer and
codec), and the rows of every ICSNPP log -- c1222, user information, authentication value, and the
per-service logs (identification, read_write, logon_security, wait, dereg_reg, trace, plus
resolve and service_error, which must stay empty here) -- must equal the baseline rows. A log the
baseline does not have must produce no row at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amidcc.pcap.analysis import CaptureAnalyzer, analyze_file
from amidcc.pcap.icsnpp import CONN_COLUMNS, LOG_COLUMNS, json_record, log_rows, zeek_text

CAPTURES = ["ident", "logon", "reg", "rw", "security", "trace", "wait"]


def read_baseline(path: Path, log: str) -> list[list[str]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        assert len(fields) == len(CONN_COLUMNS) + len(LOG_COLUMNS[log]), f"{path}: {line!r}"
        rows.append(fields)
    return rows


def our_rows(pcap: Path) -> dict[str, list[list[str]]]:
    """Every log's rows, rendered as Zeek's TSV writer would, connection columns first."""
    out: dict[str, list[list[str]]] = {log: [] for log in LOG_COLUMNS}
    for record in analyze_file(pcap, CaptureAnalyzer()):
        conn = [record.orig_h, str(record.orig_p), record.resp_h, str(record.resp_p), record.proto]
        for log, row in log_rows(record):
            out[log].append(conn + [zeek_text(row[c]) for c in LOG_COLUMNS[log]])
    return out


@pytest.fixture
def icsnpp(shared_vectors: Path) -> Path:
    folder = shared_vectors / "icsnpp-c1222"
    if not folder.is_dir():
        pytest.skip(f"ICSNPP captures not found at {folder}")
    return folder


@pytest.mark.parametrize("capture", CAPTURES)
@pytest.mark.parametrize("log", list(LOG_COLUMNS))
def test_every_log_matches_the_baseline(icsnpp: Path, capture: str, log: str) -> None:
    pcap = icsnpp / f"c1222_{capture}_service_tcp.pcap"
    expected = read_baseline(icsnpp / "baseline" / f"{capture}_service_tcp" / f"{log}.log", log)
    ours = our_rows(pcap)[log]
    assert len(ours) == len(expected), (
        f"{capture} {log}: {len(ours)} rows, baseline {len(expected)}"
    )
    columns = [*CONN_COLUMNS, *LOG_COLUMNS[log]]
    for n, (mine, theirs) in enumerate(zip(ours, expected, strict=True)):
        for column, a, b in zip(columns, mine, theirs, strict=True):
            assert a == b, f"{capture} {log} row {n} column {column}: ours {a!r}, baseline {b!r}"


def test_every_capture_has_a_service_log(icsnpp: Path) -> None:
    # Guards the test above against passing vacuously: each capture's baseline folder holds at
    # least one per-service log with rows, and the baselines hold 7 x 2 c1222.log rows in all.
    service_logs = [log for log in LOG_COLUMNS if log.endswith("_service")]
    total = 0
    for capture in CAPTURES:
        folder = icsnpp / "baseline" / f"{capture}_service_tcp"
        rows = [read_baseline(folder / f"{log}.log", log) for log in service_logs]
        assert any(rows), capture
        total += len(read_baseline(folder / "c1222.log", "c1222"))
    assert total == 14


@pytest.mark.parametrize("capture", CAPTURES)
def test_json_objects_carry_the_same_columns(icsnpp: Path, capture: str) -> None:
    pcap = icsnpp / f"c1222_{capture}_service_tcp.pcap"
    records = list(analyze_file(pcap, CaptureAnalyzer()))
    objects = [json.loads(json.dumps(json_record(r))) for r in records]
    for log in ("c1222", "c1222_user_information"):
        expected = read_baseline(icsnpp / "baseline" / f"{capture}_service_tcp" / f"{log}.log", log)
        for obj, row in zip(objects, expected, strict=True):
            values = [zeek_text(obj[c]) for c in CONN_COLUMNS] + [
                zeek_text(obj[c]) for c in LOG_COLUMNS[log]
            ]
            assert values == row
    service_rows = [
        [zeek_text(entry[c]) for c in LOG_COLUMNS[entry["log"]]]
        for obj in objects
        for entry in obj["service_logs"]
    ]
    expected_rows = [
        row[len(CONN_COLUMNS) :]
        for log in LOG_COLUMNS
        if log.endswith("_service") or log == "c1222_service_error"
        for row in read_baseline(icsnpp / "baseline" / f"{capture}_service_tcp" / f"{log}.log", log)
    ]
    assert sorted(service_rows) == sorted(expected_rows)
    assert objects[1]["amidcc"]["answers"] == 0 and objects[1]["amidcc"]["latency"] > 0
