"""Machine or human: real eSpeak speech, beeps and transcripts, both sides of the table."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.voicemail import AmdEvent, MachineDetector, score_text, twilio_answered_by
from media.codecs import ulaw
from tests.audio import frames, noise_pcm, silence_pcm, speech_pcm

FRAME = 320
ASR_LAG_MS = 300  # a final transcript arrives this long after the words end


def beep(hz: float = 1000, ms: int = 500, db: float = -15) -> bytes:
    t = np.arange(8 * ms) / 8000.0
    return (32767 * 10 ** (db / 20) * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def mix_noise(pcm: bytes, amplitude: int = 150) -> bytes:
    x = np.frombuffer(pcm, "<i2").astype(np.int32)
    n = np.frombuffer(noise_pcm(len(pcm) // 16 + 1, amplitude=amplitude), "<i2")[: len(x)]
    return np.clip(x + n, -32768, 32767).astype("<i2").tobytes()


Step = tuple[str, object]


def run(steps: list[Step]) -> tuple[MachineDetector, list[AmdEvent]]:
    """Plays the steps into a detector; a 'say' step's text is transcribed after it ends."""
    det = MachineDetector()
    events: list[AmdEvent] = []
    pending: list[tuple[float, str]] = []
    audio = bytearray()
    marks: list[tuple[int, str]] = []
    for kind, arg in steps:
        if kind == "say":
            audio += speech_pcm(str(arg))
            marks.append((len(audio) // 16 + ASR_LAG_MS, str(arg)))
        elif kind == "silence":
            audio += silence_pcm(int(arg))  # type: ignore[call-overload]
        elif kind == "beep":
            audio += beep(float(arg))  # type: ignore[arg-type]
    pending = [(float(at), text) for at, text in marks]
    for f in frames(mix_noise(bytes(audio)), FRAME):
        events += det.feed_audio(f)
        while pending and pending[0][0] <= det.t_ms:
            events += det.feed_transcript(pending.pop(0)[1])
    for _, text in pending:
        events += det.feed_transcript(text)
    return det, events


MACHINES: list[tuple[str, list[Step], str]] = [
    ("personal greeting and a beep", [
        ("silence", 300),
        ("say", "Hi, you've reached Dana. I can't come to the phone right now. "
                "Please leave a message after the beep."),
        ("silence", 600), ("beep", 1000), ("silence", 2500)], "beep"),
    ("carrier mailbox, no beep", [
        ("silence", 200),
        ("say", "The person you are trying to reach is not available. "
                "At the tone, please record your message."),
        ("silence", 3000)], "greeting_end"),
    ("business after hours greeting and a beep", [
        ("say", "Thank you for calling Oak Street Dental. Our office is currently closed. "
                "Please leave your name and number and we will call you back as soon as "
                "possible."),
        ("silence", 400), ("beep", 850), ("silence", 2000)], "beep"),
    ("a beep and nothing else", [("silence", 800), ("beep", 1400), ("silence", 1500)], "beep"),
    ("forwarded to voicemail", [
        ("say", "Your call has been forwarded to an automated voice messaging system."),
        ("say", "Five five five, one two three, four five six seven, is not available."),
        ("silence", 500), ("beep", 440), ("silence", 1500)], "beep"),
    ("short hello then the recording goes on", [
        ("say", "Hi, it's Sam."), ("silence", 1200),
        ("say", "Leave me a message after the tone and I'll get back to you."),
        ("silence", 300), ("beep", 1200), ("silence", 1500)], "beep"),
]

HUMANS: list[tuple[str, list[Step]]] = [
    ("hello then waits", [("silence", 400), ("say", "Hello?"), ("silence", 3000)]),
    ("hello twice", [("say", "Hello?"), ("silence", 1500), ("say", "Hello? Anyone there?"),
                     ("silence", 2500)]),
    ("not available, takes a message", [
        ("say", "Hello, he is not available right now. Can I take a message?"),
        ("silence", 3000)]),
    ("receptionist with a long greeting", [
        ("say", "Thank you for calling Smith and Sons plumbing, this is Bob speaking, "
                "how can I help you today?"),
        ("silence", 3000)]),
    ("yeah", [("say", "Yeah?"), ("silence", 3000)]),
    ("who is this", [("say", "Who is this?"), ("silence", 3000)]),
    ("you have reached, how can I help", [
        ("say", "You've reached Mike's garage, how may I help you?"), ("silence", 3000)]),
    ("talks on without a question", [
        ("say", "Yeah, this is John, I am driving right now, so you will have to make it "
                "quick, I have got about two minutes."), ("silence", 3000)]),
]


@pytest.mark.parametrize(("name", "steps", "speak_reason"), MACHINES, ids=[m[0] for m in MACHINES])
def test_machines_and_when_to_speak(name: str, steps: list[Step], speak_reason: str) -> None:
    det, events = run(steps)
    assert det.verdict == "machine", events
    speaks = [e for e in events if e.kind == "speak"]
    assert len(speaks) == 1 and speaks[0].reason == speak_reason, events
    if speak_reason == "beep":
        # After the beep has ended, and not long after (the message must be recorded).
        beep_index = [k for k, _ in steps].index("beep")
        before = sum(len(speech_pcm(str(a))) // 16 if k == "say" else
                     (int(a) if k == "silence" else 500)  # type: ignore[call-overload]
                     for k, a in steps[:beep_index])
        assert before + 500 <= speaks[0].at_ms <= before + 600


@pytest.mark.parametrize(("name", "steps"), HUMANS, ids=[h[0] for h in HUMANS])
def test_humans_are_never_machines(name: str, steps: list[Step]) -> None:
    det, events = run(steps)
    assert det.verdict == "human", events
    assert not any(e.kind == "speak" for e in events), events
    assert events[-1].kind == "human"


@pytest.mark.parametrize(("text", "machine"), [
    ("please leave a message after the tone", True),
    ("you have reached the voicemail of john smith", True),
    ("the mailbox is full and cannot accept any messages", True),
    ("record your message, when you have finished recording hang up", True),
    ("he is not available right now", False),
    ("hello? hello?", False),
    ("sorry she is not available, can I take a message?", False),
    ("you have reached Mike's garage, how can I help?", False),
    ("who is calling?", False),
])
def test_phrase_scores(text: str, machine: bool) -> None:
    m, h = score_text(text)
    assert (m - h >= 3) is machine, (m, h)


def test_transcripts_alone_decide_when_the_audio_has_no_pause() -> None:
    det = MachineDetector()
    assert det.feed_transcript("he is not available right now") == ()
    assert det.verdict is None
    [ev] = det.feed_transcript("please leave a message after the beep")
    assert (ev.kind, ev.reason) == ("machine", "phrases")


def test_human_flips_to_machine_only_on_strong_evidence() -> None:
    det = MachineDetector()
    det.feed_transcript("hello?")
    assert det.verdict == "human"
    assert det.feed_transcript("you've reached us") == ()
    assert det.verdict == "human"
    det.feed_transcript("please leave a message after the beep, your call is in our mailbox")
    assert det.verdict == "machine"


def test_bad_input_does_not_crash() -> None:
    det = MachineDetector()
    for chunk in (b"", b"\x01", b"\xff" * 333):
        assert isinstance(det.feed_audio(chunk), tuple)
    assert det.feed_transcript("") == () and det.feed_transcript(None) == ()  # type: ignore[arg-type]
    assert det.feed_transcript("x" * 100_000) == ()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=80), st.binary(max_size=700)), max_size=30))
def test_any_sequence_gives_at_most_one_speak_and_consistent_verdicts(items: list) -> None:
    det = MachineDetector()
    events: list[AmdEvent] = []
    for item in items:
        events += det.feed_transcript(item) if isinstance(item, str) else det.feed_audio(item)
    assert sum(e.kind == "speak" for e in events) <= 1
    verdicts = [e for e in events if e.kind != "speak"]
    assert len(verdicts) <= 3
    if verdicts:
        assert det.verdict == verdicts[-1].kind


def test_mu_law_frames_and_the_carrier_vocabulary() -> None:
    """The leg's own μ-law frames work, and the events read as Twilio's AnsweredBy."""
    det = MachineDetector()
    pcm = mix_noise(speech_pcm("You have reached Dana, please leave a message after the tone.")
                    + silence_pcm(300) + beep(1000) + silence_pcm(800))
    events = [e for f in frames(ulaw.encode(pcm), 160) for e in det.feed_ulaw(f)]
    assert [twilio_answered_by(e) for e in events if e.kind == "speak"] == ["machine_end_beep"]
    assert twilio_answered_by(AmdEvent("human", "short_turn", 10)) == "human"
    assert twilio_answered_by(AmdEvent("machine", "phrases", 10)) is None
    assert twilio_answered_by(AmdEvent("speak", "greeting_end", 10)) == "machine_end_silence"


def test_a_long_greeting_without_any_transcript_is_still_a_machine() -> None:
    """ASR gave nothing: the shape alone decides, and the message starts after it."""
    det = MachineDetector()
    pcm = mix_noise(speech_pcm("Hi, you have reached the Lopez family, we cannot come to the "
                               "phone right now, please leave us a message.")
                    + silence_pcm(2500))
    events = [e for f in frames(pcm, FRAME) for e in det.feed_audio(f)]
    assert [(e.kind, e.reason) for e in events] == [("machine", "long_greeting"),
                                                   ("speak", "greeting_end")]
