"""The Composition's wiring of the optional links (no sockets: MemoryReactorClock).

With ``[mqtt] enabled`` the RF-mesh link is a service under ``links``, a link of the MeterClient,
counted by the meter gauges and watched by the ``mqtt`` health check; without it none of that
exists. Modbus enrolment paces its probes per collector.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogPublisher

from amidcc.gateway.config import ConfigError, parse_config
from amidcc.gateway.links.base import LinkKind
from amidcc.gateway.links.mqtt import MqttLink
from amidcc.gateway.metrics import GatewayMetrics
from amidcc.gateway.tap import GatewayService, build_service, meter_gauges

SECRET_URL = "mqtt://gw:s3cret@127.0.0.1:18830"


def make(
    tmp_path: Path, **sections: dict[str, object]
) -> tuple[GatewayService, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    sections.setdefault("gateway", {"state_dir": str(tmp_path / "state")})
    gateway = build_service(parse_config(sections), reactor, metrics=GatewayMetrics(process=False))
    gateway._log_setup.publisher = LogPublisher()  # keep the test's log observers untouched
    return gateway, reactor


def test_mqtt_enabled_wires_link_client_gauges_and_health(tmp_path: Path) -> None:
    gateway, _ = make(tmp_path, mqtt={"enabled": True, "url": SECRET_URL})
    gateway.startService()
    try:
        link = gateway.stores["mqtt"]
        assert isinstance(link, MqttLink)
        assert gateway.links.getServiceNamed("mqtt") is link and link.running
        client: Any = gateway.stores["meter_client"]
        assert client.links[LinkKind.MQTT] is link
        # the session is not up (nothing listens): the check says so without the password
        check = gateway.health().checks["mqtt"]
        assert check != "ok" and "127.0.0.1:18830" in check and "s3cret" not in check
        counts = meter_gauges(
            gateway.stores["registry"], list(client.links.values()), gateway.metrics
        )
        assert counts["mqtt"] == (0, 0)
    finally:
        gateway.stopService()


def test_mqtt_health_is_ok_while_the_session_is_up(tmp_path: Path, monkeypatch: Any) -> None:
    gateway, _ = make(tmp_path, mqtt={"enabled": True})
    gateway.startService()
    try:
        monkeypatch.setattr(MqttLink, "connected", property(lambda self: True))
        assert gateway.health().checks["mqtt"] == "ok"
    finally:
        monkeypatch.undo()
        gateway.stopService()


def test_mqtt_disabled_has_no_link(tmp_path: Path) -> None:
    gateway, _ = make(tmp_path)
    gateway.startService()
    try:
        assert "mqtt" not in gateway.stores and "mqtt" not in gateway.health().checks
        client: Any = gateway.stores["meter_client"]
        assert LinkKind.MQTT not in client.links
        assert [s.name for s in gateway.links] == ["c1222"]
    finally:
        gateway.stopService()


def test_mqtts_url_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    gateway, _ = make(tmp_path, mqtt={"enabled": True, "url": "mqtts://u:pw@broker:8883"})
    composition = gateway.store_services.getServiceNamed("composition")
    with pytest.raises(ConfigError) as err:
        composition.startService()
    assert err.value.key == "mqtt.url" and "pw" not in str(err.value)
    assert not (tmp_path / "state").exists()  # nothing was opened
