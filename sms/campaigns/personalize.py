"""LLM personalisation of a campaign touch, with the template as brief and as fallback.

The model (the chat agent's client, `[sms] llm_*`) rewrites the rendered template for
the lead. Its answer is used only if it keeps what the template promised: every link
of the template, no other link, within the channel's length; otherwise — and on any
model failure — the template goes out as written. A campaign never waits on a model
longer than the chat client's timeout.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agents.chat.llm import OpenAIChatClient
    from agents.chat.settings import SmsSettings
    from store.models import Lead

log = logging.getLogger("leadline.campaigns.personalize")
_URL = re.compile(r"https?://\S+")
MAX_CHARS = {"sms": 320, "email": 5000}

SYSTEM = (
    "You rewrite one marketing message for {business}. Keep its meaning, its offer and "
    "every link exactly as written; add no new facts, prices, links or promises; keep it "
    "short and friendly; no opt-out wording (it is added for you). Answer with the "
    "message text only."
)


def acceptable(brief: str, answer: str, channel: str) -> bool:
    text = answer.strip()
    if not text or len(text) > MAX_CHARS.get(channel, 320):
        return False
    return set(_URL.findall(text)) == set(_URL.findall(brief))


class LlmPersonalizer:
    def __init__(self, settings: Callable[[], SmsSettings]) -> None:
        self._settings = settings
        self._client: tuple[SmsSettings, OpenAIChatClient] | None = None

    def client(self) -> OpenAIChatClient | None:
        from agents.chat.llm import client_from_settings

        s = self._settings()
        if self._client is None or self._client[0] is not s:
            made = client_from_settings(s)
            if made is None:
                return None
            self._client = (s, made)
        return self._client[1]

    async def __call__(self, brief: str, lead: Lead, channel: str) -> str | None:
        from agents.chat.llm import LlmError

        client = self.client()
        if client is None:
            return None
        s = self._settings()
        who = lead.first_name or "the lead"
        try:
            answer = await client.complete([
                {"role": "system", "content": SYSTEM.format(business=s.business_name)},
                {"role": "user", "content": f"Recipient: {who}. Channel: {channel}.\n"
                                            f"Message:\n{brief}"}], json_mode=False)
        except LlmError as exc:
            log.info("personalisation fell back to the template: %s", exc.kind)
            return None
        if not acceptable(brief, answer, channel):
            log.info("personalisation answer rejected (links or length); template used")
            return None
        return answer.strip()
