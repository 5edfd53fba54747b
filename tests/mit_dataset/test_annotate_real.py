"""The built-in detectors on real talking-head videos (``../shared/real``, see SOURCES.md)."""

import av
import cv2
import numpy as np
import pytest

from mit_dataset.annotate import AnnotateConfig
from mit_dataset.annotate.faces import detect_face_tracks
from mit_dataset.annotate.normalize import normalize_video
from mit_dataset.annotate.shots import detect_shots
from mit_dataset.annotate.speaking import baseline_speaking_scores
from mit_dataset.media import probe_media
from mit_dataset.talknet import box_iou
from mit_dataset.vad import resample_audio, speech_logits
from mit_dataset.video_io import read_audio, read_video_frames

#: The faces of these talking heads are 200-330 px: detect from 128 px up (fast) with the shipped cascades.
CONFIG = AnnotateConfig(min_face_size=128)
#: 1.mp4 ends on a 30-frame end card (text and a logo, no face) after a cut at frame 269.
FACE_FRAMES = {"1.mp4": (0, 269), "2.mp4": (0, 292)}


@pytest.fixture(scope="module", params=sorted(FACE_FRAMES))
def real(request, real_media, tmp_path_factory):
    source = real_media / "moore-animateanyone" / request.param
    video = normalize_video(source, tmp_path_factory.mktemp("real") / "normalized.mp4", CONFIG)
    shots = detect_shots(video, CONFIG)
    return request.param, source, video, shots, detect_face_tracks(video, shots, CONFIG)


def test_a_face_track_covers_the_face_in_every_frame(real):
    name, _, video, shots, tracks = real
    first, end = FACE_FRAMES[name]
    assert [(t.start, t.end) for t in tracks] == [
        (first, end)
    ]  # one track, every face frame, none on the card
    assert {(a, b) for a, b in shots} >= {(first, end)} or shots == [(first, end)]
    reference = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_alt2.xml")
    checked = 0
    for t in range(first, end, 25):
        gray = cv2.cvtColor(read_video_frames(video.path, t, 1)[0], cv2.COLOR_RGB2GRAY)
        found = reference.detectMultiScale(gray, 1.1, 5, minSize=(100, 100))
        if len(found):  # a full-resolution detection with another cascade: our box must cover it
            x, y, w, h = max(found, key=lambda f: f[2] * f[3])
            ours = tracks[0].box_at(np.array([t]))[0]
            assert box_iou(ours, np.array([x, y, x + w, y + h])) > 0.5, t
            checked += 1
    assert checked >= 0.8 * len(range(first, end, 25))


def _raw_audio_from_first_frame(source, sample_rate, num_frames, fps):
    """The source's audio cut at its first video frame's time, decoded independently of the pipeline."""
    info = probe_media(source)
    chunks = []
    with av.open(str(source)) as container:
        for frame in container.decode(audio=0):
            chunks.append(frame.to_ndarray().mean(0))
    audio = resample_audio(np.concatenate(chunks), info.sample_rate, sample_rate)
    start = round((info.video_start - info.audio_start) * sample_rate)
    return audio[start : start + round(num_frames / fps * sample_rate)]


def test_the_speaker_baseline_marks_the_speech_the_audio_holds(real):
    _, source, video, _, tracks = real
    audio = read_audio(video.path, CONFIG.sample_rate)
    scores = baseline_speaking_scores(video, audio, tracks, CONFIG)
    track = tracks[0]
    speaking = scores[0] > 0
    truth_audio = _raw_audio_from_first_frame(source, CONFIG.sample_rate, video.num_frames, video.fps)
    speech = (
        speech_logits([truth_audio], CONFIG.sample_rate, video.num_frames, video.fps)[0][
            track.start : track.end
        ]
        > 0
    )
    assert 0.3 < speech.mean() < 0.9  # the clip holds both speech and pauses
    assert (speaking & speech).sum() >= 0.9 * speech.sum()
    assert (speaking & ~speech).sum() <= 0.1 * (~speech).sum()
