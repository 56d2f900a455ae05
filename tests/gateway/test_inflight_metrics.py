"""The throttle's in-flight gauges and the trouble-event counter: read at scrape time from the
throttle, counted from the trouble sink, and wired for every link by the Composition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogPublisher

from amidcc.events import Component, EventClass, FailureType, TroubleEvent
from amidcc.gateway.config import parse_config
from amidcc.gateway.metrics import GatewayMetrics
from amidcc.gateway.tap import build_service
from amidcc.gateway.throttle import RequestThrottle


def scrape(metrics: GatewayMetrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = metrics.render()[0].decode()
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_in_flight_and_peak_are_read_from_the_limit_when_scraped() -> None:
    metrics = GatewayMetrics(process=False)
    throttle = RequestThrottle(per_link=2, per_collector=8)
    metrics.watch_in_flight("c1222-tcp", throttle.link_limit("c1222-tcp"))
    pending: list[Deferred[None]] = []

    def start() -> Deferred[None]:
        d: Deferred[None] = Deferred()
        pending.append(d)
        return d

    for _ in range(3):  # the third waits: two in flight, peak two
        throttle.run("c1222-tcp", None, start)
    key = (("link", "c1222-tcp"),)
    assert scrape(metrics, "amidcc_requests_in_flight")[key] == 2
    assert scrape(metrics, "amidcc_requests_in_flight_peak")[key] == 2
    for d in list(pending):
        d.callback(None)
    pending[-1].callback(None)  # the queued one started when a slot came free
    assert scrape(metrics, "amidcc_requests_in_flight")[key] == 0
    assert scrape(metrics, "amidcc_requests_in_flight_peak")[key] == 2


def test_trouble_events_are_counted_by_failure_type() -> None:
    metrics = GatewayMetrics(process=False)
    metrics.trouble("tamper")
    metrics.trouble("tamper")
    metrics.trouble("unreachable")
    counted = scrape(metrics, "amidcc_trouble_events_total")
    assert counted == {(("failure_type", "tamper"),): 2, (("failure_type", "unreachable"),): 1}


def test_the_composition_watches_every_link_and_the_sink(tmp_path: Path) -> None:
    config = parse_config(
        {
            "gateway": {"state_dir": str(tmp_path / "state")},
            "throttle": {"max_inflight_per_link": 3},
        }
    )
    gateway = build_service(config, MemoryReactorClock(), metrics=GatewayMetrics(process=False))
    gateway._log_setup.publisher = LogPublisher()  # keep the test's log observers untouched
    gateway.startService()
    try:
        peaks = scrape(gateway.metrics, "amidcc_requests_in_flight_peak")
        assert peaks == {(("link", "c1222-tcp"),): 0.0}
        sink: Any = gateway.stores["trouble_sink"]
        sink.submit(
            TroubleEvent(
                trouble_id="tr-1", meter_id="meter-0001", failure_type=FailureType.TAMPER,
                component=Component.METER, event_class=EventClass.SAFETY, critical=True,
                detected=0.0,
            )
        )  # fmt: skip
        counted = scrape(gateway.metrics, "amidcc_trouble_events_total")
        assert counted == {(("failure_type", "tamper"),): 1.0}
    finally:
        gateway.stopService()
