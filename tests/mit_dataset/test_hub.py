import dataclasses
import re
import shutil
from pathlib import Path

import pytest
import yaml
from datasets import Video, load_dataset
from huggingface_hub import DatasetCard

from mit_dataset.clip import ClipValidationError
from mit_dataset.features import MIT_FEATURES
from mit_dataset.hub import content_fingerprint, push_dataset_folder, write_dataset_folder


def _by_id(records):
    return {record.clip_id: record for record in records}


def _leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def test_layout_and_card(synthetic_dataset_dir, synthetic_records):
    files = sorted(
        p.relative_to(synthetic_dataset_dir).as_posix()
        for p in synthetic_dataset_dir.rglob("*")
        if p.is_file()
    )
    assert [re.sub(r"-[0-9a-f]{16}\.parquet$", ".parquet", f) for f in files] == [
        "README.md",
        "data/multi_human/test-00000-of-00001.parquet",
        "data/multi_human/train-00000-of-00001.parquet",
        "data/two_human/test-00000-of-00001.parquet",
        "data/two_human/train-00000-of-00001.parquet",
    ]
    for name in files[1:]:  # each shard is named after its content
        assert name.endswith(f"-{content_fingerprint(synthetic_dataset_dir / name)}.parquet")
    card = DatasetCard.load(synthetic_dataset_dir / "README.md")
    data = card.data.to_dict()
    assert [c["config_name"] for c in data["configs"]] == ["all", "two_human", "multi_human"]
    assert data["configs"][0]["default"] is True
    info = {entry["config_name"]: entry for entry in data["dataset_info"]}
    assert info["all"]["features"] == MIT_FEATURES._to_yaml_list()
    counts = {s["name"]: s["num_examples"] for s in info["all"]["splits"]}
    assert counts == {
        "train": sum(r.split == "train" for r in synthetic_records),
        "test": sum(r.split == "test" for r in synthetic_records),
    }
    two_human = [r for r in synthetic_records if r.subset == "two_human"]
    assert {s["name"]: s["num_examples"] for s in info["two_human"]["splits"]} == {
        split: sum(r.split == split for r in two_human) for split in ("train", "test")
    }
    for section in ("## Fields", "## How to load", "## Citation", "## License", "| `persons.keypoints` |"):
        assert section in card.text
    assert "*id0" not in (synthetic_dataset_dir / "README.md").read_text()  # no YAML anchors


def test_round_trip_every_field_from_another_directory(
    synthetic_dataset_dir, synthetic_records, assert_row_matches, tmp_path, monkeypatch
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Video paths inside Parquet would resolve against the CWD: load from elsewhere, bytes are embedded.
    monkeypatch.chdir(elsewhere)
    ds = load_dataset(str(synthetic_dataset_dir), cache_dir=str(tmp_path / "fresh_cache"))
    assert set(ds) == {"train", "test"}
    records = _by_id(synthetic_records)
    seen = []
    for split, part in ds.items():
        assert part.features == MIT_FEATURES
        for row in part:
            record = records[row["clip_id"]]
            assert record.split == split
            assert_row_matches(row, record)
            seen.append(row["clip_id"])
        raw = part.cast_column("video", Video(decode=False))
        for row in raw:
            assert row["video"]["bytes"] == Path(records[row["clip_id"]].video_path).read_bytes()
    assert sorted(seen) == sorted(records)
    test_difficulties = sorted(r["difficulty"] for r in ds["test"])
    assert test_difficulties == ["challenging", "challenging", "easy", "easy"]


@pytest.mark.parametrize("config", ["two_human", "multi_human", "all"])
def test_each_config(synthetic_dataset_dir, synthetic_records, config, tmp_path):
    ds = load_dataset(str(synthetic_dataset_dir), config, cache_dir=str(tmp_path / "cache"))
    for split in ("train", "test"):
        expected = {r.clip_id for r in synthetic_records if r.split == split and config in ("all", r.subset)}
        assert set(ds[split]["clip_id"]) == expected


def test_streaming(synthetic_dataset_dir, synthetic_records, assert_row_matches):
    stream = load_dataset(str(synthetic_dataset_dir), "multi_human", split="test", streaming=True)
    assert stream.features == MIT_FEATURES
    records = _by_id(synthetic_records)
    rows = list(stream)
    assert sorted(r["clip_id"] for r in rows) == sorted(
        r.clip_id for r in synthetic_records if r.split == "test" and r.subset == "multi_human"
    )
    for row in rows:
        assert_row_matches(row, records[row["clip_id"]])


def test_folder_named_mit_talking_loads_by_name(synthetic_dataset_dir, tmp_path, monkeypatch):
    shutil.copytree(synthetic_dataset_dir, tmp_path / "mit-talking")
    monkeypatch.chdir(tmp_path)
    ds = load_dataset("mit-talking", split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.num_rows == 4 and ds.features == MIT_FEATURES


def test_shards_are_cut_by_size(synthetic_records, tmp_path):
    two_human = [r for r in synthetic_records if r.subset == "two_human"]
    out = write_dataset_folder(two_human, tmp_path / "sharded", max_shard_bytes=1, progress=False)
    names = sorted(p.name for p in (out / "data" / "two_human").iterdir())
    counts = {split: sum(r.split == split for r in two_human) for split in ("test", "train")}
    assert min(counts.values()) >= 2
    expected = [f"{split}-{i:05d}-of-{n:05d}" for split, n in counts.items() for i in range(n)]
    assert [name.rsplit("-", 1)[0] for name in names] == expected
    assert not (out / "data" / "multi_human").exists()
    configs = yaml.safe_load((out / "README.md").read_text().split("---")[1])["configs"]
    assert [c["config_name"] for c in configs] == ["all", "two_human"]  # no multi_human clips, no config
    ds = load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert sorted(list(ds["train"]["clip_id"]) + list(ds["test"]["clip_id"])) == sorted(
        r.clip_id for r in two_human
    )


def test_existing_folder_needs_overwrite(synthetic_records, tmp_path):
    train = [r for r in synthetic_records if r.split == "train"][:2]
    test = [r for r in synthetic_records if r.split == "test"][:2]
    out = write_dataset_folder(train, tmp_path / "ds", progress=False)
    with pytest.raises(FileExistsError, match="overwrite"):
        write_dataset_folder(test, out, progress=False)
    kept = load_dataset(str(out), cache_dir=str(tmp_path / "c1"))
    assert set(kept) == {"train"} and sorted(kept["train"]["clip_id"]) == sorted(r.clip_id for r in train)
    write_dataset_folder(test, out, overwrite=True, progress=False)
    ds = load_dataset(str(out), cache_dir=str(tmp_path / "c2"))
    assert set(ds) == {"test"} and sorted(ds["test"]["clip_id"]) == sorted(r.clip_id for r in test)
    assert _leftovers(tmp_path, "ds") == []


def test_a_rewritten_folder_loads_the_new_rows_not_the_cache(synthetic_records, tmp_path):
    # A corrected annotation: the same clips, one clip id changed (same length, so every split size in the
    # card stays the same). datasets keys its cache on the card, so the shard names must change with content.
    test = [r for r in synthetic_records if r.split == "test"][:2]
    out = write_dataset_folder(test, tmp_path / "ds", progress=False)
    cache = str(tmp_path / "cache")
    assert sorted(load_dataset(str(out), split="test", cache_dir=cache)["clip_id"]) == sorted(
        r.clip_id for r in test
    )
    renamed = dataclasses.replace(test[0], clip_id=test[0].clip_id[:-1] + "Z")
    write_dataset_folder([renamed, test[1]], out, overwrite=True, progress=False)
    assert sorted(load_dataset(str(out), split="test", cache_dir=cache)["clip_id"]) == sorted(
        [renamed.clip_id, test[1].clip_id]
    )


def test_a_shard_edited_in_place_loads_fresh_with_force_redownload(synthetic_records, tmp_path):
    """The documented limit (README, hub.py, SECURITY.md): a shard edited in place by another tool keeps its
    name, so the cache key is unchanged and the old rows come back; ``download_mode="force_redownload"``
    reads the new ones."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    test = [r for r in synthetic_records if r.split == "test"][:1]
    out = write_dataset_folder(test, tmp_path / "ds", progress=False)
    cache = str(tmp_path / "cache")
    assert load_dataset(str(out), split="test", cache_dir=cache)["clip_id"] == [test[0].clip_id]
    (shard,) = out.glob("data/*/test-*.parquet")
    table = pq.read_table(shard)
    edited = pa.array([test[0].clip_id[:-1] + "Z"])
    pq.write_table(table.set_column(table.schema.get_field_index("clip_id"), "clip_id", edited), shard)
    fresh = load_dataset(str(out), split="test", cache_dir=cache, download_mode="force_redownload")
    assert fresh["clip_id"] == [test[0].clip_id[:-1] + "Z"] and shard.exists()


def test_overwrite_refuses_a_folder_that_is_not_a_dataset(synthetic_records, tmp_path):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an MIT dataset folder"):
        write_dataset_folder(synthetic_records[:1], precious, overwrite=True, progress=False)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_failure_mid_write_leaves_nothing_and_keeps_the_old_folder(synthetic_records, tmp_path):
    def records_then_crash():
        yield from synthetic_records[:3]
        raise RuntimeError("reader crashed")

    with pytest.raises(RuntimeError, match="reader crashed"):
        write_dataset_folder(records_then_crash(), tmp_path / "ds", progress=False)
    assert list(tmp_path.iterdir()) == []

    out = write_dataset_folder(synthetic_records[:2], tmp_path / "ds", progress=False)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(RuntimeError, match="reader crashed"):
        write_dataset_folder(records_then_crash(), out, overwrite=True, progress=False)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert _leftovers(tmp_path, "ds") == []


def test_duplicate_clip_ids_and_empty_input_are_rejected(synthetic_records, tmp_path):
    with pytest.raises(ClipValidationError, match=re.escape(synthetic_records[0].clip_id) + ".*clip_id"):
        write_dataset_folder([synthetic_records[0], synthetic_records[0]], tmp_path / "dup", progress=False)
    with pytest.raises(ValueError, match="no clips"):
        write_dataset_folder(iter([]), tmp_path / "empty", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_push_uses_upload_folder(synthetic_dataset_dir, monkeypatch):
    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("init", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs))
            return "commit-info"

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    assert (
        push_dataset_folder(synthetic_dataset_dir, "me/mit-talking", token="tok", private=True)
        == "commit-info"
    )
    assert calls[0] == ("init", "tok")
    assert calls[1] == (
        "create_repo",
        "me/mit-talking",
        {"repo_type": "dataset", "private": True, "exist_ok": True},
    )
    upload = calls[2][1]
    assert upload["repo_id"] == "me/mit-talking" and upload["repo_type"] == "dataset"
    assert Path(upload["folder_path"]) == synthetic_dataset_dir
    with pytest.raises(ValueError, match="not an MIT dataset folder"):
        push_dataset_folder(synthetic_dataset_dir / "data", "me/x")


def test_write_synthetic_dataset_and_cli(tmp_path, capsys):
    from mit_talk.cli import mit_talking as main

    out = tmp_path / "synth"
    args = [
        "synth",
        "--out",
        str(out),
        "--num-clips",
        "4",
        "--width",
        "128",
        "--height",
        "72",
        "--seconds",
        "1.0",
    ]
    assert main(args) == 0
    ds = load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert sum(part.num_rows for part in ds.values()) == 4
    assert main(args) == 2
    assert "overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--seed", "1"]) == 0
    assert sum(part.num_rows for part in load_dataset(str(out), cache_dir=str(tmp_path / "c2")).values()) == 4
    assert _leftovers(tmp_path, "synth") == []
