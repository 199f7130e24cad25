"""The call manager: observers given at construction hear every call; DTMF is the call's own."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agents.brain import Brain, BrainOutput, CallContext, Role
from media.dtmf import tones_ulaw
from media.engine import MediaEngine
from media.settings import MediaSettings, VadSettings
from media.vad import make_engine
from telephony.call import Call
from telephony.calls import CallManager, CallObserver


class _Leg:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.hung_up: list[str] = []

    def send_media(self, ulaw_frame: bytes) -> bool:
        self.frames.append(ulaw_frame)
        return True

    def send_checkpoint(self, item_id: str, ms: int) -> bool:
        return True

    def send_clear(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def hang_up(self, reason: str) -> None:
        self.hung_up.append(reason)


class _Brain(Brain):
    kind = "scripted"

    async def start(self, context: CallContext, output: BrainOutput) -> None:
        pass

    def push_audio(self, ulaw: bytes) -> None:
        pass

    def commit(self) -> None:
        pass

    def cancel(self) -> None:
        pass

    def truncate(self, item_id: str, audio_end_ms: int) -> None:
        pass

    async def close(self) -> None:
        pass


class _Recorder(CallObserver):
    def __init__(self, *, takes_transfers: bool = False, fails: bool = False) -> None:
        self.events: list[tuple[str, ...]] = []
        self.takes_transfers = takes_transfers
        self.fails = fails

    async def before_greeting(self, call: Call) -> None:
        self.events.append(("before_greeting", call.call_sid))
        if self.fails:
            raise RuntimeError("lookup broke")

    def call_started(self, call: Call) -> None:
        self.events.append(("started", call.call_sid))
        if self.fails:
            raise RuntimeError("observer broke")

    def call_ended(self, call: Call) -> None:
        self.events.append(("ended", call.end_reason))

    def transcript(self, call: Call, role: Role, text: str) -> None:
        self.events.append(("transcript", role, text))

    def caller_named(self, call: Call, name: str) -> None:
        self.events.append(("named", name))

    def transfer(self, call: Call, number: str) -> bool:
        self.events.append(("transfer", number))
        return self.takes_transfers


def _manager(*observers: CallObserver) -> CallManager:
    engine = MediaEngine(make_engine(VadSettings()), VadSettings(), MediaSettings())
    return CallManager(engine, lambda ctx: _Brain(), lambda ctx: _Brain(), 10,
                       observers=observers)


async def test_every_observer_hears_the_call_and_one_failing_does_not_silence_the_rest(
        caplog: pytest.LogCaptureFixture) -> None:
    broken, store = _Recorder(fails=True), _Recorder()
    calls = _manager(broken, store)
    call = calls.open(CallContext("CA1"), _Leg())
    await asyncio.sleep(0.01)  # the brain start (after the lookups) runs as a call task
    call.transcript("caller", "hello")
    call.caller_named("Maria")
    await calls.close(call, "caller hung up")
    expected = [("started", "CA1"), ("before_greeting", "CA1"), ("transcript", "caller", "hello"),
                ("named", "Maria"), ("ended", "caller hung up")]
    assert store.events == expected
    assert broken.events == expected
    assert call.context.caller_name == "Maria"
    assert "call observer failed" in caplog.text


async def test_a_transfer_goes_to_the_first_observer_that_takes_it(
        caplog: pytest.LogCaptureFixture) -> None:
    store, rest = _Recorder(), _Recorder(takes_transfers=True)
    calls = _manager(store, rest)
    call = calls.open(CallContext("CA1"), _Leg())
    call.transfer_call("+14155550123")
    assert ("transfer", "+14155550123") in rest.events
    lonely = _manager(_Recorder())
    with caplog.at_level(logging.WARNING):
        lonely.open(CallContext("CA2"), _Leg()).transfer_call("+14155550123")
    assert "nothing here can carry it out" in caplog.text
    await calls.close(call, "done")


async def test_dtmf_is_played_in_band_through_the_calls_own_playout(
        caplog: pytest.LogCaptureFixture) -> None:
    calls = _manager()
    call = calls.open(CallContext("CA1"), _Leg())
    assert call.media.playout.queued_ms == 0
    call.send_dtmf("1#")
    assert call.media.playout.queued_ms == len(tones_ulaw("1#")) // 8
    with caplog.at_level(logging.WARNING):
        call.send_dtmf("12x")
    assert "bad DTMF digits" in caplog.text
    assert call.media.playout.queued_ms == len(tones_ulaw("1#")) // 8
    await calls.close(call, "done")


async def test_recording_directory_is_read_per_call(tmp_path) -> None:  # type: ignore[no-untyped-def]
    directory: list[str | None] = [None]
    engine = MediaEngine(make_engine(VadSettings()), VadSettings(), MediaSettings())
    calls = CallManager(engine, lambda ctx: _Brain(), lambda ctx: _Brain(), 10,
                        recording_dir=lambda: directory[0])
    first = calls.open(CallContext("CA1"), _Leg())
    directory[0] = str(tmp_path)
    second = calls.open(CallContext("CA/2"), _Leg())
    assert first.recorder is None
    assert second.recorder is not None and second.recorder.path == str(tmp_path / "CA_2.wav")
    await calls.close(first, "done")
    await calls.close(second, "done")
