"""The dataset card (README.md) of an MIT dataset folder.

The card's YAML header is what makes the folder load without a loading script: ``configs`` maps each
config (``all``, ``two_human``, ``multi_human``) and split to its Parquet shards, and ``dataset_info``
declares the typed features (:data:`~mit_dataset.features.MIT_FEATURES`) and the split sizes, which
``datasets`` checks when it prepares the folder.
"""

from __future__ import annotations

from collections.abc import Mapping

from datasets import Array2D, Array3D, List, Value
from huggingface_hub import DatasetCard, DatasetCardData

from .features import CONFIG_NAMES, DEFAULT_CONFIG, MIT_FEATURES, SPLITS, SUBSETS

#: Config name -> the subsets it holds.
CONFIG_SUBSETS = {"all": SUBSETS, **{subset: (subset,) for subset in SUBSETS}}

#: One line per column of the schema, shown in the card's fields table.
FIELD_DESCRIPTIONS = {
    "clip_id": "Clip name, `{source}_{video}_{start:06d}to{end:06d}` for talk-show clips.",
    "source": "Show the clip comes from (`TonightShow`, `LateLateShow`; synthetic clips: `Synthetic...`).",
    "subset": "`two_human` (TonightShow, 2 speakers) or `multi_human` (LateLateShow, 2-4 speakers).",
    "split": "`train` or `test`.",
    "difficulty": 'Test clips: `easy` (identities seen in training) or `challenging` (unseen); `""` for train.',
    "num_speakers": "Number of persons P (2-4) in `persons`.",
    "fps": "Frame rate (25).",
    "num_frames": "Number of frames F of the clip (counted by decoding the video).",
    "width": "Frame width in pixels.",
    "height": "Frame height in pixels.",
    "video": "The clip as H.264 mp4 (bytes embedded in the Parquet files).",
    "audio": "Mono audio at 16 kHz (FLAC bytes embedded).",
    "persons.person_id": "Person id, unique within the clip.",
    "persons.identity": "Identity label, shared by clips of the same person (defines the easy/challenging split).",
    "persons.keypoints": "(F, 59, 3) float32: x, y in pixels, score in [0, 1]; the MIT subset of COCO-WholeBody-133.",
    "persons.keypoints_133": "(F, 133, 3) float32 raw COCO-WholeBody points where the source gave them, else (0, 133, 3).",
    "persons.boxes": "(F, 4) float32 person box x1, y1, x2, y2 in pixels (clipped to the frame).",
    "persons.face_boxes": "(F, 4) float32 face box x1, y1, x2, y2 in pixels (clipped to the frame).",
    "persons.speaking_score": "(F,) float32 model input `clip(raw / 3, -1, 1)`: ~1 speaking, ~-1 silent.",
    "persons.speaking_score_raw": "(F,) float32 raw TalkNet-style logit (about -3..3).",
    "persons.mask_rle": "(F,) COCO compressed RLE `counts` of the person's mask at (height, width).",
}

_DESCRIPTION = """\
**MIT** (Multi-human Interactive Talking) is a dataset for multi-human talking video generation: talk-show
clips with 2 to 4 people, with per-person whole-body poses (59 keypoints, COCO-WholeBody subset), boxes,
face boxes, masks and a per-frame speaking score, plus the clip's 16 kHz audio. One row is one clip; the
`persons` column holds one struct per person with per-frame arrays.

This folder is script-free: the typed features are declared in this card's YAML header and the mp4 and audio
bytes are embedded in the Parquet files, so it loads with `datasets.load_dataset` (also `streaming=True`)
without any loading script or remote code."""

_CITATION = """\
```bibtex
@misc{mit_talking,
  title  = {TODO: citation of the MIT dataset paper},
  author = {TODO},
  year   = {TODO},
}
```"""

_LICENSE = """\
TODO: license not decided yet (`license: other` in the YAML header). Talk-show footage belongs to its
broadcasters; the annotations' license is to be set by the dataset's publishers. Synthetic folders made by
`mit-talking synth` contain only generated data."""


def card_configs(shards: Mapping[str, Mapping[str, list[str]]]) -> list[dict]:
    """``configs`` entries from ``shards[subset][split] = [relative parquet paths]``; configs and splits
    without any clip are left out (``datasets`` rejects data_files patterns that match nothing)."""
    configs = []
    for name in CONFIG_NAMES:
        data_files = []
        for split in SPLITS:
            paths = [
                path for subset in CONFIG_SUBSETS[name] for path in shards.get(subset, {}).get(split, [])
            ]
            if paths:
                data_files.append({"split": split, "path": paths})
        if data_files:
            entry = {"config_name": name, "data_files": data_files}
            if name == DEFAULT_CONFIG:
                entry["default"] = True
            configs.append(entry)
    return configs


def _config_counts(
    counts: Mapping[str, Mapping[str, tuple[int, int]]], name: str
) -> dict[str, tuple[int, int]]:
    totals = {}
    for split in SPLITS:
        rows = [counts.get(subset, {}).get(split) for subset in CONFIG_SUBSETS[name]]
        rows = [row for row in rows if row]
        if rows:
            totals[split] = (sum(r[0] for r in rows), sum(r[1] for r in rows))
    return totals


def build_dataset_card(
    shards: Mapping[str, Mapping[str, list[str]]],
    counts: Mapping[str, Mapping[str, tuple[int, int]]],
    pretty_name: str = "MIT: Multi-human Interactive Talking",
) -> DatasetCard:
    """The card for a folder whose Parquet shards are ``shards[subset][split]`` (relative paths) holding
    ``counts[subset][split] = (num_examples, num_bytes)`` rows."""
    configs = card_configs(shards)
    dataset_info = []
    for config in configs:
        totals = _config_counts(counts, config["config_name"])
        dataset_info.append(
            {
                "config_name": config["config_name"],
                "features": MIT_FEATURES._to_yaml_list(),  # a fresh copy: no YAML anchors
                "splits": [
                    {"name": split, "num_bytes": num_bytes, "num_examples": num_examples}
                    for split, (num_examples, num_bytes) in totals.items()
                ],
                "download_size": sum(num_bytes for _, num_bytes in totals.values()),
                "dataset_size": sum(num_bytes for _, num_bytes in totals.values()),
            }
        )
    data = DatasetCardData(
        pretty_name=pretty_name,
        license="other",
        task_categories=["image-to-video"],
        tags=["video", "audio", "talking-head", "multi-human", "pose", "keypoints"],
        configs=configs,
        dataset_info=dataset_info,
    )
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{_card_body(configs, counts, pretty_name)}")


def _card_body(configs: list[dict], counts, pretty_name: str) -> str:
    lines = [f"# {pretty_name}", "", _DESCRIPTION, "", "## Configs and splits", ""]
    lines += ["| config | holds | " + " | ".join(SPLITS) + " |", "|---|---|" + "---|" * len(SPLITS)]
    for config in configs:
        name = config["config_name"]
        totals = _config_counts(counts, name)
        holds = " + ".join(CONFIG_SUBSETS[name]) + (" (default)" if config.get("default") else "")
        cells = [str(totals.get(split, (0, 0))[0]) for split in SPLITS]
        lines.append(f"| `{name}` | {holds} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Cells are numbers of clips. Test clips carry `difficulty` (`easy` or `challenging`); results are",
        "reported separately for `two_human`, `multi_human` and `all`.",
        "",
        "## Fields",
        "",
        "| field | type | description |",
        "|---|---|---|",
    ]
    for name, description in FIELD_DESCRIPTIONS.items():
        lines.append(f"| `{name}` | {_type_name(name)} | {description} |")
    lines += [
        "",
        "## How to load",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        'ds = load_dataset("PATH_OR_HUB_ID")                     # config "all": train and test',
        'two = load_dataset("PATH_OR_HUB_ID", "two_human", split="test")',
        'stream = load_dataset("PATH_OR_HUB_ID", split="train", streaming=True)',
        'row = ds["train"][0]',
        'video = row["video"]        # torchcodec VideoDecoder: video[i] is a (3, H, W) uint8 frame',
        'audio = row["audio"]        # torchcodec AudioDecoder: audio.get_all_samples().data is (1, S)',
        'person = row["persons"][0]  # dict of per-frame arrays: keypoints (F, 59, 3), boxes (F, 4), ...',
        "```",
        "",
        "Decoding video and audio needs `torchcodec` and FFmpeg's shared libraries.",
        "",
        "## Citation",
        "",
        _CITATION,
        "",
        "## License",
        "",
        _LICENSE,
        "",
    ]
    return "\n".join(lines)


def _type_name(field: str) -> str:
    top, _, sub = field.partition(".")
    feature = MIT_FEATURES[top]
    if sub:
        feature = feature.feature[sub]
    if isinstance(feature, Value):
        return feature.dtype
    if isinstance(feature, (Array2D, Array3D)):
        return f"{feature.dtype} array"
    if isinstance(feature, List):
        return f"list of {feature.feature.dtype}"
    return type(feature).__name__
