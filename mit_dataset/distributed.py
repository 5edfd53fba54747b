"""The ``accelerate`` state every multi-process runner of the project uses (benchmark scoring and prediction,
the annotation pipeline)."""

from __future__ import annotations

import contextlib


def distributed_state():
    """The ``accelerate`` ``PartialState`` of this process. Without a GPU (or with ``ACCELERATE_USE_CPU``) it
    is created with ``cpu=True``, so that ``torchrun --nproc_per_node N`` gives N CPU processes (gloo)."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())


@contextlib.contextmanager
def distributed_command():
    """The :func:`distributed_state` of a command (``mit-bench evaluate``/``predict``, ``mit-talking
    annotate``) whose process group is destroyed, on every process, once the command's collectives are done
    (when the ``with`` body returns without an error).

    Why: without ``destroy_process_group`` a gloo worker thread (``ProcessGroupGloo::runLoop``) may still hold
    the last reference to the tensors of the final ``gather_object`` when the main thread starts interpreter
    finalization -- typically on a process other than the main one, which has nothing left to do and exits
    at once. Dropping that reference takes the GIL; during finalization CPython ends the thread with
    ``pthread_exit``, whose unwinding through a ``noexcept`` destructor calls ``std::terminate``: the process
    aborts ("terminate called without an active exception", SIGABRT; gdb backtrace in
    tests/benchmark/test_distributed.py). Destroying the group joins those threads while the interpreter is
    fully alive. On an error nothing is torn down (a process still inside a collective could hang); the
    launcher ends the others.
    """
    state = distributed_state()
    yield state
    if state.num_processes > 1:
        state.destroy_process_group()
