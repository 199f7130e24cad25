"""The installed entry point, as a user runs it: `leadline serve` + `leadline sim call`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import wave
from pathlib import Path

import pytest

# Real server, real sockets, real-time audio: the slow lane (`pytest -m "not e2e"` skips it).
pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent / "leadline"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, limit_s: float = 20.0) -> dict:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as resp:
                return json.loads(resp.read())
        except OSError:
            time.sleep(0.2)
    raise AssertionError("server did not become healthy")


def test_serve_and_sim_call_from_the_command_line(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADLINE_", "TWILIO_"))}
    env.update({"LEADLINE_SERVER_PORT": str(port), "LEADLINE_SERVER_HOST": "127.0.0.1",
                "TWILIO_AUTH_TOKEN": "cli-test-token-0123456789"})
    server = subprocess.Popen([str(BIN), "serve"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        health = _wait_healthy(url, server)
        assert health["status"] == "ok" and health["brain"]["kind"] == "scripted"
        out = tmp_path / "agent.wav"
        sim = subprocess.run(
            [str(BIN), "sim", "call", "--url", url, "--say", "Hi, what are your hours?",
             "--record", str(out), "--json", "--max-seconds", "25"],
            env=env, capture_output=True, timeout=60, check=False,
        )
        assert sim.returncode == 0, sim.stderr.decode()
        lines = [json.loads(line) for line in sim.stdout.decode().splitlines()]
        summary = lines[-1]
        assert summary["event"] == "summary"
        assert summary["responses"] >= 2 and summary["agent_audio_ms"] > 3000
        assert any(e["event"] == "agent_audio_start" for e in lines)
        with wave.open(str(out)) as w:
            assert w.getnframes() > 8000 * 3

        # A wrong token is refused, and the CLI says so with a non-zero exit.
        bad = subprocess.run(
            [str(BIN), "sim", "call", "--url", url, "--auth-token", "wrong", "--max-seconds", "3"],
            env=env, capture_output=True, timeout=30, check=False,
        )
        assert bad.returncode != 0
        assert b"403" in bad.stderr
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    assert server.returncode == 0, server.stderr.read().decode()[-2000:]
