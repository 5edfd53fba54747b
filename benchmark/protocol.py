"""The MIT benchmark's evaluation size: the one frame size at which predictions and ground truth are compared.

The paper generates and scores at 640x384 (width x height) while MIT clips are 1920x1080. The protocol makes
that explicit: every video is brought to the evaluation size (default :data:`PAPER_EVALUATION_SIZE`) with the
project's one geometry, :meth:`mit_dataset.geometry.FrameTransform.cover` (scale to cover, centre crop; the
transform training and generation use), before any metric sees it, and so are the annotations the metrics read
(speaker sync's face boxes, through the same transform). A prediction may be given at the evaluation size
(what ``mit-bench predict`` writes) or at its clip's own size (it is then transformed like the ground truth).
Results record the size (``evaluation_size`` in the results JSON and the model card): values scored at
different sizes are not comparable and are never ranked together.

The same size is spelled ``WIDTHxHEIGHT`` on every command line (``--eval-size 640x384``), like the frame
sizes in validation messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mit_dataset.geometry import FrameTransform

#: The smallest side accepted: the SSIM window (11 pixels) must fit.
MIN_SIDE = 11

_SIZE_TEXT = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


@dataclass(frozen=True)
class EvaluationSize:
    """Frame size, in pixels, at which the benchmark compares videos."""

    height: int
    width: int

    def __post_init__(self):
        for name in ("height", "width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < MIN_SIDE:
                raise ValueError(
                    f"evaluation size: {name} must be an integer >= {MIN_SIDE} pixels, got {value!r}"
                )

    @classmethod
    def parse(cls, text: str) -> EvaluationSize:
        """``"640x384"`` (width x height) -> ``EvaluationSize(height=384, width=640)``."""
        match = _SIZE_TEXT.match(str(text))
        if not match:
            raise ValueError(f"evaluation size {text!r}: expected WIDTHxHEIGHT in pixels, e.g. 640x384")
        return cls(height=int(match[2]), width=int(match[1]))

    @classmethod
    def from_dict(cls, data: dict) -> EvaluationSize:
        """From the ``{"width": W, "height": H}`` of a results file; ``ValueError`` naming what is wrong."""
        if not isinstance(data, dict) or set(data) != {"width", "height"}:
            raise ValueError(f"evaluation size must be an object with 'width' and 'height', got {data!r}")
        return cls(height=data["height"], width=data["width"])

    def to_dict(self) -> dict[str, int]:
        return {"width": self.width, "height": self.height}

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)``, the order of ``FrameTransform`` and diffusers' ``height, width`` arguments."""
        return self.height, self.width

    def transform(self, height: int, width: int) -> FrameTransform:
        """The cover transform from a ``height x width`` frame to this size."""
        return FrameTransform.cover(height, width, self.height, self.width)

    def accepts(self, height: int, width: int, clip_height: int, clip_width: int) -> bool:
        """Whether a prediction of ``height x width`` may be scored for a clip of ``clip_height x clip_width``:
        at this size, or at the clip's own size."""
        return (height, width) in ((self.height, self.width), (clip_height, clip_width))


#: The paper's size: generation and scoring at 640x384.
PAPER_EVALUATION_SIZE = EvaluationSize(height=384, width=640)
