"""Shared helpers for the integration tests that run the real daemon (twistd on the asyncio
reactor), ``amidcc simulate fleet`` and a broker as child processes on loopback.

Children are stopped with SIGTERM, never SIGINT: a process started with SIGINT ignored (a shell's
background job ``cmd &``, nohup, some CI runners) hands that on to its children, and Twisted then
installs no SIGINT handler at all (it only replaces Python's default one). SIGINT was a no-op
there: the stop waited out its timeout and killed the daemon and the fleet, so the daemon's
clean shutdown and the fleet's summary never happened. Every reactor handles SIGTERM. A child
that does not exit in time is a failure (with its log), not a silent kill.
"""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from amidcc.net.broker import BrokerError, BrokerProcess, free_port

BIN = Path(sys.executable).parent
#: How long a child may take to exit after SIGTERM (a loaded 2-core box; it takes about 1 s).
STOP_TIMEOUT = 20.0
#: Twisted re-raises the signal that stopped the reactor after a clean shutdown: -SIGTERM is the
#: clean exit (docs/operations.md, "Running it").
CLEAN_EXITS = (0, -signal.SIGTERM)

_T = TypeVar("_T")

__all__ = [
    "BIN",
    "CLEAN_EXITS",
    "Child",
    "HealthWatch",
    "fetch",
    "free_port",
    "samples",
    "wait_for",
]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the test process dies (Linux), so a killed
    pytest leaves no daemon behind."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class Child:
    """One child process whose output goes to a log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    returncode: int | None = field(default=None)
    """Exit status once :meth:`terminate` (or the process) ended it."""

    @classmethod
    def start(cls, name: str, argv: list[str], log: Path, *, cwd: Path) -> Child:
        with log.open("wb") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        return cls(name=name, proc=proc, log=log)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, limit: int = 4000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ({self.log})\n{text[-limit:]}"

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait; the exit status. Fails the test (after a kill) past ``timeout``."""
        if self.returncode is not None:
            return self.returncode
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait()
            pytest.fail(f"{self.name} did not exit {timeout}s after SIGTERM\n{self.tail()}")
        return self.returncode


def fetch(
    url: str,
    *,
    method: str = "GET",
    body: object = None,
    token: str | None = None,
    timeout: float = 5.0,
) -> tuple[int, Any]:
    """(status, body) of one HTTP request: JSON decoded where it is JSON; (0, None) when nothing
    answers (not listening yet, or gone)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    except OSError:
        return 0, None
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples named ``name`` in a Prometheus exposition, by their sorted labels."""
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def wait_for(
    what: str,
    probe: Callable[[], _T | None],
    *,
    timeout: float,
    interval: float = 0.25,
    context: Callable[[], str] = lambda: "",
) -> _T:
    """Poll ``probe`` until it returns something truthy and return that; fail naming ``what``
    (with ``context()``, e.g. the children's logs) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: _T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            pytest.fail(f"no {what} within {timeout}s (last: {last!r})\n{context()}")
        time.sleep(interval)


class HealthWatch:
    """Polls a health URL on a thread and records each answer's ``checks[name]`` (``"down"``
    when nothing answers), for states too short-lived to catch between blocking calls."""

    def __init__(self, url: str, name: str, *, interval: float = 0.05) -> None:
        self.url = url
        self.name = name
        self.interval = interval
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"health-{name}", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            status, body = fetch(self.url, timeout=5.0)
            checks = body.get("checks", {}) if isinstance(body, dict) else {}
            self.seen.append(str(checks.get(self.name, "down")) if status else "down")
            self._stop.wait(self.interval)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)


@pytest.fixture
def broker_or_none() -> Iterator[BrokerProcess | None]:
    """A broker for the mesh share; None (the test runs without it) where none is installed."""
    try:
        started = BrokerProcess.start()
    except BrokerError:
        yield None
        return
    with started:
        yield started
