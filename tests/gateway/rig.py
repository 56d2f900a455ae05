"""Test helpers shared by the gateway tests: a whole gateway service on a memory reactor."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogPublisher

from amidcc.gateway.config import parse_config
from amidcc.gateway.metrics import GatewayMetrics
from amidcc.gateway.tap import GatewayService


def make_gateway(**sections: dict[str, object]) -> tuple[GatewayService, MemoryReactorClock]:
    """The gateway service for config ``sections`` (not started), with its own metrics registry
    and log publisher, on a fresh memory reactor."""
    reactor = MemoryReactorClock()
    service = GatewayService(
        parse_config(sections), reactor, metrics=GatewayMetrics(process=False),
        log_publisher=LogPublisher(),
    )  # fmt: skip
    return service, reactor
