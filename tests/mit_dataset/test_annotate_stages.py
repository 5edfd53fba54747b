"""The pipeline's stages one at a time, on inputs small enough to check by hand."""

import subprocess

import numpy as np
import pytest

from mit_dataset.annotate import AnnotateConfig, assign_splits
from mit_dataset.annotate.align import face_inside, match_faces
from mit_dataset.annotate.normalize import irregular_step_fraction, normalize_video
from mit_dataset.annotate.selection import select_clips
from mit_dataset.annotate.tracks import Track, interpolate_track, link_detections, split_at_cuts
from mit_dataset.media import probe_media

OFFICIAL = AnnotateConfig()


def _track(track_id, start, end, x, size=80.0):
    boxes = np.tile([x, 100, x + size, 100 + size], (end - start, 1)).astype(np.float32)
    return Track(start, boxes, track_id)


def test_official_thresholds_are_the_defaults():
    assert (OFFICIAL.min_clip_frames, OFFICIAL.min_face_size, OFFICIAL.min_face_area_ratio) == (125, 64, 0.5)
    assert (OFFICIAL.min_speakers, OFFICIAL.max_speakers, OFFICIAL.pose_min_score) == (2, 4, 0.4)


def test_clip_selection_rule_at_the_official_thresholds():
    shot = [(0, 400)]
    two = [_track(0, 0, 400, 100), _track(1, 0, 400, 400)]
    assert [(c.start, c.end, c.track_ids) for c in select_clips(shot, two, OFFICIAL)] == [(0, 400, (0, 1))]
    # A third face from frame 200: two clips; from frame 300 the second part is too short (100 < 125 frames).
    assert [(c.start, c.end) for c in select_clips(shot, [*two, _track(2, 200, 400, 700)], OFFICIAL)] == [
        (0, 200),
        (200, 400),
    ]
    assert [(c.start, c.end) for c in select_clips(shot, [*two, _track(2, 300, 400, 700)], OFFICIAL)] == [
        (0, 300)
    ]
    # Faces of 64 px count, 63 px do not (area >= 64x64); a small face neither joins nor splits a clip.
    assert select_clips(shot, [_track(0, 0, 400, 100, 64), _track(1, 0, 400, 400, 64)], OFFICIAL)
    assert not select_clips(shot, [_track(0, 0, 400, 100, 63), _track(1, 0, 400, 400, 80)], OFFICIAL)
    assert [(c.start, c.end) for c in select_clips(shot, [*two, _track(2, 150, 250, 700, 30)], OFFICIAL)] == [
        (0, 400)
    ]
    # Face-area ratio must exceed 0.5: 80 px next to 113 px (ratio 0.501) passes, next to 114 px (0.49) not.
    assert select_clips(shot, [_track(0, 0, 400, 100), _track(1, 0, 400, 400, 113)], OFFICIAL)
    assert not select_clips(shot, [_track(0, 0, 400, 100), _track(1, 0, 400, 400, 114)], OFFICIAL)
    # Five faces: no clip; 124 frames: no clip; people ordered left to right.
    assert not select_clips(shot, [_track(i, 0, 400, 10 + 150 * i) for i in range(5)], OFFICIAL)
    assert not select_clips([(0, 124)], [_track(0, 0, 124, 100), _track(1, 0, 124, 400)], OFFICIAL)
    assert select_clips(shot, [_track(0, 0, 400, 400), _track(1, 0, 400, 100)], OFFICIAL)[0].track_ids == (
        1,
        0,
    )


def test_tracks_interpolate_gaps_split_long_ones_and_never_cross_a_cut():
    frames = np.array([10, 11, 14, 15, 40])
    boxes = np.array(
        [[0, 0, 10, 10], [1, 0, 11, 10], [4, 0, 14, 10], [5, 0, 15, 10], [9, 9, 9, 9]], np.float32
    )
    tracks = interpolate_track(frames, boxes, max_gap=10, source_index=3)
    assert [(t.start, t.end, t.source_index) for t in tracks] == [(10, 16, 3), (40, 41, 3)]
    np.testing.assert_allclose(tracks[0].boxes[2:4, 0], [2, 3])  # filled linearly
    pieces = split_at_cuts([Track(0, np.zeros((100, 4), np.float32), 7)], [(0, 30), (30, 100)])
    assert [(p.start, p.end, p.track_id) for p in pieces] == [(0, 30, 7), (30, 100, 7)]


def test_iou_tracker_follows_people_and_starts_new_tracks():
    a, b = np.array([0, 0, 10, 10], np.float32), np.array([50, 0, 60, 10], np.float32)
    frames = [0, 1, 2, 3, 20]
    detections = [
        np.stack([a, b]),
        np.stack([b + 1, a + 1]),
        np.stack([a + 2]),
        np.stack([b + 2, a + 3]),
        np.stack([a]),
    ]
    linked = link_detections(frames, detections, min_iou=0.3, max_gap=5)
    assert [f.tolist() for f, _ in linked] == [[0, 1, 2, 3], [0, 1, 3], [20]]
    np.testing.assert_allclose(linked[1][1][:, 0], [50, 51, 52])


def test_face_tracks_go_to_the_person_box_that_holds_them_most_often():
    frames = np.arange(10)
    faces = np.stack([np.tile([10, 0, 20, 10], (10, 1)), np.tile([60, 0, 70, 10], (10, 1))]).astype(
        np.float32
    )
    left = Track(0, np.tile([0, 0, 40, 100], (10, 1)).astype(np.float32))
    right = Track(0, np.tile([45, 0, 100, 100], (10, 1)).astype(np.float32))
    wide = Track(0, np.tile([0, 0, 100, 100], (3, 1)).astype(np.float32))  # holds both, but in 3 frames only
    assert match_faces(faces, [wide, right, left], frames) == [2, 1]
    assert match_faces(faces, [], frames) == [-1, -1]
    assert face_inside(faces[0, 0], np.array([15, 0, 40, 10], np.float32)) == pytest.approx(0.5)


def test_splits_hold_out_whole_videos_and_keep_easy_identities_in_training():
    clips = [(f"show_v{v}_{i:06d}to{i + 1:06d}", "show", f"v{v}") for v in range(40) for i in range(6)]
    config = AnnotateConfig(challenging_fraction=0.2, easy_fraction=0.2)
    splits = assign_splits(clips, config)
    by_video = {}
    for name, _, video in clips:
        by_video.setdefault(video, set()).add(splits[name])
    challenging = [v for v, s in by_video.items() if ("test", "challenging") in s]
    assert 3 <= len(challenging) <= 15 and all(by_video[v] == {("test", "challenging")} for v in challenging)
    easy = [v for v, s in by_video.items() if ("test", "easy") in s]
    assert easy and all(("train", "") in by_video[v] for v in easy)
    # Stable: adding videos moves no existing clip.
    more = assign_splits(
        clips + [(f"show_new{v}_000000to000001", "show", f"new{v}") for v in range(20)], config
    )
    assert all(more[name] == split for name, split in splits.items())


def test_normalise_retimes_the_issue_gap_repro_by_frame_order(tmp_path):
    gap = tmp_path / "gap.mp4"
    command = [
        "ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=128x72:rate=25:duration=2",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-vf", r"select='not(eq(n\,6))'",
        "-fps_mode", "passthrough", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-shortest", str(gap),
    ]  # fmt: skip
    subprocess.run(command, check=True)
    source = probe_media(gap)
    assert source.has_gaps and source.num_frames == 49 and irregular_step_fraction(source) == 0
    video = normalize_video(gap, tmp_path / "normalized.mp4", OFFICIAL)
    assert (video.num_frames, video.fps, video.source_fps) == (49, 25, 25)
    assert not probe_media(video.path).has_gaps
    np.testing.assert_array_equal(video.source_frames_of(np.arange(49)), np.arange(49))


def _x264_settings(path) -> str:
    """The options string x264 writes into its first SEI ("... options: cabac=0 ...")."""
    data = path.read_bytes()
    start = data.index(b"x264 - core")
    return data[start : data.index(b"\x00", start)].decode("ascii", "replace")


def _video_packets(path) -> list[bytes]:
    import av

    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def test_normalise_decodes_the_source_once_and_keeps_a_download_s_video(tmp_path, monkeypatch):
    from mit_dataset import media
    from mit_dataset.synthetic.episode import plan_episode, write_episode

    truth = write_episode(
        tmp_path / "raw", plan_episode(50, seed=3), seed=3, codec="h264", timestamps="constant",
        annotations=False,
    )  # fmt: skip
    probes = []
    real_probe = media.probe_media
    monkeypatch.setattr(media, "probe_media", lambda path: probes.append(path) or real_probe(path))
    monkeypatch.setattr("mit_dataset.annotate.normalize.probe_media", media.probe_media)
    video = normalize_video(truth.video_path, tmp_path / "normalized.mp4", OFFICIAL)
    assert probes == [truth.video_path]  # the stage's check and normalize_media share one decode
    assert _video_packets(video.path) == _video_packets(truth.video_path)  # stream copy: no re-encode
    assert (video.num_frames, video.fps, video.source_frames) == (truth.num_frames, 25, truth.num_frames)
    assert probe_media(video.path).is_normalized()


def test_a_re_encoded_normalised_copy_uses_the_fast_preset(tmp_path):
    from mit_dataset.synthetic.episode import plan_episode, write_episode

    truth = write_episode(tmp_path / "raw", plan_episode(50, seed=3), seed=3, annotations=False)  # gaps, MPEG-4
    video = normalize_video(truth.video_path, tmp_path / "normalized.mp4", OFFICIAL)
    assert video.num_frames == truth.num_frames and probe_media(video.path).is_normalized()
    assert "cabac=0" in _x264_settings(video.path)  # "ultrafast" (veryfast writes cabac=1)
    slower = normalize_video(
        truth.video_path, tmp_path / "veryfast.mp4", AnnotateConfig(normalize_preset="veryfast")
    )
    assert "cabac=1" in _x264_settings(slower.path)
    with pytest.raises(ValueError, match="normalize_preset must be one of"):
        AnnotateConfig(normalize_preset="turbo")
