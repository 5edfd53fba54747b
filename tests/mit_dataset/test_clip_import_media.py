"""Importing clip folders whose media disagree with their containers (issue 8, issue 11's real-world facts):
what a row says is what every decoder gives, and the annotations follow the frames they describe."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from datasets import load_dataset
from media_samples import (
    SCORE_STEP,
    assert_row_agrees_with_media,
    authors_style_clip,
    face_box,
    frame_codes,
    needs_ffmpeg_cli,
    released_clip_folder,
    tone,
    write_sample,
)

from mit_dataset.clip import ClipValidationError
from mit_dataset.clip_folder import read_clip_folder, write_clip_folder
from mit_dataset.hub import export_clip_folders
from mit_dataset.media import probe_media
from mit_dataset.video_io import read_audio, read_video_frames


def export_and_load(clips: Path, tmp_path: Path, monkeypatch) -> dict:
    out = export_clip_folders(clips, tmp_path / "dataset", progress=False)
    monkeypatch.chdir(tmp_path)
    ds = load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    return {row["clip_id"]: row for split in ds.values() for row in split}


def test_released_code_clip_with_gap_and_late_start_is_realigned(tmp_path, monkeypatch):
    # the cut lost 9 frames at the start (video at 0.36 s), one timestamp is missing (frame 6); the
    # annotations cover the whole period: 50 entries on the timeline, 40 decoded frames
    video = write_sample(
        tmp_path / "cut.mp4", num_frames=41, drop=(6,), video_start_frames=9, audio=tone(2.0, 44_100, 2, 0.6),
        audio_start=0.01, audio_codec="libmp3lame",
    )  # fmt: skip
    folder = released_clip_folder(tmp_path / "clips" / "test_abc_000250to000300", video, entries=50)
    record = read_clip_folder(folder, work_dir=tmp_path / "work")
    kept = [i for i in range(41) if i != 6]
    assert (record.num_frames, record.fps, record.width, record.height) == (40, 25.0, 128, 72)
    assert record.subset == "two_human"  # num_speaker 2 (source is the constant "test")
    assert frame_codes(read_video_frames(record.video_path)) == kept  # re-timed by frame order
    timeline = [9 + i for i in kept]
    for index, person in enumerate(record.persons):
        np.testing.assert_allclose(person.speaking_score_raw, SCORE_STEP * np.array(timeline), atol=1e-6)
        np.testing.assert_allclose(person.face_boxes, [face_box(j, index) for j in timeline], atol=1e-4)
        assert person.keypoints_133[:, :, 0].min() >= face_box(timeline[0], index)[0]  # poses realigned too
        np.testing.assert_allclose(
            person.keypoints_133[:, 0, 0], [face_box(j, index)[0] + 1 for j in timeline]
        )
    # audio: sample 0 plays with the first kept frame (0.36 s on the source clock)
    source_audio = read_audio(video, align_to_video=False)
    start = probe_media(video).audio_start
    shift = round((0.36 - start) * 16_000)
    np.testing.assert_allclose(record.audio[:8000], source_audio[shift : shift + 8000], atol=0.02)

    row = export_and_load(folder.parent, tmp_path, monkeypatch)[folder.name]
    assert_row_agrees_with_media(row, record)
    assert row["fps"] == 25.0  # nominal, not the average 40 / 1.64 s


def test_arrays_too_short_for_the_timeline_name_the_alternatives(tmp_path):
    video = write_sample(tmp_path / "cut.mp4", num_frames=30, video_start_frames=9, audio=tone(1.6, 16_000))
    folder = released_clip_folder(tmp_path / "clips" / "c", video, entries=25)
    with pytest.raises(ClipValidationError, match=r"clip 'c': person 'p0', field 'face_track' has 25 frames, "
                       r"expected 30 \(or 29, repaired\), or at least 38 on the clip's timeline \(video starts at 0.360 s"):  # fmt: skip
        read_clip_folder(folder, work_dir=tmp_path / "work")


def test_regular_clip_is_embedded_as_is(tmp_path, make_record):
    record = make_record("TonightShow_abc_000100to000130")
    folder = write_clip_folder(record, tmp_path / "clips")
    imported = read_clip_folder(folder, work_dir=tmp_path / "work")
    assert imported.video_path == folder / "video.mp4" and not (tmp_path / "work").exists()


def test_irregular_clip_without_work_dir_says_why(tmp_path):
    video = write_sample(tmp_path / "gap.mp4", num_frames=30, drop=(6,), audio=tone(1.2, 44_100))
    folder = released_clip_folder(tmp_path / "clips" / "c", video, entries=29)
    with pytest.raises(ClipValidationError, match=r"clip 'c': field 'video': video timestamps have gaps; .*"
                       r"audio is 44100 Hz with 1 channels; pass work_dir"):  # fmt: skip
        read_clip_folder(folder)


@needs_ffmpeg_cli
def test_issue_rotation_example_rotates_frames_and_annotations(tmp_path, make_record, monkeypatch):
    record = make_record("TonightShow_abc_000100to000130")  # 128x72, landscape keypoints
    folder = write_clip_folder(record, tmp_path / "clips")
    rotated = tmp_path / "rotated.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(folder / "video.mp4"), "-c", "copy",
         "-metadata:s:v:0", "rotate=90", str(rotated)],
        check=True,
    )  # fmt: skip
    shutil.move(rotated, folder / "video.mp4")
    imported = read_clip_folder(folder, work_dir=tmp_path / "work")
    assert (imported.width, imported.height) == (72, 128)
    expected_frames = np.rot90(read_video_frames(record.video_path), 1, axes=(1, 2))
    assert np.abs(read_video_frames(imported.video_path).astype(np.float32) - expected_frames).mean() < 4
    for got, person in zip(imported.persons, record.persons):
        face = person.face_boxes  # (x, y) -> (y, 128 - x)
        np.testing.assert_allclose(
            got.face_boxes,
            np.stack([face[:, 1], 128 - face[:, 2], face[:, 3], 128 - face[:, 0]], 1),
            atol=1e-4,
        )
        keypoints = person.keypoints
        np.testing.assert_allclose(got.keypoints[..., 0], keypoints[..., 1], atol=1e-4)
        np.testing.assert_allclose(got.keypoints[..., 1], 128 - keypoints[..., 0], atol=1e-4)
        assert (got.keypoints[..., 0] <= 72).all() and (got.keypoints[..., 1] <= 128).all()
    row = export_and_load(folder.parent, tmp_path, monkeypatch)[record.clip_id]
    assert_row_agrees_with_media(row, imported)

    from covog_diffusers.pipelines.mit import inputs_from_mit_row

    inputs = inputs_from_mit_row(row, num_frames=4)
    assert np.asarray(inputs["reference_image"]).shape[:2] == (128, 72)  # portrait, with portrait keypoints
    assert (
        np.asarray(inputs["poses"])[..., 0].max() <= 72 and np.asarray(inputs["poses"])[..., 1].max() <= 128
    )


def test_annotations_made_on_displayed_frames_are_kept(tmp_path):
    video = write_sample(tmp_path / "portrait.mp4", num_frames=10, rotation=90, audio=tone(0.4, 16_000))
    folder = released_clip_folder(tmp_path / "clips" / "c", video, entries=10)
    speakers = json.loads((folder / "speaker_info.json").read_text())
    speakers[1]["face_track"] = [[40, 100, 60, 125]] * 10  # y beyond the stored height 72: display coords
    (folder / "speaker_info.json").write_text(json.dumps(speakers))
    imported = read_clip_folder(folder, work_dir=tmp_path / "work")
    np.testing.assert_allclose(imported.persons[1].face_boxes[0], [40, 100, 60, 125])
    speakers[1]["face_track"] = [[100, 100, 120, 125]] * 10  # fits neither 128x72 nor 72x128
    (folder / "speaker_info.json").write_text(json.dumps(speakers))
    with pytest.raises(ClipValidationError, match=r"clip 'c': speaker_info.json: coordinates reach x=120, "
                       r"y=125, outside both the stored 128x72 frame and the displayed 72x128 frame"):  # fmt: skip
        read_clip_folder(folder, work_dir=tmp_path / "work")


@needs_ffmpeg_cli
def test_authors_style_mpeg4_mp3_clip_exports(tmp_path, monkeypatch):
    clip, _ = authors_style_clip(tmp_path)
    info = probe_media(clip)
    timeline = info.timeline_indices()
    folder = released_clip_folder(
        tmp_path / "clips" / "test_abc_000034to000125", clip, entries=int(timeline[-1]) + 1
    )
    record = read_clip_folder(folder, work_dir=tmp_path / "work")
    assert (record.num_frames, record.fps) == (info.num_frames, 25.0)
    np.testing.assert_allclose(record.persons[0].speaking_score_raw, SCORE_STEP * timeline, atol=1e-6)
    row = export_and_load(folder.parent, tmp_path, monkeypatch)[folder.name]
    assert_row_agrees_with_media(row, record)
    assert frame_codes(row["video"][:].data.permute(0, 2, 3, 1).numpy()) == frame_codes(
        read_video_frames(clip)
    )


# --------------------------------------------------------------------------------- bad speaker info


@pytest.fixture
def released_folder(tmp_path):
    video = write_sample(tmp_path / "v.mp4", num_frames=10, audio=tone(0.4, 16_000), sample_rate=16_000)
    return released_clip_folder(tmp_path / "clips" / "c", video, entries=10)


def _set_field(folder: Path, person: int, field: str, value) -> None:
    speakers = json.loads((folder / "speaker_info.json").read_text())
    speakers[person][field] = value
    (folder / "speaker_info.json").write_text(json.dumps(speakers))


BAD_FIELDS = [
    ("instance_bbox", "10 20 30 40", r"field 'instance_bbox' must be \[x1, y1, x2, y2\] numbers, got str"),
    ("instance_bbox", [30, 20, 10, 40], r"field 'instance_bbox' has an inverted box \[30.0, 20.0, 10.0, 40.0\]"),
    ("clip_range", "1-10", r"field 'clip_range' must be \[first, last\] \(1-based frame numbers\), got '1-10'"),
    ("clip_range", [1, 5, 10], r"field 'clip_range' must be \[first, last\].*got \[1, 5, 10\]"),
    ("clip_range", [3, 12], r"field 'clip_range' \[3, 12\] runs past the end of 'face_track' \(10 entries\)"),
    ("clip_range", [0, 9], r"field 'clip_range' \[0, 9\] must be whole numbers with 1 <= first <= last"),
    ("face_track", [[40, 5, 20, 30]] * 10, r"field 'face_track' has an inverted box \[40.0, 5.0, 20.0, 30.0\] at index 0"),
    ("face_track", "none", r"field 'face_track' must be \[\[x1, y1, x2, y2\], ...\], got str"),
    ("speaking_score", [0.1, float("nan")] * 5, r"field 'speaking_score' has NaN/inf at index 1, between finite"),
]  # fmt: skip


@pytest.mark.parametrize(
    "field, value, message", BAD_FIELDS, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(BAD_FIELDS)]
)
def test_bad_speaker_info_fields_name_clip_person_and_field(released_folder, field, value, message):
    _set_field(released_folder, 1, field, value)
    with pytest.raises(ClipValidationError, match=r"clip 'c': person 'p1': speaker_info.json " + message):
        read_clip_folder(released_folder)


def test_nan_speaking_scores_at_track_ends_are_repaired_like_talknet(released_folder):
    scores = [float("nan")] * 2 + [0.5, 0.7, 0.9, 1.1, 1.3, 1.5] + [float("nan")] * 2
    _set_field(released_folder, 0, "speaking_score", scores)
    record = read_clip_folder(released_folder)
    np.testing.assert_allclose(
        record.persons[0].speaking_score_raw, [0.5] * 3 + [0.7, 0.9, 1.1, 1.3] + [1.5] * 3
    )
    _set_field(released_folder, 0, "speaking_score", [float("nan")] * 10)
    with pytest.raises(
        ClipValidationError, match=r"person 'p0': speaker_info.json field 'speaking_score' has no finite"
    ):
        read_clip_folder(released_folder)


def test_clip_folder_without_meta_json_is_an_error_not_a_silent_skip(released_folder, tmp_path):
    (released_folder / "meta.json").unlink()
    with pytest.raises(ClipValidationError, match=r"clip 'c': missing meta.json"):
        export_clip_folders(released_folder.parent, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    (released_folder.parent / "notes").mkdir()  # a folder without any clip file is not a clip
    (released_folder.parent / "c" / "meta.json").write_text(json.dumps({"source": "test", "num_speaker": 2}))
    export_clip_folders(released_folder.parent, tmp_path / "out", progress=False)


def test_non_utf8_splits_file_names_the_file(released_folder, tmp_path):
    (released_folder.parent / "splits.json").write_bytes('{"c": "t\xe9st"}'.encode("latin-1"))
    with pytest.raises(ClipValidationError, match=r"splits.json: not valid UTF-8 JSON"):
        export_clip_folders(released_folder.parent, tmp_path / "out", progress=False)


def test_splits_file_can_give_the_subset(released_folder, tmp_path, monkeypatch):
    (released_folder.parent / "splits.json").write_text(
        json.dumps({"c": {"split": "test", "difficulty": "easy", "subset": "multi_human"}})
    )
    rows = export_and_load(released_folder.parent, tmp_path, monkeypatch)
    assert (rows["c"]["subset"], rows["c"]["split"]) == ("multi_human", "test")
