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


# The C12.22 standard's example 8 (protocol-facts.md 3.5: APDUs from Wireshark's
# test/captures/c1222_std_example8.pcap, S3). Expected rows: ICSNPP's own baselines for that capture
# (parsitects/icsnpp-c1222 testing/baseline/tests.c1222_std_example8/*.log, BSD-3), not among the
# shared vectors, so the three rows per message are written out here.
EXAMPLE8 = [
    "604fa20580037bc175a60480027b04a803020103ac0fa20da00ba109800102810448f3d061be2a282881268841d10c"
    "da76206811b36f781489a11997773e117cb07aa3aa40374a7107c50da7f799c5d4e8",
    "6048a20480027b04a403020103a60580037bc175a803020103ac0fa20da00ba109800102810448f3d060be1e281c81"
    "1a884baee4349631ab5e56a0e6e0e90dfad558591ee4ea334cb268",
]
EXAMPLE8_ROWS = {
    "c1222": [
        "Called AP Title,Calling AP Title,Calling AP Invocation ID,Calling Authentication Value,"
        "User Information\tT\t-\t-\t.123.8437\t.123.4\t-\t-\tC1222\t-\t\\x03",
        "Called AP Title,Called AP Invocation ID,Calling AP Title,Calling AP Invocation ID,"
        "Calling Authentication Value,User Information\tT\t-\t-\t.123.4\t.123.8437\t-\t-\tC1222"
        "\t\\x03\t\\x03",
    ],
    "c1222_authentication_value": [
        "C12.22\tF\t-\t2\t1223938145\t-\t-\t-",
        "C12.22\tF\t-\t2\t1223938144\t-\t-\t-",
    ],
    "c1222_user_information": [
        "-\t(empty)\t0x99c5d4e8\tRESPONSE_CONTROL_ALWAYS_RESPOND,"
        "SECURITY_MODE_CIPHERTEXT_WITH_AUTHENTICATION\t-\tA\\xd1\\x0c\\xdav h\\x11\\xb3ox\\x14\\x89"
        "\\xa1\\x19\\x97w>\\x11|\\xb0z\\xa3\\xaa@7Jq\\x07\\xc5\\x0d\\xa7\\xf7\t-",
        "-\t(empty)\t0x334cb268\tRESPONSE_CONTROL_ALWAYS_RESPOND,"
        "SECURITY_MODE_CIPHERTEXT_WITH_AUTHENTICATION\t-\tK\\xae\\xe44\\x961\\xab^V\\xa0\\xe6\\xe0"
        "\\xe9\\x0d\\xfa\\xd5XY\\x1e\\xe4\\xea\t-",
    ],
}


def test_example8_secured_rows_match_icsnpp() -> None:
    from amidcc.pcap.packets import Segment

    analyzer = CaptureAnalyzer()  # no keys: ICSNPP does not decrypt either
    client, meter = bytes((10, 2, 2, 2)), bytes((10, 1, 1, 1))
    records = []
    for n, (src, dst, sport, dport) in enumerate(
        [(client, meter, 50000, 1153), (meter, client, 1153, 50000)]
    ):
        apdu = bytes.fromhex(EXAMPLE8[n])
        segment = Segment(proto="tcp", src=src, dst=dst, sport=sport, dport=dport, payload=apdu,
                          seq=1, flags=0x18)  # fmt: skip
        records += analyzer.feed_segment(float(n), segment)
    assert [r.orig_h for r in records] == ["10.2.2.2", "10.2.2.2"]
    for log, expected in EXAMPLE8_ROWS.items():
        ours = [
            "\t".join(zeek_text(row[c]) for c in LOG_COLUMNS[log])
            for record in records
            for name, row in log_rows(record)
            if name == log
        ]
        assert ours == expected, log


def test_example8_decrypts_and_matches_with_the_key() -> None:
    from amidcc.codecs import psem
    from amidcc.pcap.packets import Segment
    from amidcc.pcap.records import SecurityStatus

    key = bytes.fromhex("01020304050607080102030405060708")  # example 8, key id 2 (S3)
    analyzer = CaptureAnalyzer(keys={2: key})
    a, b = bytes((10, 2, 2, 2)), bytes((10, 1, 1, 1))
    records = analyzer.feed_segment(0.0, Segment(proto="tcp", src=a, dst=b, sport=50000, dport=1153,
                                                 payload=bytes.fromhex(EXAMPLE8[0]), seq=1, flags=0x18))  # fmt: skip
    records += analyzer.feed_segment(0.5, Segment(proto="tcp", src=b, dst=a, sport=1153, dport=50000,
                                                  payload=bytes.fromhex(EXAMPLE8[1]), seq=1, flags=0x18))  # fmt: skip
    request, response = records
    assert request.security is response.security is SecurityStatus.DECRYPTED
    assert [s.decoded for s in request.services] == [
        psem.Security(password=b"PASSWORD" + b" " * 12, user_id=2),
        psem.PartialReadOffset(table_id=1, offset=16, octet_count=16),
    ]
    assert response.answers == 0 and response.latency == 0.5
    assert response.services[0].decoded == psem.ReadResponse(data=b"MANUFACTURER SN ")
    c1222 = dict(log_rows(response))["c1222"]
    assert c1222["services"] == ["RESP:OK"] and c1222["is_encrypted_epsem"] is True
    by_name = {s.name: s for s in analyzer.summary().services}
    assert by_name["Partial Read Offset"].responses == 1 and by_name["Security"].responses == 0
    assert by_name["Security"].unanswered == 0  # answered by the same message
