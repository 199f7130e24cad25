"""Voice activity detection: pick the process's one engine from `[vad]` settings.

Engines are imported on demand so a process running WebRTC VAD never loads
onnxruntime and the Silero model.
"""

from __future__ import annotations

from media.settings import VadSettings
from media.vad.base import VadEngine, VadStream

__all__ = ["VadEngine", "VadStream", "make_engine"]

# 1 s of 8 kHz audio waiting per call; matches MediaSettings.max_inbound_ms's default.
DEFAULT_MAX_BUFFER_SAMPLES = 8000


def make_engine(
    settings: VadSettings, *, max_buffer_samples: int = DEFAULT_MAX_BUFFER_SAMPLES
) -> VadEngine:
    """The engine `settings.engine` names, tuned by `settings`.

    `max_buffer_samples` bounds each stream's undecided audio; pass
    `MediaSettings.max_inbound_ms * 8` to follow the config file.
    """
    if settings.engine == "silero":
        from media.vad.silero import SileroVad

        return SileroVad(settings.threshold, settings.min_volume, max_buffer_samples)
    if settings.engine == "webrtc":
        from media.vad.webrtc import WebRtcVad

        return WebRtcVad(settings.threshold, settings.min_volume, max_buffer_samples)
    raise ValueError(f"unknown VAD engine {settings.engine!r}")
