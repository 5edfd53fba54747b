"""Cast a model's weights to a dtype without diffusers' spurious float32 warning.

diffusers 0.42's ``ModelMixin.to`` logs "There are modules in X that should be kept in float32: []" on every
cast that names a dtype, even for models that keep no module in float32 (``modeling_utils.py``:
``fp32_modules = self._keep_in_fp32_modules or []`` is then tested with ``is not None``). Saved pipelines and
models are loaded in their dtype instead (``from_pretrained(..., dtype=dtype)``: ``covog generate``,
``benchmark.predict.load_pipeline``); a model built in memory (``from_config``, ``covog assemble``) is cast with
:func:`cast_to_dtype`, which casts such models with ``torch.nn.Module.to`` (what ``ModelMixin.to`` ends in for an
unquantized model) and leaves models that do declare float32 modules, and any other module, to their own ``to``.
"""

from __future__ import annotations

from typing import TypeVar

import torch
from diffusers import ModelMixin

ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


def cast_to_dtype(module: ModuleT, dtype: torch.dtype | None) -> ModuleT:
    """``module.to(dtype=dtype)`` (in place; returns ``module``); ``dtype=None`` leaves it as it is."""
    if dtype is None:
        return module
    if (
        isinstance(module, ModelMixin)
        and not module._keep_in_fp32_modules
        and not getattr(module, "is_quantized", False)
    ):
        return torch.nn.Module.to(module, dtype=dtype)
    return module.to(dtype=dtype)
