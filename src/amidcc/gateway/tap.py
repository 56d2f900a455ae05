"""The daemon: ``twistd -n amidcc --config amidcc.toml`` (or ``twist amidcc ...``).

:class:`Options` and :func:`makeService` are what the twistd plugin
(``src/twisted/plugins/amidcc_plugin.py``) hands to twistd; everything else composes the gateway
from a :class:`~amidcc.gateway.config.Config` and a reactor, so tests build it on a
``MemoryReactorClock`` without sockets. This is the one place where services are wired together
(architecture.md, "Composition happens in one place").

Run it on the asyncio reactor (``--reactor=asyncio``): pymodbus, zeroconf and the embedded broker
are asyncio libraries (integration-notes.md).
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, cast

from twisted.application import strports
from twisted.application.internet import TimerService
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IProtocolFactory, IReactorTime
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    LogPublisher,
    globalLogBeginner,
    globalLogPublisher,
    jsonFileLogObserver,
    textFileLogObserver,
)
from twisted.python import usage
from twisted.python.failure import Failure

from amidcc import __version__
from amidcc.gateway.api import attach_api
from amidcc.gateway.config import Config, ConfigError, LoggingSection, load_config
from amidcc.gateway.discovery import attach_discovery
from amidcc.gateway.metrics import GatewayMetrics
from amidcc.gateway.web import HealthReport, build_root, build_site

#: A reactor providing IReactorCore, IReactorTime and IReactorTCP (zope interfaces are not types
#: mypy can intersect, and Twisted ships no mypy-zope plugin).
Reactor = Any

__all__ = [
    "Composition",
    "GatewayService",
    "LogSetup",
    "Options",
    "build_service",
    "makeService",
    "periodic",
]

log = Logger(namespace="amidcc.gateway")


class Options(usage.Options):
    """``amidcc`` subcommand options of twistd / twist."""

    synopsis = "[--config FILE]"
    longdesc = (
        "Run the amidcc AMI head-end / DCC gateway. Without --config it runs on the embedded "
        "defaults (every listener on loopback). `amidcc config sample` prints a commented file; "
        "`amidcc config check FILE` validates one."
    )
    optParameters = [
        ["config", "c", None, "TOML configuration file (embedded defaults without it)."],
    ]

    def postOptions(self) -> None:
        """Load and validate the config now, so a mistake stops twistd before anything starts."""
        path = self["config"]
        try:
            self.loaded = load_config(path) if path else Config()
        except ConfigError as err:
            raise usage.UsageError(f"{path}: {err}") from None


#: The garbage collector's young-generation threshold in the daemon (Python's default: 700). A
#: gateway keeps hundreds of reads in progress, a few dozen objects each for a round trip: at 700
#: allocations most of them outlive a young collection, get promoted, and the full collections
#: rescan the whole fleet's state. bench.gateway_read_cycle, 10,000 meters, steady reads: the
#: collector took 21-25 us of 122-136 us of gateway CPU per read; at 10,000, 5 us of 109-110 us.
GC_YOUNG_THRESHOLD = 10_000


def tune_garbage_collector() -> None:
    """The daemon's collector settings (:data:`GC_YOUNG_THRESHOLD`); process-wide, so only the
    daemon's entry point applies them."""
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def makeService(options: Options) -> MultiService:
    """twistd's entry point: the gateway on the installed (global) reactor."""
    from twisted.internet import reactor  # only now: twistd has installed the chosen reactor

    tune_garbage_collector()
    return build_service(options.loaded, reactor, capture=True)


def build_service(
    config: Config,
    reactor: Reactor,
    *,
    metrics: GatewayMetrics | None = None,
    capture: bool = False,
) -> GatewayService:
    """The whole gateway for ``config`` on ``reactor`` (not started).

    The stores, links, scheduler and intake are wired when it starts (:class:`Composition`), so
    building it touches no file and opens no socket. With ``capture`` (the daemon and the demo),
    :func:`~amidcc.gateway.capture.attach_capture` adds the pcap capture of ``[capture] pcap`` and
    the runtime-switchable frame tracer (``stores["capture"]``, ``stores["tracer"]``); without
    it, tests may attach their own.
    """
    gateway = GatewayService(config, reactor, metrics=metrics)
    gateway.add_store_service("composition", Composition(gateway))
    if capture:
        from amidcc.gateway.capture import attach_capture

        attach_capture(gateway)
    return gateway


def periodic(
    name: str,
    interval: float,
    step: Callable[[], object],
    *,
    clock: IReactorTime,
    metrics: GatewayMetrics | None = None,
) -> TimerService:
    """A TimerService calling ``step`` every ``interval`` seconds, first at start.

    A step that raises or returns a failing Deferred is logged (and counted in
    ``amidcc_job_failures_total{job=name}``) and the loop goes on; a step returning a Deferred
    delays the next step until it fires, so a slow step never overlaps itself.
    """
    failures = metrics.job_failures.labels(job=name) if metrics is not None else None

    def failed(failure: Failure) -> None:
        log.failure(
            "periodic job {job} failed; next run in {interval}s",
            failure,
            job=name,
            interval=interval,
        )
        if failures is not None:
            failures.inc()

    def guarded() -> Deferred[object]:
        return maybeDeferred(step).addErrback(failed)

    service = TimerService(interval, guarded)
    service.clock = clock
    service.setName(name)
    return service


class LogSetup:
    """Apply ``[logging]`` to a log publisher while the gateway runs, and undo it on stop.

    twistd has no log-level option, so the level filter is put in front of the observers already
    attached to the publisher (twistd's own log); ``twist --log-level`` filters before this, so
    under ``twist`` the stricter of the two wins. ``logging.file`` adds one more observer.
    Install it once the reactor runs: ``twist`` starts the service before it begins logging.
    """

    def __init__(
        self,
        settings: LoggingSection,
        publisher: LogPublisher = globalLogPublisher,
        *,
        resolve: Callable[[Path], Path] = lambda p: p,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self._resolve = resolve
        self._swapped: list[tuple[Any, Any]] = []  # (original observer, installed observer)
        self._file: IO[Any] | None = None

    def install(self) -> None:
        predicate: Any = LogLevelFilterPredicate(LogLevel.levelWithName(self.settings.level))
        # LogPublisher has no public way to list its observers; read the attribute defensively.
        # The LogBeginner's start-up buffer is never wrapped: beginLoggingTo must find it as is.
        buffer = getattr(globalLogBeginner, "_temporaryObserver", None)
        for observer in list(getattr(self.publisher, "_observers", ())):
            if observer is buffer:
                continue
            wrapped: Any = FilteringLogObserver(observer, [predicate])
            self.publisher.removeObserver(observer)
            self.publisher.addObserver(wrapped)
            self._swapped.append((observer, wrapped))
        if self.settings.file is not None:
            path = self._resolve(self.settings.file)
            self._file = path.open("a", encoding="utf-8")
            make = jsonFileLogObserver if self.settings.format == "json" else textFileLogObserver
            wrapped = FilteringLogObserver(cast(ILogObserver, make(self._file)), [predicate])
            self.publisher.addObserver(wrapped)
            self._swapped.append((wrapped, wrapped))

    def uninstall(self) -> None:
        for original, wrapped in reversed(self._swapped):
            self.publisher.removeObserver(wrapped)
            if original is not wrapped:
                self.publisher.addObserver(original)
        self._swapped.clear()
        if self._file is not None:
            self._file.close()
            self._file = None


class GatewayService(MultiService):
    """The whole gateway, one MultiService; children start in this order and stop in reverse.

    Attributes and hooks, for the services added later:

    ``config``, ``reactor``
        what it was built from; services take the reactor as their clock (never the global one).
    ``metrics``
        the :class:`~amidcc.gateway.metrics.GatewayMetrics` every component reports into.
    ``stores``
        name -> object for shared state (``"eventlog"``, ``"registry"``, ...); put them here
        before adding services that use them. A store that needs starting is also a service
        added with ``add_store_service``.
    ``links``
        a MultiService for link adapters (C12.22 TCP/UDP listeners, MQTT, Modbus):
        ``svc.setServiceParent(gateway.links)``. Started after the stores, before the jobs.
    ``jobs``
        a MultiService for periodic work (scheduler, clock checks, retention pruning); add them
        with :meth:`add_periodic`.
    ``web``, ``web_root``
        the HTTP listeners (``metrics``, then ``api``) and the metrics listener's twisted.web root
        (``/metrics``, ``/health``). ``api`` serves ``/api`` on ``api.listen``
        (:func:`~amidcc.gateway.api.attach_api`; None when it shares ``metrics.listen`` and
        ``/api`` is on ``web_root``); it finds the registry, event log and meter client in
        ``stores`` (``"registry"``, ``"eventlog"``, ``"meter_client"``) at each request.
    ``discovery``
        with ``[discovery]`` zeroconf or static collectors, a
        :class:`~amidcc.gateway.discovery.DiscoveryService` under ``links`` (also
        ``stores["discovery"]``); None otherwise.
    ``add_health_check(name, check)``
        ``check()`` returns ``"ok"`` or what is wrong; ``/health`` is 503 while any is not ok.
    """

    def __init__(
        self,
        config: Config,
        reactor: Reactor,
        *,
        metrics: GatewayMetrics | None = None,
        log_publisher: LogPublisher | None = None,
    ) -> None:
        super().__init__()
        self.setName("amidcc")
        self.config = config
        self.reactor = reactor
        self.metrics = metrics if metrics is not None else GatewayMetrics()
        self.stores: dict[str, object] = {}
        self.started_at: float | None = None
        self._health_checks: dict[str, Callable[[], str]] = {}
        self._log_setup = LogSetup(
            config.logging, log_publisher or globalLogPublisher, resolve=config.resolve
        )
        self.store_services = self._child("stores")
        self.links = self._child("links")
        self.jobs = self._child("jobs")
        self.web_root = build_root(self.metrics, self.health)
        site = cast(IProtocolFactory, build_site(self.web_root))
        self.web = self._child("web")  # the HTTP listeners: metrics and health, then the API
        metrics_listener = strports.service(config.metrics.listen, site, reactor=reactor)
        metrics_listener.setName("metrics")
        metrics_listener.setServiceParent(self.web)
        self.api = attach_api(self)
        self.add_health_check("links", lambda: self._running(self.links))
        self.add_health_check("jobs", lambda: self._running(self.jobs))
        self.discovery = attach_discovery(self)  # zeroconf / static collectors under links

    def _child(self, name: str) -> MultiService:
        child = MultiService()
        child.setName(name)
        child.setServiceParent(self)
        return child

    @staticmethod
    def _running(parent: MultiService) -> str:
        stopped = [s.name or repr(s) for s in parent if not s.running]
        return "ok" if parent.running and not stopped else f"not running: {stopped or 'all'}"

    def add_store_service(self, name: str, store: Service) -> None:
        """Add a store that has a lifecycle (opened before the links, closed after them)."""
        store.setName(name)
        store.setServiceParent(self.store_services)

    def add_periodic(self, name: str, interval: float, step: Callable[[], object]) -> TimerService:
        """Run ``step`` every ``interval`` seconds under ``jobs``; see :func:`periodic`."""
        service = periodic(name, interval, step, clock=self.reactor, metrics=self.metrics)
        service.setServiceParent(self.jobs)
        return service

    def add_health_check(self, name: str, check: Callable[[], str]) -> None:
        """Register ``check`` (returns ``"ok"`` or a problem) under ``name`` in ``/health``."""
        self._health_checks[name] = check

    def health(self) -> HealthReport:
        """Run every health check now; a check that raises counts as failing."""
        results: dict[str, str] = {}
        for name, check in self._health_checks.items():
            try:
                results[name] = check()
            except Exception as exc:  # a broken check must not break /health
                results[name] = f"check raised {exc!r}"
        now = self.reactor.seconds()
        uptime = now - self.started_at if self.started_at is not None else 0.0
        return HealthReport(
            name=self.config.gateway.name,
            version=__version__,
            uptime_seconds=uptime,
            checks=results,
        )

    def startService(self) -> None:
        self.config.gateway.state_dir.mkdir(parents=True, exist_ok=True)
        self.reactor.callWhenRunning(self._log_setup.install)
        self.started_at = self.reactor.seconds()
        self.metrics.mark_started(self.started_at)
        super().startService()
        log.info(
            "amidcc {version} gateway {name!r} started (config {source}); metrics and health on "
            "{metrics_listen}",
            version=__version__,
            name=self.config.gateway.name,
            source=self.config.source,
            metrics_listen=self.config.metrics.listen,
        )

    def stopService(self) -> Deferred[None]:
        log.info("amidcc gateway {name!r} stopping", name=self.config.gateway.name)
        d: Deferred[None] = super().stopService()

        def stopped(result: object) -> object:
            log.info("amidcc gateway {name!r} stopped", name=self.config.gateway.name)
            self._log_setup.uninstall()
            return result

        return d.addBoth(stopped)


# -- composition: the one place that wires the gateway's parts ---------------------------------

#: The meter registry's database, beside the event log under ``gateway.state_dir``.
REGISTRY_DB = Path("registry.sqlite")
#: Event logs are read every read_interval, but not more often than this: a full ST76 is large,
#: and pushed alarms carry what cannot wait (NFR4).
EVENT_LOG_MIN_INTERVAL = 900.0


class Composition(Service):
    """Opens the stores and wires the gateway's parts when the gateway starts; closes the stores
    when it stops (it sits under ``stores``, so it starts first and stops last).

    What it puts in ``gateway.stores``: ``registry`` (MeterRegistry), ``eventlog`` (EventLog),
    ``trouble_sink`` (InProcessSink: trouble events leave the gateway here), ``intake``
    (EventIntake), ``event_reader`` (EventReader), ``meter_client`` (MeterClient over every link),
    ``scheduler`` (Scheduler), ``c1222`` (the C12.22 listener), ``mqtt`` (the RF-mesh MqttLink, a
    service under ``links``, when ``[mqtt]`` is enabled; health check ``mqtt``: the broker session)
    and ``modbus`` (ModbusLink, when ``[modbus]`` is enabled). Jobs: ``scheduler`` (every second),
    ``meter-gauges`` (registered / reachable per link, every link including MQTT and Modbus),
    ``registry-flush``, ``trouble-report`` (FR16 periodic report) and ``eventlog-prune`` (NFR5).
    Metrics: the throttle's requests in flight per link (and their peak), trouble events sent.
    """

    def __init__(self, gateway: GatewayService, *, scheduler_tick: float = 1.0) -> None:
        self.gateway = gateway
        self.scheduler_tick = scheduler_tick
        self._opened: list[Any] = []

    def startService(self) -> None:
        super().startService()
        if not self._opened:
            self._wire()

    def stopService(self) -> None:
        super().stopService()
        for store in reversed(self._opened):
            store.close()
        self._opened.clear()

    def _wire(self) -> None:
        from amidcc.events import InProcessSink
        from amidcc.gateway.eventlog import EventLog
        from amidcc.gateway.intake import EventIntake, EventReader
        from amidcc.gateway.links.c1222_transport import build_c1222
        from amidcc.gateway.meters import MeterClient
        from amidcc.gateway.registry import MeterRegistry
        from amidcc.gateway.scheduler import Scheduler
        from amidcc.gateway.suppression import OutageView
        from amidcc.gateway.throttle import RequestThrottle

        gw, config, reactor, metrics = (
            self.gateway,
            self.gateway.config,
            self.gateway.reactor,
            self.gateway.metrics,
        )
        if config.mqtt.enabled:
            _mqtt_broker(config)  # a URL the client refuses fails now, before anything opens
        config.gateway.state_dir.mkdir(parents=True, exist_ok=True)
        registry = MeterRegistry(config.resolve(REGISTRY_DB))
        eventlog = EventLog(
            config.resolve(config.events.db), retention=config.events.retention,
            context=registry.context,
        )  # fmt: skip
        self._opened += [registry, eventlog]
        sink = InProcessSink()
        intake = EventIntake(
            eventlog=eventlog, sink=sink, meters=registry.get, metrics=metrics,
            report_max_age=config.events.report_max_age, install_grace=config.events.install_grace,
            outages=OutageView(expiry=config.events.outage_expiry),
        )  # fmt: skip
        hooks: dict[str, Any] = {}
        listener = build_c1222(
            config, reactor, registry=registry, metrics=metrics,
            on_alarm=lambda address, services, now: hooks["reader"].on_alarm(address, services, now),
            on_register=lambda event: hooks["scheduler"].on_register(event),
        )  # fmt: skip
        listener.setName("c1222")
        listener.setServiceParent(gw.links)
        links: list[Any] = [listener.tcp] + ([listener.udp] if listener.udp is not None else [])
        mqtt = self._mqtt(registry, hooks)
        if mqtt is not None:
            links.append(mqtt)
        modbus = self._modbus(registry, hooks)
        if modbus is not None:
            links.append(modbus)
        throttle = RequestThrottle.from_config(config.throttle)
        for link in links:
            metrics.watch_in_flight(str(link.kind), throttle.link_limit(str(link.kind)))
        sink.subscribe(lambda trouble: metrics.trouble(trouble.failure_type.value))
        client = MeterClient(
            links, resolve=registry, clock=reactor, requests=config.requests,
            throttle=throttle, metrics=metrics,
            on_seen=registry.mark_seen, on_unreachable=registry.mark_unreachable,
        )  # fmt: skip
        reader = hooks["reader"] = EventReader(intake, client, reactor, metrics=metrics)
        scheduler = hooks["scheduler"] = Scheduler(
            client=client, registry=registry, clock=reactor, schedule=config.schedule,
            reader=reader, metrics=metrics, event_log_interval=max(
                config.schedule.read_interval, EVENT_LOG_MIN_INTERVAL
            ),
        )  # fmt: skip
        gw.stores.update(
            registry=registry, eventlog=eventlog, trouble_sink=sink, intake=intake,
            event_reader=reader, meter_client=client, scheduler=scheduler, c1222=listener,
        )  # fmt: skip
        self._jobs(registry, eventlog, reader, scheduler, links)

    def _mqtt(self, registry: Any, hooks: dict[str, Any]) -> Any:
        """The RF-mesh link over MQTT and its broker health check, when ``[mqtt]`` is enabled."""
        config = self.gateway.config
        if not config.mqtt.enabled:
            return None
        from amidcc.gateway.links.mqtt import build_mqtt

        broker = _mqtt_broker(config)
        link = build_mqtt(
            config, self.gateway.reactor, registry=registry, metrics=self.gateway.metrics,
            on_alarm=lambda a, services, now: hooks["reader"].on_alarm(a, services, now),
            on_register=lambda event: hooks["scheduler"].on_register(event),
        )  # fmt: skip
        link.setName("mqtt")
        link.setServiceParent(self.gateway.links)
        where = f"{broker.host}:{broker.port}"  # never the URL: it may hold a password

        def session() -> str:
            if link.connected:
                return "ok"
            return f"MQTT broker {where} not connected ({link.client.state.name.lower()})"

        self.gateway.add_health_check("mqtt", session)
        self.gateway.stores["mqtt"] = link
        return link

    def _modbus(self, registry: Any, hooks: dict[str, Any]) -> Any:
        """The Modbus link and its enrolment job, when ``[modbus]`` is enabled."""
        config = self.gateway.config
        if not (config.modbus.enabled and config.modbus.collectors):
            return None
        from amidcc.gateway.links.modbus import ModbusLink, ModbusSettings

        link = ModbusLink(
            ModbusSettings.from_config(config),
            clock=self.gateway.reactor,
            metrics=self.gateway.metrics,
        )
        service = _LinkService(link)
        service.setName("modbus")
        service.setServiceParent(self.gateway.links)
        enrol = ModbusEnrolment(
            link, registry, self.gateway.reactor, config,
            on_enrol=lambda meter, registration, now: hooks["scheduler"].meter_joined(
                meter, registration, now
            ),
        )  # fmt: skip
        self.gateway.add_periodic("modbus-enrol", 1.0, enrol.step)
        self.gateway.stores.update(modbus=link, modbus_enrolment=enrol)
        return link

    def _jobs(
        self, registry: Any, eventlog: Any, reader: Any, scheduler: Any, links: list[Any]
    ) -> None:
        from amidcc.events import IMMEDIATE_REPORT_SECONDS

        gw = self.gateway
        gw.add_periodic("scheduler", self.scheduler_tick, scheduler.step)
        gw.add_periodic("meter-gauges", 5.0, lambda: meter_gauges(registry, links, gw.metrics))
        gw.add_periodic("registry-flush", 10.0, registry.flush)
        gw.add_periodic("trouble-report", IMMEDIATE_REPORT_SECONDS, reader.report_pending)
        gw.add_periodic("eventlog-prune", 3600.0, lambda: eventlog.prune(gw.reactor.seconds()))


def _mqtt_broker(config: Config) -> Any:
    """``[mqtt] url`` parsed as the MQTT client will (``mqtts://`` passes the config check but the
    client has no TLS yet); a ConfigError naming the key, without the URL (it may hold a password)."""
    from amidcc.net.mqtt_config import parse_mqtt_url

    try:
        return parse_mqtt_url(config.mqtt.url)
    except ValueError as err:
        raise ConfigError("mqtt.url", str(err).replace(config.mqtt.url, "<url>")) from None


def meter_gauges(
    registry: Any, links: list[Any], metrics: GatewayMetrics
) -> dict[str, tuple[int, int]]:
    """Set ``amidcc_meters_registered`` / ``_reachable`` per link from the registry; return them.

    Reachable: the link has a way to the meter and its last request did not go unanswered."""
    from amidcc.gateway.registry import MeterState, address_of

    by_kind = {link.kind: link for link in links}
    counts: dict[str, list[int]] = {str(kind): [0, 0] for kind in by_kind}
    for record in registry:
        if record.state is MeterState.REMOVED:
            continue
        pair = counts.setdefault(str(record.link), [0, 0])
        pair[0] += 1
        link = by_kind.get(record.link)
        if record.state is MeterState.UNREACHABLE:
            continue
        if link is not None and link.is_reachable(address_of(record)):
            pair[1] += 1
    for name, (registered, reachable) in counts.items():
        metrics.set_meters(name, registered=registered, reachable=reachable)
    return {name: (a, b) for name, (a, b) in counts.items()}


class _LinkService(Service):
    """A link with ``start()`` / ``stop() -> Deferred`` as a service."""

    def __init__(self, link: Any) -> None:
        self.link = link

    def startService(self) -> None:
        super().startService()
        self.link.start()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        result: Deferred[None] = self.link.stop()
        return result


class ModbusEnrolment:
    """Registers the meters behind the configured Modbus collectors: Modbus has no registration
    service, so each configured unit id's ST1 is read through the link and the meter is recorded
    by its serial (AP title ``modbus:<endpoint>#<unit>``, route = the collector endpoint).

    Probes are paced per collector: at most ``per_collector`` in flight (the link runs one
    operation at a time per collector anyway, and a burst of probes would only queue there until
    their timeouts), the next unit's starting as soon as one ends. A unit that failed goes to the
    back of its collector's queue and is tried again after ``retry_after`` seconds; units of a
    collector that is down wait for the next :meth:`step` that finds it up.
    """

    def __init__(
        self,
        link: Any,
        registry: Any,
        clock: Any,
        config: Config,
        *,
        per_collector: int = 2,
        retry_after: float = 5.0,
        on_enrol: Callable[[str, Any, float], object] | None = None,
    ) -> None:
        self.link = link
        self.on_enrol = on_enrol
        """Called with (meter id, the registry's Registration, now) for each meter enrolled: the
        scheduler's ``meter_joined``, so Modbus meters are scheduled and self-tested like the rest."""
        self.registry = registry
        self.clock = clock
        self.config = config
        self.per_collector = per_collector
        self.retry_after = retry_after
        self.enrolled: dict[tuple[str, int], str] = {}
        """(endpoint, unit id) -> meter id, for the units enrolled so far."""
        self.failures = 0
        """Probes that failed (their units are tried again)."""
        self._queues = {c.endpoint: deque(c.unit_ids) for c in config.modbus.collectors}
        self._in_flight = dict.fromkeys(self._queues, 0)
        self._not_before: dict[tuple[str, int], float] = {}

    @property
    def pending(self) -> int:
        """Units not enrolled yet (queued or being probed)."""
        return sum(len(q) for q in self._queues.values()) + sum(self._in_flight.values())

    def step(self) -> None:
        """Start probes on every collector that has room (the ``modbus-enrol`` job, every second)."""
        for endpoint in self._queues:
            self._fill(endpoint)

    def _fill(self, endpoint: str) -> None:
        queue, now = self._queues[endpoint], self.clock.seconds()
        for _ in range(len(queue)):
            if self._in_flight[endpoint] >= self.per_collector:
                return
            unit = queue.popleft()
            address = self._address(endpoint, unit)
            if self._not_before.get((endpoint, unit), 0.0) > now:
                queue.append(unit)
            elif not self.link.is_reachable(address):
                queue.append(unit)  # its collector is down, or its path: a later step
            else:
                self._probe(endpoint, unit, address)

    @staticmethod
    def _address(endpoint: str, unit: int) -> Any:
        from amidcc.gateway.links.base import LinkKind, MeterAddress

        return MeterAddress(
            meter_id=f"{endpoint}#{unit}", ap_title=f"modbus:{endpoint}#{unit}",
            link=LinkKind.MODBUS, route=(endpoint,), unit_id=unit,
        )  # fmt: skip

    def _probe(self, endpoint: str, unit: int, address: Any) -> None:
        from amidcc.gateway.meters import MeterClient

        key = (endpoint, unit)
        probe = MeterClient(
            [self.link], resolve=lambda _id: address, clock=self.clock,
            requests=self.config.requests,
        )  # fmt: skip
        self._in_flight[endpoint] += 1
        d = probe.read_table(address.meter_id, 1)
        d.addCallback(self._enrol, key, address)
        d.addErrback(self._failed, key)
        d.addBoth(lambda _: self._done(endpoint))

    def _failed(self, failure: Failure, key: tuple[str, int]) -> None:
        self.failures += 1
        self._not_before[key] = self.clock.seconds() + self.retry_after
        self._queues[key[0]].append(key[1])
        log.info("modbus {unit}: not enrolled ({error})", unit=key, error=failure.getErrorMessage())

    def _done(self, endpoint: str) -> None:
        self._in_flight[endpoint] -= 1
        self._fill(endpoint)

    def _enrol(self, read: Any, key: tuple[str, int], address: Any) -> None:
        from amidcc.gateway.registry import MeterRecord

        st1 = read.value
        serial = st1.mfg_serial_number.strip()
        old = self.registry.get(serial)
        record = MeterRecord(
            meter_id=serial, ap_title=address.ap_title, link=address.link, route=address.route,
            unit_id=address.unit_id, manufacturer=str(st1.manufacturer).strip() or None,
            model=str(st1.ed_model).strip() or None, serial=serial,
            account=old.account if old else None, premise=old.premise if old else None,
        )  # fmt: skip
        now = self.clock.seconds()
        registration = self.registry.register(record, now=now)
        self.enrolled[key] = serial
        self._not_before.pop(key, None)
        log.info(
            "modbus {endpoint} unit {unit}: meter {meter} enrolled",
            endpoint=key[0],
            unit=key[1],
            meter=serial,
        )
        if self.on_enrol is not None:
            self.on_enrol(serial, registration, now)
