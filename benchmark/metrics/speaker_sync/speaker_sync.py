"""Speaker sync: does each person's mouth move when that person speaks, and stay still when they listen?"""

import datasets
import evaluate
import numpy as np

from benchmark.speaker_sync import score_video

_DESCRIPTION = """
A per-speaker audio-visual interaction score that needs no pretrained weights. For each person, the motion
energy of the mouth region (rows 0.5-0.85 and columns 0.25-0.75 of the face box) is the mean absolute luma
difference between consecutive frames inside it, smoothed over 5 frames. speaker_sync is the Pearson correlation over time between that
energy and the person's speaking score (> 0 speaking), averaged over the persons who both speak and listen in
the clip (others are left out), then over videos. false_talking_rate is the fraction of listening frames (score < 0)
whose energy exceeds the 25th percentile of the same video's speaking frames, averaged over videos. Higher
speaker_sync and lower false_talking_rate are better.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): paths of the generated videos.
    face_boxes (`list`): per video, per person, per frame [x1, y1, x2, y2] boxes, shape (P, F, 4).
    speaking_scores (`list`): per video, per person, per frame speaking score in [-1, 1], shape (P, F).
    annotation_size (`tuple`, optional): (width, height) of the pixel frame the boxes are given in; boxes
        are mapped to each video as its frames were (scale to cover, centre crop). Default: the video's pixels.
    smooth_frames (`int`): moving-average window of the energy, default 5.
    threshold_quantile (`float`): quantile of speaking-frame energy used as the talking threshold, default 0.25.
    device (`str`, optional): torch device, default cpu.
    truncate (`bool`): score the common prefix when a video's decoded frame count differs from its
        annotations' F (default: error, as psnr/ssim).
Returns:
    speaker_sync (`float`), false_talking_rate (`float`): means over videos where defined;
    speaker_sync_per_video, false_talking_rate_per_video, per_person (`list`); num_videos,
    num_persons_scored (`int`).
Examples:
    >>> sync = evaluate.load(benchmark.metrics.path("speaker_sync"))
    >>> sync.compute(predictions=["gen.mp4"], face_boxes=[boxes], speaking_scores=[scores])  # doctest: +SKIP
"""

_CITATION = """
@misc{mittalk_speaker_sync,
  title={Speaker sync: a per-speaker audio-visual interaction score for multi-human talking video},
  author={MIT-Talk contributors},
  year={2025}
}
"""


_ARRAY_INPUTS = ("face_boxes", "speaking_scores")


def _as_lists(value):
    return np.asarray(value, dtype=np.float64).tolist()


def _nanmean(values):
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SpeakerSync(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "face_boxes": datasets.List(datasets.List(datasets.List(datasets.Value("float32")))),
                    "speaking_scores": datasets.List(datasets.List(datasets.Value("float32"))),
                }
            ),
        )

    # Arrow takes nested Python lists, not (P, F, 4) numpy arrays: convert arrays before they are cached.
    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of videos with their face boxes and speaking scores (lists or numpy arrays)."""
        for key in _ARRAY_INPUTS:
            if kwargs.get(key) is not None:
                kwargs[key] = [_as_lists(value) for value in kwargs[key]]
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one video with its face boxes and speaking scores (lists or numpy arrays)."""
        for key in _ARRAY_INPUTS:
            if kwargs.get(key) is not None:
                kwargs[key] = _as_lists(kwargs[key])
        return super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(
        self,
        predictions,
        face_boxes,
        speaking_scores,
        annotation_size=None,
        smooth_frames=5,
        threshold_quantile=0.25,
        device=None,
        truncate=False,
    ):
        results = []
        for video, boxes, scores in zip(predictions, face_boxes, speaking_scores):
            results.append(
                score_video(
                    video,
                    boxes,
                    scores,
                    annotation_size=annotation_size,
                    smooth_frames=smooth_frames,
                    threshold_quantile=threshold_quantile,
                    device=device,
                    truncate=truncate,
                )
            )
        per_video = [r["speaker_sync"] for r in results]
        false_talking = [r["false_talking_rate"] for r in results]
        return {
            "speaker_sync": _nanmean(per_video),
            "false_talking_rate": _nanmean(false_talking),
            "speaker_sync_per_video": per_video,
            "false_talking_rate_per_video": false_talking,
            "per_person": [r["per_person"] for r in results],
            "num_videos": len(results),
            "num_persons_scored": int(sum(np.isfinite(r["per_person"]).sum() for r in results)),
        }
