"""Fixtures for the MQTT tests: a real broker process and clients that are always disconnected."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_twisted

from amidcc.net.broker import BrokerError, BrokerProcess, find_broker
from amidcc.net.mqtt import MqttClient, MqttConfig

# Fast retries so a broker restart costs tens of milliseconds, not seconds.
FAST = {"backoff_min": 0.05, "backoff_max": 0.4, "backoff_jitter": 0.0, "connect_timeout": 1.0}


def _start_broker() -> BrokerProcess:
    try:
        find_broker()
    except BrokerError as err:
        pytest.skip(str(err))
    return BrokerProcess.start()


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    """One broker for a test module (tests that restart it use ``own_broker``)."""
    with _start_broker() as b:
        yield b


@pytest.fixture
def own_broker() -> Iterator[BrokerProcess]:
    """A broker for one test, which may stop and restart it."""
    with _start_broker() as b:
        yield b


@pytest_twisted.async_yield_fixture
async def make_client(reactor: Any) -> AsyncIterator[Callable[..., MqttClient]]:
    """``make_client(url, **config)`` builds a client on the running reactor; all are
    disconnected after the test."""
    clients: list[MqttClient] = []

    def make(url: str, **overrides: Any) -> MqttClient:
        client = MqttClient(reactor, MqttConfig(url=url, **{**FAST, **overrides}))
        clients.append(client)
        return client

    yield make
    from twisted.internet import reactor as running

    for client in clients:
        # Bounded: a teardown that never ends would hang the whole session, not fail one test.
        await client.disconnect().addTimeout(10.0, running)
