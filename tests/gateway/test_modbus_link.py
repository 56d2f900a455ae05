"""The Modbus link without sockets: endpoint parsing, collector lookup, supervision table, config.

Everything with a real pymodbus client is in tests/integration/test_modbus*.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from amidcc.gateway.config import ModbusCollector, parse_config
from amidcc.gateway.links.base import LinkDown, LinkKind, MeterAddress
from amidcc.gateway.links.modbus import (
    TRANSITIONS,
    EndpointState,
    ModbusLink,
    ModbusSettings,
    parse_endpoint,
)


def address(unit: int | None, route: tuple[str, ...] = ()) -> MeterAddress:
    return MeterAddress(
        meter_id="M", ap_title=".1", link=LinkKind.MODBUS, route=route, unit_id=unit
    )


def link() -> ModbusLink:
    collectors = (
        ModbusCollector(endpoint="tcp:127.0.0.1:1502", unit_ids=(1, 2)),
        ModbusCollector(endpoint="tcp:host=127.0.0.1:port=1503", unit_ids=(2, 3)),
    )
    return ModbusLink(ModbusSettings(collectors=collectors), clock=Clock())


@pytest.mark.parametrize(
    ("text", "expected"),
    [("tcp:127.0.0.1:502", ("127.0.0.1", 502)), ("tcp:host=h:port=1502", ("h", 1502))],
)
def test_parse_endpoint(text: str, expected: tuple[str, int]) -> None:
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize("text", ["udp:1.2.3.4:502", "tcp:1.2.3.4", "tcp:h:port=x"])
def test_parse_endpoint_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="Modbus/TCP"):
        parse_endpoint(text)


def test_collector_lookup_by_route_then_by_unique_unit() -> None:
    lk = link()
    assert lk.endpoint_for(address(1)) == "tcp:127.0.0.1:1502"
    assert lk.endpoint_for(address(3)) == "tcp:host=127.0.0.1:port=1503"
    assert lk.endpoint_for(address(2, ("tcp:127.0.0.1:1502",))) == "tcp:127.0.0.1:1502"
    with pytest.raises(KeyError):
        lk.endpoint_for(address(2))  # behind both: the route must say which
    assert not lk.is_reachable(address(1))  # not started


def test_requests_before_connecting_fail_with_link_down() -> None:
    lk = link()
    failures: list[BaseException] = []
    for a in (address(1), address(2), address(None, ("tcp:127.0.0.1:1502",))):
        lk.request(a, [b"\x30\x00\x01"], timeout=1).addErrback(lambda f: failures.append(f.value))
    assert len(failures) == 3 and all(isinstance(f, LinkDown) for f in failures)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(["start", "connected", "failed", "lost", "retry", "stop"])))
def test_supervision_table_keeps_a_valid_state(events: list[str]) -> None:
    state = EndpointState.IDLE
    for event in events:
        state = TRANSITIONS.get((state, event), state)
        assert isinstance(state, EndpointState)
    assert TRANSITIONS[(state, "stop")] is EndpointState.STOPPED
    assert not any(key[0] is EndpointState.STOPPED and key[1] != "stop" for key in TRANSITIONS)


def test_settings_from_config() -> None:
    config = parse_config(
        {
            "modbus": {
                "enabled": True,
                "timeout": "750ms",
                "collectors": [{"endpoint": "tcp:127.0.0.1:1502", "unit_range": [1, 4]}],
            },
            "c1222": {"password": "master", "user_id": 9},
        }
    )
    s = ModbusSettings.from_config(config, credential_ttl=5.0)
    assert s.collectors[0].unit_ids == (1, 2, 3, 4)
    assert (s.timeout, s.user_id, s.credential_ttl) == (0.75, 9, 5.0)
    assert s.password == b"master".ljust(20)
