"""SSIM between generated videos and their references, per frame, as the MIT benchmark computes it."""

import datasets
import evaluate

from benchmark.video_metrics import SSIM_CONVENTIONS, mean_over_videos

_DESCRIPTION = """
Structural similarity per frame with an explicit data range (255 for decoded videos). Two conventions:
"gaussian_rgb" (default, the reference): Gaussian window sigma 1.5 truncated at 3.5 sigma (11x11), population
covariance, K1 = 0.01, K2 = 0.03, per RGB channel then averaged, the 5-pixel border excluded; equal to
scikit-image structural_similarity(channel_axis=-1, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=R). "grayscale_7x7" (what many talking-head papers reported): luma
0.299 R + 0.587 G + 0.114 B, 7x7 uniform window, sample covariance; equal to scikit-image's default
structural_similarity on those grayscale frames. A video's value is the mean over frames; the result the mean
over videos. Values of the two conventions are not comparable.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): paths of the generated videos.
    references (`list` of `str`): paths of the reference videos, same frame count and size.
    convention (`str`): "gaussian_rgb" (default) or "grayscale_7x7".
    data_range (`float`, optional): default 255 (decoded uint8 frames).
    truncate (`bool`): compare the common prefix when frame counts differ (default: error).
    size (`list` of 2 `int`, optional): [height, width] to compare at: both videos are scaled to cover it and
        centre-cropped (the MIT benchmark's evaluation size, e.g. [384, 640]); default: sizes must match.
    device (`str`, optional): torch device; default cuda when available.
Returns:
    ssim (`float`): mean over videos of the per-video mean SSIM.
    ssim_per_video (`list` of `float`), convention (`str`), num_videos (`int`), num_frames (`int`).
Examples:
    >>> ssim = evaluate.load(benchmark.metrics.path("ssim"))
    >>> ssim.compute(predictions=["generated.mp4"], references=["reference.mp4"])["ssim"]  # doctest: +SKIP
"""

_CITATION = """
@article{wang2004image,
  title={Image quality assessment: from error visibility to structural similarity},
  author={Wang, Zhou and Bovik, Alan C and Sheikh, Hamid R and Simoncelli, Eero P},
  journal={IEEE Transactions on Image Processing},
  volume={13},
  number={4},
  pages={600--612},
  year={2004}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Ssim(evaluate.Metric):
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
        convention="gaussian_rgb",
        data_range=None,
        truncate=False,
        size=None,
        device=None,
    ):
        if convention not in SSIM_CONVENTIONS:
            raise ValueError(f"convention must be one of {SSIM_CONVENTIONS}, got {convention!r}")
        result = mean_over_videos(
            "ssim",
            predictions,
            references,
            data_range=data_range,
            ssim_convention=convention,
            truncate=truncate,
            size=tuple(size) if size is not None else None,
            device=device,
        )
        return {**result, "convention": convention}
