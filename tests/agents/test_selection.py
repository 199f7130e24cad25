"""Brain selection: the configured kind, the shared breaker in front of Realtime, the fallback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from agents.brain import CallContext
from agents.realtime.brain import RealtimeBrain
from agents.realtime.breaker import default_breaker
from agents.scripted import ScriptedBrain
from agents.selection import BrainSelector, resolve_kind
from agents.settings import BrainSettings, OpenAISettings, ScriptedSettings

CTX = CallContext(call_sid="CA1")


@pytest.fixture(autouse=True)
def _breaker_thresholds() -> Iterator[None]:
    """Selection configures the process-wide breaker: put its thresholds back."""
    saved = (default_breaker.failures, default_breaker.window_s, default_breaker.cooldown_s)
    yield
    default_breaker.configure(*saved)


@dataclass
class Cfg:
    brain: BrainSettings = field(default_factory=BrainSettings)
    scripted: ScriptedSettings = field(default_factory=ScriptedSettings)
    openai: OpenAISettings = field(default_factory=OpenAISettings)


def test_auto_means_openai_exactly_when_a_key_is_set() -> None:
    assert resolve_kind(BrainSettings("auto"), OpenAISettings()) == "scripted"
    assert resolve_kind(BrainSettings("auto"), OpenAISettings(api_key="sk-x")) == "openai"
    assert resolve_kind(BrainSettings("scripted"), OpenAISettings(api_key="sk-x")) == "scripted"
    assert resolve_kind(BrainSettings("openai"), OpenAISettings()) == "openai"


def test_keyless_config_gets_the_scripted_brain_and_leaves_the_breaker_alone() -> None:
    before = default_breaker.failures
    cfg = Cfg(openai=OpenAISettings(breaker_failures=before + 7))
    selector = BrainSelector(lambda: cfg)
    assert selector.kind == "scripted"
    assert isinstance(selector.new_brain(CTX), ScriptedBrain)
    assert default_breaker.failures == before


def test_realtime_while_the_breaker_lets_calls_through_then_keyless() -> None:
    cfg = Cfg(openai=OpenAISettings(api_key="sk-test", breaker_failures=2,
                                    breaker_window_s=60, breaker_cooldown_s=600))
    selector = BrainSelector(lambda: cfg)
    assert (default_breaker.failures, default_breaker.cooldown_s) == (2, 600)
    first, second = selector.new_brain(CTX), selector.new_brain(CTX)
    assert isinstance(first, RealtimeBrain) and isinstance(second, RealtimeBrain)
    assert first.registry is second.registry  # built once per [openai] section
    default_breaker.record_failure()
    default_breaker.record_failure()
    assert isinstance(selector.new_brain(CTX), ScriptedBrain)


def test_reload_reconfigures_the_breaker_and_rebuilds_the_tools() -> None:
    cfg = Cfg(openai=OpenAISettings(api_key="sk-test", breaker_failures=3))
    selector = BrainSelector(lambda: cfg)
    registry = selector.new_brain(CTX).registry  # type: ignore[attr-defined]
    assert "transfer_call" not in registry
    cfg.openai = OpenAISettings(api_key="sk-test", breaker_failures=4,
                                transfer_number="+14155550123")
    selector.configure()
    assert default_breaker.failures == 4
    assert "transfer_call" in selector.new_brain(CTX).registry  # type: ignore[attr-defined]


def test_the_fallback_is_the_keyless_brain_apologising() -> None:
    selector = BrainSelector(lambda: Cfg(openai=OpenAISettings(api_key="sk-test")))
    brain = selector.fallback_brain(CTX)
    assert isinstance(brain, ScriptedBrain) and brain.core.fallback
