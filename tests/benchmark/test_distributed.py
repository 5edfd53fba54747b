"""Scoring spread over 2 CPU processes (torchrun + accelerate PartialState, gloo) gives the numbers of one."""

import json
import os
import subprocess
import sys

import numpy as np
import torch
from bench_data import DEFAULT_CLIPS, ground_truth_submission, make_test_split, write_tiny_detector

from benchmark.scoring import evaluate_submission
from mit_dataset.video_io import read_video_frames, write_video


def test_two_processes_give_the_single_process_numbers(tmp_path, monkeypatch):
    monkeypatch.delenv("MIT_BENCH_I3D", raising=False)
    # 5 clips: an uneven split (3 + 2), so gathering order matters.
    clips = DEFAULT_CLIPS + (("easy_two_1", "two_human", "easy"),)
    split = make_test_split(tmp_path / "gt", clips=clips, num_frames=16)
    split.save_to_disk(str(tmp_path / "dataset"))
    perfect = ground_truth_submission(split, tmp_path / "perfect")
    noisy = tmp_path / "noisy"
    rng = np.random.default_rng(1)
    for path in sorted(perfect.iterdir()):
        frames = read_video_frames(path).astype(np.float32)
        write_video(
            noisy / path.name, np.clip(frames + rng.normal(0, 25, frames.shape), 0, 255).astype(np.uint8)
        )
    detector = write_tiny_detector(tmp_path / "tiny_i3d.pt")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun worker (OMP_NUM_THREADS=1): the same float32 summation order
    try:
        single, _ = evaluate_submission(
            str(tmp_path / "dataset"), noisy, i3d_path=str(detector), trust_detector=True, progress=False
        )
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "multi.json"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "mit_talk.cli", "mit-bench", "evaluate", "--dataset", str(tmp_path / "dataset"), "--predictions", str(noisy),
        "--out", str(out), "--i3d", str(detector), "--trust-detector", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("results written to") == 1  # only the main process reports and writes

    multi = json.loads(out.read_text())
    expected = json.loads(json.dumps(single.to_dict()))
    assert multi["complete"] and multi["metrics"] == ["ssim", "psnr", "fvd", "speaker_sync"]
    assert [c["clip_id"] for c in multi["per_clip"]] == [c[0] for c in clips]
    for a, b in zip(multi["per_clip"], expected["per_clip"]):
        assert a.keys() == b.keys()
        for key in a:
            assert (
                a[key] == b[key]
                if isinstance(a[key], str)
                else np.isclose(a[key], b[key], rtol=1e-9, atol=1e-12)
            )
    for a, b in zip(multi["table"], expected["table"]):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == b[key] or np.isclose(a[key], b[key], rtol=1e-9, atol=1e-12), (key, a, b)
    assert multi["table"][-1]["fvd_n"] == 5
