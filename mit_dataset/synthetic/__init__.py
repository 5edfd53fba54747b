"""Synthetic MIT clips that need no weights and no downloads (tests, the demo, training smoke runs).

2-4 articulated, clearly distinct people side by side on a talk-show set, 25 fps, with speech-driven
gestures, heads turning to the current speaker and mouths opening with their own synthetic voice;
the voices are mixed into the clip audio. Every field of :class:`~mit_dataset.clip.ClipRecord` has
exact ground truth. See :mod:`mit_dataset.synthetic.generator` for the split plan.
"""

from .generator import (
    SyntheticClipSpec,
    SyntheticScene,
    build_scene,
    generate_records,
    plan_clips,
    render_scene,
    write_clip,
)

__all__ = [
    "SyntheticClipSpec",
    "SyntheticScene",
    "build_scene",
    "generate_records",
    "plan_clips",
    "render_scene",
    "write_clip",
]
