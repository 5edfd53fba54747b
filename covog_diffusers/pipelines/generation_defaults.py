"""Generation defaults a saved :class:`~covog_diffusers.pipelines.CovOGPipeline` carries, so that ``pipe(...)``,
``covog generate`` and ``mit-bench predict`` run a model the way it was trained when not told otherwise.

How a pipeline records them (call before ``save_pretrained``; training and packaging scripts do)::

    pipe.set_generation_defaults(height=384, width=640, num_inference_steps=25, guidance_scale=3.5,
                                 window_frames=16, overlap_frames=6)
    pipe.save_pretrained(out)
    CovOGPipeline.from_pretrained(out).generation_defaults   # the same values

* size: diffusers' convention, ``config.sample_size`` of the UNets (latent pixels, an int or an ``(h, w)`` pair)
  times the VAE factor, in each UNet's ``config.json``. A DenoisingNet without ``sample_size`` generates at the
  reference image's size;
* steps, guidance scale, window and overlap: pipeline config entries ``default_num_inference_steps``,
  ``default_guidance_scale``, ``default_window_frames``, ``default_overlap_frames`` in ``model_index.json`` (a
  folder saved before they existed loads with the paper's 25 steps, guidance 3.5, windows of 16 with 6 fixed).
  ``CovOGPipeline.from_pretrained(dir, default_num_inference_steps=...)`` overrides one at load time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .windows import plan_windows


class uses_generation_defaults:  # lower case: used as a method decorator, named like one
    """Decorator for pipeline methods that read the loaded pipeline's generation defaults. Called on the class
    (``CovOGPipeline.inputs_from_mit_row(row)``, a natural slip since the pipeline is built with a classmethod),
    such a method raises one ``TypeError`` line saying how to call it, instead of Python's "missing 1 required
    positional argument". ``CovOGPipeline.method(pipe, ...)`` still works, as for any method."""

    def __init__(self, method: Callable):
        self.method = method
        self.name = method.__name__
        functools.update_wrapper(self, method)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance, owner: type | None = None) -> Callable:
        if instance is not None:
            return self.method.__get__(instance, owner)
        method, name = self.method, self.name

        @functools.wraps(method)
        def called_on_the_class(*args, **kwargs):
            if args and isinstance(args[0], owner):
                return method(*args, **kwargs)
            raise TypeError(
                f"{owner.__name__}.{name} is a method of a loaded pipeline (it uses its generation defaults): "
                f"pipe = {owner.__name__}.from_pretrained(PATH); pipe.{name}(...)"
            )

        return called_on_the_class


class GenerationDefaultsMixin:
    """For :class:`~covog_diffusers.pipelines.CovOGPipeline` (uses its UNets, ``vae_scale_factor`` and config)."""

    @property
    def generation_defaults(self) -> dict[str, Any]:
        """``height``, ``width`` (None when the DenoisingNet has no ``sample_size``: the reference image's size),
        ``num_inference_steps``, ``guidance_scale``, ``window_frames`` and ``overlap_frames``."""
        sample_size = self.denoising_unet.config.sample_size
        height = width = None
        if sample_size is not None:
            h, w = (sample_size, sample_size) if isinstance(sample_size, int) else sample_size
            height, width = h * self.vae_scale_factor, w * self.vae_scale_factor
        return {
            "height": height,
            "width": width,
            "num_inference_steps": self.config.default_num_inference_steps,
            "guidance_scale": self.config.default_guidance_scale,
            "window_frames": self.config.default_window_frames,
            "overlap_frames": self.config.default_overlap_frames,
        }

    def set_generation_defaults(
        self,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        window_frames: int | None = None,
        overlap_frames: int | None = None,
    ) -> None:
        """Record the size and settings a model was trained for, so that ``save_pretrained`` carries them and every
        caller uses them when not told otherwise (arguments left None stay as they are).

        ``height``/``width`` (pixels, multiples of the VAE factor, both or neither) set ``sample_size`` of both
        UNets (``config.json``, diffusers' convention); the others are pipeline config entries
        (``default_num_inference_steps``, ... in ``model_index.json``). Raises ValueError for invalid values.
        """
        if (height is None) != (width is None):
            raise ValueError(f"give both height and width or neither, got height={height}, width={width}")
        sample_size = None
        if height is not None:
            f = self.vae_scale_factor
            if height <= 0 or width <= 0 or height % f or width % f:
                raise ValueError(
                    f"height and width must be positive multiples of the VAE factor {f}, got {height}x{width}"
                )
            sample_size = height // f if height == width else (height // f, width // f)
        given = {
            "num_inference_steps": num_inference_steps,
            "guidance_scale": guidance_scale,
            "window_frames": window_frames,
            "overlap_frames": overlap_frames,
        }
        current = self.generation_defaults
        settings = {name: current[name] if value is None else value for name, value in given.items()}
        self.check_generation_settings(**settings)
        if sample_size is not None:
            for unet in (self.denoising_unet, self.reference_unet):
                unet.register_to_config(sample_size=sample_size)
        self.register_to_config(**{f"default_{name}": value for name, value in settings.items()})

    def check_generation_settings(
        self, num_inference_steps: int, guidance_scale: float, window_frames: int, overlap_frames: int
    ) -> None:
        """ValueError naming the first invalid setting."""
        if int(num_inference_steps) != num_inference_steps or num_inference_steps <= 0:
            raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps}")
        if not guidance_scale >= 0:
            raise ValueError(f"guidance_scale must be >= 0, got {guidance_scale}")
        max_window = self.denoising_unet.config.motion_max_seq_length
        if window_frames > max_window:
            raise ValueError(
                f"window_frames={window_frames} exceeds the motion module's maximum {max_window}"
            )
        plan_windows(1, window_frames, overlap_frames)  # raises for a bad window/overlap pair
