"""The end-to-end demo behind ``mit-talking demo``: every part of the project on a tiny synthetic MIT, on a CPU.

1. synthesize a small MIT dataset and write it in the script-free Hub layout (``mit_dataset.hub``);
2. load it back with ``datasets.load_dataset``;
3. show one test clip (poses, boxes and speaking scores drawn over it: ``mit_dataset.show``);
4. load the CovOG that ships with the package (``covog_diffusers.pretrained``: trained on a synthetic MIT by
   ``training/recipes/covog-tiny-synthetic/train.sh``) and ``covog train`` it for a few steps on the new train
   split, printing the loss (the fine-tuned copy goes to ``train/``; the shipped weights generate);
5. ``mit-bench predict``: generate every test clip at the model's defaults (128x72, 10 steps; resumable, atomic
   mp4s);
6. ``mit-bench evaluate``: validate and score the submission, print the Table 2 layout, write the results
   JSON and a model card.

Sizes are tiny (128x72 clips of 16 frames, the shipped model's own size, which is also the evaluation size) so
that the demo runs in a minute or two on 2 cores.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmark.protocol import EvaluationSize

DEMO_CLIPS = 8  # 4 train + 4 test: one test clip per (difficulty, subset)
DEMO_SIZE = (72, 128)  # clip height, width
DEMO_SECONDS = 0.64  # 16 frames at 25 fps: one FVD window, one generation window
#: The protocol's evaluation size for these clips: their own size, at which the shipped model generates.
DEMO_EVALUATION_SIZE = EvaluationSize(height=DEMO_SIZE[0], width=DEMO_SIZE[1])
DEMO_TRAIN_STEPS = 3  # covog train steps from the shipped weights (stage 1, batch 2)


def run_demo(out_dir: str | Path = "outputs/demo", seed: int = 0) -> dict:
    """Run the demo into ``out_dir``; returns the paths it wrote and the results."""
    import datasets

    from benchmark.model_card import write_model_card
    from benchmark.predict import predict_submission
    from benchmark.scoring import evaluate_submission
    from covog_diffusers.pretrained import load_default_pipeline
    from mit_dataset.hub import write_synthetic_dataset

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def step(number: int, text: str) -> None:
        print(f"\n[{number}/6 {time.perf_counter() - start:5.1f}s] {text}", flush=True)

    step(1, f"synthesizing {DEMO_CLIPS} MIT clips (seed {seed})")
    dataset_dir = write_synthetic_dataset(
        out_dir / "mit-talking",
        num_clips=DEMO_CLIPS,
        seed=seed,
        width=DEMO_SIZE[1],
        height=DEMO_SIZE[0],
        seconds=DEMO_SECONDS,
        overwrite=True,
        progress=False,
    )
    print(f"dataset folder: {dataset_dir}")

    step(2, "loading it with datasets.load_dataset")
    dataset = datasets.load_dataset(str(dataset_dir))
    print(dataset)
    test = dataset["test"]

    clip_id = test[0]["clip_id"]
    step(3, f"showing test clip {clip_id}")
    shown = _show(dataset_dir, clip_id, out_dir / "show")

    step(4, f"loading the shipped CovOG and training it for {DEMO_TRAIN_STEPS} steps (covog train)")
    pipeline = load_default_pipeline()
    pipeline.set_progress_bar_config(disable=True)
    trained = _train(pipeline, dataset_dir, out_dir / "train", seed)

    step(5, f"generating the {len(test)} test clips (mit-bench predict)")
    predictions = out_dir / "predictions"
    summary = predict_submission(
        pipeline,
        str(dataset_dir),
        predictions,
        seed=seed,
        evaluation_size=DEMO_EVALUATION_SIZE,
        progress=True,  # the demo's longest step (minutes on a busy 2-core machine): show it moving
    )
    print(f"{len(summary.written)} generated, {len(summary.skipped)} already there: {predictions}")

    step(6, "scoring the submission (mit-bench evaluate)")
    results, report = evaluate_submission(
        str(dataset_dir),
        predictions,
        model_name="covog-tiny-synthetic (shipped)",
        progress=False,
        evaluation_size=DEMO_EVALUATION_SIZE,
    )
    if report.problems:
        print(report.format())
    results_path = results.write_json(out_dir / "results.json")
    card_path = write_model_card(results, out_dir / "model_card" / "README.md", allow_partial=True)
    print()
    print(results.markdown())
    print(f"\nresults: {results_path}\nmodel card: {card_path}")
    print(f"demo finished in {time.perf_counter() - start:.1f}s")
    return {
        "dataset": dataset_dir,
        "show": shown,
        "train": trained,
        "predictions": predictions,
        "results": results_path,
        "model_card": card_path,
        "table": results.table,
        "complete": results.complete,
    }


def _show(dataset_dir: Path, clip_id: str, out: Path):
    from mit_dataset.show import show_clip

    overlay, plot = show_clip(str(dataset_dir), clip_id, out)
    print(f"overlay video: {overlay}\nspeaking-score plot: {plot}")
    return overlay, plot


def _train(pipeline, dataset_dir: Path, out: Path, seed: int) -> dict:
    """``covog train`` (stage 1) from the shipped weights on the demo's train split; prints the loss."""
    from training.config import config_from_dict
    from training.loop import train

    defaults = pipeline.generation_defaults
    config = config_from_dict(
        {
            "stage": 1,
            "model": {"pretrained": str(pipeline.name_or_path)},
            "data": {
                "dataset": str(dataset_dir),
                "height": defaults["height"],
                "width": defaults["width"],
                "num_workers": 0,
            },
            "training": {"max_steps": DEMO_TRAIN_STEPS, "batch_size": 2, "seed": seed},
            "output": {
                "dir": str(out),
                "checkpointing_steps": DEMO_TRAIN_STEPS,
                "validation_frames": 4,
                "validation_inference_steps": 2,
                "logging_steps": 1,
                "report_to": "none",
            },
        },
        source="mit-talking demo",
    )
    result = train(config, command="covog train (mit-talking demo)")
    print(f"covog train: {result['steps']} steps, loss {result['final_loss']:.4f}, wrote {result['saved']}")
    return result
