"""The gateway's configuration: one TOML file, typed and validated when it is loaded.

Each ``[section]`` of the file is one frozen dataclass below; every section and every key is
optional and falls back to the embedded default. A value is checked when the file is read, never
later: a mistake raises :class:`ConfigError` whose message starts with the dotted path of the bad key
(``c1222.listen: not a valid endpoint string: 'tcp:abc'``). Unknown keys and sections are mistakes too.

Durations carry a unit (``500ms``, ``30s``, ``15m``, ``1h``, ``45d``, or combined: ``1h30m``) and are
held as float seconds, the unit the reactor uses. Sizes take ``B``, ``KiB``, ``MiB`` or ``GiB`` (a bare
integer is bytes) and are held as int bytes. Listen addresses are Twisted endpoint strings and bind to
loopback by default. Relative paths are resolved against ``gateway.state_dir`` (see
:meth:`Config.resolve`).

Each setting is declared once, with its kind (how it is parsed and written back) and its help text;
:func:`sample_config` renders the commented sample from those declarations, so the sample, the
defaults and the checks cannot drift apart.
"""

from __future__ import annotations

import ipaddress
import json
import re
import textwrap
import tomllib
import types
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from amidcc.codecs.ber import DEFAULT_BASE_OID, encode_arcs, encode_oid, format_oid, parse_oid
from amidcc.codecs.errors import LocalProtocolError
from amidcc.net.mqtt_config import redact_url

__all__ = [
    "ApiSection",
    "C1222Section",
    "CaptureSection",
    "Config",
    "ConfigError",
    "DiscoverySection",
    "EventsSection",
    "GatewaySection",
    "LoggingSection",
    "MetricsSection",
    "ModbusCollector",
    "ModbusSection",
    "MqttSection",
    "RequestsSection",
    "ScheduleSection",
    "SECTIONS",
    "ThrottleSection",
    "format_duration",
    "format_size",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_size",
    "sample_config",
]

_T = TypeVar("_T")


class ConfigError(ValueError):
    """A configuration mistake; ``key`` is the dotted path of the bad key ("" for the whole file)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}" if key else reason)
        self.key = key
        self.reason = reason


# --------------------------------------------------------------------------------------------------
# Durations and sizes

_DURATION_UNITS = {
    "d": Decimal(86400),
    "h": Decimal(3600),
    "m": Decimal(60),
    "s": Decimal(1),
    "ms": Decimal("0.001"),
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_SIZE_UNITS = {"GiB": 1 << 30, "MiB": 1 << 20, "KiB": 1 << 10, "B": 1}
_SIZE = re.compile(r"(\d+)\s*(B|KiB|MiB|GiB)?")

DAY = 86400.0


def parse_duration(text: str) -> float:
    """``"1h30m"`` -> 5400.0 seconds. Raises ValueError on anything else (bare numbers included)."""
    compact = text.strip()
    if not _DURATION.fullmatch(compact):
        raise ValueError(f"not a duration: {text!r}")
    total = sum(Decimal(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(compact))
    return float(total)


def format_duration(seconds: float) -> str:
    """The shortest exact unit form of ``seconds``: 86400.0 -> ``"1d"``, 1.5 -> ``"1500ms"``."""
    value = Decimal(repr(float(seconds)))
    if value == 0:
        return "0s"
    for unit, size in _DURATION_UNITS.items():
        count = value / size
        if count == count.to_integral_value():
            return f"{int(count)}{unit}"
    return f"{(value * 1000).normalize():f}ms"


def parse_size(value: str | int) -> int:
    """``"64KiB"`` -> 65536; a bare integer is bytes. Raises ValueError on anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"negative size: {value}")
        return value
    match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not a size: {value!r}")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2) or "B"]


def format_size(nbytes: int) -> str:
    """The largest exact binary unit: 65536 -> ``"64KiB"``, 32767 -> ``"32767B"``."""
    for unit, size in _SIZE_UNITS.items():
        if nbytes and nbytes % size == 0:
            return f"{nbytes // size}{unit}"
    return f"{nbytes}B"


# --------------------------------------------------------------------------------------------------
# Kinds: how one setting is read from TOML and written back into the sample


@dataclass(frozen=True)
class Kind(Generic[_T]):
    """Parse a TOML value for the key it sits at (raising :class:`ConfigError`), dump a default."""

    parse: Callable[[object, str], _T]
    dump: Callable[[_T], str]


def _got(value: object) -> str:
    return repr(value)


def _toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _expect_str(value: object, key: str, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"expected {what}, got {_got(value)}")
    return value


def _text(*, empty: bool = False, max_len: int | None = None, what: str = "a string") -> Kind[str]:
    def parse(value: object, key: str) -> str:
        text = _expect_str(value, key, what)
        if not text and not empty:
            raise ConfigError(key, "must not be empty")
        if max_len is not None and len(text.encode()) > max_len:
            raise ConfigError(key, f"longer than {max_len} bytes")
        return text

    return Kind(parse, _toml_str)


def _boolean() -> Kind[bool]:
    def parse(value: object, key: str) -> bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {_got(value)}")
        return value

    return Kind(parse, lambda v: "true" if v else "false")


def _integer(lo: int, hi: int) -> Kind[int]:
    def parse(value: object, key: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(key, f"expected an integer, got {_got(value)}")
        if not lo <= value <= hi:
            raise ConfigError(key, f"must be between {lo} and {hi}, got {value}")
        return value

    return Kind(parse, str)


def _duration(lo: float = 0.0, hi: float | None = None, why: str = "") -> Kind[float]:
    note = f" ({why})" if why else ""

    def parse(value: object, key: str) -> float:
        try:
            seconds = parse_duration(value) if isinstance(value, str) else None
        except ValueError:
            seconds = None
        if seconds is None:
            raise ConfigError(
                key, f"expected a duration like '30s' (ms, s, m, h, d), got {_got(value)}"
            )
        if seconds < lo or (hi is not None and seconds > hi):
            span = (
                f"between {format_duration(lo)} and {format_duration(hi)}"
                if hi is not None
                else f"at least {format_duration(lo)}"
            )
            raise ConfigError(key, f"must be {span}{note}, got {_got(value)}")
        return seconds

    return Kind(parse, lambda v: _toml_str(format_duration(v)))


def _size(lo: int, hi: int, why: str = "") -> Kind[int]:
    note = f" ({why})" if why else ""

    def parse(value: object, key: str) -> int:
        try:
            nbytes = parse_size(value) if isinstance(value, str | int) else None
        except ValueError:
            nbytes = None
        if nbytes is None:
            raise ConfigError(
                key, f"expected a size like '64KiB' (B, KiB, MiB, GiB), got {_got(value)}"
            )
        if not lo <= nbytes <= hi:
            raise ConfigError(
                key,
                f"must be between {format_size(lo)} and {format_size(hi)}{note}, got {_got(value)}",
            )
        return nbytes

    return Kind(parse, lambda v: _toml_str(format_size(v)))


def _choice(*names: str, aliases: Mapping[str, str] | None = None) -> Kind[str]:
    table = {n: n for n in names} | dict(aliases or {})

    def parse(value: object, key: str) -> str:
        numeric = isinstance(value, int) and not isinstance(value, bool)
        text = str(value) if numeric else _expect_str(value, key, "a string")
        if text.lower() not in table:
            raise ConfigError(key, f"expected one of {', '.join(names)}, got {_got(value)}")
        return table[text.lower()]

    return Kind(parse, _toml_str)


def _path() -> Kind[Path]:
    def parse(value: object, key: str) -> Path:
        text = _expect_str(value, key, "a path")
        if not text or "\0" in text:
            raise ConfigError(key, f"not a usable path: {_got(value)}")
        return Path(text)

    return Kind(parse, lambda v: _toml_str(str(v)))


def _optional(kind: Kind[_T]) -> Kind[_T | None]:
    """A setting that may be absent (TOML has no null); None is written as a commented example."""

    def dump(value: _T | None) -> str:
        return "" if value is None else kind.dump(value)

    return Kind(kind.parse, dump)


def _list(kind: Kind[_T], *, unique: bool = True) -> Kind[tuple[_T, ...]]:
    def parse(value: object, key: str) -> tuple[_T, ...]:
        if not isinstance(value, list):
            raise ConfigError(key, f"expected a list, got {_got(value)}")
        items = tuple(kind.parse(v, f"{key}[{i}]") for i, v in enumerate(value))
        for i, item in enumerate(items):
            if unique and item in items[:i]:
                raise ConfigError(f"{key}[{i}]", f"duplicate of an earlier entry: {_got(value[i])}")
        return items

    return Kind(parse, lambda vs: "[" + ", ".join(kind.dump(v) for v in vs) + "]")


# Endpoint strings. Stream endpoints are parsed by Twisted's own parser, against a reactor that is
# never run, so a typo fails at load and not when the service starts; datagram (udp:) endpoints have
# no Twisted parser and are checked here. Port ranges and interface addresses are checked for all.

_PORTED = {"tcp", "tcp6", "ssl", "udp"}


def _endpoint_fields(text: str) -> tuple[str, list[str], dict[str, str]]:
    parts = re.split(r"(?<!\\):", text)
    args = [p for p in parts[1:] if "=" not in p]
    kwargs = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    return parts[0], args, kwargs


def _check_port_and_interface(text: str, key: str, *, client: bool) -> None:
    kind, args, kwargs = _endpoint_fields(text)
    if kind not in _PORTED:
        return
    port = kwargs.get("port") or (args[1] if client and len(args) > 1 else args[0] if args else "")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(key, f"not a valid endpoint string: {text!r} (port must be 0-65535)")
    if client and int(port) == 0:
        raise ConfigError(key, f"not a valid endpoint string: {text!r} (port 0 cannot be dialled)")
    interface = kwargs.get("interface")
    if interface is not None:
        try:
            ipaddress.ip_address(interface.replace("\\:", ":"))
        except ValueError:
            raise ConfigError(
                key,
                f"not a valid endpoint string: {text!r} "
                f"(interface {interface!r} is not an IP address)",
            ) from None


def _parse_with_twisted(text: str, key: str, *, client: bool) -> None:
    from twisted.internet.endpoints import clientFromString, serverFromString
    from twisted.internet.testing import MemoryReactorClock

    parser: Callable[[Any, str], object] = clientFromString if client else serverFromString
    try:
        parser(MemoryReactorClock(), text)  # type: ignore[no-untyped-call]
    except Exception as exc:  # Twisted raises ValueError, TypeError, KeyError... for bad strings
        raise ConfigError(key, f"not a valid endpoint string: {text!r} ({exc})") from None


def _endpoint(*, client: bool = False, datagram: bool = False) -> Kind[str]:
    def parse(value: object, key: str) -> str:
        text = _expect_str(value, key, "an endpoint string like 'tcp:1153:interface=127.0.0.1'")
        if datagram:
            kind, args, kwargs = _endpoint_fields(text)
            if kind != "udp" or len(args) != 1 or set(kwargs) - {"interface"}:
                raise ConfigError(
                    key,
                    f"not a valid endpoint string: {text!r} "
                    "(expected udp:PORT[:interface=ADDRESS])",
                )
        else:
            _parse_with_twisted(text, key, client=client)
        _check_port_and_interface(text, key, client=client)
        return text

    return Kind(parse, _toml_str)


def _oid(*, relative_ok: bool) -> Kind[str]:
    """Dotted OID text, normalised; relative ones (AP titles) start with a dot."""

    def parse(value: object, key: str) -> str:
        text = _expect_str(value, key, "a dotted OID like '.2.1'")
        try:
            arcs, relative = parse_oid(text)
            if relative and not relative_ok:
                raise LocalProtocolError("must be absolute (no leading dot)")
            encode_arcs(arcs) if relative else encode_oid(arcs)
        except LocalProtocolError as exc:
            raise ConfigError(
                key, f"not a valid {'AP title' if relative_ok else 'OID'}: {_got(value)} ({exc})"
            ) from None
        return format_oid(arcs, relative=relative)

    return Kind(parse, _toml_str)


def _trace_target() -> Kind[str]:
    """``"*"``, an AP title (dotted, normalised like :func:`_oid`) or a meter id (no dot)."""
    oid = _oid(relative_ok=True)

    def parse(value: object, key: str) -> str:
        text = _expect_str(value, key, "a dotted OID like '.2.1', a meter id or '*'")
        if text == "*" or (text and "." not in text):
            return text
        return oid.parse(text, key)

    return Kind(parse, _toml_str)


def _mqtt_url() -> Kind[str]:
    def parse(value: object, key: str) -> str:
        text = _expect_str(value, key, "a URL like 'mqtt://127.0.0.1:1883'")
        shown = redact_url(text)  # never echo a password into an error message
        try:
            url = urlsplit(text)
            url.port  # noqa: B018  (raises ValueError on a bad port)
        except ValueError as exc:
            raise ConfigError(key, f"not a valid MQTT URL: {shown!r} ({exc})") from None
        if url.scheme not in ("mqtt", "mqtts") or not url.hostname or url.path not in ("", "/"):
            raise ConfigError(
                key,
                f"not a valid MQTT URL: {shown!r} (expected mqtt://[USER:PASSWORD@]HOST[:PORT] "
                "or mqtts://HOST[:PORT])",
            )
        return text

    return Kind(parse, _toml_str)


def _topic_prefix() -> Kind[str]:
    def parse(value: object, key: str) -> str:
        text = _expect_str(value, key, "an MQTT topic prefix")
        if not text or any(c in text for c in "+#\0") or text.startswith("/") or text.endswith("/"):
            raise ConfigError(
                key,
                f"not a usable MQTT topic prefix: {_got(value)} "
                "(no wildcards, no leading or trailing '/')",
            )
        return text

    return Kind(parse, _toml_str)


def _ip_address() -> Kind[str]:
    def parse(value: object, key: str) -> str:
        text = _expect_str(value, key, "an IP address")
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            raise ConfigError(key, f"not an IP address: {_got(value)}") from None

    return Kind(parse, _toml_str)


def _key_table() -> Kind[Mapping[int, bytes]]:
    """C12.22 keys: ``{ 2 = "0102...0708" }``, key id 0-255 to a 16-byte AES-128 key in hex."""

    def parse(value: object, key: str) -> Mapping[int, bytes]:
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a table of key id = hex key, got {_got(value)}")
        keys: dict[int, bytes] = {}
        for name, hexkey in value.items():
            where = f"{key}.{name}"
            if not name.isdigit() or not 0 <= int(name) <= 255:
                raise ConfigError(where, "key id must be an integer 0-255")
            try:
                raw = bytes.fromhex(_expect_str(hexkey, where, "a hex string"))
            except ValueError:
                raise ConfigError(where, "not a hex string") from None
            if len(raw) != 16:
                raise ConfigError(where, f"AES-128 keys are 16 bytes, got {len(raw)}")
            keys[int(name)] = raw
        return types.MappingProxyType(keys)

    def dump(keys: Mapping[int, bytes]) -> str:
        return (
            "{" + ", ".join(f" {k} = {_toml_str(v.hex())}" for k, v in keys.items()) + " }"
            if keys
            else "{}"
        )

    return Kind(parse, dump)


# --------------------------------------------------------------------------------------------------
# Declaring settings and building sections


def setting(
    kind: Kind[Any], default: Any, doc: str, *, example: str = "", secret: bool = False
) -> Any:
    """Declare one key of a section: its kind, default, help text and, optionally, an example.

    Secrets are left out of ``repr`` so a logged config never shows them.
    """
    meta = {"kind": kind, "doc": doc, "example": example}
    if isinstance(default, Mapping | list):
        frozen = (
            types.MappingProxyType(dict(default))
            if isinstance(default, Mapping)
            else tuple(default)
        )
        return field(default_factory=lambda: frozen, metadata=meta, repr=not secret)
    return field(default=default, metadata=meta, repr=not secret)


class _Section:
    """Base of every section: ``check`` holds the rules that involve more than one key."""

    def check(self, key: str) -> None:
        """Raise :class:`ConfigError` naming the offending key; ``key`` is this section's path."""


_S = TypeVar("_S", bound=_Section)


def build_section(cls: type[_S], raw: object, key: str) -> _S:
    """Build ``cls`` from one TOML table: unknown keys are errors, missing keys take defaults."""
    if not isinstance(raw, dict):
        raise ConfigError(key, f"expected a table, got {_got(raw)}")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, object] = {}
    for name, value in raw.items():
        if name not in known:
            raise ConfigError(f"{key}.{name}", "unknown key")
        values[name] = known[name].metadata["kind"].parse(value, f"{key}.{name}")
    section = cls(**values)
    section.check(key)
    return section


def _default_of(f: Any) -> Any:
    return f.default_factory() if f.default is MISSING else f.default


# --------------------------------------------------------------------------------------------------
# The sections

_LOOPBACK_HINT = "Endpoint string; binds to loopback by default, name an interface to expose it."


@dataclass(frozen=True, kw_only=True)
class GatewaySection(_Section):
    """``[gateway]``: who this gateway is and where it keeps its state."""

    name: str = setting(
        _text(), "amidcc", "Name of this gateway, in logs, metrics and the MQTT client id."
    )
    ap_title: str = setting(
        _oid(relative_ok=True),
        ".2.1",
        "The gateway's own C12.22 AP title; a leading dot makes it relative to c1222.base_oid.",
    )
    state_dir: Path = setting(
        _path(),
        Path("."),
        "Directory for the event database, captures and other state; relative "
        "paths elsewhere in this file are resolved against it.",
    )


@dataclass(frozen=True, kw_only=True)
class C1222Section(_Section):
    """``[c1222]``: the C12.22 listeners and the gateway's security towards meters."""

    listen: str = setting(
        _endpoint(),
        "tcp:1153:interface=127.0.0.1",
        "Where meters and collectors connect (C12.22 over TCP, port 1153). " + _LOOPBACK_HINT,
    )
    udp_listen: str | None = setting(
        _optional(_endpoint(datagram=True)),
        None,
        "C12.22 over UDP (udp:PORT[:interface=ADDRESS]); off when absent.",
        example='"udp:1153:interface=127.0.0.1"',
    )
    base_oid: str = setting(
        _oid(relative_ok=False),
        format_oid(DEFAULT_BASE_OID),
        "Base of relative AP titles (the C12.22 application context .0).",
    )
    max_apdu_size: int = setting(
        _size(512, 16 << 20, "C12.22 allows 512B to 16MiB"),
        32767,
        "Largest APDU accepted or sent before segmenting.",
    )
    security_mode: str = setting(
        _choice(
            "cleartext",
            "authenticated",
            "ciphertext",
            aliases={"0": "cleartext", "1": "authenticated", "2": "ciphertext"},
        ),
        "cleartext",
        "EPSEM security mode for requests: cleartext (0), authenticated "
        "(1, cleartext + MAC) or ciphertext (2, EAX').",
    )
    keys: Mapping[int, bytes] = setting(
        _key_table(),
        {},
        "AES-128 keys by key id (0-255), 32 hex digits each; "
        "required when security_mode is not cleartext.",
        example='{ 2 = "01020304050607080102030405060708" }',
        secret=True,
    )
    password: str = setting(
        _text(empty=True, max_len=20),
        "",
        "PSEM Security password (at most 20 bytes, space padded on the wire).",
        secret=True,
    )
    user_id: int = setting(_integer(0, 0xFFFF), 0, "PSEM user id sent with the password.")

    @property
    def security_level(self) -> int:
        """The EPSEM SECURITY_MODE bits: 0, 1 or 2."""
        return ("cleartext", "authenticated", "ciphertext").index(self.security_mode)

    def check(self, key: str) -> None:
        if self.security_mode != "cleartext" and not self.keys:
            raise ConfigError(
                f"{key}.keys", f"security_mode {self.security_mode} needs at least one key"
            )


@dataclass(frozen=True, kw_only=True)
class MqttSection(_Section):
    """``[mqtt]``: the RF-mesh link, C12.22 APDUs carried as MQTT payloads."""

    enabled: bool = setting(_boolean(), False, "Connect to the broker and serve the RF-mesh link.")
    url: str = setting(
        _mqtt_url(),
        "mqtt://127.0.0.1:1883",
        "Broker URL, mqtt://[USER:PASSWORD@]HOST[:PORT] (mqtts:// is refused at start: no TLS yet).",
        secret=True,
    )
    topic_prefix: str = setting(_topic_prefix(), "amidcc", "First level of every topic.")
    client_id: str | None = setting(
        _optional(_text()),
        None,
        "MQTT client id; amidcc-<gateway.name> when absent.",
        example='"amidcc-east-1"',
    )
    keepalive: float = setting(_duration(1.0, 65535.0), 60.0, "MQTT keep-alive interval.")
    reconnect_min: float = setting(
        _duration(0.001), 1.0, "First reconnect delay after losing the broker."
    )
    reconnect_max: float = setting(
        _duration(0.001), 60.0, "Longest reconnect delay (the backoff doubles)."
    )

    def check(self, key: str) -> None:
        if self.reconnect_max < self.reconnect_min:
            raise ConfigError(
                f"{key}.reconnect_max",
                f"must be at least reconnect_min ({format_duration(self.reconnect_min)})",
            )


@dataclass(frozen=True, kw_only=True)
class ModbusCollector(_Section):
    """One Modbus/TCP collector and the unit ids (meters) behind it."""

    endpoint: str = setting(_endpoint(client=True), "", "Client endpoint, e.g. tcp:192.0.2.10:502.")
    unit_ids: tuple[int, ...] = setting(
        _list(_integer(1, 255)), (), "Unit ids to poll; or unit_range = [first, last]."
    )


def _modbus_collectors() -> Kind[tuple[ModbusCollector, ...]]:
    def one(value: object, key: str) -> ModbusCollector:
        if isinstance(value, dict) and "unit_range" in value:
            if "unit_ids" in value:
                raise ConfigError(f"{key}.unit_range", "give unit_ids or unit_range, not both")
            value = dict(value)
            span = value.pop("unit_range")
            first, last = (
                _list(_integer(1, 255), unique=False).parse(span, f"{key}.unit_range")
                if isinstance(span, list) and len(span) == 2
                else (0, -1)
            )
            if first > last:
                raise ConfigError(
                    f"{key}.unit_range",
                    f"expected [first, last] with first <= last, got {_got(span)}",
                )
            value["unit_ids"] = list(range(first, last + 1))
        collector = build_section(ModbusCollector, value, key)
        if not collector.endpoint:
            raise ConfigError(f"{key}.endpoint", "required")
        if not collector.unit_ids:
            raise ConfigError(f"{key}.unit_ids", "at least one unit id is required")
        return collector

    def dump(collectors: tuple[ModbusCollector, ...]) -> str:
        def inline(c: ModbusCollector) -> str:
            return (
                f"{{ endpoint = {_toml_str(c.endpoint)}, unit_ids = "
                f"[{', '.join(map(str, c.unit_ids))}] }}"
            )

        return "[" + ", ".join(inline(c) for c in collectors) + "]"

    def parse(value: object, key: str) -> tuple[ModbusCollector, ...]:
        if not isinstance(value, list):
            raise ConfigError(key, f"expected a list of tables, got {_got(value)}")
        collectors = tuple(one(v, f"{key}[{i}]") for i, v in enumerate(value))
        seen = [c.endpoint for c in collectors]
        for i, c in enumerate(collectors):
            if c.endpoint in seen[:i]:
                raise ConfigError(f"{key}[{i}].endpoint", f"duplicate collector {c.endpoint!r}")
        return collectors

    return Kind(parse, dump)


@dataclass(frozen=True, kw_only=True)
class ModbusSection(_Section):
    """``[modbus]``: meters reached through Modbus/TCP collectors, polled by the gateway."""

    enabled: bool = setting(_boolean(), False, "Poll the Modbus collectors below.")
    collectors: tuple[ModbusCollector, ...] = setting(
        _modbus_collectors(),
        (),
        "Collectors: a list of { endpoint, unit_ids } or { endpoint, unit_range }.",
        example='[{ endpoint = "tcp:192.0.2.10:502", unit_ids = [1, 2, 3] }, '
        '{ endpoint = "tcp:192.0.2.11:502", unit_range = [1, 32] }]',
    )
    timeout: float = setting(_duration(0.001, 300.0), 3.0, "Timeout of one Modbus poll.")


@dataclass(frozen=True, kw_only=True)
class RequestsSection(_Section):
    """``[requests]``: timeouts and retries of every request to a meter."""

    timeout: float = setting(_duration(0.001, 3600.0), 30.0, "Time to wait for one response.")
    retries: int = setting(_integer(0, 10), 2, "Retries after the first attempt on timeout.")
    backoff_base: float = setting(
        _duration(0.0), 1.0, "Delay before the first retry (then doubles)."
    )
    backoff_max: float = setting(_duration(0.0), 30.0, "Longest delay between retries.")

    def check(self, key: str) -> None:
        if self.backoff_max < self.backoff_base:
            raise ConfigError(
                f"{key}.backoff_max",
                f"must be at least backoff_base ({format_duration(self.backoff_base)})",
            )


@dataclass(frozen=True, kw_only=True)
class ThrottleSection(_Section):
    """``[throttle]``: how hard the gateway may push the network."""

    max_inflight_per_link: int = setting(
        _integer(1, 1_000_000), 256, "Requests in flight per link."
    )
    max_inflight_per_collector: int = setting(
        _integer(1, 100_000), 8, "Requests in flight through one collector or relay."
    )
    new_connections_per_window: int = setting(
        _integer(1, 1_000_000), 200, "New meter connections accepted per window."
    )
    window: float = setting(_duration(0.001, 3600.0), 1.0, "Window of new_connections_per_window.")


@dataclass(frozen=True, kw_only=True)
class ScheduleSection(_Section):
    """``[schedule]``: the periodic work."""

    read_interval: float = setting(_duration(1.0), 3600.0, "Interval of the scheduled meter reads.")
    read_spread: float = setting(
        _duration(0.0), 600.0, "Reads are spread at random over this span (at most read_interval)."
    )
    metrology_interval: float = setting(
        _duration(DAY, 30 * DAY, "NFR6: monthly to daily"),
        DAY,
        "Interval of the metrology self-check.",
    )
    clock_check_interval: float = setting(_duration(1.0), 3600.0, "Interval of meter clock checks.")
    clock_drift_threshold: float = setting(
        _duration(0.001), 30.0, "Clock drift that raises a time-sync event."
    )
    self_test_on_register: bool = setting(
        _boolean(), True, "Run a self-test when a meter registers."
    )

    def check(self, key: str) -> None:
        if self.read_spread > self.read_interval:
            raise ConfigError(
                f"{key}.read_spread",
                f"must not exceed read_interval ({format_duration(self.read_interval)})",
            )


@dataclass(frozen=True, kw_only=True)
class EventsSection(_Section):
    """``[events]``: the meter event log, and which logged events may raise trouble."""

    retention: float = setting(
        _duration(45 * DAY, why="NFR5: events are kept at least 45 days"),
        90 * DAY,
        "How long events are kept.",
    )
    db: Path = setting(
        _path(), Path("events.sqlite"), "Event database (relative to gateway.state_dir)."
    )
    report_max_age: float = setting(
        _duration(3600.0, 45 * DAY, why="above the event-log read period, within retention"),
        DAY,
        "Log entries older than this when read are history: logged, never a trouble report. "
        "Keep it above schedule.read_interval, or failures between two reads become history.",
    )
    install_grace: float = setting(
        _duration(0.0, 7 * DAY),
        3600.0,
        "Log entries from before the meter's installation (registration) less this are history "
        "too; the margin keeps the installation self-test, which runs before registering (FR1).",
    )
    outage_expiry: float = setting(
        _duration(3600.0, 45 * DAY),
        3 * DAY,
        "A meter stays in the outage view (its trouble suppressed, FR18) at most this long "
        "without a power-up, so a meter that never comes back is reported after all.",
    )


@dataclass(frozen=True, kw_only=True)
class ApiSection(_Section):
    """``[api]``: the operator HTTP API."""

    listen: str = setting(_endpoint(), "tcp:8080:interface=127.0.0.1", _LOOPBACK_HINT)
    token: str | None = setting(
        _optional(_text()),
        None,
        "Bearer token the API's commands require; without one, commands are refused (403) and only the read-only routes answer.",
        example='"change-me"',
        secret=True,
    )


@dataclass(frozen=True, kw_only=True)
class MetricsSection(_Section):
    """``[metrics]``: the Prometheus scrape endpoint (/metrics) and the health check (/health)."""

    listen: str = setting(_endpoint(), "tcp:9153:interface=127.0.0.1", _LOOPBACK_HINT)


@dataclass(frozen=True, kw_only=True)
class DiscoverySection(_Section):
    """``[discovery]``: how collectors are found."""

    zeroconf: bool = setting(
        _boolean(), False, "Browse and announce _c1222._tcp.local. with zeroconf."
    )
    interfaces: tuple[str, ...] = setting(
        _list(_ip_address()), ("127.0.0.1",), "Interface addresses zeroconf uses."
    )
    static: tuple[str, ...] = setting(
        _list(_endpoint(client=True)),
        (),
        "Collectors to reach without discovery (client endpoints).",
        example='["tcp:192.0.2.20:1153"]',
    )


@dataclass(frozen=True, kw_only=True)
class CaptureSection(_Section):
    """``[capture]``: the gateway writing its own traffic to a pcap file."""

    pcap: Path | None = setting(
        _optional(_path()),
        None,
        "Write C12.22 traffic to this pcap file; off when absent.",
        example='"capture.pcap"',
    )
    max_size: int = setting(_size(64 << 10, 1 << 40), 100 << 20, "Rotate the capture at this size.")


@dataclass(frozen=True, kw_only=True)
class LoggingSection(_Section):
    """``[logging]``: log level, optional log file, frame tracing."""

    level: str = setting(
        _choice("debug", "info", "warn", "error", "critical", aliases={"warning": "warn"}),
        "info",
        "Least severe level logged: debug, info, warn, error, critical.",
    )
    file: Path | None = setting(
        _optional(_path()),
        None,
        "Also log to this file (besides twistd's own log).",
        example='"amidcc.log"',
    )
    format: str = setting(_choice("text", "json"), "text", "Format of logging.file: text or json.")
    trace_meters: tuple[str, ...] = setting(
        _list(_trace_target()),
        (),
        'Meters (AP titles or meter ids; "*" for all) whose frames are logged in hex.',
        example='[".2.7.1"]',
    )


#: Every section, by its name in the file, in the order the sample lists them.
SECTIONS: Mapping[str, type[_Section]] = types.MappingProxyType(
    {
        "gateway": GatewaySection,
        "c1222": C1222Section,
        "mqtt": MqttSection,
        "modbus": ModbusSection,
        "requests": RequestsSection,
        "throttle": ThrottleSection,
        "schedule": ScheduleSection,
        "events": EventsSection,
        "api": ApiSection,
        "metrics": MetricsSection,
        "discovery": DiscoverySection,
        "capture": CaptureSection,
        "logging": LoggingSection,
    }
)


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole configuration; ``Config()`` is the embedded defaults."""

    gateway: GatewaySection = field(default_factory=GatewaySection)
    c1222: C1222Section = field(default_factory=C1222Section)
    mqtt: MqttSection = field(default_factory=MqttSection)
    modbus: ModbusSection = field(default_factory=ModbusSection)
    requests: RequestsSection = field(default_factory=RequestsSection)
    throttle: ThrottleSection = field(default_factory=ThrottleSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    events: EventsSection = field(default_factory=EventsSection)
    api: ApiSection = field(default_factory=ApiSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    discovery: DiscoverySection = field(default_factory=DiscoverySection)
    capture: CaptureSection = field(default_factory=CaptureSection)
    logging: LoggingSection = field(default_factory=LoggingSection)
    source: str = field(default="<defaults>", compare=False)
    """Where it came from: a file path, ``<defaults>`` or what the caller of parse_config named."""

    def resolve(self, path: Path) -> Path:
        """A configured path made absolute-or-state-relative: relative paths go under state_dir."""
        return path if path.is_absolute() else self.gateway.state_dir / path

    @property
    def mqtt_client_id(self) -> str:
        """The MQTT client id: mqtt.client_id, or ``amidcc-<gateway.name>``."""
        return self.mqtt.client_id or f"amidcc-{self.gateway.name}"


def parse_config(mapping: Mapping[str, object], source: str = "<memory>") -> Config:
    """Validate a parsed TOML document (a mapping of section tables) into a :class:`Config`."""
    sections: dict[str, Any] = {}
    for name, raw in mapping.items():
        cls = SECTIONS.get(name)
        if cls is None:
            raise ConfigError(name, "unknown section" if isinstance(raw, dict) else "unknown key")
        sections[name] = build_section(cls, raw, name)
    return Config(**sections, source=source)


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML file. Unreadable files and TOML syntax errors are ConfigErrors too."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError("", f"{str(path)!r} is not UTF-8 text") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{str(path)!r} is not valid TOML: {exc}") from None
    return parse_config(document, source=str(path))


def _sample_lines(name: str, cls: type[_Section]) -> list[str]:
    summary = (cls.__doc__ or "").split(": ", 1)[-1]
    summary = summary[:1].upper() + summary[1:]
    lines = [f"[{name}]", *(f"# {line}" for line in textwrap.wrap(summary, 96))]
    for f in fields(cls):  # type: ignore[arg-type]
        lines.append("")
        lines += [f"# {line}" for line in textwrap.wrap(f.metadata["doc"], 96)]
        value = f.metadata["kind"].dump(_default_of(f))
        example = f.metadata["example"]
        if value:
            lines.append(f"{f.name} = {value}")
            if example:
                lines.append(f"# e.g. {f.name} = {example}")
        else:
            lines.append(f"# {f.name} = {example}")
    return lines


def sample_config() -> str:
    """A commented TOML file listing every key with its default; it loads into ``Config()``."""
    out = [
        "# amidcc gateway configuration. Every key is optional; the values shown are the defaults.",
        '# Durations take ms, s, m, h, d ("1h30m"); sizes take B, KiB, MiB, GiB.',
        "# Check a file with: amidcc config check FILE",
    ]
    for name, cls in SECTIONS.items():
        out += ["", *_sample_lines(name, cls)]
    return "\n".join(out) + "\n"
