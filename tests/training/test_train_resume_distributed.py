"""A run killed after a checkpoint resumes to the uninterrupted result; checkpoints are atomic and rotated;
``accelerate launch --num_processes 2 --cpu`` (gloo) trains end to end with each process on its own samples."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from mit_dataset.atomic import temporary_name
from training.checkpointing import STATE_FILE, latest_checkpoint, list_checkpoints
from training.config import load_config
from training.loop import train

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"
STEPS = (
    "training.max_steps=6",
    "output.checkpointing_steps=2",
    "output.validation_steps=0",
    "data.num_frames=4",
)


def trained_weights(run: Path) -> dict[str, torch.Tensor]:
    return {
        f"{part.parent.name}/{name}": value
        for part in sorted((run / "pipeline").glob("*/*.safetensors"))
        for name, value in load_file(part).items()
    }


def test_killed_run_resumes_to_the_uninterrupted_result(tiny_config, train_args, subprocess_env, tmp_path):
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "training.cli", *train_args(2, *STEPS, name="killed")],
        env=subprocess_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    first = killed / "checkpoints" / "checkpoint-2" / STATE_FILE
    deadline = time.monotonic() + 600
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.kill()
    _, stderr = process.communicate()
    assert first.exists(), stderr.decode()[-2000:]
    assert not (killed / "pipeline").exists(), "the run finished before it was killed"

    resumed = train(tiny_config(2, *STEPS, name="killed"), resume="latest")
    assert resumed["steps"] == 6
    train(tiny_config(2, *STEPS, name="straight"))
    got, want = trained_weights(killed), trained_weights(tmp_path / "straight")
    assert got.keys() == want.keys() and len(got) > 50
    for name, value in want.items():
        torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-6, msg=name)
    # Retention: output.checkpoints_total_limit (3) newest checkpoints are kept.
    assert [step for step, _ in list_checkpoints(killed)] == [2, 4, 6]


def test_half_written_checkpoints_are_never_latest(tmp_path):
    folder = tmp_path / "checkpoints"
    (folder / "checkpoint-2").mkdir(parents=True)
    (folder / "checkpoint-2" / STATE_FILE).write_text("{}")
    (folder / "checkpoint-9").mkdir()  # no state file: a copy that was interrupted
    (folder / temporary_name("checkpoint-4")).mkdir()  # a save in progress (or killed)
    assert latest_checkpoint(tmp_path) == folder / "checkpoint-2"
    assert [step for step, _ in list_checkpoints(tmp_path)] == [2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_gloo_each_on_its_own_samples(train_args, subprocess_env, tmp_path):
    """``accelerate launch --cpu --num_processes 2`` starts ONE process in accelerate 1.x unless an MPI hostfile
    is configured (huggingface/accelerate#2741); torchrun-based multi-process CPU training is
    ``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2`` (gloo), as the README says."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()),
        "-m", "training.cli", *train_args(1, "training.max_steps=2", "output.log_samples=true"),
    ]  # fmt: skip
    env = {**subprocess_env, "ACCELERATE_USE_CPU": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "run"
    assert (run / "pipeline" / "model_index.json").is_file()
    assert {p.name for p in (run / "checkpoints" / "checkpoint-2").iterdir()} >= {
        "random_states_0.pkl", "random_states_1.pkl", "model.safetensors", STATE_FILE,
    }  # fmt: skip
    seen = []
    for rank in (0, 1):
        lines = (run / "logs" / f"samples-process{rank}.jsonl").read_text().splitlines()
        seen.append([json.loads(line) for line in lines])
    assert len(seen[0]) == len(seen[1]) == 2 * 2  # 2 steps x batch 2 on each process
    for step in (0, 1):
        mine = {(s["clip_id"], tuple(s["frame_indices"])) for s in seen[0] if s["step"] == step}
        theirs = {(s["clip_id"], tuple(s["frame_indices"])) for s in seen[1] if s["step"] == step}
        assert len(mine) == len(theirs) == 2 and not mine & theirs
    assert done.stdout.count("trained 2 steps") == 1  # the main process reports (and saves) once
    # The saved pipeline is the model both processes trained (it loads and records its native size).
    config = load_config(CONFIGS / "tiny-stage1.yaml", [f"output.dir={run}", "data.dataset=x"])
    saved = json.loads((run / "pipeline" / "denoising_unet" / "config.json").read_text())
    assert saved["sample_size"] == [config.data.height // 8, config.data.width // 8]
