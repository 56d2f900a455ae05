"""The real daemon as a subprocess: twistd and twist, /health and /metrics over a real loopback socket,
SIGTERM and a clean exit; a bad config stops twistd with the dotted key in its output."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 20.0  # generous for a loaded 2-core CI box; it usually takes about a second


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp_path: Path, metrics_port: int) -> Path:
    path = tmp_path / "amidcc.toml"
    path.write_text(
        f"""
[gateway]
name = "itest"
state_dir = "{tmp_path / "state"}"
[c1222]
listen = "tcp:{free_port()}:interface=127.0.0.1"
[api]
listen = "tcp:{free_port()}:interface=127.0.0.1"
[metrics]
listen = "tcp:{metrics_port}:interface=127.0.0.1"
"""
    )
    return path


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def wait_for_health(proc: subprocess.Popen[bytes], port: int, log: Path) -> dict[str, object]:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"daemon exited early ({proc.returncode}):\n{log.read_text()}")
        try:
            status, body = fetch(f"http://127.0.0.1:{port}/health")
        except OSError:
            time.sleep(0.1)
            continue
        assert status == 200, body
        report: dict[str, object] = json.loads(body)
        return report
    pytest.fail(f"no /health within {STARTUP_TIMEOUT}s:\n{log.read_text()}")


def run_daemon(argv: list[str], tmp_path: Path) -> str:
    """Start the daemon, check /health and /metrics, SIGTERM it; return its output."""
    port = free_port()
    config = write_config(tmp_path, port)
    log = tmp_path / "daemon.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*argv, "amidcc", "--config", str(config)],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            report = wait_for_health(proc, port, log)
            assert report["status"] == "ok" and report["name"] == "itest"
            status, metrics = fetch(f"http://127.0.0.1:{port}/metrics")
            assert status == 200
            for family in (
                "amidcc_build_info gauge",
                "amidcc_messages_total counter",
                "amidcc_errors_total counter",
                "amidcc_meters_reachable gauge",
                "amidcc_request_latency_seconds histogram",
            ):
                assert f"# TYPE {family}\n" in metrics, family
            assert 'amidcc_errors_total{kind="crc",link="c1222-tcp"} 0.0' in metrics
            proc.send_signal(signal.SIGTERM)
            # Twisted re-raises the signal that stopped the reactor once it has shut down cleanly,
            # so a supervisor sees why it exited: -SIGTERM is the clean exit here.
            assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert (tmp_path / "state").is_dir()
    output = log.read_text()
    assert "gateway 'itest' started" in output
    assert "gateway 'itest' stopped" in output
    assert "Traceback" not in output and "Unhandled" not in output
    return output


def test_twistd_runs_serves_and_stops(tmp_path: Path) -> None:
    output = run_daemon([str(BIN / "twistd"), "-n", "--reactor=asyncio", "--pidfile="], tmp_path)
    assert "AsyncioSelectorReactor" in output
    assert "Server Shut Down." in output


def test_twist_runs_serves_and_stops(tmp_path: Path) -> None:
    output = run_daemon([str(BIN / "twist"), "--reactor=asyncio", "--log-format=text"], tmp_path)
    assert "[amidcc.gateway#info]" in output  # text, not JSON, although stdout is a file


def test_bad_config_stops_twistd_with_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[c1222]\nlisten = "tcp:abc"\n')
    proc = subprocess.run(
        [
            str(BIN / "twistd"),
            "-n",
            "--reactor=asyncio",
            "--pidfile=",
            "amidcc",
            "--config",
            str(config),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert "c1222.listen: not a valid endpoint string: 'tcp:abc'" in proc.stdout + proc.stderr
