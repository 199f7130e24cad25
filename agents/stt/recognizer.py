"""One caller turn of 8 kHz μ-law in, text and a confidence out, off the event loop.

Shape: a process-wide `SphinxPool` (a few worker processes, one pocketsphinx
`Decoder` in each, built on its first turn) that every call shares, never one
decoder per call — a decoder holds the acoustic model (~7 MB more per decoder
with our small dictionary, the worker process ~60 MB; BENCHMARKS.md) and costs
~0.3 s to build. Processes, not threads: the pocketsphinx binding holds the GIL
for the whole decode (measured: a 10 s turn stalled the event loop 370 ms in a
thread), and the media tick of every call runs on that loop. The pool is
bounded: more turns waiting than `max_pending` raise `RecognizerBusy` at once,
so a burst of calls degrades to the DTMF menu instead of a queue that answers
callers seconds late.

The work per turn (all in the worker process): μ-law → PCM16, silence trimmed
from both ends by frame energy (the scripted brain keeps the whole stretch since
the last turn, pauses included), 8 → 16 kHz with the media layer's soxr
resampler (the acoustic model is 16 kHz), one full-utterance decode.

The language model and dictionary are built from `corpus.txt` (the words callers
use with small businesses) with pocketsphinx's own ARPA builder, into a temp
directory named by the corpus's hash (workers share it; written atomically).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import multiprocessing
import os
import re
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol

import numpy as np

from media.codecs import ulaw
from media.resample import StreamResampler

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
# A 20 ms frame louder than this (PCM16 RMS) is speech for trimming; telephone
# line noise sits well below, quiet speech well above.
SPEECH_RMS = 300
# Kept on each side of the speech found, so word edges are not clipped.
PAD_MS = 250
# Shorter speech than this is a click or a breath, not a word.
MIN_SPEECH_MS = 120
DEFAULT_MAX_PENDING = 8


@dataclass
class SttStats:
    """Counts for logs and /metrics: turns decoded, empty, failed, refused (busy)."""

    counts: Counter[str] = field(default_factory=Counter)
    audio_s: float = 0.0
    cpu_s: float = 0.0


STATS = SttStats()


@dataclass(frozen=True, slots=True)
class Recognition:
    """What was heard: `text` ("" for none), `confidence` in 0..1 (pocketsphinx's
    posterior of the best path; low values are common and still often right in
    the key words), the audio length and the CPU time the decode took."""

    text: str
    confidence: float
    audio_s: float
    cpu_s: float


class RecognizerBusy(RuntimeError):
    """More turns are waiting than the pool allows; the caller gets the menu instead."""


class Recognizer(Protocol):
    """What the scripted brain needs: one turn of μ-law in, a `Recognition` out."""

    async def recognize(self, ulaw_audio: bytes) -> Recognition: ...


@functools.cache
def available() -> bool:
    """True when pocketsphinx imports (the `[scripted] stt` default follows this)."""
    try:
        import pocketsphinx  # noqa: F401
    except Exception:  # ImportError, or a broken native library
        return False
    return True


def prepare_pcm(ulaw_audio: bytes) -> bytes:
    """16 kHz PCM16 of the speech in a turn ("" when there is none). Blocking, cheap."""
    if not ulaw_audio:
        return b""
    pcm = np.frombuffer(ulaw.decode(ulaw_audio), dtype=np.int16)
    frame = ulaw.SAMPLE_RATE // 50
    n = len(pcm) // frame
    if n == 0:
        return b""
    frames = pcm[: n * frame].astype(np.float32).reshape(n, frame)
    loud = np.flatnonzero(np.sqrt((frames * frames).mean(axis=1)) >= SPEECH_RMS)
    if len(loud) == 0 or (loud[-1] - loud[0] + 1) * 20 < MIN_SPEECH_MS:
        return b""
    pad = PAD_MS // 20
    start = max(0, int(loud[0]) - pad) * frame
    end = min(len(pcm), (int(loud[-1]) + 1 + pad) * frame)
    return StreamResampler(ulaw.SAMPLE_RATE, SAMPLE_RATE).process(
        pcm[start:end].tobytes(), last=True)


_WORD = re.compile(r"[a-z']+")


_LIST = re.compile(r"@([a-z_]+)\s*=(.*)")
_SLOT = re.compile(r"\{([a-z_]+)\}")


def _expand(line: str, lists: dict[str, list[str]]) -> list[str]:
    """Round robin, not every combination: line i takes alternative i of each list (modulo
    its length), as many lines as the longest list. Every alternative is seen in the
    template's context, and a template weighs about as much as its longest list, so the
    lists of names do not drown the rest of the corpus."""
    names = list(dict.fromkeys(_SLOT.findall(line)))
    if not names:
        return [line]
    for name in names:
        if name not in lists or not lists[name]:
            raise ValueError(f"corpus.txt: {{{name}}} used before '@{name} =' defines it")
    count = max(len(lists[n]) for n in names)
    out = []
    for i in range(count):
        text = line
        for n in names:
            alts = lists[n]
            text = text.replace("{" + n + "}", alts[i % len(alts)])
        out.append(text)
    return out


def corpus_lines(text: str | None = None) -> list[str]:
    """The LM's training sentences, templates expanded, lower case, words only."""
    if text is None:
        text = resources.files("agents.stt").joinpath("corpus.txt").read_text("utf-8")
    lists: dict[str, list[str]] = {}
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip().lower()
        if not line:
            continue
        defined = _LIST.fullmatch(line)
        if defined:
            lists[defined.group(1)] = [a.strip() for a in defined.group(2).split("|") if a.strip()]
            continue
        for expanded in _expand(line, lists):
            words = " ".join(_WORD.findall(expanded))
            if words:
                lines.append(words)
    return lines


@functools.cache
def _model_files() -> tuple[str, str, str]:
    """(acoustic model dir, dictionary path, ARPA LM path), built once per process.

    The dictionary keeps only the corpus's words (the full CMU dictionary is 134k
    words and most of a decoder's memory); a corpus word missing from it is dropped
    from the LM too, so the decoder never meets a word it cannot pronounce.
    """
    from pocketsphinx import get_model_path
    from pocketsphinx.lm import ArpaBoLM

    model = os.path.join(get_model_path(), "en-us")
    lines = corpus_lines()
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    directory = os.path.join(tempfile.gettempdir(), f"leadline-stt-{digest}")
    dict_path = os.path.join(directory, "domain.dict")
    lm_path = os.path.join(directory, "domain.arpa")
    if os.path.exists(dict_path) and os.path.exists(lm_path):
        return os.path.join(model, "en-us"), dict_path, lm_path
    vocab = {w for line in lines for w in line.split()}
    entries: list[str] = []
    known: set[str] = set()
    with open(os.path.join(model, "cmudict-en-us.dict"), encoding="utf-8") as f:
        for entry in f:
            word = entry.split(" ", 1)[0]
            base = word.split("(", 1)[0]
            if base in vocab:
                entries.append(entry if entry.endswith("\n") else entry + "\n")
                known.add(base)
    missing = vocab - known
    if missing:
        log.debug("corpus words without a pronunciation, dropped: %s", sorted(missing))
    kept = [" ".join(w for w in line.split() if w in known) for line in lines]
    lm = ArpaBoLM(text="\n".join(k for k in kept if k) + "\n", add_start=True)
    lm.compute()
    os.makedirs(directory, exist_ok=True)
    suffix = f".{os.getpid()}.{threading.get_ident()}.tmp"
    with open(dict_path + suffix, "w", encoding="utf-8") as f:
        f.writelines(entries)
    lm.write_file(lm_path + suffix)
    # Another worker may be writing the same files: each publishes whole ones.
    os.replace(dict_path + suffix, dict_path)
    os.replace(lm_path + suffix, lm_path)
    return os.path.join(model, "en-us"), dict_path, lm_path


def new_decoder() -> Any:
    """A pocketsphinx Decoder on the domain LM (blocking, ~0.3 s; one per worker)."""
    from pocketsphinx import Decoder

    hmm, dict_path, lm_path = _model_files()
    return Decoder(hmm=hmm, dict=dict_path, lm=lm_path, loglevel="FATAL")


_local = threading.local()


def decode_turn(ulaw_audio: bytes) -> Recognition:
    """Recognise one turn with this worker's decoder (blocking: run it in the pool)."""
    started = time.process_time()
    pcm = prepare_pcm(ulaw_audio)
    audio_s = len(ulaw_audio) / ulaw.SAMPLE_RATE
    if not pcm:
        return Recognition("", 0.0, audio_s, time.process_time() - started)
    decoder = getattr(_local, "decoder", None)
    if decoder is None:
        decoder = _local.decoder = new_decoder()
    decoder.start_utt()
    try:
        decoder.process_raw(pcm, full_utt=True)
    finally:
        decoder.end_utt()
    hyp = decoder.hyp()
    text = " ".join(hyp.hypstr.split()) if hyp is not None else ""
    confidence = float(hyp.prob) if hyp is not None and text else 0.0
    return Recognition(text, max(0.0, min(1.0, confidence)), audio_s,
                       time.process_time() - started)


class SphinxPool:
    """The process's recognizer: `workers` processes, at most `max_pending` turns waiting."""

    def __init__(self, workers: int = 1, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if not 1 <= workers <= 16:
            raise ValueError("stt workers must be between 1 and 16")
        self.workers = workers
        self.max_pending = max(1, max_pending)
        self.pending = 0
        # "spawn": forking a process that runs an event loop and threads is unsafe.
        self._executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init, initargs=(os.getpid(),))

    async def recognize(self, ulaw_audio: bytes) -> Recognition:
        if self.pending >= self.max_pending:
            STATS.counts["busy"] += 1
            raise RecognizerBusy(f"{self.pending} turns already waiting for recognition")
        self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._executor, decode_turn, ulaw_audio)
        except Exception:
            STATS.counts["failed"] += 1
            raise
        finally:
            self.pending -= 1
        STATS.counts["decoded" if result.text else "empty"] += 1
        STATS.audio_s += result.audio_s
        STATS.cpu_s += result.cpu_s
        return result

    async def warm_up(self) -> None:
        """Build the LM and every worker's decoder now (start-up), not on a first caller."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._executor, _warm)
                               for _ in range(self.workers)))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _worker_init(parent_pid: int) -> None:
    """In each worker: die with the server. A SIGKILLed parent leaves its pool's workers
    running forever otherwise (measured: they outlive it), ~60 MB each."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except Exception:
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took hold
        os._exit(0)
    # The media clock of every call must win the CPU over a decode: at the lowest
    # priority a busy core delays recognition (a turn past `stt_timeout_s` is answered
    # as unheard) instead of the other calls' 20 ms ticks.
    with contextlib.suppress(OSError):
        os.nice(19)

    def watch() -> None:  # where prctl is missing (not Linux)
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(0)

    threading.Thread(target=watch, name="stt-parent-watch", daemon=True).start()


def _warm() -> None:
    if getattr(_local, "decoder", None) is None:
        _local.decoder = new_decoder()
    time.sleep(0.2)  # hold this worker so the next warm-up lands on another


_pools: dict[int, SphinxPool] = {}
_pools_lock = threading.Lock()


def shared_pool(workers: int = 1) -> SphinxPool:
    """The process-wide pool of `workers` processes (made on first use; the processes
    start on the first turn or `warm_up`)."""
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = _pools[workers] = SphinxPool(workers)
        return pool
