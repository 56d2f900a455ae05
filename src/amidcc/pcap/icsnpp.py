"""Messages as the rows of the ICSNPP C12.22 Zeek logs, so amidcc's decode compares column by column.

ICSNPP (INL/CISA's Zeek parser, S8) writes one ``c1222.log`` and one ``c1222_user_information.log``
row per APDU, one ``c1222_authentication_value.log`` row per APDU with a calling authentication
value, and one row per service in the per-service logs. :func:`log_rows` produces the same rows
from a :class:`~.records.MessageRecord` as typed values (None = absent, bool, int, str, list);
:func:`zeek_text` renders a value the way Zeek's TSV writer does (``-``, ``(empty)``, ``T``/``F``,
comma-joined vectors, binary strings with ``\\xNN`` escapes); :func:`json_record` builds the
object ``amidcc pcap analyze --json`` prints. Column names and value spellings follow ICSNPP's
scripts (``c1222_processing.zeek``, ``c1222_enums.zeek``) and the shared baselines.

Where amidcc reads more than ICSNPP does, it says so rather than copy a limitation: decrypted
services are listed when keys were given (ICSNPP never decrypts), and request codes that ICSNPP
lists as "Unknown Code" (Authenticate 53, Negotiate 60-6B, Timing Setup 71) are named.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any, TypeAlias

from amidcc.codecs import psem
from amidcc.codecs.ber import decode_arcs, decode_length, decode_oid, encode_integer, format_oid
from amidcc.codecs.c1222 import AeQualifier, C1222Message, Element, SecurityMode
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.errors import CodecError

from .records import MessageRecord, ServiceRecord

__all__ = [
    "CONN_COLUMNS",
    "LOG_COLUMNS",
    "Row",
    "Value",
    "json_record",
    "log_rows",
    "service_label",
    "zeek_bytes",
    "zeek_text",
]

Value: TypeAlias = None | bool | int | str | list[str] | list[int]
Row: TypeAlias = dict[str, Value]

#: The connection columns every log starts with (ts and uid left out, as in the baselines).
CONN_COLUMNS = ("orig_h", "orig_p", "resp_h", "resp_p", "proto")

#: Log name -> its own columns, in order (the shared vectors' README and ICSNPP's types).
LOG_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "c1222": (
        "elements", "is_encrypted_epsem", "services", "aso_context", "called_ap_title",
        "calling_ap_title", "calling_ae_qualifier", "mechanism_name", "calling_auth_value",
        "called_ap_invocation_id", "calling_ap_invocation_id",
    ),
    "c1222_authentication_value": (
        "authentication_mechanism", "indirect_reference", "octet_aligned", "c1222_key_id",
        "c1222_iv", "c1221_ident", "c1221_req", "c1221_resp",
    ),
    "c1222_user_information": (
        "indirect_reference_encoding", "padding", "mac", "epsem_control", "ed_class",
        "encrypted_epsem", "services",
    ),
    "c1222_identification_service": (
        "req_resp", "standard", "version", "revision", "security_mechanism",
        "nbr_session_supported", "sessionless_supported", "device_class",
        "device_identity_format", "device_identity",
    ),
    "c1222_read_write_service": (
        "req_resp", "service_type", "table_id", "offset", "index", "element_count", "count_m",
        "data", "chksum", "octet_count",
    ),
    "c1222_logon_security_service": (
        "req_resp", "service_type", "user_id", "password", "user", "session_idle_timeout",
    ),
    "c1222_wait_service": ("req_resp", "time_s"),
    "c1222_dereg_reg_service": (
        "req_resp", "service_type", "node_type", "connection_type", "device_class", "ap_title",
        "electronic_serial_number", "native_address", "notification_pattern", "reg_period",
        "reg_delay", "reg_info",
    ),
    "c1222_resolve_service": ("req_resp", "ap_title", "local_address"),
    "c1222_trace_service": ("req_resp", "ap_titles"),
    "c1222_service_error": (
        "service", "error_code", "rqtl_max_request_size", "rstl_max_response_size", "sigerr_resp",
    ),
}  # fmt: skip

_MESSAGE_LOGS = ("c1222", "c1222_authentication_value", "c1222_user_information")

_ELEMENT_NAMES: dict[int, str] = {
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


def _request_labels() -> dict[int, str]:
    labels = {
        0x20: "Ident", 0x21: "Terminate", 0x22: "Disconnect", 0x24: "Deregister",
        0x25: "Resolve", 0x26: "Trace", 0x27: "Register", 0x30: "Full Read",
        0x3E: "Partial Read Default", 0x3F: "Partial Read Offset", 0x40: "Full Write",
        0x4F: "Partial Write Offset", 0x50: "Logon", 0x51: "Security", 0x52: "Logoff",
        0x70: "Wait",
        # Not in ICSNPP's table (it prints "Unknown Code"); named here.
        0x53: "Authenticate", 0x71: "Timing Setup",
    }  # fmt: skip
    for n in range(1, 10):
        labels[0x30 + n] = f"Partial Read {n}"
        labels[0x40 + n] = f"Partial Write {n}"
    for n in range(12):
        labels[0x60 + n] = "Negotiate"
    return {code: f"REQ:{name}" for code, name in labels.items()}


_REQUEST_LABELS = _request_labels()


def service_label(code: int) -> str:
    """ICSNPP's name of a service code: ``REQ:Ident``, ``REQ:Partial Read 1``, ``RESP:OK``..."""
    if code < 0x20:
        try:
            return f"RESP:{ResponseCode(code).name}"
        except ValueError:
            return "Unknown Code"
    return _REQUEST_LABELS.get(code, "Unknown Code")


# --- Zeek value rendering -------------------------------------------------------------------------


# Byte value -> its escape, for the bytes Zeek escapes (str.translate does the loop in C).
_ZEEK_ESCAPES = {b: f"\\x{b:02x}" for b in range(256) if not 0x20 <= b < 0x7F or b == 0x5C}


def zeek_bytes(raw: bytes) -> str:
    """Zeek's escaping of a binary string: printable ASCII as is, the rest (and ``\\``) as \\xNN."""
    return bytes(raw).decode("latin-1").translate(_ZEEK_ESCAPES)


def zeek_text(value: Value) -> str:
    """One value as Zeek's TSV writer prints it."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, list):
        return ",".join(zeek_text(v) for v in value) if value else "(empty)"
    text = str(value)
    return text if text else "(empty)"


#: The Register flag bits ICSNPP names otherwise than :mod:`amidcc.codecs.psem` does.
_ICSNPP_FLAG_NAMES: Mapping[str, str] = {
    "MY_DOMAIN_PATTERN": "MY_DOMAIN_PATTERN_FLAG",  # NodeType bit 7
    "MESSAGE_ACCEPTANCE_WINDOW": "MESSAGE_ACCEPT_WINDOW",  # ConnectionType bit 1
}


def _flags(value: int, flag_type: type[enum.IntFlag]) -> list[str]:
    """ICSNPP's names of the set bits, lowest first (ICSNPP's order)."""
    names = (m.name for m in flag_type if m.value & value and m.name is not None)
    return [_ICSNPP_FLAG_NAMES.get(name, name) for name in names]


# --- the per-message logs -------------------------------------------------------------------------


def _integer_content(raw_element: bytes) -> bytes:
    """The INTEGER content octets of an ``A4``/``A8`` element as received (``Ax L 02 L <int>``)."""
    outer = decode_length(raw_element, 1)
    assert outer is not None
    inner = decode_length(raw_element, outer[1] + 1)
    assert inner is not None
    return raw_element[inner[1] : inner[1] + inner[0]]


def _invocation_id(message: C1222Message, tag: Element, value: int | None) -> str | None:
    if value is None:
        return None
    for wire_tag, raw in message.apdu.wire_elements:
        if wire_tag == tag:
            return zeek_bytes(_integer_content(raw))
    return zeek_bytes(encode_integer(value))


def _ae_qualifier(bits: AeQualifier | None) -> list[str] | None:
    if bits is None:
        return None
    names = [
        name for flag, name in ((1, "TEST"), (2, "URGENT"), (4, "NOTIFICATION")) if bits & flag
    ]
    if int(bits) >> 3:  # [?] ICSNPP's condition for printing the reserved bits is unverified
        names.append(f"RESERVED int:{int(bits) >> 3}")
    return names


def _tlv(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at ``pos``; raises CodecError when cut."""
    decoded = decode_length(buf, pos + 1)
    if decoded is None or decoded[0] + decoded[1] > len(buf):
        raise CodecError("truncated TLV")
    return buf[pos], decoded[1], decoded[1] + decoded[0]


def _auth_row(message: C1222Message) -> Row | None:
    """The ``c1222_authentication_value`` row (None when the APDU has no AC)."""
    auth = message.apdu.calling_authentication
    if auth is None:
        return None
    row: Row = dict.fromkeys(LOG_COLUMNS["c1222_authentication_value"])
    if auth.key_id is not None and auth.iv is not None:
        row.update(
            authentication_mechanism="C12.22", indirect_reference=auth.indirect_reference == 0,
            c1222_key_id=auth.key_id, c1222_iv=int.from_bytes(auth.iv, "big"),
        )  # fmt: skip
        return row
    row.update(_raw_auth(auth.raw or b""))
    return row


def _raw_auth(raw: bytes) -> Row:
    """The other AC forms: C12.21 (``A0 [80|81|82]``), octet-aligned (``81``), unknown."""
    try:
        tag, start, end = _tlv(raw, 0)
        pos, reference = start, False
        if raw[pos : pos + 3] == b"\x02\x01\x00":
            pos, reference = pos + 3, True
        tag, start, end = _tlv(raw, pos)
        if tag == 0x81:
            return {"authentication_mechanism": "OCTET_ALINGED", "indirect_reference": reference,
                    "octet_aligned": zeek_bytes(raw[start:end])}  # fmt: skip
        if tag != 0xA0:
            return {"authentication_mechanism": "UNKNOWN", "indirect_reference": reference}
        mechanism, m_start, _ = _tlv(raw, start)
        if mechanism != 0xA0:
            return {"authentication_mechanism": "UNIMPLEMENTED", "indirect_reference": reference}
        kind, k_start, k_end = _tlv(raw, m_start)
        column = {0x80: "c1221_ident", 0x81: "c1221_req", 0x82: "c1221_resp"}.get(kind)
        row: Row = {"authentication_mechanism": "C12.21", "indirect_reference": reference}
        if column is not None:
            row[column] = zeek_bytes(raw[k_start:k_end])
        return row
    except (CodecError, IndexError):
        return {"authentication_mechanism": "UNKNOWN"}


def _auth_label(message: C1222Message) -> str | None:
    """The ``calling_auth_value`` column: C1222, C1221, Unimplemented, OCTET or Unknown."""
    row = _auth_row(message)
    if row is None:
        return None
    return {
        "C12.22": "C1222", "C12.21": "C1221", "UNIMPLEMENTED": "Unimplemented",
        "OCTET_ALINGED": "OCTET",
    }.get(str(row["authentication_mechanism"]), "Unknown")  # fmt: skip


def _services_column(record: MessageRecord) -> list[str] | None:
    if record.message is None or record.message.epsem is None:
        return None
    return [service_label(raw[0]) for raw in record.message.epsem.services]


def _c1222_row(record: MessageRecord, message: C1222Message) -> Row:
    apdu = message.apdu
    mechanism = None
    if apdu.mechanism_name is not None:
        try:
            mechanism = format_oid(decode_oid(apdu.mechanism_name))
        except CodecError:
            mechanism = zeek_bytes(apdu.mechanism_name)
    calling = apdu.calling_ap_title
    return {
        "elements": [_ELEMENT_NAMES.get(tag, "Unknown Element") for tag, _ in apdu.wire_elements],
        "is_encrypted_epsem": message.security_mode is SecurityMode.CIPHERTEXT,
        "services": _services_column(record),
        "aso_context": None if apdu.aso_context is None else format_oid(apdu.aso_context),
        "called_ap_title": str(apdu.called_ap_title),
        "calling_ap_title": None if calling is None else str(calling),
        "calling_ae_qualifier": _ae_qualifier(apdu.calling_ae_qualifier),
        "mechanism_name": mechanism,
        "calling_auth_value": _auth_label(message),
        "called_ap_invocation_id": _invocation_id(
            message, Element.CALLED_AP_INVOCATION_ID, apdu.called_ap_invocation_id
        ),
        "calling_ap_invocation_id": _invocation_id(
            message, Element.CALLING_AP_INVOCATION_ID, apdu.calling_ap_invocation_id
        ),
    }  # fmt: skip


def _epsem_control(control: int) -> list[str]:
    """ICSNPP's rendering of the EPSEM control byte (c1222_processing.zeek)."""
    names = []
    response = ("ALWAYS_RESPOND", "RESPOND_ON_EXCEPTION", "NEVER_RESPOND")
    if control & 0x03 < 3:
        names.append("RESPONSE_CONTROL_" + response[control & 0x03])
    modes = ("CLEARTEXT", "CLEARTEXT_WITH_AUTHENTICATION", "CIPHERTEXT_WITH_AUTHENTICATION")
    if (control >> 2) & 0x03 < 3:
        names.append("SECURITY_MODE_" + modes[(control >> 2) & 0x03])
    for bit, name in (
        (0x10, "ED_CLASS_INCLUDED"),
        (0x20, "PROXY_SERVICE_USED"),
        (0x40, "RECOVERY_SESSION"),
    ):
        if control & bit:
            names.append(name)
    return names


def _user_information_row(record: MessageRecord, message: C1222Message) -> Row:
    info = message.apdu.user_information
    wire = info.epsem  # as received: ciphertext in mode 2
    control = wire[0] if wire else 0
    secured = message.security_mode not in (None, SecurityMode.CLEARTEXT)
    footer = message.apdu.calling_authentication is not None
    ed_class = None
    if control & 0x10 and message.security_mode is not SecurityMode.CIPHERTEXT and len(wire) >= 5:
        ed_class = zeek_bytes(wire[1:5])
    return {
        "indirect_reference_encoding": info.indirect_reference,
        "padding": "" if footer else None,
        "mac": "0x" + wire[-4:].hex() if footer and secured and len(wire) >= 5 else None,
        "epsem_control": _epsem_control(control),
        "ed_class": ed_class,
        "encrypted_epsem": zeek_bytes(wire[1:-4]) if message.encrypted else None,
        "services": _services_column(record),
    }


# --- the per-service logs -------------------------------------------------------------------------


def _groups(buf: bytes, pos: int) -> tuple[list[int], list[str], list[int]]:
    """``<count> <data> <cksum>`` groups (FFFF chains another): counts, data, checksums."""
    counts: list[int] = []
    data: list[str] = []
    sums: list[int] = []
    while pos + 2 <= len(buf):
        count = int.from_bytes(buf[pos : pos + 2], "big")
        end = pos + 2 + count
        if end >= len(buf):
            break
        counts.append(count)
        data.append(zeek_bytes(buf[pos + 2 : end]))
        sums.append(buf[end])
        pos = end + 1
        if count != psem.primitives.CHAIN_COUNT:
            break
    return counts, data, sums


def _row(log: str, **values: Value) -> tuple[str, Row]:
    row: Row = dict.fromkeys(LOG_COLUMNS[log])
    row.update(values)
    return log, row


def _read_write_request(req: psem.Request, raw: bytes) -> tuple[str, Row] | None:
    log = "c1222_read_write_service"
    if isinstance(req, psem.FullRead):
        return _row(log, req_resp="Req", service_type="full-read", table_id=req.table_id)
    if isinstance(req, psem.DefaultRead):
        return _row(log, req_resp="Req", service_type="pread-default")
    if isinstance(req, psem.PartialReadIndex):
        return _row(log, req_resp="Req", service_type="pread", table_id=req.table_id,
                    index=_dotted(req.indices), element_count=req.element_count)  # fmt: skip
    if isinstance(req, psem.PartialReadOffset):
        return _row(log, req_resp="Req", service_type="pread-offset", table_id=req.table_id,
                    offset=req.offset, octet_count=req.octet_count)  # fmt: skip
    extra: Row = {}
    if isinstance(req, psem.FullWrite):
        kind, start = "full-write", 3
    elif isinstance(req, psem.PartialWriteIndex):
        kind, start, extra = "pwrite", 3 + 2 * len(req.indices), {"index": _dotted(req.indices)}
    elif isinstance(req, psem.PartialWriteOffset):
        kind, start, extra = "pwrite-offset", 6, {"offset": req.offset}
    else:
        return None
    counts, data, sums = _groups(raw, start)
    return _row(log, req_resp="Req", service_type=kind, table_id=req.table_id,
                count_m=counts, data=data, chksum=sums, **extra)  # fmt: skip


def _dotted(indices: tuple[int, ...]) -> str:
    """ICSNPP writes an index path as ``3.1.1``."""
    return ".".join(str(i) for i in indices)


def _register_request(req: psem.Register) -> tuple[str, Row]:
    try:
        device_class = format_oid(decode_arcs(req.device_class), relative=True)
    except CodecError:
        device_class = zeek_bytes(req.device_class)
    return _row(
        "c1222_dereg_reg_service", req_resp="Req", service_type="register_req",
        node_type=_flags(req.node_type, psem.NodeType),
        connection_type=_flags(req.connection_type, psem.ConnectionType),
        device_class=device_class, ap_title=str(req.ap_title),
        electronic_serial_number=str(req.electronic_serial_number),
        native_address=zeek_bytes(req.native_address),
        notification_pattern=None if req.my_domain_pattern is None else zeek_bytes(req.my_domain_pattern),
        reg_period=req.registration_period,
    )  # fmt: skip


def _request_row(service: ServiceRecord) -> tuple[str, Row] | None:
    req = service.decoded
    if not isinstance(req, psem.Request):
        return None
    if isinstance(req, psem.Identify):
        return _row("c1222_identification_service", req_resp="Req")
    if isinstance(req, psem.Logon):
        return _row("c1222_logon_security_service", req_resp="Req", service_type="Logon",
                    user_id=req.user_id, user=zeek_bytes(req.user),
                    session_idle_timeout=req.session_idle_timeout)  # fmt: skip
    if isinstance(req, psem.Security):
        return _row("c1222_logon_security_service", req_resp="Req", service_type="Security",
                    password=zeek_bytes(req.password), user_id=req.user_id)  # fmt: skip
    if isinstance(req, psem.Wait):
        return _row("c1222_wait_service", req_resp="Req", time_s=req.seconds)
    if isinstance(req, psem.Register):
        return _register_request(req)
    if isinstance(req, psem.Deregister):
        return _row("c1222_dereg_reg_service", req_resp="Req", service_type="deregister_req",
                    ap_title=str(req.ap_title))  # fmt: skip
    if isinstance(req, psem.Resolve):
        return _row("c1222_resolve_service", req_resp="Req", ap_title=str(req.ap_title))
    if isinstance(req, psem.Trace):
        return _row("c1222_trace_service", req_resp="Req", ap_titles=[str(req.ap_title)])
    return _read_write_request(req, service.raw)


def _identify_response(resp: psem.IdentifyResponse) -> tuple[str, Row]:
    standards = {0: "ANSI C12.18", 2: "ANSI C12.21", 3: "ANSI C12.22"}
    row: Row = {"req_resp": "Resp", "standard": standards.get(resp.std, "RESERVED"),
                "version": resp.version, "revision": resp.revision}  # fmt: skip
    for feature in resp.features:
        if isinstance(feature, psem.SecurityMechanismFeature):
            row["security_mechanism"] = str(feature.mechanism)
        elif isinstance(feature, psem.SessionControlFeature):
            row["nbr_session_supported"] = feature.nbr_sessions != 0
            row["sessionless_supported"] = feature.sessionless
        elif isinstance(feature, psem.DeviceClassFeature):
            row["device_class"] = str(feature.device_class)
        elif isinstance(feature, psem.DeviceIdentityFeature):
            row["device_identity_format"] = feature.format
            row["device_identity"] = zeek_bytes(feature.identity)
    return _row("c1222_identification_service", **row)


def _nok_rows(service: ServiceRecord, nok: psem.NokResponse) -> list[tuple[str, Row]]:
    code = nok.code
    rows = [_row(
        "c1222_service_error",
        service=None if service.request_code is None else service_label(service.request_code),
        error_code=service_label(code),
        rqtl_max_request_size=nok.max_size if code == 0x0F else None,
        rstl_max_response_size=nok.max_size if code == 0x10 else None,
        sigerr_resp=zeek_bytes(nok.detail) if code == 0x12 else None,
    )]  # fmt: skip
    if isinstance(service.request, psem.Trace) and code != 0x12 and nok.detail:
        titles, pos = [], 0
        try:
            while pos < len(nok.detail):
                title, pos = psem.decode_universal_id(nok.detail, pos, "trace")
                titles.append(str(title))
        except CodecError:
            pass
        rows.append(_row("c1222_trace_service", req_resp="Resp", ap_titles=titles))
    return rows


def _response_rows(service: ServiceRecord) -> list[tuple[str, Row]]:
    resp, req = service.decoded, service.request
    if isinstance(resp, psem.NokResponse):
        return _nok_rows(service, resp)
    if isinstance(resp, psem.IdentifyResponse):
        return [_identify_response(resp)]
    if isinstance(resp, psem.ReadResponse):
        counts, data, sums = _groups(service.raw, 1)
        return [_row("c1222_read_write_service", req_resp="Resp", service_type="readresp-ok",
                     count_m=counts, data=data, chksum=sums)]  # fmt: skip
    if isinstance(resp, psem.LogonResponse):
        return [_row("c1222_logon_security_service", req_resp="Resp", service_type="Logon",
                     session_idle_timeout=resp.session_idle_timeout)]  # fmt: skip
    if isinstance(resp, psem.RegisterResponse):
        return [_row("c1222_dereg_reg_service", req_resp="Resp", service_type="register_resp_ok",
                     ap_title=str(resp.ap_title), reg_delay=resp.reg_delay,
                     reg_period=resp.reg_period, reg_info=_flags(resp.reg_info, psem.RegInfo))]  # fmt: skip
    if isinstance(resp, psem.ResolveResponse):
        return [_row("c1222_resolve_service", req_resp="Resp",
                     local_address=zeek_bytes(resp.local_address))]  # fmt: skip
    if isinstance(resp, psem.TraceResponse):
        return [
            _row("c1222_trace_service", req_resp="Resp", ap_titles=[str(t) for t in resp.ap_titles])
        ]
    if isinstance(resp, psem.OkResponse):
        if isinstance(req, psem.Security):
            return [_row("c1222_logon_security_service", req_resp="Resp", service_type="Security")]
        if isinstance(req, psem.Wait):
            return [_row("c1222_wait_service", req_resp="Resp")]
        if isinstance(req, psem.Deregister):
            return [
                _row("c1222_dereg_reg_service", req_resp="Resp", service_type="deregister_resp_ok")
            ]
    return []


def log_rows(record: MessageRecord) -> list[tuple[str, Row]]:
    """Every ICSNPP log row this message produces, as ``(log name, {column: value})``.

    The connection columns are left out (they are the record's ``orig_h`` ... ``proto``). A
    malformed APDU produces no row.
    """
    message = record.message
    if message is None:
        return []
    rows: list[tuple[str, Row]] = [("c1222", _c1222_row(record, message))]
    auth = _auth_row(message)
    if auth is not None:
        rows.append(("c1222_authentication_value", auth))
    rows.append(("c1222_user_information", _user_information_row(record, message)))
    for service in record.services:
        if service.is_request:
            row = _request_row(service)
            rows.extend(() if row is None else (row,))
        else:
            rows.extend(_response_rows(service))
    return rows


# --- JSON -----------------------------------------------------------------------------------------


def _field_names(cls: type) -> tuple[str, ...] | None:
    """A dataclass's field names (None for other types), once per type."""
    try:
        return _FIELD_NAMES[cls]
    except KeyError:
        names = tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else None
        _FIELD_NAMES[cls] = names
        return names


_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def _jsonable(value: Any) -> Any:
    """Dataclasses to dicts (with their type), bytes to hex, enums to names."""
    names = None if isinstance(value, type) else _field_names(type(value))
    if names is not None:
        out = {"type": type(value).__name__}
        out.update({name: _jsonable(getattr(value, name)) for name in names})
        return out
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _service_json(service: ServiceRecord) -> dict[str, Any]:
    return {
        "code": service.code,
        "label": service_label(service.code),
        "name": psem.service_name(service.decoded) if service.decoded is not None else None,
        "decoded": _jsonable(service.decoded),
        "error": service.error,
    }


def json_record(record: MessageRecord) -> dict[str, Any]:
    """The ``--json`` object of one message: ICSNPP's columns, then amidcc's own view.

    Top level: ``ts``, ``uid``, the connection columns, and the columns of ``c1222.log``,
    ``c1222_user_information.log`` and ``c1222_authentication_value.log`` (null when absent).
    ``service_logs`` lists the per-service rows, each with its ``log`` name. ``amidcc`` holds what
    ICSNPP has no column for: direction, kind, security, matching and latency, errors, the APDU in
    hex and every service decoded.
    """
    obj: dict[str, Any] = {
        "ts": record.ts, "uid": f"C{record.conversation}", "orig_h": record.orig_h,
        "orig_p": record.orig_p, "resp_h": record.resp_h, "resp_p": record.resp_p,
        "proto": record.proto,
    }  # fmt: skip
    for log in _MESSAGE_LOGS:
        obj.update(dict.fromkeys(LOG_COLUMNS[log]))
    service_logs = []
    for log, row in log_rows(record):
        if log in _MESSAGE_LOGS:
            obj.update(row)
        else:
            service_logs.append({"log": log, **row})
    obj["service_logs"] = service_logs
    message = record.message
    obj["amidcc"] = {
        "index": record.index, "is_orig": record.is_orig, "kind": record.kind.value,
        "security": None if record.security is None else record.security.value,
        "invocation_id": None if message is None else message.apdu.calling_ap_invocation_id,
        "answers": record.answers, "latency": record.latency, "matched_by": record.matched_by,
        "reassembled": record.reassembled, "error": record.error, "apdu": record.apdu.hex(),
        "services": [_service_json(s) for s in record.services],
    }  # fmt: skip
    return obj
