"""SnapshotService on a real engine: snapshots fresh within one GOP, keyframes emitted per interval with JPEGs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import av
import numpy as np
import pytest
import trio
import trio.testing

from fluxkit.engine import Publisher, Track, open_engine
from fluxkit.keyframes import Keyframe, SnapshotService, SnapshotUnavailable
from fluxkit.protocols import MediaFrame

from .helpers import clip_frames, clip_parameter_sets, decode_alone, psnr

GOP = 10


def _luma(jpeg: bytes) -> np.ndarray:
    ctx = av.CodecContext.create("mjpeg", "r")
    frames = list(ctx.decode(av.Packet(jpeg))) + list(ctx.decode(None))
    frame = frames[0]
    assert isinstance(frame, av.VideoFrame)
    return frame.reformat(format="gray").to_ndarray()


def _reference(codec: str, keyframe_data: bytes, width: int, height: int) -> np.ndarray:
    return decode_alone(codec, keyframe_data).reformat(width=width, height=height, format="gray").to_ndarray()


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (under the caller's fail_after) until `condition()`: JPEGs are made in worker threads, which
    `wait_all_tasks_blocked` does not wait for."""
    while not condition():  # noqa: ASYNC110 - the condition is set from a worker thread's result, not an Event
        await trio.sleep(0.005)


async def _send(publisher: Publisher, frames: Sequence[MediaFrame], clock: _Clock | None = None) -> None:
    for frame in frames:
        if clock is not None:
            clock.now += 0.04
        publisher.send(frame)
        await trio.testing.wait_all_tasks_blocked()


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.trio
@pytest.mark.parametrize("codec", ["h264", "hevc"])
async def test_snapshot_follows_the_latest_keyframe(codec: str) -> None:
    frames = clip_frames(codec, in_band=False, gop=GOP)  # parameter sets only out of band, in the track
    clock = _Clock()
    emitted: list[tuple[str, Keyframe, bytes]] = []

    async def on_keyframe(stream_id: str, keyframe: Keyframe, jpeg: bytes) -> None:
        emitted.append((stream_id, keyframe, jpeg))

    with trio.fail_after(30):
        async with open_engine() as engine:
            service = SnapshotService(
                engine, interval_seconds=1.0, width=160, hwaccel=None, on_keyframe=on_keyframe, clock=clock
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(service.run)
                publisher = engine.publish_stream(
                    "cam1", [Track(codec=codec, parameter_sets=clip_parameter_sets(codec))]
                )
                await trio.testing.wait_all_tasks_blocked()
                assert service.streams == ["cam1"]
                with pytest.raises(SnapshotUnavailable, match="no keyframe yet"):
                    await service.snapshot("cam1")
                previous: np.ndarray | None = None
                for gop_start in range(0, len(frames), GOP):
                    # Send the GOP's keyframe and a few more frames: the snapshot is that keyframe's picture.
                    await _send(publisher, frames[gop_start : gop_start + GOP // 2], clock)
                    latest = service.latest("cam1")
                    assert latest is not None
                    assert latest.pts == frames[gop_start].pts
                    jpeg = await service.snapshot("cam1")
                    assert await service.snapshot("cam1") is jpeg  # cached per keyframe
                    got = _luma(jpeg)
                    assert got.shape == (120, 160)
                    assert psnr(got, _reference(codec, latest.data, 160, 120)) > 30
                    if previous is not None:
                        assert psnr(got, previous) < psnr(got, _reference(codec, latest.data, 160, 120))
                    previous = got
                    await _send(publisher, frames[gop_start + GOP // 2 : gop_start + GOP], clock)
                await _until(lambda: len(emitted) >= 2)
                # 6 keyframes 0.4 s apart, interval 1 s: the ones at 0 and 1.2 s (the next would be due at 2.2 s).
                assert [k.sequence for _, k, _ in emitted] == [0, 3]
                for stream_id, keyframe, jpeg in emitted:
                    assert stream_id == "cam1"
                    assert keyframe.wall_time == pytest.approx(1000.04 + keyframe.sequence * GOP * 0.04)
                    assert psnr(_luma(jpeg), _reference(codec, keyframe.data, 160, 120)) > 30
                publisher.close()
                await trio.testing.wait_all_tasks_blocked()
                assert service.streams == []
                with pytest.raises(SnapshotUnavailable, match="no stream"):
                    await service.snapshot("cam1")
                nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_streams_present_before_start_and_unknown_streams() -> None:
    frames = clip_frames("h264", gop=GOP)
    with trio.fail_after(30):
        async with open_engine() as engine:
            publisher = engine.publish_stream("early", [Track(codec="h264")])
            service = SnapshotService(engine, interval_seconds=10.0, hwaccel=None)
            async with trio.open_nursery() as nursery:
                await nursery.start(service.run)
                assert service.streams == ["early"]
                with pytest.raises(SnapshotUnavailable):
                    await service.snapshot("nope")
                await _send(publisher, frames[:3])
                assert _luma(await service.snapshot("early")).shape == (240, 320)
                nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_failing_callback_does_not_stop_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def on_keyframe(stream_id: str, keyframe: Keyframe, jpeg: bytes) -> None:
        calls.append(keyframe.sequence)
        raise RuntimeError("disk on fire")

    frames = clip_frames("h264", gop=GOP)
    with trio.fail_after(30):
        async with open_engine() as engine:
            service = SnapshotService(engine, interval_seconds=0, hwaccel=None, on_keyframe=on_keyframe)
            async with trio.open_nursery() as nursery:
                await nursery.start(service.run)
                publisher = engine.publish_stream("cam", [Track(codec="h264")])
                await trio.testing.wait_all_tasks_blocked()
                await _send(publisher, frames[:25])
                await _until(lambda: len(calls) >= 3)
                assert calls == [0, 1, 2]
                assert "on_keyframe failed" in caplog.text
                nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_garbage_keyframe_in_a_stream_is_unavailable_not_a_crash() -> None:
    with trio.fail_after(30):
        async with open_engine() as engine:
            service = SnapshotService(engine, hwaccel=None)
            async with trio.open_nursery() as nursery:
                await nursery.start(service.run)
                publisher = engine.publish_stream("bad", [Track(codec="h264")])
                await trio.testing.wait_all_tasks_blocked()
                sps_pps = clip_parameter_sets("h264")
                junk = b"".join(b"\x00\x00\x00\x01" + n for n in sps_pps) + b"\x00\x00\x00\x01\x65" + bytes(64)
                await _send(publisher, [MediaFrame(codec="h264", data=junk, pts=0, dts=None, keyframe=True)])
                with pytest.raises(SnapshotUnavailable, match="does not decode"):
                    await service.snapshot("bad")
                # A good keyframe afterwards gives a snapshot again.
                await _send(publisher, clip_frames("h264", gop=GOP)[:1])
                assert _luma(await service.snapshot("bad")).shape == (240, 320)
                nursery.cancel_scope.cancel()
