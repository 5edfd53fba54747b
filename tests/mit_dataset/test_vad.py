import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from mit_dataset import vad
from mit_dataset.vad import mix_tracks, resample_audio, speaking_scores_from_tracks

pytest.importorskip("silero_vad")

SR = 16_000
FPS = 25.0
VOWEL_FORMANTS = [
    (730, 1090, 2440),
    (270, 2290, 3010),
    (300, 870, 2240),
    (530, 1840, 2480),
    (640, 1190, 2390),
]


def speech_like(seconds, seed=0, sr=SR, f0=120.0):
    """Voiced harmonic bursts: a gliding sawtooth glottal source through vowel formant resonators,
    shaped into 120-280 ms syllables."""
    rng = np.random.default_rng(seed)
    total, chunks, phase = int(seconds * sr), [], 0.0
    while sum(map(len, chunks)) < total:
        n = int(rng.uniform(0.12, 0.28) * sr)
        t = np.arange(n) / sr
        pitch = f0 * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(1, 3) * t + rng.uniform(0, 6)))
        phases = phase + 2 * np.pi * np.cumsum(pitch) / sr
        phase = phases[-1]
        y = ((phases / (2 * np.pi)) % 1.0) * 2 - 1 + 0.05 * rng.standard_normal(n)
        for fc, bw in zip(VOWEL_FORMANTS[rng.integers(len(VOWEL_FORMANTS))], (90, 110, 160)):
            r, theta = np.exp(-np.pi * bw / sr), 2 * np.pi * fc / sr
            y = lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], y)
        chunks.append(y * np.sin(np.pi * np.linspace(0, 1, n)))
    x = np.concatenate(chunks)[:total]
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def _track(segments, seconds, seed, sr=SR, f0=120.0):
    """Silence (with a faint noise floor) except speech-like signal in the (start, stop) second segments."""
    rng = np.random.default_rng(100 + seed)
    track = rng.normal(0, 0.002, int(seconds * sr)).astype(np.float32)
    for k, (start, stop) in enumerate(segments):
        a, b = int(start * sr), int(stop * sr)
        track[a:b] += speech_like(stop - start, seed=seed * 10 + k, sr=sr, f0=f0)[: b - a]
    return track


def _frames(segments, margin=0.25):
    """Frame indices well inside (margin seconds from the edges of) the segments."""
    return np.concatenate([np.arange(int((s + margin) * FPS), int((e - margin) * FPS)) for s, e in segments])


def test_two_speakers_taking_turns():
    seconds, num_frames = 8.0, 200
    turns_a, turns_b = [(0.5, 3.0), (5.5, 7.5)], [(3.0, 5.5)]
    tracks = [_track(turns_a, seconds, seed=0, f0=110), _track(turns_b, seconds, seed=1, f0=140)]
    scores = speaking_scores_from_tracks(tracks, SR, num_frames, fps=FPS)
    assert scores.shape == (2, num_frames) and scores.dtype == np.float32
    assert scores.min() >= -1 and scores.max() <= 1
    a_speaks, b_speaks = _frames(turns_a), _frames(turns_b)
    # (Silero is trained on real speech; on this synthetic voice a few frames inside a turn may dip.)
    assert (scores[0, a_speaks] > 0).mean() > 0.9 and scores[0, a_speaks].mean() > 0.5
    assert (scores[1, b_speaks] > 0).mean() > 0.85 and scores[1, b_speaks].mean() > 0.3
    # each is silent while the other one speaks, and both are silent at the start
    assert (scores[0, b_speaks] < 0).all() and scores[0, b_speaks].mean() < -0.8
    assert (scores[1, a_speaks] < 0).all() and scores[1, a_speaks].mean() < -0.8
    assert (scores[:, :5] < 0).all()


def test_other_sample_rate_int16_and_short_track():
    seconds, num_frames = 4.0, 100
    sr = 44_100
    speaking = _track([(0.5, 3.5)], seconds, seed=2, sr=sr, f0=130)
    column = speaking[:, None]  # (S, 1): mono, as the pipeline's audio= takes it
    int16 = (np.clip(speaking, -1, 1) * 32767).astype(np.int16)
    short = _track([(0.2, 1.8)], 2.0, seed=3, sr=sr)  # ends halfway: the rest counts as silent
    scores = speaking_scores_from_tracks([column, int16, torch.from_numpy(short)], sr, num_frames, fps=FPS)
    inside = _frames([(0.5, 3.5)])
    assert (scores[0, inside] > 0).mean() > 0.95
    np.testing.assert_allclose(scores[0], scores[1], atol=0.05)
    assert (scores[2, _frames([(0.2, 1.8)])] > 0).mean() > 0.9
    assert (scores[2, 55:] < -0.9).all()


def test_smoothing_and_silence():
    silence = np.zeros(SR * 2, np.float32)
    scores = speaking_scores_from_tracks([silence], SR, 50, fps=FPS, smoothing_frames=1)
    assert (scores < -0.9).all()
    # a longer video than the audio: frames past the end are silent, not an error
    scores = speaking_scores_from_tracks([silence[: SR // 2]], SR, 50, fps=FPS)
    assert scores.shape == (1, 50) and (scores < -0.9).all()

    speaking = _track([(1.0, 3.0)], 4.0, seed=4)
    raw = speaking_scores_from_tracks([speaking], SR, 100, smoothing_frames=1)
    smooth = speaking_scores_from_tracks([speaking], SR, 100, smoothing_frames=9)
    assert np.abs(np.diff(smooth[0])).sum() < np.abs(np.diff(raw[0])).sum()


def test_per_frame_average_matches_windows():
    # window values 0, 1, 2, ... at 32 ms; a frame at 25 fps spans 1.25 windows
    values = np.arange(10, dtype=np.float64)[None]
    frames = vad._per_frame(values, 4, FPS)
    expected = [
        (0 * 1 + 1 * 0.25) / 1.25,
        (1 * 0.75 + 2 * 0.5) / 1.25,
        (2 * 0.5 + 3 * 0.75) / 1.25,
        (3 * 0.25 + 4 * 1) / 1.25,
    ]
    np.testing.assert_allclose(frames[0], expected)
    assert np.isnan(vad._per_frame(values, 20, FPS)[0, -1])  # past the end: filled as silence by the caller


def test_mix_tracks_is_peak_safe():
    a = np.full(100, 0.8, np.float32)
    b = np.full(60, 0.7, np.float32)
    mixed = mix_tracks([a, b])
    assert mixed.shape == (100,) and mixed.dtype == np.float32
    assert np.abs(mixed).max() == pytest.approx(0.99)
    assert mixed[0] / mixed[-1] == pytest.approx(1.5 / 0.8)  # relative levels kept
    quiet = mix_tracks([a * 0.1, b * 0.1])
    np.testing.assert_allclose(quiet[:60], 0.15, rtol=1e-6)  # never amplified
    np.testing.assert_allclose(quiet[60:], 0.08, rtol=1e-6)


def test_resample_audio():
    tone = np.sin(2 * np.pi * 300 * np.arange(44_100) / 44_100).astype(np.float32)
    out = resample_audio(tone, 44_100, SR)
    assert len(out) == SR
    spectrum = np.abs(np.fft.rfft(out))
    assert np.fft.rfftfreq(len(out), 1 / SR)[spectrum.argmax()] == pytest.approx(300, abs=1)


@pytest.mark.parametrize(
    "tracks, kwargs, message",
    [
        ([], {}, "at least one"),
        ([np.zeros((2, 2, 2))], {}, r"speaker_audios\[0\]"),
        ([np.full(10, np.nan)], {}, "NaN"),
        ([np.zeros(10)], {"num_frames": 0}, "num_frames"),
        ([np.zeros(10)], {"smoothing_frames": 0}, "smoothing_frames"),
        ([np.zeros(10)], {"sample_rate": 0}, "sample_rate"),
    ],
)
def test_bad_input(tracks, kwargs, message):
    args = {"sample_rate": SR, "num_frames": 5} | kwargs
    with pytest.raises(ValueError, match=message):
        speaking_scores_from_tracks(tracks, **args)


def test_stereo_is_rejected_like_the_pipelines_audio():
    stereo = np.zeros((4410, 2), np.float32)  # soundfile.read of 0.1 s of 44.1 kHz stereo
    with pytest.raises(ValueError, match=r"speaker_audios: a \(4410, 2\) array looks like one multi-channel"):
        speaking_scores_from_tracks(stereo, 44_100, 250)
    with pytest.raises(ValueError, match=r"speaker_audios\[1\]: .*shape \(4410, 2\) \(stereo: downmix"):
        speaking_scores_from_tracks([stereo[:, 0], stereo], 44_100, 250)
    assert vad.check_speaker_tracks(np.zeros((2, 4410)))[1].shape == (4410,)  # (P, S): speakers first


def test_loading_keeps_torch_threads():
    threads = torch.get_num_threads()
    vad.load_vad_model()
    assert torch.get_num_threads() == threads


def test_synthetic_mit_voices():
    """The synthetic MIT generator's per-speaker voice tracks (``speaker_audio``): frames where a track is silent
    score < 0, and its voiced frames score clearly higher. (The speaking *schedule* is not the reference here:
    the synthetic voices pause inside a turn. Silero is also less sure of some synthetic voices than of real
    speech, so only the ordering is asserted for them.)"""
    from scipy.ndimage import binary_erosion

    synthetic = pytest.importorskip("mit_dataset.synthetic.generator")
    for index, spec in enumerate(synthetic.plan_clips(3, seed=0, seconds=4.0)):
        scene = synthetic.build_scene(spec, 128, 72)
        scores = speaking_scores_from_tracks(scene.speaker_audio, SR, spec.num_frames)
        assert scores.shape == (spec.num_people, spec.num_frames)
        for person, track in enumerate(scene.speaker_audio):
            rms = np.sqrt((track[: spec.num_frames * 640].reshape(spec.num_frames, 640) ** 2).mean(axis=1))
            voiced = binary_erosion(rms > 0.02, iterations=2)
            silent = binary_erosion(rms < 1e-3, iterations=5)  # >= 200 ms away from any sound
            assert (scores[person, silent] < 0).all(), (index, person)
            if voiced.any() and silent.any():
                assert scores[person, voiced].mean() > scores[person, silent].mean() + 0.5, (index, person)
