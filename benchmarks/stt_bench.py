"""Keyless recognition (agents/stt) on eSpeak-rendered caller phrases through 8 kHz μ-law.

For each phrase of tests/agents/stt/phrases.tsv: render it with eSpeak NG (the
project's TTS), encode it as 8 kHz μ-law (the wire format), pad it with line
silence as a call would, recognise it with the production path
(`agents.stt.recognizer.decode_turn`), and score

- WER (word edit distance over reference words, all phrases pooled);
- the downstream decision on the recognised text against the decision on the
  reference text: triage priority (plumbing), the IVR key for the front desk, a
  live person, do-not-call, the name extracted;
- CPU-seconds per second of audio (real-time factor) and decoder memory.

Prints one JSON object (per-phrase rows with --rows). eSpeak is a formant
synthesizer: real callers differ (usually better for the acoustic model, which
was trained on human speech; worse for noise and accents). eSpeak's rendering of
a sentence varies with what it said before (intonation state), and recognition
with it, so each phrase is rendered `--renders` times, each after a different
prior sentence, and the figures pool every render.

    .venv/bin/python benchmarks/stt_bench.py [--rate 165] [--renders 3] [--rows]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.nlu.ivr import choose, is_live_person, parse_menu
from agents.nlu.names import extract_name
from agents.nlu.triage import triage
from agents.stt.recognizer import decode_turn, new_decoder
from agents.tts import synthesize_pcm, synthesize_ulaw
from media.codecs import ulaw
from media.resample import resample
from telephony.dialer.outcome import Conversation

PHRASES = Path(__file__).resolve().parents[1] / "tests" / "agents" / "stt" / "phrases.tsv"
PAUSE = ulaw.SILENT_FRAME * 25  # 0.5 s of line silence each side
PRIORS = ("Hello there.", "Okay.", "Good morning to you all, this is a longer sentence.",
          "Press nine.", "The quick brown fox jumps over the lazy dog.")


def render(text: str, rate: int, prior: str) -> bytes:
    """`text` as 8 kHz μ-law, spoken right after `prior` (uncached: a fresh rendering)."""
    synthesize_pcm(prior, "en-us", rate)
    pcm, sample_rate = synthesize_pcm(text, "en-us", rate)
    return ulaw.encode(resample(pcm, sample_rate, ulaw.SAMPLE_RATE))


def load_phrases(path: Path = PHRASES) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text("utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            kind, text = line.split("\t", 1)
            rows.append((kind, text.strip()))
    return rows


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower().replace("'", ""))


def edits(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        prev, row[0] = row[:], i
        for j in range(1, len(hyp) + 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ref[i - 1] != hyp[j - 1]))
    return row[len(hyp)]


def decision(kind: str, text: str) -> object:
    """What the rule downstream of recognition decides on `text`."""
    if kind == "triage":
        return triage(text, industry="plumbing").priority
    if kind == "ivr":
        return choose(parse_menu(text)).digit
    if kind == "human":
        return is_live_person(text)
    if kind == "dnc":
        return Conversation().heard(text) == "do_not_call"
    if kind == "name":
        name = extract_name(text, after_name_question=True)
        return name.lower() if name else None
    raise ValueError(f"unknown kind {kind!r}")


def worker_rss_mb() -> float:
    """Resident memory of one recognizer worker process, decoder built (the pool's cost)."""
    import psutil

    from agents.stt.recognizer import SphinxPool

    async def measure() -> float:
        pool = SphinxPool(1)
        try:
            await pool.warm_up()
            me = psutil.Process()
            return sum(c.memory_info().rss for c in me.children(recursive=True)) / 2**20
        finally:
            pool.shutdown()

    return asyncio.run(measure())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=165, help="eSpeak words per minute")
    parser.add_argument("--renders", type=int, default=3, help="renderings per phrase")
    parser.add_argument("--rows", action="store_true", help="print every phrase")
    args = parser.parse_args()
    phrases = load_phrases()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    decode_turn(synthesize_ulaw("hello", "en-us", args.rate))  # builds LM + this thread's decoder
    first_s = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    extra = new_decoder()  # what each further worker thread costs
    rss2 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del extra
    errors = ref_words = right = 0
    audio_s = cpu_s = 0.0
    by_kind: dict[str, list[int]] = {}
    rows = []
    renders = max(1, min(args.renders, len(PRIORS)))
    for kind, text, prior in [(k, t, p) for p in PRIORS[:renders] for k, t in phrases]:
        audio = PAUSE + render(text, args.rate, prior) + PAUSE
        heard = decode_turn(audio)
        ref, hyp = words(text), words(heard.text)
        e = edits(ref, hyp)
        errors += e
        ref_words += len(ref)
        audio_s += heard.audio_s
        cpu_s += heard.cpu_s
        want, got = decision(kind, text), decision(kind, heard.text)
        ok = want == got
        right += ok
        tally = by_kind.setdefault(kind, [0, 0])
        tally[0] += ok
        tally[1] += 1
        rows.append({"kind": kind, "text": text, "heard": heard.text,
                     "confidence": round(heard.confidence, 3), "word_errors": e,
                     "want": want, "got": got, "ok": ok})
    out = {
        "phrases": len(phrases),
        "renders": renders,
        "decisions": len(rows),
        "wer": round(errors / max(1, ref_words), 3),
        "decisions_right": right,
        "decisions_by_kind": {k: f"{v[0]}/{v[1]}" for k, v in by_kind.items()},
        "audio_s": round(audio_s, 1),
        "cpu_s": round(cpu_s, 2),
        "rtf_cpu": round(cpu_s / max(audio_s, 1e-9), 3),
        "first_decoder_s": round(first_s, 2),
        "first_decoder_rss_mb": round((rss1 - rss0) / 1024, 1),
        "extra_decoder_rss_mb": round((rss2 - rss1) / 1024, 1),
        "worker_process_rss_mb": round(worker_rss_mb(), 1),
        "espeak_rate_wpm": args.rate,
        "cpus": os.cpu_count(),
    }
    if args.rows:
        out["rows"] = rows
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
