"""Settings, errors and retry policy of :mod:`amidcc.net.mqtt` (pure: no reactor, no sockets)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = [
    "DEFAULT_PORT",
    "Backoff",
    "MqttAddress",
    "MqttClosed",
    "MqttConfig",
    "MqttConnectError",
    "MqttConnectionLost",
    "MqttError",
    "MqttNotConnected",
    "MqttQueueFull",
    "MqttSubscribeError",
    "parse_mqtt_url",
    "redact_url",
]

DEFAULT_PORT = 1883


# -- errors -------------------------------------------------------------------------------------


class MqttError(Exception):
    """Base of every error this module raises on purpose."""


class MqttConnectError(MqttError):
    """The broker could not be reached, refused us, or ``connect(timeout=)`` ran out.

    The client keeps retrying after this error unless ``disconnect()`` is called.
    """

    def __init__(self, msg: str, *, url: str, attempts: int, reason: str) -> None:
        super().__init__(msg)
        self.url = url
        self.attempts = attempts
        self.reason = reason


class MqttNotConnected(MqttError):
    """A QoS 0 publish was asked for while no connection exists (QoS 0 is never queued)."""


class MqttConnectionLost(MqttError):
    """The connection dropped before a QoS 0 publish reached the socket."""


class MqttClosed(MqttError):
    """``disconnect()`` ended the session; pending operations fail with this."""


class MqttQueueFull(MqttError):
    """The bounded queue of unacknowledged QoS 1 publishes (``max_queued``) is full."""


class MqttSubscribeError(MqttError):
    """The broker refused a subscription (SUBACK failure code)."""


# -- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MqttAddress:
    """A broker's TCP address, parsed from an ``mqtt://host:port`` URL."""

    host: str
    """Host name or IP literal (IPv6 without brackets)."""
    port: int
    """TCP port; 1883 when the URL names none."""


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: the form that may appear in logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def parse_mqtt_url(url: str) -> MqttAddress:
    """Parse ``mqtt://[user[:password]@]host[:port]`` (also ``tcp://``); raise ``ValueError``
    naming what is wrong (with the password redacted)."""
    parts = urlsplit(url)
    shown = redact_url(url)
    if parts.scheme not in ("mqtt", "tcp"):
        raise ValueError(f"MQTT URL {shown!r}: scheme must be mqtt:// (TLS is not supported yet)")
    try:
        port = parts.port
    except ValueError as err:
        raise ValueError(f"MQTT URL {shown!r}: bad port") from err
    if not parts.hostname:
        raise ValueError(f"MQTT URL {shown!r}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"MQTT URL {shown!r}: unexpected path, query or fragment")
    return MqttAddress(host=parts.hostname, port=DEFAULT_PORT if port is None else port)


@dataclass(frozen=True, kw_only=True)
class MqttConfig:
    """How one :class:`MqttClient` connects and behaves."""

    url: str = "mqtt://127.0.0.1:1883"
    """Broker address, ``mqtt://host:port``."""
    client_id: str = ""
    """MQTT client id; empty means ``amidcc-<random>``, chosen once and kept across reconnects."""
    clean_session: bool = True
    """False asks the broker for a persistent session (needs a stable ``client_id``)."""
    keepalive: int = 60
    """Keep-alive interval in seconds sent in CONNECT."""
    connect_timeout: float = 2.0
    """Seconds allowed for name resolution, for the TCP connect, and again for the CONNACK."""
    backoff_min: float = 0.5
    """First retry delay after a failed attempt or a lost connection, seconds."""
    backoff_max: float = 30.0
    """Cap of the exponentially growing retry delay, seconds."""
    backoff_factor: float = 2.0
    """Growth of the retry delay per consecutive failure."""
    backoff_jitter: float = 0.1
    """Each delay is scaled by a random factor in [1 - jitter, 1 + jitter] (spreads a fleet)."""
    max_inflight: int = 20
    """QoS 1 publishes awaiting PUBACK at once (paho's window); larger made QoS 1 slower."""
    max_queued: int = 10_000
    """Unacknowledged QoS 1 publishes held (in flight plus queued); 0 means unbounded."""
    tcp_nodelay: bool = True
    """Disable Nagle on the socket: PUBACK round trips otherwise wait on delayed ACKs."""
    username: str | None = None
    """Optional MQTT user name."""
    password: str | None = None
    """Optional MQTT password (only sent with a user name)."""
    misc_interval: float = 1.0
    """How often paho's ``loop_misc`` (keep-alive, ping timeout) runs, seconds."""

    def __post_init__(self) -> None:
        parse_mqtt_url(self.url)
        credentials = urlsplit(self.url)
        if self.username is None and credentials.username is not None:
            # Credentials in the URL are the usual way to give them; explicit fields win.
            object.__setattr__(self, "username", unquote(credentials.username))
            if self.password is None and credentials.password is not None:
                object.__setattr__(self, "password", unquote(credentials.password))
        if not self.clean_session and not self.client_id:
            raise ValueError("MqttConfig.client_id: a persistent session needs a fixed client id")
        if not 0 < self.backoff_min <= self.backoff_max:
            raise ValueError("MqttConfig.backoff_min: need 0 < backoff_min <= backoff_max")
        if self.backoff_factor < 1.0 or not 0.0 <= self.backoff_jitter < 1.0:
            raise ValueError("MqttConfig.backoff_factor/backoff_jitter out of range")
        if self.max_inflight < 1 or self.max_queued < 0:
            raise ValueError("MqttConfig.max_inflight must be >= 1 and max_queued >= 0")
        if self.connect_timeout <= 0 or self.keepalive < 0 or self.misc_interval <= 0:
            raise ValueError("MqttConfig: timeouts and intervals must be positive")

    @property
    def safe_url(self) -> str:
        """The URL with its password redacted, for logs and error messages."""
        return redact_url(self.url)

    @property
    def address(self) -> MqttAddress:
        """The parsed ``url``."""
        return parse_mqtt_url(self.url)


class Backoff:
    """Exponential retry delays: ``min * factor**n`` capped at ``max``, with optional jitter.

    ``n`` counts consecutive failures since the last :meth:`reset` (a successful CONNACK).
    """

    def __init__(
        self,
        minimum: float,
        maximum: float,
        *,
        factor: float = 2.0,
        jitter: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._rng = rng or random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; counts one more consecutive failure."""
        base = min(self.maximum, self.minimum * self.factor**self.failures)
        self.failures += 1
        if self.jitter:
            base *= 1.0 + self._rng.uniform(-self.jitter, self.jitter)
        return base

    def reset(self) -> None:
        """Forget the failures: the next delay is ``minimum`` again."""
        self.failures = 0
