"""``mit-talking show``: overlay mp4 with the clip's frame count and audio, speaking-score PNG."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mit_dataset.show import LISTENING_COLOR, SPEAKING_COLOR, show_clip
from mit_dataset.video_io import probe_video, read_audio, read_video_frames
from mit_talk.cli import mit_talking as main


def test_show_writes_overlay_video_and_plot(synthetic_dataset_dir, synthetic_records, tmp_path):
    record = synthetic_records[0]
    video, plot = show_clip(synthetic_dataset_dir, record.clip_id, tmp_path / "out", progress=False)
    assert video.name == f"{record.clip_id}_overlay.mp4" and plot.name == f"{record.clip_id}_speaking.png"
    info = probe_video(video)
    assert (info.num_frames, info.width, info.height, info.fps) == (
        record.num_frames,
        record.width,
        record.height,
        25,
    )
    assert abs(len(read_audio(video)) - len(record.audio)) < 2048
    # Each person's box is outlined in red while speaking and blue while listening.
    frames = read_video_frames(video)
    for t in (0, record.num_frames // 2):
        for person in record.persons:
            x1, y1, _x2, y2 = np.round(person.boxes[t]).astype(int)
            edge = frames[t, (y1 + y2) // 2, max(x1, 0) : max(x1, 0) + 2].astype(int).mean(0)
            expected = SPEAKING_COLOR if person.speaking_score[t] > 0 else LISTENING_COLOR
            assert np.abs(edge - expected).max() < 60, (t, person.person_id, edge)
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size[0] >= 600
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([video.name, plot.name])


def test_show_cli_and_unknown_clip(synthetic_dataset_dir, synthetic_records, tmp_path):
    record = synthetic_records[-1]
    args = ["show", record.clip_id, "--dataset", str(synthetic_dataset_dir), "--out", str(tmp_path / "cli")]
    assert main(args) == 0
    assert (tmp_path / "cli" / f"{record.clip_id}_overlay.mp4").is_file()
    assert (tmp_path / "cli" / f"{record.clip_id}_speaking.png").is_file()
    small, _ = show_clip(synthetic_dataset_dir, record.clip_id, tmp_path / "small", max_width=128, progress=False)
    info = probe_video(small)
    assert (info.width, info.height, info.num_frames) == (128, 72, record.num_frames)
    with pytest.raises(ValueError, match=rf"clip 'nope' is not in dataset .*{record.clip_id}"):
        show_clip(synthetic_dataset_dir, "nope", tmp_path / "missing")
    assert not (tmp_path / "missing").exists() or not any((tmp_path / "missing").iterdir())
