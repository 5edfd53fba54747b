import re

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from mit_dataset.clip import ClipRecord
from mit_dataset.keypoints import BODY, LEFT_HAND, RIGHT_HAND, head_box, wholebody_to_mit
from mit_dataset.masks import decode_mask
from mit_dataset.synthetic import build_scene, generate_records, plan_clips, render_scene, write_clip
from mit_dataset.synthetic.conversation import current_speaker, make_schedule
from mit_dataset.synthetic.generator import MIN_SHIRT_DISTANCE
from mit_dataset.synthetic.identity import make_identity
from mit_dataset.synthetic.voice import frame_envelope
from mit_dataset.video_io import probe_video, read_audio

WIDTH, HEIGHT, SECONDS = 192, 108, 1.2
CLIP_ID = re.compile(r"^(SyntheticTonightShow|SyntheticLateLateShow)_[A-Za-z0-9]+_(\d{6})to(\d{6})$")
COMBOS = {
    ("train", "", "two_human"),
    ("train", "", "multi_human"),
    ("test", "easy", "two_human"),
    ("test", "easy", "multi_human"),
    ("test", "challenging", "two_human"),
    ("test", "challenging", "multi_human"),
}


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> list[ClipRecord]:
    return generate_records(
        tmp_path_factory.mktemp("synth"),
        8,
        seed=3,
        width=WIDTH,
        height=HEIGHT,
        seconds=SECONDS,
        progress=False,
    )


@pytest.fixture(scope="module")
def rendered():
    """A few scenes rendered in memory: (scene, rgb (F,H,W,3), label (F,H,W), heads (F,H,W))."""
    out = []
    for spec in plan_clips(8, seed=5, seconds=2.0)[::3]:
        scene = build_scene(spec, WIDTH, HEIGHT)
        rgb, label, heads = (np.stack(a) for a in zip(*render_scene(scene, with_heads=True)))
        out.append((scene, rgb, label, heads))
    return out


@pytest.mark.parametrize("num_clips", [8, 9, 13, 30])
def test_plan_covers_every_combination_and_keeps_identity_pools_apart(num_clips):
    specs = plan_clips(num_clips, seed=1)
    assert len(specs) == num_clips
    assert {(s.split, s.difficulty, s.subset) for s in specs} == COMBOS
    ids = [s.clip_id for s in specs]
    assert len(set(ids)) == num_clips and all(CLIP_ID.match(i) for i in ids)
    train = {i for s in specs if s.split == "train" for i in s.identities}
    easy = {i for s in specs if s.difficulty == "easy" for i in s.identities}
    challenging = {i for s in specs if s.difficulty == "challenging" for i in s.identities}
    assert easy <= train
    assert not challenging & (train | easy)
    styles = {s.difficulty: s.style for s in specs}
    assert styles["easy"] == styles[""] != styles["challenging"]
    for s in specs:
        assert len(set(s.identities)) == s.num_people
        if s.subset == "two_human":
            assert s.num_people == 2 and s.source == "SyntheticTonightShow"
        else:
            assert 2 <= s.num_people <= 4 and s.source == "SyntheticLateLateShow"
    assert {s.num_people for s in plan_clips(30, seed=1) if s.subset == "multi_human"} == {2, 3, 4}


def test_plan_is_deterministic_and_small_plans_work():
    assert plan_clips(12, seed=4) == plan_clips(12, seed=4)
    assert plan_clips(12, seed=4) != plan_clips(12, seed=5)
    for n in range(8):
        specs = plan_clips(n, seed=0)
        assert len(specs) == n
        assert all(s.split in ("train", "test") for s in specs)
    with pytest.raises(ValueError, match="num_clips"):
        plan_clips(-1)


def test_records_validate_and_match_their_files(records):
    frames = round(SECONDS * 25)
    assert len(records) == 8
    assert {(r.split, r.difficulty, r.subset) for r in records} == COMBOS
    for record in records:
        record.validate()
        assert record.video_path.name == f"{record.clip_id}.mp4"
        info = probe_video(record.video_path)
        assert (info.num_frames, info.width, info.height) == (frames, WIDTH, HEIGHT)
        assert round(info.fps) == 25
        assert record.num_frames == frames
        assert record.audio.dtype == np.float32 and record.audio.ndim == 1
        assert record.audio.size >= frames * 640
        assert read_audio(record.video_path).size >= frames * 640 * 0.95
        tracks = record.metadata["speaker_audio"]
        assert len(tracks) == len(record.persons)
        np.testing.assert_allclose(np.sum(tracks, axis=0), record.audio, atol=1e-5)
        expected_people = (2,) if record.subset == "two_human" else (2, 3, 4)
        assert len(record.persons) in expected_people
        for person in record.persons:
            np.testing.assert_array_equal(person.keypoints, wholebody_to_mit(person.keypoints_133))
            np.testing.assert_allclose(person.face_boxes, head_box(person.keypoints), atol=1e-4)
            assert np.isfinite(person.face_boxes).all()


def test_generation_is_deterministic(tmp_path, records):
    specs = plan_clips(8, seed=3, seconds=SECONDS)
    for index in (0, 7):  # a train clip and a challenging test clip, rebuilt from scratch
        a, b = records[index], write_clip(build_scene(specs[index], WIDTH, HEIGHT), tmp_path)
        assert a.clip_id == b.clip_id
        np.testing.assert_array_equal(a.audio, b.audio)
        for pa, pb in zip(a.persons, b.persons):
            assert pa.identity == pb.identity
            np.testing.assert_array_equal(pa.keypoints_133, pb.keypoints_133)
            np.testing.assert_array_equal(pa.boxes, pb.boxes)
            np.testing.assert_array_equal(pa.speaking_score_raw, pb.speaking_score_raw)
            assert pa.mask_rle == pb.mask_rle
    other = build_scene(plan_clips(8, seed=4, seconds=SECONDS)[0], WIDTH, HEIGHT)
    assert not np.array_equal(other.audio, records[0].audio)


def test_keypoints_and_face_boxes_stay_inside_the_frame_and_the_persons_slot(records):
    for record in records:
        slot = record.width / len(record.persons)
        for j, person in enumerate(record.persons):
            xy = person.keypoints_133[..., :2]
            assert (xy[..., 0] >= slot * j).all() and (xy[..., 0] < slot * (j + 1)).all()
            assert (xy[..., 1] >= 0).all() and (xy[..., 1] < record.height).all()
            assert (person.keypoints_133[..., 2] > 0.5).all()
            raw = head_box(person.keypoints)  # before validate()'s clipping repair
            assert (
                (raw[:, :2] >= 0).all()
                and (raw[:, 2] <= record.width).all()
                and (raw[:, 3] <= record.height).all()
            )


def test_masks_and_boxes_match_the_rendered_silhouettes(records):
    for record in records[:3]:
        for person in record.persons:
            for f in (0, record.num_frames - 1):
                mask = decode_mask(person.mask_rle[f], record.height, record.width)
                ys, xs = np.nonzero(mask)
                np.testing.assert_array_equal(
                    person.boxes[f], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
                )
                grown = binary_dilation(mask, iterations=1)
                body = person.keypoints[f, list(BODY) + list(LEFT_HAND) + list(RIGHT_HAND), :2]
                cols, rows = np.clip(body.round().astype(int).T, 0, [[record.width - 1], [record.height - 1]])
                assert grown[rows, cols].all(), f"{record.clip_id} {person.person_id} frame {f}"


def test_pixels_agree_with_keypoints_and_face_boxes(rendered):
    for scene, rgb, label, heads in rendered:
        for j, (identity, pose) in enumerate(zip(scene.identities, scene.poses)):
            keypoints = wholebody_to_mit(pose.keypoints_133)
            boxes = head_box(keypoints)
            skin = np.array(identity.skin)
            for f in range(0, scene.spec.num_frames, 5):
                # The person's own silhouette holds its body keypoints (1 px rasterisation tolerance).
                grown = binary_dilation(label[f] == j + 1, iterations=1)
                cols, rows = keypoints[f, :, :2].round().astype(int).T
                assert grown[rows, cols].all()
                # Its skin colour is drawn around its nose point.
                x, y = keypoints[f, 0, :2].round().astype(int)
                patch = rgb[f, max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3].reshape(-1, 3).astype(int)
                assert (np.abs(patch - skin).sum(1) < 40).any()
                # The drawn head (hair included) lies inside the face box from the 3 head keypoints.
                ys, xs = np.nonzero(heads[f] == j + 1)
                x1, y1, x2, y2 = boxes[f]
                assert xs.min() >= np.floor(x1) - 1 and xs.max() + 1 <= np.ceil(x2) + 1
                assert ys.min() >= np.floor(y1) - 1 and ys.max() + 1 <= np.ceil(y2) + 1


def test_people_in_a_clip_look_distinct():
    for spec in plan_clips(120, seed=2):
        people = [make_identity(i) for i in spec.identity_indices]
        for a in range(len(people)):
            for b in range(a + 1, len(people)):
                distance = np.abs(np.subtract(people[a].shirt, people[b].shirt)).sum()
                assert distance >= MIN_SHIRT_DISTANCE, (
                    spec.clip_id,
                    people[a].identity_id,
                    people[b].identity_id,
                )


def test_mouth_follows_own_voice_and_speaking_score(rendered):
    openings, scores = [], []
    for scene, *_ in rendered:
        for j, pose in enumerate(scene.poses):
            kp = pose.keypoints_133
            opening = kp[:, 23 + 66, 1] - kp[:, 23 + 62, 1]  # inner lower lip minus inner upper lip
            closed = opening.min()
            silent = np.convolve(~scene.speaking[j], np.ones(3), "same") == 3
            np.testing.assert_allclose(opening[silent], closed, atol=1e-3)
            openings.append(opening - closed)
            scores.append(scene.speaking_score_raw[j])
            if scene.speaking[j].sum() >= 10:
                envelope = frame_envelope(scene.speaker_audio[j], scene.spec.num_frames)
                assert np.corrcoef(opening, envelope)[0, 1] > 0.8
    assert np.corrcoef(np.concatenate(openings), np.concatenate(scores))[0, 1] > 0.4


def test_speaking_score_follows_the_schedule(records):
    for record in records:
        active = record.metadata["speaking"]
        for j, person in enumerate(record.persons):
            steady_on = np.convolve(active[j], np.ones(7), "same") == 7
            steady_off = np.convolve(~active[j], np.ones(7), "same") == 7
            assert (person.speaking_score_raw[steady_on] > 1.5).all()
            assert (person.speaking_score_raw[steady_off] < -1.5).all()
            envelope = frame_envelope(record.metadata["speaker_audio"][j], record.num_frames)
            if steady_off.any():
                assert envelope[steady_off].max() < 1e-3


def test_listeners_turn_towards_the_speaker(records):
    agree = total = 0
    for record in records:
        floor = current_speaker(record.metadata["speaking"])
        xs = np.array(record.metadata["layout_x"])
        for j, person in enumerate(record.persons):
            nose = person.keypoints[:, 0, 0]
            eyes = person.keypoints[:, 1:3, 0].mean(1)
            for f in range(8, record.num_frames):
                holder = floor[f]
                if holder < 0 or holder == j or (floor[f - 8 : f + 1] != holder).any():
                    continue
                total += 1
                agree += np.sign(nose[f] - eyes[f]) == np.sign(xs[holder] - xs[j])
    assert total > 20 and agree / total > 0.9


def test_bad_sizes_are_rejected():
    spec = plan_clips(1)[0]
    with pytest.raises(ValueError, match="even"):
        build_scene(spec, 101, 60)


def test_challenging_style_has_more_over_talking_and_faster_switches():
    stats = {}
    for style in ("talk", "heated"):
        overlap, switches, silence = [], [], []
        for seed in range(60):
            active = make_schedule(3, 125, style, np.random.default_rng(seed))
            talking = active.sum(0)
            overlap.append((talking >= 2).sum() / max(1, (talking >= 1).sum()))
            switches.append((np.diff(current_speaker(active)) != 0).sum() / 5.0)
            silence.append((talking == 0).mean())
            assert active.any()
        stats[style] = np.mean(overlap), np.mean(switches), np.mean(silence)
    talk, heated = stats["talk"], stats["heated"]
    assert heated[0] > 2 * talk[0] and heated[1] > 1.5 * talk[1]
    assert talk[0] > 0.02 and talk[2] > 0.05  # calm talk still has some over-talking and pauses


def test_eyes_blink_and_open_again(rendered):
    lids = np.concatenate(
        [
            p.keypoints_133[:, 23 + 41, 1] - p.keypoints_133[:, 23 + 37, 1]
            for s, *_ in rendered
            for p in s.poses
        ]
    )
    assert (lids < 0.2 * lids.max()).any() and np.median(lids) > 0.9 * lids.max()


def test_full_hd_clip(tmp_path):
    spec = plan_clips(8, seed=0, seconds=0.2)[7]
    record = write_clip(build_scene(spec, 1920, 1080), tmp_path)
    info = probe_video(record.video_path)
    assert (info.width, info.height, info.num_frames) == (1920, 1080, 5)
    assert record.persons[0].boxes[0, 3] - record.persons[0].boxes[0, 1] > 500  # people fill the frame height
