"""The leg over the real `livekit.rtc` SDK where it runs without a server: the adapter's
`rtc.AudioSource` (the SDK's FFI library, bundled in its wheel) paces the agent's audio,
and the leg's checkpoints follow the source's own queue. Room signalling (connect,
subscribe, attributes, DTMF) needs a LiveKit server and is not exercised here."""

from __future__ import annotations

import asyncio
import time

from media.codecs import ulaw
from telephony.livekit.leg import LiveKitLeg
from telephony.livekit.room import LiveKitRoom
from tests.audio import frames, speech_ulaw


async def test_the_real_audio_source_paces_the_leg_and_its_queue_drives_checkpoints() -> None:
    room = LiveKitRoom("ws://127.0.0.1:1", "token", "callee", queue_ms=200)
    room.open_source()
    leg = LiveKitLeg(room)
    played: list[tuple[int, float]] = []
    leg.start(type("Side", (), {"caller_audio": lambda self, f: None,
                                "caller_dtmf": lambda self, d: None,
                                "played": lambda self, i, ms: played.append(
                                    (ms, time.monotonic()))})())
    audio = frames(speech_ulaw("Thanks for calling, how can I help you today?"),
                   ulaw.FRAME_BYTES)[:100]  # 2 s
    started = time.monotonic()
    # All of it at once (the engine never does): the source takes its 200 ms queue at
    # once and then only as fast as it plays, so the leg's backlog drains in real time.
    for n, frame in enumerate(audio, 1):
        leg.send_media(frame)
        if n % 10 == 0:
            leg.send_checkpoint("item_1", n * 20)
    await _until(lambda: len(played) == 10, 5)
    took = time.monotonic() - started
    assert 1.8 <= took <= 2.6, took  # 2 s of audio took 2 s to play
    for ms, at in played:
        # Reported once played, by the source's own count: not early, not much later.
        assert ms / 1000 - 0.03 <= at - started <= ms / 1000 + 0.15, (ms, at - started)
    for frame in audio[:10]:
        leg.send_media(frame)
    await asyncio.sleep(0.02)
    assert room.queued_ms() > 100
    leg.send_clear()
    assert room.queued_ms() == 0
    await leg.close()
    await room.disconnect()


async def _until(predicate, limit_s: float) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(limit_s * 100)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")
