"""The businesses wired into the server: the registry per config, and owner notices.

Wiring only: which business a call is for lives in `agents.business`, the SMS
rules in `sms.conversation`. This module builds a `BusinessRegistry` once per
config object (a hot reload swaps it whole) and sends the owner's texts through
the compliance-checked SMS send, in tasks it keeps until they end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from agents.business.registry import BusinessRegistry, owner_missed_call_text
from agents.business.settings import BusinessSettings

if TYPE_CHECKING:
    from ops.config import Config
    from sms.conversation import Conversation

log = logging.getLogger("leadline.business")
# Owner notices in flight at once; more are dropped (logged, counted), never queued forever.
MAX_PENDING_NOTICES = 256


class Businesses:
    """`registry()` for the current config; `notify_no_voice` for the voice webhook."""

    def __init__(self, config: Callable[[], Config],
                 conversation: Callable[[], Conversation | None]) -> None:
        self._config = config
        self._conversation = conversation
        self._for: object = None
        self._registry: BusinessRegistry | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.notices_sent = 0
        self.notices_failed = 0

    def registry(self) -> BusinessRegistry | None:
        """None without `[[businesses]]`: calls keep the behaviour of a single-tenant server."""
        businesses = self._config().businesses
        if businesses is not self._for:
            self._for = businesses
            self._registry = BusinessRegistry(businesses) if businesses else None
        return self._registry

    def notify_no_voice(self, business: BusinessSettings, form: dict[str, str]) -> None:
        """Text the owner that a call came in their plan could not answer by voice."""
        phone = business.owner.phone
        call_sid = form.get("CallSid", "")
        if not phone:
            self.notices_failed += 1
            log.warning("no owner.phone to notify of a no-voice call",
                        extra={"business": business.name, "call_sid": call_sid})
            return
        text = owner_missed_call_text(business, form.get("From", ""))
        self.spawn(self._send(phone, text, f"no-voice:{call_sid}", call_sid), "owner notice")

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        if len(self._tasks) >= MAX_PENDING_NOTICES:
            coro.close()
            self.notices_failed += 1
            log.error("too many owner notices in flight; dropped one", extra={"what": what})
            return
        task = asyncio.get_running_loop().create_task(coro, name=what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, phone: str, text: str, origin: str, call_sid: str) -> None:
        conversation = self._conversation()
        if conversation is None:
            self.notices_failed += 1
            log.error("owner notice not sent: the SMS side is not running",
                      extra={"call_sid": call_sid})
            return
        try:
            queued = await conversation.send(phone, text, "notification", origin)
        except Exception:
            self.notices_failed += 1
            log.exception("owner notice not sent", extra={"call_sid": call_sid})
            return
        self.notices_sent += 1
        log.info("owner notice", extra={"call_sid": call_sid, "state": queued.state,
                                         "reason": queued.reason})

    async def stop(self) -> None:
        """Let notices in flight finish (they are short: a store write and a wake-up)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
