"""``mit-talking info`` (what a dataset holds), ``synth --clip-folders`` (raw folders for ``export``) and the
summary lines ``synth`` and ``export`` end with."""

from __future__ import annotations

import json

import pytest

from mit_dataset.clip_folder import list_clip_folders, read_splits
from mit_dataset.info import dataset_overview
from mit_talk.cli import mit_talking


def test_overview_lists_every_clip_with_its_fields(synthetic_dataset_dir, synthetic_records):
    overview = dataset_overview(synthetic_dataset_dir)
    assert overview.configs == ["all", "two_human", "multi_human"]
    by_id = {clip["clip_id"]: clip for clip in overview.clips}
    assert set(by_id) == {record.clip_id for record in synthetic_records}
    for record in synthetic_records:
        clip = by_id[record.clip_id]
        assert (clip["split"], clip["subset"], clip["difficulty"]) == (
            record.split,
            record.subset,
            record.difficulty,
        )
        assert (clip["num_speakers"], clip["num_frames"]) == (len(record.persons), record.num_frames)
    assert overview.summary() == (
        "8 clips: train 4 (two_human 2, multi_human 2), test 4 (two_human 2, multi_human 2)"
    )
    lines = overview.format().splitlines()
    assert lines[3].split() == [
        "clip_id",
        "split",
        "subset",
        "difficulty",
        "speakers",
        "frames",
        "size",
        "fps",
    ]
    record = next(r for r in synthetic_records if r.split == "test")
    (line,) = [line for line in lines if line.startswith(record.clip_id)]
    assert line.split()[1:] == [
        "test",
        record.subset,
        record.difficulty,
        str(len(record.persons)),
        str(record.num_frames),
        f"{record.width}x{record.height}",
        "25",
    ]


def test_overview_of_one_config(synthetic_dataset_dir):
    overview = dataset_overview(synthetic_dataset_dir, "multi_human")
    assert {clip["subset"] for clip in overview.clips} == {"multi_human"} and len(overview.clips) == 4
    with pytest.raises(ValueError, match="unknown config 'three_human'.*two_human"):
        dataset_overview(synthetic_dataset_dir, "three_human")


def test_info_command(synthetic_dataset_dir, synthetic_records, tmp_path, capsys):
    assert mit_talking(["info", str(synthetic_dataset_dir)]) == 0
    out = capsys.readouterr().out
    assert all(record.clip_id in out for record in synthetic_records)
    assert mit_talking(["info", str(tmp_path / "missing")]) == 2
    assert (
        capsys.readouterr().err
        == f"mit-talking info: error: {tmp_path / 'missing'}: no such dataset folder\n"
    )


def test_synth_clip_folders_then_export_from_the_command_line(tmp_path, capsys):
    raw, out = tmp_path / "raw", tmp_path / "dataset"
    size = ["--num-clips", "4", "--width", "128", "--height", "72", "--seconds", "0.4"]
    assert mit_talking(["synth", "--clip-folders", str(raw), *size]) == 0
    printed = capsys.readouterr().out
    assert f"wrote 4 clip folders to {raw}: train 2, test 2" in printed
    folders = list_clip_folders(raw)
    assert len(folders) == 4 and len(read_splits(raw)) == 2
    for folder in folders:
        assert {"video.mp4", "meta.json", "speaker_info_with_instance_bbox.json", "pose"} <= {
            p.name for p in folder.iterdir()
        }
        assert json.loads((folder / "meta.json").read_text())["subset"] in ("two_human", "multi_human")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left

    assert mit_talking(["export", str(raw), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    summary = dataset_overview(out).summary()
    assert summary.startswith("4 clips: train 2 (") and ", test 2 (" in summary
    assert captured.out.strip().splitlines()[-1] == f"wrote {out}: {summary}"
    assert "4/4" in captured.err  # the progress bar knows its total

    # the same synthetic clips as the direct dataset writer
    assert mit_talking(["synth", "--out", str(tmp_path / "direct"), *size]) == 0
    assert (
        capsys.readouterr().out.strip().splitlines()[-1].startswith(f"wrote {tmp_path / 'direct'}: 4 clips")
    )
    direct = {c["clip_id"] for c in dataset_overview(tmp_path / "direct").clips}
    assert direct == {c["clip_id"] for c in dataset_overview(out).clips}


def test_synth_clip_folders_refuses_to_replace(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    size = ["--num-clips", "2", "--width", "64", "--height", "36", "--seconds", "0.2"]
    assert mit_talking(["synth", "--clip-folders", str(tmp_path / "notes"), *size]) == 2
    assert "already exists" in capsys.readouterr().err
    assert mit_talking(["synth", "--clip-folders", str(tmp_path / "notes"), "--overwrite", *size]) == 2
    assert "not a folder of clip folders" in capsys.readouterr().err
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"
    with pytest.raises(SystemExit):  # exactly one of --out / --clip-folders
        mit_talking(["synth", *size])
