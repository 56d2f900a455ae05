"""The operator API over a real loopback socket (twisted.web.client.Agent on the asyncio reactor),
on a GatewayService carrying the real C12.22 listener, MeterClient, registry, event log and event
intake, with a small simulated fleet connected over TCP: list and read meters, on-demand read,
self-test and ping, a pushed alarm showing up in the event log and as a trouble event, and the
error statuses (401, 404, 504) as JSON."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import task
from twisted.logger import LogPublisher
from twisted.web.client import Agent, FileBodyProducer, readBody
from twisted.web.http_headers import Headers

from amidcc.events import EventSource, FailureType, InProcessSink
from amidcc.gateway.config import parse_config
from amidcc.gateway.eventlog import EventLog
from amidcc.gateway.intake import EventIntake, EventReader
from amidcc.gateway.links.c1222_transport import build_c1222
from amidcc.gateway.meters import MeterClient
from amidcc.gateway.metrics import GatewayMetrics
from amidcc.gateway.registry import MeterRegistry
from amidcc.gateway.tap import GatewayService
from amidcc.simulators import (
    Access,
    FaultKind,
    LinkFaultKind,
    MeterConfig,
    build_fleet,
    pad_password,
)
from amidcc.simulators.c1222_tcp import SimC1222Service, plan_nodes

pytestmark = pytest.mark.integration

TOKEN = "integration-token"
PASSWORD = "master"
METER_CONFIG = MeterConfig(passwords=((pad_password(PASSWORD, pad=b" "), Access.WRITE),))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(reactor: Any, check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = reactor.seconds() + timeout
    while not check():
        if reactor.seconds() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await task.deferLater(reactor, 0.02, lambda: None)


class Http:
    """JSON over a real socket with Agent + readBody."""

    def __init__(self, reactor: Any, port: int) -> None:
        self.agent = Agent(reactor)
        self.base = f"http://127.0.0.1:{port}"

    async def __call__(
        self, method: str, path: str, body: object = None, *, token: str | None = None
    ) -> tuple[int, Any]:
        headers = Headers({b"accept": [b"application/json"]})
        if token is not None:
            headers.addRawHeader(b"authorization", f"Bearer {token}".encode())
        producer = None
        if body is not None:
            headers.addRawHeader(b"content-type", b"application/json")
            producer = FileBodyProducer(io.BytesIO(json.dumps(body).encode()))
        response = await self.agent.request(
            method.encode(), (self.base + path).encode(), headers, producer
        )
        raw = await readBody(response)
        assert response.headers.getRawHeaders(b"content-type") == [b"application/json"]
        return response.code, json.loads(raw)


# Twisted's HTTP client transport proxy has no abortConnection; readBody warns about it.
@pytest.mark.filterwarnings("ignore:Using readBody with a transport:DeprecationWarning")
@pytest_twisted.ensureDeferred
async def test_api_over_a_socket_with_a_simulated_fleet(reactor: Any, tmp_path: Path) -> None:
    api_port = free_port()
    config = parse_config({
        "gateway": {"name": "api-itest", "state_dir": str(tmp_path)},
        "c1222": {"listen": "tcp:0:interface=127.0.0.1", "password": PASSWORD},
        "requests": {"timeout": "500ms", "retries": 0, "backoff_base": "100ms",
                     "backoff_max": "100ms"},
        "api": {"listen": f"tcp:{api_port}:interface=127.0.0.1", "token": TOKEN},
        "metrics": {"listen": f"tcp:{free_port()}:interface=127.0.0.1"},
    })  # fmt: skip
    metrics = GatewayMetrics(process=False)
    gateway = GatewayService(config, reactor, metrics=metrics, log_publisher=LogPublisher())
    registry = MeterRegistry(tmp_path / "gw.db", synchronous="OFF")
    eventlog = EventLog(tmp_path / "gw.db", synchronous="OFF", context=registry.context)
    sink = InProcessSink()
    intake = EventIntake(eventlog=eventlog, sink=sink, meters=registry.get, metrics=metrics)
    holder: dict[str, EventReader] = {}
    listener = build_c1222(
        config, reactor, registry=registry, metrics=metrics,
        on_alarm=lambda address, services, now: holder["reader"].on_alarm(address, services, now),
    )  # fmt: skip
    client = MeterClient(
        [listener.tcp], resolve=registry, clock=reactor, requests=config.requests, metrics=metrics
    )
    holder["reader"] = EventReader(intake, client, reactor, metrics=metrics)
    gateway.stores.update(registry=registry, eventlog=eventlog, meter_client=client)
    listener.setServiceParent(gateway.links)
    gateway.startService()
    port = await listener.listening

    meters = build_fleet(4, 21, start_time=reactor.seconds() - 3600, config=METER_CONFIG)
    sims = SimC1222Service(
        reactor, f"tcp:127.0.0.1:{port.getHost().port}", plan_nodes(meters), tick_interval=0.05
    )
    sims.startService()
    http = Http(reactor, api_port)
    try:
        await wait_for(reactor, lambda: len(registry) == 4, "the fleet registers")
        first, faulty, silent = meters[0].meter_id, meters[1].meter_id, meters[2].meter_id

        status, body = await http("GET", "/api/meters?link=c1222-tcp&limit=3")
        assert status == 200 and body["total"] == 4 and len(body["meters"]) == 3
        assert body["next_offset"] == 3
        status, one = await http("GET", f"/api/meters/{first}")
        assert status == 200 and one["ap_title"] == meters[0].identity.ap_title_text

        # on-demand read: the nameplate, decoded
        status, read = await http("POST", f"/api/meters/{first}/read", {"table": 1}, token=TOKEN)
        assert status == 200, read
        assert read["decoded"]["mfg_serial_number"].strip() == first and read["size"] > 0
        status, part = await http(
            "POST", f"/api/meters/{first}/read", {"table": 1, "offset": 0, "count": 4}, token=TOKEN
        )
        assert status == 200 and part["hex"] == read["hex"][:8] and part["decoded"] is None

        # self-test: passes, then fails on a meter with a failed RAM
        status, passed = await http("POST", f"/api/meters/{first}/self-test", token=TOKEN)
        assert status == 200 and passed["passed"] is True, passed
        meters[1].inject(FaultKind.RAM, reactor.seconds())
        status, failed = await http("POST", f"/api/meters/{faulty}/self-test", token=TOKEN)
        assert status == 200 and failed["passed"] is False and failed["failing_checks"]

        status, ping = await http("POST", f"/api/meters/{first}/ping", token=TOKEN)
        assert status == 200 and ping["round_trip_seconds"] >= 0

        # a pushed alarm goes through the intake: logged, and a trouble event at once
        meters[3].inject(FaultKind.TAMPER, reactor.seconds())
        tampered = meters[3].meter_id
        await wait_for(
            reactor,
            lambda: any(t.failure_type is FailureType.TAMPER for t in sink.events),
            "the tamper alarm becomes a trouble event",
        )
        status, events = await http("GET", f"/api/meters/{tampered}/events?class=safety")
        assert status == 200 and events["count"] >= 1
        assert {e["source"] for e in events["events"]} == {EventSource.PUSHED.value}
        assert any(e["failure_type"] == "tamper" for e in events["events"])
        maker = registry.get(tampered).manufacturer  # type: ignore[union-attr]  # its ED class
        status, by_maker = await http("GET", f"/api/events?manufacturer={maker}&class=safety")
        assert status == 200 and tampered in {e["meter_id"] for e in by_maker["events"]}

        # errors, as JSON
        assert (await http("POST", f"/api/meters/{first}/ping"))[0] == 401
        assert (await http("POST", f"/api/meters/{first}/ping", token="nope"))[0] == 401
        status, missing = await http("POST", "/api/meters/no-such-meter/ping", token=TOKEN)
        assert status == 404 and missing["error"]["parameter"] == "meter_id"
        status, bad = await http("GET", "/api/events?since=last-tuesday")
        assert status == 400 and bad["error"]["parameter"] == "since"
        meters[2].inject(LinkFaultKind.SILENT, reactor.seconds())
        status, late = await http("POST", f"/api/meters/{silent}/ping", token=TOKEN)
        assert status == 504 and "in time" in late["error"]["message"]

        status, health = await http("GET", "/api/health")
        assert status == 200 and health["name"] == "api-itest"
    finally:
        await sims.stopService()
        await gateway.stopService()
        eventlog.close()
        registry.close()
