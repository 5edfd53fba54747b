"""The synthetic identity roster: appearance, voice and motion traits of every synthetic person.

An identity is a pure function of its roster index (not of the generator seed), so ``synth007`` looks,
sounds and moves the same in every dataset the generator writes. Neighbouring indices differ in shirt
hue (golden-ratio spacing), skin tone, hair style and colour, body build and voice register, so people
in one clip are easy to tell apart even at 256x144.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_GOLDEN = 0.6180339887498949

SKIN_TONES = (
    (255, 219, 180),
    (234, 184, 146),
    (198, 140, 100),
    (160, 105, 70),
    (112, 72, 48),
    (241, 194, 160),
)
HAIR_COLOURS = (
    (30, 22, 18),
    (90, 56, 30),
    (200, 160, 80),
    (150, 60, 30),
    (120, 120, 125),
    (60, 40, 70),
)
#: Hair styles the renderer knows (see :func:`mit_dataset.synthetic.render.draw_head`).
HAIR_STYLES = ("short", "long", "bald", "bun", "curly")


@dataclass(frozen=True)
class Voice:
    """Synthetic voice parameters (see :mod:`mit_dataset.synthetic.voice`)."""

    f0: float  # mean pitch, Hz
    formant_scale: float  # vocal-tract length factor (1.0 ~ adult male, ~1.17 adult female)
    tilt: float  # spectral tilt exponent of the harmonics (larger = darker voice)
    breathiness: float  # aspiration noise relative to the voiced part
    syllable_rate: float  # syllables per second
    vibrato_hz: float
    loudness: float


@dataclass(frozen=True)
class Identity:
    identity_id: str
    index: int
    skin: tuple[int, int, int]
    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    shoes: tuple[int, int, int]
    hair: tuple[int, int, int]
    hair_style: str
    shoulder_width: float  # multiplies the shoulder half-width
    head_scale: float  # multiplies the head size
    height_scale: float  # multiplies the whole body
    gesture_energy: float  # 0..1, how much the arms move while speaking
    dominant_hand: int  # +1 left (image right), -1 right (image left)
    voice: Voice


def identity_id(index: int) -> str:
    return f"synth{index:03d}"


def _rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


@lru_cache(maxsize=4096)
def make_identity(index: int) -> Identity:
    """The roster entry ``index`` (deterministic, independent of any generator seed)."""
    if index < 0:
        raise ValueError(f"identity index must be >= 0, got {index}")
    rng = np.random.default_rng([0x5EED, index])
    hue = (index * _GOLDEN) % 1.0
    shirt = _rgb(hue, (0.85, 0.6, 0.95)[index % 3], (0.9, 0.75, 0.6)[(index // 3) % 3])
    trousers = _rgb(hue + 0.5, 0.35, (0.25, 0.4, 0.55)[index % 3])
    feminine = index % 2 == 1
    if feminine:
        voice = Voice(
            f0=float(rng.uniform(175, 250)),
            formant_scale=float(rng.uniform(1.12, 1.22)),
            tilt=float(rng.uniform(0.9, 1.3)),
            breathiness=float(rng.uniform(0.04, 0.12)),
            syllable_rate=float(rng.uniform(4.0, 6.0)),
            vibrato_hz=float(rng.uniform(4.5, 6.0)),
            loudness=float(rng.uniform(0.8, 1.0)),
        )
    else:
        voice = Voice(
            f0=float(rng.uniform(85, 150)),
            formant_scale=float(rng.uniform(0.92, 1.04)),
            tilt=float(rng.uniform(1.1, 1.6)),
            breathiness=float(rng.uniform(0.02, 0.08)),
            syllable_rate=float(rng.uniform(3.5, 5.5)),
            vibrato_hz=float(rng.uniform(4.0, 5.5)),
            loudness=float(rng.uniform(0.85, 1.0)),
        )
    return Identity(
        identity_id=identity_id(index),
        index=index,
        skin=SKIN_TONES[(index * 5 + index // 6) % len(SKIN_TONES)],
        shirt=shirt,
        trousers=trousers,
        shoes=_rgb(hue + 0.25, 0.3, 0.2),
        hair=HAIR_COLOURS[(index * 7 + index // 6) % len(HAIR_COLOURS)],
        hair_style=HAIR_STYLES[(index * 3 + index // 5) % len(HAIR_STYLES)],
        shoulder_width=float(rng.uniform(0.88, 1.08) * (0.94 if feminine else 1.0)),
        head_scale=float(rng.uniform(0.95, 1.08)),
        height_scale=float(rng.uniform(0.93, 1.0)),
        gesture_energy=float(rng.uniform(0.45, 1.0)),
        dominant_hand=int(rng.choice([-1, 1])),
        voice=voice,
    )
