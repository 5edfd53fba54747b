"""The MIT schema as `datasets.Features`: one row per clip, a list of persons per clip.

The same object is written into the dataset card (``dataset_info.features``) so that
``load_dataset(DIR)`` gives typed columns without any loading script.
"""

from __future__ import annotations

import numpy as np
from datasets import Array2D, Array3D, Audio, Features, List, Value, Video

from .keypoints import NUM_KEYPOINTS, NUM_WHOLEBODY_KEYPOINTS

FPS = 25
SAMPLING_RATE = 16_000
MIN_SPEAKERS = 2
MAX_SPEAKERS = 4

#: Subsets of the paper's Table 2: TonightShow clips have 2 speakers, LateLateShow clips 2-4.
SUBSETS = ("two_human", "multi_human")
#: Dataset configs: one per subset plus their union (the default).
CONFIG_NAMES = ("all",) + SUBSETS
DEFAULT_CONFIG = "all"
SPLITS = ("train", "test")
#: ``difficulty`` is "easy" / "challenging" for test clips and "" for training clips.
DIFFICULTIES = ("easy", "challenging")

#: Raw TalkNet-style logits are divided by this and clipped to [-1, 1] to give the model input.
SPEAKING_SCORE_SCALE = 3.0

PERSON_FEATURES = {
    "person_id": Value("string"),
    "identity": Value("string"),
    # (F, 59, 3): x, y in pixels of the clip, detector score in [0, 1].
    "keypoints": Array3D(shape=(None, NUM_KEYPOINTS, 3), dtype="float32"),
    # (F, 133, 3) raw COCO-WholeBody points where the source gave them, (0, 133, 3) otherwise.
    "keypoints_133": Array3D(shape=(None, NUM_WHOLEBODY_KEYPOINTS, 3), dtype="float32"),
    # (F, 4) xyxy pixels: the person's instance box and face box.
    "boxes": Array2D(shape=(None, 4), dtype="float32"),
    "face_boxes": Array2D(shape=(None, 4), dtype="float32"),
    # (F,) model input in [-1, 1] and the raw logit it came from.
    "speaking_score": List(Value("float32")),
    "speaking_score_raw": List(Value("float32")),
    # (F,) COCO compressed RLE ``counts`` of the person's instance mask at (height, width).
    "mask_rle": List(Value("string")),
}

MIT_FEATURES = Features(
    {
        "clip_id": Value("string"),
        "source": Value("string"),
        "subset": Value("string"),
        "split": Value("string"),
        "difficulty": Value("string"),
        "num_speakers": Value("int32"),
        "fps": Value("float32"),
        "num_frames": Value("int32"),
        "width": Value("int32"),
        "height": Value("int32"),
        "video": Video(),
        "audio": Audio(sampling_rate=SAMPLING_RATE),
        "persons": List(PERSON_FEATURES),
    }
)


def speaking_score_from_raw(raw: np.ndarray) -> np.ndarray:
    """Model input ``clip(s / 3, -1, 1)`` from raw TalkNet-style logits ``s`` (about -3..3)."""
    return np.clip(np.asarray(raw, dtype=np.float32) / SPEAKING_SCORE_SCALE, -1.0, 1.0)
