"""Recording end to end: a real engine, frames pushed by the test, segments read back with PyAV and ffprobe."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import pytest
import trio

from fluxkit.engine import open_engine
from fluxkit.errors import LocalProtocolError
from fluxkit.protocols import MediaFrame
from fluxkit.storage import (
    LocalStorage,
    RecordingFailed,
    RecordingResumed,
    RecordingSettings,
    _mux,
    check,
    check_main,
    open_recorder,
    validate_stream_id,
)
from tests.conftest import require_tool
from tests.storage._feed import build

SETTINGS = RecordingSettings(segment_duration=2.0, part_duration=0.5)


async def record(root: Path, frames: list[MediaFrame], tracks, settings=SETTINGS, on_frame=None, **kwargs):
    async with open_engine() as engine, LocalStorage(root) as storage:
        async with open_recorder(engine, storage, settings, **kwargs) as recorder:
            publisher = engine.publish_stream("cam1", tracks)
            await trio.lowlevel.checkpoint()
            for i, frame in enumerate(frames):
                publisher.send(frame)
                if on_frame is not None:
                    on_frame(i)
                    await trio.sleep(0.002)
                elif i % 4 == 0:
                    await trio.sleep(0.001)
            publisher.close()
            await trio.lowlevel.checkpoint()
            await recorder.wait_idle()
        return await storage.query_segments("cam1", 0, 4e9)


def probe(path: str) -> dict[str, list[int]]:
    """{kind: [dts...]} and keyframe flags of the video stream, read with PyAV (no decoding)."""
    out: dict[str, list] = {"video": [], "audio": [], "keys": []}
    with av.open(path) as container:
        for packet in container.demux():
            if packet.dts is None:
                continue
            kind = packet.stream.type
            out[kind].append(float(packet.dts * packet.time_base))
            if kind == "video":
                out["keys"].append(packet.is_keyframe)
    return out


def ffprobe_frames(path: str) -> int:
    ffprobe = require_tool("ffprobe")
    result = subprocess.run(
        [ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=nb_read_frames", "-of", "csv=p=0", path],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return int(result.stdout.strip())


@pytest.mark.trio
@pytest.mark.parametrize(("codec", "audio"), [("h264", "pcm_alaw"), ("hevc", None), ("h264", "aac")])
async def test_segments_play_back_exactly(tmp_path: Path, codec: str, audio: str | None) -> None:
    tracks, frames = build(codec, frames=150, gop=25, audio=audio)
    with trio.fail_after(30):
        result = await record(tmp_path, frames, tracks)
    segments = result.segments
    assert [s.frames for s in segments] == [50, 50, 50]
    assert result.gaps == ()
    total = 0
    for i, seg in enumerate(segments):
        info = probe(seg.path)
        assert info["keys"][0] is True  # a keyframe starts every segment
        assert len(info["video"]) == seg.frames
        assert info["video"] == pytest.approx([k * 0.04 for k in range(seg.frames)], abs=1e-3)
        assert seg.duration == pytest.approx(2.0)
        assert ffprobe_frames(seg.path) == seg.frames
        if audio:
            assert info["audio"], "audio recorded"
        assert seg.keyframes[0] == (0.0, seg.keyframes[0][1])
        assert os.path.getsize(seg.path) == seg.size
        if i:
            assert seg.start == segments[i - 1].end  # contiguous: one run, no gap
        total += seg.frames
    assert total == 150
    assert check(tmp_path).ok
    assert check_main(tmp_path) == 0
    # layout: <root>/<stream>/<YYYY-MM-DD>/<HH>/<YYYYMMDDTHHMMSS.mmmZ>.mp4
    rel = Path(segments[0].path).relative_to(tmp_path)
    assert rel.parts[0] == "cam1"
    assert len(rel.parts) == 4
    assert rel.name.endswith("Z.mp4")
    with av.open(segments[0].path) as container:
        assert json.loads(container.metadata["comment"])["stream"] == "cam1"


@pytest.mark.trio
async def test_timeline_jump_ends_segment_and_records_gap(tmp_path: Path) -> None:
    tracks, frames = build("h264", frames=100, gop=25)
    # Media clock jumps back 1 hour at frame 50 (a camera reboot): a new run, a new segment, a gap.
    jumped = [
        MediaFrame(codec=f.codec, data=f.data, pts=(f.pts - 90000 * 3600) & 0xFFFFFFFF,
                   dts=(f.dts - 90000 * 3600) & 0xFFFFFFFF, keyframe=f.keyframe)
        for f in frames[50:]
    ]  # fmt: skip
    clock = iter(range(10**9))

    def wall() -> int:  # a wall clock that moves 1 s per run anchor read
        return 1_800_000_000_000_000 + next(clock) * 5_000_000

    with trio.fail_after(30):
        result = await record(tmp_path, frames[:50] + jumped, tracks, wall_clock=wall)
    assert [s.frames for s in result.segments] == [50, 50]
    assert len(result.gaps) == 1
    assert result.gaps[0].reason == "timeline_jump"
    assert result.gaps[0].start == result.segments[0].end
    assert result.gaps[0].end == result.segments[1].start


@pytest.mark.trio
async def test_retention_by_age_and_size_keeps_open_segment(tmp_path: Path) -> None:
    tracks, frames = build("h264", frames=150, gop=25)
    with trio.fail_after(30):
        result = await record(tmp_path, frames, tracks)
    segs = result.segments
    async with LocalStorage(tmp_path) as storage:
        # Age: "now" is 10 s after the second segment ended; keep 11 s -> only the first (ended 12 s ago) goes.
        now = segs[1].end.timestamp() + 10
        deleted = await storage.cleanup_expired(now=now, max_age=11)
        assert [d.id for d in deleted] == [segs[0].id]
        assert not Path(segs[0].path).exists()
        # Size: keep at most the newest segment.
        deleted = await storage.cleanup_expired(now=now, max_bytes=segs[2].size)
        assert [d.id for d in deleted] == [segs[1].id]
        left = await storage.query_segments("cam1", 0, 4e9)
        assert [s.id for s in left.segments] == [segs[2].id]
        assert storage.index.garbage() == []
    assert check(tmp_path).ok
    # An open (partial, unindexed) segment is never a candidate.
    partial = Path(segs[2].path).with_name(".x.mp4.partial")
    partial.write_bytes(b"")
    async with LocalStorage(tmp_path, reconcile_on_open=False) as storage:
        await storage.cleanup_expired(now=now + 1e6, max_age=0, max_bytes=0)
        assert partial.exists()


@pytest.mark.trio
async def test_disk_full_pauses_then_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tracks, frames = build("h264", frames=250, gop=25)
    real_write = _mux._os_write
    state = {"full": False}

    def flaky_write(fd: int, data) -> int:
        if state["full"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    def on_frame(i: int) -> None:
        state["full"] = 60 <= i < 120  # the disk is full for a while

    monkeypatch.setattr(_mux, "_os_write", flaky_write)
    events: list[object] = []
    settings = RecordingSettings(segment_duration=2.0, part_duration=0.5, retry_initial=0.01, retry_max=0.02)
    with trio.fail_after(30):
        result = await record(tmp_path, frames, tracks, settings, on_frame=on_frame, on_event=events.append)
    kinds = [type(e) for e in events]
    assert RecordingFailed in kinds
    assert RecordingResumed in kinds
    failed = next(e for e in events if isinstance(e, RecordingFailed))
    assert failed.errno == errno.ENOSPC
    assert any(g.reason == "write_error" for g in result.gaps)
    assert result.segments, "recording resumed"
    for seg in result.segments:
        assert len(probe(seg.path)["video"]) == seg.frames
    assert check(tmp_path).ok


def test_stream_id_validation() -> None:
    for bad in ["", "../x", "a/b", ".hidden", "..", "a\x00b", "x\n", "keyframes", "a\\b", "x" * 200]:
        with pytest.raises(LocalProtocolError):
            validate_stream_id(bad)
    assert validate_stream_id("cam-1_front.main") == "cam-1_front.main"


@pytest.mark.trio
async def test_reconcile_orphans_partials_and_missing(tmp_path: Path) -> None:
    tracks, frames = build("h264", frames=150, gop=25)
    with trio.fail_after(30):
        result = await record(tmp_path, frames, tracks)
    a, b, c = result.segments
    os.unlink(a.path)  # an index row whose file vanished
    data = Path(b.path).read_bytes()
    partial = Path(b.path).with_name("." + Path(b.path).name + ".partial")
    os.rename(b.path, partial)  # looks like a crash mid-segment...
    os.truncate(partial, len(data) * 3 // 4)  # ...with a torn last part
    junk = Path(c.path).with_name("20300101T000000.000Z.mp4")
    junk.write_bytes(b"not an mp4")
    report = check(tmp_path)
    assert not report.ok
    assert check_main(tmp_path) == 1
    async with LocalStorage(tmp_path) as storage:
        assert storage.last_report is not None
        assert storage.last_report.adopted
        assert storage.last_report.removed
        after = await storage.query_segments("cam1", 0, 4e9)
    assert not junk.exists()
    assert check(tmp_path).ok
    recovered = [s for s in after.segments if s.id not in (a.id, c.id)]
    assert len(recovered) == 1
    assert 12 <= recovered[0].frames < 50  # the complete parts survived
    assert len(probe(recovered[0].path)["video"]) == recovered[0].frames


CHILD = textwrap.dedent(
    """
    import sys, trio
    sys.path.insert(0, {repo!r})
    from tests.storage._feed import build
    from fluxkit.engine import open_engine
    from fluxkit.storage import LocalStorage, RecordingSettings, open_recorder

    async def main():
        tracks, frames = build("h264", frames=500, gop=25)
        settings = RecordingSettings(segment_duration=2.0, part_duration=0.5)
        async with open_engine() as engine, LocalStorage({root!r}) as storage:
            async with open_recorder(engine, storage, settings):
                pub = engine.publish_stream("cam1", tracks)
                for i, frame in enumerate(frames):
                    pub.send(frame)
                    print(i, flush=True)
                    await trio.sleep(0.04)
    trio.run(main)
    """
)


def test_kill_9_loses_at_most_one_part(tmp_path: Path) -> None:
    repo = str(Path(__file__).resolve().parents[2])
    script = CHILD.format(repo=repo, root=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    sent = -1
    try:
        for line in proc.stdout:
            sent = int(line)
            if sent >= 90:  # 3.6 s of media: one finished segment, the second 1.6 s in
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
    assert sent >= 90

    async def reopen():
        async with LocalStorage(tmp_path) as storage:
            return await storage.query_segments("cam1", 0, 4e9)

    result = trio.run(reopen)
    assert check(tmp_path).ok
    frames = 0
    for seg in result.segments:
        assert len(probe(seg.path)["video"]) == seg.frames
        frames += seg.frames
    lost_seconds = (sent + 1 - frames) * 0.04
    assert lost_seconds <= SETTINGS.part_duration + 0.6  # one part, plus frames still queued at the kill


@pytest.mark.trio
async def test_a_stream_stopped_before_the_recorder_subscribes_is_skipped(tmp_path: Path) -> None:
    tracks, frames = build("h264", frames=25, gop=25)
    with trio.fail_after(20):
        async with open_engine() as engine, LocalStorage(tmp_path) as storage:
            async with open_recorder(engine, storage, SETTINGS) as recorder:
                engine.publish_stream("flash", tracks)
                engine.stop_stream("flash")  # gone before the recorder reacts to StreamPublished
                await trio.sleep(0.1)
                await recorder.wait_idle()
                publisher = engine.publish_stream("cam1", tracks)  # the recorder still works
                for frame in frames:
                    publisher.send(frame)
                    await trio.sleep(0.001)
                publisher.close()
                await trio.sleep(0.1)
                await recorder.wait_idle()
            result = await storage.query_segments("cam1", 0, 4e9)
    assert sum(s.frames for s in result.segments) == 25
