"""VBench-style subject / background consistency of generated videos with a local image feature model."""

import datasets
import evaluate
import numpy as np

from benchmark.consistency import FrameFeatureExtractor, video_consistency

_DESCRIPTION = """
Temporal consistency as VBench defines it: with per-frame features f_t from an image model, a video scores the
mean over frames t >= 1 of (max(0, cos(f_t, f_{t-1})) + max(0, cos(f_t, f_0))) / 2; the result is the mean
over videos. With DINO ViT-B/16 features this is VBench's subject consistency, with CLIP ViT-B/32 image
features its background consistency. The model is a local transformers folder (model_path); frames are
preprocessed by that folder's image processor.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): paths of the generated videos.
    model_path (`str`): local transformers folder of the feature model (e.g. a saved facebook/dino-vitb16 or
        openai/clip-vit-base-patch32).
    frame_stride (`int`): score every n-th frame, default 1.
    batch_size (`int`): frames per forward pass, default 16.
    device (`str`, optional): torch device, default cpu.
Returns:
    consistency (`float`), consistency_per_video (`list` of `float`), model (`str`), num_videos (`int`).
Examples:
    >>> metric = evaluate.load(benchmark.metrics.path("vbench_consistency"))
    >>> metric.compute(predictions=["gen.mp4"], model_path="models/dino-vitb16")["consistency"]  # doctest: +SKIP
"""

_CITATION = """
@inproceedings{huang2024vbench,
  title={VBench: Comprehensive Benchmark Suite for Video Generative Models},
  author={Huang, Ziqi and He, Yinan and Yu, Jiashuo and Zhang, Fan and Si, Chenyang and Jiang, Yuming and
          Zhang, Yuanhan and Wu, Tianxing and Jin, Qingyang and Chanpaisit, Nattapol and Wang, Yaohui and
          Chen, Xinyuan and Wang, Limin and Lin, Dahua and Qiao, Yu and Liu, Ziwei},
  booktitle={CVPR},
  year={2024}
}
"""

_EXTRACTORS = {}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class VbenchConsistency(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
        )

    def _compute(self, predictions, model_path=None, frame_stride=1, batch_size=16, device=None):
        if model_path is None:
            raise ValueError("model_path is required: a local transformers folder of the feature model")
        key = (str(model_path), device)
        if key not in _EXTRACTORS:
            _EXTRACTORS[key] = FrameFeatureExtractor(model_path, device=device)
        extractor = _EXTRACTORS[key]
        per_video = [video_consistency(v, extractor, frame_stride, batch_size) for v in predictions]
        return {
            "consistency": float(np.mean(per_video)) if per_video else float("nan"),
            "consistency_per_video": per_video,
            "model": extractor.name,
            "num_videos": len(per_video),
        }
