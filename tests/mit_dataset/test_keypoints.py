import numpy as np
import pytest

from mit_dataset import keypoints as kp


def test_subset_matches_reference_layout():
    expected = [0, 1, 2] + list(range(5, 17)) + [17, 20] + list(range(91, 133))
    assert list(kp.WHOLEBODY_INDICES) == expected
    assert len(kp.KEYPOINT_NAMES) == kp.NUM_KEYPOINTS == 59
    assert len(set(kp.KEYPOINT_NAMES)) == 59
    assert kp.KEYPOINT_NAMES[kp.LEFT_HAND_ROOT] == "left_hand_root"
    assert kp.KEYPOINT_NAMES[kp.RIGHT_HAND_ROOT] == "right_hand_root"
    assert kp.KEYPOINT_NAMES[15:17] == ("left_big_toe", "right_big_toe")


def test_skeleton_links_are_valid_and_cover_every_point():
    links = np.array(kp.SKELETON_LINKS)
    assert links.min() >= 0 and links.max() < 59
    assert set(links.ravel()) == set(range(59))
    assert len(kp.HAND_LINKS) == 2 + 2 * 20


def test_wholebody_to_mit_selects_the_subset():
    whole = np.arange(133 * 3, dtype=np.float32).reshape(1, 133, 3)
    mit = kp.wholebody_to_mit(whole)
    assert mit.shape == (1, 59, 3)
    np.testing.assert_array_equal(mit[0, :, 0] / 3, kp.WHOLEBODY_INDICES)
    with pytest.raises(ValueError, match="133"):
        kp.wholebody_to_mit(np.zeros((59, 3)))


def _frontal_head(nose=(100.0, 110.0), eye_dist=20.0):
    points = np.zeros((59, 3), np.float32)
    points[0] = (nose[0], nose[1], 1.0)
    points[1] = (nose[0] + eye_dist / 2, nose[1] - 10, 1.0)
    points[2] = (nose[0] - eye_dist / 2, nose[1] - 10, 1.0)
    return points


def test_head_box_contains_head_points_and_scales_with_face():
    small = kp.head_box(_frontal_head(eye_dist=20))
    large = kp.head_box(_frontal_head(eye_dist=40))
    for box, points in ((small, _frontal_head(eye_dist=20)), (large, _frontal_head(eye_dist=40))):
        x1, y1, x2, y2 = box
        assert (points[:3, 0] > x1).all() and (points[:3, 0] < x2).all()
        assert (points[:3, 1] > y1).all() and (points[:3, 1] < y2).all()
    assert (large[2] - large[0]) == pytest.approx(2 * (small[2] - small[0]), rel=1e-5)


def test_head_box_is_stable_in_profile_and_nan_when_unseen():
    profile = _frontal_head(eye_dist=2)
    profile[0, 0] += 14  # nose points sideways when the head turns
    box = kp.head_box(profile)
    assert box[2] - box[0] > 20  # eye distance collapsed, the nose offset keeps the scale
    hidden = _frontal_head()
    hidden[:3, 2] = [0.9, 0.1, 0.1]
    assert np.isnan(kp.head_box(hidden)).all()
    batch = kp.head_box(np.stack([_frontal_head(), hidden]))
    assert np.isfinite(batch[0]).all() and np.isnan(batch[1]).all()


def test_clip_boxes_repairs_boxes_outside_the_frame():
    boxes = np.array([[-5, -3, 120, 90], [10, 10, 20, 20]], np.float32)
    clipped = kp.clip_boxes(boxes, width=100, height=80)
    np.testing.assert_array_equal(clipped[0], [0, 0, 100, 80])
    np.testing.assert_array_equal(clipped[1], boxes[1])
