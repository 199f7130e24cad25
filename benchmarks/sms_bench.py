"""SMS benchmarks; each prints one JSON line.

    python benchmarks/sms_bench.py latency [--messages 200] [--backend sqlite|postgresql]
    python benchmarks/sms_bench.py throughput [--rows 2000] [--backend sqlite|postgresql]

latency: the real server (in this process, on a free port) with the fake Chat
Completions server as the LLM and the Twilio REST fake; inbound webhooks signed like
Twilio's, one at a time from distinct leads, and for each the time from sending the
webhook to the fake receiving the reply's `messages.create` (the first message, which
pays the LLM client's warm-up, is reported apart) — our share of the inbound → Twilio
path (store, consent, agent with the LLM round trip to a local fake, compliance, outbox,
sender). The fakes share the process and its event loop, so the
figure includes their cost too: it errs high. `--max-mps` defaults to 50 so the
per-number pacing (1/s on a long code) is not what is measured; with 1, back-to-back
leads each wait up to a second for the sender's slot.

throughput: rows committed to the outbox up front (distinct recipients, one sender
number, `max_mps` lifted so the carrier pacing is not what is measured), then drained
by the real sender through the SDK into the Twilio REST fake; sends/s end to end,
including each row's claim and `outbox_sent` commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from ops import config as config_mod
from ops.app import build_app
from ops.dev.fake_llm import Script, serve_fake_llm
from tests.fakes.twilio_rest import FakeTwilioRest
from tests.store.conftest import backend_url

ACCOUNT_SID = "AC" + "3" * 32
AUTH_TOKEN = "sms-bench-token-0123456789"
OUR_NUMBER = "+14155550123"
REPLY = json.dumps({"intent": "question", "confidence": 0.9,
                    "reply": "Thanks! A person from our team will follow up today."})


def _lead(i: int) -> str:
    return f"+1415555{2000 + i:04d}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


async def latency(messages: int, backend: str, max_mps: float) -> dict[str, Any]:
    twilio = await FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN).start()
    llm = await serve_fake_llm(script=Script(default_reply=REPLY))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    tmp = Path(tempfile.mkdtemp(prefix="sms-bench-"))
    async with backend_url(backend, tmp) as db_url:
        env = {"LEADLINE_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
               "LEADLINE_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
               "LEADLINE_TWILIO_API_BASE_URL": twilio.base_url,
               "LEADLINE_TWILIO_PUBLIC_URL": url, "LEADLINE_STORE_DATABASE_URL": db_url,
               "LEADLINE_STORE_JOURNAL_DIR": str(tmp / "journal"),
               "LEADLINE_SCRIPTED_MESSAGES_DIRECTORY": str(tmp / "messages"),
               "LEADLINE_SERVER_RELOAD_POLL_S": "0", "LEADLINE_LOG_LEVEL": "WARNING",
               "LEADLINE_SMS_FROM_NUMBER": OUR_NUMBER, "LEADLINE_SMS_LLM_BASE_URL": llm.base_url,
               "LEADLINE_SMS_MAX_MPS": str(max_mps)}
        app = build_app(config_mod.load(None, environ=env))
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        validator = RequestValidator(AUTH_TOKEN)
        samples: list[float] = []
        try:
            async with aiohttp.ClientSession() as http:
                for i in range(messages):
                    form = {"MessageSid": f"SM{i + 1:032x}", "AccountSid": ACCOUNT_SID,
                            "From": _lead(i), "To": OUR_NUMBER,
                            "Body": "How soon could you come out for an estimate?"}
                    sig = validator.compute_signature(url + "/twilio/sms", form)
                    before = len(twilio.messages)
                    start = time.time()
                    async with http.post(url + "/twilio/sms", data=form,
                                         headers={"X-Twilio-Signature": sig}) as resp:
                        assert resp.status == 200, resp.status
                    deadline = time.monotonic() + 10
                    # Polling the fake's record is the measurement (1 ms resolution).
                    while len(twilio.messages) == before and time.monotonic() < deadline:  # noqa: ASYNC110
                        await asyncio.sleep(0.001)
                    if len(twilio.messages) == before:
                        raise RuntimeError(f"message {i}: no reply within 10 s")
                    samples.append((twilio.messages[-1].at - start) * 1000)
        finally:
            await runner.cleanup()
            await twilio.stop()
            await llm.cleanup()
    first, rest = samples[0], samples[1:] or samples
    return {"bench": "sms_latency", "backend": backend, "messages": messages,
            "max_mps": max_mps, "first_message_ms": round(first, 2),
            "webhook_to_rest_ms": {"p50": _pct(rest, 0.5), "p99": _pct(rest, 0.99),
                                   "max": round(max(rest), 2)}}


async def throughput(rows: int, backend: str) -> dict[str, Any]:
    from sms.sender import OutboxSender, TwilioSmsTransport, outbox_key
    from sms.settings import OutboxSettings
    from store.database import open_database

    twilio = await FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN).start()
    tmp = Path(tempfile.mkdtemp(prefix="sms-bench-"))
    async with backend_url(backend, tmp) as db_url:
        db = await open_database(db_url)
        transport = TwilioSmsTransport(ACCOUNT_SID, AUTH_TOKEN, base_url=twilio.base_url)
        try:
            for i in range(rows):
                await db.queue_outbound_message(
                    phone=_lead(i), channel="sms", purpose="marketing",
                    body=f"Offer {i}: 20% off installs this month.", from_addr=OUR_NUMBER,
                    to_addr=_lead(i), segments=1, idempotency_key=outbox_key("marketing", f"b{i}"))
            cfg = OutboxSettings(batch=200, concurrency=16)
            sender = OutboxSender(db, transport, settings=lambda: cfg, max_mps=lambda: 1000.0)
            start = time.perf_counter()
            while await sender.drain_once():
                pass
            elapsed = time.perf_counter() - start
            assert len(twilio.messages) == rows, len(twilio.messages)
            assert await db.outbox_pending_count() == 0
        finally:
            await transport.aclose()
            await db.close()
            await twilio.stop()
    return {"bench": "sms_outbox_throughput", "backend": backend, "rows": rows,
            "seconds": round(elapsed, 3), "sends_per_s": round(rows / elapsed, 1),
            "sends_per_min": round(rows / elapsed * 60)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["latency", "throughput"])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--max-mps", type=float, default=50.0,
                        help="latency: [sms] max_mps (1 = a long code's pace; leads arriving "
                             "back to back then wait for the sender's slot)")
    args = parser.parse_args()
    if not (1 <= args.messages <= 5000 and 1 <= args.rows <= 50_000):
        parser.error("--messages must be 1..5000 and --rows 1..50000")
    if args.kind == "latency":
        result = asyncio.run(latency(args.messages, args.backend, args.max_mps))
    else:
        result = asyncio.run(throughput(args.rows, args.backend))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
