"""``tensor_from_array``: shares memory when it can, copies once when it must, never hands ``torch.from_numpy`` a
read-only array (its "non-writable NumPy array" warning) or negative strides; ``uint8_to_pixels`` uses it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from covog_diffusers.pipelines.conditioning import uint8_to_pixels
from mit_dataset.tensors import tensor_from_array


@pytest.fixture
def strict_from_numpy(monkeypatch):
    """``torch.from_numpy`` that fails where PyTorch would warn (it warns once per process, so a warning check
    alone could pass by accident) or refuse, and counts its calls."""
    original, calls = torch.from_numpy, []

    def guarded(array):
        assert array.flags.writeable, "torch.from_numpy got a read-only array"
        calls.append(array)
        return original(array)

    monkeypatch.setattr(torch, "from_numpy", guarded)
    return calls


def read_only(array: np.ndarray) -> np.ndarray:
    array = array.copy()
    array.flags.writeable = False
    return array


def test_writable_array_is_shared_and_converted_in_one_copy(strict_from_numpy):
    image = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    shared = tensor_from_array(image)
    assert shared.dtype == torch.uint8 and np.shares_memory(shared.numpy(), image)
    converted = tensor_from_array(image, torch.float32)
    assert converted.dtype == torch.float32 and not np.shares_memory(converted.numpy(), image)
    np.testing.assert_array_equal(converted.numpy(), image.astype(np.float32))


@pytest.mark.parametrize("dtype", [None, torch.float32])
def test_read_only_and_negative_stride_arrays_are_copied_without_warning(strict_from_numpy, dtype):
    image = np.arange(60, dtype=np.uint8).reshape(4, 5, 3)
    for array in (read_only(image), image[:, ::-1], np.broadcast_to(image[:1], (3, 5, 3))):
        tensor = tensor_from_array(array, dtype)
        assert tensor.dtype == (dtype or torch.uint8)
        np.testing.assert_array_equal(tensor.numpy(), array)
        assert not np.shares_memory(tensor.numpy(), image)


def test_uint8_to_pixels_takes_read_only_frames(strict_from_numpy):
    frame = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    before = frame.copy()
    pixels = uint8_to_pixels(read_only(frame))
    assert pixels.shape == (1, 3, 6, 8) and pixels.dtype == torch.float32
    torch.testing.assert_close(pixels, uint8_to_pixels(frame))
    torch.testing.assert_close(pixels[0, :, 2, 5], torch.from_numpy(frame[2, 5] / 127.5 - 1.0).float())
    assert pixels.min() >= -1.0 and pixels.max() <= 1.0
    np.testing.assert_array_equal(frame, before)  # a shared input is never written
