"""Nothing said is lost: a real `leadline serve` killed with SIGKILL mid-call keeps every turn.

The server runs as its own process (the installed entry point, scripted brain,
SQLite and the turn journal under tmp_path). Its write-behind is told to wait
an hour before flushing, so at the moment of the kill the turns exist only in
the journal: the test checks SQL has none of them then, and all of them once a
new server has started on the same data directory.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ops.dev.sim import SimOptions, sim_call
from tests.audio import speech_ulaw

# Real server, real sockets, real-time audio: the slow lane (`pytest -m "not e2e"` skips it).
pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent / "leadline"
GREETING = "Hello."
REPLY = "Thank you."
PROMPT = "Please leave your message after the tone."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LEADLINE_", "TWILIO_", "OPENAI_"))}
    env.update({
        "LEADLINE_SERVER_HOST": "127.0.0.1",
        "LEADLINE_SERVER_PORT": str(port),
        "LEADLINE_TWILIO_VALIDATE_SIGNATURES": "false",
        "LEADLINE_BRAIN_KIND": "scripted",
        "LEADLINE_STORE_DATABASE_URL": f"sqlite:///{tmp_path}/data/leadline.db",
        "LEADLINE_STORE_JOURNAL_DIR": str(tmp_path / "data" / "journal"),
        # Write-behind holds every turn for an hour: only the journal can save them.
        "LEADLINE_STORE_TURN_FLUSH_INTERVAL_S": "3600",
        "LEADLINE_STORE_TURN_BATCH_SIZE": "1000",
        "LEADLINE_SCRIPTED_GREETING": GREETING,
        "LEADLINE_SCRIPTED_REPLY": REPLY,
        "LEADLINE_SCRIPTED_ASK_NAME": "",
        "LEADLINE_SCRIPTED_MESSAGE_PROMPT": PROMPT,
        # The turns are counted as the brain's own; a recognised caller turn is one more.
        "LEADLINE_SCRIPTED_STT": "off",
        "LEADLINE_SCRIPTED_MESSAGES_DIRECTORY": str(tmp_path / "messages"),
    })
    return env


def _serve(tmp_path: Path, port: int, log_name: str) -> subprocess.Popen[bytes]:
    with open(tmp_path / log_name, "wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen([str(BIN), "serve"], env=_env(tmp_path, port), cwd=tmp_path,
                                stdout=log, stderr=log)


async def _health(url: str, proc: subprocess.Popen[bytes], log: Path,
                  limit_s: float = 30.0) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        for _ in range(int(limit_s / 0.1)):
            if proc.poll() is not None:
                tail = (await asyncio.to_thread(log.read_text))[-3000:]
                raise AssertionError(f"server exited: {tail}")
            try:
                async with http.get(url + "/health") as resp:
                    return await resp.json()  # type: ignore[no-any-return]
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise AssertionError("server did not become healthy")


def _turns(db: Path, call_sid: str) -> list[tuple[int, str, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT seq, role, text FROM turns WHERE call_sid = ? ORDER BY seq",
                            (call_sid,)).fetchall()
    finally:
        conn.close()


def _call_ended_at(db: Path, call_sid: str) -> list[tuple[Any]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT ended_at FROM calls WHERE call_sid = ?",
                            (call_sid,)).fetchall()
    finally:
        conn.close()


async def test_sigkill_mid_call_loses_no_turn_recorded_before_the_kill(tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _serve(tmp_path, port, "first.log")
    try:
        await _health(url, server, tmp_path / "first.log")
        heard: list[dict[str, Any]] = []
        # Greeting, the caller's turn and its reply, then '1' for the message prompt: three
        # agent turns, after which the caller is leaving a message when the server dies.
        placed = asyncio.create_task(sim_call(SimOptions(
            url=url, audio=speech_ulaw("Hi there."), dtmf="wwwwww1", dtmf_interval_s=0.4,
            quiet_s=0.3, hangup_after_s=30, json_events=True, on_event=heard.append,
        )))
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                async with http.get(url + "/health") as resp:
                    turns = (await resp.json())["store"]["turns"]
                if turns["recorded"] >= 3:
                    break
                assert not placed.done(), "the call ended before three turns were recorded"
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the server never recorded three turns")
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
        assert server.returncode == -signal.SIGKILL
        recorded = turns["recorded"]
        # Nothing was flushed: every turn said so far lives only in the journal.
        assert turns["flushed"] == 0 and turns["pending"] == recorded

        result = await asyncio.wait_for(placed, 15)
        assert sum(1 for e in heard if e["event"] == "agent_audio_start") >= 2
        db = tmp_path / "data" / "leadline.db"
        assert _turns(db, result.call_sid) == []
        # The call was live at the kill: its start is in SQL, its end never was.
        assert _call_ended_at(db, result.call_sid) == [(None,)]

        server = _serve(tmp_path, port, "second.log")
        health = await _health(url, server, tmp_path / "second.log")
        assert health["store"]["turns"]["replayed"] >= recorded
        stored = _turns(db, result.call_sid)
        assert len(stored) >= recorded
        assert stored[:3] == [(0, "agent", GREETING), (1, "agent", REPLY),
                              (2, "agent", PROMPT)]
        assert [seq for seq, _, _ in stored] == list(range(len(stored)))
        # Replayed segments are gone; what is left is the new server's own open segment.
        assert len(list((tmp_path / "data" / "journal").glob("turns-*.jsonl"))) == 1
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
