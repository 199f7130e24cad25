"""Keyless speech recognition: caller turns to text with no model key and no download.

The scripted brain answers calls when no OpenAI key is configured. Without a
transcript it cannot triage ("I smell gas"), take capture answers, hear a phone
menu or a "don't call us again": every rule in `agents.nlu` reads text. This
package gives it text, locally.

Why pocketsphinx (5.x, CMU Sphinx), not the alternatives:
- it is a wheel on PyPI that bundles its en-us acoustic model, a dictionary and
  an LM: nothing is fetched at run time (vosk's models are separate downloads,
  which these machines and many customer networks cannot make);
- it is small and cheap: a C decoder with a GMM acoustic model, about a tenth
  of a CPU-second per second of telephone audio with our domain LM (see
  BENCHMARKS.md), where whisper needs torch and seconds of CPU per turn — too
  heavy to run per call beside the media tick on two cores;
- it takes a language model we build ourselves in a few milliseconds with the
  `pocketsphinx.lm` builder it ships: `corpus.txt` holds what callers, menus
  and front desks say to a small business, which is what makes the general
  model usable at all on 8 kHz audio (the broadcast-news LM it ships gets
  almost every word wrong on eSpeak-rendered calls; ours about a third to a half).

It is not a dictation engine: expect many wrong words. The downstream rules
(triage keywords, the IVR parser, do-not-call phrases) need the key words, not
every word; BENCHMARKS.md says how many decisions survive recognition.
"""

from agents.stt.recognizer import (
    Recognition,
    Recognizer,
    RecognizerBusy,
    SphinxPool,
    available,
    prepare_pcm,
    shared_pool,
)

__all__ = [
    "Recognition",
    "Recognizer",
    "RecognizerBusy",
    "SphinxPool",
    "available",
    "prepare_pcm",
    "shared_pool",
]
