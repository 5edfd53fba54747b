"""``mit-talking demo``: every part end to end on a tiny synthetic MIT (the app layer, ``mit_talk.demo``)."""

from mit_talk.demo import run_demo


def test_demo_runs_end_to_end(tmp_path, capsys):
    done = run_demo(tmp_path / "demo", seed=0)
    out = capsys.readouterr().out
    assert done["complete"] and "| all | all | 4 |" in out and "demo finished" in out
    assert done["results"].is_file() and done["model_card"].is_file()
    assert len(list(done["predictions"].glob("*.mp4"))) == 4
