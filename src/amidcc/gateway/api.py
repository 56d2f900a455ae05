"""The operator HTTP JSON API under ``/api`` (twisted.web, no framework), described in
``docs/openapi.json``.

Reads: meters (filter by link, state, manufacturer; paged), one meter, its events, the event log by
meter / account / equipment / class / time (FR10-FR12), chronic failures (FR13), health.
Commands (``POST``): on-demand table read, self-test (SP11) and ping, through the
:class:`~amidcc.gateway.meters.MeterClient`; they need ``Authorization: Bearer <api.token>``, and
are refused with 403 while no token is configured.

The routes are one table (:data:`ROUTES`: method, path template, handler, query parameters); the
OpenAPI document is checked against it by the tests, both ways. Errors are JSON
``{"error": {"status": 400, "message": "...", "parameter": "limit"}}`` with the matching status:
400 names the bad parameter, 401 a missing or wrong token, 404 an unknown meter or path, 405 a
method the path does not take, 502 a meter that answered wrongly, 503 no link or no store,
504 a meter that did not answer in time.

Collaborators are looked up by name in a mapping at each request (the gateway's ``stores``:
``"registry"``, ``"eventlog"``, ``"meter_client"``), so the API can be mounted before the stores
are filled. :func:`attach_api` mounts it on the gateway: its own listener on ``api.listen``
(loopback by default) with ``/api`` and ``/health``, or ``/api`` on the metrics root when both
listen on the same endpoint.
"""

from __future__ import annotations

import dataclasses
import enum
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from twisted.application import strports
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IProtocolFactory
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from amidcc.codecs.c1219 import TableContext
from amidcc.codecs.c1219.procedures import ProcedureNumber, ProcedureResponse, ProcedureResult
from amidcc.codecs.errors import CodecError
from amidcc.events import EventClass, FailureType, MeterEvent

from .config import parse_duration
from .eventlog import ChronicFailure, EventLog
from .links.base import LinkDown, LinkKind, RequestTimeout, Throttled
from .meters import MeterError, MeterRefused, TableReader
from .registry import MeterRecord, MeterRegistry, MeterState, UnknownMeter
from .web import HealthReport, HealthResource, build_site

if TYPE_CHECKING:
    from .tap import GatewayService

__all__ = [
    "MAX_BODY",
    "ROUTES",
    "ApiError",
    "ApiResource",
    "MeterCommands",
    "Route",
    "attach_api",
    "jsonable",
]

log = Logger(namespace="amidcc.gateway.api")

MAX_BODY = 64 << 10
"""Largest request body accepted (bytes)."""

STORE_REGISTRY, STORE_EVENTLOG, STORE_CLIENT = "registry", "eventlog", "meter_client"
"""Names of the collaborators in the stores mapping."""

_GROUPS = ("meter", "account", "premise", "meter_type", "module", "manufacturer", "lot")
_EVENT_FILTERS = ("class", "failure_type", "critical", "since", "until", "limit", "order")


@dataclass(frozen=True, kw_only=True, slots=True)
class Route:
    """One operation of the API."""

    method: str
    """HTTP method."""
    path: str
    """Path template, ``{name}`` for a path parameter (as in the OpenAPI document)."""
    handler: str
    """Name of the ApiResource method that answers it."""
    query: tuple[str, ...] = ()
    """Query parameters it takes; any other is a 400."""
    command: bool = False
    """Whether it needs the bearer token."""


ROUTES: tuple[Route, ...] = (
    Route(method="GET", path="/api/health", handler="health"),
    Route(
        method="GET",
        path="/api/meters",
        handler="list_meters",
        query=("link", "state", "manufacturer", "limit", "offset"),
    ),
    Route(method="GET", path="/api/meters/{meter_id}", handler="get_meter"),
    Route(
        method="GET",
        path="/api/meters/{meter_id}/events",
        handler="meter_events",
        query=_EVENT_FILTERS,
    ),
    Route(
        method="GET",
        path="/api/events",
        handler="events",
        query=("meter", "account", "premise", "type", "module", "manufacturer", "lot",
               *_EVENT_FILTERS),
    ),  # fmt: skip
    Route(
        method="GET",
        path="/api/events/chronic",
        handler="chronic",
        query=("window", "min_count", "group_by", "per_failure_type", "min_meters"),
    ),
    Route(method="POST", path="/api/meters/{meter_id}/read", handler="read", command=True),
    Route(method="POST", path="/api/meters/{meter_id}/self-test", handler="self_test", command=True),
    Route(method="POST", path="/api/meters/{meter_id}/ping", handler="ping", command=True),
)


class ApiError(Exception):
    """An error answered as JSON with an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        parameter: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameter = parameter
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        """The JSON error body."""
        error: dict[str, object] = {"status": self.status, "message": self.message}
        if self.parameter is not None:
            error["parameter"] = self.parameter
        return {"error": error}


class MeterCommands(TableReader, Protocol):
    """What the commands need of :class:`~amidcc.gateway.meters.MeterClient`."""

    def run_procedure(
        self, meter_id: str, number: int, params: bytes = b"", *, mfg: bool = False
    ) -> Deferred[ProcedureResponse]: ...

    def ping(self, meter_id: str) -> Deferred[float]: ...

    def table_context(self, meter_id: str) -> TableContext | None: ...


class Clock(Protocol):
    def seconds(self) -> float: ...


# -- JSON -------------------------------------------------------------------------------------


def jsonable(value: object) -> Any:
    """``value`` as JSON-ready data: dataclasses as objects, bytes as hex, enums by name (flags
    as ``{"value", "names"}``), datetimes in ISO 8601, sets sorted."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, enum.Flag):
        names = [m.name for m in type(value) if m.value and m in value]
        return {"value": int(value.value), "names": names}
    if isinstance(value, enum.StrEnum):
        return value.value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, int | float):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=repr)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value)


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def meter_json(record: MeterRecord) -> dict[str, Any]:
    """One meter as the API shows it."""
    body: dict[str, Any] = jsonable(record)
    body["state_since_iso"] = _iso(record.state_since)
    body["last_seen_iso"] = _iso(record.last_seen)
    return body


def event_json(event: MeterEvent) -> dict[str, Any]:
    """One event as the API shows it."""
    body: dict[str, Any] = jsonable(event)
    body["event_class"] = event.event_class.name.lower()
    body["time_iso"] = _iso(event.time)
    body["received_iso"] = _iso(event.received)
    return body


def chronic_json(found: ChronicFailure) -> dict[str, Any]:
    """One chronic-failure group as the API shows it."""
    body: dict[str, Any] = jsonable(found)
    body["by_failure_type"] = {f.value: n for f, n in found.by_failure_type}
    return body


# -- parameters -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Call:
    """One request, parsed: what a handler works from."""

    params: Mapping[str, str]
    """Path parameters."""
    query: Mapping[str, str]
    """Query parameters (the last value where one is repeated)."""
    body: bytes
    """The request body."""
    now: float
    """The clock's time when the request arrived."""


def _bad(name: str, why: str) -> ApiError:
    return ApiError(400, f"{name}: {why}", parameter=name)


def _int(q: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    text = q.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _bad(name, f"expected an integer, got {text!r}") from None
    if not lo <= value <= hi:
        raise _bad(name, f"must be between {lo} and {hi}, got {value}")
    return value


def _bool(q: Mapping[str, str], name: str) -> bool | None:
    text = q.get(name)
    if text is None:
        return None
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise _bad(name, f"expected true or false, got {text!r}")


def _time(q: Mapping[str, str], name: str) -> float | None:
    """Seconds since the epoch, or an ISO 8601 time (``Z`` or an offset; naive means UTC)."""
    text = q.get(name)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(name, f"expected Unix seconds or an ISO 8601 time, got {text!r}") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _choice(q: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    text = q.get(name)
    if text is not None and text not in choices:
        raise _bad(name, f"expected one of {', '.join(choices)}, got {text!r}")
    return text


def _classes(q: Mapping[str, str]) -> list[EventClass] | None:
    text = q.get("class")
    if text is None:
        return None
    found: list[EventClass] = []
    for part in text.split(","):
        try:
            found.append(EventClass[part.strip().upper()])
        except KeyError:
            names = ", ".join(c.name.lower() for c in EventClass)
            raise _bad("class", f"expected classes among {names}, got {part!r}") from None
    return found


def _failure_types(q: Mapping[str, str]) -> list[FailureType] | None:
    text = q.get("failure_type")
    if text is None:
        return None
    try:
        return [FailureType(part.strip()) for part in text.split(",")]
    except ValueError:
        raise _bad("failure_type", f"unknown failure type in {text!r}") from None


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _bad("body", "expected a JSON object") from None
    if not isinstance(value, dict):
        raise _bad("body", "expected a JSON object")
    return value


def _field_int(body: Mapping[str, Any], name: str, lo: int, hi: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(name, f"expected an integer, got {value!r}")
    if not lo <= value <= hi:
        raise _bad(name, f"must be between {lo} and {hi}, got {value}")
    return value


# -- the resource -----------------------------------------------------------------------------


def _header(request: Request, name: str, value: str) -> None:
    request.setHeader(name.encode("ascii"), value.encode("latin-1"))  # type: ignore[no-untyped-call]


def _segments(template: str) -> list[str]:
    return template.strip("/").split("/")


def _match(template: list[str], path: list[str]) -> dict[str, str] | None:
    if len(template) != len(path):
        return None
    params: dict[str, str] = {}
    for want, got in zip(template, path, strict=True):
        if want.startswith("{"):
            if not got:
                return None
            params[want[1:-1]] = got
        elif want != got:
            return None
    return params


class ApiResource(Resource):
    """``/api``: every route of :data:`ROUTES`, as a leaf resource."""

    isLeaf = True

    def __init__(
        self,
        *,
        stores: Mapping[str, object],
        clock: Clock,
        token: str | None = None,
        health: Callable[[], HealthReport] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.stores = stores
        self.clock = clock
        self.token = token
        self.health_report = health
        self._routes = [(route, _segments(route.path)) for route in ROUTES]

    # -- dispatch ------------------------------------------------------------------------------

    def render(self, request: Request) -> bytes | int:
        try:
            route, call = self._parse(request)
            if route.command:
                self._authorize(request)
            status, result = getattr(self, f"_{route.handler}")(call)
        except ApiError as err:
            return self._error(request, err)
        except Exception:
            log.failure("API request {uri} failed", uri=request.uri)
            return self._error(request, ApiError(500, "internal error (see the gateway log)"))
        if isinstance(result, Deferred):
            return self._later(request, result)
        return self._json(request, status, result)

    def _parse(self, request: Request) -> tuple[Route, Call]:
        segments = (request.prepath or []) + (request.postpath or [])
        path = [p.decode("utf-8", "replace") for p in segments]
        if path and not path[-1]:
            path.pop()  # a trailing slash
        if not path or path[0] != "api":
            path.insert(0, "api")
        method = (request.method or b"GET").decode("ascii", "replace")
        method = "GET" if method == "HEAD" else method
        allowed: list[str] = []
        for route, template in self._routes:
            params = _match(template, path)
            if params is None:
                continue
            if route.method != method:
                allowed.append(route.method)
                continue
            return route, Call(
                params=params,
                query=self._query(request, route),
                body=self._body(request),
                now=self.clock.seconds(),
            )
        if allowed:
            raise ApiError(
                405,
                f"{method} is not allowed on /{'/'.join(path)}",
                headers={"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise ApiError(404, f"no such resource: /{'/'.join(path)}")

    @staticmethod
    def _query(request: Request, route: Route) -> dict[str, str]:
        query: dict[str, str] = {}
        for key, values in (request.args or {}).items():
            name = key.decode("utf-8", "replace")
            if name not in route.query:
                raise _bad(name, "unknown parameter")
            query[name] = values[-1].decode("utf-8", "replace")
        return query

    @staticmethod
    def _body(request: Request) -> bytes:
        content = request.content
        if content is None:
            return b""
        content.seek(0)
        data = content.read(MAX_BODY + 1)
        if len(data) > MAX_BODY:
            raise ApiError(413, f"body larger than {MAX_BODY} bytes", parameter="body")
        return bytes(data)

    def _authorize(self, request: Request) -> None:
        if not self.token:
            raise ApiError(403, "commands are disabled: set api.token in the configuration")
        header = request.getHeader("authorization") or ""
        scheme, _, given = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="amidcc"'}
        if scheme.lower() != "bearer" or not given:
            raise ApiError(401, "this command needs 'Authorization: Bearer <token>'", headers=challenge)
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            challenge["WWW-Authenticate"] += ', error="invalid_token"'
            raise ApiError(401, "wrong bearer token", headers=challenge)

    def _json(self, request: Request, status: int, body: object) -> bytes:
        request.setResponseCode(status)
        _header(request, "content-type", "application/json")
        _header(request, "cache-control", "no-store")
        return json.dumps(body, sort_keys=True, allow_nan=False).encode() + b"\n"

    def _error(self, request: Request, err: ApiError) -> bytes:
        for name, value in err.headers.items():
            _header(request, name, value)
        return self._json(request, err.status, err.body())

    def _later(self, request: Request, pending: Deferred[Any]) -> int:
        gone: list[bool] = []

        def disconnected(_: object) -> None:
            gone.append(True)
            pending.cancel()

        request.notifyFinish().addErrback(disconnected)

        def done(result: tuple[int, object] | Failure) -> None:
            if gone:
                return
            if isinstance(result, Failure):
                out = self._error(request, _command_error(result))
            else:
                out = self._json(request, *result)
            request.write(out)  # type: ignore[no-untyped-call]
            request.finish()  # type: ignore[no-untyped-call]

        pending.addBoth(done)
        return NOT_DONE_YET

    # -- collaborators -------------------------------------------------------------------------

    def _registry(self) -> MeterRegistry:
        found = self.stores.get(STORE_REGISTRY)
        if not isinstance(found, MeterRegistry):
            raise ApiError(503, "no meter registry in this gateway")
        return found

    def _eventlog(self) -> EventLog:
        found = self.stores.get(STORE_EVENTLOG)
        if not isinstance(found, EventLog):
            raise ApiError(503, "no event log in this gateway")
        return found

    def _client(self) -> MeterCommands:
        found = self.stores.get(STORE_CLIENT)
        if found is None:
            raise ApiError(503, "no meter client in this gateway: commands unavailable")
        return cast(MeterCommands, found)

    def _meter(self, meter_id: str) -> MeterRecord:
        record = self._registry().get(meter_id)
        if record is None:
            raise ApiError(404, f"no meter {meter_id!r}", parameter="meter_id")
        return record

    # -- reads ---------------------------------------------------------------------------------

    def _health(self, call: Call) -> tuple[int, object]:
        if self.health_report is None:
            raise ApiError(503, "no health checks in this gateway")
        report = self.health_report()
        return (200 if report.ok else 503), json.loads(report.to_json())

    def _list_meters(self, call: Call) -> tuple[int, object]:
        q = call.query
        link = _choice(q, "link", tuple(k.value for k in LinkKind))
        state = _choice(q, "state", tuple(s.value for s in MeterState))
        manufacturer = q.get("manufacturer")
        limit = _int(q, "limit", 100, 1, 1000)
        offset = _int(q, "offset", 0, 0, 1 << 31)
        found = sorted(
            (
                r for r in self._registry()
                if (link is None or r.link.value == link)
                and (state is None or r.state.value == state)
                and (manufacturer is None or (r.manufacturer or "").strip() == manufacturer.strip())
            ),
            key=lambda r: r.meter_id,
        )  # fmt: skip
        page = found[offset : offset + limit]
        following = offset + limit if offset + limit < len(found) else None
        return 200, {
            "meters": [meter_json(r) for r in page],
            "total": len(found),
            "limit": limit,
            "offset": offset,
            "next_offset": following,
        }

    def _get_meter(self, call: Call) -> tuple[int, object]:
        return 200, meter_json(self._meter(call.params["meter_id"]))

    def _event_query(
        self,
        q: Mapping[str, str],
        *,
        meter_id: str | None = None,
        account: str | None = None,
        premise: str | None = None,
        meter_type: str | None = None,
        module: str | None = None,
        manufacturer: str | None = None,
        lot: str | None = None,
    ) -> tuple[int, object]:
        since, until = _time(q, "since"), _time(q, "until")
        if since is not None and until is not None and until < since:
            raise _bad("until", "is before since")
        limit = _int(q, "limit", 1000, 1, 10_000)
        order = _choice(q, "order", ("asc", "desc")) or "asc"
        events = self._eventlog().query(
            meter_id=meter_id,
            account=account,
            premise=premise,
            meter_type=meter_type,
            module=module,
            manufacturer=manufacturer,
            lot=lot,
            since=since,
            until=until,
            classes=_classes(q),
            failure_types=_failure_types(q),
            critical=_bool(q, "critical"),
            limit=limit,
            newest_first=order == "desc",
        )
        return 200, {"events": [event_json(e) for e in events], "count": len(events), "limit": limit}

    def _meter_events(self, call: Call) -> tuple[int, object]:
        meter_id = self._meter(call.params["meter_id"]).meter_id
        return self._event_query(call.query, meter_id=meter_id)

    def _events(self, call: Call) -> tuple[int, object]:
        q = call.query
        return self._event_query(
            q,
            meter_id=q.get("meter"),
            account=q.get("account"),
            premise=q.get("premise"),
            meter_type=q.get("type"),
            module=q.get("module"),
            manufacturer=q.get("manufacturer"),
            lot=q.get("lot"),
        )

    def _chronic(self, call: Call) -> tuple[int, object]:
        q = call.query
        text = q.get("window", "30d")
        try:
            window = parse_duration(text)
        except ValueError:
            raise _bad("window", f"expected a duration like '30d', got {text!r}") from None
        if window <= 0:
            raise _bad("window", "must be positive")
        group_by = _choice(q, "group_by", _GROUPS) or "meter"
        found = self._eventlog().chronic_failures(
            call.now,
            window,
            _int(q, "min_count", 3, 1, 1 << 20),
            group_by=group_by,  # type: ignore[arg-type]  # checked against _GROUPS
            per_failure_type=bool(_bool(q, "per_failure_type")),
            min_meters=_int(q, "min_meters", 1, 1, 1 << 20),
        )
        return 200, {
            "group_by": group_by,
            "window_seconds": window,
            "until": call.now,
            "chronic": [chronic_json(c) for c in found],
        }

    # -- commands ------------------------------------------------------------------------------

    def _read(self, call: Call) -> tuple[int, object]:
        meter_id = self._meter(call.params["meter_id"]).meter_id
        body = _json_object(call.body)
        unknown = sorted(set(body) - {"table", "offset", "count", "mfg"})
        if unknown:
            raise _bad(unknown[0], "unknown field")
        table = _field_int(body, "table", 0, 0x7FF)
        if table is None:
            raise _bad("table", "required (0-2047)")
        offset = _field_int(body, "offset", 0, 0xFFFFFF)
        count = _field_int(body, "count", 1, 0xFFFF)
        if offset is not None and count is None:
            raise _bad("count", "required with offset")
        mfg = body.get("mfg", False)
        if not isinstance(mfg, bool):
            raise _bad("mfg", f"expected true or false, got {mfg!r}")
        d = self._client().read_table(meter_id, table, offset=offset, count=count, mfg=mfg)

        def shown(read: Any) -> tuple[int, object]:
            return 200, {
                "meter_id": meter_id,
                "table": table,
                "mfg": mfg,
                "offset": offset,
                "count": count,
                "size": len(read.data),
                "hex": bytes(read.data).hex(),
                "decoded": jsonable(read.value),
            }

        return 200, d.addCallback(shown)

    def _self_test(self, call: Call) -> tuple[int, object]:
        meter_id = self._meter(call.params["meter_id"]).meter_id
        client = self._client()
        d = client.run_procedure(meter_id, ProcedureNumber.EXECUTE_DIAGNOSTICS)

        def shown(answer: ProcedureResponse) -> tuple[int, object]:
            ctx = client.table_context(meter_id)
            order = ctx.format.data_order.byteorder if ctx is not None else "little"
            bitmap = int.from_bytes(answer.resp_data[:4], order)
            failing = [bit for bit in range(32) if bitmap & (1 << bit)]
            result = answer.result_code
            name = ProcedureResult(result).name if result in set(ProcedureResult) else str(result)
            return 200, {
                "meter_id": meter_id,
                "procedure": int(ProcedureNumber.EXECUTE_DIAGNOSTICS),
                "result": name.lower(),
                "result_code": int(result),
                "passed": result == ProcedureResult.COMPLETED and not failing,
                "failing_checks": failing,
                "resp_data": answer.resp_data.hex(),
            }

        return 200, d.addCallback(shown)

    def _ping(self, call: Call) -> tuple[int, object]:
        meter_id = self._meter(call.params["meter_id"]).meter_id

        def shown(seconds: float) -> tuple[int, object]:
            return 200, {"meter_id": meter_id, "round_trip_seconds": seconds}

        return 200, self._client().ping(meter_id).addCallback(shown)


def _command_error(failure: Failure) -> ApiError:
    """The HTTP answer to a failed meter command."""
    exc = failure.value
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RequestTimeout):
        return ApiError(504, f"the meter did not answer in time: {exc}")
    if isinstance(exc, LinkDown | Throttled):
        return ApiError(503, f"the meter cannot be reached now: {exc}", headers={"Retry-After": "5"})
    if isinstance(exc, UnknownMeter):
        return ApiError(404, f"no meter {exc}", parameter="meter_id")
    if isinstance(exc, MeterRefused):
        return ApiError(502, f"the meter refused: {exc.code.name}")
    if isinstance(exc, MeterError | CodecError):
        return ApiError(502, f"the meter's answer is unusable: {exc}")
    if isinstance(exc, CancelledError):
        return ApiError(503, "the command was cancelled")
    if isinstance(exc, ValueError):
        return ApiError(400, str(exc))
    log.failure("meter command failed", failure)
    return ApiError(500, "internal error (see the gateway log)")


def attach_api(gateway: GatewayService) -> Service | None:
    """Mount the API on ``gateway``: a listener on ``api.listen`` serving ``/api`` and
    ``/health``, added under ``gateway.web``; or ``/api`` on the metrics root (returns None) when
    ``api.listen`` is ``metrics.listen``."""
    config = gateway.config
    resource = ApiResource(
        stores=gateway.stores, clock=gateway.reactor, token=config.api.token, health=gateway.health
    )
    if config.api.listen == config.metrics.listen:
        gateway.web_root.putChild(b"api", cast(IResource, resource))
        return None
    root = Resource()  # type: ignore[no-untyped-call]
    root.putChild(b"api", cast(IResource, resource))
    root.putChild(b"health", cast(IResource, HealthResource(gateway.health)))
    site = cast(IProtocolFactory, build_site(root))
    service = strports.service(config.api.listen, site, reactor=gateway.reactor)
    service.setName("api")  # type: ignore[no-untyped-call]
    service.setServiceParent(gateway.web)  # type: ignore[no-untyped-call]
    return service
