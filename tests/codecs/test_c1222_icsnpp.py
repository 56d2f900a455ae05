"""The ICSNPP C12.22 captures and their Zeek baselines (S8; ../shared/vectors/icsnpp-c1222).

Every TCP payload of every capture goes through the TCP framer and the decoder, and the ACSE/EPSEM
columns of ``c1222.log`` and ``c1222_user_information.log`` must match the baseline field by field.

The service-level columns (``services`` in both logs and the per-service logs: identification,
logon/security, read/write, wait, dereg/reg, trace) are checked by ``tests/pcap/
test_icsnpp_baselines.py`` through the capture analyser, and the PSEM bodies by
``tests/codecs/test_psem_vectors.py``; here they are left out (``SERVICE_COLUMNS``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from amidcc.codecs.ber import encode_integer, format_oid
from amidcc.codecs.c1222 import (
    C1222Message,
    Element,
    SecurityMode,
    decode_message,
)
from amidcc.codecs.c1222.epsem import Epsem

from ..icsnpp import capture_apdus

CAPTURES = ["ident", "logon", "reg", "rw", "security", "trace", "wait"]

# ICSNPP's names (scripts/c1222_enums.zeek, ASCE_ELEMENT_TAGS).
ELEMENT_NAMES = {
    Element.ASO_CONTEXT: "Application Context",
    Element.CALLED_AP_TITLE: "Called AP Title",
    Element.CALLED_AP_INVOCATION_ID: "Called AP Invocation ID",
    Element.CALLING_AP_TITLE: "Calling AP Title",
    Element.CALLING_AE_QUALIFIER: "Calling Application Entity Qualifier",
    Element.CALLING_AP_INVOCATION_ID: "Calling AP Invocation ID",
    Element.CALLING_AUTHENTICATION: "Calling Authentication Value",
    Element.MECHANISM_NAME: "Mechanism Name",
    Element.USER_INFORMATION: "User Information",
}
CONN_COLUMNS = ["orig_h", "orig_p", "resp_h", "resp_p", "proto"]
C1222_COLUMNS = [
    *CONN_COLUMNS,
    *"elements is_encrypted_epsem services aso_context called_ap_title calling_ap_title".split(),
    *"calling_ae_qualifier mechanism_name calling_auth_value".split(),
    *"called_ap_invocation_id calling_ap_invocation_id".split(),
]
USER_INFO_COLUMNS = [
    *CONN_COLUMNS,
    *"indirect_reference_encoding padding mac epsem_control ed_class encrypted_epsem".split(),
    "services",
]
SERVICE_COLUMNS = {"services"}  # checked in tests/pcap/test_icsnpp_baselines.py


def decode_capture(pcap: Path) -> list[tuple[tuple[str, int, str, int], C1222Message]]:
    """Every APDU of the capture, decoded."""
    return [(flow, decode_message(apdu)) for flow, apdu in capture_apdus(pcap)]


# --- Zeek rendering of our decode ------------------------------------------------------------------


def zeek_bytes(raw: bytes) -> str:
    """Zeek's log escaping of a binary string: printable ASCII as is, the rest as \\xNN."""
    return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in raw)


def _opt(value: str | None) -> str:
    return "-" if value is None else value


def epsem_control_names(epsem: Epsem) -> str:
    """ICSNPP's rendering of the EPSEM control byte (scripts/c1222_processing.zeek)."""
    names = [
        "RESPONSE_CONTROL_"
        + ("ALWAYS_RESPOND", "RESPOND_ON_EXCEPTION", "NEVER_RESPOND")[epsem.response_control],
        "SECURITY_MODE_"
        + ("CLEARTEXT", "CLEARTEXT_WITH_AUTHENTICATION", "CIPHERTEXT_WITH_AUTHENTICATION")[
            epsem.security_mode
        ],
    ]
    if epsem.ed_class_included:
        names.append("ED_CLASS_INCLUDED")
    if epsem.proxy:
        names.append("PROXY_SERVICE_USED")
    if epsem.recovery:
        names.append("RECOVERY_SESSION")
    return ",".join(names)


def c1222_row(message: C1222Message) -> dict[str, str]:
    apdu = message.apdu
    auth = apdu.calling_authentication
    # Invocation ids: ICSNPP logs the INTEGER content octets (the captures use minimal encodings).
    a4 = apdu.called_ap_invocation_id
    return {
        "elements": ",".join(ELEMENT_NAMES[Element(tag)] for tag, _ in apdu.wire_elements),
        "is_encrypted_epsem": "T" if message.encrypted else "F",
        "aso_context": _opt(None if apdu.aso_context is None else format_oid(apdu.aso_context)),
        "called_ap_title": str(apdu.called_ap_title),
        "calling_ap_title": _opt(
            None if apdu.calling_ap_title is None else str(apdu.calling_ap_title)
        ),
        "calling_ae_qualifier": _opt(
            None if apdu.calling_ae_qualifier is None else str(int(apdu.calling_ae_qualifier))
        ),
        "mechanism_name": _opt(None if apdu.mechanism_name is None else apdu.mechanism_name.hex()),
        "calling_auth_value": _opt(
            None if auth is None else ("C1222" if auth.key_id is not None else "C1221")
        ),
        "called_ap_invocation_id": _opt(None if a4 is None else zeek_bytes(encode_integer(a4))),
        "calling_ap_invocation_id": zeek_bytes(encode_integer(apdu.calling_ap_invocation_id)),
    }


def user_info_row(message: C1222Message) -> dict[str, str]:
    info = message.apdu.user_information
    epsem = message.epsem
    assert epsem is not None  # the captures are cleartext
    secured = message.security_mode is not SecurityMode.CLEARTEXT
    return {
        "indirect_reference_encoding": _opt(
            None if info.indirect_reference is None else str(info.indirect_reference)
        ),
        "padding": "(empty)" if secured else "-",
        "mac": _opt(None if epsem.mac is None else "0x" + epsem.mac.hex()),
        "epsem_control": epsem_control_names(epsem),
        "ed_class": _opt(None if epsem.ed_class is None else zeek_bytes(epsem.ed_class)),
        "encrypted_epsem": _opt(zeek_bytes(info.epsem[1:-4]) if message.encrypted else None),
    }


def read_log(path: Path, columns: list[str]) -> list[dict[str, str]]:
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line:
            continue
        fields = line.split("\t")
        assert len(fields) == len(columns), f"{path}: {line!r}"
        rows.append(dict(zip(columns, fields, strict=True)))
    return rows


@pytest.mark.parametrize("capture", CAPTURES)
def test_capture_matches_baseline(shared_vectors: Path, capture: str) -> None:
    folder = shared_vectors / "icsnpp-c1222"
    messages = decode_capture(folder / f"c1222_{capture}_service_tcp.pcap")
    assert len(messages) == 2  # one request, one response
    originator = messages[0][0]
    baseline = folder / "baseline" / f"{capture}_service_tcp"
    for log, columns, render in [
        ("c1222.log", C1222_COLUMNS, c1222_row),
        ("c1222_user_information.log", USER_INFO_COLUMNS, user_info_row),
    ]:
        expected = read_log(baseline / log, columns)
        assert len(expected) == len(messages)
        for row, (_, message) in zip(expected, messages, strict=True):
            # Zeek logs the connection's originator on every line, whichever side sent it.
            conn = (row["orig_h"], int(row["orig_p"]), row["resp_h"], int(row["resp_p"]))
            assert conn == originator and row["proto"] == "tcp"
            ours = render(message)
            for column in columns[len(CONN_COLUMNS) :]:
                if column in SERVICE_COLUMNS:
                    continue
                assert ours[column] == row[column], f"{capture} {log} {column}"
