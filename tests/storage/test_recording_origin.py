"""Recording at a stream's `WallOrigin` (a download): indexed at the original times, never at the arrival time.

A real engine and `LocalStorage`; frames are pushed as fast as the recorder takes them (a transfer many times
faster than real time) while the recorder's wall clock stands still at a later "now". Live streams (no origin)
stay placed by arrival; a download into a stream id that already has segments over the same times adds its own
files next to them, leaving the others untouched.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from pathlib import Path

import av
import pytest
import trio

from fluxkit.engine import RestartPolicy, SourceSession, StreamStopped, Track, WallOrigin, open_engine
from fluxkit.protocols import MediaFrame
from fluxkit.storage import LocalStorage, RecordingSettings, SegmentRecord, open_recorder
from fluxkit.storage._model import parse_segment_name
from tests.storage._feed import build

SETTINGS = RecordingSettings(segment_duration=2.0, part_duration=0.5)
T0_US = 1_700_000_000_000_000  # the recording's original start (2023-11-14 22:13:20 UTC)
NOW_US = T0_US + 4 * 3600 * 1_000_000  # the recorder's wall clock: four hours later


def utc(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC)


def dts_of(path: str) -> list[int]:
    """Video dts of a segment file in 90 kHz ticks (PyAV, no decoding)."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        return [round(p.dts * p.time_base * 90000) for p in container.demux(stream) if p.dts is not None and p.size]


async def push(frames: list[MediaFrame], publisher: object) -> None:
    for i, frame in enumerate(frames):
        if i % 8 == 0:
            await trio.sleep(0.001)  # let the recorder keep up (its subscription is bounded)
        publisher.send(frame)  # type: ignore[attr-defined]


async def record(
    root: Path,
    frames: list[MediaFrame],
    tracks: list[Track],
    origin: WallOrigin | None,
    *,
    stream: str = "cam1",
    at_once: bool = False,
) -> list[SegmentRecord]:
    async with open_engine() as engine, LocalStorage(root) as storage:
        async with open_recorder(engine, storage, SETTINGS, wall_clock=lambda: NOW_US) as recorder:
            publisher = engine.publish_stream(stream, tracks, wall_origin=origin)
            assert engine.wall_origin(stream) == origin
            assert [i.wall_origin for i in engine.list_streams()] == [origin]
            while True:  # until the recorder follows it
                if any(i.subscribers for i in engine.list_streams()):
                    break
                await trio.sleep(0.001)
            if at_once:  # the stream stops before the recorder has taken a single frame from its queue
                publisher.send_all(frames)
            else:
                await push(frames, publisher)
            publisher.close()
            await trio.lowlevel.checkpoint()
            await recorder.wait_idle()
        return list((await storage.query_segments(stream, 0, 4e9)).segments)


def test_wall_origin_maps_timestamps_across_a_wrap() -> None:
    origin = WallOrigin(epoch_us=T0_US, timestamp=0xFFFF_0000)
    assert origin.wall_us(0xFFFF_0000, 90000) == T0_US
    assert origin.wall_us((0xFFFF_0000 + 90000) & 0xFFFF_FFFF, 90000) == T0_US + 1_000_000  # wrapped: still later
    assert origin.wall_us(0xFFFF_0000 - 45000, 90000) == T0_US - 500_000  # before the origin
    unwrapped = origin.wall_us(0xFFFF_0000 + 2**32 + 900, 90000, wrap_bits=None)
    assert unwrapped == T0_US + round((2**32 + 900) * 1_000_000 / 90000)
    assert origin.wall_us(0xFFFF_0000, 8000) is None  # another clock: no mapping


@pytest.mark.trio
async def test_a_stream_with_a_wall_origin_is_indexed_at_its_original_times(tmp_path: Path) -> None:
    tracks, frames = build("h264", frames=100, gop=25)  # 4 s at 25 fps, timestamps wrapping 32 bits
    first = frames[0].dts
    assert first is not None
    with trio.fail_after(30):
        segments = await record(tmp_path, frames, tracks, WallOrigin(epoch_us=T0_US, timestamp=first))
    assert len(segments) >= 2
    assert segments[0].start == utc(T0_US)  # not NOW_US, not the arrival time
    assert segments[-1].end == utc(T0_US + 4_000_000)  # 100 frames of 40 ms: the source's own timing
    for a, b in itertools.pairwise(segments):
        assert a.end == b.start  # contiguous, one run
    ticks = [dts_of(s.path) for s in segments]
    assert sum(map(len, ticks)) == 100
    assert {b - a for t in ticks for a, b in itertools.pairwise(t)} == {3600}  # the source's own spacing


@pytest.mark.trio
async def test_the_origin_holds_for_frames_drained_after_the_stream_stopped(tmp_path: Path) -> None:
    tracks, frames = build("h264", frames=50, gop=25)
    first = frames[0].dts
    assert first is not None
    # A second run a minute later on the same clock (a hole in the device's recording): placed by the origin too.
    later = [
        MediaFrame(codec=f.codec, data=f.data, pts=f.dts + 90000 * 60, dts=f.dts + 90000 * 60, keyframe=f.keyframe)  # type: ignore[operator]
        for f in frames
    ]
    with trio.fail_after(30):
        segments = await record(
            tmp_path, frames + later, tracks, WallOrigin(epoch_us=T0_US, timestamp=first), at_once=True
        )
    assert [(s.start, s.end) for s in segments] == [
        (utc(T0_US), utc(T0_US + 2_000_000)),
        (utc(T0_US + 60_000_000), utc(T0_US + 62_000_000)),
    ]


@pytest.mark.trio
async def test_a_live_stream_stays_placed_by_arrival(tmp_path: Path) -> None:
    tracks, frames = build("h264", frames=50, gop=25)
    with trio.fail_after(30):
        segments = await record(tmp_path, frames, tracks, None)
    assert segments[0].start == utc(NOW_US)  # the (injected) wall clock when it arrived


@pytest.mark.trio
async def test_a_download_over_an_existing_recording_leaves_it_untouched(tmp_path: Path) -> None:
    tracks, frames = build("h264", frames=100, gop=25)
    first = frames[0].dts
    assert first is not None
    origin = WallOrigin(epoch_us=T0_US, timestamp=first)
    with trio.fail_after(60):
        before = await record(tmp_path, frames, tracks, origin)
        digests = {s.path: hashlib.sha256(Path(s.path).read_bytes()).hexdigest() for s in before}
        assert digests == {s.path: s.sha256 for s in before}
        after = await record(tmp_path, frames, tracks, origin)  # the same range again, same stream id
    # Both copies are indexed, in their own files; the first recording's files and rows are unchanged.
    assert len(after) == 2 * len(before)
    assert {s.id for s in before} <= {s.id for s in after}
    assert len({s.path for s in after}) == len(after)
    for s in before:
        assert hashlib.sha256(Path(s.path).read_bytes()).hexdigest() == digests[s.path]
    again = [s for s in after if s.id not in {b.id for b in before}]
    assert sorted((s.start, s.end) for s in again) == sorted((s.start, s.end) for s in before)


@pytest.mark.trio
async def test_repeated_downloads_of_one_range_never_share_a_file(tmp_path: Path) -> None:
    # Same start, run and size each time: the alternate name must still be new (it once repeated on the third).
    tracks, frames = build("h264", frames=50, gop=25)
    first = frames[0].dts
    assert first is not None
    origin = WallOrigin(epoch_us=T0_US, timestamp=first)
    with trio.fail_after(60):
        runs = [await record(tmp_path, frames, tracks, origin) for _ in range(4)]
    final = runs[-1]
    assert len(final) == 4 * len(runs[0])
    assert len({s.path for s in final}) == len(final)
    for s in final:
        assert hashlib.sha256(Path(s.path).read_bytes()).hexdigest() == s.sha256
        assert parse_segment_name(Path(s.path).name) == round(s.start.timestamp() * 1e6 / 1000) * 1000


class _RetriedDownload:
    """A source whose first try sends 2 s and fails; the retry starts over with another clock base and origin."""

    def __init__(self, tracks: list[Track], frames: list[MediaFrame]) -> None:
        self.tracks = tracks
        self.frames = frames
        self.tries = 0

    async def run(self, session: SourceSession) -> None:
        self.tries += 1
        base = 1_000 if self.tries == 1 else 2_000_000_000  # an unrelated clock: the recorder starts a new run
        start_us = T0_US if self.tries == 1 else T0_US + 60_000_000
        stamped = [
            MediaFrame(codec=f.codec, data=f.data, pts=base + 3600 * i, dts=base + 3600 * i, keyframe=f.keyframe)
            for i, f in enumerate(self.frames)
        ]
        publisher = session.publish(self.tracks, wall_origin=WallOrigin(epoch_us=start_us, timestamp=base))
        await push(stamped, publisher)
        if self.tries == 1:
            raise OSError("connection lost")


@pytest.mark.trio
async def test_each_try_of_a_source_is_placed_by_its_own_origin(tmp_path: Path) -> None:
    tracks, frames = build("h264", frames=50, gop=25)
    source = _RetriedDownload(tracks, frames)
    policy = RestartPolicy(initial_delay=0.01, max_delay=0.01, jitter=0.0, max_attempts=1)
    with trio.fail_after(30):
        async with open_engine() as engine, LocalStorage(tmp_path) as storage:
            async with open_recorder(engine, storage, SETTINGS, wall_clock=lambda: NOW_US) as recorder:
                events = engine.events()
                engine.add_source("dl", source, restart=policy)
                async for event in events:
                    if isinstance(event, StreamStopped):
                        break
                while True:  # the recorder may not have taken the stream's events yet: wait for its segments
                    await recorder.wait_idle()
                    segments = (await storage.query_segments("dl", 0, 4e9)).segments
                    if segments:
                        break
                    await trio.sleep(0.01)
    assert source.tries == 2
    runs = sorted({(s.run_id, s.start) for s in segments if s.start in (utc(T0_US), utc(T0_US + 60_000_000))})
    assert [start for _, start in runs] == [utc(T0_US), utc(T0_US + 60_000_000)]
    assert segments[-1].end == utc(T0_US + 62_000_000)
