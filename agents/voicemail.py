"""Machine or human, from the callee's first seconds: our own answering-machine detection.

LiveKit SIP has no AMD and Twilio's says `unknown` on a share of calls, yet the agent must
know within a few seconds whether to talk to a person or leave a message after the beep.
Three kinds of evidence, each cheap and explainable:

- the beep (`media.tones`): only recorders beep, so it is decisive, and its end is the
  moment to start the message;
- the shape of the first turn: a person says "Hello?" and waits for us (a short turn,
  then a pause); a recorded greeting runs on for more than `long_greeting_ms` before any
  pause long enough for us to answer;
- the transcript: phrases only recordings say ("leave a message after the tone", "you
  have reached", "mailbox"), weighted in voicemail.toml, minus human cues (a question to
  us, an offer to take the message). "He is not available right now" alone stays below
  the threshold on purpose: receptionists say it every day.

Asymmetry by design: calling a person a machine is the costly mistake (we would talk at
them as at a recorder, then hang up), so a machine verdict from the turn shape or from
phrases is only acted upon once the greeting has ended, and a human cue heard before
then turns it back to human; so does a long first turn whose transcript holds no
recorder phrase at all. A human verdict is turned into machine only by a beep or by
strong phrases (twice the threshold).

Sans-I/O: PCM16 frames (with the call's VAD decision, or an energy gate when none) and
final transcripts in, `AmdEvent`s out; time is the audio fed, so tests are exact.
"""

from __future__ import annotations

import logging
import math
import re
import tomllib
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

import numpy as np

from media.codecs import ulaw
from media.tones import SAMPLE_RATE, ToneDetector

log = logging.getLogger(__name__)

Kind = Literal["human", "machine", "speak"]
Verdict = Literal["human", "machine"]
_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`´]")
_NON_WORD = re.compile(r"[^a-z0-9]+")
_NOTHING: tuple[AmdEvent, ...] = ()
QUESTION_WEIGHT = 2
MAX_TRANSCRIPT_CHARS = 2000


@dataclass(frozen=True, slots=True)
class AmdEvent:
    """`human`/`machine`: a verdict (may be revised once, see the module docstring);
    `speak`: start the voicemail message now. `at_ms` is audio time since answer."""

    kind: Kind
    reason: str
    at_ms: int


STATS: Counter[str] = Counter()
# Our events in the carrier's vocabulary, so the dialer's existing AMD handling (the
# voicemail drop on `machine_end_*`) acts on them unchanged.
_ANSWERED_BY = {("speak", "beep"): "machine_end_beep",
                ("speak", "greeting_end"): "machine_end_silence"}


def twilio_answered_by(event: AmdEvent) -> str | None:
    """Twilio's `AnsweredBy` value for an event that calls for action, else None.

    Only `speak` maps to a machine answer (that is when the message must start); a
    `machine` verdict alone waits for the greeting to end. `human` maps to "human".
    """
    if event.kind == "human":
        return "human"
    return _ANSWERED_BY.get((event.kind, event.reason))


@dataclass(frozen=True)
class _Phrases:
    machine: tuple[tuple[int, re.Pattern[str]], ...]
    human: tuple[re.Pattern[str], ...]
    human_weight: int
    threshold: int


def normalise(text: str) -> str:
    folded = _APOSTROPHES.sub("", unicodedata.normalize("NFKC", text).lower())
    return " ".join(_NON_WORD.sub(" ", folded).split())


@cache
def _phrases() -> _Phrases:
    raw = resources.files("agents").joinpath("voicemail.toml").read_text(encoding="utf-8")
    data = tomllib.loads(raw)
    try:
        machine = tuple((int(group["weight"]), re.compile(p))
                        for group in data["machine"]["phrase"] for p in group["patterns"])
        human = tuple(re.compile(p) for p in data["human"]["patterns"])
    except re.error as exc:
        raise ValueError(f"voicemail.toml: bad pattern: {exc}") from exc
    return _Phrases(machine=machine, human=human, human_weight=int(data["human"]["weight"]),
                    threshold=int(data["machine"]["threshold"]))


def score_text(text: str) -> tuple[int, int]:
    """(machine score, human score) of one transcript."""
    rules = _phrases()
    text = text[:MAX_TRANSCRIPT_CHARS]
    norm = normalise(text)
    machine = sum(w for w, p in rules.machine if p.search(norm))
    human = sum(rules.human_weight for p in rules.human if p.search(norm))
    if "?" in text:
        human += QUESTION_WEIGHT
    return machine, human


class MachineDetector:
    """One call's detector (see the module docstring for the rules)."""

    def __init__(self, *, long_greeting_ms: int = 3500, pause_ms: int = 900,
                 short_turn_ms: int = 2000, end_silence_ms: int = 1500,
                 speech_db: float = -45.0, tones: ToneDetector | None = None) -> None:
        self.long_greeting_ms = long_greeting_ms
        self.pause_ms = pause_ms
        self.short_turn_ms = short_turn_ms
        self.end_silence_ms = end_silence_ms
        self.speech_db = speech_db
        self._tones = tones or ToneDetector()
        self.t_ms = 0.0
        self.verdict: Verdict | None = None
        self.reason: str | None = None
        self.spoken = False
        self._run_start: float | None = None
        self._last_speech: float | None = None
        self._first_turn_done = False
        self.machine_score = 0
        self.human_score = 0
        self._texts = 0

    # -- inputs ---------------------------------------------------------------------

    def feed_audio(self, pcm: bytes, is_speech: bool | None = None) -> tuple[AmdEvent, ...]:
        """One frame of the callee's audio (PCM16 8 kHz) and the VAD's decision for it."""
        start = self.t_ms
        self.t_ms += 1000.0 * (len(pcm) // 2) / SAMPLE_RATE
        beep = self._tones.feed(pcm)
        if beep is not None:
            return self._beep(beep.end_ms)
        if self._tones.in_tone:
            return _NOTHING  # a tone is not speech, and nobody answers during it
        if is_speech is None:
            is_speech = self._loud(pcm)
        if is_speech:
            if self._run_start is None:
                self._run_start = start
            self._last_speech = self.t_ms
            if (not self._first_turn_done and self.verdict is None
                    and self.t_ms - self._run_start > self.long_greeting_ms):
                return self._decide("machine", "long_greeting")
            return _NOTHING
        if self._last_speech is None:
            return _NOTHING
        silent = self.t_ms - self._last_speech
        out: tuple[AmdEvent, ...] = _NOTHING
        if silent >= self.pause_ms and not self._first_turn_done and self._run_start is not None:
            self._first_turn_done = True
            turn = self._last_speech - self._run_start
            if self.verdict is None and turn <= self.short_turn_ms and \
                    self.machine_score - self.human_score < _phrases().threshold:
                out = self._decide("human", "short_turn")
        if silent >= self.pause_ms:
            self._run_start = None
        if (self.verdict == "machine" and not self.spoken
                and self.t_ms - self._last_speech >= self.end_silence_ms):
            if self.reason == "long_greeting" and self._texts and self.machine_score <= 0:
                # A long first turn whose words hold no recorder phrase at all: a person
                # who talks a lot, not a greeting (those name the tone, the message, the
                # mailbox or who was reached). Without any transcript the shape decides.
                out += self._decide("human", "no_recorder_phrase")
            else:
                out += self._speak("greeting_end", self.t_ms)
        return out

    def feed_ulaw(self, frame: bytes, is_speech: bool | None = None) -> tuple[AmdEvent, ...]:
        """A frame as the phone leg carries it (8 kHz μ-law)."""
        return self.feed_audio(ulaw.decode(frame), is_speech)

    def feed_transcript(self, text: str) -> tuple[AmdEvent, ...]:
        """A final transcript of the callee (stamped with the audio time it arrived at)."""
        if not isinstance(text, str) or not text.strip():
            return _NOTHING
        self._texts += 1
        machine, human = score_text(text)
        self.machine_score += machine
        self.human_score += human
        threshold = _phrases().threshold
        net = self.machine_score - self.human_score
        if self.verdict is None:
            if net >= threshold:
                return self._decide("machine", "phrases")
            if self.human_score >= threshold and machine < threshold:
                return self._decide("human", "human_cue")
        elif self.verdict == "human" and net >= 2 * threshold:
            return self._decide("machine", "phrases")
        elif self.verdict == "machine" and not self.spoken and self.reason != "beep" \
                and human >= threshold and machine < threshold:
            return self._decide("human", "human_cue")
        return _NOTHING

    # -- decisions --------------------------------------------------------------------

    def _loud(self, pcm: bytes) -> bool:
        x = np.frombuffer(pcm[: len(pcm) & ~1], dtype="<i2").astype(np.float32)
        if not len(x):
            return False
        energy = float(np.dot(x, x)) / len(x)
        level = 10.0 * math.log10(max(energy, 1e-9) / (32768.0 * 32768.0))
        return level >= max(self.speech_db, self._tones.noise_floor_db + 10.0)

    def _decide(self, verdict: Verdict, reason: str) -> tuple[AmdEvent, ...]:
        if self.verdict == verdict:
            return _NOTHING
        self.verdict, self.reason = verdict, reason
        STATS[f"{verdict}_{reason}"] += 1
        log.info("answering machine detection", extra={"verdict": verdict, "reason": reason,
                                                        "at_ms": int(self.t_ms)})
        return (AmdEvent(verdict, reason, int(self.t_ms)),)

    def _beep(self, end_ms: float) -> tuple[AmdEvent, ...]:
        out = self._decide("machine", "beep") if self.verdict != "machine" else _NOTHING
        self.reason = "beep"
        return out + self._speak("beep", max(end_ms, self.t_ms))

    def _speak(self, reason: str, at_ms: float) -> tuple[AmdEvent, ...]:
        if self.spoken:
            return _NOTHING
        self.spoken = True
        STATS["speak_" + reason] += 1
        return (AmdEvent("speak", reason, int(at_ms)),)
