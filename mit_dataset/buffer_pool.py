"""Recycled NumPy buffers for the large per-item tensors of the training view.

A 4-person, 16-frame item at 384x640 is ~250 MB of float32 (pose maps and frames). Fresh allocations of
that size are fresh pages from the kernel on every item: page faults, zeroing and, with transparent huge
pages, compaction. On a loaded machine that costs several times more than rendering the maps. A
:class:`BufferPool` hands out arrays it keeps, and reuses one only when nothing else references it any
more (its reference count is back to the pool's own), i.e. once every tensor built on it was dropped:
items still held by the caller are never overwritten. Arrays beyond ``max_per_key`` are plain fresh
allocations.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import torch

# References to a pooled array that is free: the pool's list and getrefcount's own argument.
_FREE_REFCOUNT = 2


class BufferPool:
    def __init__(self, max_per_key: int = 2):
        self.max_per_key = int(max_per_key)
        self._buffers: dict[tuple, list[np.ndarray]] = {}
        self._lock = threading.Lock()

    def empty(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An array of ``shape`` and ``dtype`` with arbitrary contents."""
        return self._get(tuple(int(s) for s in shape), np.dtype(dtype), zero=False)

    def zeros(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An all-zero array of ``shape`` and ``dtype``."""
        return self._get(tuple(int(s) for s in shape), np.dtype(dtype), zero=True)

    def _get(self, shape: tuple[int, ...], dtype: np.dtype, zero: bool) -> np.ndarray:
        if self.max_per_key <= 0:
            return np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
        key = (shape, dtype.str)
        with self._lock:
            buffers = self._buffers.setdefault(key, [])
            for buffer in buffers:
                if sys.getrefcount(buffer) == _FREE_REFCOUNT + 1:  # + the loop variable
                    if zero:
                        buffer.fill(0)
                    return buffer
            buffer = np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
            if len(buffers) < self.max_per_key:
                buffers.append(buffer)
            return buffer

    def clear(self) -> None:
        with self._lock:
            self._buffers.clear()

    def __getstate__(self):  # DataLoader workers start with an empty pool of their own
        return {"max_per_key": self.max_per_key}

    def __setstate__(self, state):
        self.__init__(state["max_per_key"])


def empty_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised tensor whose memory comes from NumPy: large NumPy allocations ask for transparent
    huge pages, which makes the first touch of a 100+ MB batch several times cheaper than torch's allocator."""
    if dtype == torch.bfloat16:
        return torch.empty(shape, dtype=dtype)
    return torch.from_numpy(np.empty(shape, torch.empty((), dtype=dtype).numpy().dtype))
