"""A hand-made conversation video for the speaker-sync tests: persons take turns; a speaker's mouth opens and
closes with a syllable envelope, a listener's mouth stays shut; every head bobs a little (the face boxes follow
it) and the frame has sensor noise, so the metric has to ignore head motion and noise."""

from __future__ import annotations

import numpy as np


def turn_schedule(num_persons: int, num_frames: int, turn_frames: int = 20) -> np.ndarray:
    """Speaking scores ``(P, F)`` in {-1, 1}: person ``(t // turn_frames) % P`` speaks at frame t."""
    speaker = (np.arange(num_frames) // turn_frames) % num_persons
    return np.where(speaker[None] == np.arange(num_persons)[:, None], 1.0, -1.0)


def render_conversation(
    scores: np.ndarray, width: int = 192, height: int = 96, seed: int = 0, bob_px: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(frames (F, H, W, 3) uint8, face_boxes (P, F, 4))`` of persons whose mouths follow ``scores > 0``."""
    rng = np.random.default_rng(seed)
    num_persons, num_frames = scores.shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = (60 + 30 * np.sin(xx / 17.0)[..., None] * np.array([1.0, 0.6, 0.3])).astype(np.float32)
    face_w, face_h = 0.55 * width / num_persons, 0.7 * height
    centres_x = (np.arange(num_persons) + 0.5) * width / num_persons
    bob_phase = rng.uniform(0, 2 * np.pi, num_persons)
    syllable = np.abs(np.sin(np.arange(num_frames) * 2 * np.pi / 5.0 + rng.uniform(0, 6, (num_persons, 1))))
    openness = np.where(scores > 0, 0.15 + 0.85 * syllable, 0.05)
    frames = np.empty((num_frames, height, width, 3), np.float32)
    boxes = np.zeros((num_persons, num_frames, 4))
    for t in range(num_frames):
        frame = background.copy()
        for p in range(num_persons):
            cx = centres_x[p] + bob_px * np.sin(0.3 * t + bob_phase[p])
            cy = height / 2 + bob_px * np.cos(0.23 * t + bob_phase[p])
            x1, y1, x2, y2 = cx - face_w / 2, cy - face_h / 2, cx + face_w / 2, cy + face_h / 2
            boxes[p, t] = (x1, y1, x2, y2)
            face = ((xx - cx) / (face_w / 2)) ** 2 + ((yy - cy) / (face_h / 2)) ** 2 < 1
            frame[face] = (200, 160, 130)
            for side in (-1, 1):  # eyes
                eye = ((xx - cx - side * face_w * 0.2) ** 2 + (yy - (y1 + 0.33 * face_h)) ** 2) < (
                    face_w * 0.07
                ) ** 2
                frame[eye] = (30, 30, 30)
            mouth_cy, mouth_rx = y1 + 0.75 * face_h, face_w * 0.2
            mouth_ry = max(0.6, 0.12 * face_h * openness[p, t])
            mouth = ((xx - cx) / mouth_rx) ** 2 + ((yy - mouth_cy) / mouth_ry) ** 2 < 1
            frame[mouth] = (90, 20, 30)
        frames[t] = frame + rng.normal(0, 2.0, frame.shape)
    return np.clip(frames, 0, 255).round().astype(np.uint8), boxes
