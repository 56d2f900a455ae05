"""amidcc.gateway.metrics: the families, pre-bound children, registries that do not collide."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from amidcc.gateway.links.base import LinkKind
from amidcc.gateway.metrics import ERROR_KINDS, GatewayMetrics

FAMILIES = {
    "amidcc_build_info": "gauge",
    "amidcc_start_time_seconds": "gauge",
    "amidcc_messages": "counter",
    "amidcc_bytes": "counter",
    "amidcc_errors": "counter",
    "amidcc_request_latency_seconds": "histogram",
    "amidcc_meters_registered": "gauge",
    "amidcc_meters_reachable": "gauge",
    "amidcc_read_success_ratio": "gauge",
    "amidcc_events": "counter",
    "amidcc_job_failures": "counter",
}


def samples(metrics: GatewayMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics.render()[0].decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_every_family_is_exported_with_its_type() -> None:
    text = GatewayMetrics().render()[0].decode()
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    for name, kind in FAMILIES.items():
        assert families.get(name) == kind, name
    assert "process_cpu_seconds_total" in text  # the standard process collector is there too


def test_link_counters_are_prebound_and_counted() -> None:
    metrics = GatewayMetrics(process=False)
    tcp = metrics.link(LinkKind.C1222_TCP)
    assert metrics.link("c1222-tcp") is tcp  # bound once, cached
    tcp.received(72)
    tcp.received(28)
    tcp.sent(40)
    tcp.error("crc")
    tcp.error("bad_mac")
    got = samples(metrics)
    link = ("link", "c1222-tcp")
    assert got["amidcc_messages_total", frozenset({link, ("direction", "rx")})] == 2
    assert got["amidcc_bytes_total", frozenset({link, ("direction", "rx")})] == 100
    assert got["amidcc_bytes_total", frozenset({link, ("direction", "tx")})] == 40
    assert got["amidcc_errors_total", frozenset({link, ("kind", "crc")})] == 1
    assert got["amidcc_errors_total", frozenset({link, ("kind", "timeout")})] == 0
    with pytest.raises(KeyError):
        tcp.error("gremlins")


def test_every_link_kind_and_error_kind_exists_from_the_start() -> None:
    got = samples(GatewayMetrics(process=False))
    for kind in LinkKind:
        for error in ERROR_KINDS:
            key = ("amidcc_errors_total", frozenset({("link", kind.value), ("kind", error)}))
            assert got[key] == 0
        assert got["amidcc_meters_reachable", frozenset({("link", kind.value)})] == 0


def test_latency_events_gauges() -> None:
    metrics = GatewayMetrics(process=False)
    observe = metrics.latency("read", "mqtt")
    assert metrics.latency("read", "mqtt") is observe
    observe(0.2)
    observe(7.0)
    metrics.event("clock_drift")
    metrics.event("clock_drift")
    metrics.set_meters("modbus", registered=40, reachable=38)
    metrics.read_success_ratio.labels(link="modbus").set(0.95)
    got = samples(metrics)
    labels = frozenset({("operation", "read"), ("link", "mqtt")})
    assert got["amidcc_request_latency_seconds_count", labels] == 2
    assert got["amidcc_request_latency_seconds_sum", labels] == pytest.approx(7.2)
    le = frozenset({*labels, ("le", "0.25")})
    assert got["amidcc_request_latency_seconds_bucket", le] == 1
    assert got["amidcc_events_total", frozenset({("event_class", "clock_drift")})] == 2
    assert got["amidcc_meters_registered", frozenset({("link", "modbus")})] == 40
    assert got["amidcc_meters_reachable", frozenset({("link", "modbus")})] == 38
    assert got["amidcc_read_success_ratio", frozenset({("link", "modbus")})] == 0.95


def test_registries_are_independent() -> None:
    first, second = GatewayMetrics(), GatewayMetrics()  # a global registry would refuse the second
    first.link("mqtt").received(10)
    key = ("amidcc_bytes_total", frozenset({("link", "mqtt"), ("direction", "rx")}))
    assert samples(first)[key] == 10
    assert samples(second)[key] == 0


def test_openmetrics_on_request() -> None:
    metrics = GatewayMetrics(process=False)
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    body, content_type = metrics.render("")
    assert content_type.startswith("text/plain")
