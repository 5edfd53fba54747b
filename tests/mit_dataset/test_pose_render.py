"""DWPose-like pose maps: placement of joints and limbs, colours, visibility, isolation between maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mit_dataset import keypoints as kp
from mit_dataset.pose_render import (
    HAND_LINK_COLORS,
    JOINT_COLORS,
    LIMB_COLORS,
    draw_pose,
    render_pose_map,
    render_pose_maps,
    render_pose_tensor,
)

H, W = 64, 96


def pose(**points: tuple[float, float]) -> np.ndarray:
    """(59, 3) keypoints: the named points confident at (x, y), every other point invisible."""
    keypoints = np.zeros((kp.NUM_KEYPOINTS, 3), np.float32)
    for name, (x, y) in points.items():
        keypoints[kp.KEYPOINT_NAMES.index(name)] = (x, y, 0.9)
    return keypoints


def centroid(mask: np.ndarray) -> tuple[float, float]:
    """Continuous (x, y) centre of a boolean mask (pixel (i, j) has its centre at (j + 0.5, i + 0.5))."""
    ys, xs = np.nonzero(mask)
    return xs.mean() + 0.5, ys.mean() + 0.5


@pytest.mark.parametrize("x, y", [(20.5, 10.5), (47.0, 33.0), (70.3, 50.8)])
def test_a_single_joint_is_drawn_where_the_annotation_says(x, y):
    image = render_pose_map(pose(nose=(x, y)), H, W)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    drawn = image.any(-1)
    np.testing.assert_array_equal(image[int(y), int(x)], JOINT_COLORS[0])  # the pixel containing the point
    cx, cy = centroid(drawn)
    assert cx == pytest.approx(x, abs=0.5) and cy == pytest.approx(y, abs=0.5)
    ys, xs = np.nonzero(drawn)
    assert np.abs(xs + 0.5 - x).max() <= 3 and np.abs(ys + 0.5 - y).max() <= 3  # a small disc only


def test_a_limb_joins_its_joints_in_its_colour():
    image = render_pose_map(pose(left_shoulder=(60.5, 20.5), right_shoulder=(20.5, 20.5)), H, W)
    limb = next(i for i, link in enumerate(kp.BODY_LINKS) if set(link) == {3, 4})
    for x in range(28, 54, 5):  # along the shoulder line, away from the joint discs
        np.testing.assert_array_equal(image[20, x], LIMB_COLORS[limb])
    assert not image[30:].any() and not image[:15].any()
    np.testing.assert_array_equal(image[20, 60], JOINT_COLORS[kp.KEYPOINT_NAMES.index("left_shoulder")])


def test_hands_have_one_colour_family_per_finger():
    root = (50.0, 30.0)
    points = {"left_hand_root": root}
    fingers = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")
    for f, finger in enumerate(fingers):
        angle = np.pi * (0.1 + 0.2 * f)
        for joint in range(1, 5):
            points[f"left_hand_{finger}{joint}"] = (
                root[0] + 6 * joint * np.cos(angle),
                root[1] - 6 * joint * np.sin(angle),
            )
    image = render_pose_map(pose(**points), H, W, line_width=3)
    assert image.any()
    base_colours = {tuple(HAND_LINK_COLORS[2 + 4 * f]) for f in range(5)}
    assert len(base_colours) == 5  # five distinct finger colours
    present = {tuple(c) for c in image.reshape(-1, 3)}
    assert len(base_colours & present) >= 4  # (a joint disc may cover one finger's first bone)


def test_invisible_points_are_not_drawn():
    keypoints = pose(nose=(20, 20), left_eye=(30, 20))
    keypoints[:, 2] = 0.2
    assert not render_pose_map(keypoints, H, W).any()
    assert render_pose_map(keypoints, H, W, min_score=0.1).any()


def test_batches_render_each_pose_separately_and_match_the_tensor_form():
    rng = np.random.default_rng(0)
    keypoints = np.zeros((2, 3, kp.NUM_KEYPOINTS, 3), np.float32)
    keypoints[..., 0] = rng.uniform(10, W - 10, (2, 3, kp.NUM_KEYPOINTS))
    keypoints[..., 1] = rng.uniform(10, H - 10, (2, 3, kp.NUM_KEYPOINTS))
    keypoints[..., 2] = 0.9
    # A limb leaving the frame far below and to the side must not bleed into the next map.
    keypoints[0, 0, 3, :2] = (-500, 5000)
    keypoints[0, 1] = 0
    maps = render_pose_maps(keypoints, H, W)
    assert maps.shape == (2, 3, H, W, 3)
    assert not maps[0, 1].any()
    np.testing.assert_array_equal(maps[1, 2], render_pose_map(keypoints[1, 2], H, W))
    tensor = render_pose_tensor(keypoints, H, W)
    assert tensor.shape == (2, 3, 3, H, W) and tensor.dtype == torch.float32
    np.testing.assert_allclose(tensor.permute(0, 1, 3, 4, 2).numpy() * 255, maps, atol=1e-3)
    assert torch.equal(render_pose_tensor(keypoints, H, W, dtype=torch.uint8).permute(0, 1, 3, 4, 2),
                       torch.from_numpy(maps))  # fmt: skip


def test_draw_pose_on_an_image_matches_the_map_style():
    keypoints = pose(left_shoulder=(60.5, 20.5), right_shoulder=(20.5, 20.5))
    image = Image.new("RGB", (W, H), (10, 10, 10))
    draw_pose(image, keypoints)
    pixels = np.asarray(image)
    limb = next(i for i, link in enumerate(kp.BODY_LINKS) if set(link) == {3, 4})
    np.testing.assert_array_equal(pixels[20, 40], LIMB_COLORS[limb])
    np.testing.assert_array_equal(pixels[50, 50], (10, 10, 10))


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="59, 3"):
        render_pose_map(np.zeros((17, 3)), H, W)
    with pytest.raises(ValueError, match="render_pose_maps"):
        render_pose_map(np.zeros((2, 59, 3)), H, W)
    with pytest.raises(ValueError, match="positive"):
        render_pose_maps(np.zeros((59, 3)), 0, W)
    with pytest.raises(ValueError, match="line_width"):
        render_pose_maps(np.zeros((59, 3)), H, W, line_width=0)
