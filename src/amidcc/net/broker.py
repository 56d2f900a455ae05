"""A real MQTT broker as a child process on a loopback port, for tests, benches and the demo.

Debian's mosquitto where installed (~10 ms to start), otherwise amqtt (pure Python, 4-5x slower)
run as its own process. Both get a throw-away config bound to 127.0.0.1 only, anonymous access and
no persistence. :meth:`BrokerProcess.start` blocks until the port accepts TCP connections.

``AMIDCC_MQTT_BROKER=mosquitto|amqtt`` forces one of the two.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["BrokerError", "BrokerProcess", "find_broker", "free_port"]

_MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
_ENV = "AMIDCC_MQTT_BROKER"
_KINDS = ("mosquitto", "amqtt")


class BrokerError(RuntimeError):
    """No broker is installed, or the broker process failed to start or to listen."""


def _mosquitto_path() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in _MOSQUITTO_PATHS if os.access(p, os.X_OK)), None)


def _amqtt_available() -> bool:
    return importlib.util.find_spec("amqtt") is not None


def find_broker() -> str:
    """Name the broker :meth:`BrokerProcess.start` will run: ``"mosquitto"`` or ``"amqtt"``."""
    forced = os.environ.get(_ENV, "").strip().lower()
    if forced:
        if forced not in _KINDS:
            raise BrokerError(f"{_ENV}={forced!r}: expected one of {', '.join(_KINDS)}")
        return forced
    if _mosquitto_path():
        return "mosquitto"
    if _amqtt_available():
        return "amqtt"
    raise BrokerError(
        "no MQTT broker found: install mosquitto (apt-get install mosquitto) or amqtt (pip)"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _mosquitto_conf(host: str, port: int, max_queued: int) -> str:
    return "\n".join([
        f"listener {port} {host}",
        "allow_anonymous true",
        "persistence false",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "set_tcp_nodelay true",
        # Above the default 1000: a slow subscriber in a burst test must not lose QoS 1 messages.
        f"max_queued_messages {max_queued}",
        "",
    ])


def _amqtt_conf(host: str, port: int) -> str:
    # JSON is valid YAML, so no yaml dependency is needed to write it.
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "sys_interval": 0,
        "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
        "topic-check": {"enabled": False},
    }
    return json.dumps(config, indent=2)


def _accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.2).close()
    except OSError:
        return False
    return True


class BrokerProcess:
    """One broker child process listening on ``host:port``; a context manager.

    Build it with :meth:`start`. ``stop()`` ends it; ``restart()`` starts it again on the same
    port (connected clients see the connection drop, as in a broker restart).
    """

    def __init__(self, *, kind: str, host: str, port: int, max_queued: int = 100_000) -> None:
        self.kind = kind
        self.host = host
        self.port = port
        self.max_queued = max_queued
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @classmethod
    def start(
        cls,
        port: int | None = None,
        *,
        kind: str | None = None,
        host: str = "127.0.0.1",
        timeout: float = 10.0,
        max_queued: int = 100_000,
    ) -> BrokerProcess:
        """Start a broker and wait (blocking, up to ``timeout`` s) until its port accepts.

        ``port=None`` picks a free port (and tries another if that one was taken meanwhile).
        Raises :class:`BrokerError` with the broker's stderr if it exits or never listens.
        """
        kind = kind or find_broker()
        tries = 3 if port is None else 1
        for attempt in range(tries):
            broker = cls(kind=kind, host=host, port=port or free_port(host), max_queued=max_queued)
            try:
                broker._launch(timeout)
                return broker
            except BrokerError:
                if attempt == tries - 1:
                    raise
        raise AssertionError("unreachable")

    @property
    def url(self) -> str:
        """``mqtt://host:port`` for :class:`amidcc.net.mqtt.MqttConfig`."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after ``timeout``); idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def kill(self) -> None:
        """End the broker abruptly (SIGKILL), as a crash would."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        self.stop()

    def restart(self, timeout: float = 10.0) -> None:
        """Stop, then start again on the same port; blocks until the port accepts."""
        self.stop()
        self._launch(timeout)

    def __enter__(self) -> BrokerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<BrokerProcess {self.kind} {self.url} {state}>"

    # -- internals -------------------------------------------------------------------------

    def _command(self, workdir: Path) -> list[str]:
        if self.kind == "mosquitto":
            exe = _mosquitto_path()
            if exe is None:
                raise BrokerError("mosquitto is not installed")
            conf = workdir / "mosquitto.conf"
            conf.write_text(_mosquitto_conf(self.host, self.port, self.max_queued))
            return [exe, "-c", str(conf)]
        if self.kind == "amqtt":
            if not _amqtt_available():
                raise BrokerError("amqtt is not installed (pip install amqtt)")
            conf = workdir / "amqtt.yaml"
            conf.write_text(_amqtt_conf(self.host, self.port))
            return [sys.executable, "-m", "amqtt.scripts.broker_script", "-c", str(conf)]
        raise BrokerError(f"unknown broker kind {self.kind!r}: expected one of {_KINDS}")

    def _launch(self, timeout: float) -> None:
        if _accepts(self.host, self.port):
            # Without this check the wait below could mistake the other listener for ours.
            raise BrokerError(f"{self.host}:{self.port} is already in use by another process")
        self._dir = Path(tempfile.mkdtemp(prefix=f"amidcc-{self.kind}-"))
        command = self._command(self._dir)
        stderr = (self._dir / "stderr.log").open("wb")
        with stderr:
            self._proc = subprocess.Popen(
                command, cwd=self._dir, stdin=subprocess.DEVNULL,
                stdout=stderr, stderr=stderr, start_new_session=True,
            )
        try:
            self._wait_listening(timeout)
        except BrokerError:
            self.stop()
            raise

    def _stderr_tail(self, limit: int = 2000) -> str:
        if self._dir is None:
            return ""
        try:
            text = (self._dir / "stderr.log").read_text(errors="replace")
        except OSError:
            return ""
        return text[-limit:].strip()

    def _wait_listening(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise BrokerError(
                    f"{self.kind} on {self.host}:{self.port} exited with code {code}:"
                    f" {self._stderr_tail() or '(no output)'}"
                )
            if _accepts(self.host, self.port):
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"{self.kind} did not listen on {self.host}:{self.port} within {timeout:g} s:"
                    f" {self._stderr_tail() or '(no output)'}"
                )
            time.sleep(0.01)
