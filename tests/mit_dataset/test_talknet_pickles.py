"""TalkNet pickles from a stranger's clip folder are rebuilt, never executed."""

import codecs
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from mit_dataset.builder import MITClipFolderBuilder
from mit_dataset.clip_folder import write_clip_folder
from mit_dataset.talknet import load_talknet_outputs
from mit_talk.cli import mit_talking


class CreatesAFile:
    """What an attacker puts in tracks.pckl: unpickling calls ``open(marker, "w")``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _talknet_pair(frames: int = 12):
    tracks = [
        {
            "track": {"frame": np.arange(frames), "bbox": np.tile(np.float64([1, 2, 30, 40]), (frames, 1))},
            "proc_track": {"x": [np.float64(15.5)] * frames, "y": np.full(frames, 21.0), "s": (8.0, 9.5)},
        }
    ]
    return tracks, [np.round(np.linspace(-2, 2, frames - 3), 1)]  # the demo's scores can be short


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_what_the_demo_writes_loads_at_every_protocol(tmp_path, protocol):
    tracks, scores = _talknet_pair()
    (tmp_path / "tracks.pckl").write_bytes(pickle.dumps(tracks, protocol=protocol))
    (tmp_path / "scores.pckl").write_bytes(pickle.dumps(scores, protocol=protocol))
    [track] = load_talknet_outputs(tmp_path / "tracks.pckl", tmp_path / "scores.pckl")
    np.testing.assert_array_equal(track.frames, np.arange(12))
    np.testing.assert_array_equal(track.boxes[0], [1, 2, 30, 40])
    np.testing.assert_allclose(track.scores, scores[0])


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_a_pickle_that_runs_code_is_refused_naming_the_file(tmp_path, protocol):
    marker = tmp_path / "pwned"
    (tmp_path / "tracks.pckl").write_bytes(pickle.dumps([CreatesAFile(marker)], protocol=protocol))
    (tmp_path / "scores.pckl").write_bytes(pickle.dumps([], protocol=protocol))
    with pytest.raises(
        ValueError, match=r"tracks\.pckl: not a TalkNet pickle \(refused to load (io|builtins)\.open"
    ):
        load_talknet_outputs(tmp_path / "tracks.pckl", tmp_path / "scores.pckl")
    assert not marker.exists()


class Rot13:
    def __reduce__(self):
        return codecs.encode, ("text", "rot13")


def test_codecs_in_a_pickle_are_limited_to_latin1(tmp_path):
    # protocol 2 stores bytes as _codecs.encode(text, "latin1"); that loads, any other codec is refused
    (tmp_path / "scores.pckl").write_bytes(pickle.dumps([b"\xff bytes"], protocol=2))
    (tmp_path / "tracks.pckl").write_bytes(pickle.dumps([Rot13()], protocol=2))
    with pytest.raises(ValueError, match="only latin-1"):
        load_talknet_outputs(tmp_path / "tracks.pckl", tmp_path / "scores.pckl")
    with pytest.raises(
        ValueError, match="lacks track.frame"
    ):  # the bytes loaded; the format check refuses them
        load_talknet_outputs(tmp_path / "scores.pckl", tmp_path / "scores.pckl")


@pytest.fixture
def hostile_clips(synthetic_records, tmp_path):
    """A folder of one official clip whose persons have no speaking_score, so pywork/*.pckl are read; the
    tracks pickle creates ``marker`` when unpickled with ``pickle.load``."""
    record = synthetic_records[0]
    clips = tmp_path / "clips"
    folder = write_clip_folder(record, clips)
    info = folder / "speaker_info_with_instance_bbox.json"
    info.write_text(
        json.dumps(
            [{k: v for k, v in e.items() if k != "speaking_score"} for e in json.loads(info.read_text())]
        )
    )
    marker = tmp_path / "pwned"
    (folder / "pywork").mkdir()
    (folder / "pywork" / "tracks.pckl").write_bytes(pickle.dumps([CreatesAFile(marker)]))
    (folder / "pywork" / "scores.pckl").write_bytes(pickle.dumps([np.zeros(3)]))
    return clips, marker


def test_export_of_a_hostile_clip_folder_runs_no_code(hostile_clips, tmp_path, capsys):
    clips, marker = hostile_clips
    assert mit_talking(["export", str(clips), "--out", str(tmp_path / "out")]) == 2
    assert "tracks.pckl: not a TalkNet pickle (refused to load" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_builder_on_a_hostile_clip_folder_runs_no_code(hostile_clips, tmp_path):
    clips, marker = hostile_clips
    builder = MITClipFolderBuilder(config_name="all", data_dir=str(clips), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(Exception) as raised:
        builder.download_and_prepare()
    chain, error = [], raised.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    assert any("tracks.pckl: not a TalkNet pickle (refused to load" in text for text in chain)
    assert not marker.exists()
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)
