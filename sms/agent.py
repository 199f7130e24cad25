"""The text agent (agents.chat) as the conversation's `ReplyAgent`.

Translates store records into the agent's views and its decision back; builds
the agent (and its Chat Completions client when `[sms] llm_base_url` is set)
again when the `[sms]` settings change on a hot reload.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sms.conversation import AgentDecision
from store.models import Lead, Message, utcnow

if TYPE_CHECKING:
    from agents.chat.agent import ChatAgent
    from agents.chat.settings import SmsSettings

log = logging.getLogger("leadline.sms.agent")

# Agent actions that are consent matters: the conversation handles consent before the
# agent is asked, so reaching one means the two classifiers disagree; nothing is sent.
_CONSENT_ACTIONS = frozenset({"opt_out", "opt_in", "help"})


class ChatReplyAgent:
    def __init__(self, settings: Callable[[], SmsSettings],
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._settings = settings
        self._clock = clock
        self._built: tuple[SmsSettings, ChatAgent, Any] | None = None
        self._old_clients: list[Any] = []
        self._retired_counts: dict[str, int] = {}

    def agent(self) -> ChatAgent:
        from agents.chat.agent import ChatAgent
        from agents.chat.llm import OpenAIChatClient

        settings = self._settings()
        if self._built is None or self._built[0] is not settings:
            llm = None
            if settings.llm_base_url:
                llm = OpenAIChatClient(base_url=settings.llm_base_url,
                                       api_key=settings.llm_api_key, model=settings.llm_model,
                                       timeout_s=settings.llm_timeout_s)
            if self._built is not None:
                for key, n in self._built[1].counters.items():
                    self._retired_counts[key] = self._retired_counts.get(key, 0) + n
                if self._built[2] is not None:
                    self._old_clients.append(self._built[2])
            self._built = (settings, ChatAgent(settings, llm, self._clock), llm)
        return self._built[1]

    def counters(self) -> dict[str, int]:
        """The text agent's own counters (decisions by action, LLM outcomes, rejected
        replies), summed over the agents built since start (one per settings reload)."""
        totals: dict[str, int] = dict(self._retired_counts)
        if self._built is not None:
            for key, n in self._built[1].counters.items():
                totals[key] = totals.get(key, 0) + n
        return totals

    async def decide(self, lead: Lead, thread: Sequence[Message],
                     inbound: Message) -> AgentDecision:
        from agents.chat.agent import BusinessInfo, LeadView, ThreadMessage

        settings = self._settings()
        agent = self.agent()
        business = BusinessInfo(name=settings.business_name, facts=settings.facts,
                                booking_url=settings.booking_url)
        view = LeadView(first_name=lead.first_name, last_name=lead.last_name, phone=lead.phone,
                        status=lead.status, attributes=dict(lead.attributes))
        history = [ThreadMessage(direction="inbound" if m.direction == "inbound" else "outbound",
                                 body=m.body, at=m.created_at)
                   for m in thread if m.id != inbound.id and m.status != "cancelled"]
        decision = await agent.decide(business, view, history, inbound.body)
        reply = decision.reply
        if decision.action in _CONSENT_ACTIONS:
            log.warning("agent returned a consent action the consent check did not see",
                        extra={"action": decision.action, "message_id": inbound.id})
            reply = None
        return AgentDecision(intent=decision.intent, confidence=decision.confidence,
                             reply=reply or None, new_status=decision.new_status,
                             handoff=decision.handoff or decision.action == "handoff",
                             handoff_reason=decision.fallback_reason or decision.intent)

    async def aclose(self) -> None:
        clients = self._old_clients + ([self._built[2]] if self._built and self._built[2] else [])
        self._old_clients = []
        self._built = None
        for client in clients:
            await client.close()
