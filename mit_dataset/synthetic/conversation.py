"""Turn-taking schedules: who speaks in which frame.

A schedule is a ``(P, F)`` boolean array at the video frame rate. It is built from the conversation
patterns the MIT paper describes: turns handed from one speaker to the next, short pauses between
turns, over-talking (the next speaker starts before the current one stops), longer silences, rapid
switches, and short listener back-channels ("mm-hm"). Two styles are defined:

* ``"talk"``: calm talk-show turn-taking (train and test-easy clips);
* ``"heated"``: short turns, frequent over-talking and rapid switches (test-challenging clips).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConversationStyle:
    name: str
    turn_mean_s: float  # mean turn length
    turn_min_s: float
    p_overlap: float  # next turn starts before the current one ends
    p_pause: float  # a longer silence between turns
    pause_s: tuple[float, float]
    gap_s: tuple[float, float]  # ordinary hand-over gap
    overlap_s: tuple[float, float]
    backchannel_per_s: float  # per listener
    backchannel_s: tuple[float, float]


STYLES: dict[str, ConversationStyle] = {
    "talk": ConversationStyle(
        name="talk",
        turn_mean_s=1.6,
        turn_min_s=0.6,
        p_overlap=0.15,
        p_pause=0.25,
        pause_s=(0.4, 0.9),
        gap_s=(0.08, 0.25),
        overlap_s=(0.15, 0.45),
        backchannel_per_s=0.08,
        backchannel_s=(0.2, 0.4),
    ),
    "heated": ConversationStyle(
        name="heated",
        turn_mean_s=0.75,
        turn_min_s=0.3,
        p_overlap=0.5,
        p_pause=0.05,
        pause_s=(0.3, 0.6),
        gap_s=(0.0, 0.12),
        overlap_s=(0.2, 0.7),
        backchannel_per_s=0.2,
        backchannel_s=(0.15, 0.35),
    ),
}


def make_schedule(
    num_speakers: int,
    num_frames: int,
    style: str | ConversationStyle,
    rng: np.random.Generator,
    fps: float = 25,
) -> np.ndarray:
    """``(num_speakers, num_frames)`` bool speaking schedule drawn from ``style`` (deterministic given ``rng``).

    Every clip has at least one turn; the conversation may already be under way at frame 0.
    """
    if num_speakers < 1 or num_frames < 1:
        raise ValueError(f"need >= 1 speaker and >= 1 frame, got {num_speakers} and {num_frames}")
    if isinstance(style, str):
        if style not in STYLES:
            raise ValueError(f"unknown conversation style {style!r}, expected one of {sorted(STYLES)}")
        style = STYLES[style]
    active = np.zeros((num_speakers, num_frames), dtype=bool)

    def frames(seconds: float) -> int:
        return round(seconds * fps)

    # Start somewhere inside a turn or a short silence, so clips do not all begin the same way.
    t = -frames(rng.uniform(0.0, style.turn_mean_s)) + frames(rng.uniform(0.0, 0.3))
    speaker = int(rng.integers(num_speakers))
    previous = speaker
    while t < num_frames:
        length = max(frames(style.turn_min_s), frames(rng.gamma(2.0, style.turn_mean_s / 2.0)))
        active[speaker, max(t, 0) : max(t + length, 0)] = True
        draw = rng.uniform()
        if draw < style.p_overlap:
            gap = -frames(rng.uniform(*style.overlap_s))
            gap = max(gap, -length + 1)
        elif draw < style.p_overlap + style.p_pause:
            gap = frames(rng.uniform(*style.pause_s))
        else:
            gap = frames(rng.uniform(*style.gap_s))
        t = t + length + gap
        if num_speakers > 1:
            # Usually answer the previous speaker; otherwise anyone else.
            others = [p for p in range(num_speakers) if p != speaker]
            if previous != speaker and previous in others and rng.uniform() < 0.5:
                nxt = previous
            else:
                nxt = int(rng.choice(others))
            previous, speaker = speaker, nxt

    # Listener back-channels: short utterances while somebody else holds the turn.
    duration_s = num_frames / fps
    for p in range(num_speakers):
        for _ in range(int(rng.poisson(style.backchannel_per_s * duration_s))):
            start = int(rng.integers(num_frames))
            length = max(2, frames(rng.uniform(*style.backchannel_s)))
            others_speaking = (
                np.delete(active, p, axis=0)[:, start : start + length].any() if num_speakers > 1 else True
            )
            if others_speaking:
                active[p, start : start + length] = True

    if not active.any():  # a clip that falls entirely into a pause: give it one turn
        start = int(rng.integers(max(1, num_frames // 2)))
        active[int(rng.integers(num_speakers)), start : start + max(frames(style.turn_min_s), 1)] = True
    return active


def current_speaker(active: np.ndarray) -> np.ndarray:
    """``(F,)`` index of the person holding the floor in each frame (-1 before anybody spoke).

    The floor belongs to whoever started speaking most recently among those speaking; in silences it
    stays with the last speaker.
    """
    num_speakers, num_frames = active.shape
    onset = np.full(num_speakers, -1)
    floor = np.full(num_frames, -1)
    holder = -1
    for f in range(num_frames):
        starting = active[:, f] & ~(active[:, f - 1] if f > 0 else np.zeros(num_speakers, bool))
        onset[starting] = f
        speaking = np.flatnonzero(active[:, f])
        if speaking.size:
            holder = int(speaking[np.argmax(onset[speaking])])
        floor[f] = holder
    return floor
