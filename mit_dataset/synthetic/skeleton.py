"""An articulated, seated talk-show guest animated into COCO-WholeBody-133 keypoints.

Geometry is in *body units* ``u`` (pixels per unit are chosen by the layout): pelvis at the origin,
``y`` down, the person's left side (COCO ``left_*``) at ``+x`` (image right, the person faces the camera).
The head carries a full iBUG-68 face (points 23-90) projected with yaw/pitch/roll, so the nose moves
relative to the eyes when the head turns and the lips part with the person's own speech envelope.

Head proportions are chosen so that :func:`mit_dataset.keypoints.head_box` of the resulting nose/eye
points always contains the drawn head (see ``HEAD_HALF_WIDTH``/``HEAD_HALF_HEIGHT``, ``MAX_YAW``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..features import FPS
from .identity import Identity

#: Largest head turn (radians, about 31 degrees).
MAX_YAW = 0.55
MAX_PITCH = 0.16
#: Drawn head ellipse, in head units (see :data:`FACE_TEMPLATE`).
HEAD_HALF_WIDTH = 0.42
HEAD_HALF_HEIGHT = 0.56
#: The head shifts sideways by this many head units per unit of sin(yaw) when it turns.
HEAD_YAW_SHIFT = 0.12
#: Lower lip drop at full mouth opening, in head units.
MOUTH_MAX_OPEN = 0.15
#: Open eye height (upper to lower lid), in head units.
EYE_HEIGHT = 0.055
#: Head size in body units (times the identity's head scale).
HEAD_SIZE = 1.05
SHOULDER_Y = -2.35
SHOULDER_HALF_WIDTH = 0.95
UPPER_ARM = 1.0
FOREARM = 0.9
HAND_LENGTH = 0.5
#: Vertical extent of a seated person, in body units: head top (hair included) to toes.
BODY_TOP = SHOULDER_Y - 0.25 - HEAD_SIZE * 1.08 * (HEAD_HALF_HEIGHT + 0.95)
BODY_BOTTOM = 2.2
#: Largest horizontal reach from the body centre, in body units (elbows/hands while gesturing).
BODY_HALF_WIDTH = 1.75


def _face_template() -> np.ndarray:
    """iBUG-68 face in head units: ``(68, 3)`` x (person's left = +x), y (down), z (towards the camera)."""
    pts = np.zeros((68, 3))
    b = np.linspace(-0.15, np.pi + 0.15, 17)
    pts[0:17] = np.stack([-0.40 * np.cos(b), -0.05 + 0.58 * np.sin(b), 0.25 * np.clip(np.sin(b), 0, None)], 1)
    for start, (x0, x1) in ((17, (-0.33, -0.08)), (22, (0.08, 0.33))):
        x = np.linspace(x0, x1, 5)
        pts[start : start + 5] = np.stack(
            [x, -0.27 - 0.04 * np.sin(np.linspace(0, np.pi, 5)), np.full(5, 0.12)], 1
        )
    pts[27:31] = np.stack([np.zeros(4), [-0.12, -0.03, 0.06, 0.16], [0.2, 0.28, 0.37, 0.45]], 1)
    pts[31:36] = np.stack([np.linspace(-0.09, 0.09, 5), [0.19, 0.2, 0.2, 0.2, 0.19], np.full(5, 0.3)], 1)
    top, bottom = -0.03, EYE_HEIGHT - 0.03
    eye = np.array([[-0.08, 0.0], [-0.03, top], [0.03, top], [0.08, 0.0], [0.03, bottom], [-0.03, bottom]])
    pts[36:42, :2] = eye + [-0.22, -0.14]
    pts[42:48, :2] = eye + [0.22, -0.14]
    pts[36:48, 2] = 0.15
    pts[48:60, :2] = [
        [-0.15, 0.33],
        [-0.09, 0.305],
        [-0.035, 0.295],
        [0.0, 0.30],
        [0.035, 0.295],
        [0.09, 0.305],
        [0.15, 0.33],
        [0.09, 0.36],
        [0.035, 0.37],
        [0.0, 0.372],
        [-0.035, 0.37],
        [-0.09, 0.36],
    ]
    pts[60:68, :2] = [
        [-0.12, 0.33],
        [-0.04, 0.322],
        [0.0, 0.322],
        [0.04, 0.322],
        [0.12, 0.33],
        [0.04, 0.338],
        [0.0, 0.338],
        [-0.04, 0.338],
    ]
    pts[48:68, 2] = 0.25
    return pts


FACE_TEMPLATE = _face_template()
#: How far each face point moves down per unit of mouth opening (lower lip, inner lower lip, jaw).
_MOUTH_DROP = np.zeros(68)
_MOUTH_DROP[[55, 56, 57, 58, 59]] = [0.75, 0.95, 1.0, 0.95, 0.75]
_MOUTH_DROP[[65, 66, 67]] = [0.95, 1.0, 0.95]
_MOUTH_DROP[[49, 50, 51, 52, 53, 61, 62, 63]] = -0.12
_MOUTH_DROP[4:13] = 0.35 * np.sin(np.linspace(0.3, np.pi - 0.3, 9))
_EARS = np.array([[0.42, -0.05, -0.1], [-0.42, -0.05, -0.1]])  # COCO 3 left ear (+x), 4 right ear

# Hand template (21 points: root, thumb1-4, forefinger1-4, middle1-4, ring1-4, pinky1-4) in hand lengths:
# a along the hand, b across it towards the thumb.
_HAND = np.array(
    [
        [0.0, 0.0],
        [0.12, 0.12],
        [0.22, 0.22],
        [0.32, 0.28],
        [0.40, 0.32],
        [0.45, 0.10],
        [0.62, 0.11],
        [0.73, 0.11],
        [0.83, 0.11],
        [0.47, 0.03],
        [0.66, 0.03],
        [0.78, 0.03],
        [0.89, 0.03],
        [0.45, -0.04],
        [0.62, -0.045],
        [0.73, -0.05],
        [0.82, -0.05],
        [0.41, -0.11],
        [0.54, -0.13],
        [0.62, -0.14],
        [0.70, -0.15],
    ]
)
_FINGER_BASE = np.array([0, 0, 1, 1, 1, 0, 5, 5, 5, 0, 9, 9, 9, 0, 13, 13, 13, 0, 17, 17, 17])


_BLINK = np.array([0.6, 1.0, 1.0, 0.5])
_NOD = np.sin(np.linspace(0, np.pi, 12))


def _event_frames(rng: np.random.Generator, num: int, fps: float, low_s: float, high_s: float) -> list[int]:
    """Start frames of events spaced uniformly between ``low_s`` and ``high_s`` seconds apart."""
    starts, t = [], rng.uniform(0, high_s)
    while t * fps < num:
        starts.append(int(t * fps))
        t += rng.uniform(low_s, high_s)
    return starts


@dataclass
class PoseTrack:
    """One animated person: keypoints and what the renderer needs beyond them."""

    keypoints_133: np.ndarray  # (F, 133, 3) float32, pixels
    head_center: np.ndarray  # (F, 2) pixels, centre of the drawn head ellipse
    head_size: float  # pixels per head unit
    unit: float  # pixels per body unit
    yaw: np.ndarray  # (F,) radians, + = towards image right
    mouth: np.ndarray  # (F,) 0..1


def smooth_noise(rng: np.random.Generator, n: int, sigma: float, size: tuple[int, ...] = ()) -> np.ndarray:
    """Gaussian-smoothed white noise ``(n, *size)`` with unit standard deviation (sigma in frames)."""
    pad = int(np.ceil(3 * sigma)) + 1
    raw = rng.standard_normal((n + 2 * pad, *size))
    smooth = gaussian_filter1d(raw, sigma, axis=0, mode="nearest")[pad : pad + n]
    return smooth * np.sqrt(2 * np.sqrt(np.pi) * sigma)


def ema(x: np.ndarray, tau_frames: float) -> np.ndarray:
    """Causal exponential smoothing along axis 0 (time constant in frames)."""
    alpha = 1.0 - np.exp(-1.0 / max(tau_frames, 1e-6))
    out = np.empty_like(x, dtype=np.float64)
    state = np.asarray(x[0], dtype=np.float64)
    for i in range(x.shape[0]):
        state = state + alpha * (x[i] - state)
        out[i] = state
    return out


def _rotate(v: np.ndarray, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], -1)


def animate_person(
    identity: Identity,
    x0: float,
    y0: float,
    unit: float,
    speaking: np.ndarray,
    mouth: np.ndarray,
    yaw_target: np.ndarray,
    rng: np.random.Generator,
    fps: float = FPS,
) -> PoseTrack:
    """Animate one seated person whose pelvis sits at pixel ``(x0, y0)``, ``unit`` pixels per body unit.

    ``speaking`` (F,) drives the gestures, ``mouth`` (F,) in [0, 1] the lips and nods, ``yaw_target``
    (F,) radians where the person wants to look (the head follows with a short lag).
    """
    speaking = np.asarray(speaking, dtype=np.float64)
    mouth = np.asarray(mouth, dtype=np.float64)
    num = speaking.size
    u = unit * identity.height_scale
    t = np.arange(num) / fps
    sw = SHOULDER_HALF_WIDTH * identity.shoulder_width

    # Head orientation first: the torso leans a little towards where the person looks.
    yaw = ema(np.asarray(yaw_target, np.float64), 0.15 * fps) + 0.04 * smooth_noise(rng, num, 10)
    yaw = np.clip(yaw, -MAX_YAW, MAX_YAW)
    beat = gaussian_filter1d(mouth, 1.0) - gaussian_filter1d(mouth, 5.0)  # syllable-rate band
    nod = speaking * np.clip(beat * 2.5, -0.5, 1.0)
    pitch = np.clip(0.04 + 0.025 * smooth_noise(rng, num, 15) + 0.08 * nod, 0.0, MAX_PITCH)
    roll = 0.035 * smooth_noise(rng, num, 20)

    breath = np.sin(2 * np.pi * rng.uniform(0.2, 0.3) * t + rng.uniform(0, 2 * np.pi))
    sway = 0.04 * smooth_noise(rng, num, 20)
    lean = 0.1 * yaw / MAX_YAW + 0.04 * smooth_noise(rng, num, 25)
    pelvis = np.stack([np.full(num, x0) + sway * u, np.full(num, float(y0))], -1)
    shoulder_c = pelvis + np.stack([lean * u, (SHOULDER_Y + 0.025 * breath) * np.ones(num) * u], -1)
    tilt = 0.03 * smooth_noise(rng, num, 25) * u

    kp = np.zeros((num, 133, 2))
    kp[:, 5] = shoulder_c + np.stack([np.full(num, sw * u), tilt], -1)  # left shoulder (+x)
    kp[:, 6] = shoulder_c + np.stack([np.full(num, -sw * u), -tilt], -1)
    hip = 0.5 * identity.shoulder_width
    legs = {  # COCO index: (x for the left side, y) in body units; the right side mirrors x
        11: (hip, 0.0),
        13: (0.62, 0.38),
        15: (0.6, 1.9),
        17: (0.52, 2.15),
        18: (0.78, 2.1),
        19: (0.62, 2.0),
    }
    leg_jitter = 0.015 * smooth_noise(rng, num, 30, (2, 2))
    for index, (x, y) in legs.items():
        right = {11: 12, 13: 14, 15: 16, 17: 20, 18: 21, 19: 22}[index]
        kp[:, index] = pelvis + np.array([x, y]) * u + leg_jitter[:, 0] * u
        kp[:, right] = pelvis + np.array([-x, y]) * u + leg_jitter[:, 1] * u

    # Arms: speech-driven gestures. g rises while speaking (per-identity energy), beats follow syllables.
    energy = identity.gesture_energy * np.clip(0.75 + 0.25 * smooth_noise(rng, num, 25), 0.4, 1.0)
    gesture = ema(speaking * energy, 0.2 * fps)
    arm_noise = smooth_noise(rng, num, 12, (2, 4))
    for k, side in enumerate((1, -1)):  # left arm (+x) then right arm
        weight = 1.0 if side == identity.dominant_hand else 0.55
        g = gesture * weight
        swing = beat * speaking * weight
        abduct = np.clip(0.12 + 0.4 * g + 0.15 * swing + 0.05 * arm_noise[:, k, 0], 0.0, 0.55)
        raise_ = np.clip(0.9 + 1.4 * g + 0.9 * swing + 0.1 * arm_noise[:, k, 1], 0.6, 2.45)
        shoulder = kp[:, 5 if side == 1 else 6]
        elbow = shoulder + UPPER_ARM * u * np.stack([side * np.sin(abduct), np.cos(abduct)], -1)
        forearm_dir = np.stack([-side * np.sin(raise_), np.cos(raise_)], -1)
        wrist = elbow + FOREARM * u * forearm_dir
        kp[:, 7 if side == 1 else 8] = elbow
        kp[:, 9 if side == 1 else 10] = wrist
        flex = side * (0.25 * arm_noise[:, k, 2] - 0.1 - 0.2 * g)
        direction = _rotate(forearm_dir, flex)
        thumb = side * np.stack([-direction[:, 1], direction[:, 0]], -1)
        curl = np.clip(0.65 - 0.5 * g + 0.15 * arm_noise[:, k, 3], 0.0, 1.0)
        spread = 0.2 + 0.6 * g
        base = _HAND[_FINGER_BASE]
        along = base[None, :, 0] + (_HAND[None, :, 0] - base[None, :, 0]) * (1 - 0.55 * curl[:, None])
        across = _HAND[None, :, 1] * (1 + 0.5 * spread[:, None])
        hand = wrist[:, None] + HAND_LENGTH * u * (
            along[..., None] * direction[:, None] + across[..., None] * thumb[:, None]
        )
        kp[:, (91 if side == 1 else 112) : (112 if side == 1 else 133)] = hand

    # Head and face.
    head_size = u * HEAD_SIZE * identity.head_scale
    head_center = shoulder_c + np.stack(
        [
            HEAD_YAW_SHIFT * head_size * np.sin(yaw),
            -(0.25 * u + HEAD_HALF_HEIGHT * head_size) + 0.03 * head_size * nod,
        ],
        -1,
    )
    # Blinks every 2-6 s, and listeners nod now and then while silent.
    blink = np.zeros(num)
    for start in _event_frames(rng, num, fps, 2.0, 6.0):
        blink[start : start + 4] = _BLINK[: num - start]
    nods = np.zeros(num)
    for start in _event_frames(rng, num, fps, 1.5, 5.0):
        nods[start : start + 12] = _NOD[: num - start]
    pitch = np.clip(pitch + 0.07 * nods * (1.0 - speaking), 0.0, MAX_PITCH)

    face = np.broadcast_to(FACE_TEMPLATE, (num, 68, 3)).copy()
    face[:, :, 1] += MOUTH_MAX_OPEN * mouth[:, None] * _MOUTH_DROP[None, :]
    eye_centre_y = FACE_TEMPLATE[36:48, 1].mean()
    face[:, 36:48, 1] = eye_centre_y + (face[:, 36:48, 1] - eye_centre_y) * (1.0 - blink[:, None])
    points = np.concatenate([face, np.broadcast_to(_EARS, (num, 2, 3))], axis=1)
    x = points[..., 0] * np.cos(yaw)[:, None] + points[..., 2] * np.sin(yaw)[:, None]
    y = points[..., 1] + points[..., 2] * np.sin(pitch)[:, None]
    projected = _rotate(np.stack([x, y], -1), roll[:, None]) * head_size + head_center[:, None]
    kp[:, 23:91] = projected[:, :68]
    kp[:, 3:5] = projected[:, 68:70]
    kp[:, 0] = projected[:, 30]  # nose tip
    kp[:, 1] = projected[:, 42:48].mean(1)  # left eye = image-right eye
    kp[:, 2] = projected[:, 36:42].mean(1)

    scores = np.clip(0.93 + 0.03 * smooth_noise(rng, num, 5, (133,)), 0.5, 1.0)
    keypoints = np.concatenate([kp, scores[..., None]], -1).astype(np.float32)
    return PoseTrack(
        keypoints_133=keypoints,
        head_center=head_center.astype(np.float32),
        head_size=float(head_size),
        unit=float(u),
        yaw=yaw.astype(np.float32),
        mouth=mouth.astype(np.float32),
    )
