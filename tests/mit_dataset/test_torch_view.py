"""The training view: sampling, frame/pose/mask/audio alignment after resize + crop, collate, errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from mit_dataset.clip import ClipRecord, PersonTrack
from mit_dataset.features import FPS, MIT_FEATURES, SAMPLING_RATE
from mit_dataset.geometry import FrameTransform, box_masks, resize_and_crop_boxes, resize_and_crop_keypoints
from mit_dataset.keypoints import NUM_KEYPOINTS
from mit_dataset.masks import box_mask_rle
from mit_dataset.pose_render import JOINT_COLORS
from mit_dataset.torch_view import ClipTooShortError, MITVideoDataset, collate_mit_batch
from mit_dataset.video_io import write_video

WIDTH, HEIGHT = 128, 72  # source clips
OUT_H, OUT_W = 96, 160  # scale 4/3 to 171x96, crop 5 columns on the left
NUM_FRAMES = 30
MARKER = 4  # half size of the white square drawn under person 0's nose


def marker_position(t: int) -> tuple[float, float]:
    """Centre (x, y) of the white square in source frame ``t`` (moves right and down)."""
    return 30.0 + 2 * t, 20.0 + t


def frame_level(t: int) -> int:
    """Grey level of the background of source frame ``t`` (encodes the frame index)."""
    return 8 * t


def make_clip(
    folder: Path,
    clip_id: str,
    people: int = 2,
    frames: int = NUM_FRAMES,
    click_frame: int | None = None,
    scale: int = 1,
):
    """A clip whose frame ``t`` is grey ``8 t`` with a white square centred on person 0's nose, the only
    confident keypoint of person 0; audio is silent except a click at the centre of ``click_frame``.
    ``scale`` multiplies the frame size and every coordinate."""
    height, width, half = HEIGHT * scale, WIDTH * scale, MARKER * scale
    video = []
    for t in range(frames):
        frame = np.full((height, width, 3), frame_level(t), np.uint8)
        x, y = (scale * v for v in marker_position(t))
        frame[int(y) - half : int(y) + half, int(x) - half : int(x) + half] = 255
        video.append(frame)
    path = write_video(folder / f"{clip_id}.mp4", video, fps=FPS, crf=0)
    audio = np.zeros(round(frames / FPS * SAMPLING_RATE) + 400, np.float32)
    if click_frame is not None:
        audio[round((click_frame + 0.5) / FPS * SAMPLING_RATE)] = 0.9
    persons = []
    for p in range(people):
        keypoints = np.zeros((frames, NUM_KEYPOINTS, 3), np.float32)
        if p == 0:
            keypoints[:, 0, :2] = [marker_position(t) for t in range(frames)]
            keypoints[:, 0, 2] = 1.0
        else:
            keypoints[:, :, 0] = 10 + 20 * p
            keypoints[:, :, 1] = np.linspace(10, 60, NUM_KEYPOINTS)
            keypoints[:, :, 2] = 0.9
        keypoints[..., :2] *= scale
        box = np.array([4 + 30 * p, 4, 34 + 30 * p, 68], np.float32) * scale
        face = np.array([10 + 30 * p, 8, 26 + 30 * p, 24], np.float32) * scale
        persons.append(
            PersonTrack(
                person_id=f"p{p}",
                identity=f"id{p}",
                keypoints=keypoints,
                boxes=np.repeat(box[None], frames, 0),
                face_boxes=np.repeat(face[None], frames, 0),
                speaking_score_raw=np.linspace(-3, 3, frames).astype(np.float32) * (1 if p % 2 else -1),
                mask_rle=[box_mask_rle(box, height, width)] * frames,
            )
        )
    return ClipRecord(
        clip_id, "synthetic", "multi_human", "train", path, audio, frames, width, height, persons
    )


def as_split(records) -> datasets.Dataset:
    return datasets.Dataset.from_list([r.validate().to_row() for r in records], features=MIT_FEATURES)


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> datasets.Dataset:
    folder = tmp_path_factory.mktemp("view")
    return as_split([make_clip(folder, "c2", people=2, click_frame=13), make_clip(folder, "c4", people=4)])


def view(split, **kwargs) -> MITVideoDataset:
    options = {
        "num_frames": 6,
        "stride": 2,
        "height": OUT_H,
        "width": OUT_W,
        "window": "first",
        "reference": "first",
    }
    options.update(kwargs)
    return MITVideoDataset(split, **options)


def test_transform_cover_and_crop_is_consistent():
    transform = FrameTransform.cover(HEIGHT, WIDTH, OUT_H, OUT_W)
    assert (transform.resized_height, transform.resized_width) == (96, 171)
    assert (transform.offset_y, transform.offset_x) == (0, 5)
    points = np.array([[[12.0, 30.0, 0.7]]], np.float32)
    mapped = resize_and_crop_keypoints(points, (HEIGHT, WIDTH), (OUT_H, OUT_W))
    np.testing.assert_allclose(mapped[0, 0], [12 * 171 / 128 - 5, 30 * 96 / 72, 0.7], rtol=1e-6)
    boxes = resize_and_crop_boxes(
        np.array([[0, 0, WIDTH, HEIGHT]], np.float32), (HEIGHT, WIDTH), (OUT_H, OUT_W)
    )
    np.testing.assert_allclose(boxes[0], [-5, 0, 171 - 5, 96], rtol=1e-6)
    # The frame transform moves an image feature exactly where the point transform says.
    frame = torch.zeros(1, 3, HEIGHT, WIDTH, dtype=torch.uint8)
    frame[..., 40:44, 60:64] = 255  # centre (62, 42)
    out = transform.apply_frames(frame)[0, 0].float()
    ys, xs = torch.meshgrid(torch.arange(OUT_H) + 0.5, torch.arange(OUT_W) + 0.5, indexing="ij")
    centre = ((xs * out).sum() / out.sum(), (ys * out).sum() / out.sum())
    expected = transform.apply_points(np.array([[62.0, 42.0]]))[0]
    assert centre[0].item() == pytest.approx(expected[0], abs=0.05)
    assert centre[1].item() == pytest.approx(expected[1], abs=0.05)
    with pytest.raises(ValueError, match="height"):
        FrameTransform.cover(HEIGHT, WIDTH, 0, OUT_W)


def test_box_masks_cover_the_box_at_every_factor():
    box = np.array([[19.0, 5.0, 45.0, 30.0], [np.nan] * 4], np.float32)
    for factor in (1, 4, 8, 16):
        masks = box_masks(box, OUT_H, OUT_W, factor)
        assert masks.shape == (2, -(-OUT_H // factor), -(-OUT_W // factor))
        full = np.kron(masks[0], np.ones((factor, factor)))[:OUT_H, :OUT_W]
        assert full[5:30, 19:45].all()  # covers the whole box
        assert full[60:, :].sum() == 0 and full[:, 80:].sum() == 0  # nothing far from it
        assert masks[1].sum() == 0  # a missing face (NaN box) has an empty mask


def test_item_keys_shapes_and_dtypes(split):
    item = view(split, mask_factors=(8, 16))[1]
    persons, frames = 4, 6
    expected = {
        "pixel_values": (frames, 3, OUT_H, OUT_W),
        "reference_pixel_values": (3, OUT_H, OUT_W),
        "pose_maps": (persons, frames, 3, OUT_H, OUT_W),
        "reference_pose_maps": (persons, 3, OUT_H, OUT_W),
        "speaking_scores": (persons, frames),
        "keypoints": (persons, frames, NUM_KEYPOINTS, 3),
        "reference_keypoints": (persons, NUM_KEYPOINTS, 3),
        "face_boxes": (persons, frames, 4),
        "boxes": (persons, frames, 4),
        "audio": (round(frames * 2 / FPS * SAMPLING_RATE),),
        "audio_windows": (frames, round(0.2 * SAMPLING_RATE)),
        "frame_indices": (frames,),
        "reference_index": (),
    }
    for key, shape in expected.items():
        assert tuple(item[key].shape) == shape, key
    assert {f: tuple(m.shape) for f, m in item["face_masks"].items()} == {
        8: (persons, frames, 12, 20),
        16: (persons, frames, 6, 10),
    }
    assert item["pixel_values"].dtype == torch.float32 and item["frame_indices"].dtype == torch.int64
    assert -1.0 <= item["pixel_values"].min() and item["pixel_values"].max() <= 1.0
    assert 0.0 <= item["pose_maps"].min() and item["pose_maps"].max() <= 1.0 and item["pose_maps"].max() > 0
    assert item["clip_id"] == "c4" and item["person_ids"] == ["p0", "p1", "p2", "p3"]
    uint8 = view(split, pose_dtype=torch.uint8)[1]
    assert uint8["pose_maps"].dtype == torch.uint8
    assert torch.equal(uint8["pose_maps"].float() / 255, item["pose_maps"])


def test_stride_and_window_sampling(split):
    item = view(split, window="first")[0]
    assert item["frame_indices"].tolist() == [0, 2, 4, 6, 8, 10]
    # The decoded frames are the sampled ones: the background grey encodes the frame index.
    corner = (item["pixel_values"][:, 0, -2, -2] + 1) * 127.5
    np.testing.assert_allclose(corner.numpy(), [frame_level(t) for t in range(0, 12, 2)], atol=3)
    centre = view(split, window="center")[0]["frame_indices"]
    assert centre.tolist() == [9, 11, 13, 15, 17, 19]  # (30 - 11) // 2 = 9
    random_view = view(split, window="random", reference="random", seed=3)
    first, again = random_view[0], random_view[0]
    assert torch.equal(first["frame_indices"], again["frame_indices"])
    assert first["reference_index"] == again["reference_index"]
    starts = set()
    for epoch in range(6):
        random_view.set_epoch(epoch)
        indices = random_view[0]["frame_indices"]
        assert torch.equal(indices[1:] - indices[:-1], torch.full((5,), 2))
        assert 0 <= indices[0] and indices[-1] < NUM_FRAMES
        starts.add(int(indices[0]))
    assert len(starts) > 1


@pytest.mark.parametrize("scale", [1, 3])  # upscaled (72 -> 96 rows) and downscaled (216 -> 96 rows) sources
def test_frames_poses_and_keypoints_are_aligned_after_resize_and_crop(split, scale, tmp_path):
    if scale != 1:
        split = as_split([make_clip(tmp_path, "big", scale=scale)])
    data = view(split, window="center", reference="first")
    item = data[0]
    transform = FrameTransform.cover(HEIGHT * scale, WIDTH * scale, OUT_H, OUT_W)
    for k, t in enumerate(item["frame_indices"].tolist()):
        x, y = transform.apply_points(np.array([marker_position(t)]) * scale)[0]
        np.testing.assert_allclose(item["keypoints"][0, k, 0, :2].numpy(), [x, y], atol=1e-4)
        col, row = int(x), int(y)
        # The frame pixel under the keypoint is the white marker; a pixel well away is background.
        assert item["pixel_values"][k, :, row, col].min() > 0.9
        # Sub-pixel: the marker's centroid in the decoded, resized and cropped frame is the keypoint.
        white = item["pixel_values"][k].min(0).values.clamp(min=0)  # background <= 0 until frame 16
        if t < 16:
            ys, xs = torch.meshgrid(torch.arange(OUT_H) + 0.5, torch.arange(OUT_W) + 0.5, indexing="ij")
            assert ((xs * white).sum() / white.sum()).item() == pytest.approx(x, abs=0.25)
            assert ((ys * white).sum() / white.sum()).item() == pytest.approx(y, abs=0.25)
        background = frame_level(t) / 127.5 - 1
        np.testing.assert_allclose(item["pixel_values"][k, :, row, col + 12].numpy(), background, atol=0.05)
        # The nose disc of person 0's pose map is centred on the same pixel, in the nose colour.
        pose = item["pose_maps"][0, k]
        np.testing.assert_allclose(pose[:, row, col].numpy() * 255, JOINT_COLORS[0], atol=0.5)
        ys, xs = torch.nonzero(pose.sum(0) > 0, as_tuple=True)
        assert (xs.float() + 0.5).mean().item() == pytest.approx(x, abs=0.6)
        assert (ys.float() + 0.5).mean().item() == pytest.approx(y, abs=0.6)
    # The reference is frame 0, with its own pose.
    assert item["reference_index"] == 0
    x0, y0 = transform.apply_points(np.array([marker_position(0)]) * scale)[0]
    assert item["reference_pixel_values"][:, int(y0), int(x0)].min() > 0.9
    assert item["reference_pose_maps"][0, :, int(y0), int(x0)].sum() > 0
    np.testing.assert_allclose(item["reference_keypoints"][0, 0, :2].numpy(), [x0, y0], atol=1e-4)


def test_rows_with_media_paths_decode_like_embedded_rows(split, tmp_path):
    record = make_clip(tmp_path, "paths", people=2, click_frame=13).validate()
    row = record.to_row()
    audio_path = tmp_path / "paths.flac"
    audio_path.write_bytes(row["audio"]["bytes"])
    row["video"] = {"path": str(record.video_path), "bytes": None}
    row["audio"] = {"path": str(audio_path), "bytes": None}
    by_path = datasets.Dataset.from_list([row], features=MIT_FEATURES)
    embedded, linked = view(split, window="center")[0], view(by_path, window="center")[0]
    assert torch.equal(embedded["frame_indices"], linked["frame_indices"])
    assert (embedded["pixel_values"] - linked["pixel_values"]).abs().mean() < 0.02
    assert torch.equal(embedded["pose_maps"], linked["pose_maps"])
    np.testing.assert_allclose(embedded["audio_windows"].numpy(), linked["audio_windows"].numpy(), atol=1e-3)


def test_face_masks_and_speaking_scores_follow_the_annotations(split, tmp_path):
    item = view(split, mask_factors=(8, 16))[0]
    transform = FrameTransform.cover(HEIGHT, WIDTH, OUT_H, OUT_W)
    for p in range(2):
        face = transform.apply_boxes(np.array([10 + 30 * p, 8, 26 + 30 * p, 24], np.float32))
        np.testing.assert_allclose(item["face_boxes"][p, 0].numpy(), face, atol=1e-4)
        x1, y1, x2, y2 = face
        for factor, masks in item["face_masks"].items():
            full = np.kron(masks[p, 0].numpy(), np.ones((factor, factor)))
            assert full[int(y1) : int(np.ceil(y2)), int(x1) : int(np.ceil(x2))].all()
            assert full[int(y2) + factor :].sum() == 0  # zero below the face
    scores = np.clip(np.linspace(-3, 3, NUM_FRAMES) / 3, -1, 1)
    frames = item["frame_indices"].numpy()
    np.testing.assert_allclose(item["speaking_scores"][0].numpy(), -scores[frames], atol=1e-6)
    np.testing.assert_allclose(item["speaking_scores"][1].numpy(), scores[frames], atol=1e-6)


def test_audio_windows_are_aligned_to_frames(split):
    data = view(split, num_frames=8, stride=1, window="center", audio_window_s=0.02)
    item = data[0]
    frames = item["frame_indices"].tolist()
    assert 13 in frames  # the click is at the centre of frame 13
    k = frames.index(13)
    windows = item["audio_windows"].numpy()
    assert windows.shape == (8, 320)
    assert np.argmax(np.abs(windows).max(1)) == k and np.abs(windows[k]).max() > 0.5
    assert abs(int(np.argmax(np.abs(windows[k]))) - 160) <= 2  # centred in its window
    others = np.delete(windows, k, axis=0)
    assert np.abs(others).max() < 0.05
    # The window's audio spans [start, start + F) frames: the click sits 13.5 frames after clip start.
    audio = item["audio"].numpy()
    assert len(audio) == 8 * SAMPLING_RATE // FPS
    expected = round((13 + 0.5 - frames[0]) * SAMPLING_RATE / FPS)
    assert abs(int(np.argmax(np.abs(audio))) - expected) <= 2
    # Windows reaching past the clip's ends are zero-padded, not shifted.
    first = view(split, num_frames=2, stride=1, window="first", audio_window_s=0.2)[0]["audio_windows"]
    assert first.shape == (2, 3200) and torch.all(first[0, :1000] == 0)


def test_audio_context_surrounds_the_frames_and_is_silent_outside_the_clip(split, tmp_path):
    """``audio_context``: the sampled frames' span plus ``C`` frames each side at the clip's own sample
    positions, zeros before the clip and after its last frame (even where the stored audio runs on)."""
    per_frame, context = SAMPLING_RATE // FPS, 10
    item = view(split, num_frames=4, stride=2, audio_context_frames=context)[0]  # frames 0, 2, 4, 6
    audio = item["audio_context"].numpy()
    assert audio.shape == ((7 + 2 * context) * per_frame,)
    # Sample 0 is clip frame -10 (padding): the click at the centre of frame 13 lies 23.5 frames in.
    assert int(np.argmax(np.abs(audio))) == round((13 + 0.5 + context) * per_frame)
    assert view(split, num_frames=4, stride=2)[0]["audio_context"].shape == (7 * per_frame,)

    # A click in the stored audio just after the clip's last frame: the last frame's audio window hears it,
    # the context does not (the pipeline's audio ends with the clip).
    tail = as_split([make_clip(tmp_path, "tail", click_frame=NUM_FRAMES)])
    last = view(tail, num_frames=4, stride=1, audio_context_frames=context).load_window(0, NUM_FRAMES - 4)
    assert np.abs(last["audio_windows"][-1].numpy()).max() > 0.5
    assert last["audio_context"].shape == ((4 + 2 * context) * per_frame,)
    assert not last["audio_context"].any()

    batch = collate_mit_batch([item, view(split, num_frames=4, stride=2, audio_context_frames=context)[1]])
    assert batch["audio_context"].shape == (2, 27 * per_frame)
    assert batch["audio_context_lengths"].tolist() == [27 * per_frame] * 2
    with pytest.raises(ValueError, match="audio_context_frames must be a non-negative integer"):
        view(split, audio_context_frames=-1)


def test_collate_pads_persons_and_masks(split):
    data = view(split, mask_factors=(16,))
    batch = collate_mit_batch([data[0], data[1]])
    assert batch["person_mask"].tolist() == [[True, True, False, False], [True, True, True, True]]
    assert batch["pose_maps"].shape == (2, 4, 6, 3, OUT_H, OUT_W)
    assert batch["face_masks"][16].shape == (2, 4, 6, 6, 10)
    assert batch["speaking_scores"].shape == (2, 4, 6) and batch["keypoints"].shape == (
        2,
        4,
        6,
        NUM_KEYPOINTS,
        3,
    )
    assert batch["pixel_values"].shape == (2, 6, 3, OUT_H, OUT_W)
    for key in ("pose_maps", "reference_pose_maps", "speaking_scores", "keypoints", "face_boxes"):
        assert torch.all(batch[key][0, 2:] == 0), key
    assert torch.all(batch["face_masks"][16][0, 2:] == 0)
    assert torch.equal(batch["pose_maps"][1], data[1]["pose_maps"])
    assert batch["clip_id"] == ["c2", "c4"] and batch["person_ids"][0] == ["p0", "p1"]
    assert (
        batch["audio"].shape == (2, 6 * 2 * SAMPLING_RATE // FPS)
        and batch["audio_lengths"].tolist() == [7680] * 2
    )
    loader = torch.utils.data.DataLoader(data, batch_size=2, collate_fn=collate_mit_batch)
    assert next(iter(loader))["person_mask"].shape == (2, 4)
    with pytest.raises(ValueError, match="pixel_values"):
        collate_mit_batch([data[0], view(split, num_frames=4)[0]])


def test_held_items_are_never_overwritten_by_recycled_buffers(split):
    data = view(split)
    first = data[0]
    snapshot = {key: first[key].clone() for key in ("pixel_values", "pose_maps")}
    for _ in range(3):
        data[1], data[0]  # same shapes: would reuse the first item's buffers if they were free
    for key, value in snapshot.items():
        assert torch.equal(first[key], value), key
    again = data[0]
    assert torch.equal(again["pose_maps"], snapshot["pose_maps"])


def test_too_short_clips_give_clear_errors(split, tmp_path):
    short = as_split([make_clip(tmp_path, "tiny", frames=5), make_clip(tmp_path, "long", frames=NUM_FRAMES)])
    data = view(short, num_frames=4, stride=2)
    with pytest.raises(ClipTooShortError, match=r"clip 'tiny' has 5 frames.*stride=2 needs 7"):
        data[0]
    assert data[1]["clip_id"] == "long"
    kept = view(short, num_frames=4, stride=2, drop_short=True)
    assert len(kept) == 1 and kept[0]["clip_id"] == "long"
    with pytest.raises(ClipTooShortError, match="no clip has the 61 frames"):
        view(short, num_frames=31, stride=2, drop_short=True)
    with pytest.raises(ValueError, match="needs frames up to"):
        view(split).load_window(0, 25)


def test_video_shorter_than_its_annotations_is_a_clear_error(tmp_path):
    row = make_clip(tmp_path, "cut", frames=NUM_FRAMES).validate().to_row()
    shorter = make_clip(tmp_path / "short", "cut", frames=20)
    row["video"]["bytes"] = shorter.video_path.read_bytes()  # annotations say 30 frames, the mp4 has 20
    data = view(datasets.Dataset.from_list([row], features=MIT_FEATURES), num_frames=4, stride=1)
    assert data.load_window(0, 10)["frame_indices"].tolist() == [10, 11, 12, 13]
    with pytest.raises(ValueError, match=r"clip 'cut': frames \[24, 25, 26, 27\] not found"):
        data.load_window(0, 24)


def test_dataloader_workers_match_the_main_process(split):
    data = view(split, window="random", reference="random", mask_factors=(32,))
    options = {"batch_size": 2, "collate_fn": collate_mit_batch}
    local = next(iter(torch.utils.data.DataLoader(data, **options)))
    loader = torch.utils.data.DataLoader(data, num_workers=1, multiprocessing_context="fork", **options)
    remote = next(iter(loader))
    for key in ("pixel_values", "pose_maps", "face_masks", "audio_windows", "frame_indices", "person_mask"):
        a, b = (local[key][32], remote[key][32]) if key == "face_masks" else (local[key], remote[key])
        assert torch.equal(a, b), key


def test_bad_arguments_are_rejected(split):
    with pytest.raises(ValueError, match="num_frames"):
        view(split, num_frames=0)
    with pytest.raises(ValueError, match="reference"):
        view(split, reference="middle")
    with pytest.raises(TypeError, match="split"):
        MITVideoDataset(datasets.DatasetDict({"train": split}))
    with pytest.raises(ValueError, match="column"):
        MITVideoDataset(split.remove_columns(["persons"]))
    with pytest.raises(IndexError):
        view(split)[2]


def test_loaded_dataset_folder_shuffled_and_pickled(synthetic_dataset_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # media must not depend on the working directory
    train = datasets.load_dataset(
        str(synthetic_dataset_dir), split="train", cache_dir=str(tmp_path / "cache")
    )
    shuffled = train.shuffle(seed=1)
    data = MITVideoDataset(shuffled, num_frames=8, height=64, width=96, mask_factors=(8,))
    assert len(data) == len(train)
    for index in range(len(data)):
        item = data[index]
        assert item["clip_id"] == shuffled[index]["clip_id"]
        persons = len(shuffled[index]["persons"])
        assert item["pose_maps"].shape == (persons, 8, 3, 64, 96)
        assert item["pose_maps"].sum() > 0 and item["pixel_values"].std() > 0.01
    restored = pickle.loads(pickle.dumps(data))
    assert torch.equal(restored[1]["pixel_values"], data[1]["pixel_values"])
