"""The ``accelerate`` state every multi-process runner of the project uses (benchmark scoring and prediction,
the annotation pipeline)."""

from __future__ import annotations


def distributed_state():
    """The ``accelerate`` ``PartialState`` of this process. Without a GPU (or with ``ACCELERATE_USE_CPU``) it
    is created with ``cpu=True``, so that ``torchrun --nproc_per_node N`` gives N CPU processes (gloo)."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())
