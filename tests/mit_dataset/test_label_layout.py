"""``show``'s person labels: inside the frame and pairwise disjoint at any size, readable on 3-4 person clips."""

from __future__ import annotations

import numpy as np
import pytest

from mit_dataset.label_layout import layout_labels
from mit_dataset.show import LabelStyle, person_labels

SIZES = [(72, 128), (144, 256), (1080, 1920)]  # height, width


def _check(labels, height, width):
    assert all(label is not None for label in labels)
    boxes = [label.box for label in labels]
    for x1, y1, x2, y2 in boxes:
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height, (x1, y1, x2, y2)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


def _couch(persons: int, height: int, width: int) -> list[list[float]]:
    """Person boxes as the talk-show couch has them: side by side, touching, from 20% of the height down."""
    step = width / persons
    return [[i * step, 0.2 * height, (i + 1) * step, height] for i in range(persons)]


@pytest.mark.parametrize(("height", "width"), SIZES)
@pytest.mark.parametrize("persons", [2, 3, 4])
def test_labels_on_a_couch_are_inside_and_disjoint(height, width, persons):
    style = LabelStyle.for_frame(height, width)
    ids = [f"p{i}" for i in range(persons)]
    labels = person_labels(_couch(persons, height, width), ids, [-0.53] * persons, style)
    _check(labels, height, width)
    assert [label.text.split()[0] for label in labels] == ids  # every label names its person
    if width >= 1920:
        assert all("listening" in label.text for label in labels)  # full text where there is room


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_labels_for_random_boxes_are_inside_and_disjoint(height, width):
    style = LabelStyle.for_frame(height, width)
    rng = np.random.default_rng(0)
    for _ in range(100):
        persons = int(rng.integers(1, 5))
        corners = rng.uniform(-0.2, 1.2, (persons, 2, 2)) * [width, height]  # boxes may leave the frame
        boxes = [[*c.min(0), *c.max(0)] for c in corners]
        scores = rng.uniform(-1, 1, persons).tolist()
        _check(person_labels(boxes, [f"p{i}" for i in range(persons)], scores, style), height, width)


def test_labels_sit_next_to_their_person_when_there_is_room():
    style = LabelStyle.for_frame(1080, 1920)
    boxes = [[100, 300, 700, 1080], [1200, 300, 1800, 1080]]
    labels = person_labels(boxes, ["p0", "p1"], [0.8, -0.4], style)
    assert labels[0].text == "p0 speaking +0.80" and labels[1].text == "p1 listening -0.40"
    assert labels[0].box[0] == 100 and labels[0].box[3] <= 300  # just above its box, left-aligned
    assert labels[1].box[0] == 1200 and labels[1].box[3] <= 300


def test_shorter_texts_when_the_long_ones_do_not_fit():
    def measure(text):
        return 10 * len(text), 10

    labels = layout_labels([[0, 0, 10, 10]] * 3, [["aaaa-long", "a"]] * 3, 40, 12, measure)
    assert [label.text for label in labels] == ["a", "a", "a"]
    _check(labels, 12, 40)
    # a frame smaller than any label: nothing to place, said with None
    assert layout_labels([[0, 0, 5, 5]], [["abc"]], 8, 8, measure) == [None]
    with pytest.raises(ValueError, match="one non-empty list"):
        layout_labels([[0, 0, 1, 1]], [], 10, 10, measure)
