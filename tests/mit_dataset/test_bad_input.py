"""Bad clips give a clear error naming the clip and the field, and nothing half-written is left behind."""

import json
import shutil

import numpy as np
import pytest

from mit_dataset.clip import ClipValidationError
from mit_dataset.clip_folder import read_clip_folder, write_clip_folder
from mit_dataset.hub import export_clip_folders, write_dataset_folder
from mit_dataset.video_io import write_video


def _corrupt_video(record, tmp_path):
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 definitely not a video")
    record.video_path = bad


def _missing_video(record, tmp_path):
    record.video_path = tmp_path / "nowhere.mp4"


def _frame_count_mismatch(record, tmp_path):
    record.num_frames += 3
    for person in record.persons:  # annotations agree with num_frames; the mp4 does not
        person.keypoints = np.concatenate([person.keypoints, person.keypoints[-3:]])
        person.boxes = np.concatenate([person.boxes, person.boxes[-3:]])
        person.face_boxes = np.concatenate([person.face_boxes, person.face_boxes[-3:]])
        person.speaking_score_raw = np.concatenate(
            [person.speaking_score_raw, person.speaking_score_raw[-3:]]
        )
        person.mask_rle = person.mask_rle + person.mask_rle[-3:]


def _size_mismatch(record, tmp_path):
    record.video_path = write_video(
        tmp_path / "small.mp4", [np.zeros((36, 64, 3), np.uint8)] * record.num_frames
    )


def _short_audio(record, tmp_path):
    record.audio = record.audio[: len(record.audio) // 2]


def _short_keypoints(record, tmp_path):
    record.persons[1].keypoints = record.persons[1].keypoints[:-2]


def _nan_keypoints(record, tmp_path):
    record.persons[0].keypoints[5, 3, 0] = np.nan


def _one_person(record, tmp_path):
    record.persons = record.persons[:1]


def _five_people(record, tmp_path):
    record.persons = record.persons + record.persons[:2]  # 3 + 2


def _wrong_mask_count(record, tmp_path):
    record.persons[0].mask_rle = record.persons[0].mask_rle[:-1]


BAD_RECORDS = [
    (_corrupt_video, r"'video'.*not a readable video"),
    (_missing_video, r"'video'.*does not exist"),
    (_frame_count_mismatch, r"'video'.*30 frames, expected num_frames=33"),
    (_size_mismatch, r"'video'.*64x36, expected width x height = 128x72"),
    (_short_audio, r"'audio' has 9600 samples"),
    (_short_keypoints, r"person 'p1', field 'keypoints' has shape \(28, 59, 3\), expected \(30, 59, 3\)"),
    (_nan_keypoints, r"person 'p0', field 'keypoints' contains NaN/inf \(first at index \[5, 3, 0\]\)"),
    (_one_person, r"'persons' has 1 people, expected 2 to 4"),
    (_five_people, r"'persons' has 5 people"),
    (_wrong_mask_count, r"person 'p0', field 'mask_rle' has 29 frames, expected 30"),
]


@pytest.mark.parametrize("corrupt, message", BAD_RECORDS, ids=[c.__name__.strip("_") for c, _ in BAD_RECORDS])
def test_bad_record_is_rejected_and_nothing_is_written(make_record, tmp_path, corrupt, message):
    good = make_record("good_clip", seed=1)
    bad = make_record("bad_clip", num_people=3)
    corrupt(bad, tmp_path)
    with pytest.raises(ClipValidationError, match=r"clip 'bad_clip': .*" + message):
        bad.validate()
    out_parent = tmp_path / "out"
    out_parent.mkdir()
    with pytest.raises(ClipValidationError, match="bad_clip"):
        write_dataset_folder([good, bad], out_parent / "ds", progress=False)
    with pytest.raises(ClipValidationError, match="bad_clip"):  # a generator: validated while writing
        write_dataset_folder(iter([good, bad]), out_parent / "ds", progress=False)
    assert list(out_parent.iterdir()) == []


def test_boxes_outside_the_frame_are_clipped(make_record, tmp_path):
    record = make_record("wide_boxes")
    record.persons[0].boxes[:, 0] = -25.0
    record.persons[1].face_boxes[:, 2] = 1000.0
    record.persons[1].boxes[:, 3] = 500.0
    record.validate()
    assert (record.persons[0].boxes[:, 0] == 0).all()
    assert (record.persons[1].face_boxes[:, 2] == record.width).all()
    assert (record.persons[1].boxes[:, 3] == record.height).all()


def test_bad_split_fields(make_record):
    with pytest.raises(ClipValidationError, match="'difficulty' is ''.*split 'test'"):
        make_record("no_difficulty", split="test").validate()
    with pytest.raises(ClipValidationError, match="'subset' is 'three_human'"):
        make_record("bad_subset", subset="three_human").validate()
    with pytest.raises(ClipValidationError, match="'clip_id'"):
        make_record("a/b").validate()


@pytest.fixture
def one_clip_dir(make_record, tmp_path):
    record = make_record("TonightShow_abc_000100to000130", seed=3)
    write_clip_folder(record, tmp_path / "clips")
    return tmp_path / "clips", record


def _export_fails(clips_dir, tmp_path, match):
    with pytest.raises(ClipValidationError, match=match):
        export_clip_folders(clips_dir, tmp_path / "exported", progress=False)
    assert not (tmp_path / "exported").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".exported")]


def test_clip_folder_bad_inputs(one_clip_dir, tmp_path):
    clips_dir, record = one_clip_dir
    folder = clips_dir / record.clip_id
    name = record.clip_id
    speakers_path = folder / "speaker_info_with_instance_bbox.json"
    speakers = speakers_path.read_text()

    (folder / "video.mp4").rename(folder / "video.bak")
    _export_fails(clips_dir, tmp_path, rf"clip '{name}': field 'video'")
    (folder / "video.mp4").write_bytes(b"garbage")
    _export_fails(clips_dir, tmp_path, rf"clip '{name}': field 'video'")
    (folder / "video.bak").replace(folder / "video.mp4")

    speakers_path.write_text("{not json")
    _export_fails(
        clips_dir, tmp_path, rf"clip '{name}': speaker_info_with_instance_bbox.json is not valid JSON"
    )
    entries = json.loads(speakers)
    entries[0]["face_track"][4][1] = None  # a hole in the track
    speakers_path.write_text(json.dumps(entries))
    _export_fails(clips_dir, tmp_path, rf"clip '{name}': person 'p0'.*'face_boxes' contains NaN")
    speakers_path.write_text(json.dumps(json.loads(speakers)[:1]))
    _export_fails(clips_dir, tmp_path, rf"clip '{name}': field 'persons' has 1 people")
    speakers_path.unlink()
    _export_fails(clips_dir, tmp_path, rf"clip '{name}': missing speaker_info")
    speakers_path.write_text(speakers)

    pose_file = sorted(folder.glob("pose/*.json"))[3]
    pose_text = pose_file.read_text()
    pose_file.write_text(
        json.dumps({"instance_info": [{"keypoints": [[0, 0]] * 17, "keypoint_scores": [1] * 17}]})
    )
    _export_fails(clips_dir, tmp_path, rf"clip '{name}': field 'pose' file .*{pose_file.name}.*expected 133")
    pose_file.write_text(pose_text)

    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(
        json.dumps({**meta, "subset": None, "source": "Unknown", "num_speaker": 5})
    )
    _export_fails(
        clips_dir, tmp_path, rf"clip '{name}': meta.json field 'source' is 'Unknown'.*'num_speaker' of 2-4"
    )
    (folder / "meta.json").write_text(json.dumps({**meta, "subset": None, "source": "test"}))
    assert read_clip_folder(folder).subset == "two_human"  # the released code's meta.json: from num_speaker
    (folder / "meta.json").write_text(json.dumps({**meta, "subset": None, "source": "TonightShow"}))
    assert read_clip_folder(folder).subset == "two_human"  # the show decides the subset
    export_clip_folders(clips_dir, tmp_path / "exported", progress=False)
    assert list((tmp_path / "exported" / "data" / "two_human").glob("train-00000-of-00001-*.parquet"))


def test_video_without_audio_track(one_clip_dir, tmp_path):
    clips_dir, record = one_clip_dir
    folder = clips_dir / record.clip_id
    shutil.copy(record.video_path, folder / "video.mp4")  # the original has no audio stream
    _export_fails(clips_dir, tmp_path, rf"clip '{record.clip_id}': field 'audio'.*no audio stream")
