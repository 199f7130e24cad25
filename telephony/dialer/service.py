"""The dialer's parts put together once per process: worker, callbacks, live-call observer.

`leadline serve` always mounts the callbacks and the observer (Twilio may call back any
process behind the load balancer, and the process holding a call's stream is the one
that can drop a voicemail into it) and starts the queue consumer only when
`[dialer] enabled`; `leadline dialer run` starts only the consumer. Everything reads its
settings through callables, so a reloaded config reaches the next job.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from agents.compliance.engine import CompliancePolicy, ContactRequest, Decision
from agents.compliance.gate import check_and_audit
from agents.compliance.settings import ComplianceSettings
from telephony.dialer.http import CallbackStats, DialerRoutes
from telephony.dialer.jobs import CallJob
from telephony.dialer.leg import DialRequest, TwilioCallPlacer
from telephony.dialer.observer import OutboundCalls
from telephony.dialer.settings import DialerSettings
from telephony.dialer.worker import CallWaiters, Dialer, DialerStats
from telephony.settings import TwilioSettings
from telephony.twilio.http import public_base_url

log = logging.getLogger("leadline.dialer")
SIGNATURE_HEADER = "X-Leadline-Signature"


def sign_body(secret: str, body: bytes) -> str:
    """`sha256=<hex>` HMAC of the raw body: what the receiver recomputes to trust it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _warm_compliance(settings: ComplianceSettings) -> None:
    from agents.compliance.engine import decide

    decide(ContactRequest(phone="+14155552671", channel="voice", purpose="marketing",
                          at=datetime.now(UTC)), CompliancePolicy.from_settings(settings))


def _warm_twilio() -> None:
    """The Twilio SDK loads its REST resources at the first request: ~90 modules (every
    v2010 account resource), ~100 ms on the event loop, in front of the first burst of
    dials. Loaded here instead, in a thread, before the first job."""
    import twilio.rest.api.v2010.account.call  # noqa: F401


class LazyPlacer:
    """The Twilio client made at the first dial (inside the loop, with current settings)."""

    def __init__(self, twilio: Callable[[], TwilioSettings]) -> None:
        self._twilio = twilio
        self._placer: TwilioCallPlacer | None = None

    def _get(self) -> TwilioCallPlacer:
        if self._placer is None:
            tw = self._twilio()
            self._placer = TwilioCallPlacer.from_settings(tw, base_url=tw.api_base_url or None)
        return self._placer

    async def place(self, request: DialRequest, base_url: str) -> str:
        return await self._get().place(request, base_url)

    async def hangup(self, call_sid: str) -> None:
        await self._get().hangup(call_sid)

    async def find(self, to: str, from_: str, since: datetime) -> str | None:
        return await self._get().find(to, from_, since)

    async def status(self, call_sid: str) -> str:
        return await self._get().status(call_sid)

    async def aclose(self) -> None:
        if self._placer is not None:
            await self._placer.aclose()


class DialerService:
    def __init__(
        self,
        dialer: Callable[[], DialerSettings],
        twilio: Callable[[], TwilioSettings],
        compliance: Callable[[], ComplianceSettings],
        db: Callable[[], Any],
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        placer: Any = None,
        transcript_url: Callable[[str], str | None] = lambda call_sid: None,
    ) -> None:
        self._settings = dialer
        self._twilio = twilio
        self._compliance_settings = compliance
        self._db = db
        self.waiters = CallWaiters()
        # transcript_url: where the call's artifacts will be (store.artifacts.CallArtifacts
        # returns the URL at once and writes them), for the outcome's `transcriptUrl`.
        self.observer = OutboundCalls(dialer, db, self.waiters, transcript_url=transcript_url)
        self.callback_stats = CallbackStats()
        self.routes = DialerRoutes(twilio, db, self.waiters, self.observer,
                                   self.callback_stats)
        self.placer = placer or LazyPlacer(twilio)
        self.stats = DialerStats()
        self.webhooks_sent = 0
        self.webhooks_failed = 0
        self.dialer = Dialer(dialer, lambda: public_base_url(twilio()), db, self.placer,
                             self._check, now=now, waiters=self.waiters,
                             on_outcome=self._webhook, stats=self.stats)
        self.running = False

    async def _check(self, job: CallJob, at: datetime) -> Decision:
        db = self._db()
        request = ContactRequest(phone=job.phone, channel="voice", purpose="marketing", at=at,
                                 lead_state=job.contact.state or None)
        return await check_and_audit(
            db, request, CompliancePolicy.from_settings(self._compliance_settings()),
            extra_contacts=db.dial_times, source="dialer")

    async def start_worker(self) -> None:
        # The gate's first decision loads phonenumbers' time-zone and geocoder data (~2.6 s
        # measured): pay it before the first job, off the event loop, not inside it.
        await asyncio.to_thread(_warm_compliance, self._compliance_settings())
        await asyncio.to_thread(_warm_twilio)
        await self.dialer.start()
        self.running = True

    async def stop(self) -> None:
        if self.running:
            await self.dialer.stop()
            self.running = False
        await self.observer.drain()
        if isinstance(self.placer, LazyPlacer):
            await self.placer.aclose()

    async def _webhook(self, job_id: str, value: dict[str, Any]) -> None:
        """POST the outcome to the sales tool, signed, retried with exponential backoff."""
        s = self._settings()
        if not s.webhook_url:
            return
        import aiohttp

        body = msgspec.json.encode({"jobId": job_id, "queue": s.queue, **value})
        headers = {"Content-Type": "application/json",
                   SIGNATURE_HEADER: sign_body(s.webhook_secret, body)}
        delay = 0.5
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            for attempt in range(1, s.webhook_attempts + 1):
                try:
                    async with http.post(s.webhook_url, data=body, headers=headers) as resp:
                        if resp.status < 300:
                            self.webhooks_sent += 1
                            return
                        error = f"HTTP {resp.status}"
                        if 400 <= resp.status < 500 and resp.status not in (408, 429):
                            break
                except (aiohttp.ClientError, TimeoutError) as exc:
                    error = repr(exc)
                log.info("outcome webhook attempt failed", extra={
                    "job_id": job_id, "attempt": attempt, "error": error[:200]})
                if attempt < s.webhook_attempts:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
        self.webhooks_failed += 1
        log.warning("outcome webhook gave up", extra={"job_id": job_id, "error": error[:200]})
