import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from datasets import load_dataset

from mit_dataset.builder import MITClipFolderBuilder
from mit_dataset.clip import ClipValidationError
from mit_dataset.clip_folder import assign_poses, read_clip_folder, write_clip_folder, write_clip_folders
from mit_dataset.features import MIT_FEATURES
from mit_dataset.hub import export_clip_folders
from mit_dataset.masks import box_mask_rle
from mit_dataset.talknet import MISSING_SCORE, load_talknet_outputs, person_scores, smooth_track_scores
from mit_dataset.video_io import probe_video
from mit_talk.cli import mit_talking as main


def _instance_boxes(person):
    boxes = np.asarray(person.boxes, np.float32)
    return np.concatenate([boxes[:, :2].min(0), boxes[:, 2:].max(0)])


def _assert_imported(row_or_record_persons, record, height, width):
    """Compare imported persons with the record written to clip folders (what the format can carry)."""
    for got, person in zip(row_or_record_persons, record.persons):
        get = got.__getitem__ if isinstance(got, dict) else lambda name, got=got: getattr(got, name)
        assert get("person_id") == person.person_id and get("identity") == person.identity
        np.testing.assert_array_equal(np.asarray(get("keypoints"), np.float32), person.keypoints)
        np.testing.assert_array_equal(np.asarray(get("face_boxes"), np.float32), person.face_boxes)
        np.testing.assert_array_equal(
            np.asarray(get("speaking_score_raw"), np.float32), person.speaking_score_raw
        )
        box = np.clip(_instance_boxes(person), 0, [width, height, width, height])
        np.testing.assert_array_equal(
            np.asarray(get("boxes"), np.float32), np.repeat(box[None], record.num_frames, 0)
        )
        assert (
            list(get("mask_rle"))
            == [box_mask_rle(_instance_boxes(person), height, width)] * record.num_frames
        )
        if person.keypoints_133 is not None:
            np.testing.assert_array_equal(np.asarray(get("keypoints_133"), np.float32), person.keypoints_133)


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory, synthetic_records):
    return write_clip_folders(synthetic_records, tmp_path_factory.mktemp("clips") / "clips")


def test_written_folder_follows_the_official_layout(clips_dir, synthetic_records):
    record = max(synthetic_records, key=lambda r: len(r.persons))
    folder = clips_dir / record.clip_id
    assert sorted(p.name for p in folder.iterdir()) == [
        "meta.json",
        "pose",
        "speaker_info_with_instance_bbox.json",
        "video.mp4",
    ]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["num_speaker"] == len(record.persons) and meta["subset"] == record.subset
    speakers = json.loads((folder / "speaker_info_with_instance_bbox.json").read_text())
    assert speakers[0]["clip_range"] == [1, record.num_frames] and len(speakers[0]["instance_bbox"]) == 4
    pose = json.loads((folder / "pose" / "000001.json").read_text())
    assert len(pose["instance_info"][0]["keypoints"]) == 133 and len(pose["instance_info"]) == len(
        record.persons
    )
    info = probe_video(folder / "video.mp4")
    assert (info.num_frames, info.width, info.height) == (record.num_frames, record.width, record.height)
    splits = json.loads((clips_dir / "splits.json").read_text())
    assert splits == {
        r.clip_id: {"split": "test", "difficulty": r.difficulty}
        for r in synthetic_records
        if r.split == "test"
    }


def test_export_round_trip(clips_dir, synthetic_records, tmp_path, monkeypatch):
    out = tmp_path / "exported"
    assert main(["export", str(clips_dir), "--out", str(out)]) == 0  # the `mit-talking export` command
    monkeypatch.chdir(tmp_path)
    ds = load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    records = {r.clip_id: r for r in synthetic_records}
    assert sorted(list(ds["train"]["clip_id"]) + list(ds["test"]["clip_id"])) == sorted(records)
    for split, part in ds.items():
        assert part.features == MIT_FEATURES
        for row in part:
            record = records[row["clip_id"]]
            assert (row["split"], row["difficulty"], row["subset"]) == (
                split,
                record.difficulty,
                record.subset,
            )
            assert row["num_frames"] == record.num_frames == row["video"].metadata.num_frames
            assert (row["width"], row["height"]) == (record.width, record.height)
            assert (
                abs(row["audio"].get_all_samples().data.shape[1] - len(record.audio)) < 2048
            )  # AAC in the mp4
            _assert_imported(row["persons"], record, record.height, record.width)


@pytest.mark.parametrize("config", ["all", "two_human", "multi_human"])
def test_builder_class(clips_dir, synthetic_records, config, tmp_path):
    builder = MITClipFolderBuilder(
        config_name=config, data_dir=str(clips_dir), cache_dir=str(tmp_path / "cache")
    )
    builder.download_and_prepare()
    ds = builder.as_dataset()
    assert builder.info.features == MIT_FEATURES
    for split in ("train", "test"):
        expected = {r.clip_id for r in synthetic_records if r.split == split and config in ("all", r.subset)}
        assert set(ds[split]["clip_id"]) == expected
    row = ds["test"][0]
    assert row["video"].metadata.num_frames == row["num_frames"]


def _copy_clip(clips_dir: Path, record, tmp_path: Path) -> Path:
    target = tmp_path / "one" / record.clip_id
    shutil.copytree(clips_dir / record.clip_id, target)
    return target


def _edit_speakers(folder: Path, edit):
    path = folder / "speaker_info_with_instance_bbox.json"
    speakers = json.loads(path.read_text())
    for entry in speakers:
        edit(entry)
    path.write_text(json.dumps(speakers))


def test_clip_range_offsets_are_applied(clips_dir, synthetic_records, tmp_path):
    record = synthetic_records[1]
    folder = _copy_clip(clips_dir, record, tmp_path)

    def shift(entry):  # arrays of the whole track: 7 frames before the clip and 3 after
        for key in ("face_track", "speaking_score"):
            entry[key] = [entry[key][0]] * 7 + entry[key] + [entry[key][-1]] * 3
        entry["clip_range"] = [8, 7 + record.num_frames]

    _edit_speakers(folder, shift)
    _assert_imported(read_clip_folder(folder).persons, record, record.height, record.width)


def test_one_frame_short_is_repaired_two_is_an_error(clips_dir, synthetic_records, tmp_path):
    record = synthetic_records[0]
    folder = _copy_clip(clips_dir, record, tmp_path)

    def drop_last(entry):
        entry["face_track"] = entry["face_track"][:-1]
        entry["speaking_score"] = entry["speaking_score"][:-1]
        entry.pop("clip_range")

    _edit_speakers(folder, drop_last)
    max(folder.glob("pose/*.json")).unlink()
    imported = read_clip_folder(folder)
    assert imported.num_frames == record.num_frames
    for got, person in zip(imported.persons, record.persons):
        np.testing.assert_array_equal(got.face_boxes[:-1], person.face_boxes[:-1])
        np.testing.assert_array_equal(got.face_boxes[-1], person.face_boxes[-2])  # last value repeated
        np.testing.assert_array_equal(got.speaking_score_raw[-1], person.speaking_score_raw[-2])
        np.testing.assert_array_equal(got.keypoints[-1], person.keypoints[-2])

    _edit_speakers(folder, lambda entry: entry.update(speaking_score=entry["speaking_score"][:-1]))
    with pytest.raises(
        ClipValidationError,
        match=rf"{record.clip_id}.*person 'p0'.*'speaking_score'.*{record.num_frames - 2}",
    ):
        read_clip_folder(folder)
    max(folder.glob("pose/*.json")).unlink()
    _edit_speakers(folder, lambda entry: entry.update(speaking_score=entry["speaking_score"] + [0.0]))
    with pytest.raises(
        ClipValidationError, match=rf"{record.clip_id}.*'pose'.*{record.num_frames - 2} files"
    ):
        read_clip_folder(folder)


def test_plain_speaker_info_and_lite_pose_variant(synthetic_records, tmp_path):
    record = synthetic_records[2]
    folder = write_clip_folder(record, tmp_path / "clips", with_instance_bbox=False)
    for path in folder.glob("pose/*.json"):  # the lite demo variant has no bbox
        pose = json.loads(path.read_text())
        for instance in pose["instance_info"]:
            del instance["bbox"], instance["bbox_score"]
        path.write_text(json.dumps(pose))
    imported = read_clip_folder(folder)
    for got, person in zip(imported.persons, record.persons):
        face = person.face_boxes
        centre, half = (face[:, 0] + face[:, 2]) / 2, 1.5 * (face[:, 2] - face[:, 0])
        stand_in = np.stack([centre - half, face[:, 1], centre + half, np.full(len(face), record.height)], 1)
        np.testing.assert_allclose(
            got.boxes, np.clip(stand_in, 0, [record.width, record.height] * 2), atol=1e-4
        )
        assert got.keypoints_133.shape == (record.num_frames, 133, 3)


def test_pose_assignment_picks_most_keypoints_inside_and_uses_each_pose_once():
    def pose(x, y, inside_score=0.9, count=133):
        p = np.zeros((133, 3), np.float32)
        p[:, 0], p[:, 1], p[:count, 2] = x, y, inside_score
        return p

    boxes = np.array([[0, 0, 50, 50], [40, 0, 100, 50]], np.float32)
    poses = [
        pose(200, 200),
        pose(45, 10, count=60),
        pose(45, 10, count=100),
        pose(70, 20, count=30),
        pose(10, 10, 0.3),
    ]
    # pose 2 (100 points) is inside both boxes: person 0 takes it first (tie broken by order),
    # person 1 then gets pose 1 (60 points, also inside box 1); pose 4's points are below 0.4.
    assert assign_poses(poses, boxes) == [2, 1]
    assert assign_poses([pose(200, 200)], boxes) == [-1, -1]
    assert assign_poses([], boxes) == [-1, -1]


def test_talknet_scores_never_nan_when_short():
    smoothed = smooth_track_scores(np.arange(8.0), track_length=12, half_window=2)
    assert np.isfinite(smoothed).all()
    # centre windows are plain 5-frame means; past the 8 scores the window stays at the last one
    np.testing.assert_allclose(smoothed, [1.0, 1.5, 2, 3, 4, 5, 5.5, 6, 6, 6, 6, 6])
    np.testing.assert_allclose(smooth_track_scores(np.arange(10.0), 10, 2)[2:8], np.arange(2.0, 8.0))
    assert (smooth_track_scores(np.zeros(0), 4) == MISSING_SCORE).all()


def _write_talknet(folder: Path, tracks, scores):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "tracks.pckl", "wb") as handle:
        pickle.dump(tracks, handle)
    with open(folder / "scores.pckl", "wb") as handle:
        pickle.dump(scores, handle)


def test_talknet_import_assigns_tracks_by_face_box(synthetic_records, tmp_path):
    record = synthetic_records[0]
    frames = record.num_frames
    faces = np.stack([p.face_boxes for p in record.persons])  # (2, F, 4)
    tracks = [
        {"track": {"frame": np.arange(frames), "bbox": faces[1] + 1}, "proc_track": {}},
        {"track": {"frame": np.arange(5, frames), "bbox": faces[0, 5:]}, "proc_track": {}},
    ]
    scores = [np.full(frames - 4, 2.0), np.full(frames - 10, -1.5)]  # both shorter than their tracks
    _write_talknet(tmp_path / "pywork", tracks, scores)
    loaded = load_talknet_outputs(tmp_path / "pywork" / "tracks.pckl", tmp_path / "pywork" / "scores.pckl")
    result = person_scores(loaded, faces)
    assert np.isfinite(result).all()
    np.testing.assert_allclose(result[1], 2.0)
    np.testing.assert_allclose(result[0, 5:], -1.5)
    np.testing.assert_allclose(result[0, :5], MISSING_SCORE)

    folder = write_clip_folder(record, tmp_path / "clips")
    _edit_speakers(folder, lambda entry: entry.pop("speaking_score"))
    with pytest.raises(ClipValidationError, match="speaking_score"):
        read_clip_folder(folder)
    _write_talknet(folder / "pywork", tracks, scores)
    np.testing.assert_allclose(read_clip_folder(folder).persons[1].speaking_score_raw, 2.0)


def test_bad_splits_file(clips_dir, synthetic_records, tmp_path):
    bad = tmp_path / "clips"
    shutil.copytree(clips_dir, bad)
    name = synthetic_records[0].clip_id
    (bad / "splits.json").write_text(json.dumps({name: {"split": "test"}}))
    with pytest.raises(ValueError, match=f"{name}.*difficulty"):
        export_clip_folders(bad, tmp_path / "out", progress=False)
    (bad / "splits.json").write_text(json.dumps({"no_such_clip": "train"}))
    with pytest.raises(ValueError, match="no_such_clip"):
        export_clip_folders(bad, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
