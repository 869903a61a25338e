"""ThumbnailDecoder and the hardware-decode probe: valid JPEGs, right sizes, faithful pictures, clean fallback."""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest
import trio

from fluxkit.errors import LocalProtocolError, RemoteProtocolError
from fluxkit.keyframes import Keyframe, KeyframeExtractor, ThumbnailDecoder, _thumbnail, probe_hwaccel

from .helpers import clip_frames, decode_alone, psnr

CODECS = ["h264", "hevc"]


def _keyframes(codec: str) -> list[Keyframe]:
    extractor = KeyframeExtractor(0)
    found = [extractor.feed(f, i / 25) for i, f in enumerate(clip_frames(codec))]
    return [k for k in found if k is not None]


def _read_jpeg(jpeg: bytes) -> av.VideoFrame:
    assert jpeg.startswith(b"\xff\xd8")  # SOI
    assert jpeg.endswith(b"\xff\xd9")  # EOI
    ctx = av.CodecContext.create("mjpeg", "r")
    frames = list(ctx.decode(av.Packet(jpeg))) + list(ctx.decode(None))
    assert len(frames) == 1
    frame = frames[0]
    assert isinstance(frame, av.VideoFrame)
    return frame


@pytest.mark.parametrize("codec", CODECS)
def test_thumbnail_is_a_faithful_jpeg(codec: str) -> None:
    decoder = ThumbnailDecoder(codec, width=160, quality=90, hwaccel=None)
    for keyframe in _keyframes(codec):
        picture = _read_jpeg(decoder.render(keyframe))
        assert (picture.width, picture.height) == (160, 120)  # 320x240 scaled, aspect kept
        reference = decode_alone(codec, keyframe.data).reformat(width=160, height=120, format="yuvj420p")
        luma = picture.reformat(format="yuvj420p").to_ndarray()[:120]
        assert psnr(luma, reference.to_ndarray()[:120]) > 30
    assert decoder.decoded == 6
    assert decoder.hwaccel_device is None


def test_width_never_upscales_and_sizes_stay_even() -> None:
    keyframe = _keyframes("h264")[0]
    assert _read_jpeg(ThumbnailDecoder("h264", width=1000, hwaccel=None).render(keyframe)).width == 320
    odd = _read_jpeg(ThumbnailDecoder("h264", width=101, hwaccel=None).render(keyframe))
    assert (odd.width, odd.height) == (100, 76)


def test_quality_changes_the_size() -> None:
    keyframe = _keyframes("h264")[0]
    small = ThumbnailDecoder("h264", quality=10, hwaccel=None).render(keyframe)
    large = ThumbnailDecoder("h264", quality=100, hwaccel=None).render(keyframe)
    assert len(small) < len(large)


def test_bad_keyframe_raises_and_the_decoder_recovers() -> None:
    decoder = ThumbnailDecoder("h264", hwaccel=None)
    with pytest.raises(RemoteProtocolError):
        decoder.render(b"\x00\x00\x00\x01\x65" + bytes(50))
    assert _read_jpeg(decoder.render(_keyframes("h264")[1])).width == 320


def test_bad_arguments() -> None:
    with pytest.raises(LocalProtocolError):
        ThumbnailDecoder("vp8")
    with pytest.raises(LocalProtocolError):
        ThumbnailDecoder("h264", width=8)
    with pytest.raises(LocalProtocolError):
        ThumbnailDecoder("h264", quality=0)
    with pytest.raises(LocalProtocolError):
        ThumbnailDecoder("h264", hwaccel="opengl")


@pytest.mark.parametrize("codec", CODECS)
def test_hwaccel_probe_falls_back_cleanly(codec: str, caplog: pytest.LogCaptureFixture) -> None:
    # This machine has no GPU: every candidate fails and one line says why, per device (on a GPU host the probe
    # finds cuda instead; scripts/gpu_check.py covers that case).
    candidates = ("cuda", "qsv", "vaapi")
    with caplog.at_level(logging.INFO, logger="fluxkit.keyframes"):
        _thumbnail._probe_cache.pop((codec, candidates), None)
        result = probe_hwaccel(codec, candidates)
    if result.device is not None:
        pytest.skip(f"a {result.device} decoder works here")
    assert [d for d, _ in result.reasons] == list(candidates)
    assert "not compiled into this FFmpeg build" in dict(result.reasons)["vaapi"]
    lines = [r for r in caplog.records if r.name == "fluxkit.keyframes"]
    assert len(lines) == 1
    message = lines[0].getMessage()
    assert lines[0].levelno == logging.WARNING
    assert message.startswith("no hardware decoder (cuda: ")
    assert ", qsv: " in message
    assert ", vaapi: " in message
    assert message.endswith(f"decoding {codec} thumbnails in software")
    # The auto decoder then works in software.
    decoder = ThumbnailDecoder(codec, hwaccel="auto")
    assert _read_jpeg(decoder.render(_keyframes(codec)[0])).width == 320
    assert decoder.hwaccel_device is None


def test_forced_device_that_is_absent_falls_back() -> None:
    decoder = ThumbnailDecoder("h264", hwaccel="vaapi")
    assert _read_jpeg(decoder.render(_keyframes("h264")[0])).width == 320
    assert decoder.hwaccel_device is None


@pytest.mark.trio
async def test_async_thumbnail_runs_in_a_thread() -> None:
    decoder = ThumbnailDecoder("hevc", hwaccel=None)
    keyframes = _keyframes("hevc")
    results: list[bytes] = [b""] * len(keyframes)

    async def one(i: int) -> None:
        results[i] = await decoder.thumbnail(keyframes[i])

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for i in range(len(keyframes)):
                nursery.start_soon(one, i)
    sync = ThumbnailDecoder("hevc", hwaccel=None)
    for keyframe, jpeg in zip(keyframes, results, strict=True):
        a = _read_jpeg(jpeg).reformat(format="yuvj420p").to_ndarray()
        b = _read_jpeg(sync.render(keyframe)).reformat(format="yuvj420p").to_ndarray()
        assert np.array_equal(a, b)
