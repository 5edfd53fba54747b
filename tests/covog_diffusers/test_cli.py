"""The ``covog`` command: create-tiny, generate end to end on a tiny synthetic MIT dataset (assemble: see
test_assemble.py, which builds the small original-layout checkpoints it needs)."""

import av
import datasets
import numpy as np
import pytest

from covog_diffusers.cli import find_clip
from covog_diffusers.pipelines import CovOGPipeline
from mit_dataset.video_io import probe_video, read_audio
from mit_talk.cli import build_parser
from mit_talk.cli import covog as main


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "covog-tiny"
    assert main(["create-tiny", str(out)]) == 0
    return out


def test_create_tiny(tiny_model, capsys):
    assert (tiny_model / "model_index.json").is_file()
    pipe = CovOGPipeline.from_pretrained(tiny_model)
    assert pipe.denoising_unet.config.use_iad
    assert not [p for p in tiny_model.parent.iterdir() if p.name.startswith(".")], (
        "staging folder left behind"
    )
    # an existing folder is not replaced without --overwrite
    assert main(["create-tiny", str(tiny_model)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["create-tiny", str(tiny_model), "--overwrite", "--seed", "1"]) == 0


def test_console_script_is_declared(capsys):
    import configparser
    from pathlib import Path

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).parents[2] / "setup.cfg")
    scripts = dict(
        line.replace(" ", "").split("=", 1)
        for line in setup["options.entry_points"]["console_scripts"].strip().splitlines()
    )
    assert scripts["covog"] == "mit_talk.cli:covog"
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    for command in ("create-tiny", "assemble", "generate"):
        assert command in usage
    assemble_help = build_parser("covog").parse_args(
        [
            "assemble",
            "--sd15",
            "a",
            "--vae",
            "b",
            "--image-encoder",
            "c",
            "--wav2vec2",
            "d",
            "--motion-module",
            "e",
            "--out",
            "f",
        ]
    )
    assert assemble_help.animate_anyone is None and assemble_help.dtype == "float32"


def _first_clip(dataset_dir):
    dataset = datasets.load_dataset(str(dataset_dir))
    split = min(dataset)
    row = dataset[split][0]
    return row["clip_id"], len(row["persons"])


def test_generate_end_to_end(tiny_model, synthetic_dataset_dir, tmp_path, diffusers_log):
    clip_id, _ = _first_clip(synthetic_dataset_dir)
    out = tmp_path / "videos" / "generated.mp4"
    argv = [
        "generate",
        "--model",
        str(tiny_model),
        "--dataset",
        str(synthetic_dataset_dir),
        "--clip",
        clip_id,
        "--out",
        str(out),
        "--steps",
        "1",
        "--num-frames",
        "6",
        "--height",
        "64",
        "--width",
        "64",
        "--window-frames",
        "6",
        "--seed",
        "3",
    ]
    assert main(argv) == 0
    assert not [m for m in diffusers_log if "kept in float32" in m]  # no empty-list warning from .to(dtype)
    info = probe_video(out)
    assert (info.num_frames, info.height, info.width, info.fps) == (6, 64, 64, 25.0)
    with av.open(str(out)) as container:
        assert len(container.streams.audio) == 1
    audio = read_audio(out)
    assert abs(len(audio) - 6 / 25 * 16_000) <= 1024
    assert np.abs(audio).max() > 0  # the clip's audio, not silence


def test_generate_errors(tiny_model, synthetic_dataset_dir, tmp_path, capsys):
    base = [
        "generate",
        "--model",
        str(tiny_model),
        "--dataset",
        str(synthetic_dataset_dir),
        "--out",
        str(tmp_path / "x.mp4"),
    ]
    assert main([*base, "--clip", "no-such-clip"]) == 2
    assert "no-such-clip" in capsys.readouterr().err
    assert (
        main(
            [
                "generate",
                "--model",
                str(tmp_path),
                "--dataset",
                str(synthetic_dataset_dir),
                "--clip",
                "c",
                "--out",
                str(tmp_path / "x.mp4"),
            ]
        )
        == 2
    )
    assert "no model_index.json" in capsys.readouterr().err
    clip_id, persons = _first_clip(synthetic_dataset_dir)
    tracks = [arg for i in range(persons + 1) for arg in ("--speaker-audio", str(tmp_path / f"{i}.wav"))]
    assert main([*base, "--clip", clip_id, *tracks]) == 2
    assert f"has {persons} persons" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_find_clip(synthetic_dataset_dir):
    clip_id, _ = _first_clip(synthetic_dataset_dir)
    assert find_clip(synthetic_dataset_dir, clip_id)["clip_id"] == clip_id
    with pytest.raises(KeyError, match="not in"):
        find_clip(synthetic_dataset_dir, "missing")
