"""amidcc.gateway.config: typed sections, errors naming the dotted key, units, the sample, the CLI."""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.cli import SUBCOMMANDS
from amidcc.cli import config as cli_config
from amidcc.gateway.config import (
    Config,
    ConfigError,
    ModbusCollector,
    format_duration,
    format_size,
    load_config,
    parse_config,
    parse_duration,
    parse_size,
    sample_config,
)

KEY = "01020304050607080102030405060708"  # the C12.22 example-8 key (protocol-facts.md 3.5)


def parse(text: str) -> Config:
    return parse_config(tomllib.loads(text), source="<test>")


# (TOML snippet, dotted key the error must name, a fragment of the reason)
MISTAKES = [
    ('[c1222]\nlisten = "tcp:abc"', "c1222.listen", "not a valid endpoint string: 'tcp:abc'"),
    ('[c1222]\nlisten = "tcp:70000"', "c1222.listen", "port must be 0-65535"),
    ('[metrics]\nlisten = "tcp:9153:interface=localhost"', "metrics.listen", "not an IP address"),
    ('[api]\nlisten = "carrier-pigeon:1"', "api.listen", "not a valid endpoint string"),
    ('[c1222]\nudp_listen = "tcp:1153"', "c1222.udp_listen", "udp:PORT"),
    ('[requests]\ntimeout = "12x"', "requests.timeout", "expected a duration like '30s'"),
    ("[requests]\ntimeout = 30", "requests.timeout", "expected a duration like '30s'"),
    ("[requests]\nretries = true", "requests.retries", "expected an integer"),
    ("[requests]\nretries = 11", "requests.retries", "between 0 and 10"),
    ("[mqtt]\nbogus = 1", "mqtt.bogus", "unknown key"),
    ("[bogus]\nx = 1", "bogus", "unknown section"),
    ("mqtt = 3", "mqtt", "expected a table"),
    ('[mqtt]\nenabled = "yes"', "mqtt.enabled", "expected true or false"),
    ('[mqtt]\nurl = "http://broker:1883"', "mqtt.url", "not a valid MQTT URL"),
    ('[mqtt]\nurl = "mqtt://broker:99999"', "mqtt.url", "not a valid MQTT URL"),
    ('[mqtt]\ntopic_prefix = "amidcc/#"', "mqtt.topic_prefix", "no wildcards"),
    ('[mqtt]\nreconnect_min = "10s"\nreconnect_max = "1s"', "mqtt.reconnect_max", "at least"),
    ('[schedule]\nmetrology_interval = "45d"', "schedule.metrology_interval", "NFR6"),
    ('[schedule]\nmetrology_interval = "12h"', "schedule.metrology_interval", "between 1d and 30d"),
    (
        '[schedule]\nread_interval = "1m"\nread_spread = "2m"',
        "schedule.read_spread",
        "read_interval",
    ),
    ('[events]\nretention = "30d"', "events.retention", "NFR5"),
    ('[c1222]\nmax_apdu_size = "1MB"', "c1222.max_apdu_size", "expected a size like '64KiB'"),
    ('[c1222]\nmax_apdu_size = "64MiB"', "c1222.max_apdu_size", "between 512B and 16MiB"),
    ('[c1222]\nsecurity_mode = "rot13"', "c1222.security_mode", "expected one of"),
    ('[c1222]\nsecurity_mode = "ciphertext"', "c1222.keys", "needs at least one key"),
    ('[c1222.keys]\n2 = "abcd"', "c1222.keys.2", "16 bytes"),
    ('[c1222.keys]\n256 = "' + KEY + '"', "c1222.keys.256", "0-255"),
    ('[c1222.keys]\n1 = "zz"', "c1222.keys.1", "not a hex string"),
    ('[c1222]\npassword = "' + "x" * 21 + '"', "c1222.password", "longer than 20 bytes"),
    ('[c1222]\nbase_oid = ".1.2"', "c1222.base_oid", "must be absolute"),
    ('[gateway]\nap_title = "2.x"', "gateway.ap_title", "not a valid AP title"),
    ('[gateway]\nap_title = "5.1"', "gateway.ap_title", "not a valid AP title"),
    ('[gateway]\nname = ""', "gateway.name", "must not be empty"),
    ('[discovery]\ninterfaces = ["127.0.0.1", "eth0"]', "discovery.interfaces[1]", "not an IP"),
    ('[discovery]\nstatic = ["tcp:a:1", "tcp:a:1"]', "discovery.static[1]", "duplicate"),
    ('[logging]\nlevel = "verbose"', "logging.level", "expected one of debug"),
    ('[logging]\ntrace_meters = [".2.1", 7]', "logging.trace_meters[1]", "expected a dotted OID"),
    (
        '[[modbus.collectors]]\nendpoint = "tcp:10.0.0.1"\nunit_ids = [1]',
        "modbus.collectors[0].endpoint",
        "not a valid endpoint string",
    ),
    (
        '[[modbus.collectors]]\nendpoint = "tcp:10.0.0.1:502"\nunit_ids = [1]\n'
        '[[modbus.collectors]]\nendpoint = "tcp:10.0.0.2:502"\nunit_range = [10, 2]',
        "modbus.collectors[1].unit_range",
        "first <= last",
    ),
    (
        '[[modbus.collectors]]\nendpoint = "tcp:10.0.0.1:502"\nunit_ids = [1, 0]',
        "modbus.collectors[0].unit_ids[1]",
        "between 1 and 255",
    ),
    (
        '[[modbus.collectors]]\nendpoint = "tcp:10.0.0.1:502"',
        "modbus.collectors[0].unit_ids",
        "at least one unit id",
    ),
    (
        '[[modbus.collectors]]\nendpoint = "tcp:10.0.0.1:502"\nunit_ids = [1]\nport = 502',
        "modbus.collectors[0].port",
        "unknown key",
    ),
    ('[capture]\nmax_size = "1KiB"', "capture.max_size", "between"),
]


@pytest.mark.parametrize(("text", "key", "reason"), MISTAKES, ids=[m[1] for m in MISTAKES])
def test_mistake_names_the_dotted_key(text: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{key}: ")
    assert reason in caught.value.reason


def test_task_brief_examples_read_as_written() -> None:
    with pytest.raises(
        ConfigError, match=r"^c1222\.listen: not a valid endpoint string: 'tcp:abc'"
    ):
        parse('[c1222]\nlisten = "tcp:abc"')
    with pytest.raises(ConfigError, match=r"^mqtt\.bogus: unknown key$"):
        parse("[mqtt]\nbogus = 1")


def test_empty_file_is_the_defaults() -> None:
    assert parse("") == Config()
    assert Config().metrics.listen == "tcp:9153:interface=127.0.0.1"
    assert Config().c1222.listen == "tcp:1153:interface=127.0.0.1"
    assert Config().api.listen.endswith("interface=127.0.0.1")


def test_full_config_is_typed() -> None:
    config = parse(
        f"""
        [gateway]
        name = "east-1"
        ap_title = "1.3.6.1.4.1.33507.1919.22906.0"
        state_dir = "/var/lib/amidcc"
        [c1222]
        udp_listen = "udp:1153:interface=0.0.0.0"
        max_apdu_size = "64KiB"
        security_mode = 2
        password = "PASSWORD"
        user_id = 2
        [c1222.keys]
        2 = "{KEY}"
        [mqtt]
        enabled = true
        url = "mqtts://broker.example:8883"
        keepalive = "1m30s"
        [[modbus.collectors]]
        endpoint = "tcp:192.0.2.10:502"
        unit_range = [1, 4]
        [[modbus.collectors]]
        endpoint = "tcp:host=192.0.2.11:port=502"
        unit_ids = [7]
        [requests]
        timeout = "1500ms"
        [events]
        retention = "45d"
        db = "/data/events.sqlite"
        [schedule]
        metrology_interval = "30d"
        [logging]
        level = "WARNING"
        trace_meters = [".123.8437"]
        """
    )
    assert config.gateway.ap_title == "1.3.6.1.4.1.33507.1919.22906.0"
    assert config.c1222.max_apdu_size == 65536
    assert config.c1222.security_mode == "ciphertext" and config.c1222.security_level == 2
    assert config.c1222.keys == {2: bytes.fromhex(KEY)}
    assert config.mqtt.keepalive == 90.0
    assert config.modbus.collectors == (
        ModbusCollector(endpoint="tcp:192.0.2.10:502", unit_ids=(1, 2, 3, 4)),
        ModbusCollector(endpoint="tcp:host=192.0.2.11:port=502", unit_ids=(7,)),
    )
    assert config.requests.timeout == 1.5
    assert config.events.retention == 45 * 86400.0
    assert config.schedule.metrology_interval == 30 * 86400.0
    assert config.logging.level == "warn"
    assert config.mqtt_client_id == "amidcc-east-1"
    assert config.resolve(config.events.db) == Path("/data/events.sqlite")
    assert config.resolve(Path("x.pcap")) == Path("/var/lib/amidcc/x.pcap")


def test_secrets_stay_out_of_repr() -> None:
    config = parse(f'[c1222]\npassword = "hunter2"\n[c1222.keys]\n2 = "{KEY}"\n[api]\ntoken = "s3"')
    text = repr(config)
    assert "hunter2" not in text and "s3'" not in text
    assert "\\x01\\x02" not in text and KEY not in text
    assert "tcp:1153" in text  # the rest is still there


def test_sample_loads_into_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "amidcc.toml"
    path.write_text(sample_config())
    assert load_config(path) == Config()
    assert load_config(path).source == str(path)


def test_sample_lists_every_key_and_its_examples_load() -> None:
    sample = sample_config()
    for section, cls in [(name, type(getattr(Config(), name))) for name in _section_names()]:
        assert f"[{section}]" in sample
        for field_name in cls.__dataclass_fields__:
            assert re.search(rf"^(# )?{field_name} = ", sample, re.M), f"{section}.{field_name}"
    # Uncomment every example: the result must load, and differ from the defaults.
    lines = []
    for line in sample.splitlines():
        match = re.match(r"# (?:e\.g\. )?(\w+ = .*)$", line)
        if match:
            key = match.group(1).split(" = ")[0]
            lines = [x for x in lines if not x.startswith(f"{key} = ")]
            lines.append(match.group(1))
        elif not line.startswith("#"):
            lines.append(line)
    example = parse("\n".join(lines))
    assert example.c1222.udp_listen == "udp:1153:interface=127.0.0.1"
    assert example.modbus.collectors[1].unit_ids == tuple(range(1, 33))
    assert example.logging.trace_meters == (".2.7.1",)


def _section_names() -> list[str]:
    return [name for name in Config.__dataclass_fields__ if name != "source"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("15m", 900.0),
        ("1h", 3600.0),
        ("45d", 3888000.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("0s", 0.0),
        (" 2d ", 172800.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "12x", "1 h", "-1s", "1.s", "s", "1e3s", "30sec"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (86400.0, "1d"),
        (5400.0, "90m"),
        (1.5, "1500ms"),
        (0.0, "0s"),
        (3888000.0, "45d"),
        (0.0005, "0.5ms"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**12))
def test_duration_round_trip(ms: int) -> None:
    seconds = ms / 1000
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("value", "nbytes"),
    [
        ("512B", 512),
        ("64KiB", 65536),
        ("16MiB", 16 << 20),
        ("1GiB", 1 << 30),
        (32767, 32767),
        ("32767", 32767),
        ("2 KiB", 2048),
    ],
)
def test_sizes(value: str | int, nbytes: int) -> None:
    assert parse_size(value) == nbytes


@pytest.mark.parametrize("value", ["1MB", "1.5KiB", "-1", -1, "KiB", "1kib", ""])
def test_bad_sizes(value: str | int) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=1 << 40))
def test_size_round_trip(nbytes: int) -> None:
    assert parse_size(format_size(nbytes)) == nbytes


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt\nenabled = true\n")
    with pytest.raises(ConfigError, match="is not valid TOML.*line 1"):
        load_config(bad)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="amidcc")
    cli_config.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


def test_cli_is_registered() -> None:
    assert "config" in SUBCOMMANDS


def test_cli_sample_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(["config", "sample"]) == 0
    sample = capsys.readouterr().out
    assert parse(sample) == Config()
    good = tmp_path / "good.toml"
    good.write_text(sample)
    assert _cli(["config", "check", str(good)]) == 0
    assert capsys.readouterr().out.strip() == f"{good}: OK"
    bad = tmp_path / "bad.toml"
    bad.write_text('[requests]\ntimeout = "12x"\n')
    assert _cli(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: requests.timeout: expected a duration" in err
