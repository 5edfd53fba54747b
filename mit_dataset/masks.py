"""Instance masks as COCO compressed RLE strings (pycocotools), the compact per-frame form stored in MIT."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as coco_mask


def encode_mask(mask: np.ndarray) -> str:
    """COCO compressed RLE ``counts`` of a boolean ``(H, W)`` mask (the size is the clip's)."""
    mask = np.asfortranarray(np.asarray(mask, dtype=np.uint8))
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    return coco_mask.encode(mask)["counts"].decode("ascii")


def decode_mask(counts: str, height: int, width: int) -> np.ndarray:
    """Boolean ``(height, width)`` mask from a COCO compressed RLE ``counts`` string."""
    return coco_mask.decode({"size": [height, width], "counts": counts.encode("ascii")}).astype(bool)


def box_mask_rle(box: np.ndarray, height: int, width: int) -> str:
    """RLE of a filled xyxy box: the documented stand-in mask for sources without segmentation."""
    x1, y1, x2, y2 = np.round(np.asarray(box, dtype=np.float64)).astype(int)
    mask = np.zeros((height, width), dtype=bool)
    mask[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = True
    return encode_mask(mask)
