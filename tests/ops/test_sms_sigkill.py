"""A crash between the outbox commit and the REST call: the text is sent exactly once.

A real `leadline serve` answers a lead's text; its reply is committed to the outbox,
claimed by the sender, and then — through the test-only fault injection
`LEADLINE_TEST_SMS_HANG_AFTER_CLAIM` — the sender signals and hangs right before the
Twilio call. The test SIGKILLs the process in that window, checks Twilio got nothing,
starts a new server on the same database and checks the reply reaches Twilio once (the
lapsed lease makes the row claimable again), and that nothing more follows.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from sms.sender import HANG_AFTER_CLAIM_ENV
from tests.fakes.twilio_rest import FakeTwilioRest
from tests.store.conftest import backend_url

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent / "leadline"
ACCOUNT_SID = "AC" + "9" * 32
AUTH_TOKEN = "sms-sigkill-token-0123456789"
OUR_NUMBER = "+14155550123"
LEAD = "+14155552671"
LEASE_S = 3.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path, port: int, db_url: str, twilio: FakeTwilioRest) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LEADLINE_", "TWILIO_", "OPENAI_"))}
    env.update({
        "LEADLINE_SERVER_HOST": "127.0.0.1", "LEADLINE_SERVER_PORT": str(port),
        "LEADLINE_BRAIN_KIND": "scripted",
        "LEADLINE_TWILIO_ACCOUNT_SID": ACCOUNT_SID, "LEADLINE_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "LEADLINE_TWILIO_API_BASE_URL": twilio.base_url,
        "LEADLINE_TWILIO_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "LEADLINE_STORE_DATABASE_URL": db_url,
        "LEADLINE_STORE_JOURNAL_DIR": str(tmp_path / "journal"),
        "LEADLINE_SCRIPTED_MESSAGES_DIRECTORY": str(tmp_path / "messages"),
        "LEADLINE_SMS_FROM_NUMBER": OUR_NUMBER,
        "LEADLINE_SMS_OUTBOX_POLL_S": "0.2",
        "LEADLINE_SMS_OUTBOX_SEND_TIMEOUT_S": "2",
        "LEADLINE_SMS_OUTBOX_LEASE_S": str(LEASE_S),
    })
    return env


def _serve(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen([str(BIN), "serve"], env=env, cwd=log.parent,
                                stdout=out, stderr=out)


async def _healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            if proc.poll() is not None:
                tail = (await asyncio.to_thread(log.read_text))[-3000:]
                raise AssertionError(f"server exited: {tail}")
            try:
                async with http.get(url + "/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("server did not become healthy")


async def _exists(path: Path) -> bool:
    return await asyncio.to_thread(path.exists)


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_sigkill_after_the_outbox_commit_sends_exactly_once(
        tmp_path: Path, backend: str) -> None:
    twilio = await FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN).start()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    marker = tmp_path / "claimed"
    async with backend_url(backend, tmp_path) as db_url:
        env = _env(tmp_path, port, db_url, twilio)
        first = _serve({**env, HANG_AFTER_CLAIM_ENV: str(marker)}, tmp_path / "first.log")
        second: subprocess.Popen[bytes] | None = None
        try:
            await _healthy(url, first, tmp_path / "first.log")
            form = {"MessageSid": "SM" + "a" * 32, "AccountSid": ACCOUNT_SID, "From": LEAD,
                    "To": OUR_NUMBER, "Body": "Do you still have openings this week?"}
            signature = RequestValidator(AUTH_TOKEN).compute_signature(
                url + "/twilio/sms", form)
            async with aiohttp.ClientSession() as http, http.post(
                    url + "/twilio/sms", data=form,
                    headers={"X-Twilio-Signature": signature}) as resp:
                assert resp.status == 200
            for _ in range(200):
                if await _exists(marker):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the sender never claimed the reply")
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
            assert first.returncode == -signal.SIGKILL
            assert twilio.message_requests == 0  # killed before the REST call

            second = _serve(env, tmp_path / "second.log")
            await _healthy(url, second, tmp_path / "second.log")
            for _ in range(int((LEASE_S + 10) / 0.1)):
                if twilio.messages:
                    break
                await asyncio.sleep(0.1)
            assert len(twilio.messages) == 1, (tmp_path / "second.log").read_text()[-2000:]
            assert twilio.messages[0].to == LEAD
            await asyncio.sleep(LEASE_S + 1.0)  # a second lease period: still just one
            assert twilio.message_requests == 1
        finally:
            _stop(first)
            if second is not None:
                if second.poll() is None:
                    second.send_signal(signal.SIGTERM)
                    try:
                        second.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        _stop(second)
            await twilio.stop()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_sigkill_after_the_inbound_commit_replies_once_after_restart(
        tmp_path: Path, backend: str) -> None:
    """The text is stored and the webhook answered, then the process dies before any reply
    work (`LEADLINE_TEST_SMS_HANG_BEFORE_PROCESSING`): the next start answers it, once."""
    from sms.conversation import HANG_BEFORE_PROCESSING_ENV
    from store.database import open_database

    twilio = await FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN).start()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    marker = tmp_path / "stored"
    sid = "SM" + "b" * 32
    async with backend_url(backend, tmp_path) as db_url:
        env = _env(tmp_path, port, db_url, twilio)
        first = _serve({**env, HANG_BEFORE_PROCESSING_ENV: str(marker)}, tmp_path / "first.log")
        second: subprocess.Popen[bytes] | None = None
        try:
            await _healthy(url, first, tmp_path / "first.log")
            form = {"MessageSid": sid, "AccountSid": ACCOUNT_SID, "From": LEAD,
                    "To": OUR_NUMBER, "Body": "Do you still have openings this week?"}
            signature = RequestValidator(AUTH_TOKEN).compute_signature(
                url + "/twilio/sms", form)
            async with aiohttp.ClientSession() as http, http.post(
                    url + "/twilio/sms", data=form,
                    headers={"X-Twilio-Signature": signature}) as resp:
                assert resp.status == 200
            for _ in range(200):
                if await _exists(marker):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the inbound text never reached processing")
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
            assert first.returncode == -signal.SIGKILL
            db = await open_database(db_url)
            try:
                stored = [m for m in await db.list_messages(LEAD)]
                assert [(m.direction, m.provider_sid, m.intent) for m in stored] == [
                    ("inbound", sid, None)]  # stored, unprocessed, nothing queued
            finally:
                await db.close()
            assert twilio.message_requests == 0

            second = _serve(env, tmp_path / "second.log")
            await _healthy(url, second, tmp_path / "second.log")
            for _ in range(150):
                if twilio.messages:
                    break
                await asyncio.sleep(0.1)
            assert len(twilio.messages) == 1, (tmp_path / "second.log").read_text()[-2000:]
            assert twilio.messages[0].to == LEAD
            await asyncio.sleep(1.5)
            assert twilio.message_requests == 1
            async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
                text = await resp.text()
            assert 'leadline_sms_inbound_recovered_total{outcome="processed"} 1.0' in text
            db = await open_database(db_url)
            try:
                stored = [m for m in await db.list_messages(LEAD)]
                assert [m.direction for m in stored] == ["inbound", "outbound"]
                assert stored[0].intent is not None
            finally:
                await db.close()
        finally:
            _stop(first)
            if second is not None:
                if second.poll() is None:
                    second.send_signal(signal.SIGTERM)
                    try:
                        second.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        _stop(second)
            await twilio.stop()
