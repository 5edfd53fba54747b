"""Frechet Video Distance between a set of generated videos and a set of real videos (I3D, Kinetics-400)."""

import datasets
import evaluate

from benchmark.fvd import CLIP_LEN, extract_video_features, fvd_from_features, load_detector
from benchmark.video_loading import check_pair

_DESCRIPTION = """
FVD: every video is cut into non-overlapping 16-frame clips; each clip is resized to 224x224 (bilinear, whole
frame, no crop), scaled to [-1, 1] and embedded by an I3D network trained on Kinetics-400; the result is the
Frechet distance ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^1/2) between Gaussians fitted to the real and
generated features, in float64. The detector is a local file (detector_path or the MIT_BENCH_I3D environment
variable): the StyleGAN-V TorchScript i3d_torchscript.pt (reference; 400-d pre-softmax features) or the
InceptionI3d state dict i3d_pretrained_400.pt (DisCo / VideoGPT convention; 400-d logits, or the 1024-d pooled
features with features="pool"). FVD depends strongly on the number of clips N: the result carries N and the
detector; compare values only at equal N with the same detector.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): paths of the generated videos.
    references (`list` of `str`): paths of the real videos.
    detector_path (`str`, optional): I3D file; default $MIT_BENCH_I3D.
    trust_detector (`bool`, default False): run a TorchScript detector whose sha256 is not a verified
        detector's (TorchScript is code). State-dict detectors never need it.
    features (`str`): "logits" (default) or "pool" (InceptionI3d state dict only).
    clip_len (`int`): frames per clip, default 16.
    max_clips_per_video (`int`, optional): default all non-overlapping clips.
    batch_size (`int`): clips per forward pass, default 8.
    device (`str`, optional): torch device; default cuda when available.
    paired (`bool`): predictions[i] is generated for references[i] (default True, the MIT benchmark): each
        pair must have the same decoded frame count, as psnr/ssim require. False for two unrelated sets.
    truncate (`bool`): with paired videos of different lengths, use the common prefix of each pair.
Returns:
    fvd (`float`), num_real_clips (`int`), num_generated_clips (`int`), feature_dim (`int`), clip_len (`int`),
    detector (`dict`): name, kind, features and sha256 prefix of the detector file.
Examples:
    >>> fvd = evaluate.load(benchmark.metrics.path("fvd"))
    >>> fvd.compute(predictions=gen_paths, references=real_paths, detector_path="i3d_torchscript.pt")  # doctest: +SKIP
"""

_CITATION = """
@article{unterthiner2018towards,
  title={Towards Accurate Generative Models of Video: A New Metric \\& Challenges},
  author={Unterthiner, Thomas and van Steenkiste, Sjoerd and Kurach, Karol and Marinier, Raphael and
          Michalski, Marcin and Gelly, Sylvain},
  journal={arXiv preprint arXiv:1812.01717},
  year={2018}
}
"""

_DETECTORS = {}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Fvd(evaluate.Metric):
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
        detector_path=None,
        features="logits",
        clip_len=CLIP_LEN,
        max_clips_per_video=None,
        batch_size=8,
        device=None,
        trust_detector=False,
        paired=True,
        truncate=False,
    ):
        if paired and len(predictions) != len(references):
            raise ValueError(
                f"paired=True needs one reference per prediction, got {len(predictions)} predictions and "
                f"{len(references)} references (pass paired=False for two unrelated sets)"
            )
        # Frame counts are checked before the detector loads: a mismatch fails fast.
        lengths = [check_pair(p, r, truncate) for p, r in zip(predictions, references)] if paired else None
        key = (detector_path, features, device, trust_detector)
        if key not in _DETECTORS:
            _DETECTORS[key] = load_detector(
                detector_path, device=device, features=features, trust_detector=trust_detector
            )
        detector = _DETECTORS[key]
        options = {"clip_len": clip_len, "max_clips_per_video": max_clips_per_video, "batch_size": batch_size}
        real = extract_video_features(references, detector, frame_counts=lengths, **options)
        generated = extract_video_features(predictions, detector, frame_counts=lengths, **options)
        return {**fvd_from_features(real, generated, detector), "clip_len": clip_len}
