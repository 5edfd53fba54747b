"""Drawing synthetic people into frames with PIL (C-level rasterisation, no per-pixel Python loops).

Each frame is drawn once into an 8-bit *part-index* image: index ``1 + 16 * j + part`` is part ``part``
(shirt, skin, hair, lips...) of person ``j``; 0 is background. Three lookup tables turn that image into
the colour frame (composited over the static background), the instance labels (``j + 1``: the exact
rendered silhouette, later people occluding earlier ones) and the head labels (hair and face only, used
to check the face boxes). One draw call per shape serves all three.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .identity import Identity
from .skeleton import EYE_HEIGHT, HEAD_HALF_HEIGHT, HEAD_HALF_WIDTH, PoseTrack

Colour = tuple[int, int, int]

#: Part slots per person in the index image (16 per person, so up to 15 people fit in 8 bits).
PARTS = (
    "trousers", "shoes", "shirt", "sleeve", "neck", "hand",  # body
    "head", "hair", "fringe", "eyes", "brows", "nose", "lips", "mouth",  # head (the face box must hold these)
)  # fmt: skip
HEAD_PARTS = frozenset(PARTS[PARTS.index("head") :])
_SLOT = 16
_P = {name: i + 1 for i, name in enumerate(PARTS)}
#: Hand polyline that walks every finger from the root and back (one draw call per hand).
_HAND_PATH = [
    0,
    1,
    2,
    3,
    4,
    3,
    2,
    1,
    0,
    5,
    6,
    7,
    8,
    7,
    6,
    5,
    9,
    10,
    11,
    12,
    11,
    10,
    9,
    13,
    14,
    15,
    16,
    15,
    14,
    13,
]
_HAND_PATH += [0, 17, 18, 19, 20]


def _shade(colour: Colour, factor: float) -> Colour:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in colour)


def _mix(a: Colour, b: Colour, t: float) -> Colour:
    return tuple(round(x * (1 - t) + y * t) for x, y in zip(a, b))


def part_colours(identity: Identity) -> dict[str, Colour]:
    skin, hair = identity.skin, identity.hair
    return {
        "trousers": identity.trousers,
        "shoes": identity.shoes,
        "shirt": identity.shirt,
        "sleeve": _shade(identity.shirt, 0.9),
        "neck": _shade(skin, 0.9),
        "hand": skin,
        "head": skin,
        "hair": hair,
        "fringe": _shade(skin, 0.85),
        "eyes": (25, 20, 20),
        "brows": _shade(hair, 0.8),
        "nose": _shade(skin, 0.8),
        "lips": _mix(_shade(skin, 0.75), (170, 40, 50), 0.5),
        "mouth": (45, 12, 20),
    }


def make_background(
    width: int, height: int, seat_y: float, unit: float, rng: np.random.Generator
) -> np.ndarray:
    """A static talk-show set: graded backdrop with panels and city lights, a couch, a floor. ``(H, W, 3)`` uint8."""
    top = 40 + 90 * rng.uniform(0, 1, 3)
    bottom = top * rng.uniform(0.35, 0.6)
    yy = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    xx = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    panels = 1.0 + 0.08 * np.sign(np.sin(2 * np.pi * xx * rng.integers(3, 7) + rng.uniform(0, 6)))
    image = np.broadcast_to((top * (1 - yy) + bottom * yy) * panels, (height, width, 3))

    canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(10, 25))):  # city lights in the backdrop
        x = rng.uniform(0, width)
        w = rng.uniform(0.01, 0.04) * width
        h = rng.uniform(0.1, 0.35) * height
        shade = int(rng.uniform(20, 60))
        draw.rectangle(
            [x, seat_y - 2.6 * unit - h, x + w, seat_y - 2.6 * unit], fill=(shade, shade, shade + 15)
        )
    floor = tuple(int(v) for v in rng.uniform(50, 110, 3))
    draw.rectangle([0, seat_y + 0.6 * unit, width, height], fill=floor)
    couch = tuple(int(v) for v in rng.uniform(60, 170, 3))
    draw.rounded_rectangle(
        [0.02 * width, seat_y - 2.1 * unit, 0.98 * width, seat_y + 0.5 * unit], radius=0.3 * unit, fill=couch
    )
    draw.rectangle(
        [0.02 * width, seat_y - 0.1 * unit, 0.98 * width, seat_y + 0.6 * unit], fill=_shade(couch, 0.8)
    )
    return np.asarray(canvas)


class _Painter:
    """Draws person ``base // 16``'s parts into the index image."""

    def __init__(self, draw: ImageDraw.ImageDraw):
        self.draw = draw
        self.base = 0

    def line(self, xy: list, width: float, part: str, caps: bool = True) -> None:
        width = max(1, round(width))
        ink = self.base + _P[part]
        self.draw.line(xy, fill=ink, width=width, joint="curve" if len(xy) > 2 and caps else None)
        if caps and width > 2:  # round ends so end keypoints sit inside the limb
            r = width / 2
            for x, y in (xy[0], xy[-1]):
                self.draw.ellipse([x - r, y - r, x + r, y + r], fill=ink)

    def polygon(self, xy: list, part: str) -> None:
        self.draw.polygon(xy, fill=self.base + _P[part])

    def ellipse(self, box: list, part: str) -> None:
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:  # keep tiny features visible (PIL needs x1 >= x0)
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            box = [cx - 0.5, cy - 0.5, cx + 0.5, cy + 0.5]
        self.draw.ellipse(box, fill=self.base + _P[part])

    def chord(self, box: list, start: float, end: float, part: str) -> None:
        self.draw.chord(box, start, end, fill=self.base + _P[part])

    def rounded_rectangle(self, box: list, radius: float, part: str) -> None:
        self.draw.rounded_rectangle(box, radius=max(0.0, radius), fill=self.base + _P[part])


def draw_head(p: _Painter, identity: Identity, centre: Sequence[float], size: float, face: list) -> None:
    """Hair, head, jaw and face features. ``face`` is the iBUG-68 face as 68 ``[x, y]`` pixel pairs."""
    cx, cy = float(centre[0]), float(centre[1])

    def box(x0, y0, x1, y1):
        return [cx + x0 * size, cy + y0 * size, cx + x1 * size, cy + y1 * size]

    style = identity.hair_style
    if style == "long":
        p.rounded_rectangle(box(-0.48, -0.62, 0.48, 0.75), 0.3 * size, "hair")
    elif style == "curly":
        p.ellipse(box(-0.5, -0.72, 0.5, 0.2), "hair")
    p.ellipse(box(-HEAD_HALF_WIDTH, -HEAD_HALF_HEIGHT, HEAD_HALF_WIDTH, HEAD_HALF_HEIGHT), "head")
    p.polygon([tuple(pt) for pt in face[0:17]], "head")  # the jaw follows the mouth opening
    if style in ("short", "long", "bun"):
        p.chord(box(-0.46, -0.64, 0.46, 0.3), 180, 360, "hair")
    elif style == "curly":
        p.chord(box(-0.5, -0.72, 0.5, 0.0), 180, 360, "hair")
    else:  # bald: a darker crown
        p.chord(box(-0.43, -0.5, 0.43, 0.4), 195, 345, "fringe")
    if style == "bun":
        p.ellipse(box(-0.13, -0.77, 0.13, -0.51), "hair")

    eye_r = max(0.055 * size, 0.5)
    for eye in (face[36:42], face[42:48]):
        ex = sum(pt[0] for pt in eye) / 6
        ey = sum(pt[1] for pt in eye) / 6
        lid = (eye[4][1] + eye[5][1] - eye[1][1] - eye[2][1]) / (2 * EYE_HEIGHT * size)  # 1 open, 0 shut
        half_h = eye_r * 0.8 * min(max(lid, 0.0), 1.0)
        p.ellipse([ex - eye_r, ey - half_h, ex + eye_r, ey + half_h], "eyes")
    brow_w = max(1.0, 0.045 * size)
    p.line(face[17:22], brow_w, "brows", caps=False)
    p.line(face[22:27], brow_w, "brows", caps=False)
    p.line([face[28], face[30]], max(1.0, 0.04 * size), "nose", caps=False)
    p.polygon([tuple(pt) for pt in face[48:60]], "lips")
    if face[66][1] - face[62][1] > 0.02 * size:
        p.polygon([tuple(pt) for pt in face[60:68]], "mouth")


def draw_person(p: _Painter, identity: Identity, pose: PoseTrack, frame: int) -> None:
    """Draw one person's parts (index base ``p.base``) at frame index ``frame``."""
    kp = pose.keypoints_133[frame, :, :2].tolist()
    u = pose.unit

    p.line([kp[15], kp[13], kp[11], kp[12], kp[14], kp[16]], 0.45 * u, "trousers")
    for ankle, big, small, heel in ((15, 17, 18, 19), (16, 20, 21, 22)):
        p.polygon([tuple(kp[i]) for i in (ankle, small, big, heel)], "shoes")
        p.line([kp[ankle], kp[big]], 0.25 * u, "shoes", caps=False)

    (lx, ly), (rx, ry), (lhx, lhy), (rhx, rhy) = kp[5], kp[6], kp[11], kp[12]
    out, up = 0.16 * u, 0.14 * u
    p.polygon(
        [(lx + out, ly - up), (rx - out, ry - up), (rhx - out, rhy + up), (lhx + out, lhy + up)], "shirt"
    )
    centre = pose.head_center[frame].tolist()
    p.line([[(lx + rx) / 2, (ly + ry) / 2], centre], 0.38 * pose.head_size, "neck", caps=False)

    finger_w = max(1.0, 0.085 * u)
    for shoulder, elbow, wrist, hand in ((5, 7, 9, 91), (6, 8, 10, 112)):
        p.line([kp[shoulder], kp[elbow], kp[wrist]], 0.34 * u, "sleeve")
        pts = kp[hand : hand + 21]
        p.polygon([tuple(pts[i]) for i in (0, 5, 9, 13, 17)], "hand")
        p.line([pts[i] for i in _HAND_PATH], finger_w, "hand", caps=False)

    draw_head(p, identity, centre, pose.head_size, kp[23:91])


class SceneRenderer:
    """Renders the frames of one scene: static background + people, via the part-index image."""

    def __init__(self, background: np.ndarray, people: Sequence[tuple[Identity, PoseTrack]]):
        if len(people) * _SLOT >= 256:
            raise ValueError(f"at most {255 // _SLOT} people per frame, got {len(people)}")
        self.background = Image.fromarray(np.ascontiguousarray(background))
        self.people = list(people)
        colours = np.zeros((256, 3), np.uint8)
        person_lut = np.zeros(256, np.uint8)
        head_lut = np.zeros(256, np.uint8)
        for j, (identity, _) in enumerate(self.people):
            for part, colour in part_colours(identity).items():
                index = j * _SLOT + _P[part]
                colours[index] = colour
                person_lut[index] = j + 1
                head_lut[index] = j + 1 if part in HEAD_PARTS else 0
        # PIL point() tables: C-level lookups, faster than numpy gathers at 1080p.
        self._channel_luts = [colours[:, c].tolist() for c in range(3)]
        self._person_lut = person_lut.tolist()
        self._head_lut = head_lut.tolist()
        self._opaque_lut = [0] + [255] * 255

    def __call__(
        self, frame: int, with_heads: bool = False, hidden: frozenset[int] = frozenset()
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(rgb (H, W, 3) uint8, label (H, W) uint8, head_label (H, W) uint8 or None)`` of frame ``frame``.

        ``label == j + 1`` is person ``j``'s visible silhouette; ``head_label == j + 1`` its drawn head
        (hair and face details included). People in ``hidden`` are not drawn (off screen in that frame).
        """
        canvas = Image.new("L", self.background.size, 0)
        painter = _Painter(ImageDraw.Draw(canvas))
        for j, (identity, pose) in enumerate(self.people):
            if j in hidden:
                continue
            painter.base = j * _SLOT
            draw_person(painter, identity, pose, frame)
        people = Image.merge("RGB", [canvas.point(lut) for lut in self._channel_luts])
        frame_image = self.background.copy()
        frame_image.paste(people, mask=canvas.point(self._opaque_lut))
        label = np.asarray(canvas.point(self._person_lut))
        heads = np.asarray(canvas.point(self._head_lut)) if with_heads else None
        return np.asarray(frame_image), label, heads
