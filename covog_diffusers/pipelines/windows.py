"""Long videos: overlapping windows whose first frames are fixed to the previous window's last frames.

A video of ``F`` frames is generated in windows of at most ``window_frames`` frames; consecutive windows share
``overlap_frames = k`` frames (the paper uses k = 6): window ``n + 1`` starts ``k`` frames before window ``n``
ends. Window ``n + 1``'s first ``k`` frames are *fixed* to window ``n``'s clean result:

* at every denoising step, before the DenoisingNet runs at timestep ``t``, the fixed frames' latents are replaced
  by the previous window's clean latents noised to ``t`` (``scheduler.add_noise(clean, eps, t)``, with ``eps`` this
  window's own initial noise for those frames), so they carry the same signal as the frames being denoised and the
  motion module propagates their appearance and motion into the new frames;
* after the last step they are set to the previous window's clean latents exactly, so the overlap decodes to the
  very same pixels and only the new frames are emitted.

Only one window's latents, pose maps, masks and audio features exist at a time (plus the ``k`` carried latents),
and decoding runs in chunks, so the model's peak memory does not grow with the video length.
"""

from __future__ import annotations


def plan_windows(num_frames: int, window_frames: int, overlap_frames: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` frame ranges; every window after the first has more than ``overlap_frames``
    frames and starts ``overlap_frames`` before the previous one ends. The last window may be shorter."""
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if window_frames <= 0:
        raise ValueError(f"window_frames must be positive, got {window_frames}")
    if not 0 <= overlap_frames < window_frames:
        raise ValueError(
            f"overlap_frames must lie in [0, window_frames={window_frames}), got {overlap_frames}"
        )
    windows = [(0, min(window_frames, num_frames))]
    while windows[-1][1] < num_frames:
        start = windows[-1][1] - overlap_frames
        windows.append((start, min(start + window_frames, num_frames)))
    return windows
