"""The voicemail beep: a single steady tone, found frame by frame in 8 kHz PCM16.

Carrier answering-machine detection is slow (Twilio's `DetectMessageEnd` waits for the
whole greeting) and sometimes says `unknown`; LiveKit SIP has none. The beep is the one
unambiguous sign that a recorder is listening, and the moment to start the message.

A beep (from the voicemail systems in the field: 440, 850, 1000 and 1400 Hz are common)
is one tone between 400 and 2000 Hz lasting 0.1–1.5 s, far above the line's noise floor,
with almost all the frame's energy in one narrow peak at one steady frequency. Speech
fails at least one of those: voiced sounds spread energy over many harmonics and glide
in pitch, unvoiced sounds are noise-like. So each frame is scored by
- level: RMS well above the tracked noise floor and above an absolute minimum,
- purity: the share of the 300–3400 Hz energy within ±3 bins (±94 Hz) of the peak,
- stability: the peak within `max_drift_hz` of the run's first frame,
and a run of such frames of allowed length is reported when the tone stops.

Sans-I/O and bounded: one fixed window of the last `window` samples, a handful of
numbers for the current run; per loud frame one 256-point real FFT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 8000
_FFT = 256
_FLOOR_MIN_DB = -80.0
# How fast the noise floor may rise per frame (10 dB/s): slow enough that the dips between
# words keep it near the line noise during speech, fast enough to follow a noisier line.
_FLOOR_RISE_DB = 0.2
_FULL_SCALE = 32768.0
# The peak estimate is good to a few Hz; a 2000 Hz beep must not fall out at 2003 Hz.
_EDGE_HZ = 10.0


@dataclass(frozen=True, slots=True)
class Beep:
    """A tone that ended: times in ms of audio fed, frequency in Hz, level in dBFS."""

    start_ms: int
    end_ms: int
    frequency_hz: float
    level_db: float

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


class ToneDetector:
    """Feed PCM16 frames (any length, usually 20 ms); `feed` returns a `Beep` when one ends."""

    def __init__(self, *, min_hz: float = 400.0, max_hz: float = 2000.0,
                 min_ms: int = 100, max_ms: int = 1500, min_purity: float = 0.90,
                 min_snr_db: float = 15.0, min_level_db: float = -45.0,
                 max_drift_hz: float = 8.0, frame_samples: int = 160) -> None:
        self.min_ms, self.max_ms = min_ms, max_ms
        self.min_purity = min_purity
        self.min_snr_db = min_snr_db
        self.min_level_db = min_level_db
        self.max_drift_hz = max_drift_hz
        self._n = frame_samples
        self._buf = np.zeros(frame_samples, dtype=np.float64)
        self._taper = np.hanning(frame_samples)
        self._bin_hz = SAMPLE_RATE / _FFT
        self._band = (int(300.0 / self._bin_hz), int(3400.0 / self._bin_hz) + 1)
        self._min_hz, self._max_hz = min_hz, max_hz
        self.noise_floor_db = _FLOOR_MIN_DB
        self._floor_unset = True
        self.fed_ms = 0.0
        self._run_start: float | None = None
        self._run_hz = 0.0
        self._run_level = 0.0
        self._run_ms = 0.0
        self._gap_frames = 0
        self._gap_ms = 0.0
        self.beeps = 0

    def _frame_tone(self, pcm: np.ndarray) -> tuple[float, float] | None:
        """(frequency, level dBFS) if this frame is a pure tone, else None."""
        n = min(len(pcm), self._n)
        buf = self._buf
        buf[:n] = pcm[-n:]
        buf[n:] = 0.0
        energy = float(np.dot(buf[:n], buf[:n])) / n
        level = 10.0 * math.log10(max(energy, 1e-9) / (_FULL_SCALE * _FULL_SCALE))
        tonal = None
        if level >= self.min_level_db and level >= self.noise_floor_db + self.min_snr_db:
            spec = np.abs(np.fft.rfft(buf * self._taper, _FFT)) ** 2
            band = spec[self._band[0]:self._band[1]]
            band_energy = float(band.sum())
            # The strongest peak of the whole voice band, which must then lie in the tone
            # range: a peak clipped at the range's edge is a lower sound, not a beep.
            peak = self._band[0] + int(np.argmax(band))
            near = float(spec[peak - 3:peak + 4].sum())
            if band_energy > 0 and near / band_energy >= self.min_purity:
                # Parabolic interpolation of the peak: a few Hz, not a 31 Hz bin.
                a, b, c = float(spec[peak - 1]), float(spec[peak]), float(spec[peak + 1])
                denom = a - 2 * b + c
                shift = 0.5 * (a - c) / denom if denom else 0.0
                hz = (peak + shift) * self._bin_hz
                if self._min_hz - _EDGE_HZ <= hz <= self._max_hz + _EDGE_HZ:
                    tonal = (hz, level)
        if tonal is None:
            # Track the floor on frames that are not tones: fall fast, rise slowly; digital
            # silence must not drag it to -inf (any sound would then count as loud).
            floor = max(level, _FLOOR_MIN_DB)
            if self._floor_unset or floor < self.noise_floor_db:
                self.noise_floor_db = floor
                self._floor_unset = False
            else:
                self.noise_floor_db = min(self.noise_floor_db + _FLOOR_RISE_DB, floor)
        return tonal

    def feed(self, frame: bytes) -> Beep | None:
        pcm = np.frombuffer(frame[: len(frame) & ~1], dtype="<i2").astype(np.float32)
        frame_ms = 1000.0 * len(pcm) / SAMPLE_RATE
        start_ms = self.fed_ms
        self.fed_ms += frame_ms
        if not len(pcm):
            return None
        tone = self._frame_tone(pcm)
        if tone is not None:
            hz, level = tone
            if self._run_start is not None and abs(hz - self._run_hz) > self.max_drift_hz:
                result = self._end_run()
                self._start_run(start_ms, hz, level, frame_ms)
                return result
            if self._run_start is None:
                self._start_run(start_ms, hz, level, frame_ms)
            else:
                self._run_ms += frame_ms + self._gap_ms
                self._gap_ms = 0.0
                self._run_level = max(self._run_level, level)
                self._gap_frames = 0
            return None
        if self._run_start is not None:
            # One impure frame inside a tone (a click, the window straddling the onset) is
            # forgiven; two end it.
            self._gap_frames += 1
            self._gap_ms += frame_ms
            if self._gap_frames >= 2:
                return self._end_run()
        return None

    def _start_run(self, at_ms: float, hz: float, level: float, frame_ms: float) -> None:
        self._run_start = at_ms
        self._run_hz = hz
        self._run_level = level
        self._run_ms = frame_ms
        self._gap_frames = 0
        self._gap_ms = 0.0

    def _end_run(self) -> Beep | None:
        start, ms = self._run_start, self._run_ms
        self._run_start = None
        self._gap_frames = 0
        if start is None or not self.min_ms <= ms <= self.max_ms:
            return None
        self.beeps += 1
        return Beep(start_ms=int(start), end_ms=int(start + ms),
                    frequency_hz=round(self._run_hz, 1), level_db=round(self._run_level, 1))

    @property
    def in_tone(self) -> bool:
        """A tone is sounding now (the caller should not be spoken over yet)."""
        return self._run_start is not None
