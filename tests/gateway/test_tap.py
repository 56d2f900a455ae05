"""amidcc.gateway.tap and .web without sockets: Options, the service tree, /health, /metrics,
periodic jobs that survive errors, the log-level filter, and the twistd plugin's packaging."""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from twisted.application.service import IServiceMaker
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import Logger, LogPublisher, capturedLogs, eventsFromJSONLogFile
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.web.resource import Resource, getChildForRequest
from twisted.web.test.requesthelper import DummyRequest

from amidcc.gateway.config import Config, LoggingSection
from amidcc.gateway.metrics import GatewayMetrics
from amidcc.gateway.tap import GatewayService, LogSetup, Options, makeService, periodic

from .rig import make_gateway

ROOT = Path(__file__).resolve().parents[2]


def get(root: Resource, path: bytes, accept: str | None = None) -> tuple[int, bytes, DummyRequest]:
    request = DummyRequest(path.lstrip(b"/").split(b"/"))
    if accept is not None:
        request.requestHeaders.setRawHeaders("accept", [accept])
    resource = getChildForRequest(root, request)
    body = resource.render(request)
    return request.responseCode or 200, body, request


# Options and makeService


def test_options_without_config_are_the_defaults() -> None:
    options = Options()
    options.parseOptions([])
    assert options.loaded == Config()


def test_options_load_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text('[gateway]\nname = "east-1"\n')
    options = Options()
    options.parseOptions(["--config", str(path)])
    assert options.loaded.gateway.name == "east-1"
    service = makeService(options)
    assert isinstance(service, GatewayService) and service.config is options.loaded


def test_bad_config_is_a_usage_error_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text('[schedule]\nmetrology_interval = "60d"\n')
    with pytest.raises(usage.UsageError, match=r"gw\.toml: schedule\.metrology_interval: must be"):
        Options().parseOptions(["-c", str(path)])


# The service tree


def test_service_tree_and_listener() -> None:
    service, reactor = make_gateway(metrics={"listen": "tcp:19999:interface=127.0.0.1"})
    assert [child.name for child in service] == ["stores", "links", "jobs", "web"]
    service.startService()
    port, factory, _backlog, interface = reactor.tcpServers[0]
    assert (port, interface) == (19999, "127.0.0.1")
    assert factory.resource is service.web_root
    stopped = service.stopService()
    assert stopped.called and not service.running


def test_health_and_metrics_resources() -> None:
    service, reactor = make_gateway(gateway={"name": "east-1"})
    code, body, _ = get(service.web_root, b"/health")
    assert code == 503  # not started: links and jobs are not running
    service.startService()
    reactor.advance(12.5)
    code, body, request = get(service.web_root, b"/health")
    report = json.loads(body)
    assert code == 200 and report["status"] == "ok" and report["name"] == "east-1"
    assert report["uptime_seconds"] == 12.5
    assert request.responseHeaders.getRawHeaders("content-type") == ["application/json"]
    code, body, request = get(service.web_root, b"/metrics")
    names = {f.name for f in text_string_to_metric_families(body.decode())}
    assert code == 200 and "amidcc_messages" in names
    code, body, request = get(service.web_root, b"/metrics", accept="application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    code, body, _ = get(service.web_root, b"/")
    assert b"/metrics" in body and b"/health" in body
    service.stopService()


def test_failing_health_checks_give_503() -> None:
    service, _ = make_gateway()
    service.startService()
    service.add_health_check("broker", lambda: "disconnected since 12:00")
    service.add_health_check("store", lambda: str(1 // 0))
    code, body, _ = get(service.web_root, b"/health")
    report = json.loads(body)
    assert code == 503 and report["status"] == "failing"
    assert report["checks"]["broker"] == "disconnected since 12:00"
    assert report["checks"]["store"].startswith("check raised ZeroDivisionError")
    assert report["checks"]["links"] == "ok"
    service.stopService()


# Periodic jobs


def test_periodic_job_survives_errors_and_counts_them() -> None:
    clock = Clock()
    metrics = GatewayMetrics(process=False)
    calls: list[float] = []

    def step() -> object:
        calls.append(clock.seconds())
        if len(calls) == 2:
            raise RuntimeError("boom")
        if len(calls) == 3:
            return fail(ValueError("deferred boom"))
        return None

    job = periodic("probe", 10.0, step, clock=clock, metrics=metrics)
    with capturedLogs() as events:
        job.startService()
        clock.pump([10.0] * 4)
    assert calls == [0.0, 10.0, 20.0, 30.0, 40.0]
    failures = [e for e in events if "log_failure" in e]
    assert [e["log_failure"].type for e in failures] == [RuntimeError, ValueError]
    assert all(e["job"] == "probe" for e in failures)
    assert metrics.job_failures.labels(job="probe")._value.get() == 2
    job.stopService()


def test_slow_periodic_step_never_overlaps() -> None:
    clock = Clock()
    pending: list[Deferred[None]] = []

    def step() -> Deferred[None]:
        pending.append(Deferred())
        return pending[-1]

    job = periodic("slow", 5.0, step, clock=clock)
    job.startService()
    clock.pump([5.0] * 3)
    assert len(pending) == 1  # still waiting for the first
    pending[0].callback(None)
    clock.pump([5.0])
    assert len(pending) == 2
    pending[1].callback(None)
    job.stopService()


def test_gateway_add_periodic_runs_on_its_reactor() -> None:
    service, reactor = make_gateway()
    ticks: list[float] = []
    job = service.add_periodic("tick", 60.0, lambda: ticks.append(reactor.seconds()))
    assert job.parent is service.jobs
    service.startService()
    reactor.pump([60.0, 60.0])
    assert ticks == [0.0, 60.0, 120.0]
    service.stopService()


# Logging


def test_log_level_filter_is_installed_and_removed(tmp_path: Path) -> None:
    publisher = LogPublisher()
    seen: list[str] = []
    publisher.addObserver(lambda event: seen.append(event["log_format"]))
    log = Logger(namespace="amidcc.test", observer=publisher)
    settings = LoggingSection(level="warn", file=Path("gw.log"), format="json")
    setup = LogSetup(settings, publisher, resolve=lambda p: tmp_path / p)
    setup.install()
    log.info("hidden")
    log.warn("shown {n}", n=1)
    setup.uninstall()
    log.info("after")
    assert seen == ["shown {n}", "after"]
    with (tmp_path / "gw.log").open() as logfile:
        records = list(eventsFromJSONLogFile(logfile))
    assert [(r["log_format"], r["n"]) for r in records] == [("shown {n}", 1)]


# The twistd plugin and its packaging


def test_plugin_is_found_by_twistd() -> None:
    makers = [m for m in getPlugins(IServiceMaker) if m.tapname == "amidcc"]
    assert len(makers) == 1
    assert makers[0].options is Options


def test_plugin_import_is_light() -> None:
    code = (
        "import sys, twisted.plugins.amidcc_plugin as p; "
        "print(p.amidcc.tapname, 'twisted.internet.reactor' in sys.modules, "
        "'amidcc.gateway.tap' in sys.modules, 'prometheus_client' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["amidcc", "False", "False", "False"]


def test_packaging_keeps_the_plugin() -> None:
    from setuptools import find_namespace_packages

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["options"]["packages"].strip() == "find_namespace:"
    find = cfg["options.packages.find"]
    include = find["include"].split()
    packages = find_namespace_packages(where=str(ROOT / find["where"].strip()), include=include)
    assert "twisted.plugins" in packages and "amidcc.gateway" in packages
    assert "twisted" not in packages  # we must not ship a twisted/__init__.py
    assert not (ROOT / "src/twisted/__init__.py").exists()
    assert not (ROOT / "src/twisted/plugins/__init__.py").exists()
