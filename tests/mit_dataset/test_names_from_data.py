"""mit-talking show and clip folders with a stranger's dataset: clip ids never lead outside the output folder, and
--cache-dir is where the dataset is prepared."""

import dataclasses

import pytest
from datasets import load_dataset

from mit_dataset.clip import ClipValidationError
from mit_dataset.clip_folder import write_clip_folder
from mit_dataset.show import show_clip


@pytest.fixture(scope="module")
def hostile_dataset(tmp_path_factory, synthetic_dataset_dir):
    """A Parquet dataset whose clip id is ``../../evil`` (written directly: our writers would refuse it)."""
    folder = tmp_path_factory.mktemp("hostile")
    test = load_dataset(str(synthetic_dataset_dir), split="test", cache_dir=str(folder / "cache"))
    evil = test.select([0]).map(lambda row: {"clip_id": "../../evil"})
    evil.to_parquet(str(folder / "mit" / "data" / "test.parquet"))
    return folder / "mit"


def test_show_refuses_a_clip_id_that_leads_outside_out(hostile_dataset, tmp_path):
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(ValueError, match=r"clip id '\.\./\.\./evil' contains a path separator"):
        show_clip(hostile_dataset, "../../evil", out, progress=False)
    assert not list(tmp_path.rglob("*evil*"))


@pytest.mark.parametrize("clip_id", ["../evil", "..", ".hidden", "a\nb", "x" * 300])
def test_records_with_unsafe_clip_ids_are_invalid(synthetic_records, tmp_path, clip_id):
    record = dataclasses.replace(synthetic_records[0], clip_id=clip_id)
    with pytest.raises(ClipValidationError, match="field 'clip_id'"):
        write_clip_folder(record, tmp_path / "clips")
    assert not (tmp_path / "evil").exists() and [p.name for p in tmp_path.iterdir()] in ([], ["clips"])


def test_show_honours_its_cache_dir(synthetic_dataset_dir, tmp_path):
    from mit_talk.cli import mit_talking

    clip_id = load_dataset(str(synthetic_dataset_dir), split="test", cache_dir=str(tmp_path / "c0"))[0][
        "clip_id"
    ]
    args = ["show", clip_id, "--dataset", str(synthetic_dataset_dir), "--out", str(tmp_path / "out")]
    assert mit_talking([*args, "--cache-dir", str(tmp_path / "cache")]) == 0
    assert any((tmp_path / "cache").rglob("*.arrow"))
