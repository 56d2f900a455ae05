"""MqttClient against a real broker process (mosquitto, or amqtt where mosquitto is missing), on
the asyncio reactor pytest-twisted runs."""

from __future__ import annotations

import functools
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, task

from amidcc.net.broker import BrokerProcess, free_port
from amidcc.net.mqtt import (
    MqttClient,
    MqttClosed,
    MqttConnectError,
    MqttNotConnected,
    MqttState,
)

pytestmark = pytest.mark.integration

MakeClient = Callable[..., MqttClient]
TEST_TIMEOUT = 10.0


def bounded(fn: Callable[..., Awaitable[None]]) -> Any:
    """Run an async test on the reactor and fail it after TEST_TIMEOUT s instead of hanging
    the whole session (a stuck await would otherwise block pytest-twisted forever)."""

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> None:
        from twisted.internet import reactor

        d = defer.ensureDeferred(fn(*args, **kwargs))  # type: ignore[arg-type]
        d.addTimeout(TEST_TIMEOUT, reactor)
        await d

    return pytest_twisted.ensureDeferred(run)


async def wait_for(reactor: Any, predicate: Callable[[], bool], timeout: float = 5.0,
                   what: str = "condition") -> None:
    """Poll ``predicate`` every 10 ms on the reactor; fail the test after ``timeout`` s."""
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await task.deferLater(reactor, 0.01)


def collector() -> tuple[list[tuple[str, bytes]], Callable[[str, bytes], None]]:
    got: list[tuple[str, bytes]] = []
    return got, lambda topic, payload: got.append((topic, payload))


@bounded
async def test_connect_subscribe_and_stats(reactor: Any, broker: BrokerProcess,
                                           make_client: MakeClient) -> None:
    client = make_client(broker.url)
    assert client.state is MqttState.IDLE
    await client.connect(timeout=3)
    assert client.state is MqttState.CONNECTED
    assert (await client.connect()) is None  # already connected: fires at once
    granted = await client.subscribe("t/connect/#", 1, lambda t, p: None)
    assert granted == 1
    stats = client.stats()
    assert (stats.connects, stats.reconnects, stats.connect_failures) == (1, 0, 0)


@pytest.mark.parametrize("qos", [0, 1])
@bounded
async def test_round_trip(reactor: Any, broker: BrokerProcess, make_client: MakeClient,
                          qos: int) -> None:
    pub, sub = make_client(broker.url), make_client(broker.url)
    await defer.gatherResults([pub.connect(), sub.connect()])
    got, handler = collector()
    await sub.subscribe(f"t/rt{qos}/+/up", qos, handler)
    payload = bytes(range(256))  # binary APDU bytes survive untouched
    await pub.publish(f"t/rt{qos}/cell7/up", payload, qos=qos)
    await wait_for(reactor, lambda: bool(got), what="the message")
    assert got == [(f"t/rt{qos}/cell7/up", payload)]
    assert pub.stats().messages_out == 1 and pub.stats().bytes_out == 256
    assert sub.stats().messages_in == 1 and sub.stats().bytes_in == 256


@bounded
async def test_2000_qos1_messages_through_one_connection(
    reactor: Any, broker: BrokerProcess, make_client: MakeClient
) -> None:
    client = make_client(broker.url)
    await client.connect()
    got, handler = collector()
    await client.subscribe("t/bulk", 1, handler)
    n = 2000
    acks = [client.publish("t/bulk", b"%06d" % i, qos=1) for i in range(n)]
    await defer.gatherResults(acks)
    await wait_for(reactor, lambda: len(got) >= n, what=f"{n} messages")
    assert [p for _t, p in got] == [b"%06d" % i for i in range(n)]  # none lost, none doubled, in order
    stats = client.stats()
    assert stats.messages_out == n and stats.pending_publishes == 0
    assert stats.messages_in == n


@bounded
async def test_two_clients_multiplex_many_topics(
    reactor: Any, broker: BrokerProcess, make_client: MakeClient
) -> None:
    # "head-end" subscribes to every cell's uplink with one wildcard; the "mesh" answers on
    # per-meter downlinks it subscribes one by one.
    headend, mesh = make_client(broker.url), make_client(broker.url)
    await defer.gatherResults([headend.connect(), mesh.connect()])
    meters = [f"m{i:03d}" for i in range(150)]
    up: Counter[str] = Counter()
    down: Counter[str] = Counter()
    await headend.subscribe("t/mux/+/up", 1, lambda t, p: up.update([t.split("/")[2]]))
    subs = [mesh.subscribe(f"t/mux/{m}/down", 1, lambda t, p: down.update([t.split("/")[2]]))
            for m in meters]
    await defer.gatherResults(subs)
    rounds = 3
    sends = []
    for r in range(rounds):
        for m in meters:
            sends.append(mesh.publish(f"t/mux/{m}/up", b"up%d" % r, qos=1))
            sends.append(headend.publish(f"t/mux/{m}/down", b"down%d" % r, qos=1))
    await defer.gatherResults(sends)
    total = rounds * len(meters)
    await wait_for(reactor, lambda: sum(up.values()) >= total and sum(down.values()) >= total,
                   what="all uplinks and downlinks")
    assert up == Counter({m: rounds for m in meters})
    assert down == Counter({m: rounds for m in meters})
    assert headend.stats().unhandled == mesh.stats().unhandled == 0


@bounded
async def test_broker_restart_mid_stream(reactor: Any, own_broker: BrokerProcess,
                                         make_client: MakeClient) -> None:
    pub, sub = make_client(own_broker.url), make_client(own_broker.url)
    await defer.gatherResults([pub.connect(), sub.connect()])
    got, handler = collector()
    await sub.subscribe("t/restart/#", 1, handler)
    sent: list[bytes] = []
    acks = []
    for i in range(300):
        if i == 150:
            own_broker.restart()
        payload = b"%04d" % i
        sent.append(payload)
        acks.append(pub.publish("t/restart/self", payload, qos=1))
        if i % 25 == 0:
            await task.deferLater(reactor, 0.005)  # let the stream interleave with the restart
    await defer.gatherResults(acks)  # every QoS 1 publish PUBACKed by some broker instance
    for client in (pub, sub):
        await wait_for(reactor, lambda c=client: c.state is MqttState.CONNECTED)
        assert client.stats().reconnects == 1 and client.stats().connection_losses == 1
        assert "connection lost" in (client.last_error or "")
    # Messages the restart swallowed are the broker's (no persistence); what matters here is that
    # the subscription came back without the test re-subscribing: keep publishing until one lands.
    before = len(got)
    probe = 0
    while len(got) == before:
        probe += 1
        await pub.publish("t/restart/probe", b"p%d" % probe, qos=1)
        await task.deferLater(reactor, 0.02)
        assert probe < 100, "subscription was not restored after the broker restart"
    assert got[-1][0] == "t/restart/probe"


@bounded
async def test_qos1_published_while_broker_down_are_delivered_after(
    reactor: Any, own_broker: BrokerProcess, make_client: MakeClient
) -> None:
    client = make_client(own_broker.url)
    await client.connect()
    got, handler = collector()
    await client.subscribe("t/queued", 1, handler)
    own_broker.stop()
    await wait_for(reactor, lambda: client.state is MqttState.WAITING, what="loss noticed")
    acks = [client.publish("t/queued", b"q%03d" % i, qos=1) for i in range(100)]
    qos0 = client.publish("t/queued", b"lost", qos=0)
    with pytest.raises(MqttNotConnected):
        await qos0
    await task.deferLater(reactor, 0.3)  # a few refused retries with backoff
    assert client.stats().connect_failures >= 2
    assert not any(d.called for d in acks)
    own_broker.restart()
    await defer.gatherResults(acks)
    # On reconnect the SUBSCRIBE goes out before the held publishes, so they come back to us.
    await wait_for(reactor, lambda: len(got) >= 100, what="queued publishes")
    assert sorted(p for _t, p in got) == [b"q%03d" % i for i in range(100)]
    assert client.stats().reconnects == 1


@bounded
async def test_dead_port_fails_clearly_then_connects_when_broker_appears(
    reactor: Any, make_client: MakeClient
) -> None:
    port = free_port()
    client = make_client(f"mqtt://127.0.0.1:{port}")
    with pytest.raises(MqttConnectError) as info:
        await client.connect(timeout=0.4)
    error = info.value
    assert f"127.0.0.1:{port}" in str(error) and "refused" in str(error)
    assert error.attempts >= 3  # 0, 0.05, 0.15, 0.35 with backoff 0.05 doubling
    assert client.state is MqttState.WAITING
    later = client.connect()  # still retrying: a new waiter fires once a broker listens
    with BrokerProcess.start(port=port):
        await later
        assert client.state is MqttState.CONNECTED
        assert client.stats().connect_failures >= error.attempts
        await client.disconnect()


@bounded
async def test_clean_disconnect_and_connect_again(reactor: Any, broker: BrokerProcess,
                                                   make_client: MakeClient) -> None:
    client = make_client(broker.url)
    got, handler = collector()
    subscribed = client.subscribe("t/again", 0, handler)  # before the first connect
    assert not subscribed.called
    await client.connect()
    assert (await subscribed) == 0  # SUBACK of the subscription sent after CONNACK
    await client.disconnect()
    assert client.state is MqttState.STOPPED
    attempts = client.stats().connect_attempts
    await task.deferLater(reactor, 0.2)
    assert client.stats().connect_attempts == attempts  # no retries after disconnect()
    with pytest.raises(MqttNotConnected):
        await client.publish("t/again", b"x", qos=0)
    await client.connect()
    await client.publish("t/again", b"back", qos=1)
    await wait_for(reactor, lambda: bool(got), what="message after reconnect")
    assert got == [("t/again", b"back")]
    assert client.stats().reconnects == 0 and client.stats().connects == 2


@bounded
async def test_disconnect_fails_unacknowledged_publishes(
    reactor: Any, own_broker: BrokerProcess, make_client: MakeClient
) -> None:
    client = make_client(own_broker.url)
    await client.connect()
    own_broker.stop()
    await wait_for(reactor, lambda: client.state is MqttState.WAITING, what="loss noticed")
    held = client.publish("t/held", b"x", qos=1)
    await client.disconnect()
    with pytest.raises(MqttClosed):
        await held
    assert client.stats().pending_publishes == 0


@bounded
async def test_handler_errors_are_counted_not_fatal(reactor: Any, broker: BrokerProcess,
                                                    make_client: MakeClient) -> None:
    client = make_client(broker.url)
    await client.connect()
    got, handler = collector()

    def broken(topic: str, payload: bytes) -> None:
        raise RuntimeError("handler bug")

    await client.subscribe("t/err/bad", 0, broken)
    await client.subscribe("t/err/good", 0, handler)
    await client.publish("t/err/bad", b"1", qos=1)
    await client.publish("t/err/good", b"2", qos=1)
    await wait_for(reactor, lambda: bool(got), what="the good message")
    assert client.stats().handler_errors == 1
    assert client.state is MqttState.CONNECTED


@bounded
async def test_retained_status_and_unsubscribe(reactor: Any, broker: BrokerProcess,
                                               make_client: MakeClient) -> None:
    pub, sub = make_client(broker.url), make_client(broker.url)
    await defer.gatherResults([pub.connect(), sub.connect()])
    await pub.publish("t/cell9/status", b'{"relays": 3}', qos=1, retain=True)
    got, handler = collector()
    await sub.subscribe("t/cell9/status", 1, handler)
    await wait_for(reactor, lambda: bool(got), what="the retained message")
    assert got == [("t/cell9/status", b'{"relays": 3}')]
    await sub.unsubscribe("t/cell9/status")
    await pub.publish("t/cell9/status", b"", qos=1, retain=True)  # clears the retained message
    await task.deferLater(reactor, 0.05)
    assert len(got) == 1


@bounded
async def test_persistent_session_keeps_messages_while_away(
    reactor: Any, broker: BrokerProcess, make_client: MakeClient
) -> None:
    pub = make_client(broker.url)
    sub = make_client(broker.url, clean_session=False, client_id="amidcc-test-persistent")
    await defer.gatherResults([pub.connect(), sub.connect()])
    got, handler = collector()
    await sub.subscribe("t/persist", 1, handler)
    await sub.disconnect()
    await defer.gatherResults([pub.publish("t/persist", b"%d" % i, qos=1) for i in range(5)])
    await sub.connect()
    await wait_for(reactor, lambda: len(got) >= 5, what="messages kept by the broker")
    assert {p for _t, p in got} == {b"%d" % i for i in range(5)}


@bounded
async def test_connack_never_comes(reactor: Any, make_client: MakeClient) -> None:
    # A listener that never accepts: the kernel completes the TCP handshake from its backlog,
    # the CONNECT goes nowhere, and the client must give up on the CONNACK and retry.
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(16)
        port = mute.getsockname()[1]
        client = make_client(f"mqtt://127.0.0.1:{port}", connect_timeout=0.2)
        with pytest.raises(MqttConnectError, match="no CONNACK within 0.2 s"):
            await client.connect(timeout=0.5)
        assert client.stats().connect_attempts >= 2
        await client.disconnect()


@bounded
async def test_connect_by_host_name(reactor: Any, broker: BrokerProcess,
                                    make_client: MakeClient) -> None:
    client = make_client(f"mqtt://localhost:{broker.port}")  # resolved by the reactor first
    await client.connect(timeout=5)
    got, handler = collector()
    await client.subscribe("t/name", 0, handler)
    await client.publish("t/name", b"by name", qos=1)
    await wait_for(reactor, lambda: bool(got), what="the message")
    assert got == [("t/name", b"by name")]
