"""Export of recorded ranges: recordings made here through a real engine, every export read back by PyAV and ffprobe."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from pathlib import Path
from typing import Any

import pytest
import trio

from fluxkit.playback import InvalidRange, NoRecording, RangeTooLarge, export_range, plan_export
from fluxkit.protocols import MediaFrame
from fluxkit.storage import LocalStorage
from tests.playback._util import ffprobe, read_back, record
from tests.storage._feed import build

pytestmark = pytest.mark.trio

FPS = 25
GOP = 25  # a keyframe every second
FRAMES = 150  # 6 s: three 2-s segments


@pytest.fixture(scope="module", params=["h264", "hevc"])
def recording(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp(f"rec-{request.param}")
    tracks, frames = build(request.param, frames=FRAMES, gop=GOP, fps=FPS)

    async def main() -> Any:
        with trio.fail_after(60):
            return await record(root, frames, tracks)

    result = trio.run(main)
    assert [s.frames for s in result.segments] == [50, 50, 50]
    return {"root": root, "t0": result.segments[0].start.timestamp(), "segments": result.segments}


@pytest.fixture(scope="module")
def gap_recording(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two runs: the media clock jumps back an hour at frame 50 (a camera reboot), the wall clock moves on."""
    root = tmp_path_factory.mktemp("rec-gap")
    tracks, frames = build("h264", frames=100, gop=GOP, fps=FPS)
    jumped = [
        MediaFrame(codec=f.codec, data=f.data, pts=(f.pts - 90000 * 3600) & 0xFFFFFFFF,
                   dts=(f.dts - 90000 * 3600) & 0xFFFFFFFF, keyframe=f.keyframe)
        for f in frames[50:]
    ]  # fmt: skip
    clock = iter(range(10**9))

    def wall() -> int:
        return 1_800_000_000_000_000 + next(clock) * 5_000_000

    async def main() -> Any:
        with trio.fail_after(60):
            return await record(root, frames[:50] + jumped, tracks, wall_clock=wall)

    result = trio.run(main)
    assert len(result.gaps) == 1
    return {"root": root, "segments": result.segments, "gap": result.gaps[0]}


async def export(root: Path, start: Any, end: Any, **kwargs: Any) -> bytes:
    async with (
        LocalStorage(root) as storage,
        contextlib.aclosing(export_range(storage, "cam1", start, end, **kwargs)) as chunks,
    ):
        return b"".join([chunk async for chunk in chunks])


def expected_frames(a: float, b: float) -> tuple[int, int]:
    """(first, last) frame index of the export of [t0+a, t0+b): from the last keyframe at or before a."""
    first = max(0, math.floor(a * FPS / GOP + 1e-9)) * GOP
    last = min(FRAMES - 1, math.ceil(b * FPS - 1e-9) - 1)
    return first, last


def check_mp4(data: bytes, tmp_path: Path, count: int) -> dict[str, Any]:
    assert data[4:8] == b"ftyp"
    assert data.find(b"moof") > data.find(b"moov") > 0  # ftyp moov, then fragments
    info = read_back(data)
    assert len(info["dts"]) == count
    assert info["decoded"] == count
    assert info["keys"][0] is True
    path = tmp_path / "export.mp4"
    path.write_bytes(data)
    probe = ffprobe(path)
    assert probe["frames"] == count
    assert probe["keys"][0] is True
    assert probe["pts"] == pytest.approx(info["pts"], abs=1e-3)
    return info


@pytest.mark.interop
@pytest.mark.parametrize(
    ("a", "b"),
    [
        (0.0, 1.5),  # inside one segment
        (0.5, 1.5),  # starting mid-GOP: begins at the keyframe at 0 s
        (1.3, 5.0),  # spanning two segment boundaries, starting mid-GOP
        (2.5, 3.0),  # inside the second segment, from its keyframe at 2 s
        (4.5, 100.0),  # end beyond the recording
        (-3.0, 0.5),  # start before the recording
    ],
)
async def test_export_range_frames_and_timestamps(recording: dict[str, Any], tmp_path: Path, a: float,
                                                  b: float) -> None:  # fmt: skip
    t0 = recording["t0"]
    with trio.fail_after(60):
        data = await export(recording["root"], t0 + a, t0 + b)
    first, last = expected_frames(a, b)
    info = check_mp4(data, tmp_path, last - first + 1)
    step = 1 / FPS
    # Continuous from 0 across segment boundaries, each frame lasting one frame period.
    assert info["dts"] == pytest.approx([i * step for i in range(last - first + 1)], abs=1e-6)
    assert info["pts"] == info["dts"]
    assert info["durations"] == pytest.approx([step] * len(info["dts"]), abs=1e-6)
    assert [i for i, k in enumerate(info["keys"]) if k] == [
        i for i in range(last - first + 1) if (first + i) % GOP == 0
    ]


async def test_export_seeks_with_keyframe_offsets(recording: dict[str, Any]) -> None:
    t0 = recording["t0"]
    async with LocalStorage(recording["root"]) as storage:
        plan = await plan_export(storage, "cam1", t0 + 1.3, t0 + 1.9)
    first = recording["segments"][0]
    assert plan.segments == (first,)
    assert plan.first_offset == first.keyframes[1][1] > first.keyframes[0][1]  # the 1-s keyframe's fragment
    assert plan.first_frame.timestamp() == pytest.approx(t0 + 1.0)
    assert plan.gaps == 0


@pytest.mark.interop
async def test_export_over_a_gap_keeps_a_timestamp_jump(gap_recording: dict[str, Any], tmp_path: Path) -> None:
    seg_a, seg_b = gap_recording["segments"]
    hole = (seg_b.start - seg_a.end).total_seconds()
    assert hole > 1
    start = seg_a.start + dt.timedelta(seconds=1.2)
    end = seg_b.start + dt.timedelta(seconds=0.5)
    async with LocalStorage(gap_recording["root"]) as storage:
        plan = await plan_export(storage, "cam1", start, end)
    assert plan.gaps == 1
    with trio.fail_after(60):
        data = await export(gap_recording["root"], start, end)
    # Frames 25..49 of the first run, then frames 0..12 of the second, after a jump of the gap's length.
    info = check_mp4(data, tmp_path, 25 + 13)
    expected = [i / FPS for i in range(25)] + [1.0 + hole + i / FPS for i in range(13)]
    assert info["dts"] == pytest.approx(expected, abs=1e-3)
    assert info["keys"][25] is True


async def test_paced_export_runs_at_speed(recording: dict[str, Any], autojump_clock: trio.abc.Clock) -> None:
    t0 = recording["t0"]
    media = FRAMES / FPS  # the whole recording: 6 s
    for speed in (0.25, 1.0, 4.0):
        arrivals: list[float] = []
        began = trio.current_time()
        async with LocalStorage(recording["root"]) as storage:
            chunks = export_range(storage, "cam1", t0, t0 + 100, speed=speed)
            async with contextlib.aclosing(chunks):
                async for _ in chunks:
                    arrivals.append(trio.current_time() - began)
        assert arrivals[-1] == pytest.approx(media / speed, abs=1e-6)
        assert arrivals[0] == 0  # the header is not held back
        assert arrivals == sorted(arrivals)
        # One fragment per second of media at most: fragments are spread over the whole duration.
        assert len(set(arrivals)) >= media - 1
        assert arrivals[len(arrivals) // 2] == pytest.approx(media / speed / 2, abs=1.0 / speed + 1e-6)


async def test_export_errors(recording: dict[str, Any]) -> None:
    t0 = recording["t0"]
    root = recording["root"]
    with pytest.raises(InvalidRange):
        await export(root, t0 + 2, t0 + 2)
    with pytest.raises(InvalidRange):
        await export(root, t0 + 3, t0 + 1)
    with pytest.raises(ValueError):  # InvalidRange is a ValueError
        await export(root, t0 + 1, t0)
    for speed in (0.1, 5.0, 0.0, -1.0):
        with pytest.raises(InvalidRange):
            await export(root, t0, t0 + 1, speed=speed)
    with pytest.raises(RangeTooLarge):
        await export(root, t0, t0 + 25 * 3600)
    with pytest.raises(RangeTooLarge):
        await export(root, t0, t0 + 5, max_duration=4)
    with pytest.raises(NoRecording):
        await export(root, t0 - 100, t0 - 50)  # before the recording
    with pytest.raises(NoRecording):
        await export(root, t0 + 6.5, t0 + 50)  # after it
    async with LocalStorage(root) as storage:
        with pytest.raises(NoRecording):
            await plan_export(storage, "other", t0, t0 + 5)


async def test_abandoned_export_closes_cleanly(recording: dict[str, Any]) -> None:
    t0 = recording["t0"]
    async with LocalStorage(recording["root"]) as storage:
        chunks = export_range(storage, "cam1", t0, t0 + 6)
        async with contextlib.aclosing(chunks):
            header = await chunks.__anext__()
            assert header[4:8] == b"ftyp"


@pytest.mark.interop
@pytest.mark.parametrize("audio", ["aac", "pcm_alaw"])
async def test_export_keeps_audio(tmp_path: Path, audio: str) -> None:
    tracks, frames = build("h264", frames=FRAMES, gop=GOP, fps=FPS, audio=audio)
    with trio.fail_after(60):
        result = await record(tmp_path / "rec", frames, tracks)
        t0 = result.segments[0].start.timestamp()
        data = await export(tmp_path / "rec", t0 + 1.3, t0 + 5.0)
    info = check_mp4(data, tmp_path, 100)  # frames 25..124
    assert info["dts"] == pytest.approx([i / FPS for i in range(100)], abs=1e-6)
    assert info["audio"] > 0
