"""`Gb28181Source`: a channel's live video as an engine `Source` (INVITE, PS over RTP in, BYE).

Strategy: one `run` call is one media session (a "try"); the engine's supervisor restarts it with backoff when
it raises anything but `PermanentSourceError`, which gives re-INVITE after a device restart, an inactivity
timeout or a device that is offline for now. A try:

1. takes a media endpoint before the INVITE, so its port can go in the offer: a UDP socket from the platform's
   port pool (or a slot on the platform's shared port, demultiplexed by SSRC), a TCP listener (tcp-passive: the
   device connects to us), or just a port number (tcp-active: we connect to the device's port from the answer);
2. draws a 10-digit SSRC (`Gb28181Platform.new_ssrc`, Appendix F), sends the INVITE with the SDP offer and waits
   for the answer; the SSRC to expect is the answer's `y=` (devices in another domain pick their own);
3. receives RTP in batches: UDP through `DatagramReceiver` and a `ReorderBuffer`, TCP through `TcpRtpDeframer`
   (RFC 4571 or `$`-interleaved, resynchronising). `_MediaSink` locks onto the SSRC: the expected one, or else
   the first that arrives (Dahua sends 0, Hikvision platforms their own; gb28181.md), switching to the expected
   one if it shows up later; packets of other SSRCs are dropped and counted;
4. demuxes PS (`PsOverRtpReceiver`) and publishes frames; the tracks come from the first frames' codecs (the
   PSM's stream types), and a codec that appears later is added with `update_tracks`;
5. ends with an error when no packet came for `media_timeout` seconds, the device sent BYE, or the device
   restarted or went offline (the platform's generation counter for the device moved); leaving the try for any
   reason sends BYE in a shielded scope and frees the port and the SSRC.

Playback timestamps (`_Restamper`). A device playing its recording at Scale N sends N times faster but leaves
the timestamps on the recording's clock (gb28181.md, wvp#797), and a seek makes them jump. The engine stream of a
playback is a live stream like any other (recorded by wall clock, re-streamed to players that pace by pts), so it
carries timestamps on the receiving clock: between two control changes, engine time advances by device time
advance / |Scale|, i.e. as fast as the frames arrive (a 4x playback of 10 s of recording is a 2.5 s stream whose
frames are 10 ms apart at 25 fps); PTS-DTS offsets are divided the same way. The mapping is affine and re-anchored
at the last frame whenever the speed changes (`set_speed` answered 200; the speed given to the constructor
applies from the first frame), and after a seek, a jump of more than `_JUMP_LIMIT` forwards or a step back of more
than `_BACK_LIMIT` (the next frame then follows the last one by the last frame step), so engine timestamps stay
continuous and increasing. Pause sends nothing and moves no timestamp. The first frame keeps its own timestamp,
so a playback at 1x without seeks is passed through unchanged. Known limit: frames already in flight when a
speed change is answered are stamped with the new scale (an error of one or two frames' duration).

Devices that ignore Scale. Many Hikvision NVRs answer 200 to a Scale change and keep sending at 1x (gb28181.md,
wvp#2069); stamping their frames at the requested speed would squeeze the stream by that factor. So the
restamper also measures the rate the device actually sends at: device-time advance per receive-clock second over
a sliding window of the last `_RATE_WINDOW` seconds (one sample per received batch). Once the window spans
`_RATE_MIN_SPAN` seconds, the observed rate, snapped to the nearest standard speed when within `_RATE_TOLERANCE`
of it (0.25 .. 16; receive jitter otherwise makes the stamps wobble), replaces the scale in use whenever the two
disagree by more than that tolerance (re-anchored at the last frame, as for a speed change), so the timestamps
follow the receive clock; a device that obeys measures at its requested speed and is stamped exactly as asked.
The first disagreement with the requested speed in a session (one INVITE) is logged as a warning, kept in
`Gb28181Source.scale_mismatch` and published as a `ScaleMismatchDetected` event (the platform's events and the
engine's feed, with the stream's id); later ones in the same session are not reported again. The measurement
restarts at every control change (speed, pause, resume, seek), at a discontinuity and after `_RATE_GAP` seconds
without frames (a pause the platform did not ask for, a stall), so silence is never mistaken for slow sending.
Frames of the first `_RATE_MIN_SPAN` seconds after a change are stamped at the requested speed: a device that
ignores it gets that much of its stream squeezed before the correction.

Per-packet work is `parse_rtp`, an SSRC compare, the reorder buffer's in-order fast path and the PS
depacketizer; datagrams arrive as one list per wake-up (performance.md).

Download (`download_speed`): the INVITE says `s=Download` with `a=downloadspeed:N` (Appendix F) and the device
sends its recording about N times faster. A download is meant to be stored, not watched, so its frames are NOT
restamped: they keep the device's own recording clock, and the engine stream (and a recording of it) gets the
clip's real frame spacing, whatever the transfer speed. A player pacing that stream live would run N times slow
behind the transfer; record it and play the recording instead. Like a playback it ends at MediaStatus 121. The
stream is published with a `WallOrigin` (the first frame received was captured at the range's start, `t=`'s first
value), so the recorder indexes it at its original times, not at the time it arrived: a download of 10:00-10:05
made at 14:00 in 75 s is stored as five minutes from 10:00. Playbacks and live streams have no origin. A download
that fails once frames have flowed is not retried (a retry starts over and would record the start twice).
"""

from __future__ import annotations

import errno
import logging
import math
import socket
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs, urlsplit

import trio

from fluxkit.engine import PermanentSourceError, Publisher, SourceSession, Track, WallOrigin
from fluxkit.errors import ProtocolError
from fluxkit.net._udp import DatagramReceiver, bind_udp
from fluxkit.protocols._media import MediaFrame
from fluxkit.protocols.manscdp import MansrtspRequest
from fluxkit.protocols.nalu import split_annexb
from fluxkit.protocols.rtp import ReorderBuffer, RtpPacket, TcpRtpDeframer, parse_rtp
from fluxkit.protocols.rtp.payload import PsOverRtpReceiver
from fluxkit.protocols.sdp import build_gb28181_offer, parse_sdp

from ._events import ScaleMismatchDetected
from ._settings import DeviceNotFoundError, DeviceOfflineError, Gb28181Error

if TYPE_CHECKING:
    from fluxkit.protocols.sip import Dialog

    from ._platform import Gb28181Platform

__all__ = ["DEFAULT_MAX_TCP_PACKET", "Gb28181Source", "Gb28181SourceError", "SharedMediaPort"]

logger = logging.getLogger("fluxkit.gb28181")

MediaTransport = Literal["udp", "tcp-passive", "tcp-active"]
_TRANSPORTS = ("udp", "tcp-passive", "tcp-active")
#: Largest RTP packet accepted on a TCP media connection (GB28181 devices send about 1.4 KB; some up to 8 KB).
DEFAULT_MAX_TCP_PACKET = 16384
_TCP_READ = 65536
_BYE_TIMEOUT = 2.0


class Gb28181SourceError(Gb28181Error):
    """A live session failed in a way a retry may fix (the engine restarts the source)."""


_JUMP_LIMIT = 5 * 90000  # a forward step larger than this (device time) is a discontinuity, not playback
_BACK_LIMIT = 90000  # audio may be stamped a little behind video; a larger step back is a discontinuity
_RATE_WINDOW = 3.0  # seconds of receive clock over which the device's sending rate is measured
_RATE_MIN_SPAN = 1.0  # the rate is judged only once the window spans this much
_RATE_GAP = 1.0  # no frame for this long restarts the measurement (pause, stall)
_RATE_TOLERANCE = 0.2  # relative difference under which two rates agree (receive jitter is a few percent)
_SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # Appendix B's speeds, and the download speeds devices offer


def _snap(rate: float) -> float:
    """`rate`, or the standard speed it is within `_RATE_TOLERANCE` of."""
    for speed in _SPEEDS:
        if abs(rate / speed - 1.0) <= _RATE_TOLERANCE:
            return speed
    return rate


class _Restamper:
    """Device playback timestamps onto the receiving clock (see the module docstring, "Playback timestamps" and
    "Devices that ignore Scale").

    Args:
        scale: the requested speed (absolute value), used from the first frame on.
        on_mismatch: called with (requested, observed) each time the measured rate starts to disagree with the
            requested speed.
    """

    __slots__ = (
        "in_anchor",
        "last_in",
        "last_out",
        "on_mismatch",
        "out_anchor",
        "rebase",
        "requested",
        "samples",
        "scale",
        "step",
    )

    def __init__(self, scale: float, on_mismatch: Callable[[float, float], None] | None = None) -> None:
        self.scale = scale  # the scale in use: the requested one, or the observed one when they disagree
        self.requested = scale
        self.on_mismatch = on_mismatch
        self.in_anchor: int | None = None  # device time of the anchor; None until the first frame
        self.out_anchor = 0
        self.last_in = 0
        self.last_out = 0
        self.step = 3600  # the last engine-time step between frames (what follows a discontinuity)
        self.rebase = False
        self.samples: deque[tuple[float, int]] = deque()  # (receive time, device time) of recent batches

    def set_scale(self, scale: float) -> None:
        """Use `scale` (a newly requested speed) from the next frame on, continuing from the last one."""
        self._use(scale)
        self.requested = scale
        self.samples.clear()

    def restart_measurement(self) -> None:
        """Forget the rate measured so far (a pause, a resume: the device's sending changes)."""
        self.samples.clear()

    def _use(self, scale: float) -> None:
        if self.in_anchor is not None:
            self.in_anchor, self.out_anchor = self.last_in, self.last_out
        self.scale = scale

    def restamp(self, frames: list[MediaFrame], now: float | None = None) -> list[MediaFrame]:
        """Map a batch received at `now` (None: do not measure the rate with it)."""
        out = []
        scale = self.scale
        seen = False
        for frame in frames:
            t = frame.dts if frame.dts is not None else frame.pts
            if t is None:
                out.append(frame)
                continue
            seen = True
            if self.in_anchor is None:
                self.in_anchor = self.out_anchor = self.last_in = self.last_out = t
            delta = t - self.last_in
            if self.rebase or delta > _JUMP_LIMIT or delta < -_BACK_LIMIT:
                self.rebase = False
                self.in_anchor, self.out_anchor = t, self.last_out + self.step
                self.samples.clear()  # the device time jumped: the rate starts afresh
            mapped = self.out_anchor + round((t - self.in_anchor) / scale)
            if mapped > self.last_out:
                self.step = mapped - self.last_out
            self.last_in, self.last_out = t, mapped
            pts = frame.pts
            dts = frame.dts
            if dts is not None:
                dts = mapped
                if pts is not None:
                    pts = mapped + round((frame.pts - frame.dts) / scale)  # type: ignore[operator]
            else:
                pts = mapped
            out.append(
                MediaFrame(
                    codec=frame.codec,
                    data=frame.data,
                    pts=pts,
                    dts=dts,
                    keyframe=frame.keyframe,
                    stream_id=frame.stream_id,
                )
            )
        if seen and now is not None:
            self._measure(now)
        return out

    def _measure(self, now: float) -> None:
        samples = self.samples
        if samples and now - samples[-1][0] > _RATE_GAP:
            samples.clear()
        samples.append((now, self.last_in))
        while now - samples[0][0] > _RATE_WINDOW:
            samples.popleft()
        first_time, first_in = samples[0]
        span = now - first_time
        if span < _RATE_MIN_SPAN or self.last_in <= first_in:
            return
        observed = _snap((self.last_in - first_in) / 90000 / span)
        if abs(observed / self.scale - 1.0) <= _RATE_TOLERANCE:
            return
        self._use(observed)  # the device sends at another speed than the one in use: follow it from now on
        if self.on_mismatch is not None and abs(observed / self.requested - 1.0) > _RATE_TOLERANCE:
            self.on_mismatch(self.requested, observed)


class _MediaSink:
    """RTP packets of one session in, frames to the engine out (see the module docstring, step 3 and 4)."""

    __slots__ = (
        "expected",
        "foreign",
        "last_packet",
        "locked",
        "malformed",
        "origin_us",
        "packets",
        "publisher",
        "receiver",
        "reorder",
        "restamper",
        "session",
    )

    def __init__(self, session: SourceSession, *, reorder: bool) -> None:
        self.session = session
        self.receiver = PsOverRtpReceiver()
        self.reorder = ReorderBuffer() if reorder else None
        self.expected: int | None = None
        self.locked: int | None = None
        self.publisher: Publisher | None = None
        self.last_packet = trio.current_time()
        self.packets = 0
        self.malformed = 0
        self.foreign = 0
        self.restamper: _Restamper | None = None
        #: UTC µs at which the first frame was captured (a download's range start); None: live, placed by arrival.
        self.origin_us: int | None = None

    def feed(self, datagrams: list[bytes], now: float) -> None:
        frames: list[MediaFrame] = []
        receiver = self.receiver
        reorder = self.reorder
        locked = self.locked
        before = self.packets
        for data in datagrams:
            try:
                packet = parse_rtp(data)
            except ProtocolError:
                self.malformed += 1
                continue
            ssrc = packet.ssrc
            if ssrc != locked:
                if locked is not None and ssrc != self.expected:
                    self.foreign += 1
                    continue
                if locked is not None:
                    receiver.feed_gap()  # the expected SSRC showed up after we locked onto another
                locked = self.locked = ssrc
            self.packets += 1
            if reorder is None:
                frames += receiver.feed(packet)
                continue
            for item in reorder.push(packet, now):
                if isinstance(item, RtpPacket):
                    frames += receiver.feed(item)
                else:
                    receiver.feed_gap()
        if self.packets != before:
            self.last_packet = now
        if frames:
            self._publish(frames, now)

    def handle_timer(self, now: float) -> None:
        if self.reorder is None:
            return
        frames: list[MediaFrame] = []
        for item in self.reorder.handle_timer(now):
            if isinstance(item, RtpPacket):
                frames += self.receiver.feed(item)
            else:
                self.receiver.feed_gap()
        if frames:
            self._publish(frames, now)

    def _publish(self, frames: list[MediaFrame], now: float) -> None:
        if self.restamper is not None:
            frames = self.restamper.restamp(frames, now)
        publisher = self.publisher
        if publisher is None:
            tracks = _tracks_of(frames)
            origin = None
            stamps = [t for f in frames if (t := f.pts if f.dts is None else f.dts) is not None]
            if self.origin_us is not None and stamps:  # a download: its first frame is the range's start
                origin = WallOrigin(epoch_us=self.origin_us, timestamp=stamps[0])
            publisher = self.publisher = self.session.publish(tracks, wall_origin=origin)
        else:
            known = {t.codec for t in publisher.tracks}
            new = [t for t in _tracks_of(frames) if t.codec not in known]
            if new:
                publisher.update_tracks([*publisher.tracks, *new])
        publisher.send_all(frames)

    def report(self) -> None:
        if self.publisher is not None and not self.publisher.closed:
            dropped = self.receiver.statistics().frames_dropped
            if dropped:
                self.publisher.report_losses(dropped)


def _tracks_of(frames: list[MediaFrame]) -> list[Track]:
    """One track per codec; video tracks carry size, rate and parameter sets from their first keyframe's SPS."""
    first: dict[str, MediaFrame] = {}
    for frame in frames:
        if frame.codec not in first or (frame.keyframe and not first[frame.codec].keyframe):
            first[frame.codec] = frame
    return [
        Track.for_video(codec, split_annexb(frame.data)) if codec in ("h264", "hevc") else Track(codec=codec)
        for codec, frame in first.items()
    ]


class SharedMediaPort:
    """One UDP port for every UDP stream, demultiplexed by SSRC (ZLMediaKit's single-port mode).

    A packet whose SSRC no session expects goes to the session waiting for its first packet from the packet's
    source host (a device that sends SSRC 0 or its own), which then keeps that SSRC, provided exactly one such
    session waits (otherwise the match would be a guess); else it is dropped and counted in `unmatched`.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self._receiver = DatagramReceiver(sock)
        self._by_ssrc: dict[int, _MediaSink] = {}
        self._waiting: dict[_MediaSink, str] = {}  # sinks with no packet yet -> device host
        self.unmatched = 0

    def attach(self, sink: _MediaSink, ssrc: int | None, host: str) -> None:
        if ssrc is not None:
            self._by_ssrc[ssrc] = sink
        self._waiting[sink] = host

    def detach(self, sink: _MediaSink) -> None:
        self._waiting.pop(sink, None)
        for ssrc in [s for s, v in self._by_ssrc.items() if v is sink]:
            del self._by_ssrc[ssrc]

    async def run(self) -> None:
        sock = self.sock
        by_ssrc = self._by_ssrc
        while True:
            await trio.lowlevel.wait_readable(sock)
            now = trio.current_time()
            batches: dict[_MediaSink, list[bytes]] = {}
            for _ in range(256):
                try:
                    data, addr = sock.recvfrom(65536)
                except BlockingIOError:
                    break
                except OSError:
                    continue
                if len(data) < 12:
                    self.unmatched += 1
                    continue
                ssrc = int.from_bytes(data[8:12], "big")
                sink = by_ssrc.get(ssrc)
                if sink is None:
                    # Only an unambiguous match: one session of that host still waiting for its first packet.
                    candidates = [s for s, h in self._waiting.items() if h == addr[0] and not s.packets]
                    if len(candidates) != 1:
                        self.unmatched += 1
                        continue
                    sink = by_ssrc[ssrc] = candidates[0]
                self._waiting.pop(sink, None)
                batches.setdefault(sink, []).append(data)
            for sink, datagrams in batches.items():
                sink.feed(datagrams, now)

    def close(self) -> None:
        trio.lowlevel.notify_closing(self.sock)
        self.sock.close()


class Gb28181Source:
    """The live video of one GB28181 channel (or a playback of the device's recording), as an engine source.

    Args:
        platform: the serving `Gb28181Platform`.
        device_id: the device (IPC or NVR) that registered.
        channel_id: the channel to INVITE (an IPC's own ID, or one of an NVR's catalog entries).
        transport: "udp", "tcp-passive" (the device connects to our port) or "tcp-active" (we connect to it).
        playback: (start, end) Unix seconds of the device's recording to play back (`s=Playback`, `u=`, `t=`;
            history SSRC); None for live. A playback ends (run returns, the stream stops) at MediaStatus 121.
        speed: playback speed sent with MANSRTSP `Scale` once the session is up (1: nothing sent).
        download_speed: download `playback` instead of playing it back: `s=Download` with `a=downloadspeed:N`;
            frames keep the device's timestamps and the stream is published with a `WallOrigin` at the range's
            start, so it is recorded at its original times (see the module docstring, "Download"); `speed` is not
            used.

    Attributes:
        finished: a playback or download reached the end of the recording (MediaStatus 121).
        scale_mismatch: (requested, observed) speed of the latest session whose device was measured sending at
            another speed than asked (it ignores Scale; see the module docstring); None until then. Each such
            session also emits one `ScaleMismatchDetected` event.

    Raises:
        PermanentSourceError: an unknown transport, or `download_speed` without `playback` or below 1.
    """

    def __init__(
        self,
        platform: Gb28181Platform,
        device_id: str,
        channel_id: str,
        transport: MediaTransport = "udp",
        *,
        playback: tuple[int, int] | None = None,
        speed: float = 1.0,
        download_speed: int | None = None,
    ) -> None:
        if transport not in _TRANSPORTS:
            raise PermanentSourceError(f"unknown GB28181 transport {transport!r}; expected one of {_TRANSPORTS}")
        if download_speed is not None and (playback is None or download_speed < 1):
            raise PermanentSourceError("a GB28181 download needs playback=(start, end) and download_speed >= 1")
        self.platform = platform
        self.device_id = device_id
        self.channel_id = channel_id
        self.transport: MediaTransport = transport
        self.playback = playback
        self.speed = speed
        self.download_speed = download_speed
        self.last_sink: _MediaSink | None = None
        self.finished = False
        self.scale_mismatch: tuple[float, float] | None = None
        self._dialog: Dialog | None = None
        self._cseq = 0

    @classmethod
    def from_url(cls, platform: Gb28181Platform, url: str) -> Gb28181Source:
        """Parse `gb28181://<device_id>/<channel_id>?transport=udp|tcp-passive|tcp-active`.

        The channel defaults to the device itself (an IPC). Raises PermanentSourceError for a malformed URL.
        """
        parts = urlsplit(url)
        device_id = parts.netloc
        channel_id = parts.path.strip("/") or device_id
        transport = parse_qs(parts.query).get("transport", ["udp"])[0]
        ok = parts.scheme == "gb28181" and all(
            len(x) == 20 and x.isascii() and x.isdigit() for x in (device_id, channel_id)
        )
        if not ok:
            raise PermanentSourceError(f"not a gb28181://<20-digit device>/<20-digit channel> URL: {url!r}")
        if transport not in _TRANSPORTS:
            raise PermanentSourceError(f"unknown GB28181 transport {transport!r} in {url!r}")
        return cls(platform, device_id, channel_id, transport)  # type: ignore[arg-type]

    async def run(self, session: SourceSession) -> None:
        """One media session (see the module docstring).

        A download that fails once frames have flowed is not retried (PermanentSourceError): a retry would start
        over at the range's start and record that part a second time; what was received stays recorded.
        """
        try:
            await self._session(session)
        except Exception as exc:
            sink = self.last_sink
            if self.download_speed is None or sink is None or sink.publisher is None:
                raise
            if isinstance(exc, PermanentSourceError) or (
                isinstance(exc, BaseExceptionGroup) and exc.subgroup(PermanentSourceError) is not None
            ):
                raise
            raise PermanentSourceError(f"download interrupted, not retried: {exc}") from exc

    async def _session(self, session: SourceSession) -> None:
        platform = self.platform
        try:
            platform._online_device(self.device_id)
        except (DeviceNotFoundError, DeviceOfflineError) as exc:
            raise Gb28181SourceError(str(exc)) from None  # it may register later: retry with backoff
        generation = platform.generation(self.device_id)
        playback = self.playback
        ssrc = platform.new_ssrc(live=playback is None)
        sink = self.last_sink = _MediaSink(session, reorder=self.transport == "udp")
        sink.expected = int(ssrc)
        download = self.download_speed is not None
        if download and playback is not None:
            sink.origin_us = playback[0] * 1_000_000  # the first frame is the range's start (module docstring)
        if playback is not None and not download:
            reported = False

            def on_mismatch(requested: float, observed: float) -> None:
                nonlocal reported  # once per session: a device that ignores Scale ignores every change of it
                if not reported:
                    reported = True
                    self._scale_mismatch(session.stream_id, requested, observed)

            sink.restamper = _Restamper(abs(self.speed) or 1.0, on_mismatch)
        udp_sock: socket.socket | None = None
        listener: trio.SocketListener | None = None
        shared = platform.shared_media if self.transport == "udp" else None
        dialog: Dialog | None = None
        try:
            if shared is not None:
                port = shared.port
            elif self.transport == "udp":
                udp_sock = self._bind_udp()
                port = udp_sock.getsockname()[1]
            elif self.transport == "tcp-passive":
                listener = self._listen_tcp()
                port = listener.socket.getsockname()[1]
            else:
                port = 9  # tcp-active: we connect; the offer's port is only a placeholder (RFC 4145 §4.1)
            offer = build_gb28181_offer(
                kind="Play" if playback is None else "Download" if download else "Playback",
                origin_id=platform.settings.server_id,
                address=platform.media_host,
                port=port,
                ssrc=ssrc,
                transport=self.transport,
                channel_id=None if playback is None else self.channel_id,
                start=0 if playback is None else playback[0],
                end=0 if playback is None else playback[1],
                download_speed=self.download_speed,
            )
            response, dialog, bye_received = await platform.invite(
                self.device_id, self.channel_id, offer.serialize().encode(), ssrc
            )
            status = response.status_code
            if not 200 <= status < 300:
                if status in (404, 488):
                    raise PermanentSourceError(f"INVITE {self.device_id}/{self.channel_id} refused: {status}")
                raise Gb28181SourceError(f"INVITE {self.device_id}/{self.channel_id} refused: {status}")
            try:
                answer = parse_sdp(response.body.decode("utf-8", "replace"))
            except ProtocolError as exc:
                raise Gb28181SourceError(f"unreadable SDP answer: {exc}") from None
            if answer.ssrc_int is not None and answer.ssrc_int != 0:
                sink.expected = answer.ssrc_int
            media = answer.media[0] if answer.media else None
            connection = (media.connection if media is not None else None) or answer.connection
            device = platform.device(self.device_id)
            fallback = device.address[0] if device is not None else platform.settings.host
            device_host = connection.address if connection is not None else fallback
            logger.info(
                "gb28181 %s/%s: session up over %s, SSRC %s", self.device_id, self.channel_id, self.transport, ssrc
            )
            self._dialog = dialog
            end_of_file = trio.Event()
            if playback is not None:
                platform.watch_end_of_file(self.device_id, end_of_file)
                if self.speed != 1.0 and not download:
                    status = await self.set_speed(self.speed)
                    if not 200 <= status < 300 and sink.restamper is not None:
                        sink.restamper.set_scale(1.0)  # the device refused Scale: it sends at 1x
                        logger.info(
                            "gb28181 %s/%s: speed %g refused (%d)", self.device_id, self.channel_id, self.speed, status
                        )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch, bye_received, generation)
                if playback is not None:
                    nursery.start_soon(self._until_end_of_file, end_of_file, sink, nursery.cancel_scope)
                if shared is not None:
                    shared.attach(sink, sink.expected, device_host)
                    try:
                        await self._wait_inactive(sink)
                    finally:
                        shared.detach(sink)
                elif udp_sock is not None:
                    await self._receive_udp(udp_sock, sink)
                elif listener is not None:
                    stream = await self._accept(listener, sink)
                    await self._receive_tcp(stream, sink)
                else:
                    if media is None:
                        raise Gb28181SourceError("the SDP answer has no m= line to connect to")
                    with trio.fail_after(platform.settings.media_timeout):
                        stream = await trio.open_tcp_stream(device_host, media.port)
                    await self._receive_tcp(stream, sink)
        except trio.TooSlowError:
            raise Gb28181SourceError("timed out connecting to the device's media port") from None
        finally:
            sink.report()
            self._dialog = None
            if playback is not None:
                platform.watch_end_of_file(self.device_id, end_of_file, add=False)
            with trio.CancelScope(shield=True):
                if dialog is not None:
                    platform.bye(self.device_id, dialog)
                platform.release_ssrc(ssrc)
                if udp_sock is not None:
                    trio.lowlevel.notify_closing(udp_sock)
                    udp_sock.close()
                if listener is not None:
                    await listener.aclose()

    # ---- playback control (MANSRTSP over INFO, Appendix B) ----

    async def set_speed(self, scale: float) -> int:
        """Change the playback speed (0.25, 0.5, 1, 2, 4; negative = reverse); returns the SIP status.

        Timestamps follow the new speed from the next frame on once the device answers 200.
        """
        status = await self._control(MansrtspRequest.play(self._next_cseq(), scale=scale))
        self._restamp(lambda r: r.set_scale(abs(scale) or 1.0), status)
        return status

    async def pause(self) -> int:
        """Pause the playback; returns the SIP status."""
        status = await self._control(MansrtspRequest.pause(self._next_cseq()))
        self._restamp(_Restamper.restart_measurement, status)
        return status

    async def resume(self) -> int:
        """Resume a paused playback (`Range: npt=now-`); returns the SIP status."""
        status = await self._control(MansrtspRequest.play(self._next_cseq()))
        self._restamp(_Restamper.restart_measurement, status)
        return status

    async def seek(self, seconds: float) -> int:
        """Jump to `seconds` from the start of the recording; returns the SIP status."""
        status = await self._control(MansrtspRequest.play(self._next_cseq(), seek=seconds))
        self._restamp(lambda r: setattr(r, "rebase", True), status)
        return status

    def _restamp(self, change: Callable[[_Restamper], object], status: int) -> None:
        sink = self.last_sink
        if 200 <= status < 300 and sink is not None and sink.restamper is not None:
            change(sink.restamper)

    def _scale_mismatch(self, stream_id: str, requested: float, observed: float) -> None:
        # Called once per session (see `run`): kept, logged and published as an event (see the module docstring).
        self.scale_mismatch = (requested, observed)
        logger.warning(
            "gb28181 %s/%s: playback asked at %gx but the device sends at %.2fx (it ignores Scale?); "
            "timestamps follow the observed rate",
            self.device_id, self.channel_id, requested, observed,
        )  # fmt: skip
        self.platform._emit(
            ScaleMismatchDetected(
                stream_id=stream_id,
                device_id=self.device_id,
                time=trio.current_time(),
                channel_id=self.channel_id,
                requested=requested,
                observed=observed,
            )
        )

    def _next_cseq(self) -> int:
        self._cseq += 1
        return self._cseq

    async def _control(self, request: MansrtspRequest) -> int:
        dialog = self._dialog
        if dialog is None:
            raise Gb28181Error("no playback session is up")
        return await self.platform.info(self.device_id, dialog, request.serialize())

    async def _until_end_of_file(self, event: trio.Event, sink: _MediaSink, scope: trio.CancelScope) -> None:
        await event.wait()
        frames = sink.receiver.flush()
        if frames:
            sink._publish(frames, trio.current_time())
        self.finished = True
        logger.info("gb28181 %s/%s: end of the recording (MediaStatus 121)", self.device_id, self.channel_id)
        scope.cancel()

    async def _watch(self, bye_received: trio.Event, generation: int) -> None:
        platform = self.platform
        while True:
            with trio.move_on_after(0.1):
                await bye_received.wait()
                raise Gb28181SourceError("the device ended the session (BYE)")
            if platform.generation(self.device_id) != generation:
                raise Gb28181SourceError("the device restarted or went offline")

    def _bind_udp(self) -> socket.socket:
        platform = self.platform
        for _ in range(platform.media_port_count()):
            try:
                return bind_udp(platform.media_host, platform.next_media_port())
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
        raise Gb28181SourceError("no free UDP port in media_port_range")

    def _listen_tcp(self) -> trio.SocketListener:
        platform = self.platform
        for _ in range(platform.media_port_count()):
            sock = socket.socket(socket.AF_INET6 if ":" in platform.media_host else socket.AF_INET)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((platform.media_host, platform.next_media_port()))
                sock.listen(4)
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            return trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        raise Gb28181SourceError("no free TCP port in media_port_range")

    async def _wait_inactive(self, sink: _MediaSink) -> None:
        timeout = self.platform.settings.media_timeout
        while True:
            reorder_at = sink.reorder.get_timer() if sink.reorder is not None else None
            deadline = min(sink.last_packet + timeout, math.inf if reorder_at is None else reorder_at)
            await trio.sleep_until(deadline)
            now = trio.current_time()
            sink.handle_timer(now)
            if now >= sink.last_packet + timeout:
                raise Gb28181SourceError(f"no media for {timeout:g} s")

    async def _receive_udp(self, sock: socket.socket, sink: _MediaSink) -> None:
        receiver = DatagramReceiver(sock)
        timeout = self.platform.settings.media_timeout
        reorder = sink.reorder
        assert reorder is not None
        while True:
            reorder_at = reorder.get_timer()
            deadline = min(sink.last_packet + timeout, math.inf if reorder_at is None else reorder_at)
            with trio.move_on_at(deadline):
                batch = await receiver.receive_batch()
                sink.feed(batch, trio.current_time())
                continue
            now = trio.current_time()
            sink.handle_timer(now)
            if now >= sink.last_packet + timeout:
                raise Gb28181SourceError(f"no media for {timeout:g} s")

    async def _accept(self, listener: trio.SocketListener, sink: _MediaSink) -> trio.SocketStream:
        timeout = self.platform.settings.media_timeout
        with trio.move_on_after(timeout):
            stream = await listener.accept()
            assert isinstance(stream, trio.SocketStream)
            return stream
        raise Gb28181SourceError(f"the device did not connect to the media port within {timeout:g} s")

    async def _receive_tcp(self, stream: trio.SocketStream, sink: _MediaSink) -> None:
        deframer = TcpRtpDeframer(max_packet_size=DEFAULT_MAX_TCP_PACKET)
        timeout = self.platform.settings.media_timeout
        try:
            while True:
                with trio.move_on_at(sink.last_packet + timeout):
                    data = await stream.receive_some(_TCP_READ)
                    if not data:
                        raise Gb28181SourceError("the device closed the media connection")
                    sink.feed(deframer.feed(data), trio.current_time())
                    continue
                raise Gb28181SourceError(f"no media for {timeout:g} s")
        except trio.BrokenResourceError:
            raise Gb28181SourceError("the media connection broke") from None
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()
