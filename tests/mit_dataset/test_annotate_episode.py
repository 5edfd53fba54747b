"""The collection pipeline against synthetic episodes with known truth (import paths: TalkNet, Sapiens, YOLO)."""

import json
import shutil

import numpy as np
import pytest
from annotate_support import TINY_CONFIG, UNIT, expected_names, pose_accuracy, transition_errors

from mit_dataset.annotate import STAGES, AnnotateConfig, annotate
from mit_dataset.clip_folder import read_splits
from mit_dataset.synthetic.episode import plan_episode, write_episode
from mit_dataset.synthetic.external import AnnotationNoise


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """One episode with the documented annotation noise, annotated once (and exported to the Hub layout)."""
    root = tmp_path_factory.mktemp("noisy")
    truth = write_episode(
        root / "raw", plan_episode(UNIT, seed=1, repeats=2), seed=1, noise=AnnotationNoise()
    )
    report = annotate(root / "raw", root / "clips", config=TINY_CONFIG, export=root / "hub", progress=False)
    return truth, report, root


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    truth = write_episode(root / "raw", plan_episode(UNIT, seed=2), seed=2, noise=AnnotationNoise.clean())
    report = annotate(root / "raw", root / "clips", config=TINY_CONFIG, progress=False)
    return truth, report, root


def test_every_true_clip_is_found_and_no_false_clip(noisy, clean):
    for truth, report, root in (noisy, clean):
        assert sorted(report.clips) == expected_names(truth)
        on_disk = sorted(p.name for p in (root / "clips").iterdir() if (p / "meta.json").is_file())
        assert on_disk == expected_names(truth)
        kinds = set(truth.shot_kinds)
        assert kinds == {"wide", "closeup"}  # the close-up and the short shot hold no clip
    truth, _, root = noisy
    clip = truth.expected_clips(UNIT)[0]
    meta = json.loads((root / "clips" / truth.clip_name(clip) / "meta.json").read_text())
    assert meta["period"] == [clip.start / 25, clip.end / 25] and meta["num_speaker"] == len(clip.appearances)


def test_pose_to_person_assignment(noisy, clean):
    assert pose_accuracy(clean[0], clean[2] / "clips") == 1.0
    assert pose_accuracy(noisy[0], noisy[2] / "clips") >= 0.95


def test_pose_assignment_with_boxes_derived_from_poses(noisy, tmp_path):
    truth, _, root = noisy
    raw = tmp_path / "raw"
    shutil.copytree(root / "raw", raw)
    shutil.rmtree(raw / truth.source / truth.video / "labels")
    config = AnnotateConfig(min_clip_frames=UNIT, min_face_size=8, person_boxes="auto")
    report = annotate(raw, tmp_path / "clips", config=config, progress=False)
    assert report.videos[0].methods["person_boxes"] == "builtin"
    assert sorted(report.clips) == expected_names(truth)
    assert pose_accuracy(truth, tmp_path / "clips") >= 0.95


def test_speaking_listening_transitions_within_a_tenth_of_a_second(noisy):
    truth, _, root = noisy
    errors, num_true, num_ours = transition_errors(truth, root / "clips")
    assert len(errors) >= 12
    assert np.mean(errors) < 0.1 and np.max(errors) <= 0.2
    assert num_ours <= num_true  # no flicker


def test_exported_dataset_loads_with_load_dataset(noisy, tmp_path, monkeypatch):
    from datasets import load_dataset

    truth, _, root = noisy
    monkeypatch.chdir(tmp_path)
    splits = read_splits(root / "clips")
    dataset = load_dataset(str(root / "hub"), cache_dir=str(tmp_path / "cache"))
    rows = [row for split in dataset.values() for row in split]
    assert sorted(row["clip_id"] for row in rows) == expected_names(truth)
    for row in rows:
        clip = next(c for c in truth.expected_clips(UNIT) if truth.clip_name(c) == row["clip_id"])
        assert row["num_frames"] == clip.end - clip.start and row["num_speakers"] == len(clip.appearances)
        assert len(row["video"]) == row["num_frames"] and row["fps"] == 25
        assert row["split"] == (splits[row["clip_id"]][0] if row["clip_id"] in splits else "train")
        for person in row["persons"]:
            assert np.asarray(person["keypoints"]).shape == (row["num_frames"], 59, 3)
    assert {row["subset"] for row in rows} == {"two_human", "multi_human"}


def test_report_json_and_summary_line(noisy):
    truth, report, root = noisy
    saved = json.loads((root / "clips" / "annotate_report.json").read_text())
    assert (
        saved["summary"]
        == report.summary()
        == (f"annotate: 1 videos, 1 done, 0 skipped, {len(expected_names(truth))} clips -> {root / 'clips'}")
    )
    video = saved["videos"][0]
    assert video["status"] == "done" and set(video["seconds"]) == set(STAGES)
    assert video["methods"] == {
        "face_tracks": "import",
        "speaking_scores": "import",
        "person_boxes": "import",
    }
    assert video["video_seconds"] == pytest.approx(truth.num_frames / 25)


def test_rerun_resumes_from_the_cache(clean, tmp_path):
    truth, _, root = clean
    raw, out = tmp_path / "raw", tmp_path / "clips"
    shutil.copytree(root / "raw", raw)
    first = annotate(raw, out, config=TINY_CONFIG, progress=False)
    before = {
        p.name: (p / "video.mp4").stat().st_mtime_ns for p in out.iterdir() if p.is_dir() and p.name[0] != "."
    }
    again = annotate(raw, out, config=TINY_CONFIG, progress=False)
    assert again.videos[0].cached == list(STAGES) and again.videos[0].seconds == {}
    assert sorted(again.clips) == sorted(first.clips)
    assert before == {
        p.name: (p / "video.mp4").stat().st_mtime_ns for p in out.iterdir() if p.is_dir() and p.name[0] != "."
    }
    # A setting of stage 5 changed: stages 1-4 come from the cache, the rest is redone, stale clips go.
    longer = AnnotateConfig(min_clip_frames=40, min_face_size=8)
    third = annotate(raw, out, config=longer, progress=False)
    assert third.videos[0].cached == ["normalize", "shots", "faces", "speaking"]
    assert sorted(third.clips) == expected_names(truth, longer)
    assert sorted(p.name for p in out.iterdir() if (p / "meta.json").is_file()) == expected_names(
        truth, longer
    )


def test_a_crash_while_writing_leaves_nothing_and_the_rerun_finishes(clean, tmp_path, monkeypatch):
    from mit_dataset.annotate import write as write_stage

    truth, _, root = clean
    real = write_stage.write_clip_folder
    calls = []

    def crash_on_second(record, folder):
        calls.append(record.clip_id)
        if len(calls) == 2:
            raise KeyboardInterrupt  # a crash, not bad input: it must propagate
        return real(record, folder)

    monkeypatch.setattr(write_stage, "write_clip_folder", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        annotate(root / "raw", tmp_path / "clips", config=TINY_CONFIG, progress=False)
    assert [p.name for p in (tmp_path / "clips").iterdir() if not p.name.startswith(".")] == []
    monkeypatch.setattr(write_stage, "write_clip_folder", real)
    report = annotate(root / "raw", tmp_path / "clips", config=TINY_CONFIG, progress=False)
    assert report.videos[0].cached == list(STAGES[:-1]) and sorted(report.clips) == expected_names(truth)


def _frame_agreement(truth, clips_dir, config):
    agree = total = 0
    for clip in truth.expected_clips(config.min_clip_frames):
        info = json.loads(
            (clips_dir / truth.clip_name(clip) / "speaker_info_with_instance_bbox.json").read_text()
        )
        for p, index in enumerate(clip.appearances):
            appearance = truth.appearances[index]
            true = appearance.speaking[clip.start - appearance.first : clip.end - appearance.first]
            agree += int(((np.asarray(info[p]["speaking_score"]) > 0) == true).sum())
            total += len(true)
    return agree / total


@pytest.mark.slow
def test_builtin_speaker_baseline_on_a_synthetic_episode(tmp_path):
    """The README's figure for the built-in speaking scores (Silero VAD x mouth motion) with TalkNet's face
    tracks, on a 384x216 episode (faces ~30 px)."""
    truth = write_episode(tmp_path / "raw", plan_episode(50, seed=7), width=384, height=216, seed=7)
    config = AnnotateConfig(min_clip_frames=50, min_face_size=8, speaking_scores="builtin")
    report = annotate(tmp_path / "raw", tmp_path / "clips", config=config, progress=False)
    assert report.videos[0].methods["speaking_scores"] == "builtin"
    assert sorted(report.clips) == expected_names(truth, config)
    agreement = _frame_agreement(truth, tmp_path / "clips", config)
    errors, num_true, num_ours = transition_errors(truth, tmp_path / "clips", config)
    print(f"built-in speaker: frame agreement {agreement:.2f}, transition error mean {np.mean(errors[np.isfinite(errors)]):.3f} s, "
          f"{np.sum(~np.isfinite(errors))} missed of {len(errors)}, {num_ours} transitions for {num_true} true")  # fmt: skip
    assert agreement >= 0.8
    assert np.median(errors) < 0.1
