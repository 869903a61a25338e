"""Disk full for real: record onto a tiny loop-mounted ext4 file system until writes fail with ENOSPC.

The injected-ENOSPC test beside this one covers the logic; this one proves it against the kernel's own
behaviour (partial writes, a full directory, fsync on a full disk) and found what the injected one could not:
the SQLite index lives on the same disk, so deleting old segments (which writes the index first) fails too
unless the storage keeps a space reserve to give up (with `reserve_bytes=0` this test fails). Needs root and loop
devices: skipped where `mount` is refused (a developer's unprivileged machine), as the mount is the peer here.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from fluxkit.engine import open_engine
from fluxkit.protocols import MediaFrame
from fluxkit.storage import LocalStorage, RecordingFailed, RecordingResumed, RecordingSettings, check, open_recorder
from tests.storage._feed import build
from tests.storage.test_recording import probe


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mkfs = shutil.which("mkfs.ext4") or "/usr/sbin/mkfs.ext4"
    if os.geteuid() != 0 or not Path(mkfs).exists():
        pytest.skip("needs root and mkfs.ext4 for a loop-mounted file system")
    image, mount = tmp_path / "disk.img", tmp_path / "mnt"
    mount.mkdir()
    with image.open("wb") as f:
        f.truncate(3 * 1024 * 1024)
    subprocess.run([mkfs, "-q", "-F", "-m", "0", str(image)], check=True, capture_output=True)
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mount)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"loop mount refused here: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


@pytest.mark.interop
@pytest.mark.trio
async def test_recording_survives_a_full_disk_and_resumes(tiny_disk: Path) -> None:
    tracks, clip = build("h264", frames=250, gop=25)
    events: list[object] = []
    settings = RecordingSettings(segment_duration=2.0, part_duration=0.5, retry_initial=0.05, retry_max=0.2)
    step = 3600
    sent = received = 0
    with trio.fail_after(120):
        async with open_engine() as engine, LocalStorage(tiny_disk, reserve_bytes=256 * 1024) as storage:
            recorder_cm = open_recorder(engine, storage, settings, on_event=events.append, make_room_bytes=384 * 1024)
            async with recorder_cm as recorder:
                publisher = engine.publish_stream("cam1", tracks)
                async with engine.subscribe_stream("cam1", queue_size=100_000) as viewer:
                    await trio.lowlevel.checkpoint()
                    # Loop the clip with continuous timestamps until the disk has filled and recording resumed (frames
                    # must keep coming after the failure for a write to succeed again; the bound only guards a hang).
                    loop = 0
                    while not any(isinstance(e, RecordingResumed) for e in events) and loop < 400:
                        for i, frame in enumerate(clip):
                            ts = (frame.pts + loop * len(clip) * step) & 0xFFFFFFFF
                            publisher.send(
                                MediaFrame(codec=frame.codec, data=frame.data, pts=ts, dts=ts, keyframe=frame.keyframe)
                            )
                            sent += 1
                            if i % 4 == 0:
                                await trio.sleep(0.002)
                        loop += 1
                    publisher.close()
                    async for _ in viewer:
                        received += 1
                await recorder.wait_idle()
        # What a write failure cut short is recovered on resume, or (if the disk filled again before the stream
        # ended) at the next start-up: reopen the storage as a restart would.
        async with LocalStorage(tiny_disk, reserve_bytes=256 * 1024) as storage:
            result = await storage.query_segments("cam1", 0, 4e9)
    failed = [e for e in events if isinstance(e, RecordingFailed)]
    assert failed, "the tiny disk never filled"
    assert failed[0].errno == errno.ENOSPC
    assert any(isinstance(e, RecordingResumed) for e in events)
    assert received == sent  # ingest and fan-out never stopped
    assert any(g.reason == "write_error" for g in result.gaps)
    assert result.segments
    for seg in result.segments:
        assert len(probe(seg.path)["video"]) == seg.frames
    report = check(tiny_disk)
    assert report.ok, report.lines()
