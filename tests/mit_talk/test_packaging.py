"""The distribution as ``pip install .`` builds it: every package, the metric modules and cards, the console
scripts. (CI installs this wheel into a clean venv and runs it from outside the repository: ``.ci/run``.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import benchmark.metrics

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("mit_dataset", "covog_diffusers", "training", "benchmark", "mit_talk")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built (no isolation, no dependencies) from a copy of the sources."""
    source = tmp_path_factory.mktemp("source")
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), "."],
        cwd=source, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = dist.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel_files(wheel) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_wheel_ships_every_module_of_every_package(wheel_files):
    missing = [
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "__pycache__" not in path.parts and path.relative_to(ROOT).as_posix() not in wheel_files
    ]
    assert not missing
    assert not [name for name in wheel_files if name.startswith("tests/") or "__pycache__" in name]


def test_wheel_ships_the_metric_modules_and_cards(wheel_files):
    for name in benchmark.metrics.NAMES:
        assert f"benchmark/metrics/{name}/{name}.py" in wheel_files
        assert f"benchmark/metrics/{name}/README.md" in wheel_files


def test_wheel_ships_the_trained_covog(wheel, wheel_files):
    from covog_diffusers.pretrained import default_pipeline_path

    shipped = default_pipeline_path()
    expected = {f"covog_diffusers/pretrained/{path.relative_to(shipped.parent).as_posix()}"
                for path in shipped.rglob("*") if path.is_file()}  # fmt: skip
    assert any(name.endswith("denoising_unet/diffusion_pytorch_model.safetensors") for name in expected)
    assert sorted(expected - wheel_files) == []
    assert wheel.stat().st_size < 25_000_000, f"the wheel takes {wheel.stat().st_size / 1e6:.1f} MB"


def test_wheel_declares_the_console_scripts(wheel, wheel_files):
    (entry_points,) = [name for name in wheel_files if name.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(entry_points).decode()
    for script, function in (("mit-talking", "mit_talking"), ("covog", "covog"), ("mit-bench", "mit_bench")):
        assert f"{script} = mit_talk.cli:{function}" in text


def test_metric_names_are_the_metric_folders():
    folders = {path.parent.name for path in Path(benchmark.metrics.__file__).parent.glob("*/README.md")}
    assert folders == set(benchmark.metrics.NAMES)


def test_metric_path_is_absolute_and_checks_the_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = Path(benchmark.metrics.path("ssim"))
    assert folder.is_absolute() and (folder / "ssim.py").is_file()
    with pytest.raises(ValueError, match="'lpips'.*psnr"):
        benchmark.metrics.path("lpips")
