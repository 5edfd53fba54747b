"""Synthetic voices: a harmonic source shaped by vowel formants, syllable-like amplitude envelopes.

Each identity has its own pitch, vocal-tract length (formant scale), spectral tilt, breathiness and
speaking rate (see :class:`~mit_dataset.synthetic.identity.Voice`). Speech is a sequence of syllables
(raised-sine envelopes, a random vowel each, a short noise burst at the onset), gated by the speaking
schedule with 30 ms ramps. Everything is vectorised over samples; the cost is one pass per harmonic.
"""

from __future__ import annotations

import numpy as np

from ..features import FPS, SAMPLING_RATE
from .identity import Voice

#: (F1, F2, F3) in Hz of a few vowels (adult male), and how wide each opens the mouth (0..1).
VOWEL_FORMANTS = np.array(
    [
        [730, 1090, 2440],
        [530, 1840, 2480],
        [270, 2290, 3010],
        [570, 840, 2410],
        [300, 870, 2240],
        [660, 1720, 2410],
    ],
    dtype=np.float64,
)
VOWEL_OPENNESS = np.array([1.0, 0.75, 0.45, 0.8, 0.5, 0.9])
FORMANT_BANDWIDTHS = np.array([90.0, 120.0, 170.0])
FORMANT_GAINS = np.array([1.0, 0.6, 0.3])
#: RMS of a speaker's track while speaking (before the mix is peak-limited).
SPEECH_RMS = 0.08
RAMP_S = 0.03


def samples_per_frame(fps: float = FPS, sample_rate: int = SAMPLING_RATE) -> int:
    spf = sample_rate / fps
    if abs(spf - round(spf)) > 1e-9:
        raise ValueError(f"sample_rate/fps must be an integer, got {sample_rate}/{fps}")
    return round(spf)


def _ramp(mask: np.ndarray, width: int) -> np.ndarray:
    """Moving average of a 0/1 sample mask over ``width`` samples (soft onsets/offsets), O(S)."""
    if width <= 1:
        return mask.astype(np.float64)
    padded = np.concatenate([np.zeros(width // 2), mask.astype(np.float64), np.zeros(width - width // 2)])
    cumulative = np.concatenate([[0.0], np.cumsum(padded)])
    return (cumulative[width:] - cumulative[:-width])[: mask.size] / width


def synthesize_speech(
    voice: Voice,
    active: np.ndarray,
    rng: np.random.Generator,
    fps: float = FPS,
    sample_rate: int = SAMPLING_RATE,
) -> tuple[np.ndarray, np.ndarray]:
    """One speaker's track for a ``(F,)`` speaking schedule.

    Returns ``(track, mouth)``: ``track`` float32 ``(F * sample_rate / fps,)``, silent where ``active`` is
    False; ``mouth`` float32 ``(F,)`` in [0, 1], the per-frame mean of the speech envelope weighted by vowel
    openness (what the renderer uses to open the mouth).
    """
    active = np.asarray(active, dtype=bool)
    spf = samples_per_frame(fps, sample_rate)
    num_samples = active.size * spf
    t = np.arange(num_samples) / sample_rate
    duration = num_samples / sample_rate

    # Syllables tile the whole clip; the speaking gate decides which are heard.
    mean_len = 1.0 / voice.syllable_rate
    count = int(np.ceil(duration / mean_len * 2)) + 8
    lengths = rng.gamma(6.0, mean_len / 6.0, size=count).clip(0.4 * mean_len, 2.5 * mean_len)
    bounds = -rng.uniform(0, mean_len) + np.concatenate([[0.0], np.cumsum(lengths)])
    amplitude = rng.uniform(0.55, 1.0, size=count)
    amplitude[rng.uniform(size=count) < 0.12] = 0.0  # word gaps
    vowel = rng.integers(len(VOWEL_FORMANTS), size=count)
    pitch = voice.f0 * 2.0 ** rng.normal(0.0, 0.07, size=count)

    index = np.clip(np.searchsorted(bounds, t, side="right") - 1, 0, count - 1)
    phase = np.clip((t - bounds[index]) / lengths[index], 0.0, 1.0)
    syllable_env = amplitude[index] * np.sin(np.pi * phase) ** 0.6
    gate = _ramp(np.repeat(active, spf), int(RAMP_S * sample_rate))
    envelope = syllable_env * gate

    # Pitch: per-syllable accents, interpolated, with vibrato.
    centres = bounds[:-1] + lengths / 2
    f0 = np.interp(t, centres, pitch) * (1.0 + 0.012 * np.sin(2 * np.pi * voice.vibrato_hz * t))
    source_phase = 2 * np.pi * np.cumsum(f0) / sample_rate

    # Harmonic amplitudes per syllable from its vowel's formants.
    num_harmonics = max(4, int(3800.0 // (pitch.max() * 1.05)))
    k = np.arange(1, num_harmonics + 1)
    formants = VOWEL_FORMANTS[vowel] * voice.formant_scale  # (count, 3)
    harmonic_freq = pitch[:, None] * k[None, :]  # (count, K)
    weights = (
        FORMANT_GAINS[None, None, :]
        * np.exp(-0.5 * ((harmonic_freq[:, :, None] - formants[:, None, :]) / FORMANT_BANDWIDTHS) ** 2)
    ).sum(-1)
    weights = (weights + 0.05) * k[None, :] ** (-voice.tilt * 0.5)
    weights /= np.sqrt((weights**2).sum(1, keepdims=True))
    # Synthesise only where the envelope is non-zero (speakers are silent much of the time).
    audible = np.flatnonzero(envelope > 0)
    syllable, source_phase = index[audible], source_phase[audible]
    voiced = np.zeros(audible.size)
    for j in range(num_harmonics):
        voiced += weights[syllable, j] * np.sin((j + 1) * source_phase)

    noise = rng.standard_normal(num_samples)
    noise = np.diff(noise, prepend=0.0)[audible] * 0.5  # high-passed: fricative/aspiration colour
    burst = (phase[audible] < 0.18) * 0.5 + voice.breathiness
    openness = VOWEL_OPENNESS[vowel][index]  # open vowels are louder and open the mouth wider
    signal = np.zeros(num_samples)
    signal[audible] = (voiced + burst * noise) * envelope[audible] * (0.5 + 0.5 * openness[audible])

    speaking = gate > 0.5
    rms = np.sqrt(np.mean(signal[speaking] ** 2)) if speaking.any() else 0.0
    gain = SPEECH_RMS * voice.loudness / rms if rms > 0 else 0.0
    track = (signal * gain).astype(np.float32)

    mouth = (envelope * openness).reshape(active.size, spf).mean(1)
    return track, np.clip(mouth, 0.0, 1.0).astype(np.float32)


def mix_tracks(tracks: list[np.ndarray], peak: float = 0.9) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sum the speaker tracks into the clip audio; if the sum would clip, scale every track (and so the
    mix) by the same factor. Returns ``(mix, tracks)`` with ``mix == sum(tracks)``."""
    mix = np.sum(tracks, axis=0)
    top = float(np.abs(mix).max()) if mix.size else 0.0
    if top > peak:
        scale = peak / top
        tracks = [(track * scale).astype(np.float32) for track in tracks]
        mix = np.sum(tracks, axis=0)
    return mix.astype(np.float32), [np.asarray(track, np.float32) for track in tracks]


def frame_envelope(
    track: np.ndarray, num_frames: int, fps: float = FPS, sample_rate: int = SAMPLING_RATE
) -> np.ndarray:
    """Per-frame RMS of an audio track ``(F,)`` (the frame grid of the video)."""
    spf = samples_per_frame(fps, sample_rate)
    track = np.asarray(track, dtype=np.float64)[: num_frames * spf]
    track = np.pad(track, (0, num_frames * spf - track.size))
    return np.sqrt((track.reshape(num_frames, spf) ** 2).mean(1)).astype(np.float32)
