"""Barge-in latency and false interruptions of each VAD engine, offline and deterministic.

A barge-in figure from the load bench moves with the machine's load; what the
VAD and the turn machine decide does not. This feeds rendered clips, one 20 ms
frame per tick, into the server's real `MediaEngine` while agent audio plays,
and records when (if) the engine cuts the agent:

- speech: eSpeak sentences in several voices and rates, as a caller talking
  over the agent. Latency = first voiced frame (RMS > 300, the load bench's
  onset) → the tick that decided the barge-in. Every one must barge in.
- back-channels: "mm-hm", "uh-huh", "okay", "yeah", "right" (eSpeak) — a
  listener's acknowledgements. Counted when they cut the agent: the false
  interruption rate that a faster setting must not raise.
- noise: white noise and a 50 Hz hum at three levels, 2 s each, and line clicks.
  Any barge-in is a false one.

    .venv/bin/python -m benchmarks.barge_in_eval [--vad silero] [--set barge_in_threshold=0.3]

Prints one JSON line per engine (p50/p95/max latency, misses, false
barge-ins per class). `--set key=value` overrides `[vad]` settings, to
compare a tuning with the default on the same clips.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from array import array
from typing import Any

from media.codecs import ulaw
from media.engine import MediaEngine
from media.settings import MediaSettings, VadSettings
from media.vad import make_engine

ONSET_RMS = 300  # the load bench's SPEECH_EDGE_RMS
LEAD_SILENCE_FRAMES = 25  # 0.5 s of line silence before each clip
TAIL_FRAMES = 30

SENTENCES = (
    "Sorry to interrupt, I have a quick question about my booking.",
    "Wait, that is not what I asked for.",
    "Hello, I would like to book an appointment for Tuesday afternoon.",
    "Actually, can we move it to Friday?",
    "No no, stop, I already paid.",
    "What time do you close today?",
)
VOICES = (("en-us", 165), ("en-us", 200), ("en-gb-x-rp", 150), ("en-us+f3", 170),
          ("en-us+m3", 185))
BACKCHANNELS = ("mm-hm", "uh-huh", "okay", "yeah", "right", "hmm", "ah")


def _frames(audio: bytes) -> list[bytes]:
    n = ulaw.FRAME_BYTES
    audio = audio + bytes([ulaw.SILENCE_BYTE]) * (-len(audio) % n)
    return [audio[i : i + n] for i in range(0, len(audio), n)]


def _noise(kind: str, level: int, frames: int, seed: int) -> bytes:
    rng = random.Random(seed)
    pcm = array("h")
    for i in range(frames * ulaw.FRAME_SAMPLES):
        if kind == "white":
            v = rng.gauss(0.0, level)
        elif kind == "hum":
            v = level * 1.4 * math.sin(2 * math.pi * 50 * i / ulaw.SAMPLE_RATE)
        else:  # clicks: a 2 ms pop every ~300 ms on a quiet line
            v = (level * 8 if i % 2400 < 16 else 0) + rng.gauss(0.0, 20)
        pcm.append(max(-32768, min(32767, int(v))))
    return ulaw.encode(pcm.tobytes())


def clips() -> dict[str, list[tuple[str, bytes]]]:
    from agents.tts import synthesize_ulaw

    speech = [(f"{voice}@{rate}: {text}", synthesize_ulaw(text, voice, rate))
              for text in SENTENCES for voice, rate in VOICES]
    back = [(f"{voice}@{rate}: {text}", synthesize_ulaw(text, voice, rate))
            for text in BACKCHANNELS for voice, rate in VOICES]
    noise = [(f"{kind} {level}", _noise(kind, level, 100, seed))
             for seed, (kind, level) in enumerate(
                 (k, lv) for k in ("white", "hum", "clicks") for lv in (300, 1000, 3000))]
    return {"speech": speech, "backchannel": back, "noise": noise}


class _Sink:
    def __init__(self) -> None:
        self.barge_at: float | None = None
        self.now = 0.0

    def send_media(self, frame: bytes) -> None: ...
    def send_checkpoint(self, item_id: str, ms: int) -> None: ...
    def send_clear(self) -> None: ...
    def speech_started(self) -> None: ...
    def end_of_turn(self, info: object) -> None: ...
    def playout_idle(self) -> None: ...

    def barge_in(self, item_id: str | None, heard_ms: int) -> None:
        if self.barge_at is None:
            self.barge_at = self.now


def _onset_frame(frames: list[bytes]) -> int | None:
    for i, f in enumerate(frames):
        if ulaw.rms(ulaw.decode(f)) > ONSET_RMS:
            return i
    return None


def run_clip(engine: MediaEngine, audio: bytes) -> tuple[float | None, int | None]:
    """(ms from the clip's onset to the barge-in, or None; onset frame) for one clip."""
    sink = _Sink()
    call = engine.add_call(sink)
    call.agent_audio("agent", ulaw.SILENT_FRAME.replace(b"\xff", b"\x55") * 1000)  # 20 s
    frames = [ulaw.SILENT_FRAME] * LEAD_SILENCE_FRAMES + _frames(audio) + \
        [ulaw.SILENT_FRAME] * TAIL_FRAMES
    onset = _onset_frame(frames)
    try:
        for k, frame in enumerate(frames):
            call.receive(frame)  # frame k covers [20k, 20k + 20) ms, here by 20k + 20
            sink.now = (k + 1) * 20.0
            engine.tick(sink.now, 1)
            if sink.barge_at is not None:
                break
    finally:
        engine.remove_call(call)
    if sink.barge_at is None or onset is None:
        return None, onset
    return sink.barge_at - onset * 20.0, onset


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))], 1)


def evaluate(vad: VadSettings, sets: dict[str, list[tuple[str, bytes]]] | None = None
             ) -> dict[str, Any]:
    sets = sets if sets is not None else clips()
    now = [0.0]
    engine = MediaEngine(make_engine(vad), vad, MediaSettings(), clock_now=lambda: now[0])
    latencies: list[float] = []
    missed: list[str] = []
    false: dict[str, list[str]] = {"backchannel": [], "noise": []}
    for name, audio in sets["speech"]:
        ms, _ = run_clip(engine, audio)
        if ms is None:
            missed.append(name)
        else:
            latencies.append(ms)
    for kind in ("backchannel", "noise"):
        for name, audio in sets[kind]:
            ms, _ = run_clip(engine, audio)
            if ms is not None:
                false[kind].append(name)
    return {
        "bench": "barge_in_eval", "vad": vad.engine,
        "settings": {k: getattr(vad, k) for k in vad.__struct_fields__},
        "speech_clips": len(sets["speech"]),
        "latency_ms": {"p50": _pct(latencies, 50), "p95": _pct(latencies, 95),
                       "max": _pct(latencies, 100)},
        "missed": len(missed),
        "false_backchannel": len(false["backchannel"]),
        "backchannel_clips": len(sets["backchannel"]),
        "false_noise": len(false["noise"]),
        "noise_clips": len(sets["noise"]),
        "false_backchannel_names": false["backchannel"],
        "false_noise_names": false["noise"],
    }


def _parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = json.loads(value) if value[:1].isdigit() or value in ("true", "false") \
            else value
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vad", action="append", choices=("webrtc", "silero"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a [vad] setting (repeatable)")
    a = p.parse_args(argv)
    sets = clips()
    for engine in a.vad or ["webrtc", "silero"]:
        vad = VadSettings(**{"engine": engine, **_parse_set(a.set)})
        print(json.dumps(evaluate(vad, sets)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
