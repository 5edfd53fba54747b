"""The CovOG that ships inside the package: the default model of ``covog generate``, ``mit-talking demo`` and the
README.

``covog-tiny-synthetic/`` is a complete :class:`~covog_diffusers.CovOGPipeline` folder (safetensors,
``model_index.json``, scheduler config, model card) trained from scratch on a synthetic MIT by the project's own
scripts (``training/recipes/covog-tiny-synthetic/train.sh``: VAE, stage 1, stage 2). Its card gives the exact
commands, data seed, steps, time and ``mit-bench evaluate`` results. It is small (128x72 video, a few MB) and
knows only the synthetic talk-show world; the random :func:`covog_diffusers.tiny.create_tiny_pipeline` stays
the model of the unit tests.

It is package data (``setup.cfg``: ``[options.package_data]``), found through :mod:`importlib.resources`, so it
loads offline from an installed wheel: ``load_default_pipeline()``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DEFAULT_MODEL = "covog-tiny-synthetic"


def default_pipeline_path() -> Path:
    """The folder of the shipped pipeline, inside the installed package.

    Raises:
        FileNotFoundError: the package was installed without its data files (``package_data`` left out).
    """
    path = Path(str(files(__name__) / DEFAULT_MODEL))  # pip installs wheels unzipped: a real folder
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(
            f"the shipped CovOG is missing from {path} (no model_index.json): the package was installed without "
            "its data files; reinstall mit-talk from a wheel or a full source checkout"
        )
    return path


def load_default_pipeline(**kwargs):
    """``CovOGPipeline.from_pretrained(default_pipeline_path(), local_files_only=True, **kwargs)``: offline,
    float32 on the CPU unless ``dtype`` is given."""
    from ..pipelines import CovOGPipeline

    return CovOGPipeline.from_pretrained(default_pipeline_path(), local_files_only=True, **kwargs)
