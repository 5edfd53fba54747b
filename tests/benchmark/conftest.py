"""Fixtures shared by the benchmark tests."""

import pytest


@pytest.fixture(scope="module")
def pipeline():
    """A tiny random CovOGPipeline (zero-init outputs randomised, so every input matters), progress bar off."""
    tiny = pytest.importorskip("covog_diffusers.tiny")
    pipe = tiny.create_tiny_pipeline(seed=0, randomize_zero_init=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe
