"""Discovery: advertise the gateway with zeroconf, find collectors, or use a static list.

The gateway advertises its C12.22 listener as ``_c1222._tcp.local.`` (TXT ``role=head-end``) and
its operator API as ``_amidcc-api._tcp.local.``. With browsing on, it also collects the
``_c1222._tcp`` services of others (collectors advertising themselves; anything with
``role=head-end`` and its own instances are left out) and tells subscribers when the set changes.
Where multicast is unavailable, :class:`StaticDiscovery` gives the configured collectors behind
the same interface (:class:`Discovery`).

zeroconf's asyncio objects call ``asyncio.get_running_loop()`` when built, so
:class:`ZeroconfDiscovery` builds :class:`~zeroconf.asyncio.AsyncZeroconf` inside a coroutine
scheduled on the reactor's loop (integration-notes.md, "zeroconf"): the gateway must run on the
asyncio reactor. A fresh registration takes about 1.2 s of RFC 6762 probing. Where no interface
can multicast, zeroconf raises at start: :class:`DiscoveryService` logs it, reports it in
``/health`` and keeps serving the static list.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zeroconf import IPVersion, ServiceInfo, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from amidcc import __version__

if TYPE_CHECKING:
    from .config import Config
    from .tap import GatewayService

__all__ = [
    "API_SERVICE",
    "C1222_SERVICE",
    "Advertisement",
    "Collector",
    "Discovery",
    "DiscoveryService",
    "StaticDiscovery",
    "ZeroconfDiscovery",
    "advertisements_for",
    "attach_discovery",
    "parse_client_endpoint",
]

log = Logger(namespace="amidcc.gateway.discovery")

C1222_SERVICE = "_c1222._tcp.local."
"""The C12.22 listener's service type (port 1153 by default)."""
API_SERVICE = "_amidcc-api._tcp.local."
"""The operator API's service type."""

RESOLVE_TIMEOUT_MS = 3000


@dataclass(frozen=True, kw_only=True, slots=True)
class Advertisement:
    """One service this gateway announces."""

    service_type: str
    """Fully qualified type, e.g. ``_c1222._tcp.local.``."""
    instance: str
    """Instance name (the part before the type); zeroconf may append `` (2)`` on a conflict."""
    port: int
    """TCP port."""
    addresses: tuple[str, ...]
    """IPv4 addresses it is reachable at."""
    properties: Mapping[str, str] = field(default_factory=dict)
    """TXT record."""

    @property
    def name(self) -> str:
        """The full service name."""
        return f"{self.instance}.{self.service_type}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Collector:
    """A collector the gateway may reach."""

    name: str
    """Its zeroconf instance name, or the endpoint for a static one."""
    endpoint: str
    """Twisted client endpoint string (``tcp:192.0.2.20:1153``)."""
    host: str
    """Address or host name ("" where the endpoint has none)."""
    port: int
    """TCP port (0 where the endpoint has none)."""
    source: str
    """``"zeroconf"`` or ``"static"``."""
    properties: Mapping[str, str] = field(default_factory=dict)
    """Its TXT record (zeroconf only)."""


Subscriber = Callable[[tuple[Collector, ...]], object]


class Discovery(Protocol):
    """Advertise the gateway and know the collectors; zeroconf and static implement it."""

    def start(self) -> Deferred[None]:
        """Start advertising (and browsing); fires when the announcements are out."""
        ...

    def stop(self) -> Deferred[None]:
        """Withdraw the advertisements and stop browsing."""
        ...

    def collectors(self) -> tuple[Collector, ...]:
        """The collectors known now."""
        ...

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(collectors)`` when the set changes; returns an unsubscribe function."""
        ...


class _Subscribers:
    def __init__(self) -> None:
        self._callbacks: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    def notify(self, collectors: tuple[Collector, ...]) -> None:
        for callback in tuple(self._callbacks):
            try:
                callback(collectors)
            except Exception:  # one bad subscriber must not starve the others
                log.failure("discovery subscriber {callback!r} failed", callback=callback)


def parse_client_endpoint(text: str) -> tuple[str, int]:
    """Host and port of a ``tcp:``/``ssl:``/``tls:`` client endpoint string (``("", 0)`` for
    other kinds). Accepts ``tcp:HOST:PORT``, ``tcp:host=HOST:port=PORT`` and ``\\:`` escapes."""
    parts = [p.replace("\\:", ":") for p in re.split(r"(?<!\\):", text)]
    if parts[0] not in ("tcp", "ssl", "tls") or len(parts) < 2:
        return "", 0
    named = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    positional = [p for p in parts[1:] if "=" not in p]
    host = named.get("host", positional[0] if positional else "")
    port_text = named.get("port", positional[1] if len(positional) > 1 else "0")
    try:
        return host, int(port_text)
    except ValueError:
        return host, 0


class StaticDiscovery:
    """A fixed list of collectors, for networks without multicast. Advertises nothing."""

    def __init__(self, endpoints: Iterable[str] = ()) -> None:
        self._collectors = tuple(self._collector(e) for e in endpoints)
        self._subscribers = _Subscribers()

    @staticmethod
    def _collector(endpoint: str) -> Collector:
        host, port = parse_client_endpoint(endpoint)
        return Collector(name=endpoint, endpoint=endpoint, host=host, port=port, source="static")

    def start(self) -> Deferred[None]:
        self._subscribers.notify(self._collectors)
        return succeed(None)

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def collectors(self) -> tuple[Collector, ...]:
        return self._collectors

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        return self._subscribers.subscribe(callback)


def _server_name(instance: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", instance.lower()).strip("-") or "amidcc"
    return f"{label[:63]}.local."


def _accept_collector(found: Collector) -> bool:
    return found.properties.get("role") != "head-end"


def _loop_of(reactor: object) -> asyncio.AbstractEventLoop:
    loop = getattr(reactor, "_asyncioEventloop", None)
    if isinstance(loop, asyncio.AbstractEventLoop):
        return loop
    raise RuntimeError("zeroconf discovery needs the asyncio reactor (--reactor=asyncio)")


class ZeroconfDiscovery:
    """zeroconf on the asyncio reactor: advertise, and optionally browse for collectors.

    :param reactor: the asyncio reactor (its event loop runs zeroconf).
    :param interfaces: IPv4 addresses to use (``["127.0.0.1"]`` keeps tests off the LAN).
    :param browse_type: the service type to browse for collectors, None not to browse.
    :param accept: which browsed services count as collectors (default: not ``role=head-end``).
    """

    def __init__(
        self,
        reactor: object,
        *,
        interfaces: Sequence[str] = ("127.0.0.1",),
        advertisements: Sequence[Advertisement] = (),
        browse_type: str | None = C1222_SERVICE,
        accept: Callable[[Collector], bool] = _accept_collector,
    ) -> None:
        self.reactor = reactor
        self.interfaces = list(interfaces)
        self.advertisements = tuple(advertisements)
        self.browse_type = browse_type
        self.accept = accept
        self.registered: tuple[str, ...] = ()
        """Full names actually registered (after any conflict renaming)."""
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._found: dict[str, Collector] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscribers = _Subscribers()

    def _run(self, make: Callable[[], Coroutine[Any, Any, None]]) -> Deferred[None]:
        loop = _loop_of(self.reactor)  # first: a coroutine made and never run would warn
        return Deferred.fromFuture(asyncio.ensure_future(make(), loop=loop))

    def start(self) -> Deferred[None]:
        return self._run(self._start)

    async def _start(self) -> None:
        v4 = all(ipaddress.ip_address(i).version == 4 for i in self.interfaces)
        self._zc = AsyncZeroconf(
            interfaces=self.interfaces, ip_version=IPVersion.V4Only if v4 else IPVersion.All
        )
        infos = [
            ServiceInfo(
                ad.service_type,
                ad.name,
                port=ad.port,
                properties=dict(ad.properties),
                server=_server_name(ad.instance),
                addresses=[socket.inet_aton(a) for a in ad.addresses],
            )
            for ad in self.advertisements
        ]
        # probe all names at once (about 1.2 s each, RFC 6762 8.1), then wait for the announcements
        zc = self._zc
        announced = await asyncio.gather(
            *(zc.async_register_service(info, allow_name_change=True) for info in infos)
        )
        await asyncio.gather(*announced)
        for info in infos:
            log.info("zeroconf: advertising {name} on port {port}", name=info.name, port=info.port)
        self.registered = tuple(info.name for info in infos)
        if self.browse_type is not None:
            self._browser = AsyncServiceBrowser(
                self._zc.zeroconf, [self.browse_type], handlers=[self._on_change]
            )

    def _on_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if name in self.registered:
            return
        if state_change is ServiceStateChange.Removed:
            if self._found.pop(name, None) is not None:
                log.info("zeroconf: collector {name} went away", name=name)
                self._subscribers.notify(self.collectors())
            return
        task = asyncio.ensure_future(self._resolve(zeroconf, service_type, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, zeroconf: Zeroconf, service_type: str, name: str) -> None:
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(zeroconf, RESOLVE_TIMEOUT_MS):
            log.warn("zeroconf: {name} did not resolve", name=name)
            return
        addresses = info.parsed_addresses(IPVersion.V4Only)
        if not addresses or info.port is None:
            return
        props = {
            k.decode("utf-8", "replace"): (v or b"").decode("utf-8", "replace")
            for k, v in info.properties.items()
        }
        found = Collector(
            name=name,
            endpoint=f"tcp:{addresses[0]}:{info.port}",
            host=addresses[0],
            port=info.port,
            source="zeroconf",
            properties=props,
        )
        if not self.accept(found) or self._found.get(name) == found:
            return
        self._found[name] = found
        log.info("zeroconf: collector {name} at {endpoint}", name=name, endpoint=found.endpoint)
        self._subscribers.notify(self.collectors())

    def stop(self) -> Deferred[None]:
        if self._zc is None:
            return succeed(None)
        return self._run(self._stop)

    async def _stop(self) -> None:
        zc, self._zc = self._zc, None
        for task in tuple(self._tasks):
            task.cancel()
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        if zc is not None:
            await zc.async_unregister_all_services()
            await zc.async_close()
        self.registered = ()

    def collectors(self) -> tuple[Collector, ...]:
        return tuple(sorted(self._found.values(), key=lambda c: c.name))

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        return self._subscribers.subscribe(callback)


class DiscoveryService(Service):
    """Runs a zeroconf discovery (optional) beside a static list; the union is what it knows.

    zeroconf is started from ``reactor.callLater(0, ...)`` (never before the loop runs); its
    failure (no multicast) is logged, shown by :meth:`health`, and the static list still serves.
    """

    name = "discovery"

    def __init__(
        self,
        reactor: Any,
        *,
        static: StaticDiscovery | None = None,
        zeroconf: Discovery | None = None,
    ) -> None:
        self.reactor = reactor
        self.static = static if static is not None else StaticDiscovery()
        self.zeroconf = zeroconf
        self.error: str | None = None
        """Why zeroconf is not running, once it failed."""
        self.started: Deferred[None] | None = None
        """Fires when zeroconf has started (or failed: then with None and ``error`` set)."""
        self._subscribers = _Subscribers()
        self._unsubscribe: list[Callable[[], None]] = []

    def collectors(self) -> tuple[Collector, ...]:
        """Static collectors, then discovered ones at endpoints not already listed."""
        known = list(self.static.collectors())
        endpoints = {c.endpoint for c in known}
        if self.zeroconf is not None:
            known += [c for c in self.zeroconf.collectors() if c.endpoint not in endpoints]
        return tuple(known)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(collectors)`` whenever the union changes."""
        return self._subscribers.subscribe(callback)

    def health(self) -> str:
        """``"ok"`` or why zeroconf is not running."""
        return "ok" if self.error is None else f"zeroconf failed: {self.error}"

    def _changed(self, _: tuple[Collector, ...]) -> None:
        self._subscribers.notify(self.collectors())

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self.static.start()
        self._changed(())
        if self.zeroconf is None:
            self.started = succeed(None)
            return
        self._unsubscribe.append(self.zeroconf.subscribe(self._changed))
        self.started = Deferred()
        self.reactor.callLater(0, self._start_zeroconf)

    def _start_zeroconf(self) -> None:
        assert self.zeroconf is not None and self.started is not None
        done = self.started

        def failed(failure: Failure) -> None:
            self.error = failure.getErrorMessage() or repr(failure.value)
            log.error(
                "zeroconf discovery failed ({error}); serving the static list only",
                error=self.error,
            )

        try:
            d = self.zeroconf.start()
        except Exception:
            d = Deferred()
            d.errback(Failure())  # type: ignore[no-untyped-call]
        d.addErrback(failed).addBoth(lambda _: done.callback(None))

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self.zeroconf is None or self.error is not None:
            return succeed(None)
        zeroconf = self.zeroconf
        started = self.started if self.started is not None else succeed(None)

        def stop(_: object) -> Deferred[None]:
            return zeroconf.stop()

        d: Deferred[None] = started.addCallback(stop)
        return d.addErrback(lambda f: log.failure("zeroconf did not stop cleanly", f))


# -- wiring -----------------------------------------------------------------------------------


def _listen_address(listen: str, fallback: Sequence[str]) -> tuple[int, tuple[str, ...]]:
    """Port and addresses to advertise for a ``tcp:`` listen endpoint (port 0: none)."""
    parts = re.split(r"(?<!\\):", listen)
    if parts[0] != "tcp":
        return 0, ()
    named = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    positional = [p for p in parts[1:] if "=" not in p]
    try:
        port = int(named.get("port", positional[0] if positional else "0"))
    except ValueError:
        return 0, ()
    interface = named.get("interface", "")
    if interface in ("", "0.0.0.0", "::"):
        return port, tuple(fallback)
    return port, (interface,)


def advertisements_for(config: Config) -> tuple[Advertisement, ...]:
    """What the gateway announces: its C12.22 listener and its API (TCP listeners with a port)."""
    interfaces = config.discovery.interfaces
    name = config.gateway.name
    base = {"gateway": name, "version": __version__}
    found: list[Advertisement] = []
    port, addresses = _listen_address(config.c1222.listen, interfaces)
    if port and addresses:
        props = {**base, "role": "head-end", "ap_title": config.gateway.ap_title}
        found.append(Advertisement(
            service_type=C1222_SERVICE, instance=f"amidcc {name}", port=port,
            addresses=addresses, properties=props,
        ))  # fmt: skip
    port, addresses = _listen_address(config.api.listen, interfaces)
    if port and addresses:
        props = {**base, "path": "/api", "auth": "bearer" if config.api.token else "none"}
        found.append(Advertisement(
            service_type=API_SERVICE, instance=f"amidcc {name}", port=port,
            addresses=addresses, properties=props,
        ))  # fmt: skip
    return tuple(found)


def attach_discovery(gateway: GatewayService) -> DiscoveryService | None:
    """Add discovery to ``gateway`` (under ``links``) when ``[discovery]`` asks for it: zeroconf
    advertising and browsing, and/or the static collectors. It is ``stores["discovery"]`` and has
    a health check."""
    settings = gateway.config.discovery
    if not settings.zeroconf and not settings.static:
        return None
    zeroconf = None
    if settings.zeroconf:
        zeroconf = ZeroconfDiscovery(
            gateway.reactor,
            interfaces=settings.interfaces,
            advertisements=advertisements_for(gateway.config),
        )
    service = DiscoveryService(
        gateway.reactor, static=StaticDiscovery(settings.static), zeroconf=zeroconf
    )
    service.setServiceParent(gateway.links)  # type: ignore[no-untyped-call]
    gateway.stores["discovery"] = service
    gateway.add_health_check("discovery", service.health)
    return service
