"""Our own machine detection on a live outbound call (`telephony.dialer.amd` and the
observer's wiring): real eSpeak speech and a synthesized beep, frame by frame, as the
call's audio tap feeds them."""

from __future__ import annotations

import math
import struct
from pathlib import Path

from agents.brain import CallContext
from media.codecs import ulaw
from telephony.dialer.amd import OwnAmd
from tests.audio import frames, speech_ulaw
from tests.telephony.dialer.test_observer import SID, StandInCall, observer

GREETING = "Hi, you have reached Bay Dental. Please leave a message after the tone."


def beep(ms: int = 400, hz: float = 1000.0) -> bytes:
    n = ulaw.SAMPLE_RATE * ms // 1000
    pcm = struct.pack(f"<{n}h", *(int(9000 * math.sin(2 * math.pi * hz * i / 8000))
                                  for i in range(n)))
    return ulaw.encode(pcm)


def silence(ms: int) -> bytes:
    return ulaw.SILENT_FRAME * (ms // 20)


def feed(own: OwnAmd, audio: bytes) -> None:
    for frame in frames(audio, ulaw.FRAME_BYTES):
        own.frame(frame)


def test_armed_the_beep_says_speak_now_and_listening_stops() -> None:
    heard: list[str] = []
    own = OwnAmd(heard.append, armed=True)
    feed(own, silence(400) + speech_ulaw(GREETING) + silence(200) + beep())
    assert heard == []  # not before the tone has ended
    feed(own, silence(100))
    assert heard == ["machine_end_beep"]
    assert not own.listening  # spoken: the tap comes off


def test_unarmed_verdicts_wait_for_twilio_to_say_unknown() -> None:
    heard: list[str] = []
    own = OwnAmd(heard.append, armed=False)
    feed(own, silence(400) + speech_ulaw(GREETING) + beep() + silence(200))
    assert heard == [] and own.pending == "machine_end_beep"
    own.arm()
    assert heard == ["machine_end_beep"]
    own.arm()  # twice: nothing more
    assert heard == ["machine_end_beep"]


def test_he_is_not_available_right_now_is_a_person() -> None:
    """What receptionists say every day, as audio and as transcript: a person."""
    for line in ("He is not available right now.",
                 "He is not available right now, can I take a message?",
                 "Sorry, she is not available right now. Who is calling?"):
        heard: list[str] = []
        own = OwnAmd(heard.append, armed=True)
        feed(own, silence(300) + speech_ulaw(line))
        own.transcript(line)
        feed(own, silence(3000))
        assert heard and set(heard) == {"human"}, (line, heard)
        assert own.listening  # still listening, in case a beep comes after all


def test_listening_ends_after_the_first_seconds() -> None:
    own = OwnAmd(lambda _: None, armed=True, listen_ms=1000)
    feed(own, silence(980))
    assert own.listening
    feed(own, silence(40))
    assert not own.listening


async def test_the_observer_taps_the_call_and_lets_twilio_decide_first(tmp_path: Path) -> None:
    obs, db = await observer(tmp_path)
    call = StandInCall()
    call.audio_tap = None  # type: ignore[attr-defined]
    obs.call_started(call)  # type: ignore[arg-type]
    tap = call.audio_tap  # type: ignore[attr-defined]
    assert tap is not None and not obs.live[SID].own_amd.armed  # type: ignore[union-attr]
    for frame in frames(silence(200) + speech_ulaw("Hello?"), ulaw.FRAME_BYTES):
        tap(frame)
    assert obs.answered_by(SID, "human")
    assert call.audio_tap is None  # type: ignore[attr-defined]  # Twilio could tell
    assert obs.own_amd_verdicts == {}
    obs.call_ended(call)  # type: ignore[arg-type]
    await obs.drain()
    await db.close()


async def test_amd_unknown_hands_the_decision_to_ours(tmp_path: Path) -> None:
    obs, db = await observer(tmp_path)
    call = StandInCall()
    obs.call_started(call)  # type: ignore[arg-type]
    tap = call.audio_tap  # type: ignore[attr-defined]
    for frame in frames(silence(200) + speech_ulaw("Hello?") + silence(1500),
                        ulaw.FRAME_BYTES):
        tap(frame)
    assert obs.own_amd_verdicts == {}  # held: Twilio has not said
    assert obs.answered_by(SID, "unknown")
    assert obs.own_amd_verdicts == {"human": 1}
    assert obs.live[SID].answered_by == "human"
    obs.call_ended(call)  # type: ignore[arg-type]
    await obs.drain()
    assert (await db.get_dial("k")).outcome == "declined"
    await db.close()


async def test_a_livekit_call_is_armed_from_the_start(tmp_path: Path) -> None:
    obs, db = await observer(tmp_path)
    call = StandInCall()
    call.context = CallContext(call_sid=SID, from_number="+14155550100",
                               to_number="+14155552671", direction="outbound",
                               parameters={"DialKey": "k", "Via": "livekit"})
    obs.call_started(call)  # type: ignore[arg-type]
    assert obs.live[SID].own_amd.armed  # type: ignore[union-attr]
    obs.call_ended(call)  # type: ignore[arg-type]
    await obs.drain()
    await db.close()
