"""VAD cost per stream: Silero alone vs batched across calls, and WebRTC per frame.

Prints one JSON line. Every window is real eSpeak speech with the energy gate
off (min_volume=0), so each one reaches the model: this is the worst case,
a room where every caller talks at once. Run: `.venv/bin/python benchmarks/vad_bench.py`.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import msgspec
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from media.vad.silero import WINDOW_SAMPLES, SileroVad, new_session
from media.vad.webrtc import WebRtcVad
from tests.audio import speech_pcm

BATCHES = (10, 100, 250, 500)
SECONDS_PER_CASE = 2.0  # time budget per measurement; the whole run stays < 30 s
WINDOW_BYTES = WINDOW_SAMPLES * 2


def speech_windows(size: int) -> list[bytes]:
    audio = speech_pcm("Hello, I would like to book an appointment for Tuesday morning.")
    return [audio[i : i + size] for i in range(0, len(audio) - size + 1, size)]


def silero_per_stream_us(
    session: ort.InferenceSession, streams: int, windows: list[bytes]
) -> dict[str, float]:
    """One window per stream per round; all rounds timed; µs per stream-window."""
    engine = SileroVad(min_volume=0, session=session)
    group = [engine.new_stream() for _ in range(streams)]
    # Warm-up round: buffer growth and ORT's first-run setup are not steady state.
    for k, stream in enumerate(group):
        stream.feed(windows[k % len(windows)])
    engine.process(group)
    engine.inference_seconds = 0.0
    rounds = 0
    spent = 0.0
    deadline = time.perf_counter() + SECONDS_PER_CASE
    while time.perf_counter() < deadline or rounds < 3:
        for k, stream in enumerate(group):
            stream.feed(windows[(k + rounds) % len(windows)])
        started = time.perf_counter()
        engine.process(group)
        spent += time.perf_counter() - started
        for stream in group:
            stream.take_decisions()
        rounds += 1
    items = rounds * streams
    return {
        "per_stream_us": round(spent / items * 1e6, 1),
        "inference_share": round(engine.inference_seconds / spent, 3),
        "round_ms": round(spent / rounds * 1e3, 3),
        "rounds": rounds,
    }


def webrtc_per_frame_us(windows: list[bytes], streams: int) -> float:
    engine = WebRtcVad(min_volume=0)
    group = [engine.new_stream() for _ in range(streams)]
    frames = 0
    spent = 0.0
    deadline = time.perf_counter() + SECONDS_PER_CASE / 2
    rounds = 0
    while time.perf_counter() < deadline or rounds < 3:
        started = time.perf_counter()
        for k, stream in enumerate(group):
            stream.feed(windows[(k + rounds) % len(windows)])
        engine.process(group)
        spent += time.perf_counter() - started
        for stream in group:
            stream.take_decisions()
        frames += streams
        rounds += 1
    return round(spent / frames * 1e6, 2)


def main() -> None:
    began = time.perf_counter()
    session = new_session()
    silero_windows = speech_windows(WINDOW_BYTES)
    webrtc_windows = speech_windows(320)
    silero = {"1": silero_per_stream_us(session, 1, silero_windows)}
    for size in BATCHES:
        silero[str(size)] = silero_per_stream_us(session, size, silero_windows)
    result = {
        "bench": "vad",
        "silero_window_ms": WINDOW_SAMPLES / 8,
        "silero_per_stream_us": {k: v["per_stream_us"] for k, v in silero.items()},
        "silero_detail": silero,
        "webrtc_per_frame_us": webrtc_per_frame_us(webrtc_windows, 1),
        "webrtc_per_frame_us_500_streams": webrtc_per_frame_us(webrtc_windows, 500),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "wall_s": round(time.perf_counter() - began, 1),
    }
    print(msgspec.json.encode(result).decode())


if __name__ == "__main__":
    main()
