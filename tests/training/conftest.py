"""Fixtures for training tests: tiny configs on the session's synthetic MIT, one torch thread.

Training tests run with one intra-op thread (in process and in subprocesses): results are then reproducible
across processes (same float summation order), and a loaded 2-core machine does not spin threads.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "training" / "configs"


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_config(tmp_path, synthetic_dataset_dir, one_thread):
    """``tiny_config(stage, *overrides) -> TrainConfig`` on the synthetic dataset, output under ``tmp_path``."""
    from training.config import load_config

    def make(stage: int = 1, *overrides: str, name: str = "run"):
        return load_config(
            CONFIGS / f"tiny-stage{stage}.yaml",
            [f"data.dataset={synthetic_dataset_dir}", f"output.dir={tmp_path / name}", *overrides],
        )

    return make


@pytest.fixture
def train_args(synthetic_dataset_dir, tmp_path):
    """``train_args(stage, *overrides, name="run") -> argv`` for ``-m training.cli`` on the synthetic dataset."""

    def make(stage: int = 1, *overrides: str, name: str = "run") -> list[str]:
        return [
            "--config", str(CONFIGS / f"tiny-stage{stage}.yaml"), f"data.dataset={synthetic_dataset_dir}",
            f"output.dir={tmp_path / name}", *overrides,
        ]  # fmt: skip

    return make
