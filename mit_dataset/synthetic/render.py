"""Drawing synthetic people into frames with PIL (C-level rasterisation, no per-pixel Python loops).

Every shape of person ``j`` is drawn twice: in colour on the frame and with value ``j + 1`` on a label
image, so the instance masks are exactly the rendered silhouettes (later people occlude earlier ones in
both). Face details (eyes, brows, mouth) only touch the colour frame; they lie inside the head.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .identity import Identity
from .skeleton import HEAD_HALF_HEIGHT, HEAD_HALF_WIDTH, PoseTrack

Colour = tuple[int, int, int]


def _shade(colour: Colour, factor: float) -> Colour:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in colour)


def _mix(a: Colour, b: Colour, t: float) -> Colour:
    return tuple(round(x * (1 - t) + y * t) for x, y in zip(a, b))


class _Painter:
    """Draws each shape on the colour frame and (optionally) on the instance-label and head-label images."""

    def __init__(self, frame: Image.Image, label: Image.Image, head: Image.Image | None):
        self.rgb = ImageDraw.Draw(frame)
        self.label = ImageDraw.Draw(label)
        self.head = ImageDraw.Draw(head) if head is not None else None
        self.value = 1
        self.head_part = False

    def _targets(self, colour: Colour, silhouette: bool):
        yield self.rgb, colour
        if silhouette:
            yield self.label, self.value
            if self.head is not None and self.head_part:
                yield self.head, self.value

    def line(self, points, width: float, colour: Colour, silhouette: bool = True) -> None:
        width = max(1, round(width))
        xy = [tuple(map(float, p)) for p in points]
        for draw, fill in self._targets(colour, silhouette):
            draw.line(xy, fill=fill, width=width, joint="curve" if len(xy) > 2 else None)
            if width > 2:  # round caps so joint keypoints sit inside the limb
                r = width / 2
                for x, y in xy:
                    draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)

    def polygon(self, points, colour: Colour, silhouette: bool = True) -> None:
        xy = [tuple(map(float, p)) for p in points]
        for draw, fill in self._targets(colour, silhouette):
            draw.polygon(xy, fill=fill)

    def ellipse(self, box, colour: Colour, silhouette: bool = True) -> None:
        box = [float(v) for v in box]
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:  # PIL needs x1 >= x0; keep tiny features visible
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            box = [cx - 0.5, cy - 0.5, cx + 0.5, cy + 0.5]
        for draw, fill in self._targets(colour, silhouette):
            draw.ellipse(box, fill=fill)

    def chord(self, box, start: float, end: float, colour: Colour, silhouette: bool = True) -> None:
        box = [float(v) for v in box]
        for draw, fill in self._targets(colour, silhouette):
            draw.chord(box, start, end, fill=fill)

    def rounded_rectangle(self, box, radius: float, colour: Colour, silhouette: bool = True) -> None:
        box = [float(v) for v in box]
        for draw, fill in self._targets(colour, silhouette):
            draw.rounded_rectangle(box, radius=max(0.0, float(radius)), fill=fill)


def make_background(
    width: int, height: int, seat_y: float, unit: float, rng: np.random.Generator
) -> np.ndarray:
    """A static talk-show set: graded backdrop with panels and city lights, a couch, a floor. ``(H, W, 3)`` uint8."""
    hue_top = rng.uniform(0, 1, 3)
    top = 40 + 90 * hue_top
    bottom = top * rng.uniform(0.35, 0.6)
    yy = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    xx = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    panels = 1.0 + 0.08 * np.sign(np.sin(2 * np.pi * xx * rng.integers(3, 7) + rng.uniform(0, 6)))
    image = (top * (1 - yy) + bottom * yy) * panels
    image = np.broadcast_to(image, (height, width, 3)).copy()

    canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    # City lights in the backdrop.
    for _ in range(int(rng.integers(10, 25))):
        x = rng.uniform(0, width)
        w = rng.uniform(0.01, 0.04) * width
        h = rng.uniform(0.1, 0.35) * height
        shade = int(rng.uniform(20, 60))
        draw.rectangle(
            [x, seat_y - 2.6 * unit - h, x + w, seat_y - 2.6 * unit], fill=(shade, shade, shade + 15)
        )
    # Floor and couch (back rest, seat, front).
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


def draw_head(p: _Painter, identity: Identity, centre: np.ndarray, size: float, face: np.ndarray) -> None:
    """Hair, head, jaw and face features. ``face`` is the (68, 2) iBUG face in pixels."""
    cx, cy = float(centre[0]), float(centre[1])

    def box(x0, y0, x1, y1):
        return [cx + x0 * size, cy + y0 * size, cx + x1 * size, cy + y1 * size]

    hair, skin, style = identity.hair, identity.skin, identity.hair_style
    p.head_part = True
    if style == "long":
        p.rounded_rectangle(box(-0.48, -0.62, 0.48, 0.75), 0.3 * size, hair)
    elif style == "curly":
        p.ellipse(box(-0.5, -0.72, 0.5, 0.2), hair)
    p.ellipse(box(-HEAD_HALF_WIDTH, -HEAD_HALF_HEIGHT, HEAD_HALF_WIDTH, HEAD_HALF_HEIGHT), skin)
    p.polygon(face[0:17], skin)  # the jaw follows the mouth opening
    if style in ("short", "long", "bun"):
        p.chord(box(-0.46, -0.64, 0.46, 0.3), 180, 360, hair)
    elif style == "curly":
        p.chord(box(-0.5, -0.72, 0.5, 0.0), 180, 360, hair)
    else:  # bald: a thin fringe above the ears
        p.chord(box(-0.43, -0.5, 0.43, 0.4), 195, 345, _shade(skin, 0.85))
    if style == "bun":
        p.ellipse(box(-0.13, -0.77, 0.13, -0.51), hair)
    p.head_part = False

    # Face details (inside the head; colour only).
    eye_r = max(0.055 * size, 0.5)
    for centre_eye in (face[36:42].mean(0), face[42:48].mean(0)):
        ex, ey = centre_eye
        p.ellipse(
            [ex - eye_r, ey - eye_r * 0.8, ex + eye_r, ey + eye_r * 0.8], (25, 20, 20), silhouette=False
        )
    brow_w = max(1.0, 0.045 * size)
    p.line(face[17:22], brow_w, _shade(hair, 0.8), silhouette=False)
    p.line(face[22:27], brow_w, _shade(hair, 0.8), silhouette=False)
    p.line(face[[28, 30]], max(1.0, 0.04 * size), _shade(skin, 0.82), silhouette=False)
    lips = _mix(_shade(skin, 0.75), (170, 40, 50), 0.5)
    p.polygon(face[48:60], lips, silhouette=False)
    if face[66, 1] - face[62, 1] > 0.02 * size:
        p.polygon(face[60:68], (45, 12, 20), silhouette=False)


def draw_person(p: _Painter, identity: Identity, pose: PoseTrack, frame: int) -> None:
    """Draw one person (silhouette on the label image with ``p.value``) at frame index ``frame``."""
    kp = pose.keypoints_133[frame, :, :2].astype(np.float64)
    u = pose.unit
    limb_w, leg_w, finger_w = 0.34 * u, 0.45 * u, max(1.0, 0.085 * u)

    for hip, knee, ankle in ((11, 13, 15), (12, 14, 16)):
        p.line(kp[[hip, knee, ankle]], leg_w, identity.trousers)
    for ankle, big, small, heel in ((15, 17, 18, 19), (16, 20, 21, 22)):
        p.polygon(kp[[ankle, small, big, heel]], identity.shoes)
        p.line(kp[[ankle, big]], 0.25 * u, identity.shoes)

    ls, rs, lh, rh = kp[5], kp[6], kp[11], kp[12]
    out, up = 0.16 * u, 0.14 * u
    torso = [ls + (out, -up), rs + (-out, -up), rh + (-out, up), lh + (out, up)]
    p.polygon(torso, identity.shirt)
    neck_top = pose.head_center[frame]
    neck_base = (ls + rs) / 2
    p.line([neck_base, neck_top], 0.38 * pose.head_size, _shade(identity.skin, 0.9))

    for shoulder, elbow, wrist, hand in ((5, 7, 9, 91), (6, 8, 10, 112)):
        p.line(kp[[shoulder, elbow, wrist]], limb_w, _shade(identity.shirt, 0.92))
        pts = kp[hand : hand + 21]
        p.polygon(pts[[0, 5, 9, 13, 17]], identity.skin)
        p.line(pts[[0, 1, 2, 3, 4]], finger_w, identity.skin)
        for base in (5, 9, 13, 17):
            p.line(pts[[0, base, base + 1, base + 2, base + 3]], finger_w, identity.skin)

    draw_head(p, identity, pose.head_center[frame], pose.head_size, kp[23:91])


def render_frame(
    background: np.ndarray,
    people: Sequence[tuple[Identity, PoseTrack]],
    frame: int,
    with_heads: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Render frame ``frame``: ``(rgb (H, W, 3) uint8, label (H, W) uint8, head_label or None)``.

    ``label == j + 1`` is person ``j``'s visible silhouette; ``head_label`` (with ``with_heads``) marks
    each person's drawn head (hair included), for checks against the face boxes.
    """
    height, width = background.shape[:2]
    image = Image.fromarray(background)
    label = Image.new("L", (width, height), 0)
    heads = Image.new("L", (width, height), 0) if with_heads else None
    painter = _Painter(image, label, heads)
    for j, (identity, pose) in enumerate(people):
        painter.value = j + 1
        draw_person(painter, identity, pose, frame)
    return (
        np.asarray(image),
        np.asarray(label),
        np.asarray(heads) if heads is not None else None,
    )
