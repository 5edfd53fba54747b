"""Export, ``load_dataset``, the training view and the metrics agree on frame count, size and timing
(DESIGN decision 9): generated files with the defects of real clips, then the real media made by others
(``../shared/real``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import evaluate
import numpy as np
import pytest
import soundfile as sf
from datasets import Dataset, Video, load_dataset
from media_samples import (
    assert_row_agrees_with_media,
    authors_style_clip,
    frame_codes,
    needs_ffmpeg_cli,
    released_clip_folder,
    write_sample,
)

from benchmark import metrics
from benchmark.speaker_sync import score_video
from benchmark.video_loading import num_video_frames
from mit_dataset.clip import ClipValidationError
from mit_dataset.features import MIT_FEATURES, SAMPLING_RATE
from mit_dataset.hub import export_clip_folders
from mit_dataset.media import probe_media
from mit_dataset.torch_view import MITVideoDataset
from mit_dataset.vad import check_speaker_tracks
from mit_dataset.video_io import read_audio, read_video_frames, write_video


def test_view_decodes_a_row_with_timestamp_gaps_by_frame_order(make_record, tmp_path):
    # a row written before import normalised media: its mp4 has gaps (frames 6 and 20 missing)
    record = make_record("gappy")  # 30 frames, 128x72
    kept = [i for i in range(32) if i not in (6, 20)]
    record.video_path = write_sample(tmp_path / "gap.mp4", num_frames=32, drop=(6, 20), video_start_frames=9)
    with pytest.raises(ClipValidationError, match=r"clip 'gappy': field 'video': .*video timestamps have gaps"):
        record.validate()  # today's writers refuse it: rows only embed normalised media
    split = Dataset.from_list([record.to_row()], features=MIT_FEATURES)
    view = MITVideoDataset(split, num_frames=5, stride=2, height=72, width=128, window="random", seed=0)
    for epoch in range(6):  # several window starts; before, some raised "frames [6] not found"
        view.set_epoch(epoch)
        item = view[0]
        frames = ((item["pixel_values"].numpy().transpose(0, 2, 3, 1) + 1) * 127.5).round().astype(np.uint8)
        assert frame_codes(frames) == [kept[i] for i in item["frame_indices"].tolist()]


@needs_ffmpeg_cli
def test_metrics_count_decoded_frames_and_reject_mismatches_alike(tmp_path):
    episode = authors_style_clip(tmp_path)[1]
    cut = tmp_path / "input_seek_cut.mp4"  # the container lists frames the cut cannot decode
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-ss", "1.37", "-to", "5.0", "-i", str(episode), "-c", "copy", str(cut)],
        check=True,
    )  # fmt: skip
    info = probe_media(cut)
    assert info.container_frames > info.num_frames == num_video_frames(cut)
    copy = write_video(tmp_path / "copy.mp4", read_video_frames(cut))  # a frame-exact copy is accepted
    psnr = evaluate.load(metrics.path("psnr"))
    assert psnr.compute(predictions=[str(copy)], references=[str(cut)])["psnr"] > 30

    video = write_video(tmp_path / "126.mp4", [np.full((32, 48, 3), i, np.uint8) for i in range(126)])
    short = write_video(tmp_path / "112.mp4", read_video_frames(video)[:112])
    boxes, scores = np.tile([4.0, 4.0, 20.0, 20.0], (2, 112, 1)), np.ones((2, 112))
    message = r"prediction .*126.mp4 has 126 frames but .* has 112; pass truncate=True"
    with pytest.raises(ValueError, match=message):  # speaker sync no longer scores the first 112 silently
        score_video(str(video), boxes, scores)
    with pytest.raises(ValueError, match=message):
        psnr.compute(predictions=[str(video)], references=[str(short)])
    assert len(score_video(str(video), boxes, scores, truncate=True)["per_person"]) == 2
    fvd = evaluate.load(metrics.path("fvd"))
    with pytest.raises(ValueError, match=message):  # checked before any detector is needed
        fvd.compute(predictions=[str(video)], references=[str(short)])


# --------------------------------------------------------------------------------------- real files


def with_audio(video: Path, wav: Path, out: Path, max_packets: int = 100) -> Path:
    """The first ``max_packets`` packets of ``video``'s H.264 stream copied as is (decode order: nothing left
    refers to a dropped packet), with ``wav`` (44.1 kHz stereo speech) encoded as AAC beside it."""
    with av.open(str(video)) as source, av.open(str(wav)) as speech, av.open(str(out), "w") as target:
        video_out = target.add_stream_from_template(source.streams.video[0])
        audio_in = speech.streams.audio[0]
        audio_out = target.add_stream("aac", rate=audio_in.sample_rate, layout="stereo")
        for frame in speech.decode(audio_in):  # audio first: its encoder opens before the header is written
            frame.pts = None
            target.mux(audio_out.encode(frame))
        target.mux(audio_out.encode())
        packets = (packet for packet in source.demux(source.streams.video[0]) if packet.dts is not None)
        for _, packet in zip(range(max_packets), packets):
            packet.stream = video_out
            target.mux(packet)
    return out


@pytest.fixture(scope="module")
def real_dataset(real_media, tmp_path_factory):
    """Clip folders around the real videos (annotations generated, one entry per decoded frame), exported
    and loaded from another working directory."""
    root = tmp_path_factory.mktemp("real")
    moore = real_media / "moore-animateanyone"
    videos = {
        "late_start_30fps": moore / "2.mp4",
        "talking_head_25fps": moore / "1.mp4",
        "speech_44k_stereo": with_audio(
            moore / "1.mp4", real_media / "hallo2" / "1.wav", root / "speech.mp4"
        ),
    }
    sources = {}
    for name, video in videos.items():
        info = probe_media(video)
        released_clip_folder(root / "clips" / name, video, entries=info.num_frames)
        sources[name] = (video, info)
    out = export_clip_folders(root / "clips", root / "dataset", progress=False)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.chdir(elsewhere)
    split = load_dataset(str(out), cache_dir=str(root / "cache"))["train"]
    yield split, sources
    monkeypatch.undo()


def test_rows_say_what_decoders_give(real_dataset):
    split, sources = real_dataset
    assert sorted(split["clip_id"]) == sorted(sources)
    for row in split:
        info = sources[row["clip_id"]][1]
        assert_row_agrees_with_media(row, info)
    late = next(row for row in split if row["clip_id"] == "late_start_30fps")
    assert (late["num_frames"], late["width"], late["height"], late["fps"]) == (351, 300, 350, 30.0)


def test_row_audio_starts_with_the_first_video_frame(real_dataset):
    split, sources = real_dataset
    for row in split:
        video, info = sources[row["clip_id"]]
        stored = row["audio"].get_all_samples().data[0].numpy()
        # the source's audio from its first video frame on (8.333 s into 2.mp4's audio)
        raw = read_audio(video, SAMPLING_RATE, align_to_video=False)
        expected = raw[round((info.video_start - info.audio_start) * SAMPLING_RATE) :][: len(stored)]
        middle = slice(SAMPLING_RATE, len(expected) - SAMPLING_RATE)
        assert np.corrcoef(stored[middle], expected[middle])[0, 1] > 0.95, row["clip_id"]


def test_training_view_gives_the_rows_frames_and_audio(real_dataset):
    split, _ = real_dataset
    for index, row in enumerate(split):
        height, width, fps = row["height"], row["width"], row["fps"]
        view = MITVideoDataset(
            split, num_frames=4, stride=3, height=height, width=width, window="center", reference="first"
        )
        item = view[index]
        frames = item["frame_indices"].numpy()
        expected = row["video"].get_frames_at(frames.tolist()).data.permute(0, 2, 3, 1).numpy()
        got = ((item["pixel_values"].numpy().transpose(0, 2, 3, 1) + 1) * 127.5).round()
        assert np.abs(got - expected).mean() < 2.0, row["clip_id"]
        audio = row["audio"].get_all_samples().data[0].numpy()
        start = round(frames[0] / fps * SAMPLING_RATE)
        np.testing.assert_allclose(
            item["audio"].numpy(), audio[start : start + len(item["audio"])], atol=1e-4
        )


def test_metrics_count_the_rows_frames(real_dataset, tmp_path):
    split, sources = real_dataset
    raw = split.cast_column("video", Video(decode=False))
    embedded = {clip_id: video["bytes"] for clip_id, video in zip(raw["clip_id"], raw["video"])}
    for row in split:
        stored = tmp_path / f"{row['clip_id']}.mp4"
        stored.write_bytes(embedded[row["clip_id"]])
        assert num_video_frames(stored) == row["num_frames"] == sources[row["clip_id"]][1].num_frames
        faces = np.stack([np.asarray(p["face_boxes"]) for p in row["persons"]])
        scores = np.stack([np.asarray(p["speaking_score"]) for p in row["persons"]])
        with pytest.raises(ValueError, match="truncate=True"):  # the rule psnr/ssim apply
            score_video(str(stored), faces[:, :-1], scores[:, :-1])
    late_video, late_info = sources["late_start_30fps"]
    assert num_video_frames(late_video) == 351 and late_info.container_frames == 352
    psnr = evaluate.load(metrics.path("psnr"))
    result = psnr.compute(predictions=[str(late_video)], references=[str(tmp_path / "late_start_30fps.mp4")])
    assert result["psnr"] > 35  # the source and its normalised copy pair frame by frame


def test_real_stereo_speech_as_speaker_audios_is_a_clear_error(real_media):
    speech, rate = sf.read(real_media / "hallo2" / "1.wav", dtype="float32")
    assert speech.shape[1] == 2 and rate == 44_100
    with pytest.raises(ValueError, match=r"speaker_audios: a \(\d+, 2\) array looks like one multi-channel"):
        check_speaker_tracks(speech)
    assert [t.shape for t in check_speaker_tracks(speech.T)] == [(len(speech),)] * 2  # (P, S): two speakers
