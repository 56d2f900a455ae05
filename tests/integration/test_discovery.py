"""zeroconf for real, on loopback only (``interfaces=["127.0.0.1"]``, IPv4): the gateway advertises
``_c1222._tcp`` and ``_amidcc-api._tcp`` and finds a collector advertising itself; the gateway
service wired from config does the same. Skipped with a reason where loopback cannot multicast."""

from __future__ import annotations

import asyncio
import socket
import struct
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.logger import LogPublisher
from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from amidcc.gateway.config import parse_config
from amidcc.gateway.discovery import (
    API_SERVICE,
    C1222_SERVICE,
    Advertisement,
    Collector,
    ZeroconfDiscovery,
)
from amidcc.gateway.metrics import GatewayMetrics
from amidcc.gateway.tap import GatewayService

pytestmark = pytest.mark.integration

LOOPBACK = ["127.0.0.1"]


def _probe_multicast() -> str | None:
    """None when a datagram sent to a multicast group on loopback comes back; else why not."""
    group = "224.0.0.251"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, socket.socket(
            socket.AF_INET, socket.SOCK_DGRAM
        ) as tx:
            rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            rx.bind(("", 0))
            port = rx.getsockname()[1]
            membership = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(LOOPBACK[0]))
            rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            rx.settimeout(1.0)
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(LOOPBACK[0]))
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            tx.sendto(b"amidcc-probe", (group, port))
            data, _ = rx.recvfrom(64)
            return None if data == b"amidcc-probe" else "a stranger's datagram came back"
    except OSError as exc:
        return f"no multicast on loopback here: {exc}"


@pytest.fixture(scope="module")
def multicast() -> None:
    why = _probe_multicast()
    if why is not None:
        pytest.skip(why)


def aio(make: Callable[[], Coroutine[Any, Any, Any]]) -> Deferred[Any]:
    """Run an asyncio coroutine on the reactor's loop, as a Deferred (integration notes)."""
    return Deferred.fromFuture(asyncio.ensure_future(make()))


async def eventually(reactor: Any, check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = reactor.seconds() + timeout
    while not check():
        if reactor.seconds() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await task.deferLater(reactor, 0.05, lambda: None)


class FakeCollector:
    """A collector advertising itself the way a real one would: its own zeroconf instance."""

    def __init__(self, name: str, port: int) -> None:
        self.info = ServiceInfo(
            C1222_SERVICE,
            f"{name}.{C1222_SERVICE}",
            port=port,
            properties={"role": "collector", "cell": "7"},
            server=f"{name}.local.",
            addresses=[socket.inet_aton("127.0.0.1")],
        )
        self.zc: AsyncZeroconf | None = None

    async def start(self) -> None:
        self.zc = AsyncZeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
        await (await self.zc.async_register_service(self.info))

    async def withdraw(self) -> None:
        assert self.zc is not None
        await (await self.zc.async_unregister_service(self.info))

    async def close(self) -> None:
        if self.zc is not None:
            await self.zc.async_close()


async def resolve(*names: str) -> list[AsyncServiceInfo | None]:
    """Resolve services (full names) at once with an independent zeroconf instance: a third
    party on the LAN."""
    zc = AsyncZeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)

    async def one(name: str) -> AsyncServiceInfo | None:
        info = AsyncServiceInfo(name.split(".", 1)[1], name)
        return info if await info.async_request(zc.zeroconf, 3000) else None

    try:
        return list(await asyncio.gather(*(one(name) for name in names)))
    finally:
        await zc.async_close()


@pytest_twisted.ensureDeferred
async def test_gateway_advertises_and_finds_a_collector(reactor: Any, multicast: None) -> None:
    tag = uuid.uuid4().hex[:8]
    collector = FakeCollector(f"collector-{tag}", 21153)
    ads = (
        Advertisement(service_type=C1222_SERVICE, instance=f"amidcc gw-{tag}", port=11153,
                      addresses=("127.0.0.1",), properties={"role": "head-end"}),
        Advertisement(service_type=API_SERVICE, instance=f"amidcc gw-{tag}", port=18080,
                      addresses=("127.0.0.1",), properties={"path": "/api"}),
    )  # fmt: skip
    gateway = ZeroconfDiscovery(reactor, interfaces=LOOPBACK, advertisements=ads)
    changes: list[tuple[Collector, ...]] = []
    gateway.subscribe(changes.append)
    try:
        collector_up, gateway_up = aio(collector.start), gateway.start()  # probing overlaps
        await collector_up
        await gateway_up
        assert set(gateway.registered) == {ad.name for ad in ads}

        def mine() -> list[Collector]:
            return [c for c in gateway.collectors() if tag in c.name]

        await eventually(reactor, lambda: len(mine()) == 1, "the collector is found")
        (found,) = mine()
        assert found.name == collector.info.name and found.source == "zeroconf"
        assert (found.endpoint, found.properties["cell"]) == ("tcp:127.0.0.1:21153", "7")
        assert changes and any(found in batch for batch in changes)
        # the gateway's own _c1222._tcp instance is not a collector of its own
        assert all(c.name != ads[0].name for c in gateway.collectors())

        # a third party sees both of the gateway's services
        c1222, api = await aio(lambda: resolve(ads[0].name, ads[1].name))
        assert c1222 is not None and c1222.port == 11153
        assert c1222.properties[b"role"] == b"head-end"
        assert api is not None and api.port == 18080 and api.parsed_addresses() == ["127.0.0.1"]

        await aio(collector.withdraw)
        await eventually(reactor, lambda: not mine(), "the withdrawn collector is forgotten")
    finally:
        await gateway.stop()
        await aio(collector.close)
    assert gateway.registered == ()


@pytest_twisted.ensureDeferred
async def test_the_gateway_service_advertises_from_its_config(
    reactor: Any, multicast: None, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    config = parse_config({
        "gateway": {"name": f"itest-{tag}", "state_dir": str(tmp_path)},
        "api": {"listen": f"tcp:{ports[0]}:interface=127.0.0.1"},
        "metrics": {"listen": f"tcp:{ports[1]}:interface=127.0.0.1"},
        "discovery": {"zeroconf": True, "interfaces": LOOPBACK,
                      "static": ["tcp:192.0.2.20:1153"]},
    })  # fmt: skip
    gateway = GatewayService(
        config, reactor, metrics=GatewayMetrics(process=False), log_publisher=LogPublisher()
    )
    discovery = gateway.discovery
    assert discovery is not None
    gateway.startService()
    try:
        assert discovery.started is not None
        await discovery.started
        assert discovery.health() == "ok" and gateway.health().checks["discovery"] == "ok"
        names = (f"amidcc itest-{tag}.{C1222_SERVICE}", f"amidcc itest-{tag}.{API_SERVICE}")
        info, api = await aio(lambda: resolve(*names))
        assert info is not None and info.port == 1153
        assert info.properties[b"gateway"] == f"itest-{tag}".encode()
        assert api is not None and api.port == ports[0] and api.properties[b"auth"] == b"none"
        assert [c.endpoint for c in discovery.collectors()][:1] == ["tcp:192.0.2.20:1153"]
    finally:
        await gateway.stopService()
