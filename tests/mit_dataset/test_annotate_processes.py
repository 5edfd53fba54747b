"""Videos spread over processes: torchrun + accelerate, and ``datasets.map(num_proc=2)``, give the clips of one
process."""

import json
import os
import subprocess
import sys

import pytest
from annotate_support import TINY_CONFIG, UNIT

from mit_dataset.annotate import annotate, annotate_example, raw_videos_dataset, write_splits
from mit_dataset.synthetic.episode import ShotPlan, write_episode


def _clip_folders(out):
    return sorted(p.name for p in out.iterdir() if (p / "meta.json").is_file())


@pytest.fixture(scope="module")
def three_videos(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    for index, people in enumerate(((0, 1), (2, 3, 4), (5, 6))):
        frames = UNIT + 10 * index
        plan = [ShotPlan("wide", frames, people, ((0, frames),) * len(people), seed=index)]
        write_episode(raw, plan, video=f"v{index}", seed=index)
    single = tmp_path_factory.mktemp("single")
    report = annotate(raw, single, config=TINY_CONFIG, progress=False)
    assert len(report.clips) == 3
    return raw, single, report


def test_two_torchrun_processes_give_the_clips_of_one(three_videos, tmp_path):
    raw, single, report = three_videos
    out = tmp_path / "multi"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "mit_talk.cli", "mit-talking", "annotate", str(raw), "--out", str(out),
        "--min-clip-frames", str(UNIT), "--min-face-size", "8", "--no-progress",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("annotate: 3 videos, 3 done") == 1  # only the main process reports
    saved = json.loads((out / "annotate_report.json").read_text())
    assert saved["num_processes"] == 2 and sorted(c for v in saved["videos"] for c in v["clips"]) == sorted(report.clips)
    assert _clip_folders(out) == _clip_folders(single)
    assert (out / "splits.json").read_text() == (single / "splits.json").read_text()


def test_the_stage_functions_run_under_datasets_map(three_videos, tmp_path):
    raw, single, report = three_videos
    out = tmp_path / "mapped"
    videos = raw_videos_dataset(raw)
    results = videos.map(
        annotate_example,
        fn_kwargs={"out": str(out), "config": TINY_CONFIG.to_dict()},
        num_proc=2,
        load_from_cache_file=False,
    )
    assert results["status"] == ["done"] * 3
    assert sorted(c for clips in results["clips"] for c in clips) == sorted(report.clips)
    write_splits(out, TINY_CONFIG)
    assert _clip_folders(out) == _clip_folders(single)
    assert (out / "splits.json").read_text() == (single / "splits.json").read_text()
