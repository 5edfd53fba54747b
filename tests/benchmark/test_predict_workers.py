"""``mit-bench predict`` with hostile clip ids, its own cache folder, and several workers on one --out."""

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from bench_data import make_test_split

from benchmark.predict import predict_submission
from benchmark.protocol import EvaluationSize
from benchmark.submission import clip_specs, validate_submission
from mit_dataset.claims import lock_path
from mit_dataset.hub import write_dataset_folder
from mit_dataset.safe_names import UnsafeNameError

#: Generation and evaluation at 32x32 (the predictions' size).
EVAL = EvaluationSize(height=32, width=32)
FAST = {"num_inference_steps": 1, "guidance_scale": 1.0, "progress": False, "evaluation_size": EVAL}
CLIPS = tuple(
    (f"w{i}", ("two_human", "multi_human")[i % 2], ("easy", "challenging")[i // 2]) for i in range(4)
)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return make_test_split(tmp_path_factory.mktemp("gt"), clips=CLIPS, num_frames=8, width=48, height=32)


@pytest.fixture(scope="module")
def saved(split, pipeline, tmp_path_factory):
    root = tmp_path_factory.mktemp("saved")
    pipeline.save_pretrained(root / "model")
    split.save_to_disk(str(root / "dataset"))
    return root


def test_a_clip_id_from_the_dataset_never_leads_outside_out(split, pipeline, tmp_path):
    hostile = split.map(lambda row: {"clip_id": "../../x" if row["clip_id"] == "w1" else row["clip_id"]})
    out = tmp_path / "a" / "b" / "pred"
    with pytest.raises(UnsafeNameError, match=r"clip id '\.\./\.\./x'"):
        predict_submission(pipeline, hostile, out, **FAST)
    assert not list(tmp_path.rglob("*.mp4"))  # refused before any clip was generated


def test_predict_honours_its_cache_dir(pipeline, tmp_path):
    from bench_data import make_record

    records = [make_record(tmp_path / "gt", "c0", "two_human", "easy", 0, num_frames=8, width=48, height=32)]
    folder = write_dataset_folder(records, tmp_path / "mit", progress=False)
    cache = tmp_path / "cache"
    predict_submission(pipeline, str(folder), tmp_path / "pred", cache_dir=str(cache), **FAST)
    assert any(cache.rglob("*.arrow")), "the test split was not prepared in --cache-dir"


def _hold_claim(path: Path, env: dict) -> subprocess.Popen:
    """Another process that claims ``path`` and then hangs (a worker busy with that clip)."""
    code = (
        "import sys, time\n"
        "from mit_dataset.claims import claim\n"
        "with claim(sys.argv[1]) as claimed:\n"
        "    print(claimed, flush=True)\n"
        "    time.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert holder.stdout.readline().strip() == "True"
    return holder


def test_a_claimed_clip_is_left_to_its_worker_and_taken_over_when_it_dies(
    split, pipeline, tmp_path, subprocess_env
):
    out = tmp_path / "pred"
    holder = _hold_claim(out / "w0.mp4", subprocess_env)
    try:

        def kill_holder_once_the_rest_is_done():
            while not (out / "w1.mp4").exists():
                time.sleep(0.1)
            holder.send_signal(signal.SIGKILL)  # the busy worker dies without cleaning up

        killer = threading.Thread(target=kill_holder_once_the_rest_is_done, daemon=True)
        killer.start()
        summary = predict_submission(pipeline, split, out, clip_ids=["w0", "w1"], **FAST)
        killer.join(timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert summary.written == ["w1", "w0"]  # w0 was left to its worker, waited for, then taken over
    assert sorted(validate_submission(out, clip_specs(split), EVAL).valid) == ["w0", "w1"]
    assert not lock_path(out / "w0.mp4").exists() and not list(out.glob(".*"))


def test_two_predict_processes_on_one_out_share_the_clips(split, saved, tmp_path, subprocess_env):
    out = tmp_path / "pred"
    code = (
        "import json, sys\n"
        "from benchmark.predict import load_pipeline, predict_submission\n"
        "from benchmark.protocol import EvaluationSize\n"
        "pipe = load_pipeline(sys.argv[1]); pipe.set_progress_bar_config(disable=True)\n"
        "done = predict_submission(pipe, sys.argv[2], sys.argv[3], num_inference_steps=1, guidance_scale=1.0,\n"
        "                          evaluation_size=EvaluationSize(32, 32), progress=False)\n"
        "print(json.dumps({'written': done.written, 'skipped': done.skipped}))\n"
    )
    args = [sys.executable, "-c", code, str(saved / "model"), str(saved / "dataset"), str(out)]
    workers = [
        subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=subprocess_env) for _ in range(2)
    ]
    reports = [json.loads(worker.communicate(timeout=600)[0].strip().splitlines()[-1]) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    written = [clip for report in reports for clip in report["written"]]
    assert sorted(written) == sorted(c[0] for c in CLIPS)  # every clip generated exactly once
    for report in reports:
        assert sorted(report["written"] + report["skipped"]) == sorted(c[0] for c in CLIPS)
    assert validate_submission(out, clip_specs(saved_split(saved)), EVAL).ok
    assert not list(out.glob(".*"))


def saved_split(root: Path):
    import datasets

    return datasets.load_from_disk(str(root / "dataset"))
