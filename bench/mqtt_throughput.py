"""MQTT throughput of one MqttClient connection on loopback (``python -m bench.mqtt_throughput``).

Figures printed, messages per second with 64-byte payloads (best of ``--repeat`` runs):
- publish only, QoS 0: until every publish is written to the socket;
- publish only, QoS 1: until every publish is PUBACKed (in-flight window 20);
- round trip on one connection, QoS 0 and QoS 1: the client subscribes to its own topic and the
  clock stops when the last message has come back (both directions through the one socket);
- pub/sub over two connections in the same process, QoS 1.

The broker is started by amidcc.net.broker (mosquitto where installed) unless ``--url`` names one.
Everything runs on one reactor thread, as the gateway does.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from twisted.internet import asyncioreactor


def _report(name: str, rate: float) -> None:
    print(f"{name:<58} {rate:>12,.0f} msg/s", flush=True)


async def _publish_only(reactor: Any, url: str, qos: int, count: int, size: int) -> float:
    from twisted.internet import defer

    from amidcc.net.mqtt import MqttClient, MqttConfig

    client = MqttClient(reactor, MqttConfig(url=url, max_queued=0))
    await client.connect(timeout=5)
    payload = bytes(size)
    start = time.perf_counter()
    await defer.gatherResults([client.publish("bench/pub", payload, qos=qos) for _ in range(count)])
    elapsed = time.perf_counter() - start
    await client.disconnect()
    return count / elapsed


async def _round_trip(reactor: Any, url: str, qos: int, count: int, size: int,
                      two_clients: bool) -> float:
    from twisted.internet import defer

    from amidcc.net.mqtt import MqttClient, MqttConfig

    pub = MqttClient(reactor, MqttConfig(url=url, max_queued=0))
    sub = MqttClient(reactor, MqttConfig(url=url, max_queued=0)) if two_clients else pub
    await defer.gatherResults([pub.connect(timeout=5), sub.connect(timeout=5)])
    done: defer.Deferred[None] = defer.Deferred()
    received = [0]

    def handler(topic: str, payload: bytes) -> None:
        received[0] += 1
        if received[0] == count:
            done.callback(None)

    await sub.subscribe("bench/rt", qos, handler)
    payload = bytes(size)
    start = time.perf_counter()
    acks = [pub.publish("bench/rt", payload, qos=qos) for _ in range(count)]
    await done
    elapsed = time.perf_counter() - start
    await defer.gatherResults(acks)  # the last PUBACKs may still be on their way
    await pub.disconnect()
    if sub is not pub:
        await sub.disconnect()
    return count / elapsed


async def _main(reactor: Any, args: argparse.Namespace) -> None:
    from amidcc.net.broker import BrokerProcess

    broker = None if args.url else BrokerProcess.start()
    url = args.url or broker.url  # type: ignore[union-attr]
    print(f"broker: {broker.kind if broker else url}, {args.count} messages of {args.size} B")
    cases = [
        ("publish only, QoS 0, one connection", lambda: _publish_only(reactor, url, 0,
                                                                       args.count, args.size)),
        ("publish only, QoS 1, one connection", lambda: _publish_only(reactor, url, 1,
                                                                       args.count, args.size)),
        ("round trip, QoS 0, one connection", lambda: _round_trip(reactor, url, 0, args.count,
                                                                   args.size, False)),
        ("round trip, QoS 1, one connection", lambda: _round_trip(reactor, url, 1, args.count,
                                                                   args.size, False)),
        ("pub -> sub, QoS 1, two connections", lambda: _round_trip(reactor, url, 1, args.count,
                                                                    args.size, True)),
    ]
    try:
        for name, case in cases:
            best = 0.0
            for _ in range(args.repeat):
                best = max(best, await case())
            _report(name, best)
    finally:
        if broker is not None:
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="messages per run")
    parser.add_argument("--size", type=int, default=64, help="payload bytes")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (best is printed)")
    parser.add_argument("--url", help="an existing broker, mqtt://host:port")
    args = parser.parse_args()

    asyncioreactor.install()
    from twisted.internet import defer, reactor

    def run() -> None:
        d = defer.ensureDeferred(_main(reactor, args))
        d.addErrback(lambda f: f.printTraceback())
        d.addBoth(lambda _: reactor.stop())  # type: ignore[attr-defined]

    reactor.callLater(0, run)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
