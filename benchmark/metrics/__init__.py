"""The MIT benchmark's ``evaluate`` metric modules, shipped with the package (one folder per metric: the
module ``<name>/<name>.py`` and its card ``<name>/README.md``).

``evaluate.load`` takes a metric folder's path; :func:`path` gives the installed one, so loading works from
any working directory and without the repository::

    import evaluate
    import benchmark.metrics

    psnr = evaluate.load(benchmark.metrics.path("psnr"))
"""

from __future__ import annotations

from pathlib import Path

#: The metric folders under this package, in the order of the README's table.
NAMES = ("psnr", "ssim", "fvd", "speaker_sync", "vbench_consistency")


def path(name: str) -> str:
    """The folder of metric ``name`` (one of :data:`NAMES`) as a string, for ``evaluate.load``.

    Raises ``ValueError`` for an unknown name and ``FileNotFoundError`` when the installed package lacks the
    folder's module (a broken install)."""
    if name not in NAMES:
        raise ValueError(f"unknown MIT metric {name!r}; expected one of {list(NAMES)}")
    folder = Path(__file__).resolve().parent / name
    if not (folder / f"{name}.py").is_file():
        raise FileNotFoundError(f"{folder / f'{name}.py'} is missing: reinstall mit-talk")
    return str(folder)
