"""DWPose-like pose maps from the MIT 59 keypoints: one RGB map per person per frame, black background.

Style (after OpenPose/DWPose, drawn with Pillow; no OpenCV): each of the 18 body limbs of
:data:`mit_dataset.keypoints.BODY_LINKS` gets its OpenPose colour, body joints are discs in their OpenPose
joint colour, hand bones are coloured per finger (a hue band per finger, darkening towards the finger tip)
and hand joints are small blue discs. A link is drawn when both its ends have score >= ``min_score``; a
joint when its own score is. Keypoints are ``(x, y, score)`` in the continuous pixel coordinates of the
target map (see :mod:`mit_dataset.geometry`): a joint at ``(x, y)`` is centred on pixel
``(floor(y), floor(x))``.

Speed (a 4-person, 17-frame window is 68 maps): the geometry (visibility, segment clipping, joint discs)
is vectorised with NumPy and Pillow only rasterises the limbs. Every map of a batch is drawn as palette
indices into one tall 1-byte canvas (tiles separated by black gutters wider than a stroke; segments are
clipped to their tile), and the model-ready tensor is made by writing only the drawn pixels into a zeroed
buffer (:func:`render_pose_tensor`): pose maps are ~98 % black.
"""

from __future__ import annotations

import colorsys

import numpy as np
import torch
from PIL import Image, ImageDraw

from .keypoints import BODY, BODY_LINKS, HAND_LINKS, KEYPOINT_NAMES, NUM_KEYPOINTS

#: OpenPose's 18 limb/joint colours (RGB), in the order of :data:`~mit_dataset.keypoints.BODY_LINKS`.
OPENPOSE_COLORS = np.array(
    [
        [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0],
        [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255],
        [0, 0, 255], [85, 0, 255], [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85],
    ],
    dtype=np.uint8,
)  # fmt: skip

#: OpenPose-18 joint index of each MIT body point (the big toes take the unused ear colours).
_OPENPOSE_JOINT = {
    "nose": 0, "right_shoulder": 2, "right_elbow": 3, "right_wrist": 4, "left_shoulder": 5,
    "left_elbow": 6, "left_wrist": 7, "right_hip": 8, "right_knee": 9, "right_ankle": 10,
    "left_hip": 11, "left_knee": 12, "left_ankle": 13, "right_eye": 14, "left_eye": 15,
    "right_big_toe": 16, "left_big_toe": 17,
}  # fmt: skip

#: Limb colours (DWPose dims limbs to 60 %), joint colours, hand colours.
LIMB_COLORS = (OPENPOSE_COLORS[: len(BODY_LINKS)].astype(np.float32) * 0.6).astype(np.uint8)
JOINT_COLORS = np.array([OPENPOSE_COLORS[_OPENPOSE_JOINT[KEYPOINT_NAMES[i]]] for i in BODY], dtype=np.uint8)
HAND_JOINT_COLOR = np.array([0, 0, 255], dtype=np.uint8)


def _hand_link_colors() -> np.ndarray:
    colors = []
    for link_index, _ in enumerate(HAND_LINKS):
        if link_index < 2:  # wrist -> hand root: the forearm's colour
            colors.append(OPENPOSE_COLORS[4 if link_index == 1 else 7])
            continue
        bone = (link_index - 2) % 20
        finger, joint = divmod(bone, 4)
        rgb = colorsys.hsv_to_rgb(finger / 5.0 + joint * 0.04, 1.0, 1.0 - 0.12 * joint)
        colors.append(np.round(np.array(rgb) * 255))
    return np.array(colors, dtype=np.uint8)


HAND_LINK_COLORS = _hand_link_colors()

_LINKS = np.array(BODY_LINKS + HAND_LINKS, dtype=np.int64)  # (L, 2)
_IS_HAND_LINK = np.arange(len(_LINKS)) >= len(BODY_LINKS)
_IS_BODY_POINT = np.arange(NUM_KEYPOINTS) < len(BODY)
#: Palette of the index canvas: 0 is the background, then one entry per link, then one per keypoint.
PALETTE = np.concatenate(
    [
        np.zeros((1, 3), np.uint8),
        LIMB_COLORS,
        HAND_LINK_COLORS,
        JOINT_COLORS,
        np.tile(HAND_JOINT_COLOR, (NUM_KEYPOINTS - len(BODY), 1)),
    ]
)
_LINK_INDEX = 1 + np.arange(len(_LINKS))
_POINT_INDEX = 1 + len(_LINKS) + np.arange(NUM_KEYPOINTS)


def default_line_width(height: int, width: int) -> int:
    """Body stroke width: 4 px at 512 px (DWPose's stick width), scaled with the shorter side."""
    return max(1, round(4 * min(height, width) / 512))


def _check_keypoints(keypoints: np.ndarray) -> np.ndarray:
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if keypoints.ndim < 2 or keypoints.shape[-2:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"expected keypoints of shape (..., 59, 3), got {keypoints.shape}")
    return keypoints


def _check_size(height: int, width: int, line_width: int | None) -> tuple[int, int, int]:
    height, width = int(height), int(width)
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    line_width = default_line_width(height, width) if line_width is None else int(line_width)
    if line_width <= 0:
        raise ValueError(f"line_width must be positive, got {line_width}")
    return height, width, line_width


def _clip_segments(p0: np.ndarray, p1: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Liang-Barsky clip of segments ``p0 -> p1`` (N, 2) to the box ``[lo, hi]``: (q0, q1, keep)."""
    d = p1 - p0
    t0 = np.zeros(len(p0), np.float32)
    t1 = np.ones(len(p0), np.float32)
    keep = np.ones(len(p0), bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis in range(2):
            for p, q in ((-d[:, axis], p0[:, axis] - lo[axis]), (d[:, axis], hi[axis] - p0[:, axis])):
                parallel = p == 0
                keep &= ~(parallel & (q < 0))
                r = q / p
                t0 = np.where(~parallel & (p < 0), np.maximum(t0, r), t0)
                t1 = np.where(~parallel & (p > 0), np.minimum(t1, r), t1)
    keep &= t0 <= t1
    return p0 + t0[:, None] * d, p0 + t1[:, None] * d, keep


class _Pen:
    """Pillow drawing with each fill's ink resolved once (``ImageDraw`` resolves it on every call, which
    costs as much as rasterising a short limb); falls back to the public API if Pillow's internals differ."""

    def __init__(self, draw: ImageDraw.ImageDraw):
        self.draw = draw
        self.fast = hasattr(draw, "draw") and hasattr(draw, "_getink")
        self._inks: dict = {}

    def ink(self, fill):
        if fill not in self._inks:
            self._inks[fill] = self.draw._getink(fill)[0] if self.fast else fill
        return self._inks[fill]

    def line(self, xy: list[float], fill, width: int) -> None:
        if self.fast:
            try:
                self.draw.draw.draw_lines(xy, self.ink(fill), width)
                return
            except (AttributeError, TypeError):
                self.fast = False
        self.draw.line(xy, fill=fill, width=width)

    def disc(self, xy: list[float], fill) -> None:
        if self.fast:
            try:
                self.draw.draw.draw_ellipse(xy, self.ink(fill), 1)
                return
            except (AttributeError, TypeError):
                self.fast = False
        self.draw.ellipse(xy, fill=fill)


def _disc_sizes(line_width: int) -> tuple[int, float, float]:
    """(hand stroke width, body joint radius, hand joint radius) for a body stroke width."""
    hand_width = max(1, round(line_width * 2 / 3))
    return hand_width, line_width / 2 + max(0.5, line_width / 4), max(1.0, hand_width * 0.75)


def _draw(
    draw: ImageDraw.ImageDraw,
    keypoints: np.ndarray,
    tile_y: np.ndarray,
    height: int,
    width: int,
    min_score: float,
    line_width: int,
    link_fills: list,
    point_fills: list | None,
):
    """Draw the links of ``(N, 59, 3)`` poses, pose ``n`` in the tile whose top row is ``tile_y[n]``, one
    fill per link (segments are clipped to the tile grown by a margin: nothing spills further). Joints are
    drawn as Pillow discs when ``point_fills`` is given; the visible joints are returned either way as
    ``(pose_index, point_index, centre_xy (K, 2) continuous, radius (K,))`` in drawing order."""
    pen = _Pen(draw)
    hand_width, body_radius, hand_radius = _disc_sizes(line_width)
    # Pixel (i, j) is the unit square [j, j + 1) x [i, i + 1); Pillow puts integer coordinates on pixel
    # centres, so the continuous point (x, y) is Pillow's (x - 0.5, y - 0.5).
    xy = keypoints[..., :2] - 0.5
    visible = keypoints[..., 2] >= min_score  # (N, 59)
    margin = line_width + 2
    lo = np.array([-margin, -margin], np.float32)
    hi = np.array([width + margin, height + margin], np.float32)

    a, b = _LINKS[:, 0], _LINKS[:, 1]
    pose_index, link_index = np.nonzero(visible[:, a] & visible[:, b])
    if len(pose_index):
        q0, q1, keep = _clip_segments(xy[pose_index, a[link_index]], xy[pose_index, b[link_index]], lo, hi)
        shift = tile_y[pose_index].astype(np.float32)
        q0[:, 1] += shift
        q1[:, 1] += shift
        # Body limbs first, then hands on top (DWPose order); within a kind, in link order.
        order = np.lexsort((link_index, pose_index, _IS_HAND_LINK[link_index]))
        order = order[keep[order]]
        segments = np.concatenate([q0[order], q1[order]], axis=1).tolist()
        links = link_index[order].tolist()
        widths = [hand_width if _IS_HAND_LINK[link] else line_width for link in links]
        if pen.fast:
            try:
                draw_lines, inks = draw.draw.draw_lines, [pen.ink(fill) for fill in link_fills]
                for segment, link, stroke in zip(segments, links, widths):
                    draw_lines(segment, inks[link], stroke)
            except (AttributeError, TypeError):
                pen.fast = False
        if not pen.fast:
            for segment, link, stroke in zip(segments, links, widths):
                draw.line(segment, fill=link_fills[link], width=stroke)
    inside = (xy > lo).all(-1) & (xy < hi).all(-1)
    pose_index, point_index = np.nonzero(visible & inside)
    order = np.lexsort((point_index, pose_index, ~_IS_BODY_POINT[point_index]))
    pose_index, point_index = pose_index[order], point_index[order]
    radius = np.where(_IS_BODY_POINT[point_index], body_radius, hand_radius).astype(np.float32)
    centre = keypoints[pose_index, point_index, :2]
    if point_fills is not None:
        discs = np.concatenate([centre - 0.5 - radius[:, None], centre - 0.5 + radius[:, None]], axis=1)
        discs[:, 1::2] += tile_y[pose_index, None]
        for disc, point in zip(discs.tolist(), point_index.tolist()):
            pen.disc(disc, point_fills[point])
    return pose_index, point_index, centre, radius


def _stamp_discs(canvas, tile_y, height, width, centre, radius, values) -> None:
    """Fill discs into ``canvas`` (rows of tiles, see :func:`_render_indices`): every pixel whose centre lies
    within ``radius`` of ``centre`` (continuous tile coordinates) gets ``values``; clipped to the tile.
    Discs are stamped in order, one group of equal radius at a time (later groups on top)."""
    start = 0
    while start < len(centre):
        stop = start + int(np.argmax(np.append(radius[start:] != radius[start], True)))
        group = slice(start, stop)
        _stamp_group(canvas, tile_y[group], height, width, centre[group], float(radius[start]), values[group])
        start = stop


def _stamp_group(canvas, tile_y, height, width, centre, radius: float, values) -> None:
    reach = int(np.ceil(radius + 0.5))  # |j + 0.5 - x| <= r with j - floor(x) in [-reach, reach]
    offsets = np.arange(-reach, reach + 1)
    base = np.floor(centre).astype(np.int64)  # (K, 2)
    cols = base[:, 0, None, None] + offsets[None, None, :]  # (K, 1, S)
    rows = base[:, 1, None, None] + offsets[None, :, None]  # (K, S, 1)
    dx = cols + 0.5 - centre[:, 0, None, None]
    dy = rows + 0.5 - centre[:, 1, None, None]
    inside = (
        (dx * dx + dy * dy <= radius * radius) & (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    )
    disc, row, col = np.nonzero(inside)
    canvas[rows[disc, row, 0] + tile_y[disc], cols[disc, 0, col]] = values[disc]


def _render_indices(
    keypoints: np.ndarray, height: int, width: int, min_score: float, line_width: int | None, pool=None
):
    """Render ``(..., 59, 3)`` poses as palette indices into one tall uint8 canvas (tiles stacked
    vertically, separated by black gutters wider than any stroke can spill; Pillow draws straight into
    the NumPy buffer). Returns ``(canvas, pitch, count, batch_shape)``: tile ``n`` is
    ``canvas[n * pitch : n * pitch + height]``."""
    keypoints = _check_keypoints(keypoints)
    height, width, line_width = _check_size(height, width, line_width)
    batch_shape = keypoints.shape[:-2]
    flat = keypoints.reshape(-1, NUM_KEYPOINTS, 3)
    count = flat.shape[0]
    gutter = 2 * line_width + 4
    pitch = height + gutter
    shape = (max(1, count * pitch), width)
    canvas = pool.zeros(shape, np.uint8) if pool is not None else np.zeros(shape, np.uint8)
    image = Image.frombuffer("L", (width, canvas.shape[0]), canvas, "raw", "L", 0, 1)
    image.readonly = 0  # draw into the NumPy buffer itself (it is writable; Pillow marks buffers read-only)
    shared = _shares_buffer(image, canvas)
    tile_y = np.arange(count) * pitch
    pose_index, point_index, centre, radius = _draw(
        ImageDraw.Draw(image), flat, tile_y, height, width, min_score, line_width,
        link_fills=_LINK_INDEX.tolist(), point_fills=None,
    )  # fmt: skip
    _stamp_discs(
        canvas, tile_y[pose_index], height, width, centre, radius, _POINT_INDEX[point_index].astype(np.uint8)
    )
    if not shared:  # a Pillow that copies frombuffer images: read the pixels back
        canvas = np.array(image)
    return canvas, pitch, count, batch_shape


def _shares_buffer(image: Image.Image, canvas: np.ndarray) -> bool:
    """Whether ``image`` (``Image.frombuffer`` over the all-zero ``canvas``) draws into ``canvas``; the probe
    pixel is reset to zero in both."""
    draw = ImageDraw.Draw(image)
    draw.point((0, 0), fill=1)
    shared = bool(canvas[0, 0] == 1)
    draw.point((0, 0), fill=0)
    canvas[0, 0] = 0
    return shared


def draw_pose(
    image: Image.Image,
    keypoints: np.ndarray,
    min_score: float = 0.3,
    line_width: int | None = None,
) -> Image.Image:
    """Draw one or several poses ``(..., 59, 3)`` (image pixel coordinates) onto an RGB(A) PIL ``image``,
    in place, in the same style as the pose maps; returns it."""
    keypoints = _check_keypoints(keypoints).reshape(-1, NUM_KEYPOINTS, 3)
    width, height = image.size
    height, width, line_width = _check_size(height, width, line_width)
    alpha = (255,) if image.mode == "RGBA" else ()
    fills = [tuple(int(c) for c in rgb) + alpha for rgb in PALETTE]
    _draw(
        ImageDraw.Draw(image), keypoints, np.zeros(len(keypoints), np.int64), height, width, min_score, line_width,
        link_fills=[fills[i] for i in _LINK_INDEX], point_fills=[fills[i] for i in _POINT_INDEX],
    )  # fmt: skip
    return image


def render_pose_map(
    keypoints: np.ndarray,
    height: int,
    width: int,
    min_score: float = 0.3,
    line_width: int | None = None,
) -> np.ndarray:
    """One pose map ``(height, width, 3)`` uint8 from ``(59, 3)`` keypoints in target pixel coordinates."""
    keypoints = _check_keypoints(keypoints)
    if keypoints.ndim != 2:
        raise ValueError(
            f"render_pose_map takes one pose (59, 3), got {keypoints.shape}; use render_pose_maps"
        )
    return render_pose_maps(keypoints, height, width, min_score=min_score, line_width=line_width)


def render_pose_maps(
    keypoints: np.ndarray,
    height: int,
    width: int,
    min_score: float = 0.3,
    line_width: int | None = None,
) -> np.ndarray:
    """Pose maps ``(..., height, width, 3)`` uint8 for keypoints ``(..., 59, 3)``, each drawn separately."""
    canvas, pitch, count, batch_shape = _render_indices(keypoints, height, width, min_score, line_width)
    height, width = int(height), int(width)
    tiles = canvas[: count * pitch].reshape(count, pitch, width)[:, :height]
    return PALETTE[tiles].reshape(*batch_shape, height, width, 3)


def render_pose_tensor(
    keypoints: np.ndarray,
    height: int,
    width: int,
    min_score: float = 0.3,
    line_width: int | None = None,
    dtype: torch.dtype = torch.float32,
    pool=None,
) -> torch.Tensor:
    """Channels-first pose maps ``(..., 3, height, width)`` as a tensor, ready for a model: floating
    ``dtype`` gives values in [0, 1], ``torch.uint8`` gives 0..255. Same pixels as :func:`render_pose_maps`.

    Pose maps are mostly black: the output is allocated zeroed and only the drawn pixels are written,
    which is several times cheaper than converting whole frames. ``pool``
    (:class:`~mit_dataset.buffer_pool.BufferPool`) recycles the output memory."""
    canvas, pitch, count, batch_shape = _render_indices(keypoints, height, width, min_score, line_width, pool)
    height, width = int(height), int(width)
    if dtype == torch.bfloat16:
        return render_pose_tensor(keypoints, height, width, min_score, line_width).to(dtype)
    numpy_dtype = torch.empty((), dtype=dtype).numpy().dtype
    shape = (count, 3, height, width)
    out = pool.zeros(shape, numpy_dtype) if pool is not None else np.zeros(shape, numpy_dtype)
    drawn = _drawn_pixels(canvas[: count * pitch].reshape(-1))
    values = canvas.reshape(-1)[drawn]
    tile, within = np.divmod(drawn, pitch * width)
    plane = height * width
    in_tile = within < plane  # strokes may spill into the gutters below the tiles
    tile, within, values = tile[in_tile], within[in_tile], values[in_tile]
    target = tile * (3 * plane) + within
    lut = PALETTE.astype(numpy_dtype) / numpy_dtype.type(255) if dtype.is_floating_point else PALETTE
    flat = out.reshape(-1)
    for channel in range(3):
        flat[target + channel * plane] = lut[values, channel]
    return torch.from_numpy(out).reshape(*batch_shape, 3, height, width)


def _drawn_pixels(flat: np.ndarray) -> np.ndarray:
    """Sorted indices of the non-zero bytes of a contiguous uint8 array: scan 8-byte words first (pose
    canvases are ~99 % zero), then look inside the non-zero words only."""
    head = len(flat) - len(flat) % 8
    words = flat[:head].view(np.uint64)
    nonzero_words = np.flatnonzero(words)
    inner_word, inner_byte = np.nonzero(words[nonzero_words].view(np.uint8).reshape(-1, 8))
    drawn = nonzero_words[inner_word] * 8 + inner_byte
    if head < len(flat):
        drawn = np.concatenate([drawn, head + np.flatnonzero(flat[head:])])
    return drawn
