"""JPEG thumbnails of keyframes: one long-lived PyAV decoder per stream, fed only keyframe access units.

Strategy: opening a decoder costs more than decoding one keyframe (performance.md, "Decoding for thumbnails"), so
a `ThumbnailDecoder` keeps its decoder, its scaler and its mjpeg encoder open for the life of the stream. The
decoder runs with low-delay flags and slice threads only (frame threads would hold frames back); a keyframe that
still yields no frame (a stream whose SPS asks for reordering) is drained with a flush, and the decoder reset so
that the next keyframe starts clean. The picture is scaled to `width` (aspect kept, even sizes) in `yuvj420p` and
encoded at a fixed quantiser derived from `quality`. No PIL.

Hardware decode: `probe_hwaccel` tries each candidate device type at run time, by opening the decoder with
`HWAccel(device, allow_software_fallback=False)` and decoding a tiny keyframe it generates (a decoder with a
hardware config that cannot reach its device fails there). PyAV's wheel compiles in cuda, qsv, drm and amf but
not VAAPI; the native h264/hevc decoders only carry a cuda config, so qsv goes through FFmpeg's dedicated
`h264_qsv`/`hevc_qsv` decoders. When nothing works, one log line on the `fluxkit.keyframes` logger says why for
each device and that thumbnails are decoded in software. A hardware decoder that fails later falls back to
software for that stream, with a log line too.

Everything here blocks: call it from a worker thread (`ThumbnailDecoder.thumbnail` does, through
`trio.to_thread.run_sync` with a per-decoder `CapacityLimiter(1)`).
"""

from __future__ import annotations

import io
import logging
import threading
from fractions import Fraction
from typing import cast

import attrs
import av
import av.codec.context
import av.codec.hwaccel
import av.error
import av.video.reformatter
import trio

from fluxkit.errors import LocalProtocolError, RemoteProtocolError

from ._extractor import Keyframe

__all__ = [
    "DEFAULT_JPEG_QUALITY",
    "DEFAULT_THUMBNAIL_WIDTH",
    "HWACCEL_CANDIDATES",
    "HwaccelProbe",
    "ThumbnailDecoder",
    "probe_hwaccel",
]

_log = logging.getLogger("fluxkit.keyframes")

#: Thumbnail width in pixels when none is given (the height follows the aspect ratio).
DEFAULT_THUMBNAIL_WIDTH = 320
#: JPEG quality (1..100) when none is given.
DEFAULT_JPEG_QUALITY = 80
#: Device types `hwaccel="auto"` tries, in order.
HWACCEL_CANDIDATES = ("cuda", "qsv", "vaapi")

_CODECS = {"h264": "h264", "hevc": "hevc", "h265": "hevc"}
_HWACCEL_CHOICES = frozenset({"auto", *HWACCEL_CANDIDATES, "drm", "amf"})
# NVDEC's smallest H.265 picture is 144x144 (H.264: 48x16); the probe keyframe must be legal for every device.
_PROBE_SIZE = (192, 144)


@attrs.frozen(kw_only=True, slots=True)
class HwaccelProbe:
    """What `probe_hwaccel` found.

    Attributes:
        codec: "h264" or "hevc".
        device: the first device type that decoded the probe keyframe, or None (software).
        reasons: (device type, why it was not usable) for each candidate tried before `device`.
    """

    codec: str
    device: str | None
    reasons: tuple[tuple[str, str], ...]

    def describe(self) -> str:
        """ "cuda: <reason>, qsv: <reason>" for the log line."""
        return ", ".join(f"{d}: {r}" for d, r in self.reasons) or "none tried"


_probe_lock = threading.Lock()
_probe_cache: dict[tuple[str, tuple[str, ...]], HwaccelProbe] = {}
_probe_keyframes: dict[str, bytes] = {}


def _probe_keyframe(codec: str) -> bytes:
    """A tiny flat-grey keyframe (Annex-B, parameter sets included), encoded once per process."""
    data = _probe_keyframes.get(codec)
    if data is None:
        buf = io.BytesIO()
        with av.open(buf, "w", format="h264" if codec == "h264" else "hevc") as out:
            stream = out.add_stream("libx264" if codec == "h264" else "libx265", rate=25)
            stream.width, stream.height = _PROBE_SIZE
            stream.pix_fmt = "yuv420p"
            if codec == "hevc":
                stream.options = {"preset": "ultrafast", "x265-params": "log-level=error"}
            else:
                stream.options = {"preset": "ultrafast"}
            frame = av.VideoFrame(_PROBE_SIZE[0], _PROBE_SIZE[1], "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([128]) * plane.buffer_size)
            frame.pts = 0
            for packet in stream.encode(frame):
                out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        data = _probe_keyframes[codec] = buf.getvalue()
    return data


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _open_decoder(codec: str, device: str | None) -> av.VideoCodecContext:
    """A decoder for `codec` on `device` (None: software). Raises an explanatory RuntimeError if impossible."""
    if device is None:
        ctx = cast(av.VideoCodecContext, av.CodecContext.create(codec, "r"))
    elif device not in av.codec.hwaccel.hwdevices_available():
        built = ", ".join(av.codec.hwaccel.hwdevices_available())
        raise RuntimeError(f"not compiled into this FFmpeg build (it has {built})")
    elif any(c.device_type.name == device for c in av.Codec(codec, "r").hardware_configs):
        hwaccel = av.codec.hwaccel.HWAccel(device, allow_software_fallback=False)
        ctx = cast(av.VideoCodecContext, av.CodecContext.create(codec, "r", hwaccel=hwaccel))
        if not ctx.is_hwaccel:
            raise RuntimeError(f"the {codec} decoder did not take the {device} device")
    elif f"{codec}_{device}" in av.codecs_available:
        # A dedicated hardware decoder (h264_qsv...): it opens its own device and fails at decode time without one.
        ctx = cast(av.VideoCodecContext, av.CodecContext.create(f"{codec}_{device}", "r"))
    else:
        raise RuntimeError(f"no {device} decoder for {codec} in this FFmpeg build")
    ctx.flags |= av.codec.context.Flags.low_delay
    ctx.flags2 |= av.codec.context.Flags2.fast
    ctx.thread_type = "SLICE"
    return ctx


def _decode_one(ctx: av.VideoCodecContext, data: bytes) -> av.VideoFrame | None:
    """Decode one keyframe access unit into one frame, draining the decoder when it holds the frame back."""
    frames = ctx.decode(av.Packet(data))
    if not frames:
        frames = ctx.decode(None)
        ctx.flush_buffers()  # leave the draining state so the next keyframe can be sent
    frame = frames[-1] if frames else None
    return frame if isinstance(frame, av.VideoFrame) else None


def probe_hwaccel(codec: str = "h264", candidates: tuple[str, ...] = HWACCEL_CANDIDATES) -> HwaccelProbe:
    """Find a hardware decoder that works here, at run time; cached per codec and candidate list.

    Each candidate device type is tried by opening the decoder with `allow_software_fallback=False` and decoding
    a tiny generated keyframe. When none works, logs one line (warning) on `fluxkit.keyframes` naming each
    candidate and why it failed, ending "decoding thumbnails in software". Blocking (a worker thread's job).

    Args:
        codec: "h264" or "hevc".
        candidates: device types to try, in order.
    """
    codec = _check_codec(codec)
    key = (codec, tuple(candidates))
    with _probe_lock:
        found = _probe_cache.get(key)
        if found is not None:
            return found
        reasons: list[tuple[str, str]] = []
        device: str | None = None
        for candidate in candidates:
            try:
                ctx = _open_decoder(codec, candidate)
                if _decode_one(ctx, _probe_keyframe(codec)) is None:
                    raise RuntimeError("decoded no picture")
            except (av.error.FFmpegError, RuntimeError, NotImplementedError, OSError, ValueError) as exc:
                reasons.append((candidate, _describe(exc)))
                continue
            device = candidate
            break
        found = HwaccelProbe(codec=codec, device=device, reasons=tuple(reasons))
        _probe_cache[key] = found
    if device is None:
        _log.warning("no hardware decoder (%s); decoding %s thumbnails in software", found.describe(), codec)
    else:
        _log.info("decoding %s thumbnails on %s", codec, device)
    return found


def _check_codec(codec: str) -> str:
    try:
        return _CODECS[codec]
    except KeyError:
        raise LocalProtocolError(f"unknown codec {codec!r}: expected 'h264' or 'hevc'") from None


def _qscale(quality: int) -> int:
    """JPEG quality 1..100 to the mjpeg encoder's fixed quantiser 31..2 (lower is better)."""
    return round(2 + (100 - quality) * 29 / 99)


class ThumbnailDecoder:
    """Keyframe access units in, JPEG thumbnails out; one per stream, kept open for the stream's life.

    Args:
        codec: "h264" or "hevc".
        width: thumbnail width in pixels (never more than the picture's); the height keeps the aspect ratio.
        quality: JPEG quality, 1 (smallest) to 100 (best).
        hwaccel: "auto" (probe `HWACCEL_CANDIDATES`), one device type ("cuda", "qsv", "vaapi", "drm", "amf"),
            or None for software only. An unusable device falls back to software with a log line.
    """

    def __init__(
        self,
        codec: str,
        *,
        width: int = DEFAULT_THUMBNAIL_WIDTH,
        quality: int = DEFAULT_JPEG_QUALITY,
        hwaccel: str | None = "auto",
    ) -> None:
        self.codec = _check_codec(codec)
        if not 16 <= width <= 7680:
            raise LocalProtocolError(f"width must be 16..7680, not {width!r}")
        if not 1 <= quality <= 100:
            raise LocalProtocolError(f"quality must be 1..100, not {quality!r}")
        if hwaccel is not None and hwaccel not in _HWACCEL_CHOICES:
            raise LocalProtocolError(f"hwaccel must be one of {sorted(_HWACCEL_CHOICES)} or None, not {hwaccel!r}")
        self.width = width
        self.quality = quality
        self.hwaccel = hwaccel
        #: Keyframes decoded.
        self.decoded = 0
        self._ctx: av.VideoCodecContext | None = None
        self._device: str | None = None
        self._encoder: av.VideoCodecContext | None = None
        self._encoder_size = (0, 0)
        self._encoded = 0
        self._reformatter = av.video.reformatter.VideoReformatter()
        self._limiter = trio.CapacityLimiter(1)

    @property
    def hwaccel_device(self) -> str | None:
        """The device decoding now ("cuda", ...), or None for software (also before the first keyframe)."""
        return self._device

    def _decoder(self) -> av.VideoCodecContext:
        if self._ctx is None:
            device = None
            if self.hwaccel is not None:
                candidates = HWACCEL_CANDIDATES if self.hwaccel == "auto" else (self.hwaccel,)
                device = probe_hwaccel(self.codec, candidates).device
            self._ctx = _open_decoder(self.codec, device)
            self._device = device
        return self._ctx

    def decode(self, keyframe: bytes | Keyframe) -> av.VideoFrame:
        """Decode one self-contained keyframe access unit to a picture in host memory.

        Raises:
            RemoteProtocolError: the access unit does not decode to a picture (it is not a keyframe, lacks its
                parameter sets, or is corrupt). The decoder is reset and stays usable.
        """
        data = keyframe.data if isinstance(keyframe, Keyframe) else bytes(keyframe)
        ctx = self._decoder()
        try:
            frame = _decode_one(ctx, data)
        except av.error.FFmpegError as exc:
            ctx.flush_buffers()
            if self._device is None:
                raise RemoteProtocolError(f"keyframe does not decode: {_describe(exc)}") from exc
            _log.warning(
                "%s decoder failed (%s); decoding this stream's %s thumbnails in software",
                self._device,
                _describe(exc),
                self.codec,
            )
            self._ctx = _open_decoder(self.codec, None)
            self._device = None
            return self.decode(data)
        if frame is None:
            raise RemoteProtocolError("keyframe access unit decoded to no picture")
        self.decoded += 1
        return frame

    def encode(self, frame: av.VideoFrame) -> bytes:
        """Scale a decoded picture to the thumbnail size and encode it as a baseline JPEG."""
        src_w, src_h = frame.width, frame.height
        width = min(self.width, src_w) & ~1 or 2
        height = max(2, round(width * src_h / src_w / 2) * 2)
        small = self._reformatter.reformat(
            frame, width=width, height=height, format="yuvj420p", interpolation="AREA", threads=1
        )
        encoder = self._encoder
        if encoder is None or self._encoder_size != (width, height):
            q = str(_qscale(self.quality))
            encoder = av.CodecContext.create("mjpeg", "w")
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
            encoder.time_base = Fraction(1, 25)
            encoder.options = {"qmin": q, "qmax": q}  # constant quantiser: size follows the picture, not a bitrate
            encoder.open()
            self._encoder = encoder
            self._encoder_size = (width, height)
        small.pts = self._encoded  # the encoder rejects repeated timestamps
        self._encoded += 1
        return b"".join(bytes(p) for p in encoder.encode(small))

    def render(self, keyframe: bytes | Keyframe) -> bytes:
        """`decode` then `encode`: the JPEG thumbnail of one keyframe (blocking)."""
        return self.encode(self.decode(keyframe))

    async def thumbnail(self, keyframe: bytes | Keyframe) -> bytes:
        """`render` in a worker thread, one at a time per decoder (a decoder is not thread-safe)."""
        return await trio.to_thread.run_sync(self.render, keyframe, limiter=self._limiter)
