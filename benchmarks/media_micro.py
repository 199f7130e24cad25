"""A fixed, in-process media workload for instruction counts (callgrind, `perf stat`).

Wall-clock load benches swing with whatever else shares the machine; the
instructions a fixed workload executes do not. This drives N calls × M ticks
through the server's real per-call path, without sockets: Twilio media JSON →
`StreamProtocol.receive` → `CallMedia.receive` (μ-law decode, VAD feed) →
`MediaEngine.tick` (VAD batch, turn machine, playout) → `MediaStreamLeg`
(Twilio JSON, base64, WebSocket framing) → a transport that counts writes.
Marks are echoed back through `StreamProtocol` once their audio has "played"
(`lead_frames + chunk` ticks later), as Twilio would.

Each caller talks 1.2 s of eSpeak speech every 3 s; the agent answers with a
2.4 s reply whenever it is idle, so the run mixes speech, silence, playout,
marks and barge-ins. Everything is deterministic (no clock reads in the path:
the engine runs on a counter clock).

    .venv/bin/python -m benchmarks.media_micro --calls 200 --ticks 500 [--vad silero]
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \\
        .venv/bin/python -m benchmarks.media_micro --calls 100 --ticks 250 --no-warmup

Prints one JSON line: writes and frames per call per second, instructions are
what callgrind or `perf stat -e instructions` report around it (the setup —
imports, eSpeak, model load — is the same for every variant; subtract a
`--ticks 0` run to get the per-tick figure).
"""

from __future__ import annotations

import argparse
import binascii
import json
import sys
import time
from collections import deque

from media.codecs import ulaw
from media.engine import MediaEngine
from media.settings import MediaSettings, VadSettings
from media.vad import make_engine
from ops.dev.twilio_side import TWILIO_MEDIA, ServerMark, TwilioSide, parse_server
from telephony.twilio.leg import MediaStreamLeg
from telephony.twilio.streams import Mark, Media, StreamProtocol
from telephony.ws.frame import FrameWriter

SPEAK_TICKS = 60  # 1.2 s of speech
CYCLE_TICKS = 150  # every 3 s
REPLY_MS = 2400


class _Transport:
    """An asyncio write transport that keeps what was written (to echo marks)."""

    __slots__ = ("bytes", "chunks", "writes")

    def __init__(self) -> None:
        self.writes = 0
        self.bytes = 0
        self.chunks: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.bytes += len(data)
        self.chunks.append(data)


def _frames(data: bytes) -> list[bytes]:
    """Server text frames in one write (unmasked; 7/16-bit lengths only)."""
    out = []
    i = 0
    while i < len(data):
        n = data[i + 1] & 0x7F
        i += 2
        if n == 126:
            n = int.from_bytes(data[i : i + 2], "big")
            i += 2
        out.append(data[i : i + n])
        i += n
    return out


class _Sim:
    """One call: Twilio's side (inbound messages, mark echo) and ours (protocol, media, leg)."""

    def __init__(self, index: int, engine: MediaEngine, speech: list[bytes], delay: int) -> None:
        sid = f"MZ{index:032x}"
        self.side = TwilioSide(sid, f"CA{index:032x}", "AC" + "0" * 32, {})
        self.protocol = StreamProtocol()
        self.protocol.receive(self.side.connected())
        self.protocol.receive(self.side.start())
        self.transport = _Transport()
        self.leg = MediaStreamLeg(None, FrameWriter(self.transport), sid)  # type: ignore[arg-type]
        self.media = engine.add_call(self, key=sid)
        self.leg.on_played = self.media.played
        self.speech = speech
        self.phase = index % CYCLE_TICKS  # calls are spread over the cycle
        self.delay = delay
        self.echo: deque[tuple[int, bytes]] = deque()
        self.reply = 0
        self.frames_out = 0
        self.marks = 0

    # MediaSink, as telephony.call.Call forwards it
    def send_media(self, frame: bytes) -> None:
        self.leg.send_media(frame)

    def send_checkpoint(self, item_id: str, ms: int) -> None:
        self.leg.send_checkpoint(item_id, ms)

    def send_clear(self) -> None:
        self.leg.send_clear()

    def flush(self) -> None:
        self.leg.flush()

    def speech_started(self) -> None:
        pass

    def end_of_turn(self, info: object) -> None:
        pass

    def barge_in(self, item_id: str | None, heard_ms: int) -> None:
        pass

    def playout_idle(self) -> None:
        pass

    def inbound(self, tick: int, silent: bytes) -> None:
        """Twilio's 20 ms: caller audio in, and echoes of marks whose audio has played.

        Frames are base64 already and the message one `%` format, so Twilio's
        side costs little next to ours in the instruction count."""
        pos = (tick + self.phase) % CYCLE_TICKS
        frame = self.speech[pos % len(self.speech)] if pos < SPEAK_TICKS else silent
        side = self.side
        side._seq += 1
        side._chunk += 1
        ts = side._ts
        side._ts = ts + ulaw.FRAME_MS
        self._deliver(TWILIO_MEDIA % (side._seq, side._chunk, ts, frame, side._media_tail))
        t = self.transport
        if t.chunks:
            for chunk in t.chunks:
                for msg in _frames(chunk):
                    if msg.startswith(b'{"event":"mark"'):
                        self.echo.append((tick + self.delay, msg))
                    elif msg.startswith(b'{"event":"clear"'):
                        while self.echo:  # a clear flushes: every mark out comes back now
                            self._echo(self.echo.popleft()[1])
            t.chunks.clear()
        echo = self.echo
        while echo and echo[0][0] <= tick:
            self._echo(echo.popleft()[1])
        if self.media.playout.idle and pos == SPEAK_TICKS + 20:
            self.reply += 1
            item = f"r{self.reply}"
            self.media.agent_audio(item, b"\x55" * (REPLY_MS * 8))
            self.media.agent_done(item)

    def _echo(self, server_mark: bytes) -> None:
        msg = parse_server(server_mark)
        assert isinstance(msg, ServerMark)
        self.marks += 1
        self._deliver(self.side.mark(msg.name))

    def _deliver(self, data: bytes) -> None:
        event = self.protocol.receive(data)
        if type(event) is Media:
            self.media.receive(event.audio)
        elif type(event) is Mark:
            self.leg.mark_echoed(event.name)


def run(calls: int, ticks: int, vad: str, warmup: bool) -> dict[str, object]:
    from agents.tts import synthesize_ulaw

    audio = synthesize_ulaw("Hello, I would like to book an appointment for Tuesday.")
    n = ulaw.FRAME_BYTES
    speech = [binascii.b2a_base64(audio[i : i + n], newline=False)
              for i in range(0, len(audio) - n + 1, n)]
    media_settings = MediaSettings()
    vad_settings = VadSettings(engine=vad)  # type: ignore[arg-type]
    now = [0.0]
    engine = MediaEngine(make_engine(vad_settings), vad_settings, media_settings,
                         clock_now=lambda: now[0])
    delay = media_settings.lead_frames + getattr(media_settings, "send_chunk_frames", 1)
    sims = [_Sim(i, engine, speech, delay) for i in range(calls)]
    silent = binascii.b2a_base64(ulaw.SILENT_FRAME, newline=False)

    def step(tick: int) -> None:
        for sim in sims:
            sim.inbound(tick, silent)
        now[0] = tick * 20.0
        engine.tick(now[0], 1)

    start = 0
    if warmup:  # one cycle, so every call has been through every phase
        for tick in range(CYCLE_TICKS):
            step(tick)
        start = CYCLE_TICKS
    writes0 = sum(s.transport.writes for s in sims)
    bytes0 = sum(s.transport.bytes for s in sims)
    out0 = engine.frames_out
    t0 = time.process_time()
    for tick in range(start, start + ticks):
        step(tick)
    cpu = time.process_time() - t0
    secs = max(ticks, 1) * 0.02 * calls
    return {
        "bench": "media_micro", "calls": calls, "ticks": ticks, "vad": vad,
        "writes_per_call_s": round((sum(s.transport.writes for s in sims) - writes0) / secs, 2),
        "bytes_per_call_s": round((sum(s.transport.bytes for s in sims) - bytes0) / secs, 1),
        "frames_out_per_call_s": round((engine.frames_out - out0) / secs, 2),
        "barge_ins": engine.barge_ins, "end_of_turns": engine.end_of_turns,
        "underruns": engine.underruns,
        "marks_echoed": sum(s.marks for s in sims),
        "cpu_us_per_call_tick": round(cpu / max(ticks, 1) / calls * 1e6, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--ticks", type=int, default=500)
    p.add_argument("--vad", choices=("webrtc", "silero"), default="webrtc")
    p.add_argument("--no-warmup", action="store_true")
    a = p.parse_args(argv)
    print(json.dumps(run(a.calls, a.ticks, a.vad, not a.no_warmup)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
