"""Which brain a call gets: the choice, the shared breaker's settings, the fallback.

`[brain] kind = "auto"` means the Realtime brain exactly when an OpenAI key
is set. A call is offered the Realtime brain only while the process-wide
circuit breaker lets it through: when OpenAI is down, new calls start on the
keyless brain at once instead of spending the connect timeout in silence.
Every call's fallback (a brain failing mid-call) is the keyless brain with
its apology.

The breaker's thresholds come from `[openai] breaker_*` and are applied here
only, at construction and on every config reload (`configure`), never per
call. The brains are imported when the config first asks for them (the OpenAI SDK
at start or reload when `kind` resolves to openai, never inside a call), and
`resolve_kind` (which `leadline config show` asks) loads neither.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

from agents.settings import BrainSettings, OpenAISettings, ScriptedSettings

if TYPE_CHECKING:
    from agents.brain import Brain, CallContext

log = logging.getLogger("leadline.agents.selection")

BrainKind = Literal["scripted", "openai"]


class AgentConfig(Protocol):
    """The config sections brain selection reads (`ops.config.Config` has them)."""

    @property
    def brain(self) -> BrainSettings: ...
    @property
    def scripted(self) -> ScriptedSettings: ...
    @property
    def openai(self) -> OpenAISettings: ...


def resolve_kind(brain: BrainSettings, openai: OpenAISettings) -> BrainKind:
    """The brain new calls get: `auto` means openai exactly when a key is set."""
    if brain.kind == "auto":
        return "openai" if openai.api_key else "scripted"
    return brain.kind


class BrainSelector:
    """Makes each call's brain from the current config (`config()` is read per call)."""

    def __init__(self, config: Callable[[], AgentConfig]) -> None:
        self._config = config
        # The tool registry built for the current `[openai]` section (rebuilt on reload).
        self._tools: tuple[OpenAISettings, Any] | None = None
        self.configure()

    @property
    def kind(self) -> BrainKind:
        cfg = self._config()
        return resolve_kind(cfg.brain, cfg.openai)

    def configure(self) -> None:
        """Apply `[openai] breaker_*` to the shared breaker (start and config reload)."""
        cfg = self._config()
        if resolve_kind(cfg.brain, cfg.openai) != "openai":
            return
        # Import the Realtime brain (and the OpenAI SDK, seconds on a busy core) here, at
        # start or reload, so the first call's greeting never waits behind the import.
        import agents.realtime.brain  # noqa: F401
        from agents.realtime.breaker import default_breaker

        o = cfg.openai
        default_breaker.configure(o.breaker_failures, o.breaker_window_s, o.breaker_cooldown_s)

    def new_brain(self, context: CallContext) -> Brain:
        """OpenAI Realtime when configured and its breaker is closed, else the keyless brain."""
        cfg = self._config()
        if resolve_kind(cfg.brain, cfg.openai) == "openai":
            from agents.realtime.breaker import should_use_realtime

            if should_use_realtime():
                from agents.realtime.brain import RealtimeBrain

                return RealtimeBrain(cfg.openai, registry=self._registry(cfg.openai))
            log.warning("realtime circuit open; call starts on the keyless brain",
                        extra={"call_sid": context.call_sid})
        from agents.scripted import ScriptedBrain

        return ScriptedBrain(cfg.scripted)

    def fallback_brain(self, context: CallContext) -> Brain:
        """The brain a call switches to when its own cannot go on."""
        from agents.scripted import ScriptedBrain

        return ScriptedBrain(self._config().scripted, fallback=True)

    def _registry(self, settings: OpenAISettings) -> Any:
        """One registry per `[openai]` section: the tools' schemas are built once, not per call."""
        if self._tools is None or self._tools[0] is not settings:
            from agents.tools import build_registry

            registry = build_registry(settings.tools, transfer=bool(settings.transfer_number))
            self._tools = (settings, registry)
        return self._tools[1]
