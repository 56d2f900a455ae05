"""The broker runner: which broker, free ports, start/stop/restart, and clear start failures."""

from __future__ import annotations

import socket

import pytest

from amidcc.net import broker as broker_mod
from amidcc.net.broker import BrokerError, BrokerProcess, find_broker, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def kind() -> str:
    try:
        return find_broker()
    except BrokerError as err:
        pytest.skip(str(err))


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def test_find_broker_honours_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMIDCC_MQTT_BROKER", "amqtt")
    assert find_broker() == "amqtt"
    monkeypatch.setenv("AMIDCC_MQTT_BROKER", "hivemq")
    with pytest.raises(BrokerError, match="AMIDCC_MQTT_BROKER"):
        find_broker()


def test_no_broker_installed_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMIDCC_MQTT_BROKER", raising=False)
    monkeypatch.setattr(broker_mod, "_mosquitto_path", lambda: None)
    monkeypatch.setattr(broker_mod, "_amqtt_available", lambda: False)
    with pytest.raises(BrokerError, match="install mosquitto"):
        find_broker()


def test_start_restart_stop(kind: str) -> None:
    with BrokerProcess.start() as b:
        assert b.kind == kind and b.running
        assert b.url == f"mqtt://127.0.0.1:{b.port}"
        assert accepts(b.port)
        first_pid = b.pid
        b.restart()
        assert b.running and b.pid != first_pid and accepts(b.port)
        b.stop()
        assert not b.running and not accepts(b.port)
        b.stop()  # idempotent
    assert not accepts(b.port)


def test_explicit_port_and_kill(kind: str) -> None:
    port = free_port()
    b = BrokerProcess.start(port=port)
    try:
        assert b.port == port and accepts(port)
        b.kill()
        assert not b.running and not accepts(port)
    finally:
        b.stop()


def test_port_taken_by_someone_else(kind: str) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(BrokerError, match="already in use"):
            BrokerProcess.start(port=port)


def test_failed_start_reports_the_brokers_stderr(kind: str) -> None:
    if kind != "mosquitto":
        pytest.skip("checks mosquitto's own message")
    # 192.0.2.1 (TEST-NET-1) is on no interface: mosquitto cannot bind, exits and says why.
    with pytest.raises(BrokerError, match=r"exited with code \d+: .*\S"):
        BrokerProcess.start(port=free_port(), host="192.0.2.1", timeout=5)
