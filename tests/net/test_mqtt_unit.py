"""MQTT client pieces that need no broker: URL and config parsing, backoff, the state table, and the
retry schedule against a dead loopback port on a fake clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import MemoryReactorClock

from amidcc.net.broker import free_port
from amidcc.net.mqtt import (
    _TRANSITIONS,
    Backoff,
    MqttAddress,
    MqttClient,
    MqttClosed,
    MqttConfig,
    MqttConnectError,
    MqttError,
    MqttNotConnected,
    MqttState,
    _check_filter,
    _In,
    parse_mqtt_url,
)


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("mqtt://127.0.0.1:1883", "127.0.0.1", 1883),
        ("mqtt://broker.example:11883", "broker.example", 11883),
        ("mqtt://localhost", "localhost", 1883),
        ("mqtt://[::1]:1884", "::1", 1884),
        ("tcp://10.0.0.2:1999/", "10.0.0.2", 1999),
    ],
)
def test_parse_url(url: str, host: str, port: int) -> None:
    assert parse_mqtt_url(url) == MqttAddress(host=host, port=port)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://h:1883", "scheme"),
        ("mqtts://h:8883", "TLS"),
        ("mqtt://h:99999", "port"),
        ("mqtt://:1883", "no host"),
        ("mqtt://h:1883/topic", "path"),
        ("h:1883", "scheme"),
    ],
)
def test_parse_url_rejects(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_mqtt_url(url)


@pytest.mark.parametrize(
    "overrides",
    [
        {"url": "http://x"},
        {"clean_session": False},  # persistent session without a client id
        {"backoff_min": 0.0},
        {"backoff_min": 5.0, "backoff_max": 1.0},
        {"backoff_jitter": 1.0},
        {"max_inflight": 0},
        {"connect_timeout": 0},
    ],
)
def test_config_rejects(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="MQTT|MqttConfig"):
        MqttConfig(**overrides)  # type: ignore[arg-type]


def test_persistent_session_with_client_id_is_fine() -> None:
    cfg = MqttConfig(clean_session=False, client_id="gw-1")
    assert cfg.address == MqttAddress(host="127.0.0.1", port=1883)


def test_generated_client_id_is_stable_per_client() -> None:
    client = MqttClient(MemoryReactorClock(), MqttConfig())
    assert client.client_id.startswith("amidcc-")
    assert client.client_id == client._paho._client_id.decode()
    assert MqttClient(MemoryReactorClock(), MqttConfig()).client_id != client.client_id


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    b = Backoff(0.5, 4.0)
    assert [b.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next_delay() == 0.5


@settings(max_examples=50, deadline=None)
@given(
    minimum=st.floats(0.01, 5.0),
    span=st.floats(1.0, 100.0),
    jitter=st.floats(0.0, 0.9),
    seed=st.integers(0, 2**32),
)
def test_backoff_jitter_stays_in_band(minimum: float, span: float, jitter: float, seed: int) -> None:
    maximum = minimum * span
    plain = Backoff(minimum, maximum)
    jittered = Backoff(minimum, maximum, jitter=jitter, rng=random.Random(seed))
    for _ in range(12):
        base, got = plain.next_delay(), jittered.next_delay()
        assert base * (1 - jitter) - 1e-9 <= got <= base * (1 + jitter) + 1e-9
        assert base <= maximum


@pytest.mark.parametrize(
    "topic_filter", ["", "a/#/b", "a/b#", "a/+b/c", "a\x00b"]
)
def test_bad_topic_filters(topic_filter: str) -> None:
    with pytest.raises(ValueError, match="topic filter"):
        _check_filter(topic_filter)


@pytest.mark.parametrize("topic_filter", ["#", "+", "a/+/c", "a/b/#", "c1222/rf/+/up", "/"])
def test_good_topic_filters(topic_filter: str) -> None:
    _check_filter(topic_filter)


def test_state_table_every_state_reachable_and_stop_always_defined() -> None:
    reached = {MqttState.IDLE} | set(_TRANSITIONS.values())
    assert reached == set(MqttState)
    for state in MqttState:
        assert (state, _In.STOP) in _TRANSITIONS or state is MqttState.DISCONNECTING
    assert (MqttState.DISCONNECTING, _In.STOP) in _TRANSITIONS


@pytest.mark.parametrize(
    ("state", "event"),
    [(s, e) for s in MqttState for e in _In if (s, e) not in _TRANSITIONS],
)
def test_unlisted_transitions_raise(state: MqttState, event: _In) -> None:
    client = MqttClient(MemoryReactorClock(), MqttConfig())
    client._state = state
    with pytest.raises(MqttError, match="no transition"):
        client._feed(event)


def _dead_client(**overrides: object) -> tuple[MemoryReactorClock, MqttClient]:
    clock = MemoryReactorClock()
    cfg = {"url": f"mqtt://127.0.0.1:{free_port()}", "backoff_min": 0.1, "backoff_max": 1.0,
           "backoff_jitter": 0.0, **overrides}
    return clock, MqttClient(clock, MqttConfig(**cfg))  # type: ignore[arg-type]


def test_retry_schedule_on_a_fake_clock() -> None:
    # Loopback refuses at once, so each attempt fails inside the call that starts it.
    clock, client = _dead_client()
    client.connect()
    assert client.stats().connect_attempts == 1
    assert client.state is MqttState.WAITING
    expected_delays = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    for n, delay in enumerate(expected_delays, start=2):
        clock.advance(delay - 0.01)
        assert client.stats().connect_attempts == n - 1, f"attempt {n} came early"
        clock.advance(0.01)
        assert client.stats().connect_attempts == n, f"attempt {n} not at +{delay}"
    assert client.stats().connect_failures == len(expected_delays) + 1
    assert "refused" in (client.last_error or "")
    client.disconnect()


def test_connect_timeout_names_the_error_and_keeps_retrying() -> None:
    clock, client = _dead_client()
    d = client.connect(timeout=0.5)
    errors: list[MqttConnectError] = []
    d.addErrback(lambda f: errors.append(f.value))
    clock.pump([0.01] * 49)  # small ticks: Clock.advance runs due calls at the final time
    assert not errors
    clock.pump([0.01] * 2)
    (error,) = errors
    assert isinstance(error, MqttConnectError)
    assert "refused" in str(error) and client.url in str(error) and "still retrying" in str(error)
    assert error.attempts == client.stats().connect_attempts == 3  # at 0, 0.1, 0.3
    attempts = error.attempts
    clock.advance(5.0)
    assert client.stats().connect_attempts > attempts
    assert client.state is MqttState.WAITING


def test_disconnect_while_waiting_stops_retries_and_fails_waiters() -> None:
    clock, client = _dead_client()
    connect = client.connect()
    pending = client.publish("a/b", b"queued", qos=1)
    results: list[object] = []
    connect.addErrback(lambda f: results.append(f.value))
    pending.addErrback(lambda f: results.append(f.value))
    done = client.disconnect()
    assert done.called and client.state is MqttState.STOPPED
    assert [type(r) for r in results] == [MqttClosed, MqttClosed]
    attempts = client.stats().connect_attempts
    clock.advance(10.0)
    assert client.stats().connect_attempts == attempts
    assert not clock.getDelayedCalls()


def test_offline_publish_rules() -> None:
    _clock, client = _dead_client()
    with pytest.raises(ValueError, match="qos"):
        client.publish("a", b"", qos=2)
    failures: list[object] = []
    client.publish("a", b"x", qos=0).addErrback(lambda f: failures.append(f.value))
    assert isinstance(failures[0], MqttNotConnected)
    queued = client.publish("a", b"x", qos=1)
    assert not queued.called
    assert client.stats().pending_publishes == 1
    queued.addErrback(lambda f: None)
    client.disconnect()


def test_queue_bound() -> None:
    from amidcc.net.mqtt import MqttQueueFull

    _clock, client = _dead_client(max_queued=3)
    for _ in range(3):
        client.publish("a", b"x", qos=1).addErrback(lambda f: None)
    errors: list[object] = []
    client.publish("a", b"x", qos=1).addErrback(lambda f: errors.append(f.value))
    assert isinstance(errors[0], MqttQueueFull)
    client.disconnect()


def test_subscriptions_are_kept_while_offline() -> None:
    _clock, client = _dead_client()
    d = client.subscribe("c1222/rf/+/up", 1, lambda t, p: None)
    assert not d.called
    assert client.subscriptions == {"c1222/rf/+/up": 1}
    client.unsubscribe("c1222/rf/+/up")
    assert client.subscriptions == {}
    with pytest.raises(ValueError):
        client.subscribe("a/#/b", 0, lambda t, p: None)


def test_docs_state_table_matches_the_code() -> None:
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "mqtt.md"
    if not doc.is_file():
        pytest.skip("docs/mqtt.md not found")
    rows = set()
    for line in doc.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] in MqttState.__members__ and cells[1] in _In.__members__:
            rows.add((MqttState[cells[0]], _In[cells[1]], MqttState[cells[2]]))
    assert rows == {(s, i, n) for (s, i), n in _TRANSITIONS.items()}


def test_credentials_in_the_url_are_used_and_never_shown() -> None:
    from amidcc.net.mqtt_config import MqttConfig, redact_url

    cfg = MqttConfig(url="mqtt://gw:s3cret@127.0.0.1:1883")
    assert (cfg.username, cfg.password) == ("gw", "s3cret")
    assert cfg.safe_url == "mqtt://gw:***@127.0.0.1:1883"
    assert redact_url("mqtt://127.0.0.1:1883") == "mqtt://127.0.0.1:1883"
    explicit = MqttConfig(url="mqtt://gw:s3cret@127.0.0.1:1883", username="other", password="pw")
    assert (explicit.username, explicit.password) == ("other", "pw")
    with pytest.raises(ValueError) as err:
        MqttConfig(url="mqtts://gw:s3cret@127.0.0.1:8883")
    assert "s3cret" not in str(err.value)
