"""The end-to-end demo behind ``mit-talking demo``: every part of the project on a tiny synthetic MIT, on a CPU.

1. synthesize a small MIT dataset and write it in the script-free Hub layout (``mit_dataset.hub``);
2. load it back with ``datasets.load_dataset``;
3. show one test clip (poses, boxes and speaking scores drawn over it: ``mit_dataset.show``);
4. build a tiny random-initialised ``CovOGPipeline``;
5. ``mit-bench predict``: generate every test clip (resumable, atomic mp4s);
6. ``mit-bench evaluate``: validate and score the submission, print the Table 2 layout, write the results
   JSON and a model card.

The model is random, so its numbers only show that the whole path works; sizes are tiny (128x72 clips of
16 frames, generation at 64x32 with 2 denoising steps, evaluation at 128x64) so that the demo runs in a few
minutes on 2 cores.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmark.protocol import EvaluationSize

DEMO_CLIPS = 8  # 4 train + 4 test: one test clip per (difficulty, subset)
DEMO_SIZE = (72, 128)  # clip height, width
DEMO_SECONDS = 0.64  # 16 frames at 25 fps: one FVD window, one generation window
GENERATION_SIZE = (32, 64)  # height, width the tiny model generates at
#: The protocol's evaluation size for these clips: generation's shape (2:1), about the clips' own size.
DEMO_EVALUATION_SIZE = EvaluationSize(height=64, width=128)
DEMO_STEPS = 2


def run_demo(out_dir: str | Path = "outputs/demo", seed: int = 0) -> dict:
    """Run the demo into ``out_dir``; returns the paths it wrote and the results."""
    import datasets

    from benchmark.model_card import write_model_card
    from benchmark.predict import predict_submission
    from benchmark.scoring import evaluate_submission
    from covog_diffusers.tiny import create_tiny_pipeline
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

    step(4, "creating a tiny random-initialised CovOG pipeline")
    pipeline = create_tiny_pipeline(seed=seed)
    pipeline.set_progress_bar_config(disable=True)

    step(5, f"generating the {len(test)} test clips (mit-bench predict)")
    predictions = out_dir / "predictions"
    summary = predict_submission(
        pipeline,
        str(dataset_dir),
        predictions,
        num_inference_steps=DEMO_STEPS,
        guidance_scale=1.0,
        seed=seed,
        height=GENERATION_SIZE[0],
        width=GENERATION_SIZE[1],
        evaluation_size=DEMO_EVALUATION_SIZE,
    )
    print(f"{len(summary.written)} generated, {len(summary.skipped)} already there: {predictions}")

    step(6, "scoring the submission (mit-bench evaluate)")
    results, report = evaluate_submission(
        str(dataset_dir),
        predictions,
        model_name="covog-tiny (random)",
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
