"""The automatic MIT collection pipeline: raw conversation videos -> annotated MIT clip folders.

``mit-talking annotate RAW_DIR --out CLIPS_DIR`` runs, per raw video (layout: :mod:`.layout`), nine stages,
each a module with one job whose result is cached per video (a rerun resumes):

====  ===========  ==================================================================  ==========================
#     stage        does                                                                 module
====  ===========  ==================================================================  ==========================
1     normalise    constant 25 fps H.264 + 16 kHz mono audio aligned to frame 0         :mod:`.normalize`
2     shots        camera cuts (PySceneDetect)                                          :mod:`.shots`
3     faces        face tracks: TalkNet ``tracks.pckl`` or built-in Haar + IoU tracker  :mod:`.faces`
4     speaking     speaking scores: TalkNet ``scores.pckl`` or VAD x mouth motion       :mod:`.speaking`
5     selection    2-4 co-occurring faces in one shot, official thresholds              :mod:`.selection`
6     persons      person boxes: YOLO labels or from the poses                          :mod:`.persons`
7     poses        Sapiens JSON (133 points; 59 kept)                                   :mod:`.poses`
8     align        face tracks and poses to persons through the person boxes           :mod:`.align`
9     write        frame-accurate cuts, official clip folders                           :mod:`.write`
====  ===========  ==================================================================  ==========================

Then ``splits.json`` (:mod:`.splits`: identities held out by video), ``annotate_report.json`` (:mod:`.report`)
and, with ``--export``, the Hub layout. Settings: :class:`AnnotateConfig` (official thresholds by default).
Videos that cannot be used are skipped with their reason (:mod:`.errors`); nothing is written for them.
"""

from .config import AnnotateConfig
from .errors import REASONS, SkipVideo
from .layout import RawVideo, find_raw_videos
from .pipeline import STAGES, annotate, annotate_example, annotate_video, raw_videos_dataset
from .report import AnnotateReport, VideoReport
from .splits import assign_splits, write_splits

__all__ = [
    "REASONS",
    "STAGES",
    "AnnotateConfig",
    "AnnotateReport",
    "RawVideo",
    "SkipVideo",
    "VideoReport",
    "annotate",
    "annotate_example",
    "annotate_video",
    "assign_splits",
    "find_raw_videos",
    "raw_videos_dataset",
    "write_splits",
]
