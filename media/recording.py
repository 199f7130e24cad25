"""Optional call recording: both directions of a call, time-aligned, in one stereo WAV.

Left is the caller, right is the agent, PCM16 8 kHz. The media path hands over
μ-law frames as they pass (`caller`, `agent`) and calls `tick` on every 20 ms
media clock tick; the tick is what aligns the two tracks, because the agent
side is silent most of the call and Twilio may skip silent caller chunks, so
"nothing arrived this tick" has to become silence in the file or the two
channels would drift apart.

Per-frame work is one bytearray append. Decoding, interleaving and disk I/O
happen about once a second per call on a single writer thread shared by every
recording in the process, so a slow or full disk costs a thread, not the event
loop, and a thousand calls do not mean a thousand threads. A recording is a
nice-to-have: a disk error is logged once, counted in `errors`, and the call
goes on.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import os
import threading
import wave
from collections.abc import Callable
from typing import Any

import numpy as np

from media.codecs import ulaw

log = logging.getLogger(__name__)

CHANNELS = 2
SAMPLE_WIDTH = 2
# Audio kept in memory per call before it is handed to the writer (1 s).
FLUSH_SAMPLES = ulaw.SAMPLE_RATE
# A track may run this far ahead of the other before its frames are dropped;
# only reachable if the media clock stops ticking while frames still arrive.
MAX_TRACK_SAMPLES = 10 * ulaw.SAMPLE_RATE
# Audio waiting for the writer thread across all recordings of the process;
# beyond it new chunks are dropped (and counted) rather than held in memory.
MAX_PENDING_BYTES = 64 * 1024 * 1024

_SILENCE = memoryview(ulaw.SILENT_FRAME)


class TrackAligner:
    """The sans-I/O core of a recording: two μ-law tracks kept on one timeline.

    The timeline advances one frame per `tick`. A track shorter than the
    timeline at a tick is padded with silence up to it; a track that got more
    than a frame in one tick (network burst) is left ahead, so padding never
    moves audio earlier than it arrived and never splits a burst. `take`
    returns the stretch both tracks have, ready to be interleaved.
    """

    __slots__ = ("_agent", "_caller", "_max", "_timeline", "dropped_frames")

    def __init__(self, max_track_samples: int = MAX_TRACK_SAMPLES) -> None:
        self._caller = bytearray()
        self._agent = bytearray()
        # Samples of timeline past the start of the buffers; negative while
        # both tracks are ahead of the clock.
        self._timeline = 0
        self._max = max_track_samples
        self.dropped_frames = 0

    def caller(self, frame: bytes) -> None:
        if len(self._caller) < self._max:
            self._caller += frame
        else:
            self.dropped_frames += 1

    def agent(self, frame: bytes) -> None:
        if len(self._agent) < self._max:
            self._agent += frame
        else:
            self.dropped_frames += 1

    def tick(self) -> int:
        """Advance one frame; returns the samples both tracks now hold."""
        timeline = self._timeline + ulaw.FRAME_SAMPLES
        self._timeline = timeline
        caller = self._caller
        agent = self._agent
        # Both tracks were at least at the previous timeline, so a gap is at
        # most one frame.
        gap = timeline - len(caller)
        if gap > 0:
            caller += _SILENCE[:gap]
        gap = timeline - len(agent)
        if gap > 0:
            agent += _SILENCE[:gap]
        return min(len(caller), len(agent))

    def take(self, final: bool = False) -> tuple[bytes, bytes] | None:
        """The aligned stretch of both tracks, removed from the buffers.

        `final` pads the shorter track to the longer one first (end of call).
        """
        caller = self._caller
        agent = self._agent
        if final:
            longest = max(len(caller), len(agent))
            caller += b"\xff" * (longest - len(caller))
            agent += b"\xff" * (longest - len(agent))
        n = min(len(caller), len(agent))
        if n == 0:
            return None
        out = (bytes(caller[:n]), bytes(agent[:n]))
        del caller[:n]
        del agent[:n]
        self._timeline -= n
        return out


class RecordingWriter:
    """One daemon thread that runs the file work of every recording, in order.

    Data jobs count against `max_pending_bytes` and are refused beyond it (the
    recorder counts the loss); open and close jobs are always accepted so a
    file is always finalised.
    """

    def __init__(self, max_pending_bytes: int = MAX_PENDING_BYTES) -> None:
        self.max_pending_bytes = max_pending_bytes
        self._jobs: collections.deque[tuple[Callable[..., None], tuple[Any, ...], int]] = (
            collections.deque()
        )
        self._cond = threading.Condition()
        self._pending_bytes = 0
        self._busy = False
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[..., None], *args: Any, nbytes: int = 0) -> bool:
        """Queue `fn(*args)` for the writer thread; False if over the byte budget."""
        with self._cond:
            if nbytes and self._pending_bytes + nbytes > self.max_pending_bytes:
                return False
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="leadline-recording-writer", daemon=True
                )
                self._thread.start()
            self._pending_bytes += nbytes
            self._jobs.append((fn, args, nbytes))
            self._cond.notify()
        return True

    def drain(self, timeout: float | None = None) -> bool:
        """Block until every queued job has run (graceful shutdown, tests)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._jobs and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs:
                    self._cond.wait()
                fn, args, nbytes = self._jobs.popleft()
                self._busy = True
            try:
                fn(*args)
            except Exception:  # jobs handle their own errors; this is a last resort
                log.exception("recording writer job failed")
            finally:
                with self._cond:
                    self._pending_bytes -= nbytes
                    self._busy = False
                    self._cond.notify_all()


_shared_writer: RecordingWriter | None = None
_shared_lock = threading.Lock()


def shared_writer() -> RecordingWriter:
    """The process-wide writer (created on first use)."""
    global _shared_writer
    with _shared_lock:
        if _shared_writer is None:
            _shared_writer = RecordingWriter()
        return _shared_writer


def _interleave(caller_ulaw: bytes, agent_ulaw: bytes) -> bytes:
    left = np.frombuffer(ulaw.decode(caller_ulaw), dtype="<i2")
    right = np.frombuffer(ulaw.decode(agent_ulaw), dtype="<i2")
    out = np.empty(2 * len(left), dtype="<i2")
    out[0::2] = left
    out[1::2] = right
    return out.tobytes()


class CallRecorder:
    """Records one call into `path` (a stereo WAV); see the module docstring.

    `caller`, `agent` and `tick` belong to the media path and never block.
    `close` queues the end of the file; `done` resolves once the header is
    final (`await recorder.aclose()` does both).
    """

    def __init__(self, path: str, *, writer: RecordingWriter | None = None) -> None:
        self.path = path
        self.done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._aligner = TrackAligner()
        self._writer = writer or shared_writer()
        # Cleared on close and when the file cannot be written: stop buffering.
        self._active = True
        self._closed = False
        self._wav: wave.Wave_write | None = None
        self._write_errors = 0  # touched by the writer thread only
        self._dropped_chunks = 0  # touched by the event loop only
        self._logged = False
        self._writer.submit(self._open)

    @property
    def errors(self) -> int:
        """Failed disk operations plus chunks lost to a full writer queue."""
        return self._write_errors + self._dropped_chunks

    @property
    def dropped_frames(self) -> int:
        return self._aligner.dropped_frames

    # -- media path ------------------------------------------------------

    def caller(self, ulaw_frame: bytes) -> None:
        if self._active:
            self._aligner.caller(ulaw_frame)

    def agent(self, ulaw_frame: bytes) -> None:
        if self._active:
            self._aligner.agent(ulaw_frame)

    def tick(self) -> None:
        if self._active and self._aligner.tick() >= FLUSH_SAMPLES:
            self._flush(final=False)

    def close(self) -> None:
        """Write what is buffered and finalise the file; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._active:
            self._flush(final=True)
        self._active = False
        self._writer.submit(self._finish)

    async def aclose(self) -> None:
        self.close()
        await asyncio.wrap_future(self.done)

    def _flush(self, final: bool) -> None:
        chunk = self._aligner.take(final)
        if chunk is None:
            return
        if not self._writer.submit(self._write, *chunk, nbytes=2 * len(chunk[0])):
            self._dropped_chunks += 1
            self._log_once("recording writer is behind; audio dropped from %s", self.path)

    # -- writer thread ---------------------------------------------------

    def _log_once(self, message: str, *args: object) -> None:
        if not self._logged:
            self._logged = True
            log.error(message, *args)

    def _fail(self, what: str, exc: BaseException) -> None:
        self._write_errors += 1
        self._active = False
        self._log_once("recording %s failed for %s: %s", what, self.path, exc)

    def _open(self) -> None:
        try:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            wav = wave.open(self.path, "wb")  # closed in _finish
            wav.setnchannels(CHANNELS)
            wav.setsampwidth(SAMPLE_WIDTH)
            wav.setframerate(ulaw.SAMPLE_RATE)
            self._wav = wav
        except Exception as exc:
            self._fail("open", exc)

    def _write(self, caller_ulaw: bytes, agent_ulaw: bytes) -> None:
        if self._wav is None:
            return
        try:
            # writeframes also patches the header, so the file stays playable
            # up to the last second written even if the process dies.
            self._wav.writeframes(_interleave(caller_ulaw, agent_ulaw))
        except Exception as exc:
            self._fail("write", exc)
            wav, self._wav = self._wav, None
            try:
                wav.close()
            except Exception:
                log.debug("closing %s after a failed write also failed", self.path)

    def _finish(self) -> None:
        try:
            if self._wav is not None:
                wav, self._wav = self._wav, None
                wav.close()
        except Exception as exc:
            self._fail("close", exc)
        finally:
            if not self.done.done():
                self.done.set_result(None)
