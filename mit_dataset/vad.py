"""Speaking scores from per-speaker audio tracks, by voice activity detection (VAD).

It lives in ``mit_dataset`` (the lowest layer) because two parts need it: the annotation pipeline's built-in
active-speaker baseline (:mod:`mit_dataset.annotate`) and ``CovOGPipeline(speaker_audios=...)``.

CovOG conditions each person on a per-frame speaking score in [-1, 1] (``clip(s / 3, -1, 1)`` of a
TalkNet-style logit ``s``). When the user has one audio track per speaker (lapel microphones, separated
stems, a TTS voice per person) the scores can be derived instead of annotated: run Silero VAD on every
track, turn its speech probability into a logit, average it per video frame, smooth it over a few frames
and map it to [-1, 1] the same way as the dataset's scores. :func:`mix_tracks` makes the single mixed
waveform that drives the audio tokens.

Silero VAD (the ``silero-vad`` PyPI package, MIT licence) ships its TorchScript weights inside the
package, so nothing is downloaded at run time; it needs only torch (torchaudio is an optional extra used
for file I/O, which this module does not use). Resampling to 16 kHz uses ``scipy.signal.resample_poly``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np

from .timeseries import centred_moving_average

__all__ = [
    "VAD_SAMPLE_RATE",
    "check_speaker_tracks",
    "load_vad_model",
    "mix_tracks",
    "resample_audio",
    "speaking_scores_from_tracks",
    "speech_logits",
    "speech_probabilities",
]

#: Silero VAD runs at 16 kHz on 512-sample (32 ms) windows.
VAD_SAMPLE_RATE = 16_000
VAD_WINDOW = 512
#: Logit scale of the dataset's speaking scores: score = clip(logit / SCORE_SCALE, -1, 1).
SCORE_SCALE = 3.0
_PROB_EPS = 1e-4

_model = None
_model_lock = threading.Lock()

_INSTALL_HINT = (
    "speaking scores from audio tracks need Silero VAD: `pip install silero-vad` "
    "(only torch is required; its packaged weights are used, nothing is downloaded)"
)


def load_vad_model():
    """Load (once) the TorchScript Silero VAD model shipped inside the ``silero-vad`` package."""
    global _model
    with _model_lock:
        if _model is None:
            import torch

            threads = torch.get_num_threads()
            try:
                # silero_vad.model calls torch.set_num_threads(1) at import time; undo that process-wide
                # side effect so the rest of the pipeline keeps its threads.
                from silero_vad import load_silero_vad
            except ImportError as error:
                raise ImportError(_INSTALL_HINT) from error
            finally:
                torch.set_num_threads(threads)
            model = load_silero_vad(onnx=False)
            model.eval()
            _model = model
        return _model


def _as_float_mono(audio, what: str) -> np.ndarray:
    if type(audio).__module__.startswith("torch"):
        audio = audio.detach().cpu().numpy()
    array = np.asarray(audio)
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32) / float(np.iinfo(array.dtype).max + 1)
    array = array.astype(np.float32, copy=False)
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.ndim != 1 or array.size == 0:
        hint = " (stereo: downmix it, e.g. wav.mean(axis=1))" if array.ndim == 2 else ""
        raise ValueError(
            f"{what}: expected a non-empty mono waveform of shape (S,), got shape {array.shape}{hint}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: waveform contains NaN or infinite values")
    return array


def check_speaker_tracks(speaker_audios, name: str = "speaker_audios") -> list[np.ndarray]:
    """One float32 mono ``(S,)`` waveform per speaker, from a list of waveforms or a ``(P, S)`` array.

    The same rule as the pipeline's ``audio=`` (mono only, ``(1, S)`` / ``(S, 1)`` taken as mono): a track
    with two or more channels is an error, and so is a 2-D array laid out ``(samples, channels)`` (more rows
    than columns, as ``soundfile.read`` returns stereo), which would otherwise read as thousands of
    two-sample speakers.

    Raises:
        TypeError: not a sequence or array. ValueError: no tracks, a bad track (naming ``name[i]``), or a
            samples-first 2-D array.
    """
    if type(speaker_audios).__module__.startswith("torch"):
        speaker_audios = speaker_audios.detach().cpu().numpy()
    if isinstance(speaker_audios, np.ndarray):
        if speaker_audios.ndim != 2:
            raise ValueError(
                f"{name}: expected a list of mono tracks or a (P, S) array, got shape {speaker_audios.shape}"
            )
        if speaker_audios.shape[0] > speaker_audios.shape[1]:
            raise ValueError(
                f"{name}: a {speaker_audios.shape} array looks like one multi-channel waveform laid out (samples, "
                "channels), as soundfile.read returns stereo; pass one mono track per speaker: a list of (S,) "
                "waveforms or a (P, S) array"
            )
        speaker_audios = list(speaker_audios)
    if not isinstance(speaker_audios, Sequence) or isinstance(speaker_audios, (str, bytes)):
        raise TypeError(
            f"{name}: expected a list with one mono waveform per speaker, got {type(speaker_audios)}"
        )
    if len(speaker_audios) == 0:
        raise ValueError(f"{name}: expected at least one speaker track, got none")
    return [_as_float_mono(track, f"{name}[{index}]") for index, track in enumerate(speaker_audios)]


def resample_audio(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``) of a mono float waveform."""
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    audio = np.asarray(audio, dtype=np.float32)
    if orig_sr == target_sr or audio.size == 0:
        return audio
    from scipy.signal import resample_poly

    divisor = math.gcd(int(orig_sr), int(target_sr))
    return resample_poly(audio, int(target_sr) // divisor, int(orig_sr) // divisor).astype(np.float32)


def mix_tracks(speaker_audios: Sequence[np.ndarray], peak: float = 0.99) -> np.ndarray:
    """Mix per-speaker tracks (same sample rate) into one mono waveform, zero-padding shorter tracks.

    The sum is scaled down (never up) so its peak stays at most ``peak``: overlapping speech cannot clip,
    and the relative levels of the speakers are kept.
    """
    tracks = check_speaker_tracks(speaker_audios)
    length = max(len(track) for track in tracks)
    mixed = np.zeros(length, np.float32)
    for track in tracks:
        mixed[: len(track)] += track
    top = float(np.abs(mixed).max()) if length else 0.0
    if top > peak:
        mixed *= peak / top
    return mixed


def speech_probabilities(speaker_audios: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
    """Silero speech probability per 32 ms window, ``(P, W)`` float32 in [0, 1] (tracks run as a batch)."""
    import torch

    tracks = [
        resample_audio(track, sample_rate, VAD_SAMPLE_RATE) for track in check_speaker_tracks(speaker_audios)
    ]
    length = max(max(len(track) for track in tracks), VAD_WINDOW)
    batch = np.zeros((len(tracks), length), np.float32)
    for index, track in enumerate(tracks):
        batch[index, : len(track)] = track
    model = load_vad_model()
    # One intra-op thread: Silero runs 512-sample windows one after another, each far too small to split;
    # with 2 threads on a busy 2-core machine OpenMP's spin-waiting made 12 s of audio take 5-26 s instead
    # of 0.6-1.1 s (measured here).
    threads = torch.get_num_threads()
    with _model_lock, torch.inference_mode():
        torch.set_num_threads(1)
        try:
            probs = model.audio_forward(torch.from_numpy(batch), VAD_SAMPLE_RATE)
        finally:
            torch.set_num_threads(threads)
    return probs.float().numpy().reshape(len(tracks), -1)


def _per_frame(window_values: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """Average window values (P, W) over each video frame's time span -> (P, F); past the end = last value."""
    num_windows = window_values.shape[1]
    hop = VAD_WINDOW / VAD_SAMPLE_RATE
    edges = np.arange(num_frames + 1) / fps / hop  # frame boundaries in window units
    # Integrate the step function defined by the windows (value i on [i, i+1)) between the edges.
    cumulative = np.concatenate(
        [np.zeros((window_values.shape[0], 1)), np.cumsum(window_values, axis=1)], axis=1
    )

    def integral(x):
        x = np.clip(x, 0, num_windows)
        whole = np.floor(x).astype(int)
        part = x - whole
        extra = np.where(
            whole < num_windows, window_values[:, np.minimum(whole, num_windows - 1)] * part, 0.0
        )
        return cumulative[:, whole] + extra

    start, stop = edges[:-1], edges[1:]
    covered = np.clip(stop, 0, num_windows) - np.clip(start, 0, num_windows)
    totals = integral(stop) - integral(start)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(covered > 0, totals / np.maximum(covered, 1e-12), np.nan)
    return means


def speech_logits(
    speaker_audios: Sequence[np.ndarray],
    sample_rate: int,
    num_frames: int,
    fps: float = 25.0,
    smoothing_frames: int = 5,
    threshold: float = 0.5,
) -> np.ndarray:
    """Per-frame speech logits ``(P, num_frames)`` float64, one row per track: Silero's speech probability
    ``p`` per 32 ms window becomes ``log(p / (1 - p)) - logit(threshold)`` (0 at ``p == threshold``, > 0 for
    speech), averaged over each video frame (``fps``) and smoothed with a centred moving average of
    ``smoothing_frames`` frames (1 = off). Frames past the end of a track count as silent (about -9)."""
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if smoothing_frames < 1:
        raise ValueError(f"smoothing_frames must be >= 1, got {smoothing_frames}")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    tracks = check_speaker_tracks(speaker_audios)
    probs = np.clip(speech_probabilities(tracks, sample_rate).astype(np.float64), _PROB_EPS, 1 - _PROB_EPS)
    # Windows past a track's own end (zero padding to the longest track) are silence: the model's
    # probability there is already ~0, make it exact.
    for index, track in enumerate(tracks):
        valid = math.ceil(len(track) / sample_rate * VAD_SAMPLE_RATE / VAD_WINDOW)
        probs[index, valid:] = _PROB_EPS
    logits = np.log(probs) - np.log1p(-probs)
    frame_logits = _per_frame(logits, num_frames, fps)
    silent = math.log(_PROB_EPS) - math.log1p(-_PROB_EPS)
    frame_logits = np.where(np.isnan(frame_logits), silent, frame_logits)
    frame_logits = centred_moving_average(frame_logits, smoothing_frames)
    return frame_logits - (math.log(threshold) - math.log1p(-threshold))


def speaking_scores_from_tracks(
    speaker_audios: Sequence[np.ndarray],
    sample_rate: int,
    num_frames: int,
    fps: float = 25.0,
    smoothing_frames: int = 5,
    threshold: float = 0.5,
    scale: float = SCORE_SCALE,
) -> np.ndarray:
    """Per-frame speaking scores ``(P, num_frames)`` float32 in [-1, 1] from one audio track per speaker.

    The :func:`speech_logits` of each track mapped like the dataset's TalkNet scores: ``clip(logit / scale,
    -1, 1)``. So a speaking frame scores near 1, a silent one near -1 and ``p == threshold`` scores 0.
    """
    logits = speech_logits(speaker_audios, sample_rate, num_frames, fps, smoothing_frames, threshold)
    return np.clip(logits / scale, -1.0, 1.0).astype(np.float32)
