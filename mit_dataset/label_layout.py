"""Place one text label per person inside a frame, next to the person's box, with no two labels overlapping.

``show`` labels every person with its id, speaking state and score. At 128x72 four labels of
``p0 listening -0.53`` do not fit side by side, and labels drawn at a fixed offset above each box run off the
frame and cover each other. :func:`layout_labels` solves this for any frame size:

1. each person gives its label texts from the longest to the shortest (``p0 listening -0.53``, ``p0 -0.53``,
   ``p0``); every label uses the longest level at which all labels can be placed;
2. a label goes to the first free spot among: above its box, inside its top edge, below its box, inside its
   bottom edge (left-aligned, then right-aligned), each shifted into the frame; failing those, to the free spot
   nearest the box's top-left corner on a grid over the frame;
3. "free" means inside the frame and at least ``gap`` pixels away from every label already placed.

Returned boxes are integer pixel rectangles ``(x1, y1, x2, y2)`` with ``x2``/``y2`` exclusive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class PlacedLabel:
    text: str
    box: Box  # x1, y1, x2, y2 in pixels, x2 / y2 exclusive


def _overlaps(a: Box, b: Box, gap: int) -> bool:
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def _candidates(anchor: Sequence[float], w: int, h: int) -> list[tuple[float, float]]:
    x1, y1, x2, y2 = anchor
    lefts = (x1, x2 - w)
    return [(x, y) for x in lefts for y in (y1 - h, y1, y2, y2 - h)]


def _place(
    anchor: Sequence[float], w: int, h: int, width: int, height: int, placed: list[Box], gap: int
) -> Box | None:
    if w > width or h > height:
        return None

    def clamp(x: float, y: float) -> Box:
        x = round(float(min(max(x, 0), width - w)))
        y = round(float(min(max(y, 0), height - h)))
        return (x, y, x + w, y + h)

    def free(box: Box) -> bool:
        return not any(_overlaps(box, other, gap) for other in placed)

    for x, y in _candidates(anchor, w, h):
        box = clamp(x, y)
        if free(box):
            return box
    # Grid over the frame, nearest to the anchor's top-left corner first.
    step_x, step_y = max(1, w // 4), max(1, h // 2)
    xs = list(range(0, width - w + 1, step_x)) + [width - w]
    ys = list(range(0, height - h + 1, step_y)) + [height - h]
    ax, ay = anchor[0], anchor[1]
    for x, y in sorted(((x, y) for x in xs for y in ys), key=lambda p: (p[0] - ax) ** 2 + (p[1] - ay) ** 2):
        box = (x, y, x + w, y + h)
        if free(box):
            return box
    return None


def layout_labels(
    anchors: Sequence[Sequence[float]],
    texts: Sequence[Sequence[str]],
    width: int,
    height: int,
    measure: Callable[[str], tuple[int, int]],
    gap: int = 1,
) -> list[PlacedLabel | None]:
    """Labels for ``anchors`` (one ``(x1, y1, x2, y2)`` box per person, pixels; may lie partly outside the
    frame) with texts ``texts[i]`` (alternatives, longest first) in a ``width`` x ``height`` frame.
    ``measure(text) -> (w, h)`` is the size of a drawn label including its padding. Entries are ``None`` only
    when even the shortest texts cannot all be placed (a frame smaller than the labels)."""
    if len(anchors) != len(texts) or any(not options for options in texts):
        raise ValueError("need one non-empty list of label texts per anchor box")
    levels = max(len(options) for options in texts)
    best: list[PlacedLabel | None] = [None] * len(anchors)
    for level in range(levels):
        chosen = [options[min(level, len(options) - 1)] for options in texts]
        placed: list[Box] = []
        result: list[PlacedLabel | None] = []
        for anchor, text in zip(anchors, chosen):
            w, h = measure(text)
            box = _place(anchor, w, h, width, height, placed, gap)
            if box is not None:
                placed.append(box)
            result.append(PlacedLabel(text, box) if box is not None else None)
        if all(label is not None for label in result):
            return result
        if sum(label is not None for label in result) > sum(label is not None for label in best):
            best = result
    return best
