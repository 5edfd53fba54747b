"""Bad raw videos and bad annotation files: the video is skipped with its reason, the run goes on, nothing is
written for it."""

import json
import pickle
import re
import shutil

import numpy as np
import pytest
from annotate_support import TINY_CONFIG, UNIT, expected_names

from mit_dataset.annotate import annotate
from mit_dataset.annotate.errors import SkipVideo
from mit_dataset.annotate.poses import read_pose_file
from mit_dataset.synthetic.episode import ShotPlan, plan_episode, write_episode

SOURCE = "SyntheticLateLateShow"


#: One wide shot of two people, one clip long: enough to reach every stage.
ONE_CLIP = [ShotPlan("wide", UNIT + 5, (0, 1), ((0, UNIT + 5), (0, UNIT + 5)), seed=5)]


def _episode(raw, name, plan=ONE_CLIP, **kwargs):
    return write_episode(raw, plan, video=name, seed=4, **kwargs)


def _pose_file(raw, name, frame=1):
    return raw / SOURCE / name / "pose" / f"output_{frame:04d}.json"


def _bad_pose(raw, name, document):
    _episode(raw, name)
    path = _pose_file(raw, name)
    path.write_text(document if isinstance(document, str) else json.dumps(document))


def _bad_talknet(raw, name, tracks, scores=None):
    _episode(raw, name)
    folder = raw / SOURCE / name / "pywork"
    (folder / "tracks.pckl").write_bytes(pickle.dumps(tracks))
    if scores is not None:
        (folder / "scores.pckl").write_bytes(pickle.dumps(scores))


class _Hostile:
    """Unpickling this would create ``path``: a loader that runs code fails the test."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _bad_labels(raw, name, text):
    _episode(raw, name)
    (raw / SOURCE / name / "labels" / "output_0001.txt").write_text(text)


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    good = _episode(raw, "good", plan_episode(UNIT, seed=4))
    _episode(raw, "silent", with_audio=False)
    _episode(raw, "vfr", timestamps="vfr")
    closeup = ShotPlan("closeup", 2 * UNIT, (0, 5), ((0, 2 * UNIT), (0, 2 * UNIT)), focus=0, seed=3)
    _episode(raw, "oneface", plan=[closeup])
    _bad_talknet(raw, "zerofaces", [], [])
    (raw / SOURCE / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(20_000))
    truncated = good.video_path.read_bytes()
    (raw / SOURCE / "truncated.mp4").write_bytes(truncated[: len(truncated) // 3])
    _bad_talknet(raw, "hostile", [_Hostile(raw / "pwned")], [np.zeros(3)])
    _bad_talknet(raw, "tracksdict", {"track": []})
    _bad_talknet(
        raw, "boxshape", [{"track": {"frame": np.arange(5), "bbox": np.zeros((5, 3))}}], [np.zeros(5)]
    )
    _bad_talknet(raw, "nanscores", [{"track": {"frame": np.arange(40), "bbox": np.ones((40, 4)) * [1, 1, 30, 30]}}],
                 [np.full(40, np.nan)])  # fmt: skip
    _bad_pose(
        raw, "posecount", {"instance_info": [{"keypoints": [[0, 0]] * 17, "keypoint_scores": [1] * 17}]}
    )
    _bad_pose(raw, "posenan", '{"instance_info": [{"keypoints": ' + json.dumps([[1, 2]] * 132) + ' + [[NaN, 1]], '
              '"keypoint_scores": ' + json.dumps([1] * 133) + "}]}")  # fmt: skip
    _bad_pose(raw, "posedeep", "[" * 100_000 + "]" * 100_000)
    _bad_pose(raw, "posetext", "not json at all")
    _bad_pose(raw, "poseshape", {"instance_info": ["person 1"]})  # once "string indices must be integers"
    _bad_labels(raw, "labelsbad", "0 0.5 0.5 0.2\n")
    _bad_labels(raw, "labelsrange", "0 3.5 0.5 0.2 0.9 0.8\n")
    _episode(raw, "noposes")
    shutil.rmtree(raw / SOURCE / "noposes" / "pose")
    out = tmp_path_factory.mktemp("clips")
    return good, annotate(raw, out, config=TINY_CONFIG, progress=False), out


def good_raw(bad_run):
    return bad_run[0].video_path.parents[1]


EXPECTED = {
    "silent": ("no_audio", "no audio stream"),
    "vfr": ("variable_frame_rate", "variable frame rate"),
    "oneface": ("no_clip", "1 face tracks"),
    "zerofaces": ("no_clip", "0 face tracks"),
    "corrupt": ("unreadable", "corrupt.mp4"),
    "truncated": ("unreadable", "truncated.mp4"),
    "hostile": ("bad_annotation", "tracks.pckl"),
    "tracksdict": ("bad_annotation", "tracks.pckl"),
    "boxshape": ("bad_annotation", "tracks.pckl"),
    "nanscores": ("bad_annotation", "NaN"),
    "posecount": ("bad_annotation", "output_0001.json"),
    "posenan": ("bad_annotation", "output_0001.json"),
    "posedeep": ("bad_annotation", "output_0001.json"),
    "posetext": ("bad_annotation", "output_0001.json"),
    "poseshape": ("bad_annotation", "video 'poseshape': field 'pose' file "),
    "labelsbad": ("bad_annotation", "output_0001.txt, line 1"),
    "labelsrange": ("bad_annotation", "normalised"),
    "noposes": ("no_poses", "no Sapiens pose JSON"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_video_is_skipped_with_its_reason(bad_run, name):
    _, report, out = bad_run
    entry = next(v for v in report.videos if v.video == name)
    reason, text = EXPECTED[name]
    assert (entry.status, entry.reason) == ("skipped", reason), entry.message
    assert text in entry.message and "\n" not in entry.message
    assert entry.clips == [] and not list(out.glob(f"{SOURCE}_{name}_*"))
    assert not (good_raw(bad_run) / "pwned").exists()  # the hostile pickle ran no code


def test_the_run_goes_on_and_reports_every_reason(bad_run):
    good, report, out = bad_run
    assert [v.video for v in report.done] == ["good"]
    assert sorted(report.clips) == expected_names(good)
    saved = json.loads((out / "annotate_report.json").read_text())
    assert saved["num_skipped"] == len(EXPECTED) and saved["skip_reasons"] == {
        "unreadable": 2, "no_audio": 1, "variable_frame_rate": 1, "bad_annotation": 11, "no_clip": 2, "no_poses": 1,
    }  # fmt: skip
    assert (
        "18 skipped (unreadable: 2, no_audio: 1, variable_frame_rate: 1, bad_annotation: 11"
        in report.summary()
    )
    clip_folders = sorted(p.name for p in out.iterdir() if (p / "meta.json").is_file())
    assert clip_folders == expected_names(good)
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != ".annotate-cache"]


@pytest.mark.parametrize(
    "document, problem",
    [
        (
            {"instance_info": ["person 1"]},
            r"instance_info\[0\] is a JSON string, not an object with 'keypoints'",
        ),
        ([{"keypoints": [[0, 0]] * 133}], r"top level is a JSON array without an 'instance_info' list"),
        ({"instance_info": [{"keypoints": [[0, 0]] * 133}]}, r"instance_info\[0\] is a JSON object, not an"),
        (
            {"meta_info": {}, "instance_info": {"0": {}}},
            r"top level is a JSON object without an 'instance_info' list",
        ),
    ],
)
def test_a_pose_file_of_the_wrong_shape_names_the_file_and_both_layouts(tmp_path, document, problem):
    path = tmp_path / "output_0007.json"
    path.write_text(json.dumps(document))
    with pytest.raises(SkipVideo) as raised:
        read_pose_file(path, "ep")
    message = str(raised.value)
    assert raised.value.reason == "bad_annotation" and re.search(problem, message), message
    assert message.startswith(f"video 'ep': field 'pose' file {path} is not a Sapiens pose (")
    assert '"instance_info": [{"keypoints"' in message and "(lite)" in message and "(full)" in message


def test_both_sapiens_layouts_are_read(tmp_path):
    lite = {"keypoints": [[1.0, 2.0]] * 133, "keypoint_scores": [0.5] * 133}
    full = {**lite, "bbox": [[0, 0, 9, 9]], "bbox_score": 0.9}
    for name, document in (
        ("lite", {"instance_info": [lite]}),
        ("full", {"meta_info": {}, "instance_info": [full]}),
    ):
        path = tmp_path / f"{name}_0001.json"
        path.write_text(json.dumps(document))
        poses = read_pose_file(path, "ep")
        assert poses.shape == (1, 133, 3) and (poses[0, :, 2] == 0.5).all()


def test_unsafe_names_and_a_missing_folder(tmp_path):
    raw = tmp_path / "raw"
    (raw / "show").mkdir(parents=True)
    (raw / "show" / "bad\nname.mp4").write_bytes(b"x")
    report = annotate(raw, tmp_path / "out", config=TINY_CONFIG, progress=False)
    assert report.videos[0].reason == "unreadable" and "control character" in report.videos[0].message
    with pytest.raises(FileNotFoundError, match="no such folder of raw videos"):
        annotate(tmp_path / "absent", tmp_path / "out", progress=False)


def test_a_forged_done_file_deletes_nothing_but_this_videos_old_clips(tmp_path):
    """The cache's done.json lists the clip folders a rerun replaces; a forged or corrupt list (the cache folder
    may be shared) deletes neither folders outside ``--out`` nor another video's clips."""
    raw, out, cache = tmp_path / "raw", tmp_path / "out", tmp_path / "cache"
    _episode(raw, "ep", width=128, height=72)
    victims = [tmp_path / "victim", out / "victim", out / f"{SOURCE}_other_000000to000010"]
    stale = out / f"{SOURCE}_ep_999000to999010"  # this video's clip of an earlier run: removed
    for folder in [*victims, stale]:
        folder.mkdir(parents=True)
    done = cache / SOURCE / "ep" / "done.json"
    done.parent.mkdir(parents=True)
    names = ["../victim", "victim", victims[2].name, stale.name, 7, f"{SOURCE}_ep_/../../victim"]
    done.write_text(json.dumps({"key": "forged", "clips": names}))
    report = annotate(raw, out, config=TINY_CONFIG, cache_dir=cache, progress=False)
    assert report.videos[0].status == "done", report.videos[0].message
    assert all(folder.is_dir() for folder in victims) and not stale.exists()
    done.write_text(json.dumps({"key": "forged", "clips": "not a list"}))
    assert annotate(raw, out, config=TINY_CONFIG, cache_dir=cache, progress=False).videos[0].status == "done"
