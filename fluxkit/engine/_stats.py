"""Per-stream statistics: a cheap accumulator on the publish path and the frozen record `statistics()` returns.

Strategy: the hot path (`record`) does a handful of integer updates and appends one `(time, size, is_video)` tuple
to a bounded deque; rates (fps, bitrate) are computed only when someone asks, over the frames of the last
`window` seconds. Losses and jitter are not measured here: the source knows them (RTP sequence gaps, RFC 3550
§A.8 interarrival jitter) and reports them through its `Publisher`.
"""

from __future__ import annotations

from collections import deque

import attrs

__all__ = ["DEFAULT_MAX_RATE_SAMPLES", "DEFAULT_RATE_WINDOW", "StreamStatistics"]

#: Seconds of history that fps and bitrate are computed over.
DEFAULT_RATE_WINDOW = 2.0
#: Shortest span rates are computed over: a source that just connected often delivers a burst (a camera's
#: buffered GOP), and dividing that by the few milliseconds it took would report thousands of fps.
MIN_RATE_SPAN = 1.0
#: Bound of the rate history (frames); at 2 s this covers 1000 fps of video plus audio.
DEFAULT_MAX_RATE_SAMPLES = 4096


@attrs.frozen(kw_only=True, slots=True)
class StreamStatistics:
    """A snapshot of one stream.

    Attributes:
        stream_id: the stream.
        state: "waiting" (source not connected yet), "live" or "reconnecting".
        run_id: the current timeline run (see `Timeline`); -1 before the first frame.
        frames: frames published (all tracks).
        keyframes: video keyframes published (every frame, for an audio-only stream).
        bytes: payload bytes published.
        fps: video frames per second over the last window (all frames for an audio-only stream).
        bitrate: payload bits per second over the last window, all tracks.
        gop: frames from one keyframe to the next, for the last complete GOP; None until two keyframes were seen.
        last_keyframe_age: seconds since the last keyframe; None before the first.
        losses: frames or packets the source reported lost.
        jitter: interarrival jitter in seconds as the source last reported it; None when it reports none.
        subscribers: live subscriptions.
        restarts: times the source was restarted after a failure.
    """

    stream_id: str
    state: str
    run_id: int
    frames: int
    keyframes: int
    bytes: int
    fps: float
    bitrate: float
    gop: int | None
    last_keyframe_age: float | None
    losses: int
    jitter: float | None
    subscribers: int
    restarts: int


class _StatsAccumulator:
    __slots__ = (
        "bytes",
        "frames",
        "frames_since_key",
        "gop",
        "jitter",
        "keyframes",
        "last_key_time",
        "losses",
        "restarts",
        "samples",
        "window",
    )

    def __init__(self, *, window: float = DEFAULT_RATE_WINDOW, max_samples: int = DEFAULT_MAX_RATE_SAMPLES) -> None:
        self.window = window
        self.samples: deque[tuple[float, int, bool]] = deque(maxlen=max_samples)
        self.frames = 0
        self.keyframes = 0
        self.bytes = 0
        self.gop: int | None = None
        self.frames_since_key: int | None = None
        self.last_key_time: float | None = None
        self.losses = 0
        self.jitter: float | None = None
        self.restarts = 0

    def record(self, now: float, size: int, counts_as_video: bool, key: bool) -> None:
        self.frames += 1
        self.bytes += size
        self.samples.append((now, size, counts_as_video))
        if not counts_as_video:
            return
        if key:
            self.keyframes += 1
            if self.frames_since_key is not None:
                self.gop = self.frames_since_key
            self.frames_since_key = 1
            self.last_key_time = now
        elif self.frames_since_key is not None:
            self.frames_since_key += 1

    def snapshot(self, *, now: float, stream_id: str, state: str, run_id: int, subscribers: int) -> StreamStatistics:
        samples = self.samples
        start = now - self.window
        while samples and samples[0][0] < start:
            samples.popleft()
        if samples:
            # Over the window, or over the span actually covered when the stream is younger than the window,
            # but never less than MIN_RATE_SPAN (bounded by the window itself).
            span = max(min(self.window, now - samples[0][0]), min(self.window, MIN_RATE_SPAN), 1e-9)
            fps = sum(1 for _, _, video in samples if video) / span if len(samples) > 1 else 0.0
            bitrate = sum(size for _, size, _ in samples) * 8 / span if len(samples) > 1 else 0.0
        else:
            fps = bitrate = 0.0
        return StreamStatistics(
            stream_id=stream_id,
            state=state,
            run_id=run_id,
            frames=self.frames,
            keyframes=self.keyframes,
            bytes=self.bytes,
            fps=fps,
            bitrate=bitrate,
            gop=self.gop,
            last_keyframe_age=None if self.last_key_time is None else now - self.last_key_time,
            losses=self.losses,
            jitter=self.jitter,
            subscribers=subscribers,
            restarts=self.restarts,
        )
