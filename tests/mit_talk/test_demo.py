"""``mit-talking demo``: every part end to end on a tiny synthetic MIT (the app layer, ``mit_talk.demo``)."""

from pathlib import Path

from mit_talk.demo import run_demo


def test_demo_runs_end_to_end(tmp_path, capsys):
    done = run_demo(tmp_path / "demo", seed=0)
    captured = capsys.readouterr()
    out = captured.out
    assert "predict: 100%" in captured.err and "4/4" in captured.err  # the longest step shows its progress
    assert done["complete"] and "| all | all | 4 |" in out and "demo finished" in out
    assert done["results"].is_file() and done["model_card"].is_file()
    assert len(list(done["predictions"].glob("*.mp4"))) == 4
    assert done["train"]["steps"] == 3 and "covog train: 3 steps, loss" in out  # from the shipped weights
    assert (Path(done["train"]["saved"]) / "model_index.json").is_file()
