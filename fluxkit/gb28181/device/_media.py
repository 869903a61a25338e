"""The simulated device's media side: a clip muxed to GB28181 PS, packetized as RTP, paced at real time.

Strategy: `MediaSession` holds what the INVITE negotiated (kind, transport, destination, SSRC, playback range)
and the socket prepared before the 200 OK, so the answer carries a real port. `MediaSession.run(clip)` starts
after the ACK and sends one PS pack per access unit (`PsMuxer` then `PsRtpPacketizer`), scheduling frame k at
`anchor + (media_ts - anchor_ts) / 90000 / scale` with `trio.sleep_until`-style deadlines, so the rate does not
drift and a MockClock drives it in tests. The clip loops with continuous timestamps (each pass adds the clip's
period). A playback stops at the end of its `t=` range and reports it; MANSRTSP changes (`PlaybackControl`)
wake the sender, which re-anchors its schedule: speed changes the send rate only, never the timestamps (real
devices do not rescale, wvp#797); a seek jumps the media position to the keyframe at or before it. Under the
`ignore_scale` quirk a Scale is acknowledged and recorded but not applied (many Hikvision NVRs answer 200 and
keep sending at 1x, wvp#2069): the device keeps its current speed.

Transports (GB/T 28181-2016 Appendix F with RFC 4145/4571):
* udp: one RTP packet per datagram from our bound port to the offer's c=/m= address;
* tcp-passive offer (`a=setup:passive`: the platform listens): the device connects to the offer's address;
* tcp-active offer (`a=setup:active`: the platform connects): the device listens on the port of its answer.
TCP carries RFC 4571 framing (2-byte length + RTP).
"""

from __future__ import annotations

import contextlib
import math
from bisect import bisect_right
from collections.abc import Awaitable, Callable
from typing import Literal

import attrs
import trio

from fluxkit.protocols.manscdp import MansrtspRequest
from fluxkit.protocols.ps import ProgramStreamMap, PsmEntry, PsMuxer
from fluxkit.protocols.rtp import frame_rfc4571
from fluxkit.protocols.rtp.payload import PsRtpPacketizer
from fluxkit.sim import LoadedClip

__all__ = ["MediaSession", "MediaStatistics", "PlaybackControl", "hik_ps"]

MediaTransport = Literal["udp", "tcp-passive", "tcp-active"]
_CLOCK = 90000
# Hikvision-style PSM content (gb28181.md: "HK" descriptors, tags 0x40..0x43, in the PSM).
_HK_PROGRAM_INFO = (
    bytes((0x40, 0x0E)) + b"HK" + bytes((0x01, 0x00, 0x18, 0x05, 0x1C, 0x0B, 0x2C, 0x00, 0, 0, 0xFF, 0xFF))
)
_HK_VIDEO_DESCRIPTORS = bytes(
    (0x42, 0x0E, 0x07, 0x10, 0x10, 0xEA, 0x02, 0x80, 0x01, 0x68, 0x11, 0x30, 0, 0, 0x1C, 0x21)
)
_HK_AUDIO_DESCRIPTORS = bytes((0x43, 0x0A, 0x00, 0x90, 0xFE, 0x00, 0x00, 0x1F, 0x40, 0x3E, 0x80, 0x00))
# A private stream 1 PES like the one Hikvision cameras put after the PSM (receivers must drop it).
_HK_PRIVATE_PES = b"\x00\x00\x01\xbd\x00\x10\x80\x00\x00" + b"\x00\x00\x00\x00HKPRIVATE"[:13]


def hik_ps(ps: bytes, video_stream_type: int) -> bytes:
    """Rewrite a keyframe pack Hikvision-style: a PSM with HK descriptors, then a private 0xBD PES.

    Packs without a PSM are returned as they are.
    """
    at = ps.find(b"\x00\x00\x01\xbc", 0, 200)
    if at < 0:
        return ps
    length = int.from_bytes(ps[at + 4 : at + 6], "big")
    psm = ProgramStreamMap(
        entries=(
            PsmEntry(stream_type=video_stream_type, stream_id=0xE0, descriptors=_HK_VIDEO_DESCRIPTORS),
            PsmEntry(stream_type=0x90, stream_id=0xC0, descriptors=_HK_AUDIO_DESCRIPTORS),
        ),
        program_info=_HK_PROGRAM_INFO,
    ).serialize()
    return ps[:at] + psm + _HK_PRIVATE_PES + ps[at + 6 + length :]


class PlaybackControl:
    """MANSRTSP state of one playback (Appendix B), shared between the INFO handler and the sender.

    Args:
        ignore_scale: take PLAY requests but never change speed on their Scale (the `ignore_scale` quirk).
    """

    def __init__(self, *, ignore_scale: bool = False) -> None:
        self.ignore_scale = ignore_scale
        self.scale = 1.0
        self.paused = False
        self.seek_to: float | None = None
        self.requests: list[MansrtspRequest] = []
        self._changed = trio.Event()

    def apply(self, request: MansrtspRequest) -> None:
        """Take one PLAY (Scale, Range), PAUSE or TEARDOWN; wakes the sender."""
        self.requests.append(request)
        if request.method == "PAUSE":
            self.paused = True
        elif request.method == "PLAY":
            self.paused = False
            if request.scale is not None and not self.ignore_scale:
                self.scale = abs(request.scale)  # reverse play is sent forwards: the clip has no reverse GOPs
            if isinstance(request.npt_start, float | int) and not isinstance(request.npt_start, bool):
                self.seek_to = float(request.npt_start)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        """Wait for the next `apply`."""
        await self._changed.wait()


@attrs.define(kw_only=True)
class MediaStatistics:
    """What a session sent."""

    frames: int = 0
    packets: int = 0
    bytes: int = 0
    loops: int = 0


class MediaSession:
    """One negotiated stream of one channel.

    Args:
        channel_id: the channel streamed.
        kind: the SDP `s=` (Play, Playback, Download).
        transport: see module docstring.
        remote: the offer's media address and port.
        ssrc: the SSRC written in RTP.
        host: our media address.
        start, end: the `t=` range of a playback (Unix seconds), 0 0 for live.
        download_speed: `a=downloadspeed` of a Download (sent that many times faster).
        hik: imitate Hikvision's PSM and private PES.
        ignore_scale: acknowledge MANSRTSP Scale changes but keep sending at the current speed (Hikvision NVRs).
    """

    def __init__(
        self,
        *,
        channel_id: str,
        kind: str,
        transport: MediaTransport,
        remote: tuple[str, int],
        ssrc: int,
        host: str,
        start: int = 0,
        end: int = 0,
        download_speed: int | None = None,
        hik: bool = False,
        ignore_scale: bool = False,
    ) -> None:
        self.channel_id = channel_id
        self.kind = kind
        self.transport = transport
        self.remote = remote
        self.ssrc = ssrc
        self.host = host
        self.start = start
        self.end = end
        self.hik = hik
        self.control = PlaybackControl(ignore_scale=ignore_scale)
        if kind == "Download" and download_speed:
            self.control.scale = float(min(max(download_speed, 1), 16))
        self.stats = MediaStatistics()
        self.port = 0
        #: set when the ACK started the sender
        self.started = False
        self.finished = trio.Event()
        self._udp: trio.socket.SocketType | None = None
        self._tcp_socket: trio.socket.SocketType | None = None
        self._listener: trio.SocketListener | None = None
        self._stream: trio.SocketStream | None = None

    @property
    def duration(self) -> float | None:
        """Seconds of a playback/download (from `t=`), None for live (or an open range)."""
        if self.kind in ("Playback", "Download") and self.end > self.start:
            return float(self.end - self.start)
        return None

    async def prepare(self) -> int:
        """Bind what the transport needs before answering; returns the port for the answer's m= line."""
        family = trio.socket.AF_INET6 if ":" in self.host else trio.socket.AF_INET
        if self.transport == "udp":
            self._udp = trio.socket.socket(family, trio.socket.SOCK_DGRAM)
            await self._udp.bind((self.host, 0))
            self.port = self._udp.getsockname()[1]
        elif self.transport == "tcp-passive":
            self._tcp_socket = trio.socket.socket(family, trio.socket.SOCK_STREAM)
            self._tcp_socket.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
            await self._tcp_socket.bind((self.host, 0))
            self.port = self._tcp_socket.getsockname()[1]
        else:
            listeners = await trio.open_tcp_listeners(0, host=self.host)
            self._listener = listeners[0]
            for extra in listeners[1:]:
                await extra.aclose()
            self.port = self._listener.socket.getsockname()[1]
        return self.port

    async def _connect(self) -> None:
        if self.transport == "tcp-passive":
            assert self._tcp_socket is not None
            await self._tcp_socket.connect(self.remote)
            self._stream = trio.SocketStream(self._tcp_socket)
            self._tcp_socket = None
        elif self.transport == "tcp-active":
            assert self._listener is not None
            self._stream = await self._listener.accept()
            await self._listener.aclose()
            self._listener = None
        if self._stream is not None:
            self._stream.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, True)

    async def close(self) -> None:
        """Release the sockets (idempotent)."""
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp_socket is not None:
            self._tcp_socket.close()
            self._tcp_socket = None
        if self._listener is not None:
            await trio.aclose_forcefully(self._listener)
            self._listener = None
        if self._stream is not None:
            await trio.aclose_forcefully(self._stream)
            self._stream = None

    async def _send(self, payloads: list[bytes]) -> None:
        if self._udp is not None:
            for payload in payloads:
                # OSError: ICMP port unreachable from an earlier datagram, the platform is not listening yet.
                with contextlib.suppress(OSError):
                    await self._udp.sendto(payload, self.remote)
        else:
            assert self._stream is not None
            await self._stream.send_all(b"".join(frame_rfc4571(p) for p in payloads))

    async def run(
        self,
        clip: LoadedClip,
        *,
        timestamp_base: int = 0,
        sequence_base: int = 0,
        on_frame: Callable[[MediaSession], Awaitable[None]] | None = None,
    ) -> bool:
        """Stream until cancelled (live) or until the end of the range (playback; returns True).

        Returns False when a TCP peer went away. The sockets are closed on the way out.
        """
        try:
            await self._connect()
            return await self._pump(clip, timestamp_base, sequence_base, on_frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            return False
        finally:
            self.finished.set()
            with trio.CancelScope(shield=True):
                await self.close()

    async def _pump(
        self,
        clip: LoadedClip,
        timestamp_base: int,
        sequence_base: int,
        on_frame: Callable[[MediaSession], Awaitable[None]] | None,
    ) -> bool:
        codec = clip.track.codec
        muxer = PsMuxer(codec)
        stream_type = 0x24 if codec == "hevc" else 0x1B
        packetizer = PsRtpPacketizer(ssrc=self.ssrc, initial_sequence=sequence_base & 0xFFFF)
        frames = clip.frames
        count = len(frames)
        dts_list = [f[2] for f in frames]
        keyframes = [k for k, f in enumerate(frames) if f[3]]
        period = clip.period
        duration = self.duration
        limit = None if duration is None else round(duration * _CLOCK)
        control = self.control
        index, loop = 0, 0  # next frame
        anchor_wall = trio.current_time()
        anchor_media = 0
        while True:
            if control.seek_to is not None:
                # Appendix B: Range npt is seconds from the start of the recording; resume at the keyframe before.
                target = max(0, round(control.seek_to * _CLOCK))
                control.seek_to = None
                if limit is not None:
                    target = min(target, limit)
                loop, within = divmod(target, period) if period > 0 else (0, target)
                at = bisect_right(dts_list, within) - 1
                key = max((k for k in keyframes if k <= at), default=keyframes[0] if keyframes else 0)
                index = key
                anchor_wall, anchor_media = trio.current_time(), loop * period + dts_list[index]
            if control.paused:
                await control.wait_changed()
                anchor_wall, anchor_media = trio.current_time(), loop * period + dts_list[index]
                continue
            data, pts, dts, keyframe = frames[index]
            media_ts = loop * period + dts
            if limit is not None and media_ts >= limit:
                return True
            scale = control.scale if math.isfinite(control.scale) and control.scale > 0 else 1.0
            due = anchor_wall + (media_ts - anchor_media) / _CLOCK / scale
            changed = False
            if due > trio.current_time():
                with trio.move_on_at(due):
                    await control.wait_changed()
                    changed = True
            if changed:
                anchor_wall, anchor_media = trio.current_time(), media_ts
                continue
            ps = muxer.mux_video(
                data, pts=timestamp_base + loop * period + pts, dts=timestamp_base + media_ts, keyframe=keyframe
            )
            if self.hik and keyframe:
                ps = hik_ps(ps, stream_type)
            packets = packetizer.packetize(ps, (timestamp_base + media_ts) & 0xFFFFFFFF)
            payloads = [p.serialize() for p in packets]
            await self._send(payloads)
            self.stats.frames += 1
            self.stats.packets += len(payloads)
            self.stats.bytes += sum(map(len, payloads))
            if on_frame is not None:
                await on_frame(self)
            index += 1
            if index >= count:
                index = 0
                loop += 1
                self.stats.loops += 1
