"""FVD detector files are code or data: TorchScript runs only when verified or trusted, data never runs code."""

import hashlib
import pickle
from pathlib import Path

import pytest
import torch
from bench_data import make_test_split, write_tiny_detector

from benchmark import fvd
from benchmark.fvd import (
    STATE_DICT_KIND,
    TORCHSCRIPT_KIND,
    UntrustedDetectorError,
    detector_kind,
    load_detector,
)
from benchmark.i3d import InceptionI3d
from mit_talk.cli import mit_bench


class CreatesAFile:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture
def torchscript(tmp_path):
    return write_tiny_detector(tmp_path / "i3d_torchscript.pt")


def test_an_unverified_torchscript_file_is_refused_before_torch_loads_it(torchscript, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("torch.jit.load ran an untrusted file")

    monkeypatch.setattr(torch.jit, "load", must_not_run)
    sha = hashlib.sha256(torchscript.read_bytes()).hexdigest()
    with pytest.raises(
        UntrustedDetectorError, match=rf"{torchscript.name} is TorchScript.*{sha}.*--trust-detector"
    ):
        load_detector(torchscript, device="cpu")


def test_a_verified_hash_or_explicit_trust_loads_it(torchscript, monkeypatch):
    assert load_detector(torchscript, device="cpu", trust_detector=True).kind == TORCHSCRIPT_KIND
    sha = hashlib.sha256(torchscript.read_bytes()).hexdigest()
    monkeypatch.setitem(fvd.VERIFIED_DETECTORS, sha, "the test's stand-in")
    assert load_detector(torchscript, device="cpu").sha256 == sha


def test_state_dicts_need_no_trust_and_code_in_them_never_runs(tmp_path):
    weights = tmp_path / "i3d_pretrained_400.pt"
    torch.save(InceptionI3d(width=1 / 32).state_dict(), weights)
    assert detector_kind(weights) == STATE_DICT_KIND
    assert load_detector(weights, device="cpu").kind == STATE_DICT_KIND

    marker = tmp_path / "pwned"
    for name, save in {
        "zip.pt": lambda path: torch.save({"w": torch.zeros(1), "x": CreatesAFile(marker)}, path),
        "legacy.pt": lambda path: path.write_bytes(pickle.dumps(CreatesAFile(marker), protocol=2)),
    }.items():
        save(tmp_path / name)
        with pytest.raises(
            ValueError, match=rf"{name}: not a weights file torch.load\(weights_only=True\) can read"
        ):
            load_detector(tmp_path / name, device="cpu")
    assert not marker.exists()


def test_a_file_that_is_no_detector_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"GIF89a not a detector at all")
    with pytest.raises(ValueError, match="junk.pt: not a TorchScript archive or a torch state dict"):
        load_detector(junk, device="cpu")


def test_evaluate_refuses_an_untrusted_detector_in_one_line(torchscript, tmp_path, capsys):
    split = make_test_split(tmp_path / "gt", clips=(("c0", "two_human", "easy"),), num_frames=16)
    split.save_to_disk(str(tmp_path / "dataset"))
    (tmp_path / "pred").mkdir()
    capsys.readouterr()
    args = ["evaluate", "--dataset", str(tmp_path / "dataset"), "--predictions", str(tmp_path / "pred"),
            "--out", str(tmp_path / "r.json"), "--i3d", str(torchscript), "--no-progress"]  # fmt: skip
    assert mit_bench(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mit-bench evaluate: error: I3D detector")
    assert "is TorchScript" in err[0] and "--trust-detector" in err[0]
    assert not (tmp_path / "r.json").exists()
