"""PSNR between generated videos and their references, per frame, as the MIT benchmark computes it."""

import datasets
import evaluate

from benchmark.video_metrics import mean_over_videos

_DESCRIPTION = """
Peak signal-to-noise ratio per frame, 10 log10(R^2 / MSE) over all pixels and RGB channels, with an explicit
data range R (255 for decoded videos: frames are cast to float before subtracting, so there is no uint8
overflow). A video's value is the mean over its frames, clamped per frame at max_db (identical frames have an
infinite PSNR); the result is the mean over videos. Per-frame values equal scikit-image's
peak_signal_noise_ratio.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): paths of the generated videos.
    references (`list` of `str`): paths of the reference videos, same frame count and size.
    data_range (`float`, optional): R; default 255 (decoded uint8 frames).
    max_db (`float`, optional): per-frame clamp, default 100 dB; None keeps inf.
    truncate (`bool`): compare the common prefix when frame counts differ (default: error).
    size (`list` of 2 `int`, optional): [height, width] to compare at: both videos are scaled to cover it and
        centre-cropped (the MIT benchmark's evaluation size, e.g. [384, 640]); default: sizes must match.
    device (`str`, optional): torch device; default cuda when available.
Returns:
    psnr (`float`): mean over videos of the per-video mean PSNR in dB.
    psnr_per_video (`list` of `float`), num_videos (`int`), num_frames (`int`): frames scored in total.
Examples:
    >>> psnr = evaluate.load(benchmark.metrics.path("psnr"))
    >>> psnr.compute(predictions=["generated.mp4"], references=["reference.mp4"])["psnr"]  # doctest: +SKIP
"""

_CITATION = """
@article{hore2010image,
  title={Image quality metrics: PSNR vs. SSIM},
  author={Hor{\\'e}, Alain and Ziou, Djemel},
  journal={ICPR},
  year={2010}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Psnr(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(
        self,
        predictions,
        references,
        data_range=None,
        max_db=100.0,
        truncate=False,
        size=None,
        device=None,
    ):
        return mean_over_videos(
            "psnr",
            predictions,
            references,
            max_value=max_db,
            data_range=data_range,
            truncate=truncate,
            size=tuple(size) if size is not None else None,
            device=device,
        )
