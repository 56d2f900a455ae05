"""MQTT on the Twisted reactor: paho-mqtt 2.x driven through its external-loop API, no threads.

Theory of operation. paho owns the MQTT session (packet encoding, message ids, the in-flight window,
QoS 1 retransmission); this module owns the socket's place in the reactor and the connection's
supervision. paho tells us when its socket opens and closes and when it has bytes to write
(``on_socket_*`` callbacks); a small read/write descriptor hands readiness back to ``loop_read`` /
``loop_write``, and a looping call runs ``loop_misc`` (keep-alive) once a second.

paho's ``reconnect()`` blocks in DNS and in the TCP connect. We resolve names with the reactor first
and give the TCP connect a short timeout (loopback and LAN brokers answer or refuse at once), and we
drive every retry from ``callLater`` with exponential backoff, never from paho's own reconnect loop.

The connection is a small state machine (``_TRANSITIONS``); anything that may re-enter paho, or run
user code that might, is moved out of paho's call stack with ``callLater(0, ...)``. QoS 1 publishes
stay in paho's session while the link is down and are sent again after reconnect (at least once);
subscriptions are kept here and sent again after every CONNACK.
"""

from __future__ import annotations

import enum
import ipaddress
import secrets
import socket
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.matcher import MQTTMatcher
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReadDescriptor, IWriteDescriptor
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer  # type: ignore[import-untyped]

from .mqtt_config import (
    Backoff,
    MqttAddress,
    MqttClosed,
    MqttConfig,
    MqttConnectError,
    MqttConnectionLost,
    MqttError,
    MqttNotConnected,
    MqttQueueFull,
    MqttSubscribeError,
    parse_mqtt_url,
)

__all__ = [
    "Backoff",
    "MessageHandler",
    "MqttAddress",
    "MqttClient",
    "MqttClosed",
    "MqttConfig",
    "MqttConnectError",
    "MqttConnectionLost",
    "MqttError",
    "MqttNotConnected",
    "MqttQueueFull",
    "MqttState",
    "MqttStats",
    "MqttSubscribeError",
    "parse_mqtt_url",
]

log = Logger(namespace="amidcc.net.mqtt")

MessageHandler = Callable[[str, bytes], object]
"""A subscription's handler: ``handler(topic, payload)``, called on the reactor thread."""

_SUBSCRIBE_BATCH = 100  # topic filters per SUBSCRIBE packet when restoring subscriptions


# -- state machine ------------------------------------------------------------------------------


class MqttState(enum.Enum):
    """Where a client's connection stands."""

    IDLE = "idle"
    """Built; ``connect()`` not called yet."""
    CONNECTING = "connecting"
    """Resolving, opening TCP, or waiting for CONNACK."""
    CONNECTED = "connected"
    """CONNACK accepted; publishes flow."""
    WAITING = "waiting"
    """Backoff timer running before the next attempt."""
    DISCONNECTING = "disconnecting"
    """``disconnect()`` asked; DISCONNECT is being sent."""
    STOPPED = "stopped"
    """Disconnected on request; ``connect()`` may start again."""


class _In(enum.Enum):
    START = "start"
    CONNACK = "connack"
    FAILED = "failed"  # an attempt failed: DNS, TCP, CONNACK refused or overdue
    LOST = "lost"  # an established connection closed
    RETRY = "retry"
    STOP = "stop"
    CLOSED = "closed"  # the socket is gone while disconnecting


_S = MqttState
_TRANSITIONS: dict[tuple[MqttState, _In], MqttState] = {
    (_S.IDLE, _In.START): _S.CONNECTING,
    (_S.STOPPED, _In.START): _S.CONNECTING,
    (_S.CONNECTING, _In.CONNACK): _S.CONNECTED,
    (_S.CONNECTING, _In.FAILED): _S.WAITING,
    (_S.CONNECTED, _In.LOST): _S.WAITING,
    (_S.WAITING, _In.RETRY): _S.CONNECTING,
    (_S.IDLE, _In.STOP): _S.DISCONNECTING,
    (_S.CONNECTING, _In.STOP): _S.DISCONNECTING,
    (_S.CONNECTED, _In.STOP): _S.DISCONNECTING,
    (_S.WAITING, _In.STOP): _S.DISCONNECTING,
    (_S.STOPPED, _In.STOP): _S.STOPPED,
    (_S.DISCONNECTING, _In.STOP): _S.DISCONNECTING,
    (_S.DISCONNECTING, _In.CONNACK): _S.DISCONNECTING,
    (_S.DISCONNECTING, _In.CLOSED): _S.STOPPED,
}
"""(state, input) -> next state. A pair not listed is a bug in this module and raises."""


@dataclass(frozen=True, kw_only=True)
class MqttStats:
    """A snapshot of one client's counters."""

    state: MqttState
    """Connection state when the snapshot was taken."""
    messages_in: int
    """PUBLISH packets received."""
    bytes_in: int
    """Payload bytes received."""
    messages_out: int
    """Publishes completed (QoS 0 written to the socket, QoS 1 PUBACKed)."""
    bytes_out: int
    """Payload bytes of completed publishes."""
    connects: int
    """Accepted CONNACKs."""
    reconnects: int
    """Accepted CONNACKs that followed a lost connection."""
    connection_losses: int
    """Established connections that closed without ``disconnect()``."""
    connect_attempts: int
    """Connection attempts started (first and retries)."""
    connect_failures: int
    """Attempts that failed before an accepted CONNACK."""
    handler_errors: int
    """Exceptions raised by subscription handlers (logged, then ignored)."""
    unhandled: int
    """Messages that matched no local subscription."""
    pending_publishes: int
    """Publishes whose Deferred has not fired yet."""


class _Reactor(Protocol):
    """What the client needs from its reactor: time, file descriptors, name resolution."""

    def callLater(  # noqa: N802 (Twisted's name)
        self, delay: float, f: Callable[..., object], /, *args: object
    ) -> DelayedCall: ...
    def seconds(self) -> float: ...
    def addReader(self, reader: Any, /) -> None: ...  # noqa: N802
    def addWriter(self, writer: Any, /) -> None: ...  # noqa: N802
    def removeReader(self, reader: Any, /) -> None: ...  # noqa: N802
    def removeWriter(self, writer: Any, /) -> None: ...  # noqa: N802
    def resolve(self, name: str, /, timeout: Sequence[int] = ...) -> Deferred[str]: ...


@implementer(IReadDescriptor, IWriteDescriptor)
class _PahoSocket:
    """paho's socket as a reactor descriptor: readiness goes back to paho's loop_read/loop_write."""

    def __init__(self, owner: MqttClient, sock: Any) -> None:
        self._owner = owner
        self.sock = sock
        self._fd: int = sock.fileno()

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> None:  # noqa: N802
        self._owner._readable(self)

    def doWrite(self) -> None:  # noqa: N802
        self._owner._writable(self)

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802
        # Only reached if doRead/doWrite raised, which _readable/_writable prevent.
        log.error("mqtt descriptor lost: {reason}", reason=reason)

    def logPrefix(self) -> str:  # noqa: N802
        return "mqtt"

    def shutdown(self) -> None:
        """Force the connection down: paho then reads EOF and closes through its normal path."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# -- the client ---------------------------------------------------------------------------------


class MqttClient:
    """One MQTT connection on the reactor thread, kept up with backoff until ``disconnect()``.

    :param reactor: provides ``callLater``, ``seconds``, ``add/removeReader``, ``add/removeWriter``
        and ``resolve`` (the running reactor in production, a memory reactor in tests).
    :param config: connection settings; the default is a loopback broker on 1883.
    """

    def __init__(self, reactor: _Reactor, config: MqttConfig | None = None) -> None:
        self.config = config or MqttConfig()
        self._reactor = reactor
        self._address = self.config.address
        self.client_id = self.config.client_id or f"amidcc-{secrets.token_hex(6)}"
        self._paho = self._make_paho()
        self._backoff = Backoff(
            self.config.backoff_min, self.config.backoff_max,
            factor=self.config.backoff_factor, jitter=self.config.backoff_jitter,
        )
        self._state = MqttState.IDLE
        self._desc: _PahoSocket | None = None
        self._generation = 0  # invalidates a resolution that finishes after disconnect()
        self._recovering = False
        self._retry_call: DelayedCall | None = None
        self._connack_call: DelayedCall | None = None
        self._disconnect_call: DelayedCall | None = None
        self._lost_reason = ""
        self._attempt_explained = False  # has the current attempt's failure been recorded?
        self._misc = LoopingCall(self._run_misc)
        self._misc.clock = cast(Any, reactor)
        self.last_error: str | None = None
        self._connect_waiters: list[Deferred[None]] = []
        self._disconnect_waiters: list[Deferred[None]] = []
        self._pending0: deque[tuple[int, int, Deferred[None]]] = deque()  # (mid, size, d) FIFO
        self._pending1: dict[int, tuple[int, Deferred[None]]] = {}  # mid -> (size, d)
        self._subs: dict[str, tuple[int, MessageHandler]] = {}
        self._matcher = MQTTMatcher()  # type: ignore[no-untyped-call]
        self._unsent_subs: list[tuple[str, Deferred[int]]] = []
        self._sub_batches: dict[int, tuple[list[str], list[tuple[str, Deferred[int]]]]] = {}
        self._unsub_waiters: dict[int, Deferred[None]] = {}
        self._counts = dict.fromkeys(
            ("messages_in", "bytes_in", "messages_out", "bytes_out", "connects", "reconnects",
             "connection_losses", "connect_attempts", "connect_failures", "handler_errors",
             "unhandled"), 0)

    def _make_paho(self) -> paho.Client:
        cfg = self.config
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id,
            clean_session=cfg.clean_session, reconnect_on_failure=False,
        )
        client.connect_timeout = cfg.connect_timeout
        client.max_inflight_messages = cfg.max_inflight
        client.max_queued_messages = cfg.max_queued
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        return client

    # -- public API ----------------------------------------------------------------------------

    @property
    def state(self) -> MqttState:
        """The connection state."""
        return self._state

    @property
    def url(self) -> str:
        """The broker URL this client connects to, password redacted (it goes into logs)."""
        return self.config.safe_url

    def stats(self) -> MqttStats:
        """A snapshot of the counters."""
        pending = len(self._pending0) + len(self._pending1)
        return MqttStats(state=self._state, pending_publishes=pending, **self._counts)

    def connect(self, timeout: float | None = None) -> Deferred[None]:
        """Start connecting (and keep the connection up); fires on the first accepted CONNACK.

        With ``timeout``, the Deferred fails with :class:`MqttConnectError` (naming the last
        attempt's error) if no CONNACK came in time; the client goes on retrying regardless.
        """
        if self._state is MqttState.CONNECTED:
            return succeed(None)
        if self._state is MqttState.DISCONNECTING:
            return fail(MqttClosed("disconnect() in progress"))
        d: Deferred[None] = Deferred()
        self._connect_waiters.append(d)
        if timeout is not None:
            call = self._reactor.callLater(timeout, self._connect_overdue, d, timeout)
            d.addBoth(_cancel_call, call)
        if self._state in (MqttState.IDLE, MqttState.STOPPED):
            self._feed(_In.START)
            self._misc.start(self.config.misc_interval, now=False)
            self._attempt()
        return d

    def disconnect(self) -> Deferred[None]:
        """Send DISCONNECT and stop retrying; fires once the socket is closed.

        Unacknowledged QoS 1 publishes are dropped and their Deferreds fail with
        :class:`MqttClosed`; subscriptions are kept for a later ``connect()``.
        """
        if self._state is MqttState.STOPPED:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._disconnect_waiters.append(d)
        if self._state is MqttState.DISCONNECTING:
            return d
        self._feed(_In.STOP)
        self._generation += 1
        self._cancel_timers()
        if self._desc is None:
            self._finish_stop()
        else:
            self._paho.disconnect()
            self._disconnect_call = self._reactor.callLater(
                self.config.connect_timeout, self._disconnect_overdue)
        return d

    def publish(
        self, topic: str, payload: bytes, qos: int = 0, *, retain: bool = False
    ) -> Deferred[None]:
        """Publish; fires when written to the socket (QoS 0) or PUBACKed (QoS 1).

        QoS 1 publishes made while disconnected are held (up to ``max_queued``) and sent after
        reconnect. QoS 0 fails with :class:`MqttNotConnected` when there is no connection.
        """
        if qos not in (0, 1):
            raise ValueError(f"publish qos must be 0 or 1, not {qos!r}")
        if qos == 0 and self._desc is None:
            return fail(MqttNotConnected(f"not connected to {self.url}: QoS 0 is not queued"))
        info = self._paho.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            return fail(MqttQueueFull(f"{self.config.max_queued} QoS 1 publishes unacknowledged"))
        d: Deferred[None] = Deferred()
        if qos == 0:
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return fail(MqttNotConnected(f"publish failed: {paho.error_string(info.rc)}"))
            self._pending0.append((info.mid, len(payload), d))
        else:
            self._pending1[info.mid] = (len(payload), d)
        return d

    def subscribe(self, topic_filter: str, qos: int, handler: MessageHandler) -> Deferred[int]:
        """Subscribe and keep the subscription across reconnects; fires with the granted QoS.

        ``handler(topic, payload)`` runs on the reactor thread for each matching message. One
        handler per filter: subscribing the same filter again replaces it.
        """
        if qos not in (0, 1):
            raise ValueError(f"subscribe qos must be 0 or 1, not {qos!r}")
        _check_filter(topic_filter)
        self._subs[topic_filter] = (qos, handler)
        self._matcher[topic_filter] = handler
        d: Deferred[int] = Deferred()
        if self._state is MqttState.CONNECTED:
            self._send_subscribe([topic_filter], [(topic_filter, d)])
        else:
            self._unsent_subs.append((topic_filter, d))
        return d

    def unsubscribe(self, topic_filter: str) -> Deferred[None]:
        """Forget a subscription here and at the broker; fires on UNSUBACK (at once if offline)."""
        if self._subs.pop(topic_filter, None) is None:
            return succeed(None)
        del self._matcher[topic_filter]  # type: ignore[no-untyped-call]
        if self._state is not MqttState.CONNECTED:
            return succeed(None)
        rc, mid = self._paho.unsubscribe(topic_filter)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._unsub_waiters[mid] = d
        return d

    @property
    def subscriptions(self) -> dict[str, int]:
        """Topic filter -> requested QoS of every kept subscription."""
        return {f: qos for f, (qos, _h) in self._subs.items()}

    # -- state machine -------------------------------------------------------------------------

    def _feed(self, event: _In) -> MqttState:
        try:
            new = _TRANSITIONS[(self._state, event)]
        except KeyError:
            raise MqttError(f"bug: no transition from {self._state.name} on {event.name}") from None
        if new is not self._state:
            log.debug("mqtt {url} {old} -> {new}", url=self.url, old=self._state.name,
                      new=new.name)
        self._state = new
        return new

    def _attempt(self) -> None:
        self._counts["connect_attempts"] += 1
        self._attempt_explained = False
        generation = self._generation
        host = self._address.host
        if _is_ip_literal(host):
            d = succeed(host)
        else:
            timeout = max(1, round(self.config.connect_timeout))
            d = self._reactor.resolve(host, timeout=(timeout,))
        d.addCallbacks(self._open, self._attempt_failed,
                       callbackArgs=(generation,), errbackArgs=(generation,))

    def _open(self, ip: str, generation: int) -> None:
        if generation != self._generation or self._state is not MqttState.CONNECTING:
            return
        try:
            self._paho.connect_async(ip, self._address.port, self.config.keepalive)
            rc = self._paho.reconnect()
        except OSError as err:
            self._attempt_failed(Failure(err), generation)  # type: ignore[no-untyped-call]
            return
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and self._desc is None:
            error = MqttError(paho.error_string(rc))
            self._attempt_failed(Failure(error), generation)  # type: ignore[no-untyped-call]
            return
        self._connack_call = self._reactor.callLater(self.config.connect_timeout,
                                                     self._connack_overdue)

    def _attempt_failed(self, reason: Failure, generation: int) -> None:
        if generation != self._generation or self._state is not MqttState.CONNECTING:
            return
        error = reason.value if reason.value is not None else MqttError(reason.getErrorMessage())
        self._record_error(_describe(error))
        self._failed()

    def _failed(self) -> None:
        self._counts["connect_failures"] += 1
        self._feed(_In.FAILED)
        self._fail_pending0(MqttConnectionLost(f"connection to {self.url} failed"))
        self._schedule_retry()

    def _record_error(self, what: str) -> None:
        host, port = self._address.host, self._address.port
        self.last_error = f"MQTT broker {host}:{port} ({self.url}): {what}"
        self._attempt_explained = True
        log.info("{error}; retrying", error=self.last_error)

    def _schedule_retry(self) -> None:
        delay = self._backoff.next_delay()
        self._retry_call = self._reactor.callLater(delay, self._retry)

    def _retry(self) -> None:
        self._retry_call = None
        if self._state is MqttState.WAITING:
            self._feed(_In.RETRY)
            self._attempt()

    def _connack_overdue(self) -> None:
        self._connack_call = None
        if self._state is MqttState.CONNECTING and self._desc is not None:
            self._record_error(f"no CONNACK within {self.config.connect_timeout:g} s")
            self._desc.shutdown()

    def _connect_overdue(self, d: Deferred[None], timeout: float) -> None:
        if d.called:
            return
        self._connect_waiters.remove(d)
        reason = self.last_error or "no answer"
        attempts = self._counts["connect_attempts"]
        d.errback(MqttConnectError(
            f"could not connect to {self.url} within {timeout:g} s after {attempts}"
            f" attempt(s): {reason} (still retrying)",
            url=self.url, attempts=attempts, reason=reason,
        ))

    def _disconnect_overdue(self) -> None:
        if self._state is MqttState.DISCONNECTING and self._desc is not None:
            self._desc.shutdown()

    def _cancel_timers(self) -> None:
        for call in (self._retry_call, self._connack_call, self._disconnect_call):
            _cancel_call(None, call)
        self._retry_call = self._connack_call = self._disconnect_call = None

    def _run_misc(self) -> None:
        if self._desc is not None:
            self._guarded(self._paho.loop_misc, self._desc)

    # -- paho socket callbacks (inside paho's call stack) ---------------------------------------

    def _on_socket_open(self, client: paho.Client, userdata: object, sock: Any) -> None:
        if self.config.tcp_nodelay:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):
                pass
        self._desc = _PahoSocket(self, sock)
        self._reactor.addReader(self._desc)

    def _on_socket_close(self, client: paho.Client, userdata: object, sock: Any) -> None:
        desc = self._desc
        if desc is None or desc.sock is not sock:
            return
        self._reactor.removeReader(desc)
        self._reactor.removeWriter(desc)
        self._desc = None
        _cancel_call(None, self._connack_call)
        self._connack_call = None
        self._reactor.callLater(0, self._socket_closed, self._generation)

    def _on_register_write(self, client: paho.Client, userdata: object, sock: Any) -> None:
        if self._desc is not None and self._desc.sock is sock:
            self._reactor.addWriter(self._desc)

    def _on_unregister_write(self, client: paho.Client, userdata: object, sock: Any) -> None:
        if self._desc is not None and self._desc.sock is sock:
            self._reactor.removeWriter(self._desc)

    def _readable(self, desc: _PahoSocket) -> None:
        if desc is self._desc:
            self._guarded(self._paho.loop_read, desc)

    def _writable(self, desc: _PahoSocket) -> None:
        if desc is self._desc:
            self._guarded(self._paho.loop_write, desc)

    def _guarded(self, step: Callable[[], object], desc: _PahoSocket) -> None:
        try:
            step()
        except Exception:
            # A bug in a callback must not leave paho half-way through a packet: drop the link.
            log.failure("mqtt {url}: error inside paho loop; dropping connection", url=self.url)
            desc.shutdown()

    # -- paho protocol callbacks ----------------------------------------------------------------

    def _on_connect(self, client: paho.Client, userdata: object, flags: paho.ConnectFlags,
                    reason: ReasonCode, properties: Properties | None) -> None:
        if reason.is_failure:
            self._record_error(f"CONNACK refused: {reason}")
            return  # paho closes the socket next; _socket_closed counts the failure
        _cancel_call(None, self._connack_call)
        self._connack_call = None
        if self._feed(_In.CONNACK) is not MqttState.CONNECTED:
            return
        self._backoff.reset()
        self._counts["connects"] += 1
        if self._recovering:
            self._counts["reconnects"] += 1
            self._recovering = False
        log.info("mqtt {url} connected (session present: {sp})", url=self.url,
                 sp=flags.session_present)
        self._resubscribe()
        waiters, self._connect_waiters = self._connect_waiters, []
        self._reactor.callLater(0, _fire_all, waiters, None)

    def _on_disconnect(self, client: paho.Client, userdata: object, flags: paho.DisconnectFlags,
                       reason: ReasonCode, properties: Properties | None) -> None:
        self._lost_reason = str(reason)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        payload = bytes(msg.payload)
        self._counts["messages_in"] += 1
        self._counts["bytes_in"] += len(payload)
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            self._counts["unhandled"] += 1
            return
        handled = False
        for handler in self._matcher.iter_match(topic):  # type: ignore[no-untyped-call]
            handled = True
            try:
                handler(topic, payload)
            except Exception:
                self._counts["handler_errors"] += 1
                log.failure("mqtt handler for {topic} raised", topic=topic)
        if not handled:
            self._counts["unhandled"] += 1

    def _on_publish(self, client: paho.Client, userdata: object, mid: int,
                    reason: ReasonCode, properties: Properties) -> None:
        # QoS 0 completions arrive in write order, so the oldest pending QoS 0 is the one.
        if self._pending0 and self._pending0[0][0] == mid:
            _mid, size, d = self._pending0.popleft()
        elif mid in self._pending1:
            size, d = self._pending1.pop(mid)
        else:
            return
        self._counts["messages_out"] += 1
        self._counts["bytes_out"] += size
        if not d.called:  # cancelled by its caller
            d.callback(None)

    def _on_subscribe(self, client: paho.Client, userdata: object, mid: int,
                      reasons: list[ReasonCode], properties: Properties) -> None:
        batch = self._sub_batches.pop(mid, None)
        if batch is None:
            return
        filters, waiters = batch
        for topic_filter, d in waiters:
            reason = reasons[filters.index(topic_filter)]
            if d.called:  # cancelled by its caller
                continue
            if reason.is_failure:
                d.errback(MqttSubscribeError(f"broker refused {topic_filter!r}: {reason}"))
            else:
                d.callback(reason.value)

    def _on_unsubscribe(self, client: paho.Client, userdata: object, mid: int,
                        reasons: list[ReasonCode], properties: Properties | None) -> None:
        d = self._unsub_waiters.pop(mid, None)
        if d is not None and not d.called:
            d.callback(None)

    # -- subscriptions -------------------------------------------------------------------------

    def _resubscribe(self) -> None:
        waiters, self._unsent_subs = self._unsent_subs, []
        filters = list(self._subs)
        for start in range(0, len(filters), _SUBSCRIBE_BATCH):
            batch = filters[start:start + _SUBSCRIBE_BATCH]
            members = set(batch)
            self._send_subscribe(batch, [w for w in waiters if w[0] in members])
        # Waiters whose filter was unsubscribed meanwhile: nothing to wait for.
        for topic_filter, sub_d in waiters:
            if topic_filter not in self._subs and not sub_d.called:
                sub_d.callback(0)

    def _send_subscribe(self, batch: list[str],
                        waiters: list[tuple[str, Deferred[int]]]) -> None:
        rc, mid = self._paho.subscribe([(f, self._subs[f][0]) for f in batch])
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            self._unsent_subs.extend(waiters)  # sent again after the next CONNACK
            return
        self._sub_batches[mid] = (batch, waiters)

    # -- after the socket closed (outside paho's call stack) ------------------------------------

    def _socket_closed(self, generation: int) -> None:
        if generation != self._generation:
            return  # disconnect() already finished with this socket
        if self._state is MqttState.DISCONNECTING:
            self._finish_stop()
        elif self._state is MqttState.CONNECTING:
            if not self._attempt_explained:
                self._record_error("connection closed before CONNACK")
            self._failed()
        elif self._state is MqttState.CONNECTED:
            self._connection_lost()

    def _connection_lost(self) -> None:
        self._counts["connection_losses"] += 1
        self._recovering = True
        self._record_error(f"connection lost ({self._lost_reason or 'closed'})")
        self._feed(_In.LOST)
        for _filters, waiters in self._sub_batches.values():
            self._unsent_subs.extend(waiters)
        self._sub_batches.clear()
        self._fail_pending0(MqttConnectionLost(f"connection to {self.url} lost"))
        self._fail_unsubscribes()
        self._schedule_retry()

    def _finish_stop(self) -> None:
        self._feed(_In.CLOSED)
        self._cancel_timers()
        if self._misc.running:
            self._misc.stop()
        self._backoff.reset()
        self._recovering = False
        closed = MqttClosed(f"disconnected from {self.url}")
        self._paho.drop_out_messages()
        pending1, self._pending1 = self._pending1, {}
        for _size, d in pending1.values():
            if not d.called:
                d.errback(closed)
        self._fail_pending0(closed)
        self._fail_unsubscribes()
        waiters = self._unsent_subs + [w for _f, ws in self._sub_batches.values() for w in ws]
        self._unsent_subs, self._sub_batches = [], {}
        connect_waiters, self._connect_waiters = self._connect_waiters, []
        # A waiter the caller cancelled (e.g. a test's timeout) has fired already: skip it, or
        # AlreadyCalledError would end this method before the disconnect waiters fire.
        for sub_d in [d for _f, d in waiters] + connect_waiters:
            if not sub_d.called:
                sub_d.errback(closed)
        disconnect_waiters, self._disconnect_waiters = self._disconnect_waiters, []
        _fire_all(disconnect_waiters, None)
        log.info("mqtt {url} disconnected", url=self.url)

    def _fail_pending0(self, error: MqttError) -> None:
        pending0, self._pending0 = self._pending0, deque()
        for _mid, _size, d in pending0:
            if not d.called:
                d.errback(error)

    def _fail_unsubscribes(self) -> None:
        # The filter is already forgotten locally; a lost UNSUBACK needs no retry.
        waiters, self._unsub_waiters = self._unsub_waiters, {}
        _fire_all(list(waiters.values()), None)


def _cancel_call(result: object, call: DelayedCall | None) -> object:
    if call is not None and call.active():
        call.cancel()
    return result


def _check_filter(topic_filter: str) -> None:
    """Raise ``ValueError`` for a topic filter the broker would reject (MQTT 3.1.1 4.7)."""
    if not topic_filter or "\x00" in topic_filter or len(topic_filter.encode()) > 65535:
        raise ValueError(f"bad MQTT topic filter {topic_filter!r}")
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"bad MQTT topic filter {topic_filter!r}: '#' must be last, alone")
        if "+" in level and level != "+":
            raise ValueError(f"bad MQTT topic filter {topic_filter!r}: '+' must fill a level")


def _fire_all(waiters: list[Deferred[None]], value: None) -> None:
    for d in waiters:
        if not d.called:
            d.callback(value)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _describe(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (is the broker running?)"
    if isinstance(error, TimeoutError | socket.timeout):
        return "TCP connect timed out"
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"
