"""The outbox sender: due outbox rows → Twilio Messages, one REST call per row.

Every outbound text is first committed as a message row plus an outbox row
with an idempotency key (`Database.queue_outbound_message`); only then does
this worker claim it (`claim_outbox`, a lease; PostgreSQL `SKIP LOCKED` lets
several processes share the work), pace it per sender number, and hand it to
Twilio through the official SDK's asyncio client. The answer is recorded at
once: `outbox_sent` stores Twilio's message SID with the state change in one
transaction; failures go through `sms.policy` (retry with capped, jittered
backoff; fail; or opted out for 21610).

Delivery guarantee, precisely:
- a crash before the REST call (after the commit) loses nothing: the row stays
  `sending`, its lease lapses, it is claimed again and sent once;
- a crash in the window between Twilio's answer and our `outbox_sent` commit
  (one local transaction, milliseconds), or a request that timed out after
  Twilio had accepted it, makes that row at-least-once: it is sent again when
  re-claimed. Twilio's Messages API has no idempotency key we could pass, so
  this window cannot be closed from our side; it is kept small instead. A
  database that fails at that commit (a restart) is retried while the row's
  lease holds, so an outage shorter than the lease sends nothing twice;
- a row is never sent by two processes at once as long as a send finishes
  within `lease_s` (checked in the settings, and claims are capped so the
  throttle cannot hold a claimed row past half its lease).

Before a row is sent, `gate` (injected by the conversation layer, which owns
compliance) may cancel it (the lead opted out since it was queued) or defer it
(quiet hours began); an opt-out confirmation is the one purpose it lets through
for an opted-out lead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

import msgspec

from agents.chat.segments import count_segments
from sms.outbox_loop import OutboxLoop
from sms.policy import Verdict, classify_failure, retry_delay
from sms.settings import OutboxSettings
from sms.throttle import SenderThrottle
from store.database import Database
from store.errors import StoreError
from store.models import MESSAGE_PURPOSES, OutboxItem, utcnow

log = logging.getLogger("leadline.sms.sender")

# Test-only fault injection, read once at start: when set to a file path, the sender
# touches that file right after claiming a row (the row is committed and leased) and then
# hangs before the REST call, so a test can SIGKILL the process in exactly that window.
HANG_AFTER_CLAIM_ENV = "LEADLINE_TEST_SMS_HANG_AFTER_CLAIM"
# A sent row's commit is retried until this long before its lease ends (and at most
# SENT_COMMIT_TRIES times), so no other claim can have taken the row meanwhile.
LEASE_MARGIN_S = 1.0
SENT_COMMIT_TRIES = 60


def purpose_of(idempotency_key: str) -> str:
    """Outbox keys are written `<purpose>:<origin>` (see `outbox_key`); an outbox row does
    not carry its message's purpose, and the gate needs it before each send. A key in
    another shape is treated as marketing, the strictest purpose."""
    head = idempotency_key.split(":", 1)[0]
    return head if head in MESSAGE_PURPOSES else "marketing"


def outbox_key(purpose: str, origin: str) -> str:
    """The idempotency key for one send: the same decision always yields the same key
    (a reply to inbound SMxxx is `conversation:reply:SMxxx`), so a retried decision is
    deduplicated by the store."""
    if purpose not in MESSAGE_PURPOSES:
        raise ValueError(f"unknown message purpose {purpose!r}")
    return f"{purpose}:{origin}"


class SendResult(msgspec.Struct, frozen=True):
    sid: str
    status: str


class SendFailure(Exception):
    """Twilio refused the send (`http_status`, `code`) or never answered (`transport`)."""

    def __init__(self, message: str, *, http_status: int | None = None,
                 code: int | None = None, transport: bool = False) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.transport = transport


class SmsTransport(Protocol):
    async def send(self, *, to: str, sender: str, body: str,
                   status_callback: str | None) -> SendResult: ...

    async def aclose(self) -> None: ...


class TwilioSmsTransport:
    """`messages.create` through the twilio SDK's aiohttp client (the loop never blocks).

    `sender` is a Messaging Service SID (MG…) or a phone number; `base_url` points the SDK
    at another API host (tests: tests/fakes/twilio_rest.py). The SDK does not apply its
    client timeout to async requests, so the call is bounded here.
    """

    def __init__(self, account_sid: str, auth_token: str, *, base_url: str | None = None,
                 timeout_s: float = 10.0) -> None:
        if not account_sid or not auth_token:
            raise ValueError("twilio.account_sid and twilio.auth_token are required to send SMS")
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout_s = timeout_s
        self._http: object | None = None
        self._client: object | None = None

    def _sdk(self) -> object:
        if self._client is None:  # the aiohttp session must be made inside the loop
            from twilio.http.async_http_client import AsyncTwilioHttpClient
            from twilio.rest import Client

            self._http = AsyncTwilioHttpClient(timeout=self.timeout_s)
            client = Client(self.account_sid, self._auth_token, http_client=self._http)
            if self.base_url:
                client.api.base_url = self.base_url
            self._client = client
        return self._client

    async def send(self, *, to: str, sender: str, body: str,
                   status_callback: str | None) -> SendResult:
        import aiohttp
        from twilio.base.exceptions import TwilioRestException

        kwargs: dict[str, object] = {"to": to, "body": body}
        if sender.startswith("MG"):
            kwargs["messaging_service_sid"] = sender
        else:
            kwargs["from_"] = sender
        if status_callback:
            kwargs["status_callback"] = status_callback
        client = self._sdk()
        try:
            async with asyncio.timeout(self.timeout_s):
                msg = await client.messages.create_async(**kwargs)  # type: ignore[attr-defined]
        except TwilioRestException as exc:
            raise SendFailure(str(exc.msg), http_status=exc.status, code=exc.code) from exc
        except TimeoutError as exc:
            raise SendFailure(f"no answer within {self.timeout_s} s", transport=True) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise SendFailure(f"{type(exc).__name__}: {exc}", transport=True) from exc
        return SendResult(sid=str(msg.sid), status=str(msg.status or "queued"))

    async def aclose(self) -> None:
        http = self._http
        self._http = self._client = None
        if http is not None:
            await http.close()  # type: ignore[attr-defined]


class GateVerdict(msgspec.Struct, frozen=True):
    action: Literal["send", "cancel", "defer"]
    reason: str = ""
    until: datetime | None = None


Gate = Callable[[OutboxItem, str], Awaitable[GateVerdict]]


class SenderStats:
    """Plain counters, read by /metrics."""

    def __init__(self) -> None:
        self.claimed = 0
        self.sent = 0
        self.failed = 0
        self.retried = 0
        self.cancelled = 0
        self.deferred = 0
        self.opted_out = 0
        self.loop_errors = 0
        # Commits of a sent row's SID retried because the database failed (see deliver).
        self.sent_commit_retries = 0
        self.by_outcome: dict[str, int] = {}


class OutboxSender(OutboxLoop):
    """The worker. `run()` drains the outbox until `stop()`; `drain_once()` is one claim
    and its sends (the CLI and tests drive it directly)."""

    task_name = "sms-outbox"
    _log = log

    def __init__(
        self,
        db: Database,
        transport: SmsTransport,
        *,
        settings: Callable[[], OutboxSettings],
        max_mps: Callable[[], float],
        status_callback_url: Callable[[], str | None] = lambda: None,
        gate: Gate | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.transport = transport
        self._settings = settings
        self._max_mps = max_mps
        self._callback_url = status_callback_url
        self.gate = gate
        self._clock = clock
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        first = settings()
        self.throttle = SenderThrottle(max_mps(), burst=first.burst, clock=monotonic)
        self.stats = SenderStats()
        self._init_loop(lambda: self._settings().poll_s, sleep)
        self._hang_marker = os.environ.get(HANG_AFTER_CLAIM_ENV) or None

    # one round -------------------------------------------------------------------

    def claim_limit(self) -> int:
        """Rows per claim: never more than one sender can send in half a lease at its
        rate, so a claimed row never waits on the throttle until its lease lapses."""
        cfg = self._settings()
        return max(1, min(cfg.batch, int(self._max_mps() * cfg.lease_s / 2)))

    async def drain_once(self) -> int:
        """Claim due rows and send them (concurrently, bounded); the number claimed."""
        cfg = self._settings()
        rate = self._max_mps()
        if rate != self.throttle.rate:
            self.throttle.set_rate(rate)
        claimed_at = self._monotonic()
        items = await self.db.claim_outbox(now=self._clock(), limit=self.claim_limit(),
                                           lease_s=cfg.lease_s)
        if not items:
            return 0
        self.stats.claimed += len(items)
        limit = asyncio.Semaphore(cfg.concurrency)

        async def one(item: OutboxItem) -> None:
            async with limit:
                try:
                    await self.deliver(item, claimed_at=claimed_at)
                except StoreError as exc:  # the row stays leased and is re-claimed later
                    self._loop_error(exc)
                except Exception as exc:
                    self._loop_error(exc)

        await asyncio.gather(*(one(item) for item in items))
        return len(items)

    async def deliver(self, item: OutboxItem, *, claimed_at: float | None = None) -> str:
        """Gate, pace, send and record one claimed row; the outcome's name. `claimed_at`
        (the monotonic clock at the claim) bounds retries of the final commit."""
        purpose = purpose_of(item.idempotency_key)
        if self.gate is not None:
            verdict = await self.gate(item, purpose)
            if verdict.action == "cancel":
                await self.db.outbox_cancel(item.id, verdict.reason or "refused at send time")
                return self._count("cancelled", item, verdict.reason)
            if verdict.action == "defer":
                until = verdict.until or (self._clock() + timedelta(minutes=5))
                await self.db.outbox_retry(item.id, f"deferred: {verdict.reason}", until)
                return self._count("deferred", item, verdict.reason)
        if self._hang_marker is not None:
            await self._hang_for_test()
        segments, _ = count_segments(item.body)
        wait = self.throttle.reserve(item.from_addr, segments)
        if wait > 0:
            await self._sleep(wait)
        try:
            result = await self.transport.send(
                to=item.to_addr, sender=item.from_addr, body=item.body,
                status_callback=self._callback_url())
        except SendFailure as exc:
            verdict = classify_failure(http_status=exc.http_status, error_code=exc.code,
                                       transport_error=exc.transport, message=str(exc))
            return await self._failed(item, verdict)
        await self._record_sent(item, result.sid, result.status, claimed_at)
        return self._count("sent", item, result.sid)

    async def _record_sent(self, item: OutboxItem, sid: str, status: str,
                           claimed_at: float | None) -> None:
        """Twilio has the text: store its SID. A database failing right now (a restart,
        found by benchmarks/chaos.sh) is retried while the row's lease holds; giving up at
        once let the lease lapse, and the re-claimed row was sent a second time."""
        delay = 0.2
        for tries in range(1, SENT_COMMIT_TRIES + 1):
            try:
                await self.db.outbox_sent(item.id, sid, status=status)
                return
            except StoreError:
                left = (claimed_at + self._settings().lease_s - LEASE_MARGIN_S
                        - self._monotonic()) if claimed_at is not None else 0.0
                if left <= delay or tries == SENT_COMMIT_TRIES:
                    raise
                self.stats.sent_commit_retries += 1
                await self._sleep(delay)
                delay = min(2.0, delay * 2)

    async def _failed(self, item: OutboxItem, verdict: Verdict) -> str:
        cfg = self._settings()
        if verdict.action == "retry" and item.attempts < cfg.max_attempts:
            delay = retry_delay(item.attempts, base_s=cfg.backoff_base_s,
                                cap_s=cfg.backoff_cap_s, rng=self._rng)
            await self.db.outbox_retry(item.id, verdict.reason,
                                       self._clock() + timedelta(seconds=delay))
            return self._count("retried", item, verdict.reason)
        reason = verdict.reason if verdict.action != "retry" else \
            f"gave up after {item.attempts} attempts: {verdict.reason}"
        # What the failure says about the recipient first: a crash between the two then
        # leaves the row to be tried (and fail, and be applied) again, never an opt-out
        # that was reported but not recorded.
        await apply_recipient_verdict(self.db, item.to_addr, verdict, source="outbox")
        await self.db.outbox_failed(item.id, reason, verdict.error_code)
        if verdict.action == "opted_out":
            self.stats.opted_out += 1
        return self._count("failed", item, reason)

    def _count(self, outcome: str, item: OutboxItem, detail: str) -> str:
        stats = self.stats
        setattr(stats, outcome, getattr(stats, outcome) + 1)
        stats.by_outcome[outcome] = stats.by_outcome.get(outcome, 0) + 1
        level = logging.INFO if outcome in ("sent", "deferred") else logging.WARNING
        log.log(level, "outbox %s", outcome, extra={
            "outbox_id": item.id, "message_id": item.message_id, "to": item.to_addr,
            "attempt": item.attempts, "detail": detail[:200]})
        return outcome

    async def _hang_for_test(self) -> None:
        marker = self._hang_marker
        assert marker is not None
        await asyncio.to_thread(Path(marker).write_text, "claimed\n")
        log.warning("test fault injection: hanging after claim (%s)", HANG_AFTER_CLAIM_ENV)
        await asyncio.Event().wait()


async def apply_recipient_verdict(db: Database, phone: str, verdict: Verdict, *,
                                  source: str) -> None:
    """What a permanent failure tells us about the recipient: 21610 is an opt-out (a
    consent event on channel "twilio_error", so every channel stops, not just this
    sender), an invalid number marks the lead wrong_number."""
    if verdict.action == "opted_out":
        if not await db.is_opted_out(phone):
            await db.add_consent_event(
                phone, "opt_out", "twilio_error",
                f"Twilio error {verdict.error_code}: {verdict.reason}", source=source)
    if verdict.lead_status is not None:
        await db.set_lead_status(phone, verdict.lead_status)
