"""amidcc.gateway.api without sockets (twisted.web DummyRequest): routes, filters, pagination,
errors as JSON, the bearer token, commands on a fake MeterClient, the OpenAPI document checked
against the route table both ways, and the wiring into the gateway service."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.resource import Resource, getChildForRequest
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from amidcc.codecs.c1219 import EdMode, EdModeStatus, EdStdStatus1, TableContext
from amidcc.codecs.c1219.formats import DataOrder, FormatControl
from amidcc.codecs.c1219.procedures import ProcedureNumber, ProcedureResponse
from amidcc.codecs.codes import ResponseCode
from amidcc.codecs.errors import RemoteProtocolError
from amidcc.codecs.psem import NokResponse
from amidcc.events import Component, EventClass, EventSource, FailureType, MeterEvent
from amidcc.gateway.api import ROUTES, ApiResource, jsonable
from amidcc.gateway.eventlog import EventLog
from amidcc.gateway.links.base import LinkDown, LinkKind, RequestTimeout, Throttled
from amidcc.gateway.meters import MeterError, MeterRefused, TableRead
from amidcc.gateway.registry import MeterRecord, MeterRegistry
from amidcc.gateway.web import HealthReport

from .rig import make_gateway

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "docs" / "openapi.json"
T0 = 1_767_225_600.0
TOKEN = "s3cret-token"


class FakeClient:
    """The MeterClient methods the API calls; each answer is a Deferred the test controls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.answer: Deferred[Any] | None = None
        self.ctx: TableContext | None = None

    def _next(self, name: str, *args: Any, **kw: Any) -> Deferred[Any]:
        self.calls.append((name, args, kw))
        assert self.answer is not None, "the test did not set an answer"
        return self.answer

    def read_table(self, meter_id: str, table: int, **kw: Any) -> Deferred[Any]:
        return self._next("read_table", meter_id, table, **kw)

    def run_procedure(self, meter_id: str, number: int, params: bytes = b"", **kw: Any) -> Deferred[Any]:
        return self._next("run_procedure", meter_id, number, params, **kw)

    def ping(self, meter_id: str) -> Deferred[Any]:
        return self._next("ping", meter_id)

    def table_context(self, meter_id: str) -> TableContext | None:
        return self.ctx


def meter(meter_id: str, n: int, **kw: Any) -> MeterRecord:
    values: dict[str, Any] = {
        "meter_id": meter_id,
        "ap_title": f".2.7.{n}",
        "link": LinkKind.C1222_TCP,
        "account": f"acct-{n}",
        "premise": f"prem-{n}",
        "manufacturer": "AMDC",
        "meter_type": "FORM2S",
        "lot": "lot-1",
    }
    values.update(kw)
    return MeterRecord(**values)


def event(meter_id: str, seq: int, *, t: float, failure: FailureType | None = None,
          cls: EventClass = EventClass.INFORMATIONAL, critical: bool = False) -> MeterEvent:
    return MeterEvent(
        event_id=f"{meter_id}-{seq}", meter_id=meter_id, ap_title=None, time=t, code=38 if failure else 2,
        mfg=False, name="x", argument=b"\x01\x02", event_class=cls, component=Component.METER,
        critical=critical, failure_type=failure, source=EventSource.LOG_READ, received=t, seq=seq,
    )  # fmt: skip


class Api:
    def __init__(self, stores: dict[str, object], token: str | None = TOKEN,
                 health: HealthReport | None = None) -> None:  # fmt: skip
        self.clock = Clock()
        self.clock.advance(T0 + 86_400)
        self.resource = ApiResource(
            stores=stores, clock=self.clock, token=token,
            health=(lambda: health) if health is not None else None,
        )  # fmt: skip
        self.root = Resource()
        self.root.putChild(b"api", self.resource)

    def request(
        self, method: str, path: str, query: dict[str, str] | None = None, *,
        body: bytes = b"", token: str | None = None, auth: str | None = None,
    ) -> DummyRequest:  # fmt: skip
        # as twisted.web.server.Request.process: split the raw path, then unquote each segment
        segments = [unquote(s).encode() for s in path.lstrip("/").split("/")]
        req = DummyRequest(segments)
        req.method = method.encode()
        req.args = {k.encode(): [v.encode()] for k, v in (query or {}).items()}
        req.content = io.BytesIO(body)
        header = auth if auth is not None else (f"Bearer {token}" if token else None)
        if header is not None:
            req.requestHeaders.setRawHeaders("authorization", [header])
        resource = getChildForRequest(self.root, req)
        out = resource.render(req)
        if out is not NOT_DONE_YET:
            req.write(out)
            req.finish()
        return req

    def __call__(self, method: str, path: str, query: dict[str, str] | None = None,
                 **kw: Any) -> tuple[int, Any]:  # fmt: skip
        req = self.request(method, path, query, **kw)
        assert req.finished == 1, "the response was not finished"
        assert req.responseHeaders.getRawHeaders("content-type") == ["application/json"]
        return req.responseCode or 200, json.loads(b"".join(req.written))


@pytest.fixture
def registry() -> Iterator[MeterRegistry]:
    reg = MeterRegistry(":memory:", synchronous="OFF")
    reg.register_many(
        [
            meter("m1", 1),
            meter("m2", 2, manufacturer="ELST", link=LinkKind.MQTT),
            meter("m3", 3, link=LinkKind.MQTT),
            meter("m/4", 4),
        ],
        now=T0,
    )
    reg.mark_unreachable("m3", now=T0 + 10)
    yield reg
    reg.close()


@pytest.fixture
def eventlog(registry: MeterRegistry) -> Iterator[EventLog]:
    log = EventLog(":memory:", synchronous="OFF", context=registry.context)
    log.append_many([
        event("m1", 1, t=T0 + 100),
        event("m1", 2, t=T0 + 200, failure=FailureType.SELF_TEST_FAILURE,
              cls=EventClass.SERVICE, critical=True),
        event("m1", 3, t=T0 + 300, failure=FailureType.SELF_TEST_FAILURE,
              cls=EventClass.SERVICE, critical=True),
        event("m1", 4, t=T0 + 400, failure=FailureType.SELF_TEST_FAILURE,
              cls=EventClass.SERVICE, critical=True),
        event("m2", 1, t=T0 + 150, failure=FailureType.LOW_BATTERY, cls=EventClass.BILLING),
    ])  # fmt: skip
    yield log
    log.close()


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def api(registry: MeterRegistry, eventlog: EventLog, client: FakeClient) -> Api:
    return Api({"registry": registry, "eventlog": eventlog, "meter_client": client})


# -- meters -----------------------------------------------------------------------------------


def test_list_meters_sorted_with_total(api: Api) -> None:
    status, body = api("GET", "/api/meters")
    assert status == 200
    assert [m["meter_id"] for m in body["meters"]] == ["m/4", "m1", "m2", "m3"]
    assert body["total"] == 4 and body["next_offset"] is None
    first = body["meters"][1]
    assert first["link"] == "c1222-tcp" and first["state"] == "registered"
    assert first["account"] == "acct-1" and first["route"] == []
    assert first["state_since_iso"] == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"link": "mqtt"}, ["m2", "m3"]),
        ({"state": "unreachable"}, ["m3"]),
        ({"manufacturer": "ELST"}, ["m2"]),
        ({"link": "mqtt", "manufacturer": "AMDC"}, ["m3"]),
        ({"link": "modbus"}, []),
    ],
)
def test_list_meters_filters(api: Api, query: dict[str, str], expected: list[str]) -> None:
    status, body = api("GET", "/api/meters", query)
    assert status == 200 and [m["meter_id"] for m in body["meters"]] == expected


def test_list_meters_pages(api: Api) -> None:
    _, first = api("GET", "/api/meters", {"limit": "3"})
    assert [m["meter_id"] for m in first["meters"]] == ["m/4", "m1", "m2"]
    assert first["next_offset"] == 3
    _, rest = api("GET", "/api/meters", {"limit": "3", "offset": "3"})
    assert [m["meter_id"] for m in rest["meters"]] == ["m3"] and rest["next_offset"] is None


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"state": "asleep"}, "state"),
        ({"link": "carrier-pigeon"}, "link"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_meter_parameters_are_400_naming_them(
    api: Api, query: dict[str, str], parameter: str
) -> None:
    status, body = api("GET", "/api/meters", query)
    assert status == 400
    assert body["error"]["parameter"] == parameter and parameter in body["error"]["message"]


def test_one_meter_and_an_escaped_id(api: Api) -> None:
    status, body = api("GET", "/api/meters/m2")
    assert status == 200 and body["manufacturer"] == "ELST" and body["link"] == "mqtt"
    assert api("GET", "/api/meters/m%2F4")[1]["meter_id"] == "m/4"
    status, body = api("GET", "/api/meters/nope")
    assert status == 404 and "nope" in body["error"]["message"]


def test_unknown_path_404_and_wrong_method_405(api: Api) -> None:
    status, body = api("GET", "/api/gadgets")
    assert status == 404 and "/api/gadgets" in body["error"]["message"]
    req = api.request("DELETE", "/api/meters")
    assert req.responseCode == 405
    assert req.responseHeaders.getRawHeaders("allow") == ["GET"]
    req = api.request("GET", "/api/meters/m1/ping")
    assert req.responseCode == 405 and req.responseHeaders.getRawHeaders("allow") == ["POST"]


def test_trailing_slash_is_the_same_resource(api: Api) -> None:
    assert api("GET", "/api/meters/")[1]["total"] == 4


def test_missing_stores_are_503(client: FakeClient) -> None:
    bare = Api({})
    status, body = bare("GET", "/api/meters")
    assert status == 503 and "registry" in body["error"]["message"]
    assert bare("GET", "/api/events")[0] == 503
    assert bare("GET", "/api/health")[0] == 503


# -- events -----------------------------------------------------------------------------------


def test_meter_events(api: Api) -> None:
    status, body = api("GET", "/api/meters/m1/events")
    assert status == 200 and body["count"] == 4
    first = body["events"][0]
    assert first["event_class"] == "informational" and first["argument"] == "0102"
    assert first["time_iso"] == "2026-01-01T00:01:40Z" and first["source"] == "log_read"
    assert api("GET", "/api/meters/ghost/events")[0] == 404


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"meter": "m2"}, ["m2-1"]),
        ({"account": "acct-1"}, ["m1-1", "m1-2", "m1-3", "m1-4"]),
        ({"manufacturer": "ELST"}, ["m2-1"]),
        ({"type": "FORM2S", "lot": "lot-1", "class": "billing"}, ["m2-1"]),
        ({"class": "service,billing", "limit": "2"}, ["m2-1", "m1-2"]),
        ({"critical": "true", "order": "desc", "limit": "1"}, ["m1-4"]),
        ({"failure_type": "low_battery"}, ["m2-1"]),
        ({"since": str(T0 + 150), "until": str(T0 + 300)}, ["m2-1", "m1-2"]),
        ({"since": "2026-01-01T00:05:00Z"}, ["m1-3", "m1-4"]),
        ({"since": "2026-01-01T00:05:00"}, ["m1-3", "m1-4"]),
        ({"premise": "prem-9"}, []),
    ],
)
def test_event_filters(api: Api, query: dict[str, str], expected: list[str]) -> None:
    status, body = api("GET", "/api/events", query)
    assert status == 200, body
    assert [e["event_id"] for e in body["events"]] == expected


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"class": "urgent"}, "class"),
        ({"since": "yesterday"}, "since"),
        ({"since": str(T0 + 10), "until": str(T0)}, "until"),
        ({"critical": "maybe"}, "critical"),
        ({"order": "random"}, "order"),
        ({"failure_type": "gremlins"}, "failure_type"),
        ({"limit": "100000"}, "limit"),
    ],
)
def test_bad_event_parameters(api: Api, query: dict[str, str], parameter: str) -> None:
    status, body = api("GET", "/api/events", query)
    assert (status, body["error"]["parameter"]) == (400, parameter)


def test_chronic_failures(api: Api) -> None:
    status, body = api("GET", "/api/events/chronic", {"window": "7d", "min_count": "3"})
    assert status == 200 and body["group_by"] == "meter" and body["window_seconds"] == 7 * 86_400
    (found,) = body["chronic"]
    assert found["key"] == "m1" and found["count"] == 3
    assert found["by_failure_type"] == {"self_test_failure": 3}
    _, by_lot = api("GET", "/api/events/chronic", {"group_by": "lot", "min_count": "4"})
    assert [(c["key"], c["meters"]) for c in by_lot["chronic"]] == [("lot-1", 2)]
    _, short = api("GET", "/api/events/chronic", {"window": "1h"})
    assert short["chronic"] == []  # the failures are a day old


@pytest.mark.parametrize(
    ("query", "parameter"),
    [({"window": "12"}, "window"), ({"window": "0s"}, "window"),
     ({"group_by": "colour"}, "group_by"), ({"min_count": "0"}, "min_count")],
)  # fmt: skip
def test_bad_chronic_parameters(api: Api, query: dict[str, str], parameter: str) -> None:
    status, body = api("GET", "/api/events/chronic", query)
    assert (status, body["error"]["parameter"]) == (400, parameter)


def test_health_follows_the_report() -> None:
    good = HealthReport(name="gw", version="1", uptime_seconds=3.0, checks={"links": "ok"})
    status, body = Api({}, health=good)("GET", "/api/health")
    assert status == 200 and body["status"] == "ok" and body["checks"] == {"links": "ok"}
    bad = HealthReport(name="gw", version="1", uptime_seconds=3.0, checks={"links": "down"})
    assert Api({}, health=bad)("GET", "/api/health")[0] == 503


# -- the token --------------------------------------------------------------------------------


def test_commands_need_the_bearer_token(api: Api, client: FakeClient) -> None:
    req = api.request("POST", "/api/meters/m1/ping")
    assert req.responseCode == 401
    assert req.responseHeaders.getRawHeaders("www-authenticate") == ['Bearer realm="amidcc"']
    status, body = api("POST", "/api/meters/m1/ping", token="wrong")
    assert status == 401 and "wrong" in body["error"]["message"]
    assert api("POST", "/api/meters/m1/ping", auth=f"Basic {TOKEN}")[0] == 401
    assert client.calls == []
    client.answer = succeed(0.25)
    assert api("POST", "/api/meters/m1/ping", token=TOKEN) == (
        200, {"meter_id": "m1", "round_trip_seconds": 0.25},
    )  # fmt: skip


def test_reads_need_no_token(api: Api) -> None:
    assert api("GET", "/api/meters")[0] == 200


def test_commands_are_refused_without_a_configured_token(
    registry: MeterRegistry, client: FakeClient
) -> None:
    open_api = Api({"registry": registry, "meter_client": client}, token=None)
    status, body = open_api("POST", "/api/meters/m1/ping", token="anything")
    assert status == 403 and "api.token" in body["error"]["message"] and client.calls == []


# -- commands ---------------------------------------------------------------------------------


def test_read_full_table_with_decoded_model(api: Api, client: FakeClient) -> None:
    value = EdModeStatus(ed_mode=EdMode.METERING, ed_std_status1=EdStdStatus1.LOW_BATTERY,
                         ed_mfg_status=b"\x00\x00")  # fmt: skip
    client.answer = succeed(
        TableRead(meter_id="m1", table=3, offset=None, data=b"\x01\x00\x01\x00\x00\x00", value=value)
    )
    status, body = api("POST", "/api/meters/m1/read", body=b'{"table": 3}', token=TOKEN)
    assert status == 200
    assert client.calls == [("read_table", ("m1", 3), {"offset": None, "count": None, "mfg": False})]
    assert body["hex"] == "010001000000" and body["size"] == 6
    assert body["decoded"]["ed_std_status1"] == {"value": 0x100, "names": ["LOW_BATTERY"]}
    assert body["decoded"]["ed_mode"]["names"] == ["METERING"]


def test_partial_manufacturer_read(api: Api, client: FakeClient) -> None:
    client.answer = succeed(TableRead(meter_id="m1", table=0x800, offset=4, data=b"\xaa", value=None))
    body = b'{"table": 0, "mfg": true, "offset": 4, "count": 1}'
    status, out = api("POST", "/api/meters/m1/read", body=body, token=TOKEN)
    assert status == 200 and out["decoded"] is None and out["hex"] == "aa"
    assert client.calls[0][2] == {"offset": 4, "count": 1, "mfg": True}


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        (b"", "table"),
        (b"{}", "table"),
        (b"[3]", "body"),
        (b"{not json", "body"),
        (b'{"table": 4096}', "table"),
        (b'{"table": "3"}', "table"),
        (b'{"table": true}', "table"),
        (b'{"table": 3, "offset": 0}', "count"),
        (b'{"table": 3, "count": 0}', "count"),
        (b'{"table": 3, "mfg": "yes"}', "mfg"),
        (b'{"table": 3, "tabel": 4}', "tabel"),
    ],
)
def test_bad_read_bodies(api: Api, client: FakeClient, body: bytes, parameter: str) -> None:
    status, out = api("POST", "/api/meters/m1/read", body=body, token=TOKEN)
    assert (status, out["error"]["parameter"]) == (400, parameter) and client.calls == []


def test_huge_body_is_refused(api: Api) -> None:
    status, out = api("POST", "/api/meters/m1/read", body=b" " * (65 << 10), token=TOKEN)
    assert status == 413 and out["error"]["parameter"] == "body"


def test_read_of_unknown_meter_is_404_before_the_client(api: Api, client: FakeClient) -> None:
    status, _ = api("POST", "/api/meters/zz/read", body=b'{"table": 1}', token=TOKEN)
    assert status == 404 and client.calls == []


def test_self_test_reports_failing_checks(api: Api, client: FakeClient) -> None:
    client.ctx = TableContext(format=FormatControl(data_order=DataOrder.BIG))
    client.answer = succeed(ProcedureResponse(
        number=ProcedureNumber.EXECUTE_DIAGNOSTICS, seq_nbr=1, result_code=0,
        resp_data=b"\x00\x00\x00\x05" + bytes(4),
    ))  # fmt: skip
    status, body = api("POST", "/api/meters/m1/self-test", token=TOKEN)
    assert status == 200
    assert client.calls == [("run_procedure", ("m1", 11, b""), {})]
    assert body["passed"] is False and body["failing_checks"] == [0, 2]
    assert body["result"] == "completed" and body["resp_data"].startswith("00000005")


def test_self_test_passes(api: Api, client: FakeClient) -> None:
    client.answer = succeed(ProcedureResponse(number=11, resp_data=bytes(8)))
    body = api("POST", "/api/meters/m1/self-test", token=TOKEN)[1]
    assert body["passed"] is True and body["failing_checks"] == []


@pytest.mark.parametrize(
    ("error", "status", "words"),
    [
        (RequestTimeout("no answer in 30s"), 504, "in time"),
        (LinkDown("connection lost"), 503, "cannot be reached"),
        (Throttled("busy"), 503, "cannot be reached"),
        (MeterRefused("m1", "ping", NokResponse(code=ResponseCode.ISC)), 502, "ISC"),
        (MeterError("garbled"), 502, "unusable"),
        (RemoteProtocolError("bad frame"), 502, "unusable"),
        (ValueError("a partial read needs a count"), 400, "count"),
        (KeyError("bug"), 500, "internal"),
    ],
)
def test_command_failures_map_to_statuses(
    api: Api, client: FakeClient, error: Exception, status: int, words: str
) -> None:
    client.answer = fail(error)
    code, body = api("POST", "/api/meters/m1/ping", token=TOKEN)
    assert code == status and words in body["error"]["message"]


def test_a_slow_command_answers_when_the_meter_does(api: Api, client: FakeClient) -> None:
    client.answer = Deferred()
    req = api.request("POST", "/api/meters/m1/ping", token=TOKEN)
    assert req.finished == 0 and req.written == []
    client.answer.callback(1.5)
    assert req.finished == 1 and json.loads(b"".join(req.written))["round_trip_seconds"] == 1.5


def test_a_disconnected_caller_cancels_the_command(api: Api, client: FakeClient) -> None:
    cancelled: list[bool] = []
    client.answer = Deferred(lambda d: cancelled.append(True))
    req = api.request("POST", "/api/meters/m1/ping", token=TOKEN)
    req.processingFailed(Failure(ConnectionDone()))
    assert cancelled == [True] and req.written == []


def test_no_client_means_503(registry: MeterRegistry) -> None:
    status, body = Api({"registry": registry})("POST", "/api/meters/m1/ping", token=TOKEN)
    assert status == 503 and "meter client" in body["error"]["message"]


# -- jsonable ---------------------------------------------------------------------------------


def test_jsonable_shapes() -> None:
    from datetime import datetime

    assert jsonable(frozenset({3, 1})) == [1, 3]
    assert jsonable({1: b"\x0f"}) == {"1": "0f"}
    assert jsonable(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05"
    assert jsonable(ProcedureNumber.EXECUTE_DIAGNOSTICS) == "EXECUTE_DIAGNOSTICS"
    assert jsonable(LinkKind.MQTT) == "mqtt"
    assert jsonable(EdStdStatus1(0)) == {"value": 0, "names": []}
    assert jsonable(object()).startswith("<object")


# -- the OpenAPI document ---------------------------------------------------------------------


def _doc() -> dict[str, Any]:
    return json.loads(OPENAPI.read_text())


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    methods = {"get", "post", "put", "patch", "delete", "head", "options"}
    return {
        (method.upper(), path): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in methods
    }


def test_openapi_document_and_route_table_agree() -> None:
    doc = _doc()
    assert doc["openapi"].startswith("3.1")
    in_doc = set(_operations(doc))
    in_code = {(r.method, r.path) for r in ROUTES}
    assert in_doc - in_code == set(), "documented but not served"
    assert in_code - in_doc == set(), "served but not documented"


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_openapi_parameters_and_security_match_the_code(route: Any) -> None:
    doc = _doc()
    op = _operations(doc)[(route.method, route.path)]
    params = [_resolve(doc, p) for p in doc["paths"][route.path].get("parameters", [])]
    params += [_resolve(doc, p) for p in op.get("parameters", [])]
    query = {p["name"] for p in params if p["in"] == "query"}
    path = {p["name"] for p in params if p["in"] == "path"}
    assert query == set(route.query)
    assert path == {s[1:-1] for s in route.path.split("/") if s.startswith("{")}
    secured = op.get("security", doc.get("security", []))
    assert bool(secured) is route.command
    assert "200" in op["responses"]
    if route.command:
        assert {"401", "403", "404", "504"} <= set(op["responses"])
    if route.query:
        assert "400" in op["responses"]


def test_openapi_references_resolve() -> None:
    doc = _doc()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                _resolve(doc, node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


# -- wiring into the gateway ------------------------------------------------------------------


def test_gateway_binds_the_api_on_api_listen() -> None:
    service, reactor = make_gateway(
        api={"listen": "tcp:18080:interface=127.0.0.1", "token": TOKEN},
        metrics={"listen": "tcp:19153:interface=127.0.0.1"},
    )
    assert [s.name for s in service.web] == ["metrics", "api"]
    service.startService()
    ports = {port: factory for port, factory, _backlog, _iface in reactor.tcpServers}
    assert set(ports) == {18080, 19153}
    assert all(iface == "127.0.0.1" for *_, iface in reactor.tcpServers)
    api_root = ports[18080].resource
    api = api_root.children[b"api"]
    assert isinstance(api, ApiResource) and api.token == TOKEN and api.stores is service.stores
    assert b"health" in api_root.children and b"api" not in service.web_root.children
    service.stopService()


def test_gateway_mounts_the_api_on_the_metrics_root_when_they_share_a_listener() -> None:
    listen = "tcp:19154:interface=127.0.0.1"
    service, reactor = make_gateway(api={"listen": listen}, metrics={"listen": listen})
    assert service.api is None and [s.name for s in service.web] == ["metrics"]
    assert isinstance(service.web_root.children[b"api"], ApiResource)
