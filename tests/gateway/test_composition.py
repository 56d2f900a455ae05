"""The Composition's wiring of the optional links (no sockets: MemoryReactorClock).

With ``[mqtt] enabled`` the RF-mesh link is a service under ``links``, a link of the MeterClient,
counted by the meter gauges and watched by the ``mqtt`` health check; without it none of that
exists. Modbus enrolment paces its probes per collector.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogPublisher

from amidcc.gateway.config import ConfigError, parse_config
from amidcc.gateway.links.base import LinkKind, MeterAddress, RequestTimeout
from amidcc.gateway.links.mqtt import MqttLink
from amidcc.gateway.metrics import GatewayMetrics
from amidcc.gateway.registry import MeterRegistry
from amidcc.gateway.tap import GatewayService, ModbusEnrolment, build_service, meter_gauges
from amidcc.simulators import MeterIdentity, SimMeter

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


# -- Modbus enrolment pacing (a fake link; the meters answer through SimMeter.handle_services) ---


class FakeModbus:
    """Holds every request until the test answers it; counts them per collector."""

    kind = LinkKind.MODBUS

    def __init__(self, meters: dict[tuple[str, int], SimMeter]) -> None:
        self.meters = meters
        self.up: set[str] = {endpoint for endpoint, _ in meters}
        self.pending: list[tuple[MeterAddress, list[bytes], Deferred[list[bytes]]]] = []
        self.peak: dict[str, int] = {}

    def is_reachable(self, address: MeterAddress) -> bool:
        return address.route[0] in self.up

    def request(
        self, address: MeterAddress, services: Sequence[bytes], *, timeout: float
    ) -> Deferred[list[bytes]]:
        d: Deferred[list[bytes]] = Deferred()
        self.pending.append((address, list(services), d))
        endpoint = address.route[0]
        now = sum(1 for a, _, _ in self.pending if a.route[0] == endpoint)
        self.peak[endpoint] = max(self.peak.get(endpoint, 0), now)
        return d

    def answer(self, *, fail_units: frozenset[int] = frozenset()) -> int:
        """Answer what is pending now (later requests wait); return how many."""
        batch, self.pending = self.pending, []
        for address, services, d in batch:
            if address.unit_id in fail_units:
                d.errback(RequestTimeout("no answer"))
                continue
            meter = self.meters[(address.route[0], address.unit_id or 0)]
            d.callback(meter.handle_services(services, T0, channel="modbus"))
        return len(batch)

    def answer_all(self, **kwargs: Any) -> None:
        while self.answer(**kwargs):
            pass


T0 = 1_700_000_000.0


def enrolment(
    units: int = 5, *, collectors: int = 2, **kwargs: Any
) -> tuple[ModbusEnrolment, FakeModbus, MeterRegistry, Clock]:
    endpoints = [f"tcp:192.0.2.{n + 1}:502" for n in range(collectors)]
    config = parse_config({
        "modbus": {"enabled": True, "collectors": [
            {"endpoint": e, "unit_ids": list(range(1, units + 1))} for e in endpoints]},
        "requests": {"retries": 0},
    })  # fmt: skip
    meters = {
        (e, u): SimMeter(
            MeterIdentity(manufacturer="AMDC", model="MB", serial=f"E{c}U{u}", seed=10 * c + u),
            start_time=T0 - 3600,
        )
        for c, e in enumerate(endpoints)
        for u in range(1, units + 1)
    }  # fmt: skip
    clock = Clock()
    clock.advance(T0)
    link = FakeModbus(meters)
    registry = MeterRegistry(":memory:")
    return ModbusEnrolment(link, registry, clock, config, **kwargs), link, registry, clock


def test_enrolment_paces_probes_per_collector_and_chains_them() -> None:
    enrol, link, registry, _ = enrolment(per_collector=2)
    enrol.step()
    assert len(link.pending) == 4  # two per collector, not all ten
    link.answer_all()
    assert len(enrol.enrolled) == 10 and enrol.pending == 0
    assert link.peak == {"tcp:192.0.2.1:502": 2, "tcp:192.0.2.2:502": 2}
    record = registry.get("E1U3")
    assert record is not None and record.route == ("tcp:192.0.2.2:502",) and record.unit_id == 3


def test_each_enrolled_meter_is_handed_to_the_scheduler() -> None:
    joined: list[tuple[str, bool]] = []
    enrol, link, _, _ = enrolment(
        per_collector=2, on_enrol=lambda meter, reg, now: joined.append((meter, reg.new_install))
    )
    enrol.step()
    link.answer_all()
    assert sorted(joined) == sorted((meter, True) for meter in enrol.enrolled.values())
    assert len(joined) == 10


def test_a_failed_unit_waits_retry_after_and_a_down_collector_waits_for_a_step() -> None:
    enrol, link, _, clock = enrolment(per_collector=1, retry_after=5.0)
    link.up.discard("tcp:192.0.2.2:502")
    enrol.step()
    link.answer_all(fail_units=frozenset({2}))
    assert sorted(u for (_, u) in enrol.enrolled) == [1, 3, 4, 5] and enrol.failures == 1
    enrol.step()
    assert not link.pending  # unit 2 is not due yet; the other collector is down
    clock.advance(5.0)
    link.up.add("tcp:192.0.2.2:502")
    enrol.step()
    link.answer_all()
    assert len(enrol.enrolled) == 10 and enrol.pending == 0


def test_capture_is_attached_for_the_daemon_and_taps_every_c1222_link(tmp_path: Path) -> None:
    from amidcc.gateway.capture import CaptureService
    from amidcc.gateway.tap import Options, makeService

    options = Options()
    options.parseOptions([])
    assert "capture" in makeService(options).stores  # twistd's gateway has it
    reactor = MemoryReactorClock()
    config = parse_config({
        "gateway": {"state_dir": str(tmp_path / "state")},
        "mqtt": {"enabled": True}, "capture": {"pcap": "gw.pcap"},
    })  # fmt: skip
    gateway = build_service(config, reactor, metrics=GatewayMetrics(process=False), capture=True)
    gateway._log_setup.publisher = LogPublisher()
    service = gateway.stores["capture"]
    assert isinstance(service, CaptureService) and service.capture is not None
    gateway.startService()
    try:
        assert [s.name for s in gateway.links] == ["capture", "c1222", "mqtt"]
        listener: Any = gateway.stores["c1222"]
        mqtt: Any = gateway.stores["mqtt"]
        for link in (listener.tcp, mqtt.c1222):
            assert service.capture in link.taps
    finally:
        gateway.stopService()
    assert (tmp_path / "state" / "gw.pcap").exists()
    assert "capture" not in build_service(config, reactor).stores  # tests attach their own
