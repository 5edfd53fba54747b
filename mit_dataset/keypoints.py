"""The MIT 59-keypoint layout: a subset of COCO-WholeBody-133 (Sapiens / mmpose order).

MIT keeps 3 head points (orientation only: lips and expressions come from audio), 12 limb points,
2 feet points and both 21-point hands. Every array in this module is indexed in the 59-point order
unless its name says ``133``.
"""

from __future__ import annotations

import numpy as np

NUM_KEYPOINTS = 59
NUM_WHOLEBODY_KEYPOINTS = 133

_HAND_PARTS = ["root"] + [
    f"{finger}{joint}"
    for finger in ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")
    for joint in range(1, 5)
]

#: Indices into COCO-WholeBody-133 of the 59 MIT keypoints, in MIT order.
WHOLEBODY_INDICES: tuple[int, ...] = tuple([0, 1, 2] + list(range(5, 17)) + [17, 20] + list(range(91, 133)))

KEYPOINT_NAMES: tuple[str, ...] = tuple(
    ["nose", "left_eye", "right_eye"]
    + [f"{side}_{part}" for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle") for side in ("left", "right")]
    + ["left_big_toe", "right_big_toe"]
    + [f"left_hand_{p}" for p in _HAND_PARTS]
    + [f"right_hand_{p}" for p in _HAND_PARTS]
)

HEAD = (0, 1, 2)
LEFT_HAND_ROOT = 17
RIGHT_HAND_ROOT = 38
LEFT_HAND = tuple(range(17, 38))
RIGHT_HAND = tuple(range(38, 59))
BODY = tuple(range(17))

#: COCO-WholeBody face points the partial release used for its face masks (jaw middle, brows, nose bridge).
WHOLEBODY_FACE_BOX_POINTS = (23, 31, 39, 53)


def _hand_links(root: int) -> list[tuple[int, int]]:
    links = []
    for finger in range(5):
        first = root + 1 + 4 * finger
        links.append((root, first))
        links.extend((first + j, first + j + 1) for j in range(3))
    return links


_NAME_TO_INDEX = {name: i for i, name in enumerate(KEYPOINT_NAMES)}


def _link(a: str, b: str) -> tuple[int, int]:
    return _NAME_TO_INDEX[a], _NAME_TO_INDEX[b]


#: Body skeleton (limbs in DWPose/OpenPose colour order). There is no neck point in the 59-subset, so the
#: head is attached to both shoulders through the nose.
BODY_LINKS: tuple[tuple[int, int], ...] = (
    _link("left_shoulder", "right_shoulder"),
    _link("right_shoulder", "right_elbow"),
    _link("right_elbow", "right_wrist"),
    _link("left_shoulder", "left_elbow"),
    _link("left_elbow", "left_wrist"),
    _link("right_shoulder", "right_hip"),
    _link("right_hip", "right_knee"),
    _link("right_knee", "right_ankle"),
    _link("left_shoulder", "left_hip"),
    _link("left_hip", "left_knee"),
    _link("left_knee", "left_ankle"),
    _link("nose", "right_shoulder"),
    _link("nose", "left_shoulder"),
    _link("nose", "right_eye"),
    _link("nose", "left_eye"),
    _link("left_hip", "right_hip"),
    _link("right_ankle", "right_big_toe"),
    _link("left_ankle", "left_big_toe"),
)
#: Wrist-to-hand-root links plus 20 finger bones per hand.
HAND_LINKS: tuple[tuple[int, int], ...] = tuple(
    [_link("left_wrist", "left_hand_root"), _link("right_wrist", "right_hand_root")]
    + _hand_links(LEFT_HAND_ROOT)
    + _hand_links(RIGHT_HAND_ROOT)
)
SKELETON_LINKS: tuple[tuple[int, int], ...] = BODY_LINKS + HAND_LINKS

#: Head box size relative to the head scale (see :func:`head_box`). A face is about 2.4 inter-ocular
#: distances wide and 3.2 high (forehead to chin); the extra margin covers hair and the jaw when the head turns.
HEAD_BOX_WIDTH_SCALE = 2.8
HEAD_BOX_HEIGHT_SCALE = 3.6
#: The face centre sits below the eyes, by this fraction of the head scale.
HEAD_BOX_CENTER_DROP = 0.35


def wholebody_to_mit(keypoints_133: np.ndarray) -> np.ndarray:
    """Select the 59 MIT keypoints from ``(..., 133, C)`` COCO-WholeBody arrays."""
    keypoints_133 = np.asarray(keypoints_133)
    if keypoints_133.ndim < 2 or keypoints_133.shape[-2] != NUM_WHOLEBODY_KEYPOINTS:
        raise ValueError(f"expected keypoints of shape (..., 133, C), got {keypoints_133.shape}")
    return keypoints_133[..., list(WHOLEBODY_INDICES), :]


def head_box(
    keypoints: np.ndarray,
    min_score: float = 0.3,
    min_size: float = 4.0,
) -> np.ndarray:
    """Face box ``(..., 4)`` xyxy from the 3 head keypoints (nose, eyes) of ``(..., 59, 3)`` keypoints.

    The head scale is ``max(eye distance, 1.6 * nose-to-eye-midpoint distance, min_size)``: the eye
    distance collapses in profile views while the nose offset then grows, so the max is stable under
    head turns. The box is ``HEAD_BOX_WIDTH_SCALE x HEAD_BOX_HEIGHT_SCALE`` head scales, centred
    ``HEAD_BOX_CENTER_DROP`` scales below the eye midpoint. Frames with fewer than two confident head
    points (score < ``min_score``) give NaN boxes, which callers treat as "face not visible".
    """
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if keypoints.shape[-2:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"expected keypoints of shape (..., 59, 3), got {keypoints.shape}")
    nose, left_eye, right_eye = (keypoints[..., i, :] for i in HEAD)
    valid = (keypoints[..., list(HEAD), 2] >= min_score).sum(-1) >= 2

    eye_mid = (left_eye[..., :2] + right_eye[..., :2]) / 2
    eye_dist = np.linalg.norm(left_eye[..., :2] - right_eye[..., :2], axis=-1)
    nose_offset = np.linalg.norm(nose[..., :2] - eye_mid, axis=-1)
    scale = np.maximum(np.maximum(eye_dist, 1.6 * nose_offset), min_size)

    center_x = (nose[..., 0] + eye_mid[..., 0]) / 2
    center_y = eye_mid[..., 1] + HEAD_BOX_CENTER_DROP * scale
    half_w = HEAD_BOX_WIDTH_SCALE * scale / 2
    half_h = HEAD_BOX_HEIGHT_SCALE * scale / 2
    box = np.stack([center_x - half_w, center_y - half_h, center_x + half_w, center_y + half_h], axis=-1)
    return np.where(valid[..., None], box, np.nan).astype(np.float32)


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip xyxy boxes to the frame (the documented repair for boxes that leave the image)."""
    boxes = np.asarray(boxes, dtype=np.float32).copy()
    boxes[..., 0::2] = np.clip(boxes[..., 0::2], 0, width)
    boxes[..., 1::2] = np.clip(boxes[..., 1::2], 0, height)
    return boxes
