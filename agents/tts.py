"""Local text-to-speech with eSpeak NG, for the keyless brain and for tests.

The library comes inside the `espeakng-loader` wheel (no system package, no
download). eSpeak keeps global state, so synthesis is serialised by a lock and
run in a worker thread by `synthesize_async`; prompts are rendered once and
cached as 8 kHz μ-law, the wire format, so a call never waits on TTS twice.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import threading

import espeakng_loader

from media.codecs import ulaw
from media.resample import resample

_AUDIO_OUTPUT_SYNCHRONOUS = 0x02
_ESPEAK_CHARS_UTF8 = 1
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class TtsError(RuntimeError):
    pass


class _Espeak:
    """The process-wide eSpeak NG instance."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [
            ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int
        ]
        self.lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        data = espeakng_loader.get_data_path().encode()
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if rate <= 0:
            raise TtsError("eSpeak NG failed to initialise")
        self.sample_rate = rate
        self._chunks: list[bytes] = []
        self._callback = _SYNTH_CALLBACK(self._on_audio)  # keep a reference
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()

    def _on_audio(self, wav, count, _events) -> int:  # type: ignore[no-untyped-def]
        if count > 0:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        return 0

    def synth(self, text: str, voice: str, rate: int) -> bytes:
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise TtsError(f"unknown eSpeak voice {voice!r}")
            self.lib.espeak_SetParameter(1, rate, 0)  # espeakRATE
            self._chunks = []
            buf = ctypes.create_string_buffer(text.encode())
            err = self.lib.espeak_Synth(buf, len(buf), 0, 0, 0, _ESPEAK_CHARS_UTF8, None, None)
            if err != 0:
                raise TtsError(f"eSpeak synthesis failed ({err})")
            pcm = b"".join(self._chunks)
            self._chunks = []
            return pcm


@functools.cache
def _engine() -> _Espeak:
    return _Espeak()


def synthesize_pcm(text: str, voice: str = "en-us", rate: int = 165) -> tuple[bytes, int]:
    """Speech for `text` as PCM16 mono at eSpeak's native rate: (pcm, sample_rate)."""
    if not text.strip():
        raise TtsError("nothing to say")
    engine = _engine()
    return engine.synth(text, voice, rate), engine.sample_rate


@functools.lru_cache(maxsize=256)
def synthesize_ulaw(text: str, voice: str = "en-us", rate: int = 165) -> bytes:
    """Speech for `text` as 8 kHz μ-law, cached per (text, voice, rate)."""
    pcm, sample_rate = synthesize_pcm(text, voice, rate)
    return ulaw.encode(resample(pcm, sample_rate, ulaw.SAMPLE_RATE))


async def synthesize_ulaw_async(text: str, voice: str = "en-us", rate: int = 165) -> bytes:
    """`synthesize_ulaw` off the event loop (first render of a prompt)."""
    return await asyncio.to_thread(synthesize_ulaw, text, voice, rate)
