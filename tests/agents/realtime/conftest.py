"""Shared pieces of the Realtime brain tests: a recording BrainOutput, the fake service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from agents.brain import CallContext
from agents.realtime.brain import RealtimeBrain
from agents.realtime.breaker import CircuitBreaker
from agents.settings import OpenAISettings
from ops.dev.fake_realtime import FakeRealtimeRunner, Script, serve_fake_realtime
from tests.audio import frames, speech_ulaw
from tests.helpers import eventually as wait_until

CALL_SID = "CA" + "0123456789abcdef" * 2


@dataclass
class RecordingOutput:
    """A BrainOutput that keeps everything the brain tells the call."""

    audio: dict[str, bytearray] = field(default_factory=dict)
    audio_done: list[str] = field(default_factory=list)
    transcripts: list[tuple[str, str, str | None]] = field(default_factory=list)
    speech_started: int = 0
    drops: int = 0
    ended: list[str] = field(default_factory=list)
    transfers: list[str] = field(default_factory=list)
    dtmf: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def agent_audio(self, item_id: str, ulaw: bytes) -> None:
        self.audio.setdefault(item_id, bytearray()).extend(ulaw)

    def agent_audio_done(self, item_id: str) -> None:
        self.audio_done.append(item_id)

    def drop_agent_audio(self) -> None:
        self.drops += 1

    def transcript(self, role: str, text: str, item_id: str | None = None) -> None:
        self.transcripts.append((role, text, item_id))

    def caller_speech_started(self) -> None:
        self.speech_started += 1

    def end_call(self, reason: str) -> None:
        self.ended.append(reason)

    def transfer_call(self, number: str) -> None:
        self.transfers.append(number)

    def send_dtmf(self, digits: str) -> None:
        self.dtmf.append(digits)

    def brain_failed(self, error: str) -> None:
        self.failures.append(error)

    def caller_named(self, name: str) -> None:
        self.names.append(name)

    def said(self, role: str) -> list[str]:
        return [text for r, text, _ in self.transcripts if r == role]


async def eventually(predicate: Callable[[], object], limit_s: float = 10.0) -> None:
    """`tests.helpers.eventually` for these tests, whose conditions name themselves."""
    await wait_until(predicate, "the condition in the calling test", limit_s=limit_s,
                     interval_s=0.005)


async def say(brain: RealtimeBrain, text: str = "I would like to book a table") -> None:
    """Caller speech into the brain, then our VAD's end of turn."""
    for frame in frames(speech_ulaw(text), 160):
        brain.push_audio(frame)
        await asyncio.sleep(0)
    brain.commit()


def settings_for(runner: FakeRealtimeRunner, **overrides: object) -> OpenAISettings:
    return OpenAISettings(base_url=runner.websocket_base_url, **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def fake_factory() -> AsyncIterator[Callable[..., object]]:
    runners: list[FakeRealtimeRunner] = []

    async def start(script: Script | None = None, port: int = 0) -> FakeRealtimeRunner:
        runner = await serve_fake_realtime(port, script or Script(speed=0))
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def brains() -> AsyncIterator[Callable[..., object]]:
    """Start brains against a fake; all are closed at the end of the test."""
    started: list[RealtimeBrain] = []

    async def start(
        settings: OpenAISettings, output: RecordingOutput | None = None, **kwargs: object
    ) -> tuple[RealtimeBrain, RecordingOutput]:
        kwargs.setdefault("breaker", CircuitBreaker())
        brain = RealtimeBrain(settings, **kwargs)  # type: ignore[arg-type]
        out = output or RecordingOutput()
        started.append(brain)
        await brain.start(CallContext(call_sid=CALL_SID), out)
        return brain, out

    yield start
    for brain in started:
        await brain.close()
