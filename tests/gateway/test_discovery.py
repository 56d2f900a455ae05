"""amidcc.gateway.discovery without multicast: endpoint parsing, the static list, what the gateway
advertises, the service's start/stop/failure handling on a fake zeroconf, and the wiring into the
gateway (the real zeroconf on loopback is in tests/integration/test_discovery.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from amidcc.gateway.config import parse_config
from amidcc.gateway.discovery import (
    API_SERVICE,
    C1222_SERVICE,
    Advertisement,
    Collector,
    DiscoveryService,
    StaticDiscovery,
    ZeroconfDiscovery,
    advertisements_for,
    parse_client_endpoint,
)

from .rig import make_gateway


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("tcp:192.0.2.20:1153", ("192.0.2.20", 1153)),
        ("tcp:host=collector-7.example:port=1153:timeout=5", ("collector-7.example", 1153)),
        ("ssl:198.51.100.1:443", ("198.51.100.1", 443)),
        (r"tcp:fe80\:\:1:1153", ("fe80::1", 1153)),
        ("tcp:192.0.2.20:http", ("192.0.2.20", 0)),
        ("unix:/run/collector.sock", ("", 0)),
        ("tcp", ("", 0)),
    ],
)
def test_parse_client_endpoint(endpoint: str, expected: tuple[str, int]) -> None:
    assert parse_client_endpoint(endpoint) == expected


def test_static_discovery_lists_and_notifies() -> None:
    static = StaticDiscovery(["tcp:192.0.2.20:1153", "tcp:192.0.2.21:1153"])
    seen: list[tuple[Collector, ...]] = []
    static.subscribe(seen.append)
    assert static.start().called
    assert [c.host for c in static.collectors()] == ["192.0.2.20", "192.0.2.21"]
    assert {c.source for c in static.collectors()} == {"static"}
    assert seen == [static.collectors()]
    assert static.stop().called


def test_advertisements_follow_the_listeners() -> None:
    config = parse_config({
        "gateway": {"name": "east-1"},
        "c1222": {"listen": "tcp:1153:interface=127.0.0.1"},
        "api": {"listen": "tcp:8080:interface=127.0.0.1", "token": "t"},
        "discovery": {"zeroconf": True},
    })  # fmt: skip
    c1222, api = advertisements_for(config)
    assert (c1222.service_type, c1222.port, c1222.addresses) == (C1222_SERVICE, 1153, ("127.0.0.1",))
    assert c1222.properties["role"] == "head-end" and c1222.properties["gateway"] == "east-1"
    assert c1222.properties["ap_title"] == ".2.1"
    assert c1222.name == "amidcc east-1._c1222._tcp.local."
    assert (api.service_type, api.port, api.properties["auth"]) == (API_SERVICE, 8080, "bearer")


def test_advertisements_on_every_interface_use_the_discovery_interfaces() -> None:
    config = parse_config({
        "c1222": {"listen": "tcp:1153"},
        "api": {"listen": "unix:/run/amidcc/api.sock"},
        "discovery": {"interfaces": ["192.0.2.2", "198.51.100.2"]},
    })  # fmt: skip
    (only,) = advertisements_for(config)
    assert only.addresses == ("192.0.2.2", "198.51.100.2") and only.port == 1153


def test_an_ephemeral_port_is_not_advertised() -> None:
    config = parse_config({"c1222": {"listen": "tcp:0:interface=127.0.0.1"}})
    assert [a.service_type for a in advertisements_for(config)] == [API_SERVICE]


class FakeZeroconf:
    """A Discovery double: start/stop Deferreds the test controls, collectors it sets."""

    def __init__(self, started: Deferred[None] | None = None) -> None:
        self.started = started if started is not None else succeed(None)
        self.found: tuple[Collector, ...] = ()
        self.calls: list[str] = []
        self.callbacks: list[Callable[[tuple[Collector, ...]], object]] = []

    def start(self) -> Deferred[None]:
        self.calls.append("start")
        return self.started

    def stop(self) -> Deferred[None]:
        self.calls.append("stop")
        return succeed(None)

    def collectors(self) -> tuple[Collector, ...]:
        return self.found

    def subscribe(self, callback: Callable[[tuple[Collector, ...]], object]) -> Callable[[], None]:
        self.callbacks.append(callback)
        return lambda: self.callbacks.remove(callback)

    def announce(self, *collectors: Collector) -> None:
        self.found = collectors
        for callback in list(self.callbacks):
            callback(collectors)


def collector(host: str, source: str = "zeroconf") -> Collector:
    return Collector(name=host, endpoint=f"tcp:{host}:1153", host=host, port=1153, source=source)


def test_service_starts_zeroconf_on_the_next_turn_and_merges_the_lists() -> None:
    clock = Clock()
    fake = FakeZeroconf()
    service = DiscoveryService(clock, static=StaticDiscovery(["tcp:192.0.2.20:1153"]), zeroconf=fake)
    seen: list[tuple[str, ...]] = []
    service.subscribe(lambda cs: seen.append(tuple(c.host for c in cs)))
    service.startService()
    assert fake.calls == []  # never before the loop turns (integration notes)
    clock.advance(0)
    assert fake.calls == ["start"] and service.started is not None and service.started.called
    fake.announce(collector("192.0.2.30"), collector("192.0.2.20"))  # .20 is static already
    assert [c.host for c in service.collectors()] == ["192.0.2.20", "192.0.2.30"]
    assert service.collectors()[0].source == "static"
    assert seen == [("192.0.2.20",), ("192.0.2.20", "192.0.2.30")]
    assert service.health() == "ok"
    d = service.stopService()
    assert d.called and fake.calls == ["start", "stop"] and fake.callbacks == []


def test_a_zeroconf_failure_leaves_the_static_list_and_shows_in_health() -> None:
    clock = Clock()
    fake = FakeZeroconf(fail(OSError(19, "No such device: no multicast")))
    service = DiscoveryService(clock, static=StaticDiscovery(["tcp:192.0.2.20:1153"]), zeroconf=fake)
    service.startService()
    clock.advance(0)
    assert service.health().startswith("zeroconf failed") and "multicast" in service.health()
    assert [c.host for c in service.collectors()] == ["192.0.2.20"]
    assert service.stopService().called and fake.calls == ["start"]  # nothing to stop


def test_stop_while_zeroconf_is_still_starting_waits_for_it() -> None:
    clock = Clock()
    pending: Deferred[None] = Deferred()
    fake = FakeZeroconf(pending)
    service = DiscoveryService(clock, zeroconf=fake)
    service.startService()
    clock.advance(0)
    stopped = service.stopService()
    assert not stopped.called and fake.calls == ["start"]
    pending.callback(None)
    assert stopped.called and fake.calls == ["start", "stop"]


def test_static_only_service() -> None:
    service = DiscoveryService(Clock(), static=StaticDiscovery(["tcp:192.0.2.9:1153"]))
    service.startService()
    assert service.started is not None and service.started.called
    assert [c.host for c in service.collectors()] == ["192.0.2.9"]
    assert service.stopService().called


def test_zeroconf_needs_the_asyncio_reactor() -> None:
    with pytest.raises(RuntimeError, match="asyncio reactor"):
        ZeroconfDiscovery(Clock()).start()
    assert ZeroconfDiscovery(Clock()).stop().called  # never started: nothing to do


def test_advertisement_name() -> None:
    ad = Advertisement(service_type=API_SERVICE, instance="amidcc x", port=1, addresses=())
    assert ad.name == "amidcc x._amidcc-api._tcp.local."


# -- wiring into the gateway ------------------------------------------------------------------


def test_no_discovery_by_default() -> None:
    service, _ = make_gateway()
    assert service.discovery is None and "discovery" not in service.stores


def test_static_discovery_is_wired_with_a_health_check() -> None:
    service, _ = make_gateway(discovery={"static": ["tcp:192.0.2.20:1153"]})
    assert service.discovery is not None and service.stores["discovery"] is service.discovery
    assert service.discovery.parent is service.links and service.discovery.zeroconf is None
    service.startService()
    assert [c.endpoint for c in service.discovery.collectors()] == ["tcp:192.0.2.20:1153"]
    assert service.health().checks["discovery"] == "ok"
    service.stopService()


def test_zeroconf_off_the_asyncio_reactor_fails_visibly() -> None:
    service, reactor = make_gateway(discovery={"zeroconf": True})
    assert service.discovery is not None
    assert isinstance(service.discovery.zeroconf, ZeroconfDiscovery)
    assert [a.port for a in service.discovery.zeroconf.advertisements] == [1153, 8080]
    service.startService()
    reactor.advance(0)
    report = service.health()
    assert not report.ok and "asyncio reactor" in report.checks["discovery"]
    service.stopService()
