"""NumPy arrays to torch tensors without PyTorch's "non-writable NumPy array" warning and without double copies.

``torch.from_numpy`` shares memory, so it warns for a read-only array (Arrow-backed views such as
:class:`mit_dataset.row_arrays.ClipArrays`, ``with_format("numpy")`` columns, memory maps, ``np.broadcast_to``)
and refuses negative strides; the usual work-around, a copy before ``from_numpy`` and a dtype conversion after it,
copies twice. :func:`tensor_from_array` copies only when it must, and then converts in that one copy.
"""

from __future__ import annotations

import numpy as np
import torch


def tensor_from_array(array: np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A CPU tensor of ``array`` (any shape), converted to ``dtype`` when given.

    Shares memory with a writable array whose dtype is already ``dtype`` (as ``torch.from_numpy``: writes go
    both ways); otherwise the result is a new tensor made in one copy: the dtype conversion, or a copy of a
    read-only array (``torch.tensor`` copies without warning), or of an array with negative strides (copied to C
    order first, which torch needs: the one case that copies twice when it also converts).
    """
    array = np.asarray(array)
    if any(stride < 0 for stride in array.strides):
        array = np.ascontiguousarray(array)
    elif not array.flags.writeable:
        return torch.tensor(array, dtype=dtype)
    tensor = torch.from_numpy(array)
    return tensor if dtype is None else tensor.to(dtype)
