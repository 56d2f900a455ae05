"""Scenario files and --fault strings: parsing, validation, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from amidcc.simulators.config import DAY, Access
from amidcc.simulators.faults import FaultKind, LinkFaultKind
from amidcc.simulators.scenario import (
    ScenarioError,
    load_scenario,
    parse_duration,
    parse_fault_arg,
    parse_scenario,
)

EXAMPLE = """
[fleet]
meters = 50
seed = 7
start = "2026-03-01T00:00:00Z"
manufacturers = ["AMDC", "ELST"]
lots = 3

[meter]
selftest_period = "12h"
metrology_period = "7d"
passwords = [{password = "secret", access = "write", pad = "space"}]
push_kinds = ["metrology", "tamper"]

[rates]
install = 0.02
per_year = 0.01
time_scale = 100.0

[[fault]]
meter = "meter-0007"
kind = "metrology"
at = "+10m"
for = "2h"

[[fault]]
meter = "random"
count = 3
kind = "packet_loss"
value = 0.25
at = "1h"

[[fault]]
relay = "cell-1/relay-3"
kind = "relay-down"
at = "2026-03-01T06:00:00Z"

[topology]
cells = 4
relays_per_cell = 8
alternate_parents = 1
hop_latency = "20ms"
"""


def test_example_parses(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(EXAMPLE)
    sc = load_scenario(path)
    assert sc.fleet.meters == 50 and sc.fleet.seed == 7 and sc.fleet.lots == 3
    assert sc.fleet.start == 1772323200.0
    assert sc.meter.selftest_period == 12 * 3600 and sc.meter.metrology_period == 7 * DAY
    assert sc.meter.passwords == ((b"secret" + b" " * 14, Access.WRITE),)
    assert sc.meter.push_kinds == frozenset({FaultKind.METROLOGY, FaultKind.TAMPER})
    assert sc.rates.time_scale == 100.0
    f0, f1, f2 = sc.faults
    assert f0.kind is FaultKind.METROLOGY and f0.selector == "meter-0007"
    assert f0.at.resolve(1000.0) == 1600.0 and f0.until is not None and f0.until.resolve(1000.0) == 1000.0 + 600 + 7200
    assert f1.kind is LinkFaultKind.PACKET_LOSS and f1.count == 3 and f1.value == 0.25
    assert f2.target == "relay" and f2.at.absolute and f2.at.resolve(0.0) == 1772323200.0 + 6 * 3600
    assert sc.topology.cells == 4 and sc.topology.hop_latency == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[fleet]\nmeterz = 3\n", "fleet.meterz"),
        ("[fleet]\nmeters = 0\n", "fleet.meters"),
        ("[meter]\nmetrology_period = '40d'\n", "meter.metrology_period"),
        ("[meter]\nselftest_period = 'soon'\n", "meter.selftest_period"),
        ("[meter]\nlog_days = 10\n", "meter.log_days"),
        ("[rates]\ninstall = 2\n", "rates.install"),
        ("[rates]\nkinds = ['silent']\n", "rates.kinds[0]"),
        ("[[fault]]\nmeter = 1\nkind = 'meltdown'\n", "fault[0].kind"),
        ("[[fault]]\nkind = 'tamper'\n", "fault[0]"),
        ("[[fault]]\nmeter = 1\nkind = 'tamper'\nat = 'x'\n", "fault[0].at"),
        ("[[fault]]\nrelay = 'r1'\nkind = 'tamper'\n", "fault[0].kind"),
        ("[[fault]]\nmeter = 2\nkind = 'garbage'\nvalue = 3\n", "fault[0].value"),
        ("[[fault]]\nmeter = 2\nkind = 'tamper'\ncount = 3\n", "fault[0].count"),
        ("[topology]\nhop_loss = 1.5\n", "topology.hop_loss"),
        ("[topology]\nmeters_per_modbus_collector = 300\n", "topology.meters_per_modbus_collector"),
        ("[nonsense]\n", "scenario.nonsense"),
    ],
)
def test_errors_name_the_key(text: str, key: str) -> None:
    import tomllib

    with pytest.raises(ScenarioError) as info:
        parse_scenario(tomllib.loads(text))
    assert str(info.value).startswith(key), str(info.value)


def test_bad_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[fleet\nmeters = 3")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(path)
    with pytest.raises(ScenarioError):
        load_scenario(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("1h30m", 5400.0), ("2d", 172800.0), ("500ms", 0.5), (30, 30.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_fault_args() -> None:
    f = parse_fault_arg("metrology@meter-0007+10m")
    assert f.kind is FaultKind.METROLOGY and f.selector == "meter-0007" and f.at.seconds == 600.0 and f.until is None
    f = parse_fault_arg("packet-loss=0.2@random+1h~30m")
    assert f.kind is LinkFaultKind.PACKET_LOSS and f.value == 0.2 and f.selector == "random"
    assert f.until is not None and f.until.seconds == 5400.0
    f = parse_fault_arg("relay-down@relay:cell-1/relay-3+5m")
    assert f.target == "relay" and f.selector == "cell-1/relay-3"
    f = parse_fault_arg("power_outage@12")
    assert f.kind is FaultKind.POWER_OUTAGE and f.selector == 12 and f.at.seconds == 0.0
    for bad in ("metrology", "meltdown@meter-1", "tamper@relay:r1", "tamper@meter-1+soon"):
        with pytest.raises(ScenarioError, match="--fault"):
            parse_fault_arg(bad)


def test_the_documented_example_parses() -> None:
    import re
    import tomllib

    doc = (Path(__file__).resolve().parents[2] / "docs" / "simulators.md").read_text()
    block = re.search(r"## Scenario files.*?```toml\n(.*?)```", doc, re.S)
    assert block is not None
    sc = parse_scenario(tomllib.loads(block.group(1)))
    assert sc.fleet.meters == 1000 and sc.meter.metrology_period == 7 * DAY and len(sc.faults) == 3
    assert sc.topology.meters_per_modbus_collector == 32
