"""The async shell of call analysis: build, maybe ask a model for the summary, store,
then notify the owner of a new lead.

I/O goes through two small protocols the composition root implements (the store's
`save_call_analysis`, and a `LeadNotifier` over the compliance-checked SMS send and
the email outbox), so this package imports no carrier and no SMTP. Order matters:
the record is stored first and the notice goes out only when that store call says
the record is new, so a replayed call end never notifies twice; the outbox keys
(`notice_key`, the call sid) are the second guard.

An owner phone that is not a phone number is a clear logged error, counted, and the
email still goes out (filed under the business's own number).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from agents.analysis.notice import notice_email, notice_key, notice_sms
from agents.analysis.record import CallAnalysis, CallFacts, build_analysis
from agents.analysis.settings import AnalysisSettings
from agents.analysis.summary import model_summary
from agents.chat.llm import LlmClient
from store.phones import InvalidPhoneNumber, normalize_phone

log = logging.getLogger(__name__)

Offload = Callable[[Callable[[], CallAnalysis]], Awaitable[CallAnalysis]]


class AnalysisStore(Protocol):
    async def save_call_analysis(self, record: Mapping[str, Any]) -> bool: ...
    async def mark_analysis_notified(self, call_sid: str,
                                     notified: Mapping[str, Any]) -> None: ...


class LeadNotifier(Protocol):
    async def text_owner(self, to: str, body: str, origin: str) -> str:
        """Queue a compliance-checked text; its state (queued, deferred, refused …)."""

    async def email_owner(self, file_under: str, to_addr: str, subject: str, body: str,
                          key: str) -> str:
        """Queue a compliance-checked email through the outbox; its state."""


@dataclass(frozen=True, slots=True)
class Owner:
    """Where the business's owner hears of a lead; `business_number` files the email
    when the owner's phone is missing or not a number."""

    phone: str = ""
    email: str = ""
    business_number: str = ""


@dataclass
class AnalystStats:
    analysed: int = 0
    model_summaries: int = 0
    model_fallbacks: int = 0
    store_failures: int = 0
    replays: int = 0
    notices_sent: int = 0
    notices_failed: int = 0
    invalid_owner_phones: int = 0


class CallAnalyst:
    """`finish(facts, owner)` per ended call; never raises (everything is logged)."""

    def __init__(self, settings: Callable[[], AnalysisSettings],
                 store: Callable[[], AnalysisStore | None], notifier: LeadNotifier, *,
                 llm: Callable[[AnalysisSettings], LlmClient | None] | None = None) -> None:
        self._settings = settings
        self._store = store
        self._notifier = notifier
        self._llm = llm or _default_llm
        self._client: tuple[tuple[str, str, str, float], LlmClient | None] | None = None
        self.stats = AnalystStats()

    def _model(self, cfg: AnalysisSettings) -> LlmClient | None:
        key = (cfg.summary_base_url, cfg.summary_model, cfg.summary_api_key,
               cfg.summary_timeout_s)
        if self._client is None or self._client[0] != key:
            self._client = (key, self._llm(cfg) if cfg.model_configured else None)
        return self._client[1]

    async def finish(self, facts: CallFacts, owner: Owner | None, *,
                     offload: Offload | None = None) -> CallAnalysis | None:
        """`offload` runs the CPU-bound builder (e.g. `asyncio.to_thread`); default inline."""
        cfg = self._settings()
        if not cfg.enabled:
            return None
        build = functools.partial(build_analysis, facts, sentences=cfg.summary_sentences)
        try:
            analysis = await offload(build) if offload is not None else build()
        except Exception:
            log.exception("call analysis failed", extra={"call_sid": facts.call_sid})
            return None
        client = self._model(cfg)
        if client is not None and analysis.caller_turns:
            text = await model_summary(client, facts.turns, analysis.priority,
                                       timeout_s=cfg.summary_timeout_s,
                                       call_sid=facts.call_sid)
            if text is None:
                self.stats.model_fallbacks += 1
            else:
                self.stats.model_summaries += 1
                analysis = msgspec.structs.replace(analysis, summary=text,
                                                   summary_source="model")
        self.stats.analysed += 1
        store = self._store()
        if store is None:
            log.warning("no database: call analysis not stored",
                        extra={"call_sid": facts.call_sid})
            return analysis
        try:
            created = await store.save_call_analysis(msgspec.to_builtins(analysis))
        except Exception:
            self.stats.store_failures += 1
            log.exception("call analysis not stored", extra={"call_sid": facts.call_sid})
            return analysis
        if not created:
            self.stats.replays += 1
            log.info("call analysis already stored; no second notice",
                     extra={"call_sid": facts.call_sid})
            return analysis
        log.info("call analysed", extra={
            "call_sid": facts.call_sid, "outcome": analysis.outcome,
            "success": analysis.success, "priority": analysis.priority,
            "new_lead": analysis.new_lead, "summary_source": analysis.summary_source})
        if analysis.new_lead and cfg.notify_new_leads and owner is not None:
            notified = await self.notify(analysis, owner, cfg)
            if notified:
                try:
                    await store.mark_analysis_notified(analysis.call_sid, notified)
                except Exception:
                    self.stats.store_failures += 1
                    log.exception("notice state not stored",
                                  extra={"call_sid": analysis.call_sid})
        return analysis

    async def notify(self, analysis: CallAnalysis, owner: Owner,
                     cfg: AnalysisSettings) -> dict[str, str]:
        """The owner's new-lead notice on each configured channel; state per channel."""
        sid = analysis.call_sid
        out: dict[str, str] = {}
        phone = _phone(owner.phone)
        if owner.phone.strip() and phone is None:
            self.stats.invalid_owner_phones += 1
            log.error("owner phone %r is not a phone number: no new-lead text (email still "
                      "sent)", owner.phone[:40], extra={"call_sid": sid,
                                                       "business": analysis.business})
        if "sms" in cfg.notify_channels:
            if phone is None:
                out["sms"] = "invalid_owner_phone" if owner.phone.strip() else "no_owner_phone"
            else:
                out["sms"] = await self._send("sms", sid, self._notifier.text_owner(
                    phone, notice_sms(analysis), notice_key(sid, "sms")))
        if "email" in cfg.notify_channels:
            file_under = (phone or _phone(owner.business_number)
                          or _phone(analysis.caller_number))
            if not owner.email.strip():
                out["email"] = "no_owner_email"
            elif file_under is None:
                out["email"] = "no_phone_to_file_under"
                log.error("new-lead email not sent: no valid phone to file it under",
                          extra={"call_sid": sid})
            else:
                subject, body = notice_email(analysis)
                out["email"] = await self._send("email", sid, self._notifier.email_owner(
                    file_under, owner.email.strip(), subject, body, notice_key(sid, "email")))
        return out

    async def _send(self, channel: str, sid: str, send: Any) -> str:
        try:
            state = str(await send)
        except Exception as exc:
            self.stats.notices_failed += 1
            log.exception("new-lead %s not sent", channel, extra={"call_sid": sid})
            return f"error: {str(exc)[:120]}"
        if state in ("queued", "deferred", "duplicate"):
            self.stats.notices_sent += 1
        else:
            self.stats.notices_failed += 1
        log.info("new-lead notice", extra={"call_sid": sid, "channel": channel,
                                           "state": state})
        return state


def _phone(raw: str) -> str | None:
    if not raw or not raw.strip():
        return None
    try:
        return normalize_phone(raw)
    except (InvalidPhoneNumber, ValueError):
        return None


def _default_llm(cfg: AnalysisSettings) -> LlmClient | None:
    from agents.chat.llm import OpenAIChatClient

    return OpenAIChatClient(base_url=cfg.summary_base_url, api_key=cfg.summary_api_key,
                            model=cfg.summary_model, timeout_s=cfg.summary_timeout_s,
                            max_tokens=200)
