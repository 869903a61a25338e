"""One received RTP track: datagrams in, `MediaFrame`s out (parse, statistics, reorder, depacketize).

Strategy: `RtpTrackReceiver.receive_rtp` takes the whole batch a socket read produced and runs each packet
through `parse_rtp` -> `RtpSourceTracker.update` (RFC 3550 §A.1/§A.8 statistics, in arrival order) ->
`ReorderBuffer.push` -> the depacketizer. Over UDP the reorder buffer waits up to `max_delay` for a missing packet;
over TCP nothing can be reordered, so the buffer is built with `max_packets=1` and no delay: it then only turns a
sequence jump into an `RtpGap` at once (the loss count the engine reports). Discontinuities reach the
depacketizer as `feed_gap()`, so a frame hit by a loss is dropped, never spliced.

The engine `Track` of a video stream comes from the SDP's parameter sets (sprop-parameter-sets, RFC 6184 §8.1;
sprop-vps/sps/pps, RFC 7798 §7.1) parsed with `parse_sps` for width, height and frame rate; when the camera sends
other (or only in-band) parameter sets, the first keyframe carrying them updates the track and `track_changed`
tells the driver to announce it again before sending that keyframe.

The audio depacketizers (`G711Depacketizer`, `AacDepacketizer`) live here for now; they are sans-IO and belong in
`fluxkit.protocols.rtp.payload` later.
"""

from __future__ import annotations

import base64
import binascii
import logging

from fluxkit.engine import Track
from fluxkit.errors import ProtocolError
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.rtp import (
    ReorderBuffer,
    ReportBlock,
    RtpDiscontinuity,
    RtpGap,
    RtpPacket,
    RtpSourceTracker,
    SenderReport,
    parse_rtcp,
    parse_rtp,
)
from fluxkit.protocols.rtp.payload import (
    DEFAULT_MAX_FRAME_SIZE,
    AacDepacketizer,
    Depacketizer,
    G711Depacketizer,
    depacketizer_for,
)
from fluxkit.protocols.rtsp import Track as RtspTrack

__all__ = [
    "SUPPORTED_ENCODINGS",
    "AacDepacketizer",
    "G711Depacketizer",
    "RtpTrackReceiver",
    "UnsupportedTrack",
    "codec_for",
]

_log = logging.getLogger("fluxkit.net.rtsp")

#: rtpmap encoding names (upper case) this receiver handles, and the FFmpeg codec name of their frames.
SUPPORTED_ENCODINGS = {
    "H264": "h264",
    "H265": "hevc",
    "HEVC": "hevc",
    "PCMA": "pcm_alaw",
    "PCMU": "pcm_mulaw",
    "MPEG4-GENERIC": "aac",
}


class UnsupportedTrack(Exception):
    """The track's encoding or its parameters are not supported; the message says why."""


def codec_for(track: RtspTrack) -> str | None:
    """The FFmpeg codec name of an SDP track, or None when it is not supported."""
    return SUPPORTED_ENCODINGS.get((track.encoding or "").upper())


def _b64_list(value: str | None) -> list[bytes]:
    out = []
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(base64.b64decode(item + "=" * (-len(item) % 4)))
        except (binascii.Error, ValueError):
            continue  # one unreadable set is skipped; in-band sets may still come
    return [nal for nal in out if nal]


def sdp_parameter_sets(track: RtspTrack) -> list[bytes]:
    """The parameter sets of an H.264/H.265 SDP track (NAL units without start codes), possibly empty."""
    if codec_for(track) == "h264":
        return _b64_list(track.fmtp_param("sprop-parameter-sets"))
    return [nal for name in ("sprop-vps", "sprop-sps", "sprop-pps") for nal in _b64_list(track.fmtp_param(name))]


def video_track(codec: str, parameter_sets: list[bytes] | tuple[bytes, ...]) -> Track:
    """An engine `Track` for H.264/H.265 with the picture size and rate from the first readable SPS."""
    return Track.for_video(codec, parameter_sets)


def _int_param(track: RtspTrack, name: str, default: int | None) -> int | None:
    value = track.fmtp_param(name)
    if value is None:
        return default
    try:
        return int(value.strip())
    except ValueError:
        raise UnsupportedTrack(f"fmtp {name}={value!r} is not an integer") from None


class RtpTrackReceiver:
    """The receive pipeline of one SDP track.

    Args:
        track: the track from DESCRIBE (its encoding must be in `SUPPORTED_ENCODINGS`).
        reorder: wait for late packets (UDP); False for TCP (gaps are still detected and reported).
        max_frame_size: the depacketizer's frame size bound.

    Raises:
        UnsupportedTrack: unknown encoding or unusable parameters (the driver skips the track).
    """

    def __init__(self, track: RtspTrack, *, reorder: bool, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        codec = codec_for(track)
        if codec is None:
            raise UnsupportedTrack(f"encoding {track.encoding or track.payload_type!r} is not supported")
        self.rtsp_track = track
        self.codec = codec
        self.payload_type = track.payload_type
        self.clock_rate = track.clock_rate or (90000 if track.media == "video" else 8000)
        self.depacketizer: Depacketizer | G711Depacketizer | AacDepacketizer
        self._video = codec in ("h264", "hevc")
        if self._video:
            sets = sdp_parameter_sets(track)
            dep = depacketizer_for(track.encoding or "", max_frame_size=max_frame_size, parameter_sets=sets or None)
            assert dep is not None
            self.depacketizer = dep
            self.track = video_track(codec, sets)
        elif codec == "aac":
            mode = (track.fmtp_param("mode") or "").lower()
            size_length = _int_param(track, "sizelength", None)
            if mode not in ("aac-hbr", "aac-lbr") or not size_length:
                raise UnsupportedTrack(f"mpeg4-generic mode {mode or '?'!r} without AU headers is not supported")
            config = track.fmtp_param("config") or ""
            try:
                extradata = bytes.fromhex(config.strip())
            except ValueError:
                raise UnsupportedTrack(f"AAC config {config!r} is not hex") from None
            self.depacketizer = AacDepacketizer(
                size_length=size_length,
                index_length=_int_param(track, "indexlength", 0) or 0,
                index_delta_length=_int_param(track, "indexdeltalength", 0) or 0,
                frame_samples=_int_param(track, "constantduration", 1024) or 1024,
                max_frame_size=max_frame_size,
            )
            self.track = Track(
                codec=codec,
                clock_rate=self.clock_rate,
                sample_rate=self.clock_rate,
                channels=track.channels or 1,
                extradata=extradata,
            )
        else:
            self.depacketizer = G711Depacketizer(codec)
            self.track = Track(
                codec=codec, clock_rate=self.clock_rate, sample_rate=self.clock_rate, channels=track.channels or 1
            )
        self._reorder_enabled = reorder
        self.reorder = self._new_reorder()
        self.tracker = RtpSourceTracker(clock_rate=self.clock_rate)
        #: Set when a keyframe brought new parameter sets: announce `track` again before sending its frames.
        self.track_changed = False
        self.packets = 0
        self.malformed = 0
        self.foreign = 0  # packets of another payload type
        self.lost = 0  # packets declared lost, not yet taken by `take_losses`

    def _new_reorder(self) -> ReorderBuffer:
        return ReorderBuffer() if self._reorder_enabled else ReorderBuffer(max_delay=0.0, max_packets=1)

    def receive_rtp(self, datagrams: list[bytes], now: float) -> list[MediaFrame]:
        """Process a batch of RTP packets received together; return the frames they complete, in order."""
        out: list[MediaFrame] = []
        pt = self.payload_type
        tracker = self.tracker
        push = self.reorder.push
        for data in datagrams:
            try:
                packet = parse_rtp(data)
            except ProtocolError:
                self.malformed += 1
                continue
            if pt is not None and packet.payload_type != pt:
                self.foreign += 1
                continue
            if packet.ssrc != tracker.ssrc and tracker.ssrc is not None:
                # A new source (camera restart): fresh statistics; the reorder buffer handles the switch itself.
                tracker = self.tracker = RtpSourceTracker(clock_rate=self.clock_rate)
            tracker.update(packet, now)
            self._process(push(packet, now), out)
        self.packets += len(datagrams)
        return out

    def get_timer(self) -> float | None:
        """When `handle_timer` must run (a packet waiting for a missing one), or None."""
        return self.reorder.get_timer()

    def handle_timer(self, now: float) -> list[MediaFrame]:
        """Give up on missing packets whose wait is over; return the frames that completes."""
        out: list[MediaFrame] = []
        self._process(self.reorder.handle_timer(now), out)
        return out

    def _process(self, items: list[RtpPacket | RtpDiscontinuity], out: list[MediaFrame]) -> None:
        dep = self.depacketizer
        for item in items:
            if type(item) is RtpPacket:
                frames = dep.feed(item)
                if frames:
                    if self._video:
                        for frame in frames:
                            if frame.keyframe:
                                self._check_sets()
                    out += frames
            else:
                dep.feed_gap()
                if type(item) is RtpGap:
                    self.lost += item.count

    def _check_sets(self) -> None:
        sets = self.depacketizer.parameter_sets  # type: ignore[union-attr]
        if tuple(sets) != self.track.parameter_sets:
            self.track = video_track(self.codec, sets)
            self.track_changed = True

    def receive_rtcp(self, data: bytes, now: float) -> None:
        """An RTCP packet from the sender: remember its sender report for our reports' LSR/DLSR."""
        try:
            packets = parse_rtcp(data)
        except ProtocolError:
            self.malformed += 1
            return
        for packet in packets:
            if isinstance(packet, SenderReport) and packet.ssrc == self.tracker.ssrc:
                self.tracker.on_sender_report(packet, now)

    def report_block(self, now: float) -> ReportBlock | None:
        """A reception report block for the current source, or None before its first packet."""
        if self.tracker.ssrc is None:
            return None
        return self.tracker.report_block(now)

    def jitter_seconds(self) -> float:
        """Interarrival jitter of the current source in seconds (0 before the first packet)."""
        if self.tracker.ssrc is None:
            return 0.0
        return self.tracker.statistics().jitter_seconds

    def take_losses(self) -> int:
        """Packets declared lost since the last call."""
        lost, self.lost = self.lost, 0
        return lost

    def flush(self) -> list[MediaFrame]:
        """End of input: what the reorder buffer and depacketizer can still complete."""
        out: list[MediaFrame] = []
        self._process(self.reorder.flush(), out)
        out += self.depacketizer.flush()
        return out
