"""Every writer's outputs are readable by others (umask modes, not 0600/0700) and a writer killed with SIGKILL
leaves temporaries the next run of that writer removes."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bench_data import make_test_split

from benchmark.leaderboard import build_leaderboard, write_leaderboard
from benchmark.predict import predict_submission
from benchmark.protocol import EvaluationSize
from benchmark.scoring import evaluate_submission
from mit_dataset.hub import write_dataset_folder
from mit_dataset.video_io import write_video

#: Generation and evaluation at 32x32 (the predictions' size).
EVAL = EvaluationSize(height=32, width=32)
FAST = {"num_inference_steps": 1, "guidance_scale": 1.0, "progress": False, "evaluation_size": EVAL}


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_outputs_have_the_modes_of_plain_writes(synthetic_records, pipeline, tmp_path, umask_022):
    dataset = write_dataset_folder(synthetic_records[:2], tmp_path / "mit", progress=False)
    split = make_test_split(
        tmp_path / "gt", clips=(("m0", "two_human", "easy"),), num_frames=8, width=48, height=32
    )
    predictions = tmp_path / "pred"
    predict_submission(pipeline, split, predictions, **FAST)
    results, _ = evaluate_submission(
        split, predictions, metrics=("ssim", "psnr"), progress=False, evaluation_size=EVAL
    )
    results.write_json(tmp_path / "subs" / "results.json")
    write_leaderboard(build_leaderboard(tmp_path / "subs"), tmp_path / "board" / "lb.md")
    video = write_video(tmp_path / "v.mp4", np.zeros((4, 16, 16, 3), np.uint8))
    outputs = [
        dataset,
        *dataset.rglob("*"),
        predictions,
        *predictions.iterdir(),
        *(tmp_path / "board").iterdir(),
    ]
    outputs += [tmp_path / "subs" / "results.json", video]
    wrong = {
        path.relative_to(tmp_path).as_posix(): oct(mode)
        for path in outputs
        if (mode := path.stat().st_mode & 0o777) != (0o755 if path.is_dir() else 0o644)
    }
    assert wrong == {} and len(outputs) > 10


def _killed_writer(target: Path, env: dict) -> None:
    """A process that starts an atomic write of ``target`` and is killed with SIGKILL halfway."""
    code = (
        "import sys, time\n"
        "from mit_dataset.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half a file')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(600)\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.tmp~")]


def test_the_next_run_removes_what_a_killed_writer_left(
    synthetic_records, pipeline, tmp_path, subprocess_env
):
    split = make_test_split(
        tmp_path / "gt", clips=(("k0", "two_human", "easy"),), num_frames=8, width=48, height=32
    )
    _killed_writer(tmp_path / "pred" / "k0.mp4", subprocess_env)
    predict_submission(pipeline, split, tmp_path / "pred", **FAST)
    assert not list((tmp_path / "pred").glob(".*"))

    _killed_writer(tmp_path / "datasets" / "mit", subprocess_env)
    write_dataset_folder(synthetic_records[:1], tmp_path / "datasets" / "mit", progress=False)
    assert not list((tmp_path / "datasets").glob(".*"))

    _killed_writer(tmp_path / "board" / "lb.md", subprocess_env)
    results, _ = evaluate_submission(
        split, tmp_path / "pred", metrics=("ssim",), progress=False, evaluation_size=EVAL
    )
    results.write_json(tmp_path / "subs" / "r.json")
    write_leaderboard(build_leaderboard(tmp_path / "subs"), tmp_path / "board" / "lb.md")
    assert not list((tmp_path / "board").glob(".*"))
