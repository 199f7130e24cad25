"""The keyless brain with real eSpeak prompts, a recording fake call and a fake clock."""

from __future__ import annotations

import os
import wave
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.brain import CallContext
from agents.scripted import (
    CHUNK_BYTES,
    MESSAGE_TONE,
    SAVE_FAILED_TEXT,
    EndCall,
    SaveMessage,
    ScriptedBrain,
    ScriptedCore,
    Speak,
    State,
    StopSpeaking,
    prerender,
    write_message,
)
from agents.settings import ScriptedSettings
from agents.tts import TtsError, synthesize_ulaw
from media.codecs import ulaw
from tests.audio import frames, speech_ulaw
from tests.fakes.clock import ManualClock

SPEECH = "I am calling about the roof repair quote, please call me back tomorrow."


class FakeCall:
    """A BrainOutput that records what the brain asked for, in order."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.on_audio: Callable[[str, bytes], None] | None = None

    def agent_audio(self, item_id: str, data: bytes) -> None:
        self.events.append(("audio", item_id, data))
        if self.on_audio is not None:
            self.on_audio(item_id, data)

    def agent_audio_done(self, item_id: str) -> None:
        self.events.append(("done", item_id))

    def transcript(self, role: str, text: str, item_id: str | None = None) -> None:
        self.events.append(("transcript", role, text, item_id))

    def caller_speech_started(self) -> None:
        self.events.append(("speech_started",))

    def end_call(self, reason: str) -> None:
        self.events.append(("end", reason))

    def transfer_call(self, number: str) -> None:
        self.events.append(("transfer", number))

    def send_dtmf(self, digits: str) -> None:
        self.events.append(("send_dtmf", digits))

    def brain_failed(self, error: str) -> None:
        self.events.append(("failed", error))

    # -- views -----------------------------------------------------------
    def audio(self, item_id: str) -> bytes:
        return b"".join(e[2] for e in self.events if e[0] == "audio" and e[1] == item_id)

    def chunks(self, item_id: str) -> list[bytes]:
        return [e[2] for e in self.events if e[0] == "audio" and e[1] == item_id]

    def transcripts(self) -> list[tuple[str, str | None]]:
        return [(e[2], e[3]) for e in self.events if e[0] == "transcript"]

    def items(self) -> list[str]:
        return [e[3] for e in self.events if e[0] == "transcript"]


def make_settings(tmp_path: Path, **overrides) -> ScriptedSettings:
    return msgspec.structs.replace(
        ScriptedSettings(), messages_directory=str(tmp_path / "messages"), **overrides
    )


async def started(
    tmp_path: Path, *, name: str | None = None, fallback: bool = False, **overrides
) -> tuple[ScriptedBrain, FakeCall, ManualClock, ScriptedSettings]:
    s = make_settings(tmp_path, **overrides)
    clock = ManualClock(1000.0)
    brain = ScriptedBrain(s, fallback=fallback, now=clock)
    call = FakeCall()
    await brain.start(CallContext(call_sid="CA123", caller_name=name), call)
    await brain.wait_idle()
    return brain, call, clock, s


def exists(path: str) -> bool:
    return os.path.exists(path)


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def read(path: Path) -> bytes:
    return path.read_bytes()


def tts(text: str, s: ScriptedSettings) -> bytes:
    return synthesize_ulaw(text, s.voice, s.rate)


async def test_greeting_streams_in_chunks_then_done_and_transcript(tmp_path: Path) -> None:
    brain, call, _, s = await started(tmp_path)
    expected = tts(s.greeting, s)
    chunks = call.chunks("scripted-1")
    assert b"".join(chunks) == expected
    assert len(chunks) == -(-len(expected) // CHUNK_BYTES) > 1
    assert all(len(c) == CHUNK_BYTES for c in chunks[:-1])
    assert call.transcripts() == [(s.greeting, "scripted-1")]
    assert call.events[-1] == ("done", "scripted-1")
    assert brain.state is State.LISTENING
    await brain.close()


async def test_returning_caller_is_greeted_by_name(tmp_path: Path) -> None:
    _, call, _, s = await started(tmp_path, name="  Ana   Lopez ")
    text = f"Welcome back, Ana Lopez. {s.greeting}"
    assert call.transcripts() == [(text, "scripted-1")]
    assert call.audio("scripted-1") == tts(text, s)


async def test_fallback_speaks_the_apology_not_the_greeting(tmp_path: Path) -> None:
    _, call, _, s = await started(tmp_path, name="Ana", fallback=True)
    assert call.transcripts() == [(s.apology, "scripted-1")]
    assert call.audio("scripted-1") == tts(s.apology, s)


async def test_each_turn_end_gets_the_reply_with_a_new_item(tmp_path: Path) -> None:
    brain, call, _, s = await started(tmp_path)
    brain.commit()
    await brain.wait_idle()
    brain.commit()
    await brain.wait_idle()
    assert call.transcripts()[1:] == [(s.reply, "scripted-2"), (s.reply, "scripted-3")]
    assert call.audio("scripted-2") == tts(s.reply, s)
    assert ("done", "scripted-3") in call.events


async def test_cancel_mid_item_stops_its_audio(tmp_path: Path) -> None:
    brain, call, _, s = await started(tmp_path)
    call.on_audio = lambda item, _: brain.cancel()  # caller barges in at once
    brain.commit()
    await brain.wait_idle()
    assert call.chunks("scripted-2") == [tts(s.reply, s)[:CHUNK_BYTES]]
    assert call.events[-1] == ("done", "scripted-2")
    assert brain.state is State.LISTENING
    call.on_audio = None
    brain.commit()  # the next turn is answered in full
    await brain.wait_idle()
    assert call.audio("scripted-3") == tts(s.reply, s)


async def test_truncate_records_what_was_heard_and_stops_the_item(tmp_path: Path) -> None:
    brain, call, _, _ = await started(tmp_path)
    call.on_audio = lambda item, _: brain.truncate(item, 120)
    brain.commit()
    await brain.wait_idle()
    assert len(call.chunks("scripted-2")) == 1
    assert brain.heard_ms == {"scripted-2": 120}
    # Unknown items, negative lengths and a cancel with nothing playing never raise.
    brain.truncate("item_from_another_brain", 500)
    brain.truncate("scripted-99", 10)
    brain.truncate("scripted-1", -5)
    brain.cancel()
    assert brain.heard_ms == {"scripted-2": 120, "scripted-1": 0}


async def test_cancel_before_production_produces_nothing(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    brain = ScriptedBrain(s)
    call = FakeCall()
    await brain.start(CallContext(call_sid="CA1"), call)
    brain.cancel()  # same tick as the start: the greeting never begins
    await brain.wait_idle()
    assert call.events == []
    await brain.close()


async def test_message_is_recorded_saved_and_the_call_ends(tmp_path: Path) -> None:
    brain, call, clock, s = await started(tmp_path)
    brain.dtmf("1")
    await brain.wait_idle()
    assert call.transcripts()[-1] == (s.message_prompt, "scripted-2")
    prompt_audio = call.audio("scripted-2")
    assert prompt_audio == tts(s.message_prompt, s) + MESSAGE_TONE
    assert brain.state is State.MESSAGE_PROMPT

    speech = speech_ulaw(SPEECH)
    # While the prompt is still playing, caller audio is not the message.
    brain.push_audio(speech[:1600])
    assert brain.core.message_bytes == 0
    clock.now += len(prompt_audio) / 8000
    for frame in frames(speech, 160):
        brain.push_audio(frame)
        brain.commit()  # pauses in the message are not turn ends
    assert brain.state is State.RECORDING_MESSAGE
    brain.dtmf("#")
    await brain.wait_idle()

    pushed = len(speech) // 160 * 160
    assert len(brain.message_paths) == 1
    path = brain.message_paths[0]
    assert os.path.basename(path) == "CA123-1.wav"
    with wave.open(path, "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        assert wav.getnframes() == pushed
        assert wav.readframes(pushed) == ulaw.decode(speech[:pushed])
    assert [t for t, _ in call.transcripts()] == [s.greeting, s.message_prompt, s.message_saved]
    saved_item = call.transcripts()[-1][1]
    assert call.audio(saved_item) == tts(s.message_saved, s)
    assert call.events[-2:] == [("done", saved_item), ("end", "message saved")]
    assert brain.state is State.DONE
    brain.commit()
    brain.dtmf("1")
    await brain.wait_idle()
    assert call.events[-1] == ("end", "message saved")
    await brain.close()


async def test_message_stops_at_max_length(tmp_path: Path) -> None:
    brain, call, clock, _ = await started(tmp_path, max_message_s=1)
    brain.dtmf("1")
    await brain.wait_idle()
    clock.now += 60
    speech = speech_ulaw(SPEECH)
    assert len(speech) > 8000
    for frame in frames(speech, 160):
        brain.push_audio(frame)
    await brain.wait_idle()
    with wave.open(brain.message_paths[0], "rb") as wav:
        assert wav.readframes(wav.getnframes()) == ulaw.decode(speech[:8000])
    assert call.events[-1] == ("end", "message saved")


async def test_talking_over_the_prompt_starts_the_message(tmp_path: Path) -> None:
    brain, _, _, _ = await started(tmp_path)
    brain.dtmf("1")
    await brain.wait_idle()
    brain.truncate("scripted-2", 800)  # barge-in; the clock has not moved
    assert brain.state is State.RECORDING_MESSAGE
    speech = speech_ulaw("Hi, it is Sam.")
    brain.push_audio(speech)
    brain.dtmf("#")
    await brain.wait_idle()
    with wave.open(brain.message_paths[0], "rb") as wav:
        assert wav.getnframes() == len(speech)


async def test_close_while_recording_saves_what_was_said(tmp_path: Path) -> None:
    brain, call, clock, _ = await started(tmp_path)
    brain.dtmf("1")
    await brain.wait_idle()
    clock.now += 60
    speech = speech_ulaw("My number is five five five, one two three four.")
    brain.push_audio(speech)
    await brain.close()  # caller hung up mid-message
    await brain.close()
    assert len(brain.message_paths) == 1
    with wave.open(brain.message_paths[0], "rb") as wav:
        assert wav.readframes(wav.getnframes()) == ulaw.decode(speech)
    assert not any(e[0] == "end" for e in call.events)
    brain.push_audio(speech)
    brain.dtmf("#")
    brain.commit()
    assert brain.state is State.DONE


async def test_close_mid_prompt_or_idle_saves_nothing(tmp_path: Path) -> None:
    brain, _, _, s = await started(tmp_path)
    brain.dtmf("1")
    brain.push_audio(speech_ulaw())  # still the prompt: not a message
    await brain.close()
    assert brain.message_paths == []
    assert not exists(s.messages_directory)


async def test_a_message_never_overwrites_another(tmp_path: Path) -> None:
    brain, _, clock, s = await started(tmp_path)
    earlier = Path(s.messages_directory, "CA123-1.wav")
    write(earlier, b"earlier")
    brain.dtmf("1")
    await brain.wait_idle()
    clock.now += 60
    brain.push_audio(speech_ulaw("Hello."))
    brain.dtmf("#")
    await brain.wait_idle()
    assert os.path.basename(brain.message_paths[0]) == "CA123-2.wav"
    assert read(earlier) == b"earlier"


def test_call_sid_cannot_escape_the_messages_directory(tmp_path: Path) -> None:
    path = write_message(str(tmp_path / "m"), "../../etc/x", speech_ulaw("Hi."))
    assert os.path.dirname(path) == str(tmp_path / "m")
    assert os.path.basename(path) == "______etc_x-1.wav"


async def test_unwritable_messages_directory_is_told_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    s = msgspec.structs.replace(ScriptedSettings(), messages_directory=str(blocker / "m"))
    clock = ManualClock(1000.0)
    brain = ScriptedBrain(s, now=clock)
    call = FakeCall()
    await brain.start(CallContext(call_sid="CA9"), call)
    brain.dtmf("1")
    await brain.wait_idle()
    clock.now += 60
    brain.push_audio(speech_ulaw("Hello."))
    brain.dtmf("#")
    await brain.wait_idle()
    assert brain.message_paths == []
    assert brain.errors == 1
    assert call.transcripts()[-1][0] == SAVE_FAILED_TEXT
    assert call.events[-1] == ("end", "message not saved")
    await brain.close()


async def test_hash_before_any_message_goes_back_to_the_menu(tmp_path: Path) -> None:
    brain, call, _, s = await started(tmp_path)
    brain.dtmf("1")
    brain.dtmf("#")
    await brain.wait_idle()
    assert call.transcripts()[-1] == (s.reply, "scripted-3")
    assert brain.message_paths == []
    assert brain.state is State.LISTENING


async def test_repeat_says_the_last_prompt_and_unknown_digits_get_the_reply(
    tmp_path: Path,
) -> None:
    brain, call, _, s = await started(tmp_path, menu={"0": "repeat", "9": "transfer:+15551230000"})
    brain.dtmf("0")
    await brain.wait_idle()
    assert call.transcripts()[-1] == (s.greeting, "scripted-2")
    brain.dtmf("7")
    await brain.wait_idle()
    assert call.transcripts()[-1] == (s.reply, "scripted-3")
    brain.dtmf("0")
    await brain.wait_idle()
    assert call.transcripts()[-1] == (s.reply, "scripted-4")
    brain.dtmf("9")
    await brain.wait_idle()
    assert call.events[-1] == ("transfer", "+15551230000")


async def test_digit_during_greeting_stops_it(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    brain = ScriptedBrain(s)
    call = FakeCall()
    pressed = []

    def press_once(item: str, _: bytes) -> None:
        if not pressed:
            pressed.append(item)
            brain.dtmf("1")

    call.on_audio = press_once
    await brain.start(CallContext(call_sid="CA1"), call)
    await brain.wait_idle()
    assert len(call.chunks("scripted-1")) == 1
    assert call.audio("scripted-2") == tts(s.message_prompt, s) + MESSAGE_TONE
    await brain.close()


async def test_start_twice_is_refused(tmp_path: Path) -> None:
    brain, call, _, _ = await started(tmp_path)
    with pytest.raises(RuntimeError):
        await brain.start(CallContext(call_sid="CA2"), call)
    await brain.close()


async def test_prerender_fills_the_cache_and_rejects_a_bad_voice(tmp_path: Path) -> None:
    s = make_settings(tmp_path, greeting="Prerender check greeting, unique text one.")
    await prerender(s)
    hits = synthesize_ulaw.cache_info().hits
    synthesize_ulaw(s.greeting, s.voice, s.rate)
    assert synthesize_ulaw.cache_info().hits == hits + 1
    with pytest.raises(TtsError):
        await prerender(make_settings(tmp_path, voice="no-such-voice-xx"))


async def test_tts_failure_is_counted_and_the_call_goes_on(tmp_path: Path) -> None:
    s = make_settings(tmp_path, voice="no-such-voice-xy")
    brain = ScriptedBrain(s)
    call = FakeCall()
    await brain.start(CallContext(call_sid="CA1"), call)
    await brain.wait_idle()
    brain.commit()
    await brain.wait_idle()
    assert brain.errors == 2
    assert call.events == []
    await brain.close()


# -- the core, fuzzed ---------------------------------------------------------

_events = st.lists(
    st.one_of(
        st.tuples(st.just("audio"), st.binary(min_size=0, max_size=700)),
        st.tuples(st.just("commit"), st.none()),
        st.tuples(st.just("cancel"), st.none()),
        st.tuples(
            st.just("truncate"),
            st.tuples(st.sampled_from(["scripted-1", "scripted-3", "x", ""]), st.integers()),
        ),
        st.tuples(st.just("digit"), st.sampled_from(list("0123456789#*"))),
        st.tuples(st.just("produced"), st.integers(0, 10_000)),
        st.tuples(st.just("saved"), st.booleans()),
        st.tuples(st.just("clock"), st.floats(0, 5)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(events=_events, fallback=st.booleans())
def test_core_never_breaks_its_promises(events, fallback) -> None:
    clock = ManualClock(1000.0)
    s = msgspec.structs.replace(ScriptedSettings(), max_message_s=1)
    core = ScriptedCore(s, fallback=fallback, now=clock)
    actions = list(core.begin("Ana"))
    saves = 0
    for kind, arg in events:
        if kind == "audio":
            out = core.audio(arg)
        elif kind == "commit":
            out = core.turn_ended()
        elif kind == "cancel":
            out = core.interrupted()
        elif kind == "truncate":
            out = core.interrupted(*arg)
        elif kind == "digit":
            out = core.digit(arg)
        elif kind == "produced":
            core.produced(f"scripted-{core._items}", arg)
            out = ()
        elif kind == "saved":
            out = core.saved(arg)
        else:
            clock.now += arg
            out = ()
        assert core.message_bytes <= 8000
        for action in out:
            assert isinstance(action, Speak | StopSpeaking | SaveMessage | EndCall)
            if isinstance(action, SaveMessage):
                saves += 1
                assert 0 < len(action.ulaw) <= 8000
                assert core.state is State.SAVING
        actions += out
        if core.state is State.DONE:
            assert all(not isinstance(a, Speak) for a in core.turn_ended() + core.digit("1"))
    ids = [a.item_id for a in actions if isinstance(a, Speak)]
    assert len(ids) == len(set(ids))
    assert all(v >= 0 for v in core.heard_ms.values())
    leftover = core.close()
    assert core.state is State.DONE
    assert leftover is None or 0 < len(leftover.ulaw) <= 8000
    assert saves <= 1
